#!/usr/bin/env bash
# GPU checks, for a machine with an NVIDIA GPU, from binaries built elsewhere.
#
#   bash scripts/gpu-check.sh prepare      # on the build machine: fills gpu-check/
#   bash scripts/gpu-check.sh run          # on the GPU machine, from the repository root
#   GPU_CHECK_DEVICE=cpu bash scripts/gpu-check.sh run    # the same flow on the CPU
#
# `prepare` builds (release) the worker, the coordinator, the CUDA feature tests
# (worker/tests/cuda.rs, worker/tests/cuda_slots.rs) and the training-step
# benchmark, strips them into gpu-check/bin/ and writes a small synthetic data
# set to gpu-check/data/: what a GPU machine without a Rust toolchain needs,
# besides the tracked files. It fails if gpu-check/ holds more than 60 MiB.
#
# `run` needs a `python3` with PyTorch (`$PYTHON` to name another): libtorch is
# taken from its torch/lib, NVRTC from beside it (or `$SPIKECV_NVRTC`). Every
# section runs under its own `timeout`; the timeouts add up to 595 s, a little
# over the budget of GPU_CHECK_BUDGET_S seconds (570: the run fits in 10
# minutes), so when every section used its whole time the last would be dropped.
# A section that fails is reported with its log's tail and the next one runs.
# In the order they run, which is their order of importance:
#
#   env              (15 s) the GPU, torch and NVRTC the binaries will use
#   step-tensor      (45 s) training-step samples/s with the tensor path: the
#                    baseline, in a test of its own
#   self-check       (30 s) the fused LIF kernels' first-use check on the device
#   step-fused       (40 s) training-step samples/s with the fused kernels, and
#                    their ratio to the baseline
#   step-precision   (45 s) the fused kernels' training step in float32 with
#                    TF32 convolutions off and on, and in bfloat16 (`[training]
#                    precision = "bf16"`): samples/s each, bf16/f32 ratio
#   step-vs-cpu      (35 s) one f32 training pass, fused kernels on the device
#                    (TF32 off) against the CPU kernels on the CPU: equal
#                    rates, loss and gradients within cuda.rs's tolerances
#   fused-vs-tensor  (35 s) the same pass, fused kernels against the tensor
#                    path, both on the device
#   jobs-1-tensor    (55 s) coordinator and worker, one job at a time,
#                    `--lif-kernels tensor`: samples/s per job
#   jobs-1/2/4       (50, 55, 60 s) the same with the fused kernels (auto),
#                    1, 2 and 4 jobs on the GPU: samples/s per job from the
#                    epochs after the first, the GPU's total, nvidia-smi
#                    utilisation and peak memory
#   cuda-slots       (35 s) worker/tests/cuda_slots.rs: streams, pinned
#                    staging, background checkpoints, free memory, OOM
#   cuda-tests       (35 s) the other tests of worker/tests/cuda.rs
#   vs-pytorch       (50 s) the train_step benchmark on the device beside the
#                    reference-style PyTorch loop on the same device
#   warnings         (10 s) whether the workers' stderr has a warning per batch
#
# When time runs short, sections are dropped from the end of that list: a
# section starts only with 30 s of the budget left, and gets at most what is
# left; so warnings go first, then vs-pytorch, cuda-tests, cuda-slots, jobs-4,
# jobs-2, jobs-1, jobs-1-tensor, fused-vs-tensor, step-vs-cpu, step-precision,
# step-fused, self-check, and the tensor baseline last.
#
# Logs: one <section>.log each and summary.txt (every section's status, time
# and key figure, rewritten after each section, so a run cut short keeps what
# it did) go to GPU_CHECK_LOGS, else to $OUT/gpu-check-logs when $OUT is set
# (a GPU machine reached remotely may return only that folder), else to
# gpu-check/logs. The jobs' work folders (weights, checkpoints) stay in
# gpu-check/work, never under $OUT.
#
# GPU_CHECK_DEVICE=cpu runs the same sections on the CPU with tiny sizes (the
# fused kernels in their C++ form; the first-use check, the CUDA-only tests
# and nvidia-smi figures skipped), so that the whole flow can be tried on a
# machine without a GPU. GPU_CHECK_BUDGET_S changes the budget.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
self="$PWD/scripts/gpu-check.sh"
out="$PWD/gpu-check"

