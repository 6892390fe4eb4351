#!/usr/bin/env bash
# An ssh stand-in for Open MPI's rsh launcher that reaches "hosts" which are
# Linux network namespaces on this machine: the command runs in the namespace
# that holds the host's IP address. It lets one machine play a cluster of
# several hosts joined by a real (virtual) network, as in
# tests/integration/test_two_hosts.sh:
#
#   ip netns exec NS_A mpirun --hostfile HOSTS --mca plm_rsh_agent tools/netns-rsh.sh ...
#
# Called by mpirun as `netns-rsh.sh [ssh options] HOST COMMAND...`; the
# options are ignored and COMMAND (the orted launch line) runs under sh, as
# ssh would run it. Needs root (ip netns exec).
set -euo pipefail

while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
  shift
done
[ $# -ge 2 ] || { echo "netns-rsh: usage: netns-rsh.sh [options] HOST COMMAND..." >&2; exit 255; }
host=$1
shift

for ns in $(ip netns list | cut -d' ' -f1); do
  if ip -n "$ns" -o -4 addr show | grep -qF " inet $host/"; then
    exec ip netns exec "$ns" /bin/sh -c "$*"
  fi
done
echo "netns-rsh: no network namespace has the address $host" >&2
exit 255
