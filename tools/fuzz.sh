#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) into
# build-fuzz/ and runs each for SECONDS (default 60) on a scratch copy of its
# seed corpus, after replaying every regression input once. The repository is
# never written to: corpora grow in a scratch directory under /tmp.
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     targets: config csv png jpeg dataset lesions dicom
# Fails if any target crashes, leaks, or times out, printing where the crash
# input was saved. To keep it: copy it into tests/fuzz/regressions/<target>/
# (as NAME.hex, `xxd -p`, if it is binary: the repository commits no binary
# files), fix the bug, and the ordinary tests replay it from then on.
# Needs clang and libFuzzer (tools/install-test-deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config csv png jpeg dataset lesions dicom)
build=${THORAX_FUZZ_BUILD_DIR:-$root/build-fuzz}

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DTHORAX_FUZZ=ON -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1" \
  >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_seeds "${targets[@]/#/fuzz_}"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# fuzz_dataset's raw mode (real HDF5 files, mutated) soon crashes inside
# libhdf5 itself; off unless asked for (see tests/fuzz/fuzz_dataset.c).
export THORAX_FUZZ_RAW_HDF5=${THORAX_FUZZ_RAW_HDF5:-0}
scratch=$(mktemp -d /tmp/thorax-fuzz.XXXXXX)
"$build/tests/fuzz/fuzz_seeds" "$scratch/generated" >/dev/null
failed=()
for t in "${targets[@]}"; do
  dir=$scratch/$t
  mkdir -p "$dir/crashes"
  "$build/tests/fuzz/fuzz_seeds" --copy "$dir/corpus" "$root/tests/fuzz/corpus/$t" "$scratch/generated/$t"
  "$build/tests/fuzz/fuzz_seeds" --copy "$dir/regressions" "$root/tests/fuzz/regressions/$t"
  flags=(-timeout=20 -rss_limit_mb=2560 -max_len=65536 -artifact_prefix="$dir/crashes/")
  # Open MPI and HDF5 keep allocations for the life of the process by design:
  # no leak checks of the dataset target, neither per input nor at exit.
  leaks=1
  [ "$t" != dataset ] || { flags+=(-detect_leaks=0); leaks=0; }
  export ASAN_OPTIONS=detect_leaks=$leaks
  echo "fuzz: $t for ${secs}s (log: $dir/log)"
  rc=0
  if [ -n "$(ls -A "$dir/regressions")" ]; then
    "$build/tests/fuzz/fuzz_$t" "${flags[@]}" "$dir/regressions"/* >"$dir/log" 2>&1 || rc=$?
  fi
  if [ $rc -eq 0 ]; then
    "$build/tests/fuzz/fuzz_$t" "${flags[@]}" -max_total_time="$secs" -print_final_stats=1 \
      "$dir/corpus" >>"$dir/log" 2>&1 || rc=$?
  fi
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc); the end of its log:"
    tail -n 40 "$dir/log" | sed 's/^/  /'
    for f in "$dir/crashes"/*; do [ -e "$f" ] && echo "fuzz: $t: crash input saved as $f"; done
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$dir/log" | sed "s/^/fuzz: $t: /" || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (scratch: $scratch)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without a crash"
rm -rf "$scratch"