prepare() (
  set -e
  bash scripts/setup.sh
  # shellcheck source=scripts/env.sh disable=SC1091
  source scripts/env.sh
  rm -rf "$out" && mkdir -p "$out/bin"
  cargo build --release -p spikecv-worker -p spikecv-coordinator
  local msg tests slots bench
  msg="$(cargo test --release -p spikecv-worker --features cuda-tests --test cuda --test cuda_slots --no-run --message-format=json)"
  tests="$(jq -r 'select(.executable != null and .target.name == "cuda") | .executable' <<<"$msg" | tail -1)"
  slots="$(jq -r 'select(.executable != null and .target.name == "cuda_slots") | .executable' <<<"$msg" | tail -1)"
  msg="$(cargo bench -p spikecv-worker --bench train_step --no-run --message-format=json)"
  bench="$(jq -r 'select(.executable != null and .target.name == "train_step") | .executable' <<<"$msg" | tail -1)"
  local release="${CARGO_TARGET_DIR:-target}/release"
  cp "$release/worker" "$release/coordinator" "$out/bin/"
  cp "$tests" "$out/bin/cuda-tests"
  cp "$slots" "$out/bin/cuda-slots"
  cp "$bench" "$out/bin/train-step"
  strip "$out"/bin/*
  # Every recording of the tiny synthetic set: 59 x 19 gestures, a few MB.
  "$release/coordinator" data synth --out "$out/data" --size tiny
  du -sh "$out"/bin/* "$out/data"
  local mib
  mib=$(($(du -sk "$out" | cut -f1) / 1024))
  echo "gpu-check/: ${mib} MiB to carry (at most 60 MiB)"
  if ((mib > 60)); then
    echo "error: gpu-check/ holds ${mib} MiB, over 60 MiB" >&2
    exit 1
  fi
)

# --- settings of `run` (exported: each section is this script run again) ---

setup_run() {
  export GPU_CHECK_DEVICE="${GPU_CHECK_DEVICE:-cuda:0}"
  export PYTHON="${PYTHON:-python3}"
  export bin="$out/bin" data="$out/data"
  local default_logs="$out/logs"
  [[ -n ${OUT:-} ]] && default_logs="$OUT/gpu-check-logs"
  export logs="${GPU_CHECK_LOGS:-$default_logs}" work_root="$out/work"
  mkdir -p "$logs" "$work_root" && rm -f "$logs"/*.log "$logs"/*.key "$logs"/*.key.logs "$logs"/summary.txt
  rm -rf "$logs"/jobs-* "$work_root"/jobs-*
  if [[ $GPU_CHECK_DEVICE == cpu ]]; then
    export cpu_mode=1 gpus=cpu
    # Tiny sizes: 32x32 frames (downscale 4), T = 8, two epochs.
    export speed_batch=2 speed_steps=8 speed_size=32 speed_iters=3 speed_warmup=1
    export bench_batch=2 bench_steps=8 bench_iters=2 bench_warmup=1
    export job_downscale=4 job_steps=8 job_epochs=2
  else
    export cpu_mode=0 gpus="${GPU_CHECK_DEVICE#cuda:}"
    # Reference sizes: batch 8, T = 50, 128x128.
    export speed_batch=8 speed_steps=50 speed_size=128 speed_iters=20 speed_warmup=3
    export bench_batch=8 bench_steps=50 bench_iters=20 bench_warmup=3
    export job_downscale=1 job_steps=50 job_epochs=3
  fi
  local lib
  if lib="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"; then
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    echo "warning: $PYTHON has no torch; the binaries will look for libtorch where they were built" >&2
  fi
  export BENCH_REFERENCE_SCRIPT="$PWD/worker/benches/reference_step.py"
}

# --- helpers used inside sections ---

# Prints its arguments and appends them to the section's key file, whose
# lines are shown when the section ends; the last is its figure in the
# summary table.
key() {
  printf '%s\n' "$*"
  printf '%s\n' "$*" >>"$SECTION_KEY"
}

# key() for each line of standard input.
keys() {
  local line
  while IFS= read -r line; do key "$line"; done
}

# Samples GPU utilisation and memory every 200 ms into $1 (no-op on the CPU).
smi_pid=""
smi_start() {
  ((cpu_mode)) && return 0
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used \
    --format=csv,noheader,nounits -lms 200 >"$1" 2>/dev/null &
  smi_pid=$!
}
smi_stop() {
  [[ -n $smi_pid ]] || return 0
  kill "$smi_pid" 2>/dev/null
  wait "$smi_pid" 2>/dev/null
  smi_pid=""
}
# "util mean X % over N samples, peak memory.used M MiB" of a sample file.
smi_summary() {
  ((cpu_mode)) && { echo "nvidia-smi: n/a on the CPU"; return 0; }
  awk -F', ' '{ u += $2; n++; if ($3 > m) m = $3 }
    END { if (n) printf "GPU util mean %.0f %% over %d samples, peak memory.used %d MiB (whole GPU)\n", u / n, n, m;
          else print "nvidia-smi: no samples" }' "$1"
}

# What a failed test said: the message of its first panic, else the first
# error line.
failure_line() {
  local line
  line="$(grep -m1 -A1 'panicked at' "$1" | tail -n 1)"
  [[ -n $line ]] || line="$(grep -m1 -iE 'error' "$1")"
  printf '%s\n' "${line:-no message}"
}

# libtest's per-test lines and its result line, from a test run's log.
test_lines() {
  grep -E '^test .* \.\.\. |^test result:' "$1" || true
}

# Runs the CUDA feature tests with `args`, keeps the output in $1, with the
# tests' own lines apart from libtest's `test NAME ... ` prefix (`--nocapture`
# prints them after it).
cuda_tests() {
  local log=$1 rc
  shift
  "$bin/cuda-tests" --test-threads=1 --nocapture "$@" 2>&1 | tee "$log.raw"
  rc=${PIPESTATUS[0]}
  sed -E '/^test [^ ]+ \.\.\. (ok|FAILED|ignored)$/!s/^(test [^ ]+ \.\.\. )(.+)$/\1\n\2/' "$log.raw" >"$log"
  return "$rc"
}

# --- sections: each a function, run by `section` under `timeout` ---

s_env() {
  local rc=0
  if ((cpu_mode)); then
    echo "device: cpu ($(nproc) cores), tiny sizes"
  else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || rc=1
  fi
  "$PYTHON" - <<'PY' || rc=1
import glob, os, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
site = os.path.dirname(os.path.dirname(torch.__file__))
nvrtc = os.environ.get("SPIKECV_NVRTC") or os.path.join(site, "nvidia/cu13/lib/libnvrtc.so.13")
print("NVRTC:", nvrtc, "(present)" if os.path.exists(nvrtc) else "(missing)")
PY
  "$bin/worker" --version || rc=1
  ls "$data" >/dev/null || rc=1
  local name=cpu
  ((cpu_mode)) || name="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  key "$name, torch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo missing)"
  return "$rc"
}

s_self_check() {
  local log="$logs/self-check.tests"
  cuda_tests "$log" --exact fused_kernels_pass_their_first_use_check
  local rc=$?
  local line
  line="$(grep -m1 '^fused LIF self-check' "$log")"
  [[ -n $line ]] || line="failed: $(grep -m1 'fused LIF kernels not used' "$log" || failure_line "$log")"
  key "$line"
  ((rc == 0)) && [[ $line == *skipped* ]] && return 77
  return "$rc"
}

s_step_vs_cpu() {
  local log="$logs/step-vs-cpu.tests"
  cuda_tests "$log" --exact fused_training_pass_on_the_device_matches_the_cpu
  local rc=$?
  local line
  line="$(grep -m1 -E '^fused on .* vs CPU kernels' "$log" | sed 's/^[^:]*: //')"
  key "${line:-failed: $(failure_line "$log")}"
  return "$rc"
}

s_fused_vs_tensor() {
  local log="$logs/fused-vs-tensor.tests"
  cuda_tests "$log" --exact fused_training_pass_matches_the_tensor_path_on_the_device
  local rc=$?
  local line
  line="$(grep -m1 -E '^fused vs tensor path' "$log" | sed 's/^[^:]*: //')"
  key "${line:-failed: $(failure_line "$log")}"
  return "$rc"
}

s_cuda_tests() {
  if ((cpu_mode)); then
    key "skipped on the CPU: gpu_steps_match_cpu, counts_uploaded_without_blocking_give_the_float_input, staged_uploads_on_the_copy_stream_arrive_whole_and_in_order need CUDA"
    return 77
  fi
  local log="$logs/cuda-tests.tests"
  cuda_tests "$log" --skip fused_
  local rc=$?
  test_lines "$log"
  key "$(grep -m1 '^test result:' "$log" || echo 'no test result line')"
  return "$rc"
}

# The training-step speed of one LIF path, from its own test: `name` is the
# path (tensor, fused), `test` the test that times it.
step_speed() {
  local name=$1 test=$2 log="$logs/step-$1.tests" smi="$logs/step-$1.smi.csv"
  smi_start "$smi"
  SPEED_BATCH=$speed_batch SPEED_STEPS=$speed_steps SPEED_SIZE=$speed_size \
    SPEED_ITERS=$speed_iters SPEED_WARMUP=$speed_warmup GPU_CHECK_DEVICE="$GPU_CHECK_DEVICE" \
    cuda_tests "$log" --ignored --exact "$test"
  local rc=$?
  smi_stop
  grep -E '^step ' "$log" | keys
  smi_summary "$smi" | keys
  ((rc == 0)) || {
    key "failed: $(failure_line "$log")"
    return "$rc"
  }
  local rate tensor figure
  rate="$(sed -n "s/^step $name: \([0-9.]*\) samples\/s.*/\1/p" "$log")"
  figure="$name ${rate:-?} samples/s (batch $speed_batch, T $speed_steps, ${speed_size}x$speed_size)"
  if [[ $name != tensor ]]; then
    tensor="$(sed -n 's/^step tensor: \([0-9.]*\) samples\/s.*/\1/p' "$logs/step-tensor.tests" 2>/dev/null)"
    if [[ -n $tensor && -n $rate ]]; then
      figure+=", $(awk -v f="$rate" -v t="$tensor" 'BEGIN { printf "%.2fx", f / t }') the tensor path's $tensor"
    else
      figure+=", no tensor baseline to compare with"
    fi
  fi
  key "$figure"
  return "$rc"
}

