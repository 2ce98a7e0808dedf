#!/usr/bin/env bash
# Installs what the benchmarks' baselines need on top of scripts/setup.sh:
# tonic (the event-camera library whose read+slice+bin pipeline
# `cargo bench -p spikecv-common --bench pipeline` runs beside ours). The
# training-step baseline needs only the venv's torch. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

TONIC_VERSION=1.7.0
if ! .venv/bin/python -c "import tonic, sys; sys.exit(0 if tonic.__version__ == '${TONIC_VERSION}' else 1)" 2>/dev/null; then
  echo "bench-setup: installing tonic==${TONIC_VERSION} into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "tonic==${TONIC_VERSION}"
fi
.venv/bin/python -c "import tonic.transforms" || { echo "bench-setup: tonic does not import" >&2; exit 1; }
