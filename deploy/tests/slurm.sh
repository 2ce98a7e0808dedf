#!/usr/bin/env bash
# Slurm test: a real single-node Slurm (Debian's slurm-wlm and munge, installed
# when missing) runs the real deploy/slurm/ scripts, changed only through their
# parameters: a coordinator job, two CPU worker jobs (a job array) and the
# report step, on a tiny synthetic data set. One worker is drained mid-run the
# way Slurm does it before a time limit (SIGTERM to the batch script) and must
# requeue itself. Checks: the report exists, every job of the experiment
# finished exactly once and succeeded, every Slurm job completed. Cleans up
# (daemons, jobs, temp files) also on failure.
#
# Needs root. Skips (exit 0, with a message) only when not root or when Slurm
# is missing and apt-get cannot install it.
# Settings: SPIKECV_BIN_DIR (prebuilt binaries), SPIKECV_TEST_TIMEOUT (900 s),
# SPIKECV_TEST_DRAIN (1; 0 skips the drain), SPIKECV_TEST_KEEP=1 keeps the temp dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"
# shellcheck source=deploy/tests/lib/test_env.sh
source "$here/lib/test_env.sh"
# shellcheck source=deploy/tests/lib/slurm_cluster.sh
source "$here/lib/slurm_cluster.sh"

[ "$(id -u)" = 0 ] || spk_skip "slurm test needs root (it starts munged, slurmctld and slurmd)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  spk_log "installing slurm-wlm and munge from Debian's packages"
  if ! { command -v apt-get >/dev/null &&
    apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }; then
    spk_skip "Slurm is not installed and apt-get could not install slurm-wlm and munge"
  fi
fi

timeout="${SPIKECV_TEST_TIMEOUT:-900}"
export NO_COLOR=1
tmp="$(mktemp -d /tmp/spikecv-slurm-test.XXXXXX)"
cluster="$tmp/cluster"
shared="$tmp/shared"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then
    spk_log "slurm test failed; logs:"
    for f in "$shared"/logs/*.out "$cluster"/log/slurmctld.log; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2
    done
  fi
  slurm_cluster_stop "$cluster" || true
  if [ "${SPIKECV_TEST_KEEP:-0}" = 1 ]; then spk_log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

spk_test_bins
spk_test_data "$tmp/data"
spk_test_experiment "$tmp/experiment.toml" "$tmp/data"
expected="$(spk_expected_jobs "$tmp/experiment.toml")"
spk_log "experiment: $expected jobs"

slurm_cluster_start "$cluster"
spk_log "Slurm is up (SLURM_CONF=$SLURM_CONF)"

worker_args=""
spk_has_flag "$WORKER" join --exit-when-done && worker_args="--exit-when-done"
ids="$(
  SPIKECV_SHARED="$shared" \
  SPIKECV_EXPERIMENT="$tmp/experiment.toml" \
  SPIKECV_BIN_DIR="$SPK_BIN_DIR" \
  SPIKECV_DATA="$tmp/data" \
  SPIKECV_WORKERS=2 \
  SPIKECV_GPUS_PER_NODE=0 \
  SPIKECV_PORT=0 \
  SPIKECV_LISTEN_HOST=127.0.0.1 \
  SPIKECV_ADVERTISE_HOST=127.0.0.1 \
  SPIKECV_POLL=2 \
  SPIKECV_WORKER_ARGS="$worker_args" \
  SPIKECV_COORD_TIME=00:30:00 \
  SPIKECV_WORKER_TIME=00:30:00 \
  bash "$repo/deploy/slurm/submit.sh"
)"
eval "$ids"
spk_log "submitted: coordinator $SPIKECV_COORD_JOBID, workers ${SPIKECV_WORKER_JOBID}_[0-1], report $SPIKECV_REPORT_JOBID"

# job_state ID: Slurm's state of a job (or array task) while slurmctld remembers it.
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1; }
running_jobs() {
  "$COORDINATOR" report --state "$shared/state.db" --format csv 2>/dev/null |
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") c = i; next } c && ($c == "running" || $c == "leased") { n++ } END { print n + 0 }'
}

deadline=$(( $(date +%s) + timeout ))
drained=0
pending_since=""
[ "${SPIKECV_TEST_DRAIN:-1}" = 1 ] || drained=skip
while :; do
  state="$(job_state "$SPIKECV_REPORT_JOBID")"
  case "$state" in
    COMPLETED) break ;;
    FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) spk_die "report job ended $state" ;;
  esac
  case "$(job_state "$SPIKECV_COORD_JOBID")" in
    FAILED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) spk_die "coordinator job failed" ;;
  esac
  # The drain: SIGTERM to worker 0's batch script once jobs are running, as
  # Slurm does 120 s before the time limit (--signal=B:TERM@120).
  if [ "$drained" = 0 ] && [ "$(running_jobs)" -ge 1 ] &&
    [ "$(job_state "${SPIKECV_WORKER_JOBID}_0")" = RUNNING ]; then
    spk_log "draining worker ${SPIKECV_WORKER_JOBID}_0 (scancel --batch --signal=TERM)"
    scancel --batch --signal=TERM "${SPIKECV_WORKER_JOBID}_0"
    drained=1
  fi
  # A requeued job waits about two minutes before it may start again (Slurm's
  # own delay, so that the old instance has finished completing: its end
  # revokes the job's credential, and a new instance launched before that is
  # killed with "Job credential revoked"). Keep the test short, but wait that
  # out: bring the start forward only 5 s after the job went back to pending.
  if [ "$drained" = 1 ] && [ "$(job_state "${SPIKECV_WORKER_JOBID}_0")" = PENDING ]; then
    pending_since="${pending_since:-$(date +%s)}"
    if [ $(( $(date +%s) - pending_since )) -ge 5 ]; then
      scontrol update JobId="${SPIKECV_WORKER_JOBID}_0" StartTime=now 2>/dev/null || true
    fi
  fi
  [ "$(date +%s)" -lt "$deadline" ] || spk_die "no report after ${timeout} s"
  sleep 2
done
spk_log "report job completed"

[ -s "$shared/report/report.md" ] || spk_die "no $shared/report/report.md"
[ -s "$shared/report/report.csv" ] || spk_die "no $shared/report/report.csv"
spk_check_report_csv "$shared/report/report.csv" "$expected"
for job in "$SPIKECV_COORD_JOBID" "${SPIKECV_WORKER_JOBID}_0" "${SPIKECV_WORKER_JOBID}_1"; do
  s="$(job_state "$job")"
  [ "$s" = COMPLETED ] || spk_die "Slurm job $job ended $s, expected COMPLETED"
done
if [ "$drained" = 1 ]; then
  restarts="$(scontrol show job "${SPIKECV_WORKER_JOBID}_0" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' | head -n 1)"
  [ "${restarts:-0}" -ge 1 ] || spk_die "drained worker job was not requeued (Restarts=${restarts:-?})"
  spk_log "drained worker was requeued ${restarts} time(s) and completed"
fi
if ! { grep -q 'whole' "$shared/report/report.md" && grep -q 'reduced' "$shared/report/report.md"; }; then
  spk_die "report.md does not mention both variants"
fi
spk_log "slurm test passed"
