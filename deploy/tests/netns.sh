#!/usr/bin/env bash
# Several-hosts test: the coordinator and two workers each in their own network
# namespace, joined by veth pairs to a bridge that lives in a fourth namespace
# (10.200.0.0/24, created here; no address outside these namespaces is used).
# Once both workers are busy, worker 1's link is cut (`ip link set ... down`)
# for SPIKECV_TEST_CUT_SECONDS (default 20; longer than the lease when the
# coordinator has a lease flag) and restored. The run must still finish with
# every job of the experiment succeeded exactly once. Cleans up the processes
# and namespaces it made, also on failure.
#
# Needs root and iproute2 (installed with apt-get when missing). Skips (exit 0,
# with a message) only when not root or network namespaces cannot be made.
# Settings: SPIKECV_BIN_DIR, SPIKECV_TEST_TIMEOUT (900 s), SPIKECV_TEST_KEEP=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/lib/common.sh
source "$repo/deploy/lib/common.sh"
# shellcheck source=deploy/tests/lib/test_env.sh
source "$here/lib/test_env.sh"

[ "$(id -u)" = 0 ] || spk_skip "netns test needs root (ip netns)"
if ! command -v ip >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; } >/dev/null 2>&1 ||
    spk_skip "iproute2 is missing and apt-get could not install it"
fi

timeout="${SPIKECV_TEST_TIMEOUT:-900}"
export NO_COLOR=1
cut_seconds="${SPIKECV_TEST_CUT_SECONDS:-20}"
tmp="$(mktemp -d /tmp/spikecv-netns-test.XXXXXX)"
tag="spk$$"
ns_br="${tag}-br"
ns_c="${tag}-c"
ns_w1="${tag}-w1"
subnet="10.200.0"
made_ns=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  spk_stop_all 20
  local ns
  for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2; done
  fi
  if [ "${SPIKECV_TEST_KEEP:-0}" = 1 ]; then spk_log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The network: a bridge namespace and one namespace per host.
if ! ip netns add "$ns_br" 2>/dev/null; then
  spk_skip "cannot create network namespaces here"
fi
made_ns+=("$ns_br")
ip -n "$ns_br" link set lo up
ip -n "$ns_br" link add br0 type bridge
ip -n "$ns_br" link set br0 up
host_ip() { case "$1" in c) echo "$subnet.1" ;; w1) echo "$subnet.11" ;; w2) echo "$subnet.12" ;; esac; }
for host in c w1 w2; do
  ns="${tag}-${host}"
  ip netns add "$ns"
  made_ns+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns_br" link add "p-${host}" type veth peer name eth0 netns "$ns"
  ip -n "$ns_br" link set "p-${host}" master br0 up
  ip -n "$ns" addr add "$(host_ip "$host")/24" dev eth0
  ip -n "$ns" link set eth0 up
done
spk_log "namespaces ${made_ns[*]} on ${subnet}.0/24"

spk_test_bins
spk_test_data "$tmp/data"
spk_test_experiment "$tmp/experiment.toml" "$tmp/data"
expected="$(spk_expected_jobs "$tmp/experiment.toml")"
state="$tmp/state.db"
port=50051
url="https://$(host_ip c):${port}"

