#!/usr/bin/env bash
# Local test: the README's main command, deploy/local/run.sh, as a user runs it
# (setup, build, tiny synthetic data, coordinator + two CPU workers, report),
# with a smaller experiment (SPIKECV_TEST_EPOCHS, SPIKECV_TEST_STEPS) and the dev
# profile so it reuses `cargo test`'s build. Checks: exit 0, both variants in the
# report, every job succeeded once, `worker reproduce` of one of its jobs bit for
# bit (and refused once a figure is altered). Then the example sweep
# (deploy/local/sweep.toml): exit 0, its comparison and plot in the report,
# every job ended once (succeeded or pruned). Then DVS128 Gesture on its own
# split (deploy/local/gesture-official.toml, a synthetic download): exit 0, one
# job per seed, the gesture names and its published figures in the report.
# Then the PyTorch example trainer beside the engine
# (deploy/local/trainers.toml): exit 0, every job succeeded once, the
# comparison row with samples/s and the speed ratio, the script named with its
# hash in the environment. Then Ctrl-C: a second run gets SIGINT
# (to its process group, as a terminal sends it) once its workers are up, and
# must exit 130 leaving none of the processes it started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"
# shellcheck source=deploy/tests/lib/test_env.sh
source "$here/lib/test_env.sh"

