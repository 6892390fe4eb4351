#!/usr/bin/env bash
# Runs a short single-rank training under valgrind's memcheck: phantom data,
# the tests' tiny network (batch-norm and dropout), one epoch, then
# --resume auto for a second (checkpoint load and checksums), each ending in
# the evaluation phase (predictions, ROC, PNG plots). Fails on any memory
# error and on any definite leak not in tests/valgrind.supp, which holds
# only third-party libraries' (Open MPI, fontconfig) leaks, each explained.
# About 20 s.
#   tools/test-valgrind.sh [valgrind options]
#
# No launcher: thorax starts as an Open MPI singleton (MPI_Init without
# mpirun), so memcheck sees one process and none of mpirun's; `mpirun -np 1
# valgrind ...` would work too, with more Open MPI noise and no benefit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${THORAX_BUILD_DIR:-$root/build}
bin=$build/thorax
# shellcheck source=tools/apt-install.sh
source "$root/tools/apt-install.sh"
command -v valgrind >/dev/null || apt_install test-valgrind valgrind
[ -x "$bin" ] || { echo "test-valgrind: no $bin: build first (tools/build.sh)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# hwloc's x86 backend says it cannot work under valgrind; it need not.
export HWLOC_COMPONENTS=-x86

work=$(mktemp -d /tmp/thorax-valgrind-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin" phantom --out "$work/v.h5" --patients 24 --size 32 --seed 3 >/dev/null 2>"$work/phantom.err" ||
  { cat "$work/phantom.err" >&2; exit 1; }
{
  printf 'name: v\nseed: 1\ndata: {path: %s}\n' "$work/v.h5"
  cat "$root/tests/configs/tiny_net.yaml"
  printf 'train:\n  epochs: 1\n  batch_per_rank: 8\n  optimizer: {type: adam, lr: 0.002}\n'
  printf 'runtime: {out_dir: %s}\n' "$work/runs"
} > "$work/v.yaml"

vg=(valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
    --track-origins=yes --num-callers=40 --suppressions="$root/tests/valgrind.supp" "$@")
status=0
run() {
  local name=$1
  shift
  echo "test-valgrind: thorax $*"
  if ! "${vg[@]}" --log-file="$work/$name.vg" "$bin" "$@" >"$work/$name.out" 2>&1; then
    cat "$work/$name.out" "$work/$name.vg"
    echo "test-valgrind: FAILED: thorax $* (valgrind log above)" >&2
    status=1
  fi
  grep -E "ERROR SUMMARY|definitely lost:" "$work/$name.vg" | sed 's/^==[0-9]*== */  /'
}
run train train "$work/v.yaml"
run resume train "$work/v.yaml" --resume auto --set train.epochs=2
[ "$status" -eq 0 ] && echo "test-valgrind: clean"
exit "$status"
