#!/usr/bin/env bash
# Starts a private one-node SLURM cluster on this machine, for tests of the
# batch scripts in jobs/: munged, slurmctld and slurmd with their own key,
# sockets, ports, state, spool, logs and PID files, all under one directory.
# Nothing in /etc is changed and no system service is used or started (the
# Debian packages do not start them here, and there is no systemd).
#
#   tools/slurm/up.sh [DIR]      default DIR: a new mktemp directory
#   export SLURM_CONF=DIR/slurm.conf
#   sbatch ...; squeue ...
#   tools/slurm/down.sh DIR      stops the daemons by their PID files
#
# Prints DIR on its last line. The node is this host, with as many CPUs as it
# has; set THORAX_SLURM_CPUS to declare more (oversubscribed cores, so that a
# 2-task job and a 1-task job can run side by side on a 2-core CI machine).
# Needs root (slurmd launches jobs as their submitting user) and the packages
# of tools/install-test-deps.sh.
set -euo pipefail

dir=${1:-$(mktemp -d /tmp/thorax-slurm-XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir"/{munge,state,spool,log,run}
# munged wants its socket reachable by all (execute on every directory above
# it) and its key and socket directory writable by its owner only.
chmod 0711 "$dir" "$dir/munge"

for cmd in munged mungekey slurmctld slurmd sinfo; do
  command -v "$cmd" >/dev/null || { echo "slurm/up: $cmd not found; run tools/install-test-deps.sh" >&2; exit 1; }
done

# Two free TCP ports for slurmctld and slurmd, away from the standard
# 6817/6818 so that a site's own daemons (or a previous test's) are left alone.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  echo "slurm/up: no free TCP port found" >&2
  exit 1
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
[ "$slurmd_port" != "$ctld_port" ] || slurmd_port=$((ctld_port + 1))

host=$(hostname -s)
cpus=${THORAX_SLURM_CPUS:-$(nproc)}
socket=$dir/munge/munge.socket
first_job_id=$((1000 + (RANDOM * 32768 + RANDOM) % 1000000))

# --- MUNGE: a private key and socket; slurm.conf's AuthInfo points at it. ---
[ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key"
chmod 0600 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$socket" \
  --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munged.seed"

# --- slurm.conf -------------------------------------------------------------
cat > "$dir/slurm.conf" <<CONF
# A private test cluster written by tools/slurm/up.sh; see that script.
ClusterName=thorax-test
SlurmctldHost=$host($host)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root

# Authentication through the private munged above. cred_expire is also how
# long a requeued job waits before it may start again (default 120 s).
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=5

StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups (22.05 has no CgroupPlugin=disabled, so no cgroup.conf at all):
# processes are tracked through /proc, tasks are not bound to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none

SchedulerType=sched/builtin
# Look at pending jobs every second (default 60 s), so that a requeued job
# starts as soon as its cred_expire wait is over.
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Trust the CPU count below even when it exceeds the cores (THORAX_SLURM_CPUS).
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
# Job ids from a random start, so that what SLURM, PMIx and Open MPI name
# after a job id (/tmp session directories, logs) differs from one test
# cluster to the next.
FirstJobId=$first_job_id
# Quick turnaround for tests: a killed step gets 10 s between SIGTERM and
# SIGKILL; finished jobs stay visible to scontrol for 10 minutes.
KillWait=10
MinJobAge=600
InactiveLimit=0
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none

NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# srun --mpi=pmix: the PMIx server's files under DIR too, not in /tmp.
mkdir -p "$dir/pmix"
echo "PMIxCliTmpDirBase=$dir/pmix" > "$dir/mpi.conf"
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Up when the node is idle; every wait here is bounded.
deadline=$((SECONDS + 60))
until sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; do
  if [ $SECONDS -ge $deadline ]; then
    echo "slurm/up: the node did not become idle within 60 s" >&2
    sinfo -N 2>&1 >&2 || true
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.5
done
echo "slurm/up: cluster thorax-test up, node $host with $cpus CPUs, ports $ctld_port/$slurmd_port" >&2
echo "$dir"
