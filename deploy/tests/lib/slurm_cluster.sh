# shellcheck shell=bash
# A throw-away single-node Slurm cluster for tests: its own munged, slurmctld
# and slurmd, all state, sockets, logs and ports under one directory.
#   slurm_cluster_start DIR   starts it; exports SLURM_CONF (and prints nothing)
#   slurm_cluster_stop DIR    stops the daemons started from DIR (by their pid files)
# Needs root (slurmd starts jobs as their user) and Debian's slurm-wlm and munge.
# No cgroups: proctrack/linuxproc, task/none. The node claims SPIKECV_SLURM_CPUS
# CPUs (default 4, with config_overrides) so a coordinator, two workers and the
# report step fit beside each other on a small machine.

slurm_cluster_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

slurm_cluster_start() {
  local dir="$1"
  local cpus="${SPIKECV_SLURM_CPUS:-4}"
  local host
  host="$(hostname -s)"
  mkdir -p "$dir"/{munge,ctld,spool,log,run}
  chmod 700 "$dir/munge"

  # munge: a fresh key and a private socket.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force \
    --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed"

  local ctld_port slurmd_port mem
  ctld_port="$(slurm_cluster_free_port)"
  slurmd_port="$(slurm_cluster_free_port)"
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat >"$dir/slurm.conf" <<CONF
ClusterName=spikecvtest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${dir}/munge/munge.socket
CredType=cred/munge
StateSaveLocation=${dir}/ctld
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/run/slurmctld.pid
SlurmdPidFile=${dir}/run/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=30
MinJobAge=600
PlugStackConfig=${dir}/plugstack.conf
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  : >"$dir/plugstack.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF" -i
  slurmd -f "$SLURM_CONF" -N localhost

  # Bounded wait for the node to come up idle.
  local state=""
  for _ in $(seq 1 60); do
    state="$(sinfo -h -N -n localhost -o '%t' 2>/dev/null || true)"
    case "$state" in
      idle*|mix*|alloc*) return 0 ;;
    esac
    sleep 1
  done
  echo "slurm_cluster: node did not come up (state '${state}'); logs in $dir/log" >&2
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  return 1
}

slurm_cluster_stop_pidfile() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
}

slurm_cluster_stop() {
  local dir="$1"
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  slurm_cluster_stop_pidfile "$dir/run/slurmd.pid"
  slurm_cluster_stop_pidfile "$dir/run/slurmctld.pid"
  slurm_cluster_stop_pidfile "$dir/munge/munged.pid"
}
