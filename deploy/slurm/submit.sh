#!/usr/bin/env bash
# Submits a spikecv experiment to Slurm: the coordinator job, the worker jobs
# (a job array that starts once the coordinator runs: --dependency=after) and a
# report step once every worker job has ended (--dependency=afterany).
#
#   SPIKECV_SHARED=/shared/spikecv/run1 SPIKECV_EXPERIMENT=exp.toml \
#   SPIKECV_BIN_DIR=/opt/spikecv/bin SPIKECV_DATA=/shared/sl-animals \
#   SPIKECV_WORKERS=4 SPIKECV_GPUS_PER_NODE=4 bash deploy/slurm/submit.sh
#
# Prints the three job ids (coordinator, workers, report) and writes them to
# $SPIKECV_SHARED/jobs.env. The report lands in $SPIKECV_SHARED/report/.
#
# Parameters (environment; the batch scripts read theirs from the same
# environment, see their headers):
#   SPIKECV_SHARED          shared folder every node sees (required)
#   SPIKECV_EXPERIMENT      experiment TOML (required; copied into SPIKECV_SHARED)
#   SPIKECV_BIN_DIR         folder with the coordinator and worker binaries
#   SPIKECV_DATA            data set root on the worker nodes
#   SPIKECV_WORKERS         worker jobs in the array (default 1)
#   SPIKECV_NODES_PER_WORKER nodes per worker job, one worker per node (default 1)
#   SPIKECV_GPUS_PER_NODE   GPUs per node (--gres=gpu:N; default 0: CPU workers)
#   SPIKECV_CPUS_PER_WORKER CPUs per worker task (default 8 with GPUs, else 1)
#   SPIKECV_PARTITION, SPIKECV_WORKER_PARTITION, SPIKECV_ACCOUNT
#   SPIKECV_COORD_TIME (default 7-00:00:00), SPIKECV_WORKER_TIME (default 1-00:00:00)
#   SPIKECV_TOKEN_FILE      shared token (default: $SPIKECV_SHARED/token, made when missing)
#   SPIKECV_ADMIN_TOKEN_FILE admin token for submit/cancel/status, never given to
#                           workers (default: $SPIKECV_SHARED/admin-token, made when missing)
#   SPIKECV_ENROLMENT_TOKEN_FILE enrolment token: each worker node enrols once with
#                           it for a credential of its own (default:
#                           $SPIKECV_SHARED/enrolment-token, made when missing)
#   SPIKECV_SBATCH_ARGS     extra sbatch flags for all three jobs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SPIKECV_SHARED:?set SPIKECV_SHARED to a folder every node sees}"
: "${SPIKECV_EXPERIMENT:?set SPIKECV_EXPERIMENT to the experiment TOML}"
[ -f "$SPIKECV_EXPERIMENT" ] || { echo "submit.sh: no experiment file $SPIKECV_EXPERIMENT" >&2; exit 1; }

mkdir -p "$SPIKECV_SHARED/logs"
SPIKECV_SHARED="$(cd "$SPIKECV_SHARED" && pwd)"
# The coordinator reads the experiment from shared storage, so a later edit of
# the original does not change a running (or requeued) experiment.
cp "$SPIKECV_EXPERIMENT" "$SPIKECV_SHARED/experiment.toml"
export SPIKECV_SHARED
export SPIKECV_EXPERIMENT="$SPIKECV_SHARED/experiment.toml"
if [ -n "${SPIKECV_BIN_DIR:-}" ]; then
  SPIKECV_BIN_DIR="$(cd "$SPIKECV_BIN_DIR" && pwd)"
  export SPIKECV_BIN_DIR
