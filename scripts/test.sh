#!/usr/bin/env bash
# Runs the whole test suite: sets up what is missing, then every crate's tests.
#
# Tests that need a system component are #[ignore]d in the code and listed in
# NEEDS below. Each runs when its component is installed; otherwise it is
# skipped, and the last lines of the output name it and say why. With CI=true a
# missing component is a failure instead. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
# Test binaries run side by side: one libtorch thread each, unless told otherwise.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

has_browser() {
  { [ -n "${CHROME_BIN:-}" ] && [ -x "$CHROME_BIN" ]; } ||
    [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ] || [ -x /usr/bin/google-chrome ] || return 1
  { [ -n "${CHROMEDRIVER:-}" ] && [ -x "$CHROMEDRIVER" ]; } ||
    [ -x /usr/bin/chromedriver ] || [ -x /usr/lib/chromium/chromedriver ]
}

# MLflow's tracking server, for the export round trip (.ci/run installs it into
# the venv, which scripts/env.sh puts first on PATH).
has_mlflow() {
  command -v mlflow >/dev/null 2>&1 || [ -x .venv/bin/mlflow ]
}

# baycomp and statsmodels in the project's venv, for the statistics checked
# against them (.ci/run installs them).
has_baycomp() {
  [ -x .venv/bin/python ] && .venv/bin/python -c 'import baycomp, statsmodels' >/dev/null 2>&1
}

# tbparse and TensorBoard in the project's venv, for the worker's TensorBoard
# files read back by TensorBoard's own reader (.ci/run installs them).
has_tbparse() {
  [ -x .venv/bin/python ] && .venv/bin/python -c 'import tbparse, tensorboard' >/dev/null 2>&1
}

# test name | check (a function above) | what it needs, and how to get it
NEEDS=(
  "mlflow_export_round_trip|has_mlflow|MLflow (.venv/bin/python -m pip install mlflow==3.17.2)"
  "correlated_tests_equal_baycomp|has_baycomp|baycomp and statsmodels (.venv/bin/python -m pip install baycomp==1.0.3 statsmodels==0.15.0)"
  "corrected_t_and_posteriors_recomputed_from_the_csv|has_baycomp|baycomp and statsmodels (.venv/bin/python -m pip install baycomp==1.0.3 statsmodels==0.15.0)"
  "tensorboard_scalars_equal_metrics_json|has_tbparse|tbparse and tensorboard (.venv/bin/python -m pip install tbparse==0.0.9 tensorboard==2.21.0)"
  "dashboard_in_headless_chromium|has_browser|chromium and chromedriver (apt-get install chromium chromium-driver)"
  "sweep_configuration_filter_in_headless_chromium|has_browser|chromium and chromedriver (apt-get install chromium chromium-driver)"
  "hostile_names_and_the_logout_in_headless_chromium|has_browser|chromium and chromedriver (apt-get install chromium chromium-driver)"
)

skipped=()
skip_names=()
for entry in "${NEEDS[@]}"; do
  IFS='|' read -r name check why <<<"$entry"
  if ! "$check"; then
    skipped+=("$name: needs $why")
    skip_names+=("$name")
  fi
done
if [ "${#skipped[@]}" -gt 0 ] && [ "${CI:-}" = true ]; then
  printf 'test.sh: CI=true and a system component is missing:\n' >&2
  printf '  %s\n' "${skipped[@]}" >&2
  exit 1
fi

status=0
if cargo nextest --version >/dev/null 2>&1; then
  filter=()
  if [ "${#skip_names[@]}" -gt 0 ]; then
    expr=""
    for n in "${skip_names[@]}"; do expr+="${expr:+ | }test(=$n)"; done
    filter=(-E "not ($expr)")
  fi
  cargo nextest run --workspace --no-fail-fast --run-ignored all "${filter[@]}" "$@" || status=$?
else
  skip_args=()
  for n in "${skip_names[@]}"; do skip_args+=(--skip "$n"); done
  cargo test --workspace --no-fail-fast "$@" -- --include-ignored "${skip_args[@]}" || status=$?
fi

# The Python helper for training scripts (python/) and the PyTorch example
# trainer: standard-library unittest, in the project's venv (torch, numpy).
echo
echo "python/: the trainer helper's tests"
.venv/bin/python -m unittest discover -s python/tests -t python || status=$?

if [ "${#skipped[@]}" -gt 0 ]; then
  echo
  echo "skipped ${#skipped[@]} test(s), their system component is missing:"
  printf '  %s\n' "${skipped[@]}"
fi
exit "$status"
