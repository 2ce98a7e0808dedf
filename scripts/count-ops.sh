#!/usr/bin/env bash
# Counts the operations one training step issues on the device code path
# (batch 8, T = 50, 128x128; the fused LIF kernels' C++ form standing in for
# the CUDA one) and on the tensor path, then compiles the CUDA form with NVRTC
# for sm_80 and sm_90. Needs no GPU. What is counted: worker/benches/device_ops.rs.
# Environment: BENCH_BATCH, BENCH_STEPS, BENCH_SIZE, BENCH_ARCHS, BENCH_VERBOSE=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo bench -q -p spikecv-worker --bench device_ops