# The fused kernels' step in float32 (TF32 off and on) and bfloat16.
s_step_precisions() {
  local log="$logs/step-precision.tests"
  SPEED_BATCH=$speed_batch SPEED_STEPS=$speed_steps SPEED_SIZE=$speed_size \
    SPEED_ITERS=$speed_iters SPEED_WARMUP=$speed_warmup GPU_CHECK_DEVICE="$GPU_CHECK_DEVICE" \
    cuda_tests "$log" --ignored --exact training_step_speed_precisions
  local rc=$?
  grep -E '^step ' "$log" | keys
  ((rc == 0)) || {
    key "failed: $(failure_line "$log")"
    return "$rc"
  }
  key "$(grep -m1 '^precision:' "$log" || echo 'no precision line')"
}

s_step_tensor() { step_speed tensor training_step_speed_tensor_path; }
s_step_fused() { step_speed fused training_step_speed_fused; }

s_cuda_slots() {
  if ((cpu_mode)); then
    key "skipped on the CPU: every test of cuda_slots.rs needs CUDA"
    return 77
  fi
  local log="$logs/cuda-slots.tests" rc
  "$bin/cuda-slots" --test-threads=1 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  test_lines "$log"
  key "$(grep -m1 '^test result:' "$log" || echo 'no test result line')"
  return "$rc"
}

