#!/usr/bin/env bash
# Installs what the tests beyond the build need on Debian 12 (idempotent):
# SLURM and munge for the slurm-labelled tests (tests/slurm/, which start
# their own private daemons with tools/slurm/up.sh), iproute2 for the
# two-host test (network namespaces), and clang with libFuzzer for
# tools/fuzz.sh (tests/fuzz). CI runs it before tools/test.sh; without
# these packages those tests are skipped, saying why.
#   tools/install-test-deps.sh
# test_export also needs node and npm (onnxruntime-node comes from the npm
# registry at test time): Debian's nodejs and npm are installed only where
# there is no npm yet, since a NodeSource node (npm inside) would be replaced.
# Needs root (or sudo) for apt-get. The Debian packages would start system
# daemons where systemd runs; the tests never use those.
set -euo pipefail

packages=(
  slurm-wlm slurmctld slurmd slurm-client   # SLURM 22.05: controller, node daemon, sbatch/srun
  munge                                     # the authentication SLURM uses
  iproute2                                  # ip netns, veth pairs
  clang libclang-rt-14-dev libomp-14-dev    # tools/fuzz.sh: clang 14, libFuzzer + sanitizer runtimes, OpenMP
  python3-torch python3-torchvision python3-h5py  # tests/torch: PyTorch equivalence of imported weights
  python3-onnx                              # test_export: the ONNX checker (and python3-torch: the exported module)
  python3-sklearn                           # test_oppoint, test_calibration, test_subgroups, test_uncertain: metrics recomputed by scikit-learn
  libjpeg-turbo-progs python3-pil           # cjpeg/djpeg and PIL: JPEG test inputs made at test time
  python3-pydicom dcmtk                     # test_ingest_dicom: DICOM fixtures, RLE/JPEG-LS/JPEG lossless copies
)

command -v npm >/dev/null || packages+=(nodejs npm)

# shellcheck source=tools/apt-install.sh
source "$(dirname "$0")/apt-install.sh"
apt_install install-test-deps "${packages[@]}"
