#!/usr/bin/env bash
# unit.module_edges: the tree keeps the module graph (check_modules.sh), and
# the check does catch the edges the rule forbids: a copy of the tree with
# <mpi.h> planted in src/nn, "thorax/nn.h" in src/data or in src/config
# must each fail, naming the file and the edge.
#   test_module_edges.sh RULES SOURCE_DIR
set -euo pipefail
rules=$1
src=$2
check="$(dirname "$0")/check_modules.sh"
bash "$check" "$rules" "$src"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plant() { # FILE LINE WORDS: the check on a copy with LINE added to FILE must fail saying WORDS
  rm -rf "$work/tree"
  mkdir -p "$work/tree"
  cp -r "$src/src" "$src/include" "$work/tree/"
  printf '%s\n' "$2" >> "$work/tree/$1"
  if out=$(bash "$check" "$rules" "$work/tree" 2>&1); then
    echo "FAIL: $1 with '$2' passed the check"
    exit 1
  fi
  if ! grep -qF "$3" <<<"$out"; then
    echo "FAIL: $1 with '$2': the check did not say '$3':"
    echo "$out"
    exit 1
  fi
  echo "caught: $(grep -F "$3" <<<"$out" | head -1)"
}
first() { ls "$src/src/$1/"*.c | head -1 | sed "s|^$src/||"; }
plant "$(first nn)" '#include <mpi.h>' 'nn may not use it'
plant "$(first data)" '#include "thorax/nn.h"' 'data may not use nn'
plant "$(first config)" '#include "thorax/nn.h"' 'config may not use nn'
plant "$(first render)" '#include "../nn/simd.h"' 'private header of another directory'
echo "module_edges: 5 passed, 0 failed"