s_vs_pytorch() {
  local log="$logs/vs-pytorch.bench" smi="$logs/vs-pytorch.smi.csv"
  smi_start "$smi"
  BENCH_DEVICE="$GPU_CHECK_DEVICE" BENCH_BATCH=$bench_batch BENCH_STEPS=$bench_steps \
    BENCH_ITERS=$bench_iters BENCH_WARMUP=$bench_warmup BENCH_SKIP_AUTOGRAD=1 \
    "$bin/train-step" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  smi_stop
  grep -E '^spikecv|^reference|^speed-up|^  PyTorch loop' "$log" | keys
  smi_summary "$smi" | keys
  ((rc == 0)) || {
    key "failed: $(failure_line "$log")"
    return "$rc"
  }
  local ours theirs speedup
  ours="$(sed -n 's/^spikecv (LIF outside autograd[^:]*: *\([0-9.]*\) samples.*/\1/p' "$log")"
  theirs="$(sed -n 's/^reference (PyTorch, loop over T): *\([0-9.]*\) samples.*/\1/p' "$log")"
  speedup="$(sed -n 's/^speed-up: //p' "$log")"
  if [[ -z $theirs ]]; then
    key "spikecv ${ours:-?} samples/s; the PyTorch loop gave no figure (see the log)"
    return 1
  fi
  key "spikecv ${ours:-?} samples/s (auto kernels), PyTorch loop $theirs samples/s: ${speedup:-?} (target >= 10x on a GPU)"
  return "$rc"
}

