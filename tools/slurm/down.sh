#!/usr/bin/env bash
# Stops the private cluster of tools/slurm/up.sh: cancels its jobs, then ends
# slurmd, slurmctld and munged by the PID files in DIR (SIGTERM, then SIGKILL
# after 15 s), and any slurmstepd still serving one of its jobs. Safe to call
# twice, or on a half-started cluster.
#
#   tools/slurm/down.sh DIR [--rm]     --rm also deletes DIR
set -euo pipefail

dir=${1:?usage: tools/slurm/down.sh DIR [--rm]}
[ -d "$dir" ] || exit 0
export SLURM_CONF=$dir/slurm.conf

# Jobs first, while slurmctld can still tell slurmd to end them.
if [ -s "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
  timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while [ $SECONDS -lt $deadline ] && [ -n "$(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null)" ]; do
    sleep 0.5
  done
fi

# A slurmstepd left behind (it outlives slurmd) is ours if it holds a file of
# DIR open: its log is slurmd.log, its sockets are in the spool directory.
our_stepds() {
  local proc fd
  for proc in /proc/[0-9]*; do
    [ "$(cat "$proc/comm" 2>/dev/null)" = slurmstepd ] || continue
    for fd in "$proc"/fd/*; do
      case $(readlink "$fd" 2>/dev/null) in
        "$dir"/*) echo "${proc#/proc/}"; break ;;
      esac
    done
  done
}

# stop PIDFILE NAME: ends the process of PIDFILE if it is still NAME (a stale
# file's PID may belong to another process by now).
stop() {
  local pidfile=$1 name=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "slurm/down: $name (pid $pid) ignored SIGTERM for 15 s; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
stop "$dir/run/slurmd.pid" slurmd
for pid in $(our_stepds); do
  echo "slurm/down: slurmstepd $pid outlived its job; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
done
stop "$dir/run/slurmctld.pid" slurmctld
stop "$dir/run/munged.pid" munged

if [ "${2:-}" = "--rm" ]; then
  rm -rf "$dir"
fi
