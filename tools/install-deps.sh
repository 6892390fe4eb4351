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
  libdnnl-dev                       # oneDNN: the bf16 GEMM (runtime.precision: bf16)
  ocl-icd-opencl-dev                # libdnnl-dev's CMake config asks for OpenCL (a Recommends, which --no-install-recommends skips)
  libxsmm-dev                       # tools/bench/gemm_bench's libxsmm column
  libyaml-dev                       # experiment configs
  libpng-dev                        # images in and out
  libturbojpeg0-dev                 # JPEG images in (TurboJPEG API)
  libdcmtk-dev                      # DICOM images in (src/data/dicom.cc)
  libcairo2-dev fonts-dejavu-core   # plots (roc.png, curves.png) and their text
)

# shellcheck source=tools/apt-install.sh
source "$(dirname "$0")/apt-install.sh"
apt_install install-deps "${packages[@]}"
