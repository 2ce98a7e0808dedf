# Sourced by the project's scripts after scripts/setup.sh: puts the project's
# virtual environment first on PATH, so torch-sys (LIBTORCH_USE_PYTORCH=1, set in
# .cargo/config.toml) asks the venv's Python where libtorch is. The venv's real
# path is used (a symlinked .venv is resolved), since the worker's rpath keeps it.
VIRTUAL_ENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.venv" && pwd -P)"
export VIRTUAL_ENV
export PATH="$VIRTUAL_ENV/bin:$PATH"
