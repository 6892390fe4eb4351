#!/usr/bin/env bash
# `thorax config`, the documentation generated from the config's key tables:
#  - docs/configuration.md is exactly `thorax config --reference` (regenerate
#    it when a key changes: build/thorax config --reference > docs/configuration.md);
#  - every key the resolved YAML writes (`--defaults`, walked by its
#    indentation here) has a row in the reference with a description, and
#    `--explain` describes it;
#  - every key line of `--defaults` has its doc as a comment above it, and the
#    output loads as a config (thorax split reads it);
#  - a wrong KEY is a usage error with the key it may have meant.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
doc="$THORAX_SOURCE_DIR/docs/configuration.md"

"$THORAX_BIN" --help | grep "config" >/dev/null || fail "thorax --help does not list config"
"$THORAX_BIN" config --help | grep -- "--explain KEY" >/dev/null || fail "config --help"

"$THORAX_BIN" config --reference > reference.md || fail "config --reference"
[ -f "$doc" ] || fail "$doc is missing"
diff -u "$doc" reference.md > reference.diff || {
  cat reference.diff >&2
  fail "docs/configuration.md differs from 'thorax config --reference': regenerate it with build/thorax config --reference > docs/configuration.md"
}

"$THORAX_BIN" config --defaults > defaults.yaml || fail "config --defaults"

# The dotted name of every key line of the defaults, from indentation alone
# (two spaces a level), and whether the line above it is a comment.
awk '
  /^ *#/ { commented = 1; next }
  /^ *[a-z_]+:/ {
    match($0, /^ */); depth = RLENGTH / 2
    key = $0; sub(/^ */, "", key); sub(/:.*/, "", key)
    path[depth] = key
    name = path[0]; for (i = 1; i <= depth; i++) name = name "." path[i]
    print name, commented
  }
  { commented = 0 }' defaults.yaml > keys.txt
[ "$(wc -l < keys.txt)" -ge 50 ] || { cat keys.txt; fail "too few keys in --defaults"; }
while read -r key commented; do
  [ "$commented" = 1 ] || fail "--defaults: $key has no doc comment above it"
  section=${key%.*}; leaf=${key##*.}
  [ "$section" = "$key" ] && section="Top level"
  # Its row under its section's heading: | `leaf` | type | default | accepts | description |
  row=$(awk -v s="## $section" -v k="| \`$leaf\` |" '
    $0 == s { on = 1; next } /^## / { on = 0 } on && index($0, k) == 1 { print; exit }' reference.md)
  [ -n "$row" ] || fail "no row for $key under '## $section' in the reference"
  description=$(printf '%s\n' "$row" | awk -F' \\| ' '{ print $5 }' | sed 's/ *|$//')
  [ -n "$description" ] || fail "$key has no description in the reference: $row"
  "$THORAX_BIN" config --explain "$key" > explain.txt || fail "config --explain $key"
  head -1 explain.txt | grep -F "$key: " >/dev/null || fail "config --explain $key: $(head -1 explain.txt)"
done < keys.txt

# Layer keys are not in the defaults' placeholder network as lines of their own.
for key in model.layers[].k model.layers[2].growth model.layers.width; do
  "$THORAX_BIN" config --explain "$key" > explain.txt || fail "config --explain $key"
done
grep "default:  out / 4" explain.txt >/dev/null || fail "config --explain model.layers.width: $(cat explain.txt)"

# The defaults load as a config, once given a dataset.
"$THORAX_BIN" phantom --out p.h5 --size 64 --patients 30 >/dev/null 2>&1 || fail "phantom"
"$THORAX_BIN" split defaults.yaml --set data.path="$WORK/p.h5" > split.txt || fail "thorax split on --defaults' output"
grep "^patients" split.txt >/dev/null || fail "thorax split on --defaults: $(cat split.txt)"

expect_fail 2 "train.optimzer.lr" "did you mean 'train.optimizer.lr'" -- "$THORAX_BIN" config --explain train.optimzer.lr
expect_fail 2 "'train.optimizer.lr' or 'train.unfreeze.lr'" -- "$THORAX_BIN" config --explain lr
expect_fail 2 "--explain needs one KEY" -- "$THORAX_BIN" config --explain
expect_fail 2 "unknown option '--bogus'" -- "$THORAX_BIN" config --bogus
expect_fail 2 "usage: thorax config" -- "$THORAX_BIN" config
echo "ok: reference up to date, $(wc -l < keys.txt) keys documented"
