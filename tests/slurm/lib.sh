# shellcheck shell=bash
# Shared by the SLURM tests: a private cluster (tools/slurm/up.sh) for the
# life of one test, stopped on any exit (tools/slurm/down.sh), bounded waits,
# and the daemons' and jobs' logs printed when a test fails.
#
# A test exits 77 (ctest: skipped) with the reason printed where SLURM or
# munge is not installed (tools/install-test-deps.sh installs them) or the
# test does not run as root (slurmd starts jobs as their user).
# KEEP_WORK=1 keeps the test's scratch directory (jobs' logs, run directories).
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
TEST=$(basename "$0" .sh)
TEST=${TEST#test_}

skip() {
  echo "SKIP: $*"
  echo "$TEST: 0 passed, 0 failed, 1 skipped"
  exit 77
}
for cmd in munged slurmctld slurmd sbatch; do
  command -v "$cmd" >/dev/null || skip "$cmd not installed; tools/install-test-deps.sh installs SLURM and munge"
done
[ "$(id -u)" -eq 0 ] || skip "needs root: slurmd starts each job as the user who submitted it"

# Nothing of an enclosing SLURM job or of the user's sbatch defaults may leak
# into the private cluster's jobs.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_' || true)

SLURM_DIR=$(mktemp -d /tmp/thorax-slurm-XXXXXX)
JOBS=$THORAX_SOURCE_DIR/jobs

teardown() {
  local status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    echo "---- $TEST failed (status $status): job logs and daemon logs ----" >&2
    for f in "$WORK"/*.out; do
      [ -e "$f" ] || continue
      echo "==== $f (last 30 lines)" >&2
      tail -n 30 "$f" >&2
    done
    for f in "$SLURM_DIR"/log/*.log; do
      [ -e "$f" ] || continue
      echo "==== $f (last 40 lines)" >&2
      tail -n 40 "$f" >&2
    done
  fi
  "$THORAX_SOURCE_DIR/tools/slurm/down.sh" "$SLURM_DIR" --rm || echo "$TEST: tools/slurm/down.sh failed" >&2
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Four CPUs on a 2-core machine: two 2-rank jobs run side by side.
THORAX_SLURM_CPUS=${THORAX_SLURM_CPUS:-4} "$THORAX_SOURCE_DIR/tools/slurm/up.sh" "$SLURM_DIR" >/dev/null
# Those oversubscribed cores need two Open MPI settings, or two 2-rank jobs
# side by side run about 3x slower than one alone instead of 1.5-2x:
#  - a rank waiting in an allreduce gives its core away (Open MPI polls
#    without yielding unless mpirun --oversubscribe says otherwise, which
#    srun cannot);
#  - mpirun does not bind ranks to cores (train.sbatch's --map-by slot:PE=N
#    would put rank 0 of every mpirun job on core 0).
# sbatch passes the environment to the jobs, srun and mpirun to the ranks.
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_hwloc_base_binding_policy=none
export SLURM_CONF=$SLURM_DIR/slurm.conf
# The jobs run the thorax under test (sbatch passes the environment on).
export THORAX_BIN
cd "$WORK"

# submit SBATCH_ARGS...: sbatch --parsable, prints the job id.
submit() { sbatch --parsable "$@" | cut -d';' -f1; }

# job JOBID: `scontrol -o show job`, one line per job or array task. A busy
# slurmctld may not answer at once: 10 tries, then the test fails.
job() {
  local out
  for _ in $(seq 10); do
    if out=$(scontrol -o show job "$1" 2>&1); then
      echo "$out"
      return 0
    fi
    sleep 0.5
  done
  fail "scontrol show job $1: $out"
}

# states JOBID: JobState of the job, or of every task of an array job.
states() { job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# wait_jobs SECONDS JOBID...: until every job (every array task) has ended.
# A requeued job passes through COMPLETING and PENDING again: not ended.
wait_jobs() {
  local limit=$1 deadline=$((SECONDS + $1)) id s st busy
  shift
  while :; do
    busy=0
    for id in "$@"; do
      st=$(states "$id" 2>/dev/null || true)
      [ -n "$st" ] || busy=1
      for s in $st; do
        case $s in
          COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) ;;
          *) busy=1 ;;
        esac
      done
    done
    [ "$busy" -eq 1 ] || return 0
    if [ $SECONDS -ge $deadline ]; then
      squeue >&2 || true
      fail "jobs $* have not ended within $limit s"
    fi
    sleep 1
  done
}

# wait_file SECONDS FILE: until FILE exists.
wait_file() {
  local deadline=$((SECONDS + $1))
  until [ -e "$2" ]; do
    [ $SECONDS -lt $deadline ] || fail "$2 did not appear within $1 s"
    sleep 0.2
  done
}

# completed JOBID: the job (every array task) ended COMPLETED with exit 0:0.
completed() {
  local out s
  out=$(job "$1")
  for s in $(grep -o 'JobState=[A-Z_]*' <<<"$out" | cut -d= -f2); do
    [ "$s" = COMPLETED ] || { scontrol show job "$1" >&2; fail "job $1 ended $s, not COMPLETED"; }
  done
  if grep -o 'ExitCode=[0-9:]*' <<<"$out" | grep -qvx 'ExitCode=0:0'; then
    scontrol show job "$1" >&2
    fail "job $1 exited non-zero"
  fi
}

# tiny_config FILE DATA EPOCHS: a small network like the integration tests',
# with batch-norm and dropout so that their state goes through requeues too.
tiny_config() {
  cat > "$1" <<YAML
name: tiny
seed: 9
data: {path: $2}
YAML
  cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> "$1"
  cat >> "$1" <<YAML
train:
  epochs: $3
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $WORK/runs}
YAML
}
