#!/usr/bin/env bash
# Every case of tests/corpus/bad_input (see its README.md): a command on bad
# input (config, data, checkpoint, image, command line) exits with the
# expected status, names the culprit, says so once, finishes within 60 s, and
# leaves no *.tmp or partial output behind. Lists every case that fails.
# Then the --help of every command.
# THORAX_CASES="a b" runs only those cases (when working on them).
source "$(dirname "$0")/lib.sh"
CORPUS="$THORAX_SOURCE_DIR/tests/corpus/bad_input"
FIX="$WORK/fix"
mkdir -p "$FIX"
t_start=$SECONDS

# ---- Fixtures, made once ----------------------------------------------------
(
  cd "$FIX"
  "$THORAX_BIN" phantom --out small.h5 --patients 30 --size 32 --seed 3
  "$THORAX_BIN" phantom --out zero.h5 --patients 30 --size 32 --prevalence 0
  "$THORAX_BIN" phantom --out s64.h5 --patients 8 --size 64
  mkdir -p images && "$TOOLS/make_test_pngs" images
  # The runs keep absolute data paths so that a case can use a copy anywhere.
  cp "$CORPUS/base.yaml" base.yaml
  mpi 2 "$THORAX_BIN" train base.yaml --set data.path="$FIX/small.h5" --set runtime.out_dir="$FIX/runs"
  mpi 2 "$THORAX_BIN" train base.yaml --set data.path="$FIX/small.h5" --set runtime.out_dir="$FIX/runs" \
    --set name=other --set 'model.layers[0].out=6'
  mv runs/base run && mv runs/other other && rmdir runs
) >"$WORK/fixtures.log" 2>&1 || { cat "$WORK/fixtures.log" >&2; fail "making the fixtures"; }

passed=0
failed=0
ASAN_LIB=$(ldd "$THORAX_BIN" | awk '/libasan/ {print $3}')
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }

# One case; returns non-zero (after saying why on stderr) if any expectation fails.
run_case() {
  local name=$1 dir=$2 scratch="$WORK/cases/$1"
  local cmd="" has_cmd="" np="" want="" words="" key value line
  local setups=() absents=() envs=()
  while IFS= read -r line || [ -n "$line" ]; do
    [[ -z "${line//[[:space:]]/}" || "$line" =~ ^[[:space:]]*# ]] && continue
    key=$(trim "${line%%:*}")
    value=$(trim "${line#*:}")
    case "$key" in
      cmd) cmd=$value has_cmd=1 ;;
      np) np=$value ;;
      env) envs+=("$value") ;;
      setup) setups+=("$value") ;;
      exit) want=$value ;;
      words) words=$value ;;
      absent) absents+=("$value") ;;
      *) echo "$name: unknown key '$key' in its case file" >&2; return 1 ;;
    esac
  done <"$dir/case"
  [ -n "$has_cmd" ] && [ -n "$want" ] || { echo "$name: the case file needs cmd: and exit:" >&2; return 1; }

  mkdir -p "$scratch"
  find "$dir" -maxdepth 1 -type f ! -name case -exec cp {} "$scratch/" \;
  cp "$CORPUS/base.yaml" "$scratch/base.yaml"
  ln -s "$FIX/small.h5" "$FIX/zero.h5" "$FIX/s64.h5" "$FIX/images" "$scratch/"
  local s
  for s in "${setups[@]}"; do
    (cd "$scratch" && FIX="$FIX" THORAX="$THORAX_BIN" TOOLS="$TOOLS" bash -euo pipefail -c "$s") >"$scratch.setup" 2>&1 ||
      { cat "$scratch.setup" >&2; echo "$name: setup '$s' failed" >&2; return 1; }
  done

  local argv=() launcher=() e
  eval "argv=($cmd)"
  # A preloaded shim (the full-disk cases) must come after ASan's runtime in
  # a sanitizer build, which refuses to start otherwise.
  for e in "${!envs[@]}"; do
    [[ -n "$ASAN_LIB" && "${envs[$e]}" == LD_PRELOAD=* ]] && envs[$e]="LD_PRELOAD=$ASAN_LIB:${envs[$e]#LD_PRELOAD=}"
  done
  if [ -n "$np" ]; then
    launcher=("$MPIEXEC" -np "$np" --oversubscribe)
    for e in "${envs[@]}"; do launcher+=(-x "$e"); done
  fi
  local got=0
  (
    cd "$scratch"
    for e in "${envs[@]}"; do export "${e?}"; done
    exec timeout -k 5 60 "${launcher[@]}" "$THORAX_BIN" "${argv[@]}"
  ) >"$scratch.stdout" 2>"$scratch.stderr" || got=$?
  local text="$scratch.stderr"
  if [ "$want" = 0 ]; then
    text="$scratch.both"
    cat "$scratch.stdout" "$scratch.stderr" >"$text"
  fi
  local why=""
  if [ "$got" = 124 ] || [ "$got" = 137 ]; then
    why="did not finish within 60 s"
  elif [ "$got" != "$want" ]; then
    why="exited $got, expected $want"
  fi
  local w wordlist
  IFS=';' read -ra wordlist <<<"$words"
  for w in "${wordlist[@]}"; do
    w=$(trim "$w")
    [ -z "$w" ] || grep -qF -- "$w" "$text" || why="${why:+$why; }the output does not mention '$w'"
  done
  # Rank 0 alone tells an error; every rank saying it is noise in a job log.
  local twice
  twice=$(grep '^thorax: ' "$scratch.stderr" | sort | uniq -d | head -1)
  [ -z "$twice" ] || why="${why:+$why; }said twice: $twice"
  local left
  left=$(find "$scratch" -name '*.tmp' | head -1)
  [ -z "$left" ] || why="${why:+$why; }left ${left#"$scratch/"} behind"
  for s in "${absents[@]}"; do
    [ ! -e "$scratch/$s" ] || why="${why:+$why; }left $s behind"
  done
  if [ -n "$why" ]; then
    {
      echo "--- $name: thorax ${argv[*]}${np:+ (mpirun -np $np)}"
      sed 's/^/    stdout: /' "$scratch.stdout" | head -20
      sed 's/^/    stderr: /' "$scratch.stderr" | head -20
      echo "$name: $why"
    } >&2
    return 1
  fi
  return 0
}

failures=()
for dir in "$CORPUS"/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [ -f "$dir/case" ] || continue
  [ -z "${THORAX_CASES:-}" ] || [[ " $THORAX_CASES " == *" $name "* ]] || continue
  t0=$SECONDS
  if run_case "$name" "$dir"; then
    echo "ok   $name ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  else
    echo "FAIL $name ($((SECONDS - t0)) s)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
done

# --help everywhere: on stdout, status 0.
for c in ingest phantom split train eval cam predict export compare bench lr-find config; do
  if "$THORAX_BIN" $c --help 2>/dev/null | grep "usage: .*thorax $c" >/dev/null; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$c --help")
  fi
  # 'thorax help CMD' is the same text.
  if cmp -s <("$THORAX_BIN" $c --help 2>&1) <("$THORAX_BIN" help $c 2>&1); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("help $c")
  fi
done
if "$THORAX_BIN" --version | grep -E "^thorax [0-9]+\.[0-9]+\.[0-9]+ \(.+\)$" >/dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); failures+=("--version")
fi
if "$THORAX_BIN" --help | grep "commands:" >/dev/null; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("--help"); fi

echo "bad_inputs: $passed passed, $failed failed in $((SECONDS - t_start)) s"
[ "$failed" = 0 ] || fail "cases: ${failures[*]}"
