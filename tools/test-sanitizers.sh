#!/usr/bin/env bash
# Builds Thorax with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ and runs the unit, MPI and integration tests with it (the
# integration tests then drive the instrumented thorax binary, 2- and 4-rank
# training included). Leak checking is off: Open MPI and fontconfig keep
# allocations for the life of the process by design.
#   tools/test-sanitizers.sh [ctest options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${THORAX_ASAN_BUILD_DIR:-$root/build-asan}
"$root/tools/install-deps.sh"
# The C++ of src/data/dicom.cc makes g++ the linker of every executable
# using thorax_data, so the C++ flags carry the sanitizers too (else the
# ASan runtime would not come first).
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTHORAX_WERROR=ON \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" >/dev/null
cmake --build "$build" -j "$(nproc)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# allocator_may_return_null: unit.test_arena asks for more memory than any
# machine has and expects NULL (and the library's error), as glibc gives.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$build"
# The real-data tests only repeat, slower, what the plain build covers; so
# would the SLURM tests, which test the batch scripts, not thorax's memory.
ctest --output-on-failure -j 2 -E "real_data|ingest_shared" -LE slurm "$@"
