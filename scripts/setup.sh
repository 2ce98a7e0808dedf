#!/usr/bin/env bash
# Installs what spikecv needs to build and test, when it is missing:
#   - the Rust components rustfmt and clippy;
#   - .venv/, a project-local Python virtual environment with PyTorch 2.11.0 from
#     PyPI (libtorch for the worker, about 4.6 GB the first time) and numpy.
# It is idempotent: a valid .venv is reused as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_VERSION=2.11.0

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      rustup component add "$component"
    fi
  done
fi

venv_ok() {
  [ -x .venv/bin/python ] && .venv/bin/python - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys
import numpy, torch
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
PY
}

if ! venv_ok; then
  echo "setup: creating .venv with torch==${TORCH_VERSION} (first time: a few minutes, ~4.6 GB)" >&2
  if [ ! -x .venv/bin/python ]; then
    rm -rf .venv
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION}" numpy
  venv_ok || { echo "setup: .venv has no working torch==${TORCH_VERSION}" >&2; exit 1; }
fi
