#!/usr/bin/env bash
# The README's quick start: installs dependencies, builds, writes the phantom
# dataset, and trains configs/quickstart.yaml on 2 MPI ranks.
# With THORAX_BIN set (as the tests do) it uses that binary and skips the
# install and the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${THORAX_BIN:-}" ]; then
  "$root/tools/install-deps.sh"
  "$root/tools/build.sh"
  THORAX_BIN=${THORAX_BUILD_DIR:-$root/build}/thorax
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
cd "$root"
mkdir -p data
[ -f data/phantom.h5 ] || "$THORAX_BIN" phantom --out data/phantom.h5 --size 64
name="quickstart-$(date +%Y%m%d-%H%M%S)"
mpirun -np 2 "$THORAX_BIN" train configs/quickstart.yaml --set name="$name"
echo "run directory: runs/$name"
