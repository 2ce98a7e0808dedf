#!/usr/bin/env bash
# spikecv on one machine, end to end: the README's main command.
#
#   bash deploy/local/run.sh
#
# On a fresh clone it
#   1. sets up what is missing (scripts/setup.sh: rustfmt/clippy, .venv with PyTorch),
#   2. builds the coordinator and worker (release),
#   3. generates a tiny synthetic data set (coordinator data synth --size tiny;
#      SL-Animals-DVS by default, DVS128 Gesture with SPIKECV_DATASET=dvs-gesture),
#   4. writes a short experiment (both variants, 4 folds, 1 seed, a few epochs),
#   5. starts a coordinator on 127.0.0.1 (a free port) and two workers
#      (CPU, or the GPUs when nvidia-smi sees some),
#   6. waits until every job has finished, stops everything it started,
#   7. prints `coordinator report --format md` (also written to the run folder).
# Ctrl-C (or SIGTERM) at any point stops every process it started.
#
# Settings (environment variables, all optional):
#   SPIKECV_RUN_DIR      run folder (default runs/local-<date>-<time>): state DB,
#                        experiment.toml, logs, worker folders, report.{md,csv,json},
#                        report/ (the report with its plots)
#   SPIKECV_DATASET      sl-animals (default) or dvs-gesture: the data set
#                        generated and the written experiment's [data] kind
#                        (an experiment file saying kind = "dvs-gesture" sets it)
#   SPIKECV_DATA_DIR     data set root (default data/synthetic, or
#                        data/synthetic-gesture; generated when it holds no data
#                        set: no filelist.txt, or no DvsGesture/trials_to_train.txt)
#   SPIKECV_DATA_SIZE    tiny|small|full for the synthetic set (default tiny)
#   SPIKECV_RECORDINGS   recordings of the generated set to use, spread over its
#                        four recording sets (default 8; 0 = all 59)
#   SPIKECV_EXPERIMENT   use this experiment TOML instead of writing one
#                        (`@DATA_DIR@` in it becomes the data set root), e.g.
#                        deploy/local/sweep.toml or deploy/local/gesture-official.toml
#   SPIKECV_EPOCHS (3), SPIKECV_STEPS (4), SPIKECV_DT_MS (30), SPIKECV_SEEDS ("0"),
#   SPIKECV_FOLDS (4), SPIKECV_BATCH (8), SPIKECV_PROTOCOL (train-val-test;
#   train-test, or official for dvs-gesture): the written experiment
#   SPIKECV_TRAINERS     training scripts every worker registers, NAME=SCRIPT
#                        separated by commas (docs/trainers.md); default, when
#                        the experiment has a [trainer] section:
#                        stbp-pytorch=examples/pytorch-stbp/train.py
#   SPIKECV_WORKERS      number of workers (default 2)
#   SPIKECV_GPUS         cpu|all|0,1,... for every worker (default: split the
#                        GPUs nvidia-smi lists between the workers, else cpu)
#   SPIKECV_PROFILE      cargo profile: dev (default; shares the test build, and
#                        the training runs in libtorch anyway) or release
#   SPIKECV_BIN_DIR      use the binaries in this folder and build nothing
#   SPIKECV_SKIP_SETUP=1 do not run scripts/setup.sh
#   SPIKECV_TIMEOUT      seconds to wait for the jobs (default 3600)
# Exit status: 0 when every job succeeded, 1 otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"

profile="${SPIKECV_PROFILE:-dev}"
workers="${SPIKECV_WORKERS:-2}"
timeout="${SPIKECV_TIMEOUT:-3600}"
run_dir="${SPIKECV_RUN_DIR:-$repo/runs/local-$(date +%Y%m%d-%H%M%S)}"
dataset="${SPIKECV_DATASET:-}"
if [ -z "$dataset" ] && [ -n "${SPIKECV_EXPERIMENT:-}" ] &&
  grep -Eq '^[[:space:]]*kind[[:space:]]*=[[:space:]]*"dvs-gesture"' "$SPIKECV_EXPERIMENT"; then
  dataset=dvs-gesture
fi
dataset="${dataset:-sl-animals}"
case "$dataset" in
  sl-animals) data_dir="${SPIKECV_DATA_DIR:-$repo/data/synthetic}" ;;
  dvs-gesture) data_dir="${SPIKECV_DATA_DIR:-$repo/data/synthetic-gesture}" ;;
  *) spk_die "SPIKECV_DATASET=$dataset: expected sl-animals or dvs-gesture" ;;
esac