tmp="$(mktemp -d /tmp/spikecv-local-test.XXXXXX)"
cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" != 0 ]; then
    for f in "$tmp"/run*/*.log "$tmp"/*.out; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2; done
  fi
  if [ "${SPIKECV_TEST_KEEP:-0}" = 1 ]; then spk_log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT

# SPIKECV_LOCAL_BIN_DIR: give run.sh these binaries and skip its setup and build.
run_env=(
  env -u SPIKECV_BIN_DIR ${SPIKECV_LOCAL_BIN_DIR:+SPIKECV_BIN_DIR="$SPIKECV_LOCAL_BIN_DIR"}
  SPIKECV_PROFILE="${SPIKECV_LOCAL_PROFILE:-dev}"
  SPIKECV_DATA_DIR="$tmp/data"
  SPIKECV_EPOCHS="${SPIKECV_TEST_EPOCHS:-1}"
  SPIKECV_STEPS="${SPIKECV_TEST_STEPS:-4}"
  SPIKECV_RECORDINGS="${SPIKECV_TEST_RECORDINGS:-6}"
  SPIKECV_TIMEOUT="${SPIKECV_TEST_TIMEOUT:-900}"
)
# Without SPIKECV_LOCAL_BIN_DIR, run.sh runs setup.sh and builds (a no-op when
# the runner built already) to exercise the whole command.

spk_log "deploy/local/run.sh, to the end"
start=$(date +%s)
"${run_env[@]}" SPIKECV_RUN_DIR="$tmp/run1" bash "$repo/deploy/local/run.sh" >"$tmp/run1.out" 2>&1 ||
  spk_die "deploy/local/run.sh failed (exit $?)"
spk_log "finished in $(( $(date +%s) - start )) s"
if ! { grep -q 'whole' "$tmp/run1/report.md" && grep -q 'reduced' "$tmp/run1/report.md"; }; then
  spk_die "report.md does not mention both variants"
fi
cmp -s <(sed -n '/^|/p' "$tmp/run1/report.md") <(sed -n '/^|/p' "$tmp/run1.out") ||
  spk_die "run.sh did not print the report's tables"
# The coordinator run.sh built (for `plan`, to count the jobs).
profile="${SPIKECV_LOCAL_PROFILE:-dev}"
[ "$profile" = dev ] && profile_dir=debug || profile_dir="$profile"
COORDINATOR="${SPIKECV_LOCAL_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/$profile_dir}/coordinator"
spk_check_report_csv "$tmp/run1/report.csv" "$(spk_expected_jobs "$tmp/run1/experiment.toml")"

# worker reproduce on a job of this report: bit for bit (the local run trains
# deterministic); the same job with one recorded figure one ulp off: refused,
# naming the figure.
WORKER="$(dirname "$COORDINATOR")/worker"
job="$(python3 -c 'import json,sys; print(next(j["id"] for j in json.load(open(sys.argv[1]))["jobs"] if j["status"] == "succeeded"))' "$tmp/run1/report.json")"
"$WORKER" reproduce --report "$tmp/run1/report.json" --job "$job" --data "$tmp/data" \
  --out "$tmp/reproduced" >"$tmp/reproduce.out" 2>&1 ||
  { cat "$tmp/reproduce.out" >&2; spk_die "worker reproduce of job $job failed"; }
grep -q '^comparison: bit for bit' "$tmp/reproduce.out" ||
  { cat "$tmp/reproduce.out" >&2; spk_die "job $job was not compared bit for bit"; }
python3 - "$tmp/run1/report.json" "$job" "$tmp/altered.json" <<'PY'
import json, math, sys
report = json.load(open(sys.argv[1]))
job = next(j for j in report["jobs"] if j["id"] == sys.argv[2])
job["epochs"][0]["train_loss"] = math.nextafter(job["epochs"][0]["train_loss"], math.inf)
json.dump(report, open(sys.argv[3], "w"))
PY
if "$WORKER" reproduce --report "$tmp/altered.json" --job "$job" --data "$tmp/data" \
  --out "$tmp/altered" >"$tmp/altered.out" 2>&1; then
  spk_die "worker reproduce accepted a report with an altered figure"
fi
grep -q 'DIFFER epoch 1 train_loss' "$tmp/altered.out" ||
  { cat "$tmp/altered.out" >&2; spk_die "worker reproduce did not name the altered figure"; }
spk_log "worker reproduce: job $job bit for bit; an altered figure refused"

spk_log "deploy/local/run.sh with the example sweep (SPIKECV_EXPERIMENT=deploy/local/sweep.toml)"
"${run_env[@]}" SPIKECV_RUN_DIR="$tmp/sweep" SPIKECV_EXPERIMENT="$repo/deploy/local/sweep.toml" \
  bash "$repo/deploy/local/run.sh" >"$tmp/sweep.out" 2>&1 ||
  spk_die "deploy/local/run.sh with the example sweep failed (exit $?)"
grep -q '^## Configurations compared' "$tmp/sweep/report.md" ||
  spk_die "the sweep's report has no comparison of its configurations"
spk_check_report_csv "$tmp/sweep/report.csv" "$(spk_expected_jobs "$tmp/sweep/experiment.toml")" pruned-ok
[ -f "$tmp/sweep/report/configurations-whole-train-val-test.png" ] ||
  spk_die "the sweep's comparison plot is missing"

spk_log "deploy/local/run.sh on DVS128 Gesture (SPIKECV_EXPERIMENT=deploy/local/gesture-official.toml)"
"${run_env[@]}" SPIKECV_RUN_DIR="$tmp/gesture" SPIKECV_DATA_DIR="$tmp/gesture-data" \
  SPIKECV_EXPERIMENT="$repo/deploy/local/gesture-official.toml" \
  bash "$repo/deploy/local/run.sh" >"$tmp/gesture.out" 2>&1 ||
  spk_die "deploy/local/run.sh on DVS128 Gesture failed (exit $?)"
[ -f "$tmp/gesture-data/DvsGesture/trials_to_train.txt" ] ||
  spk_die "run.sh did not generate a DVS128 Gesture download"
grep -q 'Compared with published figures on DVS128 Gesture' "$tmp/gesture/report.md" ||
  spk_die "the DVS128 Gesture report has no published figures of its own"
grep -q 'hand\\_clapping' "$tmp/gesture/report.md" ||
  spk_die "the DVS128 Gesture report does not name its classes"
[ "$(spk_expected_jobs "$tmp/gesture/experiment.toml")" = 3 ] ||
  spk_die "the official split is not one job per seed (3 seeds)"
SPK_VARIANTS=whole spk_check_report_csv "$tmp/gesture/report.csv" 3

spk_log "deploy/local/run.sh with a training script (SPIKECV_EXPERIMENT=deploy/local/trainers.toml)"
"${run_env[@]}" SPIKECV_RUN_DIR="$tmp/trainers" SPIKECV_EXPERIMENT="$repo/deploy/local/trainers.toml" \
  bash "$repo/deploy/local/run.sh" >"$tmp/trainers.out" 2>&1 ||
  spk_die "deploy/local/run.sh with the PyTorch trainer failed (exit $?)"
SPK_VARIANTS=whole spk_check_report_csv "$tmp/trainers/report.csv" "$(spk_expected_jobs "$tmp/trainers/experiment.toml")"
grep -q '^| 2 | name=stbp-pytorch .* | [0-9.]* | [0-9.]*× |$' "$tmp/trainers/report.md" ||
  grep -q '^| 1 | name=stbp-pytorch .* | [0-9.]* | [0-9.]*× |$' "$tmp/trainers/report.md" ||
  spk_die "the report does not compare the PyTorch trainer with the engine (samples/s, speed ratio)"
# shellcheck disable=SC2016 # backquotes of Markdown, not a command
grep -q '| stbp-pytorch `[0-9a-f]*` |' "$tmp/trainers/report.md" ||
  spk_die "the report's environment does not name the script and its hash"
[ -n "$(find "$tmp/trainers" -name events.jsonl -size +0)" ] ||
  spk_die "no script reported through its events file"

spk_log "deploy/local/run.sh, interrupted with SIGINT"
"$(command -v python3)" - "$repo/deploy/local/run.sh" "$tmp/run2" "$tmp/run2.out" "${run_env[@]}" <<'PY'
import os, re, signal, subprocess, sys, time
script, run_dir, out_path, env_cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
env = dict(os.environ)
# Apply the `env -u X A=B ...` list.
args = env_cmd[1:]
while args:
    a = args.pop(0)
    if a == "-u":
        env.pop(args.pop(0), None)
    else:
        k, v = a.split("=", 1)
        env[k] = v
env["SPIKECV_RUN_DIR"] = run_dir
out = open(out_path, "w")
# A session of its own, SIGINT at its default (a background shell ignores it),
# as when a user starts it from a terminal.
p = subprocess.Popen(["bash", script], env=env, stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
deadline = time.time() + 600
while time.time() < deadline and p.poll() is None:
    if "started worker 1" in open(out_path).read():
        break
    time.sleep(0.5)
else:
    sys.exit(f"run.sh did not start its workers (exit {p.poll()})")
time.sleep(3)
text = open(out_path).read()
pids = [int(x) for x in re.findall(r"started .*?\(pid (\d+), log", text)]
os.killpg(p.pid, signal.SIGINT)   # what Ctrl-C does
rc = p.wait(timeout=120)
if rc != 130:
    sys.exit(f"run.sh exited {rc} on SIGINT, expected 130")
time.sleep(0.5)
alive = []
for pid in pids:
    try:
        os.killpg(pid, 0)
        alive.append(pid)
    except ProcessLookupError:
        pass
if len(pids) != 3:
    sys.exit(f"expected 3 started processes (coordinator, 2 workers), log shows {pids}")
if alive:
    sys.exit(f"process groups still alive after Ctrl-C: {alive}")
print(f"Ctrl-C: run.sh exited 130 and stopped all {len(pids)} process groups it started")
PY
spk_log "local test passed"
