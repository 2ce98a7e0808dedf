#!/usr/bin/env bash
# GPU checks, for a machine with an NVIDIA GPU, from binaries built elsewhere.
#
#   bash scripts/gpu-check.sh prepare      # on the build machine: fills gpu-check/
#   bash scripts/gpu-check.sh run          # on the GPU machine, from the repository root
#
# `prepare` builds (release) the worker, the coordinator, the CUDA feature tests
# and the training-step benchmark, strips them into gpu-check/bin/, and writes a
# tiny synthetic data set to gpu-check/data/. `run` needs only a `python3` with
# PyTorch (its lib/ folder provides libtorch) and nvidia-smi. It prints:
#   1. the CUDA feature tests (worker/tests/cuda.rs);
#   2. the training-step benchmark on cuda:0 beside the reference-style PyTorch
#      loop on the same GPU (reference sizes, then a small overhead-bound shape);
#   3. a one-epoch job with 1, 2 and 4 jobs on the GPU (`--jobs-per-gpu`),
#      samples/s from the coordinator's report and GPU utilisation sampled with
#      nvidia-smi every 200 ms while it runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=gpu-check

prepare() {
  bash scripts/setup.sh
  # shellcheck source=scripts/env.sh
  source scripts/env.sh
  rm -rf "$out" && mkdir -p "$out/bin"
  cargo build --release -p spikecv-worker -p spikecv-coordinator
  local msg tests bench
  msg="$(cargo test --release -p spikecv-worker --features cuda-tests --test cuda --no-run --message-format=json)"
  tests="$(jq -r 'select(.executable != null and .target.name == "cuda") | .executable' <<<"$msg" | tail -1)"
  msg="$(cargo bench -p spikecv-worker --bench train_step --no-run --message-format=json)"
  bench="$(jq -r 'select(.executable != null and .target.name == "train_step") | .executable' <<<"$msg" | tail -1)"
  cp target/release/worker target/release/coordinator "$out/bin/"
  cp "$tests" "$out/bin/cuda-tests"
  cp "$bench" "$out/bin/train-step"
  strip "$out"/bin/*
  target/release/coordinator data synth --out "$out/data" --size tiny --recordings 12
  du -sh "$out"
}

run() {
  local lib
  lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHON=python3 BENCH_REFERENCE_SCRIPT="$PWD/worker/benches/reference_step.py"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'

  echo "== 1. CUDA feature tests"
  "$out/bin/cuda-tests"

  echo "== 2. training step on cuda:0 (reference sizes: batch 8, T = 50, 128x128)"
  BENCH_DEVICE=cuda:0 BENCH_ITERS=20 BENCH_WARMUP=3 "$out/bin/train-step"
  echo "== 2b. training step on cuda:0 (overhead-bound: batch 8, T = 8)"
  BENCH_DEVICE=cuda:0 BENCH_ITERS=50 BENCH_WARMUP=5 BENCH_STEPS=8 "$out/bin/train-step"

  echo "== 3. jobs per GPU"
  for jobs in 1 2 4; do
    one_run "$jobs"
  done
}

# One coordinator and one worker with `jobs` slots on GPU 0, 4 jobs of one
# epoch each (reference sizes, T = 50); prints samples/s and GPU utilisation.
one_run() {
  local jobs=$1 dir port smi
  dir="$(mktemp -d)"
  port=$((50100 + jobs))
  cat >"$dir/exp.toml" <<TOML
name = "gpu-check"
[data]
root = "$PWD/$out/data"
[protocol]
kind = "train-test"
folds = 4
seeds = [0]
variants = ["whole"]
[training]
epochs = 1
TOML
  "$out/bin/coordinator" serve --experiment "$dir/exp.toml" --state "$dir/state.db" \
    --listen "127.0.0.1:$port" 2>"$dir/coordinator.log" &
  local cpid=$!
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 >"$dir/smi.csv" &
  smi=$!
  local start end
  start=$(date +%s.%N)
  "$out/bin/worker" join --coordinator "http://127.0.0.1:$port" --gpus 0 --jobs-per-gpu "$jobs" \
    --data "$out/data" --work-dir "$dir/work" --exit-when-done 2>"$dir/worker.log" || {
    tail -n 20 "$dir/worker.log"
  }
  end=$(date +%s.%N)
  kill "$smi" "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  local samples
  samples="$(cat "$dir"/work/*/metrics.json 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read()
dec = json.JSONDecoder(); i = 0; total = 0.0
while i < len(text):
    text_i = text[i:].lstrip()
    if not text_i: break
    obj, n = dec.raw_decode(text_i); i = len(text) - len(text_i) + n
    epochs = obj.get("result", {}).get("epochs", [])
    total += sum(e.get("samples_per_second", 0.0) for e in epochs)
print(f"{total:.1f}")')"
  awk -F', ' -v jobs="$jobs" -v secs="$(echo "$end - $start" | bc)" -v sps="$samples" '
    { u += $1; n++; if ($2 > m) m = $2 }
    END { printf "jobs per GPU %d: %.1f s, training samples/s (sum over jobs) %s, GPU utilisation mean %.0f %% over %d samples, peak memory %d MiB\n",
          jobs, secs, sps, (n ? u / n : 0), n, m }' "$dir/smi.csv"
  rm -rf "$dir"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
