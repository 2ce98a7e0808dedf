#!/usr/bin/env bash
# Counts the operations one training step issues on the device code path
# (batch 8, T = 50, 128x128; the fused LIF kernels' C++ form standing in for
# the CUDA one) and on the tensor path: the step as train_epoch runs it, from
# the batch's gather out of a frame cache held as a tensor, its input and the
# host-to-device copies, to the spike tally, Adam (libtorch's foreach
# operations) and the epoch's sums. Prints beside the count a hand-kept table
# of the counted operations known to launch more than one device kernel, then
# compiles the CUDA form with NVRTC for sm_80 and sm_90. Needs no GPU. What is
# counted: worker/src/op_count/step.rs; worker/tests/op_count.rs asserts it.
# Environment: BENCH_BATCH, BENCH_STEPS, BENCH_SIZE, BENCH_ARCHS, BENCH_VERBOSE=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo bench -q -p spikecv-worker --bench device_ops