# A free TCP port on 127.0.0.1 (only this script's sections use ports here,
# one section at a time).
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One coordinator and one worker with `jobs` slots on the device, as many jobs
# as slots (folds = jobs, at least 2: with one slot, two jobs one after the
# other), `job_epochs` epochs each, LIF kernels `kernels`.
s_jobs() {
  local jobs=$1 kernels=$2
  local dir="$logs/jobs-$jobs-$kernels" wdir="$work_root/jobs-$jobs-$kernels"
  local folds=$((jobs < 2 ? 2 : jobs)) port cpid rc
  mkdir -p "$dir" "$wdir"
  echo "$dir/worker.log" >>"$SECTION_KEY.logs"
  port="$(free_port)" || return 1
  cat >"$wdir/exp.toml" <<TOML
name = "gpu-check-$jobs-$kernels"
[data]
root = "$data"
downscale = $job_downscale
[protocol]
kind = "train-test"
folds = $folds
seeds = [0]
variants = ["whole"]
max_attempts = 1
[simulation]
steps = $job_steps
[training]
epochs = $job_epochs
test_steps = $job_steps
checkpoint_every = 0
TOML
  key "experiment: $folds jobs of $job_epochs epochs, T $job_steps, downscale $job_downscale; $jobs slot(s); --lif-kernels $kernels"
  cp "$wdir/exp.toml" "$dir/exp.toml"
  "$bin/coordinator" serve --experiment "$wdir/exp.toml" --state "$wdir/state.db" \
    --listen "127.0.0.1:$port" >"$dir/coordinator.log" 2>&1 &
  cpid=$!
  smi_start "$dir/smi.csv"
  local t0 t1
  t0=$(date +%s.%N)
  "$bin/worker" --lif-kernels "$kernels" join --coordinator "http://127.0.0.1:$port" \
    --gpus "$gpus" --jobs-per-gpu "$jobs" --data "$data" --work-dir "$wdir/work" \
    --max-backoff-seconds 1 --exit-when-done >"$dir/worker.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  smi_stop
  kill "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
  key "worker join: exit status $rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  if ((rc != 0)); then
    echo "--- worker.log (tail)"
    tail -n 30 "$dir/worker.log"
    echo "--- coordinator.log (tail)"
    tail -n 15 "$dir/coordinator.log"
  fi
  if ((cpu_mode)); then
    key "first-use check: n/a on the CPU"
  else
    key "$(grep -m1 'fused LIF kernels' "$dir/worker.log" || echo "first-use check: no line in the worker's log")"
  fi
  local smi=""
  ((cpu_mode)) || smi="$dir/smi.csv"
  "$PYTHON" - "$wdir" "$jobs" "$folds" "$smi" <<'PY' >"$dir/analysis.txt"
import glob, json, math, os, sys
from datetime import datetime

folder, slots, expected, smi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def epoch_spans(metrics_path, epochs):
    """[start, end] wall time of each epoch, counted back from the time the
    job wrote metrics.json (its last act) through the epochs' own durations.
    The TensorBoard files are not parsed here: only TensorBoard's reader reads
    them (worker/tests/tensorboard_readback.rs), and this machine lacks it."""
    end = os.path.getmtime(metrics_path)
    spans = {}
    for e in reversed(epochs):
        spans[e["epoch"]] = (end - e["epoch_seconds"], end)
        end -= e["epoch_seconds"]
    return spans

jobs = []
for metrics in sorted(glob.glob(os.path.join(folder, "work", "*", "metrics.json"))):
    m = json.load(open(metrics))
    r = m["result"]
    per_epoch = len(m["train"]) * len(r["confusion"])
    by_epoch = epoch_spans(metrics, r["epochs"])
    later = [e for e in r["epochs"] if e["epoch"] >= 2]
    job = {"name": os.path.basename(os.path.dirname(metrics)), "device": m["device"],
           "epochs": len(r["epochs"]), "per_epoch": per_epoch}
    if r["epochs"]:
        job["first"] = r["epochs"][0]["samples_per_second"]
    if later and all(e["samples_per_second"] > 0 for e in later):
        # Samples over training seconds of epochs 2.. (the worker's rate is
        # training samples over training time, evaluation excluded).
        job["rate"] = len(later) * per_epoch / sum(per_epoch / e["samples_per_second"] for e in later)
        spans = [by_epoch[e["epoch"]] for e in later]
        if len(spans) == len(later):
            job["spans"] = spans
            job["window"] = (min(s for s, _ in spans), max(t for _, t in spans))
    jobs.append(job)

print(f"{len(jobs)} of {expected} jobs left metrics.json")
for j in jobs:
    line = f"  {j['name']}: {j['device']}, {j['epochs']} epochs of {j['per_epoch']} training samples"
    if "rate" in j:
        line += f", {j['rate']:.1f} samples/s over epochs 2..{j['epochs']} (epoch 1: {j['first']:.1f})"
    else:
        line += ", no rate (fewer than 2 epochs)"
    print(line)
rated = [j for j in jobs if "rate" in j]
key = "no job with 2 or more epochs"
status = 1
if rated and len(jobs) == expected:
    status = 0
    per_job = sum(j["rate"] for j in rated) / len(rated)
    timed = [j for j in rated if "window" in j]
    if slots == 1 or len(rated) == 1:
        total, what = per_job, "one job at a time: the device total is the per-job rate"
    elif len(timed) == len(rated):
        # The measured epochs of every job overlap [start, end]: the GPU's
        # total is jobs x rate only if they overlap almost entirely.
        start = max(j["window"][0] for j in timed)
        end = min(j["window"][1] for j in timed)
        common = max(0.0, end - start)
        share = min(common / (j["window"][1] - j["window"][0]) for j in timed)
        if share >= 0.9:
            total = sum(j["rate"] for j in timed)
            what = f"sum of the {len(timed)} jobs' rates: their measured epochs ran together ({share:.0%} of each overlapped all others)"
        else:
            first = min(j["window"][0] for j in timed)
            last = max(j["window"][1] for j in timed)
            samples = sum(len(j["spans"]) * j["per_epoch"] for j in timed)
            total = samples / (last - first)
            what = (f"jobs overlapped only {share:.0%}: the total is the training samples of the measured epochs "
                    f"over their wall time ({last - first:.1f} s, evaluation included), not jobs x rate")
    else:
        total, what = None, "no epoch timestamps (TensorBoard files): no device total"
    print(f"per job: {per_job:.1f} samples/s (mean over {len(rated)} jobs, epochs after the first)")
    if total is not None:
        print(f"device total: {total:.1f} samples/s ({what})")
    else:
        print(f"device total: {what}")
    key = f"per job {per_job:.1f} samples/s, device total " + (f"{total:.1f}" if total is not None else "n/a")
    key += " (jobs x rate)" if total is not None and what.startswith("sum") else ""
    key += " (samples/wall time)" if total is not None and what.startswith("jobs overlapped") else ""
    if smi:
        rows = []
        for line in open(smi):
            parts = [p.strip() for p in line.split(",")]
            try:
                t = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
                rows.append((t, float(parts[1]), float(parts[2])))
            except (ValueError, IndexError):
                pass
        spans = [s for j in timed for s in j.get("spans", [])]
        inside = [u for t, u, _ in rows if any(a <= t <= b for a, b in spans)]
        if rows:
            peak = max(mem for _, _, mem in rows)
            whole = sum(u for _, u, _ in rows) / len(rows)
            during = f"{sum(inside) / len(inside):.0f} %" if inside else "n/a"
            print(f"nvidia-smi: util {during} during the measured epochs ({len(inside)} samples), "
                  f"{whole:.0f} % over the whole run ({len(rows)} samples); peak memory.used {peak:.0f} MiB (whole GPU)")
            key += f", util {during}, peak {peak:.0f} MiB"
        else:
            print("nvidia-smi: no samples")
            key += ", no nvidia-smi samples"
print("KEY", key)
sys.exit(status)
PY
  local arc=$?
  grep -v '^KEY ' "$dir/analysis.txt" | keys
  # Stderr lines that look like warnings (libtorch's, tracing's WARN); the
  # warnings section looks at them against the batches run.
  key "stderr: $(wc -l <"$dir/worker.log") lines, $(grep -ciE 'warn|deprecat' "$dir/worker.log") warning lines"
  key "$(sed -n 's/^KEY //p' "$dir/analysis.txt")"
  ((rc == 0 && arc == 0))
}