export NO_COLOR=1   # plain logs from the coordinator and workers

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${#SPK_PIDS[@]}" -gt 0 ]; then
    spk_log "stopping ${#SPK_PIDS[@]} process group(s)"
    spk_stop_all 30
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'spk_log "interrupted"; exit 130' INT
trap 'spk_log "terminated"; exit 143' TERM

# 1-2. Setup and build.
if [ -n "${SPIKECV_BIN_DIR:-}" ]; then
  bin_dir="$SPIKECV_BIN_DIR"
else
  if [ "${SPIKECV_SKIP_SETUP:-0}" != 1 ]; then
    spk_log "setup (scripts/setup.sh)"
    bash scripts/setup.sh
  fi
  # shellcheck source=../../scripts/env.sh
  source scripts/env.sh
  command -v cargo >/dev/null 2>&1 || spk_die "cargo not found; install Rust from https://rustup.rs"
  spk_log "building coordinator and worker (${profile})"
  cargo build --quiet --profile "$profile" -p spikecv-coordinator -p spikecv-worker
  target="${CARGO_TARGET_DIR:-$repo/target}"
  case "$profile" in dev) bin_dir="$target/debug" ;; *) bin_dir="$target/$profile" ;; esac
fi
coordinator="$bin_dir/coordinator"
worker="$bin_dir/worker"
[ -x "$coordinator" ] || spk_die "no coordinator binary at $coordinator"
[ -x "$worker" ] || spk_die "no worker binary at $worker"

mkdir -p "$run_dir"
run_dir="$(cd "$run_dir" && pwd)"
spk_log "run folder: $run_dir"

# 3. Data.
if [ "$dataset" = dvs-gesture ]; then
  if [ ! -f "$data_dir/DvsGesture/trials_to_train.txt" ] && [ ! -f "$data_dir/trials_to_train.txt" ]; then
    spk_log "generating a ${SPIKECV_DATA_SIZE:-tiny} synthetic DVS128 Gesture download in $data_dir"
    mkdir -p "$data_dir"
    # 6 users (4 of the official training users, 2 test users), 12 recordings.
    "$coordinator" data synth --kind dvs-gesture --out "$data_dir" --seed 0 --size "${SPIKECV_DATA_SIZE:-tiny}"
  fi
elif [ ! -f "$data_dir/filelist.txt" ]; then
  spk_log "generating a ${SPIKECV_DATA_SIZE:-tiny} synthetic data set in $data_dir"
  mkdir -p "$data_dir"
  "$coordinator" data synth --out "$data_dir" --seed 0 --size "${SPIKECV_DATA_SIZE:-tiny}"
  # A few recordings, spread over the four sets, keep CPU training short.
  spk_subset_filelist "$data_dir" "${SPIKECV_RECORDINGS:-8}"
fi
data_dir="$(cd "$data_dir" && pwd)"

# 4. Experiment.
experiment="$run_dir/experiment.toml"
if [ -n "${SPIKECV_EXPERIMENT:-}" ]; then
  # `@DATA_DIR@` in the file stands for the data set root used here.
  sed "s|@DATA_DIR@|${data_dir}|g" "$SPIKECV_EXPERIMENT" >"$experiment"
else
  steps="${SPIKECV_STEPS:-4}"
  if [ "$dataset" = dvs-gesture ]; then
    name=local-gesture-demo kind_line='kind = "dvs-gesture"' variants='"whole"'
  else
    name=local-demo kind_line="" variants='"whole", "reduced"'
  fi
  cat >"$experiment" <<TOML
# Written by deploy/local/run.sh: a short run that ends in minutes on 2 cores.
name = "${name}"

[data]
root = "${data_dir}"
${kind_line}

[protocol]
kind = "${SPIKECV_PROTOCOL:-train-val-test}"
folds = ${SPIKECV_FOLDS:-4}
seeds = [${SPIKECV_SEEDS:-0}]
variants = [${variants}]
val_fraction = 0.15

[simulation]
steps = ${steps}
dt_ms = ${SPIKECV_DT_MS:-30}

[training]
batch = ${SPIKECV_BATCH:-8}
test_batch = 32
epochs = ${SPIKECV_EPOCHS:-3}
test_steps = ${steps}
# Deterministic kernels, so worker reproduce gives every job back bit for bit.
deterministic = true
TOML
fi

