#!/usr/bin/env bash
# Runs ctest in the current build directory and, after its summary, says why
# each skipped test (exit 77) did not run: ctest lists skipped tests by name
# only, and a skip counted among the passes hides a missing package.
#   tools/ctest-summary.sh [ctest options]
# With THORAX_REQUIRE_ALL_TESTS=1 (CI, where every test dependency is
# installed) a skipped test fails the run.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ctest "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
mapfile -t skipped < <(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$log")
[ ${#skipped[@]} -eq 0 ] && exit "$rc"
echo
echo "${#skipped[@]} test(s) skipped; the last lines each printed:"
for t in "${skipped[@]}"; do
  echo "  $t:"
  # LastTest.log holds every test's output between "Output:" + a rule and
  # "<end of output>", after a "N/M Testing: NAME" line.
  awk -v name="$t" '
    $0 ~ "^[0-9]+/[0-9]+ Testing: " && $3 == name { on = 1; next }
    on && /^<end of output>/ { exit }
    on && out { lines[n++] = $0 }
    on && /^Output:/ { getline; out = 1 }
    END { for (i = (n > 3 ? n - 3 : 0); i < n; i++) print "    " lines[i] }
  ' Testing/Temporary/LastTest.log
done
if [ "${THORAX_REQUIRE_ALL_TESTS:-0}" = 1 ] && [ "$rc" -eq 0 ]; then
  echo "THORAX_REQUIRE_ALL_TESTS=1: every test must run on this machine" >&2
  rc=1
fi
exit "$rc"