# Whether any warning is printed per batch: the workers' stderr of every jobs
# section, each warning line (digits blanked) counted against the training
# batches those workers ran.
s_warnings() {
  local logs_found=("$logs"/jobs-*/worker.log)
  if [[ ! -e ${logs_found[0]} ]]; then
    key "no worker log: no jobs section ran"
    return 1
  fi
  local report="$logs/warnings.txt"
  "$PYTHON" - "$logs" "$work_root" <<'PY' >"$report"
import collections, glob, json, math, os, re, sys
logs, work_root = sys.argv[1], sys.argv[2]
lines = warn = batches = 0
repeats = collections.Counter()
for log in sorted(glob.glob(os.path.join(logs, "jobs-*", "worker.log"))):
    run = os.path.join(work_root, os.path.basename(os.path.dirname(log)))
    batch = 8
    for line in open(os.path.join(run, "exp.toml")):
        if line.startswith("batch"):
            batch = int(line.split("=")[1])
    for metrics in glob.glob(os.path.join(run, "work", "*", "metrics.json")):
        m = json.load(open(metrics))
        per_epoch = len(m["train"]) * len(m["result"]["confusion"])
        batches += len(m["result"]["epochs"]) * math.ceil(per_epoch / batch)
    for line in open(log, errors="replace"):
        lines += 1
        if re.search(r"warn|deprecat", line, re.I):
            warn += 1
            repeats[re.sub(r"[0-9]+", "#", re.sub(r"^\S+\s+", "", line.strip()))[:160]] += 1
print(f"{lines} stderr lines, {warn} warning lines, over {batches} training batches")
for text, count in repeats.most_common(5):
    print(f"  {count}x {text}")
worst = repeats.most_common(1)[0][1] if repeats else 0
per_batch = batches > 0 and worst >= batches / 2
verdict = "a warning about once per batch" if per_batch else "no warning per batch"
if batches == 0:
    verdict = "no training batch ran: cannot tell"
print(f"KEY {warn} warning lines in {lines} stderr lines over {batches} batches: {verdict}")
sys.exit(1 if per_batch or batches == 0 else 0)
PY
  local rc=$?
  grep -v '^KEY ' "$report" | keys
  key "$(sed -n 's/^KEY //p' "$report")"
  return "$rc"
}

