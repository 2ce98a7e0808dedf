# shellcheck shell=bash
# Shell helpers shared by deploy/local/run.sh and deploy/tests/*.sh.
# Source it; it defines functions only (prefix spk_) and changes no options.

spk_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
spk_die() { spk_log "error: $*"; exit 1; }

# The repository root (this file lives in deploy/lib/).
spk_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

# A TCP port that is free on 127.0.0.1 right now.
spk_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# spk_wait_tcp HOST PORT SECONDS [PID]: waits until HOST:PORT accepts a TCP
# connection; fails after SECONDS, or at once when process PID has exited.
spk_wait_tcp() {
  local host="$1" port="$2" secs="$3" pid="${4:-}" i
  for ((i = 0; i < secs * 4; i++)); do
    if (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null; then
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.25
  done
  return 1
}

# spk_has_flag BIN "SUBCOMMAND..." FLAG: whether `BIN SUBCOMMAND --help` lists FLAG.
spk_has_flag() {
  local bin="$1" sub="$2" flag="$3"
  # shellcheck disable=SC2086
  "$bin" $sub --help 2>/dev/null | grep -qE -- "(^|[[:space:],])${flag}([[:space:]=,]|$)"
}

# spk_job_counts COORDINATOR_BIN STATE_DB: prints "total terminal succeeded failed
# pruned" from `coordinator report --format csv` (`status` is one of pending,
# leased, running, succeeded, failed, cancelled, pruned; pruned jobs, stopped by
# a sweep's pruner, are terminal). Fails when no report can be read yet.
spk_job_counts() {
  local bin="$1" db="$2" csv
  [ -f "$db" ] || return 1
  csv="$("$bin" report --state "$db" --format csv 2>/dev/null)" || return 1
  printf '%s\n' "$csv" | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") col = i; next }
    col && NF { n++; s = $col; gsub(/[" \r]/, "", s)
                if (s == "succeeded") ok++; else if (s == "failed") bad++
                else if (s == "cancelled") gone++; else if (s == "pruned") cut++ }
    END { if (!col || !n) exit 1; print n, ok + bad + gone + cut, ok + 0, bad + 0, cut + 0 }'
}

# spk_start NAME LOGFILE CMD...: starts CMD in its own session and process group
# (setsid), stdin from /dev/null, output to LOGFILE; appends its pid (= its
# process group id) to the array SPK_PIDS and sets SPK_LAST_PID.
SPK_PIDS=()
spk_start() {
  local name="$1" log="$2"
  shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  SPK_LAST_PID=$!
  SPK_PIDS+=("$SPK_LAST_PID")
  spk_log "started ${name} (pid ${SPK_LAST_PID}, log ${log})"
}

# spk_stop_group PID [SECONDS]: SIGTERM to the process group PID (a drain for
# workers, a clean stop for the coordinator), SIGKILL after SECONDS (default 60).
spk_stop_group() {
  local pid="$1" secs="${2:-60}" i
  if ! kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    spk_log "pid ${pid} ignored SIGTERM for ${secs} s; killing its group"
  fi
  # Whatever is left of the group (children the leader did not stop).
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# spk_stop_all [SECONDS]: stops every group started with spk_start, newest first.
spk_stop_all() {
  local secs="${1:-60}" i
  for ((i = ${#SPK_PIDS[@]} - 1; i >= 0; i--)); do
    spk_stop_group "${SPK_PIDS[$i]}" "$secs"
  done
  SPK_PIDS=()
}

# spk_subset_filelist DIR N: keeps N recordings, spread evenly over DIR's
# filelist.txt (so every recording set, S1-S4, stays represented and the reduced
# variant is not empty); the full list is kept as filelist.all.txt. N = 0 or a
# list of at most N recordings leaves it as it is.
spk_subset_filelist() {
  local dir="$1" n="$2" total
  [ -f "$dir/filelist.all.txt" ] || cp "$dir/filelist.txt" "$dir/filelist.all.txt"
  total="$(grep -c . "$dir/filelist.all.txt")"
  if [ "$n" -le 0 ] || [ "$total" -le "$n" ]; then
    cp "$dir/filelist.all.txt" "$dir/filelist.txt"
    return 0
  fi
  grep . "$dir/filelist.all.txt" |
    awk -v n="$n" -v total="$total" '{ i = NR - 1; if (int(i * n / total) != int((i - 1) * n / total) || NR == 1) print }' \
      >"$dir/filelist.txt.tmp"
  mv "$dir/filelist.txt.tmp" "$dir/filelist.txt"
}

# spk_cpu_threads WORKERS: CPU threads per worker so WORKERS workers share the cores.
spk_cpu_threads() {
  local n
  n="$(nproc 2>/dev/null || echo 1)"
  n=$(( n / $1 ))
  [ "$n" -ge 1 ] || n=1
  echo "$n"
}

# spk_gpu_count: CUDA GPUs visible to nvidia-smi (0 when none or no driver).
spk_gpu_count() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true
  else
    echo 0
  fi
}

# spk_self_signed CERT KEY HOST_OR_IP: a self-signed TLS pair (P-256, 825 days)
# whose certificate names HOST_OR_IP (an IP address or a DNS name) and is not
# a CA, so a client can trust it directly (`--tls-ca CERT`). Needs openssl.
spk_self_signed() {
  local cert="$1" key="$2" host="$3" san
  command -v openssl >/dev/null || spk_die "openssl is needed to make a TLS pair"
  if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
  ( umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
      -subj "/CN=$host" -addext "subjectAltName=$san" -addext "basicConstraints=critical,CA:FALSE" \
      -keyout "$key" -out "$cert" 2>/dev/null ) || spk_die "openssl could not make a TLS pair for $host"
  chmod 0644 "$cert"
}
