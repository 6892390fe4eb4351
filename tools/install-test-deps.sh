#!/usr/bin/env bash
# Installs what the tests beyond the build need on Debian 12 (idempotent):
# SLURM and munge for the slurm-labelled tests (tests/slurm/, which start
# their own private daemons with tools/slurm/up.sh), and iproute2 for the
# two-host test (network namespaces). CI runs it before tools/test.sh; without
# these packages those tests are skipped, saying why.
#   tools/install-test-deps.sh
# Needs root (or sudo) for apt-get. The Debian packages would start system
# daemons where systemd runs; the tests never use those.
set -euo pipefail

packages=(
  slurm-wlm slurmctld slurmd slurm-client   # SLURM 22.05: controller, node daemon, sbatch/srun
  munge                                     # the authentication SLURM uses
  iproute2                                  # ip netns, veth pairs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