# --- the runner ---

results=()

# section NAME TIMEOUT FUNCTION [ARGS...]: runs this script's FUNCTION under
# `timeout` (at most the budget left), its output to $logs/NAME.log; records
# pass, FAILED, TIMEOUT, skipped (exit 77) or "not started".
section() {
  local name=$1 limit=$2
  shift 2
  local log="$logs/$name.log" keyfile="$logs/$name.key" left t0 rc status figure
  left=$((deadline - $(date +%s)))
  if ((left < 30)); then
    printf '\n== %s: not started (%d s of the %d s budget left)\n' "$name" "$left" "$budget"
    results+=("$name|not started|0|budget spent")
    write_summary
    return 0
  fi
  ((limit > left)) && limit=$left
  printf '\n== %s (timeout %d s)\n' "$name" "$limit"
  t0=$(date +%s)
  SECTION_KEY="$keyfile" timeout -k 10 "$limit" bash "$self" _section "$@" >"$log" 2>&1
  rc=$?
  case $rc in
    0) status=pass ;;
    77) status=skipped ;;
    124 | 137) status=TIMEOUT ;;
    *) status=FAILED ;;
  esac
  figure="$(tail -n 1 "$keyfile" 2>/dev/null)"
  if [[ $status == pass || $status == skipped ]]; then
    grep -vE '^KEY ' "$keyfile" 2>/dev/null
  else
    [[ $status == TIMEOUT ]] && figure="timed out after $limit s${figure:+; $figure}"
    echo "$status (exit $rc); last lines of $log:"
    tail -n 25 "$log" | sed 's/^/  | /'
    # Logs a section names besides its own (a worker's).
    local more
    while IFS= read -r more; do
      echo "last lines of $more:"
      tail -n 15 "$more" | sed 's/^/  | /'
    done < <(cat "$keyfile.logs" 2>/dev/null)
    [[ -n $figure ]] || figure="exit $rc: $(grep -m1 -iE 'error|panicked|failed' "$log" | cut -c1-120)"
  fi
  results+=("$name|$status|$(($(date +%s) - t0))|$figure")
  write_summary
}

