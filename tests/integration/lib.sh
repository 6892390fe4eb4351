# Shared by the integration tests: a scratch directory, the binary, mpirun.
set -euo pipefail
: "${THORAX_BIN:?run through ctest, or set THORAX_BIN to the thorax binary}"
: "${THORAX_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${MPIEXEC:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d /tmp/thorax-it-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TOOLS=${THORAX_TEST_BIN_DIR:-$(dirname "$THORAX_BIN")/tests}

fail() { echo "FAIL: $*" >&2; exit 1; }
mpi() { local np=$1; shift; "$MPIEXEC" -np "$np" --oversubscribe "$@"; }

# expect_fail STATUS WORDS... -- CMD...: CMD must exit STATUS and its stderr contain every WORD.
expect_fail() {
  local want=$1; shift
  local words=()
  while [ "$1" != "--" ]; do words+=("$1"); shift; done
  shift
  local got=0
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || got=$?
  [ "$got" = "$want" ] || { cat "$WORK/err.txt" >&2; fail "$* exited $got, expected $want"; }
  for w in "${words[@]}"; do
    grep -qF -- "$w" "$WORK/err.txt" || { cat "$WORK/err.txt" >&2; fail "error of '$*' does not mention '$w'"; }
  done
}
