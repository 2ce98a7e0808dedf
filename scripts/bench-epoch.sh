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
# Then a non-default network (BENCH_NETWORK, a TOML block list as in the
# experiment file's `[network] blocks = ...`; default: the max-pooling network
# of worker/tests/fixtures/network_golden.py, which fits 128 x 128 as is) is
# timed the same way: `worker train` with that [network], and the loop built
# from the same block list by network_golden.py's PyTorch builder. The last
# lines give, per network, worker and PyTorch (as is) samples/s and the ratio.
#
# The worker also runs the default network with `[training] precision =
# "bf16"` (convolutions and linear layers in bfloat16); its samples/s and the
# ratio to float32 are printed beside.
#
#   bash scripts/bench-epoch.sh            (after scripts/setup.sh)
# Environment: BENCH_RECORDINGS (4), BENCH_THREADS (all cores),
# BENCH_NETWORK (the block list), KEEP=1 keeps the scratch folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo build --release --quiet -p spikecv-worker -p spikecv-coordinator
bin="${CARGO_TARGET_DIR:-target}/release"
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
default_network='[
  { conv = 8, kernel = 5, stride = 2 },
  { pool = "max", size = 2 },
  { conv = 16, kernel = 3, padding = 1, lif = false },
  { pool = "max", size = 2 },
  { flatten = true },
  { linear = 19 },
]'
network="${BENCH_NETWORK:-$default_network}"
{
  cat "$dir/experiment.toml"
  printf '[network]\nblocks = %s\n' "$network"
} >"$dir/experiment-network.toml"

sed 's/^\[training\]$/[training]\nprecision = "bf16"/' "$dir/experiment.toml" >"$dir/experiment-bf16.toml"

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
  OMP_NUM_THREADS="$threads" "$bin/worker" "$@" train --config "${experiment:-$dir/experiment.toml}" \
    --variant whole --seed 0 --fold 0 --out "$dir/$run" >/dev/null 2>"$dir/$run.log"
  "$python" -c 'import json,sys
print(json.load(open(sys.argv[1]))["result"]["epochs"][0]["samples_per_second"])' "$dir/$run/metrics.json"
}
ours="$(worker run)"
ours_system="$(worker run-system --system-allocator)"
ours_bf16="$(experiment="$dir/experiment-bf16.toml" worker run-bf16)"

reference() { # further arguments go to reference_epoch.py; prints its JSON line
  "$python" worker/benches/reference_epoch.py --frames "$dir/frames" --batch 8 --threads "$threads" "$@"
}
field() { # $1: key, $2: a JSON object
  "$python" -c 'import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])' "$1" "$2"
}
as_is="$(field samples_per_second "$(reference)")"
tuned="$(field samples_per_second "$(GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 reference)")"

# The non-default network: the worker as is, the loop as is.
other_ours="$(experiment="$dir/experiment-network.toml" worker run-network)"
other="$(reference --experiment "$dir/experiment-network.toml")"
other_as_is="$(field samples_per_second "$other")"
other_name="$(field network "$other")"

"$python" - "$ours" "$ours_system" "$as_is" "$tuned" "$(ls "$dir/frames" | wc -l)" "$threads" \
  "$other_name" "$other_ours" "$other_as_is" "$ours_bf16" <<'PY'
import sys
ours, ours_system, as_is, tuned, samples, threads = (float(v) for v in sys.argv[1:7])
other_name, other_ours, other_as_is = sys.argv[7], float(sys.argv[8]), float(sys.argv[9])
ours_bf16 = float(sys.argv[10])
print(f"one epoch, T = 16, batch 8, {samples:.0f} training samples, {threads:.0f} threads")
print(f"worker train:                                {ours:8.2f} samples/s")
print(f"worker --system-allocator train:             {ours_system:8.2f} samples/s")
print(f"worker train, precision = bf16:              {ours_bf16:8.2f} samples/s  -> bf16/f32 {ours_bf16 / ours:.2f}x")
print(f"reference loop (PyTorch, as is):             {as_is:8.2f} samples/s  -> {ours / as_is:.2f}x")
print(f"reference loop, glibc keeping freed memory:  {tuned:8.2f} samples/s  -> {ours / tuned:.2f}x")
print("per network, worker train beside the PyTorch loop as is:")
for name, w, p in (("c20k3-p2a-c50k3-p2a-f200-f19 (default)", ours, as_is),
                   (other_name, other_ours, other_as_is)):
    print(f"  {name:40s} worker {w:8.2f} samples/s, PyTorch {p:8.2f} samples/s  -> {w / p:.2f}x")
PY
