#!/usr/bin/env bash
# Bad input through the command line: clear errors that name the culprit and
# a non-zero exit; --help everywhere.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
for cmd in phantom split train; do
  "$THORAX_BIN" $cmd --help | grep -q "usage: .*thorax $cmd" || fail "thorax $cmd --help"
done
"$THORAX_BIN" --help | grep -q "commands:" || fail "thorax --help"
expect_fail 2 "unknown command 'trian'" -- "$THORAX_BIN" trian
"$THORAX_BIN" phantom --out small.h5 --patients 30 --size 32 >/dev/null
cat > typo.yaml <<YAML
name: typo
data: {path: small.h5}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: gap}
    - {type: dense, out: labels}
train:
  optimzer: {lr: 0.1}
YAML
expect_fail 2 "typo.yaml:10" "optimzer" "optimizer" -- "$THORAX_BIN" train typo.yaml
sed 's/optimzer/optimizer/' typo.yaml > ok.yaml
expect_fail 2 "--set" "train.epochs" -- "$THORAX_BIN" train ok.yaml --set train.epochs=ten
expect_fail 1 "nope.h5" -- "$THORAX_BIN" train ok.yaml --set data.path=nope.h5
expect_fail 1 "Pneumotorax" "Pneumothorax" -- "$THORAX_BIN" train ok.yaml --set 'data.labels=[Pneumotorax]'
expect_fail 1 "64" "32x32" -- "$THORAX_BIN" train ok.yaml --set 'model.input=[1,64,64]'
echo "garbage" > corrupt.h5
expect_fail 1 "corrupt.h5" -- "$THORAX_BIN" train ok.yaml --set data.path=corrupt.h5
expect_fail 2 "--patients" -- "$THORAX_BIN" phantom --out x.h5 --patients -3
# The split report proves there is no leakage.
"$THORAX_BIN" split ok.yaml | tee split.txt
grep -q "leakage check: passed" split.txt || fail "split report"
echo "cli_errors: 1 passed, 0 failed"
