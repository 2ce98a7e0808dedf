#!/usr/bin/env bash
# Runs the deploy tests, the way .ci/run calls them:
#   bash deploy/tests/run.sh                 # validate local netns slurm
#   bash deploy/tests/run.sh validate slurm  # a selection
# Builds the coordinator and worker once (dev profile; SPIKECV_BIN_DIR to use
# prebuilt ones) and hands them to every test. A test that cannot run here
# (not root, no apt) says SKIP and does not fail the run; anything else that
# goes wrong does. Prints a summary with each test's time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"
# shellcheck source=deploy/tests/lib/test_env.sh
source "$here/lib/test_env.sh"

tests=("$@")
[ "${#tests[@]}" -gt 0 ] || tests=(validate local netns slurm)
for t in "${tests[@]}"; do
  [ -f "$here/$t.sh" ] || spk_die "no test deploy/tests/$t.sh"
done

spk_test_bins
export SPIKECV_BIN_DIR="$SPK_BIN_DIR"

summary=()
failed=0
for t in "${tests[@]}"; do
  spk_log "=== deploy test: $t"
  start=$(date +%s)
  if bash "$here/$t.sh" 2>&1 | tee "/tmp/spikecv-deploy-$t.log"; then
    if grep -q '^SKIP:' "/tmp/spikecv-deploy-$t.log"; then
      summary+=("SKIP  $t ($(grep '^SKIP:' "/tmp/spikecv-deploy-$t.log" | head -n 1))")
    else
      summary+=("ok    $t ($(( $(date +%s) - start )) s)")
    fi
  else
    summary+=("FAIL  $t ($(( $(date +%s) - start )) s; log /tmp/spikecv-deploy-$t.log)")
    failed=1
  fi
done
echo
echo "deploy tests:"
printf '  %s\n' "${summary[@]}"
exit "$failed"
