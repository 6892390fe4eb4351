#!/usr/bin/env bash
# `thorax ingest` on bad input: every case of tests/corpus/ingest/cases.txt
# exits as expected and says what it must (the CSV file:line and the image at
# fault); a failed run leaves nothing at all in its output folder (no *.tmp,
# no half-written file, no report); --skip-bad writes the dataset and a report
# that lists each bad row with its reason. Then what the corpus cannot say in
# one line: 16-bit, RGBA and RGB files decode to the same pixels as their
# 8-bit gray twins, a failed run never replaces an existing output, and
# --help and the progress line are there.
source "$(dirname "$0")/lib.sh"
CORPUS="$THORAX_SOURCE_DIR/tests/corpus/ingest"
IMAGES="$WORK/images"
mkdir -p "$IMAGES"
"$TOOLS/make_test_pngs" "$IMAGES" || fail "make_test_pngs"

passed=0
failed=0
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }

# One corpus case; returns non-zero (after saying why) if any expectation fails.
run_case() {
  local name=$1 args=$2 want=$3 words=$4
  local dir="$WORK/out/$name"
  mkdir -p "$dir"
  args=${args//\{csv\}/$CORPUS}
  args=${args//\{images\}/$IMAGES}
  args=${args//\{out\}/$dir/x.h5}
  args=${args//\{work\}/$WORK}
  local argv
  read -ra argv <<<"$args"
  local got=0
  "$THORAX_BIN" ingest "${argv[@]}" >"$dir.stdout" 2>"$dir.stderr" || got=$?
  local text="$dir.stderr"
  [ "$want" = 0 ] && text="$dir.stdout"
  if [ "$got" != "$want" ]; then
    cat "$dir.stdout" "$dir.stderr" >&2
    echo "$name: exited $got, expected $want" >&2
    return 1
  fi
  local w
  IFS=';' read -ra wordlist <<<"$words"
  for w in "${wordlist[@]}"; do
    w=$(trim "$w")
    [ -z "$w" ] && continue
    grep -qF -- "$w" "$text" || { cat "$text" >&2; echo "$name: output does not mention '$w'" >&2; return 1; }
  done
  if [ "$want" = 0 ]; then
    [ -f "$dir/x.h5" ] || { echo "$name: no output file" >&2; return 1; }
    "$TOOLS/h5_summary" "$dir/x.h5" >"$dir.summary" || { echo "$name: output unreadable" >&2; return 1; }
    if [[ " ${argv[*]} " == *" --skip-bad "* ]]; then
      [ -f "$dir/x.h5.skipped.csv" ] || { echo "$name: no report" >&2; return 1; }
      head -1 "$dir/x.h5.skipped.csv" | grep -qx "line,image,reason" || { echo "$name: report header" >&2; return 1; }
    fi
  fi
  local left
  left=$(find "$dir" "$WORK" -maxdepth 1 -name '*.tmp' | head -1)
  [ -z "$left" ] || { echo "$name: left $left behind" >&2; return 1; }
  if [ "$want" != 0 ] && [ -n "$(ls -A "$dir")" ]; then
    echo "$name: a failed run left $(ls -A "$dir" | tr '\n' ' ')" >&2
    return 1
  fi
  return 0
}

while IFS='|' read -r name args want words; do
  name=$(trim "$name")
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  if run_case "$name" "$(trim "$args")" "$(trim "$want")" "$words"; then
    passed=$((passed + 1))
  else
    bad "case $name"
  fi
done <"$CORPUS/cases.txt"

# --help, and the progress line with its rate.
"$THORAX_BIN" ingest --help | grep "usage: thorax ingest" >/dev/null && passed=$((passed + 1)) || bad "thorax ingest --help"
grep -qE "ingest: 4/4 images \(100%\), [0-9]+ img/s" "$WORK/out/good.stderr" && passed=$((passed + 1)) || bad "no progress line"

# The report of the run with every kind of bad row: one line each, with the reason.
report="$WORK/out/everything/x.h5.skipped.csv"
for want in '^3,truncated.png,.*truncated' '^4,text.png,.*not a PNG or JPEG file' '^5,nothere.png,.*No such file' \
            "^8,b.png,\"label Effusion is '2'" '^9,c.png,"3 fields, but the header has 4"' \
            '^10,a.png,duplicate image name \(also on line 2\)' '^11,d.png,no patient ID'; do
  if grep -qE -- "$want" "$report" 2>/dev/null; then passed=$((passed + 1)); else bad "report line $want"; fi
done
[ "$(wc -l <"$report")" = 8 ] && passed=$((passed + 1)) || bad "report has $(wc -l <"$report") lines, expected 8"

# 16-bit gray, RGBA and RGB decode to their 8-bit twins (same pixel sum, row by row).
rows="$WORK/pixels.rows"
"$TOOLS/h5_summary" "$WORK/out/sixteen_bit/x.h5" --rows >"$rows"
sum_of() { awk -v n="$1" '$1 == n {print $4}' "$rows"; }
for pair in a.png:gray16.png b.png:rgba.png c.png:rgb.png; do
  x=$(sum_of "${pair%%:*}")
  y=$(sum_of "${pair##*:}")
  if [ -n "$x" ] && [ "$x" = "$y" ]; then passed=$((passed + 1)); else bad "$pair pixel sums $x and $y differ"; fi
done
[ "$(sum_of a.png)" != "$(sum_of b.png)" ] && passed=$((passed + 1)) || bad "a.png and b.png should differ"

# A failed run leaves an existing output as it was.
keep="$WORK/keep.h5"
"$THORAX_BIN" ingest --csv "$CORPUS/good.csv" --images "$IMAGES" --out "$keep" >/dev/null
before=$(cksum <"$keep")
"$THORAX_BIN" ingest --csv "$CORPUS/truncated.csv" --images "$IMAGES" --out "$keep" 2>/dev/null && bad "truncated.csv succeeded"
if [ "$(cksum <"$keep")" = "$before" ] && [ ! -e "$keep.tmp" ]; then passed=$((passed + 1)); else bad "failed run changed $keep"; fi

echo "ingest_bad: $passed passed, $failed failed"
[ "$failed" = 0 ]
