#!/usr/bin/env bash
# Installs what Thorax needs to build and run on Debian 12 (idempotent).
#   tools/install-deps.sh            build and runtime dependencies
# Needs root (or sudo) for apt-get; does nothing if everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev        # MPI runtime and headers
  libhdf5-openmpi-dev hdf5-tools    # parallel HDF5 (MPI-IO) and h5dump
  libopenblas-dev                   # the GEMM behind every convolution
  libyaml-dev                       # experiment configs
  libpng-dev                        # images in and out
  libcairo2-dev fonts-dejavu-core   # plots (roc.png, curves.png) and their text
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