token="$tmp/token"
( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token" )
admin_token="$tmp/admin-token"
( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$admin_token" )
# Beyond loopback gRPC speaks TLS: a self-signed pair for the coordinator's
# address, the certificate the workers' CA (the one-liner of deploy/README.md).
spk_self_signed "$tmp/tls.pem" "$tmp/tls.key" "$(host_ip c)"
# An enrolment token for one node (w2 enrols with it; w1 gets a credential
# from `coordinator worker add`).
enrolment="$tmp/enrolment-token"
( umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$enrolment" )
serve=("$COORDINATOR" serve --experiment "$tmp/experiment.toml" --state "$state" --listen "$(host_ip c):${port}"
  --token-file "$token" --tls-cert "$tmp/tls.pem" --tls-key "$tmp/tls.key"
  --enrolment-token-file "$enrolment" --enrolment-uses 1 --enrolment-slots 1)
# Beyond loopback the coordinator wants admin calls on a token of their own.
spk_has_flag "$COORDINATOR" serve --admin-token-file && serve+=(--admin-token-file "$admin_token")
# A short lease (when the coordinator lets us set it) so the cut outlasts it.
lease_flag="$("$COORDINATOR" serve --help 2>/dev/null | grep -oE -- '--lease[a-z-]*' | head -n 1 || true)"
[ -z "$lease_flag" ] || serve+=("$lease_flag" "${SPIKECV_TEST_LEASE:-8}")
spk_has_flag "$COORDINATOR" serve --heartbeat-seconds && serve+=(--heartbeat-seconds 2)
spk_start coordinator "$tmp/coordinator.log" ip netns exec "$ns_c" "${serve[@]}"
coordinator_pid=$SPK_LAST_PID
ip netns exec "$ns_w1" bash -c "
  for _ in \$(seq 1 240); do (exec 3<>/dev/tcp/$(host_ip c)/$port) 2>/dev/null && exit 0; sleep 0.25; done; exit 1" ||
  spk_die "worker namespace cannot reach the coordinator at $url"
spk_log "coordinator at $url, reachable from $ns_w1"

worker_pids=()
for host in w1 w2; do
  # Each worker its own credential (one slot), never the shared token: w1's
  # issued with the admin token from its namespace, w2 enrols at its start.
  join=("$WORKER" join --coordinator "$url" --gpus cpu --data "$tmp/data" --tls-ca "$tmp/tls.pem")
  if [ "$host" = w1 ]; then
    ip netns exec "${tag}-${host}" "$COORDINATOR" worker add "netns-$host" --slots 1 --out "$tmp/cred-$host" \
      --coordinator "$url" --tls-ca "$tmp/tls.pem" --token-file "$admin_token" >&2 ||
      spk_die "coordinator worker add netns-$host failed"
    join+=(--token-file "$tmp/cred-$host")
  else
    join+=(--enrolment-token-file "$enrolment" --credential-file "$tmp/cred-$host")
  fi
  spk_has_flag "$WORKER" join --name && join+=(--name "netns-$host")
  spk_has_flag "$WORKER" join --work-dir && join+=(--work-dir "$tmp/work-$host")
  spk_has_flag "$WORKER" join --exit-when-done && join+=(--exit-when-done)
  OMP_NUM_THREADS=1 spk_start "worker $host" "$tmp/worker-$host.log" ip netns exec "${tag}-${host}" "${join[@]}"
  worker_pids+=("$SPK_LAST_PID")
done

running_jobs() {
  "$COORDINATOR" report --state "$state" --format csv 2>/dev/null |
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") c = i; next } c && ($c == "running" || $c == "leased") { n++ } END { print n + 0 }'
}

deadline=$(( $(date +%s) + timeout ))
cut=0
while :; do
  if counts="$(spk_job_counts "$COORDINATOR" "$state")"; then
    read -r total finished succeeded failed _pruned <<<"$counts"
    [ "$total" -gt 0 ] && [ "$finished" -eq "$total" ] && break
  fi
  kill -0 "$coordinator_pid" 2>/dev/null || spk_die "the coordinator exited"
  # Both workers busy (one CPU slot each): worker 1 is mid-job. Cut its link.
  if [ "$cut" = 0 ] && [ "$(running_jobs)" -ge 2 ]; then
    spk_log "cutting worker w1's link for ${cut_seconds} s"
    ip -n "$ns_br" link set p-w1 down
    sleep "$cut_seconds"
    ip -n "$ns_br" link set p-w1 up
    spk_log "restored worker w1's link"
    cut=1
  fi
  alive=0
  for pid in "${worker_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  if [ "$alive" = 0 ]; then
    sleep 1
    counts="$(spk_job_counts "$COORDINATOR" "$state" || echo "0 0 0 0 0")"
    read -r total finished succeeded failed _pruned <<<"$counts"
    [ "$total" -gt 0 ] && [ "$finished" -eq "$total" ] && break
    spk_die "both workers exited with ${finished}/${total} jobs finished"
  fi
  [ "$(date +%s)" -lt "$deadline" ] || spk_die "jobs not finished after ${timeout} s"
  sleep 1
done
[ "$cut" = 1 ] || spk_die "the run ended before both workers were busy; the link was never cut"
spk_log "all ${total} jobs finished (${succeeded} succeeded, ${failed} failed)"
# The jobs ran on the named workers, under their credentials' names.
ip netns exec "$ns_w1" "$COORDINATOR" worker list --coordinator "$url" --tls-ca "$tmp/tls.pem" \
  --token-file "$admin_token" >"$tmp/workers.txt"
for host in w1 w2; do
  grep -q "^netns-$host " "$tmp/workers.txt" || spk_die "worker list lacks netns-$host: $(cat "$tmp/workers.txt")"
done
spk_stop_all 30
"$COORDINATOR" report --state "$state" --format csv >"$tmp/report.csv"
spk_check_report_csv "$tmp/report.csv" "$expected"
spk_log "netns test passed"