# 5. Coordinator and workers.
port="$(spk_free_port)"
url="http://127.0.0.1:${port}"
state="$run_dir/state.db"
token="$run_dir/token"
( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token" )
# Admin calls (submit, cancel, status) take their own token: workers get only theirs.
admin_token="$run_dir/admin-token"
( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$admin_token" )

serve=("$coordinator" serve --experiment "$experiment" --state "$state" --listen "127.0.0.1:${port}")
# The flags this worker build has (asked once: the worker loads libtorch to answer).
join_help="$("$worker" join --help 2>/dev/null || true)"
join_has() { grep -qE -- "(^|[[:space:],])$1([[:space:]=,]|$)" <<<"$join_help"; }
join_auth=()
if spk_has_flag "$coordinator" serve --token-file && join_has --token-file; then
  serve+=(--token-file "$token")
  join_auth=(--token-file "$token")
  spk_has_flag "$coordinator" serve --admin-token-file && serve+=(--admin-token-file "$admin_token")
fi
spk_start coordinator "$run_dir/coordinator.log" "${serve[@]}"
coordinator_pid=$SPK_LAST_PID
spk_wait_tcp 127.0.0.1 "$port" 60 "$coordinator_pid" ||
  { tail -n 20 "$run_dir/coordinator.log" >&2; spk_die "coordinator did not start listening on $url"; }
spk_log "coordinator listening on $url"

# Training scripts (docs/trainers.md): every worker registers the same ones.
trainers="${SPIKECV_TRAINERS:-}"
if [ -z "$trainers" ] && grep -Eq '^[[:space:]]*\[trainer\]' "$experiment"; then
  trainers="stbp-pytorch=$repo/examples/pytorch-stbp/train.py"
fi
trainer_flags=()
if [ -n "$trainers" ]; then
  join_has --trainer || spk_die "this worker build has no --trainer flag (SPIKECV_TRAINERS=$trainers)"
  # `.py` scripts run with the project's venv Python (PyTorch), unless told.
  if [ -z "${SPIKECV_PYTHON:-}" ] && [ -x "$repo/.venv/bin/python" ]; then
    export SPIKECV_PYTHON="$repo/.venv/bin/python"
  fi
  IFS=',' read -r -a trainer_list <<<"$trainers"
  for t in "${trainer_list[@]}"; do trainer_flags+=(--trainer "$t"); done
  spk_log "workers register trainer(s): $trainers"
fi

gpu_count="$(spk_gpu_count)"
threads="$(spk_cpu_threads "$workers")"
worker_pids=()
for ((w = 0; w < workers; w++)); do
  if [ -n "${SPIKECV_GPUS:-}" ]; then
    gpus="$SPIKECV_GPUS"
  elif [ "$gpu_count" -ge "$workers" ]; then
    gpus="$(seq "$w" "$workers" $((gpu_count - 1)) | paste -sd, -)"   # GPUs w, w+W, ...
  elif [ "$gpu_count" -gt 0 ]; then
    gpus=all                                                          # fewer GPUs than workers: share
  else
    gpus=cpu
  fi
  wdir="$run_dir/worker-$w"
  mkdir -p "$wdir"
  join=("$worker" join --coordinator "$url" --gpus "$gpus" --data "$data_dir" "${join_auth[@]}" "${trainer_flags[@]}")
  join_has --name && join+=(--name "local-$w")
  join_has --work-dir && join+=(--work-dir "$wdir")
  join_has --exit-when-done && join+=(--exit-when-done)
  OMP_NUM_THREADS="$threads" spk_start "worker $w ($gpus)" "$run_dir/worker-$w.log" "${join[@]}"
  worker_pids+=("$SPK_LAST_PID")
done

# 6. Wait for every job to reach a final state (bounded).
deadline=$(( $(date +%s) + timeout ))
last=""
while :; do
  if counts="$(spk_job_counts "$coordinator" "$state")"; then
    read -r total terminal succeeded failed pruned <<<"$counts"
    if [ "$counts" != "$last" ]; then
      spk_log "jobs: ${terminal}/${total} finished (${succeeded} succeeded, ${failed} failed, ${pruned} pruned)"
      last="$counts"
    fi
    [ "$total" -gt 0 ] && [ "$terminal" -eq "$total" ] && break
  fi
  kill -0 "$coordinator_pid" 2>/dev/null ||
    { tail -n 20 "$run_dir/coordinator.log" >&2; spk_die "the coordinator exited early (log: $run_dir/coordinator.log)"; }
  alive=0
  for pid in "${worker_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  if [ "$alive" -eq 0 ]; then
    # Workers that exit on their own (--exit-when-done) leave the last word to the DB.
    spk_job_counts "$coordinator" "$state" >/dev/null 2>&1 && sleep 1
    counts="$(spk_job_counts "$coordinator" "$state" || echo "0 0 0 0 0")"
    read -r total terminal succeeded failed pruned <<<"$counts"
    [ "$total" -gt 0 ] && [ "$terminal" -eq "$total" ] && break
    tail -n 20 "$run_dir"/worker-*.log >&2 || true
    spk_die "every worker exited with ${terminal}/${total} jobs finished (logs in $run_dir)"
  fi
  [ "$(date +%s)" -lt "$deadline" ] || spk_die "jobs not finished after ${timeout} s (SPIKECV_TIMEOUT)"
  sleep 3
done

spk_log "all ${total} jobs finished; stopping workers and coordinator"
spk_stop_all 60

# 7. Report.
"$coordinator" report --state "$state" --format csv >"$run_dir/report.csv"
"$coordinator" report --state "$state" --format json >"$run_dir/report.json"
"$coordinator" report --state "$state" --format md | tee "$run_dir/report.md"
"$coordinator" report --state "$state" --format md --out "$run_dir/report" >/dev/null ||
  spk_log "plots could not be written (the report above is complete)"
spk_log "report: $run_dir/report.md (csv beside it; plots in $run_dir/report/)"
# Done when every job succeeded or was pruned by a sweep (none failed or cancelled).
[ "$failed" -eq 0 ] && [ $((succeeded + pruned)) -eq "$total" ]