fi
rm -f "$SPIKECV_SHARED/coordinator.addr" "$SPIKECV_SHARED/coordinator.done"
# Workers and coordinator share a token (required when the coordinator listens
# beyond loopback); made once per shared folder, readable by its owner only.
if [ -z "${SPIKECV_TOKEN_FILE:-}" ]; then
  SPIKECV_TOKEN_FILE="$SPIKECV_SHARED/token"
  [ -s "$SPIKECV_TOKEN_FILE" ] ||
    ( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SPIKECV_TOKEN_FILE" )
fi
export SPIKECV_TOKEN_FILE
# Admin calls take a token of their own, so a worker's token cannot submit or
# cancel (the coordinator refuses to listen beyond loopback without one).
if [ -z "${SPIKECV_ADMIN_TOKEN_FILE:-}" ]; then
  SPIKECV_ADMIN_TOKEN_FILE="$SPIKECV_SHARED/admin-token"
  [ -s "$SPIKECV_ADMIN_TOKEN_FILE" ] ||
    ( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SPIKECV_ADMIN_TOKEN_FILE" )
fi
export SPIKECV_ADMIN_TOKEN_FILE
# Workers do not get the shared token: each node enrols once with this token
# and works with a credential of its own (its slots capped by the coordinator).
if [ -z "${SPIKECV_ENROLMENT_TOKEN_FILE:-}" ]; then
  SPIKECV_ENROLMENT_TOKEN_FILE="$SPIKECV_SHARED/enrolment-token"
  [ -s "$SPIKECV_ENROLMENT_TOKEN_FILE" ] ||
    ( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SPIKECV_ENROLMENT_TOKEN_FILE" )
fi
export SPIKECV_ENROLMENT_TOKEN_FILE

workers="${SPIKECV_WORKERS:-1}"
gpus="${SPIKECV_GPUS_PER_NODE:-0}"
# Enrolments: every node of every worker task, four times over (requeues may
# land on other nodes); each credential holds a node's GPUs' jobs.
export SPIKECV_ENROLMENT_USES="${SPIKECV_ENROLMENT_USES:-$(( 4 * workers * ${SPIKECV_NODES_PER_WORKER:-1} ))}"
export SPIKECV_ENROLMENT_SLOTS="${SPIKECV_ENROLMENT_SLOTS:-$(( (gpus > 0 ? gpus : 1) * ${SPIKECV_JOBS_PER_GPU:-1} ))}"
common=(--parsable --chdir="$SPIKECV_SHARED")
[ -z "${SPIKECV_ACCOUNT:-}" ] || common+=(--account="$SPIKECV_ACCOUNT")
# shellcheck disable=SC2206  # word splitting of the extra flags is wanted
common+=(${SPIKECV_SBATCH_ARGS:-})
coord_part=()
[ -z "${SPIKECV_PARTITION:-}" ] || coord_part=(--partition="$SPIKECV_PARTITION")
worker_part=("${coord_part[@]}")
[ -z "${SPIKECV_WORKER_PARTITION:-}" ] || worker_part=(--partition="$SPIKECV_WORKER_PARTITION")

coord_id="$(sbatch "${common[@]}" "${coord_part[@]}" \
  --time="${SPIKECV_COORD_TIME:-7-00:00:00}" \
  --output="$SPIKECV_SHARED/logs/coordinator-%j.out" \
  "$here/coordinator.sbatch")"
coord_id="${coord_id%%;*}"
export SPIKECV_COORD_JOBID="$coord_id"

worker_args=(--array="0-$((workers - 1))" --nodes="${SPIKECV_NODES_PER_WORKER:-1}"
  --time="${SPIKECV_WORKER_TIME:-1-00:00:00}"
  --dependency="after:${coord_id}"
  --output="$SPIKECV_SHARED/logs/worker-%A_%a.out")
if [ "$gpus" -gt 0 ]; then
  worker_args+=(--gres="gpu:${gpus}" --cpus-per-task="${SPIKECV_CPUS_PER_WORKER:-8}")
else
  worker_args+=(--cpus-per-task="${SPIKECV_CPUS_PER_WORKER:-1}")
fi
worker_id="$(sbatch "${common[@]}" "${worker_part[@]}" "${worker_args[@]}" "$here/worker.sbatch")"
worker_id="${worker_id%%;*}"

report_id="$(sbatch "${common[@]}" "${coord_part[@]}" --time=00:30:00 \
  --dependency="afterany:${worker_id}" \
  --output="$SPIKECV_SHARED/logs/report-%j.out" \
  "$here/report.sbatch")"
report_id="${report_id%%;*}"

printf 'SPIKECV_COORD_JOBID=%s\nSPIKECV_WORKER_JOBID=%s\nSPIKECV_REPORT_JOBID=%s\n' \
  "$coord_id" "$worker_id" "$report_id" | tee "$SPIKECV_SHARED/jobs.env"
