#!/usr/bin/env bash
# The README's test command: installs the build and test dependencies,
# builds, runs every test.
#   tools/test.sh [ctest options]     e.g. tools/test.sh -L unit
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${THORAX_BUILD_DIR:-$root/build}
"$root/tools/install-deps.sh"
# The test tools too (SLURM, PyTorch, pydicom, clang...): without them their
# tests would be skipped, and a newcomer would run fewer tests than CI.
"$root/tools/install-test-deps.sh"
"$root/tools/build.sh" -DTHORAX_WERROR=ON
# Open MPI refuses root unless told; tests run on 2 cores with up to 4 ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
cd "$build"
# A skipped test (exit 77) is listed with the reason it gave, not counted as
# passed in silence; THORAX_REQUIRE_ALL_TESTS=1 makes a skip fail the run.
exec "$root/tools/ctest-summary.sh" --output-on-failure -j 2 "$@"
