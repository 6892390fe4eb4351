#!/usr/bin/env bash
# The module graph, checked include by include (ctest unit.module_edges).
#   check_modules.sh RULES SOURCE_DIR
# RULES is modules.txt, which CMakeLists.txt writes from its own tables:
#   uses MODULE DEP...          the modules MODULE may use
#   header NAME.h MODULE        the public header include/thorax/NAME.h is MODULE's
#   system NAME.h MODULE...     a library's header and the modules that may include it
# Every file of src/MODULE/ and every public header (as its module) is read:
# a "thorax/X.h" of a module it may not use, a system header its module may
# not include, or a private header reached in another directory ("../nn/x.h")
# is an edge the rule forbids. Each is named with its file and line; the
# exit status is 1 when there is any.
set -euo pipefail
rules=$1
src=$2
declare -A uses header_of system_ok

while read -r kind name rest; do
  case $kind in
    uses) uses[$name]=" $rest " ;;
    header) header_of[$name]=$rest ;;
    system) system_ok[$name]=" $rest " ;;
  esac
done < "$rules"

bad=0
checked=0
check_file() { # FILE MODULE
  local file=$1 mod=$2 n=0 line inc dep
  while IFS= read -r line; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*([\"\<])([^\"\>]+)[\"\>] ]] || continue
    inc=${BASH_REMATCH[2]}
    if [[ $inc == thorax/* ]]; then
      dep=${header_of[${inc#thorax/}]:-}
      if [ -z "$dep" ]; then
        echo "${file#"$src"/}:$n: #include \"$inc\": no such public header"
        bad=$((bad + 1))
      elif [ "$dep" != "$mod" ] && [[ ${uses[$mod]} != *" $dep "* ]]; then
        echo "${file#"$src"/}:$n: #include \"$inc\": $mod may not use $dep (it may use:${uses[$mod]})"
        bad=$((bad + 1))
      fi
    elif [ "${BASH_REMATCH[1]}" = '"' ]; then
      if [[ $inc == */* ]]; then
        echo "${file#"$src"/}:$n: #include \"$inc\": a private header of another directory"
        bad=$((bad + 1))
      fi
    elif [ -n "${system_ok[$inc]:-}" ] && [[ ${system_ok[$inc]} != *" $mod "* ]]; then
      echo "${file#"$src"/}:$n: #include <$inc>: $mod may not use it (only:${system_ok[$inc]})"
      bad=$((bad + 1))
    fi
  done < "$file"
  checked=$((checked + 1))
}

for dir in "$src"/src/*/; do
  mod=$(basename "$dir")
  if [ -z "${uses[$mod]+set}" ]; then
    echo "src/$mod: a module CMakeLists.txt does not know"
    bad=$((bad + 1))
    continue
  fi
  for f in "$dir"*.c "$dir"*.cc "$dir"*.h; do
    [ -e "$f" ] && check_file "$f" "$mod"
  done
done
for f in "$src"/include/thorax/*.h; do
  h=$(basename "$f")
  mod=${header_of[$h]:-}
  if [ -z "$mod" ]; then
    echo "include/thorax/$h: a public header no module owns (CMakeLists.txt THORAX_HEADERS_*)"
    bad=$((bad + 1))
    continue
  fi
  check_file "$f" "$mod"
done

echo "module_edges: $checked files, $bad forbidden edge(s)"
[ "$bad" -eq 0 ]
