#!/usr/bin/env bash
# One training epoch at T = 16, batch 8 on the CPU: `worker train` beside the
# reference-style PyTorch loop (worker/benches/reference_epoch.py) on the same
# samples, in one run. The data set is the synthetic one cut to 4 recordings;
# fold 0 of seed 0 trains on 3 of them (57 samples), whose frames
# `coordinator data frames` writes for the loop. The worker runs twice: as is
# (its host heap, worker/src/allocator.rs) and with `--system-allocator`. The
# loop runs twice: as users run it, and with glibc told to keep freed memory
# (GLIBC_TUNABLES), the allocator help a PyTorch user can get. Prints
# samples/s of each and the ratios.
#
#   bash scripts/bench-epoch.sh            (after scripts/setup.sh)
# Environment: BENCH_RECORDINGS (4), BENCH_THREADS (all cores), KEEP=1 keeps
# the scratch folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo build --release --quiet -p spikecv-worker -p spikecv-coordinator
bin=target/release
python=.venv/bin/python
threads="${BENCH_THREADS:-$(nproc)}"
dir="$(mktemp -d)"
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$dir"' EXIT; fi

"$bin/coordinator" data synth --out "$dir/data" --size tiny --recordings "${BENCH_RECORDINGS:-4}" >/dev/null
cat >"$dir/experiment.toml" <<TOML
name = "epoch-bench"
[data]
root = "$dir/data"
[protocol]
kind = "train-test"
folds = 4
seeds = [0]
variants = ["whole"]
[simulation]
steps = 16
[training]
batch = 8
test_batch = 32
epochs = 1
test_steps = 16
TOML

# The training samples of fold 0: every class of each training recording.
samples="$("$bin/coordinator" plan --experiment "$dir/experiment.toml" --json |
  "$python" -c 'import json,sys
job = next(j for j in json.load(sys.stdin) if j["fold"] == 0)
print(",".join(f"{r}_{c:02d}" for r in job["train"] for c in range(19)))')"
"$bin/coordinator" data frames --data "$dir/data" --config "$dir/experiment.toml" \
  --sample "$samples" --out "$dir/frames" >/dev/null

worker() { # $1: run folder; further arguments go to `worker` first
  local run="$1"
  shift
  OMP_NUM_THREADS="$threads" "$bin/worker" "$@" train --config "$dir/experiment.toml" \
    --variant whole --seed 0 --fold 0 --out "$dir/$run" >/dev/null 2>"$dir/$run.log"
  "$python" -c 'import json,sys
print(json.load(open(sys.argv[1]))["result"]["epochs"][0]["samples_per_second"])' "$dir/$run/metrics.json"
}
ours="$(worker run)"
ours_system="$(worker run-system --system-allocator)"

reference() {
  "$python" worker/benches/reference_epoch.py --frames "$dir/frames" --batch 8 --threads "$threads" |
    "$python" -c 'import json,sys; print(json.load(sys.stdin)["samples_per_second"])'
}
as_is="$(reference)"
tuned="$(GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 reference)"

"$python" - "$ours" "$ours_system" "$as_is" "$tuned" "$(ls "$dir/frames" | wc -l)" "$threads" <<'PY'
import sys
ours, ours_system, as_is, tuned, samples, threads = (float(v) for v in sys.argv[1:])
print(f"one epoch, T = 16, batch 8, {samples:.0f} training samples, {threads:.0f} threads")
print(f"worker train:                                {ours:8.2f} samples/s")
print(f"worker --system-allocator train:             {ours_system:8.2f} samples/s")
print(f"reference loop (PyTorch, as is):             {as_is:8.2f} samples/s  -> {ours / as_is:.2f}x")
print(f"reference loop, glibc keeping freed memory:  {tuned:8.2f} samples/s  -> {ours / tuned:.2f}x")
PY