run() {
  setup_run
  budget="${GPU_CHECK_BUDGET_S:-570}"
  start=$(date +%s)
  deadline=$((start + budget))
  echo "gpu-check run on $GPU_CHECK_DEVICE: budget $budget s, logs in $logs"

  section env 15 s_env
  section step-tensor 45 s_step_tensor
  section self-check 30 s_self_check
  section step-fused 40 s_step_fused
  section step-precision 45 s_step_precisions
  section step-vs-cpu 35 s_step_vs_cpu
  section fused-vs-tensor 35 s_fused_vs_tensor
  section jobs-1-tensor 55 s_jobs 1 tensor
  section jobs-1 50 s_jobs 1 auto
  section jobs-2 55 s_jobs 2 auto
  section jobs-4 60 s_jobs 4 auto
  section cuda-slots 35 s_cuda_slots
  section cuda-tests 35 s_cuda_tests
  section vs-pytorch 50 s_vs_pytorch
  section warnings 10 s_warnings

  write_summary final
  cat "$logs/summary.txt"
  local row status failed=0
  for row in "${results[@]}"; do
    IFS='|' read -r _ status _ _ <<<"$row"
    [[ $status == pass || $status == skipped ]] || failed=1
  done
  return "$failed"
}

# Writes summary.txt from the sections run so far (`final` once all ran).
write_summary() {
  local row name status secs figure summary="$logs/summary.txt"
  {
    printf '\nsummary (%s, %d s in all, budget %d s)\n' "$GPU_CHECK_DEVICE" "$(($(date +%s) - start))" "$budget"
    printf '%-16s %-12s %5s  %s\n' section status secs "key figure"
    for row in "${results[@]}"; do
      IFS='|' read -r name status secs figure <<<"$row"
      printf '%-16s %-12s %5s  %s\n' "$name" "$status" "$secs" "$figure"
    done
    [[ ${1:-} == final ]] || echo "(run in progress: the sections after these have not ended yet)"
    cat <<'NOTE'
per job: training samples/s over the epochs after the first (evaluation excluded).
device total: jobs x rate only where the jobs' measured epochs overlapped >= 90 %;
otherwise the training samples over the wall time of the measured epochs (said so).
NOTE
  } >"$summary.tmp" && mv "$summary.tmp" "$summary"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  _section)
    shift
    "$@"
    ;;
  *)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
