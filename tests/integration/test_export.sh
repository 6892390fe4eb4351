#!/usr/bin/env bash
# thorax export against thorax predict: the quick start, ResNet-18 and
# DenseNet-121 as shipped (at 64x64, one short epoch on a phantom; ResNet-18
# at a lower rate, as its probabilities saturate at 0 or 1 after three steps
# at its own) and tests/export/all_layers.yaml (every layer type; per-image
# normalisation, softmax cross-entropy and val's temperatures) are exported
# as ONNX and as a PyTorch module, and both must give predict's
# probabilities on 32 images (64x64 and 80x80 phantom PNGs, gray and colour,
# resized as predict does) to 1e-4, with at least 16 of them in (0.02, 0.98):
#   - tests/tools/export_inputs writes the images as the models' input
#     (pixel / 255) and the probabilities predict computes, to 9 digits; they
#     must match predict's printed table to its 4 decimals;
#   - ONNX: the ONNX checker (python3-onnx, full check), and ONNX Runtime
#     (onnxruntime-node from npm, installed once into the build directory)
#     running all 32 images as one batch (tests/export/run_onnx.js);
#   - PyTorch: the generated .py with /usr/bin/python3 (python3-torch).
# Then the refusals: an --out that is an input of the run, a bad format, a
# missing run; and no temporary file is left behind.
# Exit 77 when node/npm (or the npm registry), python3-onnx or python3-torch
# is missing (tools/install-test-deps.sh), after running every other part.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
PY=/usr/bin/python3
CHECK=$THORAX_SOURCE_DIR/tests/export/check_export.py
TOL=1e-4
skips=()

have_onnx=0 have_torch=0 have_ort=0
if [ -x "$PY" ] && "$PY" -c 'import onnx' 2>/dev/null; then have_onnx=1
else skips+=("python3-onnx is not installed (tools/install-test-deps.sh)"); fi
if [ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null; then have_torch=1
else skips+=("python3-torch is not installed (tools/install-test-deps.sh)"); fi
# onnxruntime-node ships its Linux x64 CPU library in the package: no install
# scripts need to run. Installed into a temporary directory and renamed, so
# an interrupted install is never taken for a complete one.
ort_dir=$TOOLS/npm-export
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skips+=("node or npm is not installed")
else
  if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
    rm -rf "$ort_dir.tmp.$$"
    mkdir -p "$ort_dir.tmp.$$"
    if timeout 300 npm install --prefix "$ort_dir.tmp.$$" --ignore-scripts --no-audit --no-fund onnxruntime-node \
      >npm.log 2>&1; then
      mv -T "$ort_dir.tmp.$$" "$ort_dir" 2>/dev/null || rm -rf "$ort_dir.tmp.$$"
    else
      rm -rf "$ort_dir.tmp.$$"
    fi
  fi
  if NODE_PATH=$ort_dir/node_modules node -e "require('onnxruntime-node')" 2>node.log; then have_ort=1
  else skips+=("onnxruntime-node could not be installed or loaded from npm: $(tail -1 npm.log 2>/dev/null) $(tail -1 node.log)"); fi
fi

"$THORAX_BIN" phantom --out p.h5 --patients 24 --size 64 --studies 1 --prevalence 0.4 --seed 5 >/dev/null 2>&1
"$THORAX_BIN" phantom --out p32.h5 --patients 40 --size 32 --studies 1 --prevalence 0.4 --seed 5 >/dev/null 2>&1
"$THORAX_BIN" phantom --out i64.h5 --patients 8 --size 64 --seed 11 --preview i64 >/dev/null 2>&1
"$THORAX_BIN" phantom --out i80.h5 --patients 8 --size 80 --seed 12 --preview i80 >/dev/null 2>&1
images=(i64/*.png i80/*.png)
[ "${#images[@]}" = 32 ] || fail "expected 32 preview images, got ${#images[@]}"
printf '%s\n' "${images[@]}" >images.txt

common=(--set data.path="$WORK/p.h5" --set "data.split={train: 0.6, val: 0.2, test: 0.2}" --set train.epochs=1
        --set runtime.out_dir="$WORK/runs")
cfg=$THORAX_SOURCE_DIR/configs
# ONE run per model (NAME CONFIG [--set ...]), on 2 ranks like the others.
train() {
  local name=$1 config=$2
  shift 2
  mpi 2 "$THORAX_BIN" train "$config" "${common[@]}" --set name="$name" "$@" >"$name.log" 2>&1 \
    || { tail -20 "$name.log"; fail "$name did not train"; }
}

# check NAME LABEL...: predict, the tool, both exports of runs/NAME.
check() {
  local n=$1
  shift
  "$TOOLS/export_inputs" "runs/$n" best "$n.x.bin" "$n.ref.txt" "${images[@]}" || fail "$n: export_inputs"
  "$THORAX_BIN" predict "runs/$n" "${images[@]}" >"$n.predict.txt" 2>/dev/null || fail "$n: predict"
  # predict's table: the rows that start with an image name, '*' marks dropped.
  awk 'NR == FNR { want[$1] = 1; next } ($1 in want) { s = ""; for (i = 2; i <= NF; i++) { v = $i; sub(/\*$/, "", v); s = s (i > 2 ? " " : "") v } print s }' \
    images.txt "$n.predict.txt" >"$n.predict.probs"
  "$PY" "$CHECK" compare "$n.ref.txt" "$n.predict.probs" 6e-5 >/dev/null || fail "$n: export_inputs is not what predict prints"
  # Saturated probabilities would agree whatever the export computed.
  awk '{ for (i = 1; i <= NF; i++) if ($i > 0.02 && $i < 0.98) k++ } END { exit !(k >= 16) }' "$n.ref.txt" \
    || fail "$n: fewer than 16 probabilities in (0.02, 0.98): the comparison would prove little"
  local h w
  read -r h w < <(awk '/^model:/ { m = 1 } m && /input:/ { gsub(/[^0-9,]/, ""); split($0, a, ","); print a[2], a[3]; exit }' \
    "runs/$n/config.yaml")
  "$THORAX_BIN" export "runs/$n" --format onnx --out "$n.onnx" >"$n.export.log" || fail "$n: export onnx"
  "$THORAX_BIN" export "runs/$n" --format torch --out "$n.py" >>"$n.export.log" || fail "$n: export torch"
  [ -s "$n.onnx" ] && [ -s "$n.py" ] && [ -s "$n.bin" ] || fail "$n: export wrote $(ls "$n".*)"
  if [ $have_onnx = 1 ]; then "$PY" "$CHECK" onnx "$n.onnx" "$@" || fail "$n: ONNX check"; fi
  if [ $have_ort = 1 ]; then
    NODE_PATH=$ort_dir/node_modules node "$THORAX_SOURCE_DIR/tests/export/run_onnx.js" "$n.onnx" "$n.x.bin" 32 "$h" "$w" \
      "$n.ort.txt" || fail "$n: ONNX Runtime"
    "$PY" "$CHECK" compare "$n.ort.txt" "$n.ref.txt" $TOL || fail "$n: ONNX Runtime against predict"
  fi
  if [ $have_torch = 1 ]; then
    "$PY" "$CHECK" torch "$n.py" "$n.x.bin" 32 "$n.torch.txt" || fail "$n: the PyTorch module"
    "$PY" "$CHECK" compare "$n.torch.txt" "$n.ref.txt" $TOL || fail "$n: PyTorch against predict"
  fi
  echo "ok: $n exported"
}

train qs "$cfg/quickstart.yaml" --set train.batch_per_rank=4
check qs Pneumothorax Cardiomegaly Effusion Nodule
train r18 "$cfg/resnet18.yaml" --set "model.input=[1,64,64]" --set "data.labels=[Pneumothorax,Effusion]" \
  --set train.batch_per_rank=3 --set train.optimizer.lr=0.001
check r18 Pneumothorax Effusion
train d121 "$cfg/densenet121.yaml" --set "model.input=[1,64,64]" --set "data.labels=[Cardiomegaly]" \
  --set train.batch_per_rank=3
check d121 Cardiomegaly
# Every layer type; per-image normalisation, softmax, val's temperatures
# (eval --split val chooses them, and predict then applies them).
{ cat <<YAML
name: all
seed: 3
data: {path: $WORK/p32.h5, normalize: per_image}
train: {batch_per_rank: 4, loss: softmax_ce}
eval: {calibrate: temperature}
YAML
  cat "$THORAX_SOURCE_DIR/tests/export/all_layers.yaml"; } >all.yaml
train all all.yaml --set data.path="$WORK/p32.h5" --set train.epochs=2
"$THORAX_BIN" eval runs/all --split val >eval.log 2>&1 || { cat eval.log; fail "eval --split val of all"; }
"$THORAX_BIN" predict runs/all "${images[0]}" 2>/dev/null | grep 'temperature-scaled' >/dev/null \
  || fail "predict does not apply val's temperatures to all"
check all Pneumothorax Cardiomegaly Effusion Nodule
grep -q '"thorax.temperature"' all.py || fail "all.py does not carry the temperatures"

# --checkpoint last: the metadata names it.
"$THORAX_BIN" export runs/qs --checkpoint last --format torch --out last >/dev/null || fail "export --checkpoint last"
grep -q '"thorax.checkpoint": "last"' last.py || fail "last.py's metadata does not name the last checkpoint"
# --out in a directory that does not exist yet: made.
"$THORAX_BIN" export runs/qs --format onnx --out new/dir/qs.onnx >/dev/null || fail "export into a new directory"
cmp -s new/dir/qs.onnx qs.onnx || fail "new/dir/qs.onnx differs from qs.onnx"

# Refusals: nothing written over an input of the run.
cp runs/qs/config.yaml config.before
cp runs/qs/checkpoints/best.h5 best.before
expect_fail 1 "--out" "input of the run" -- "$THORAX_BIN" export runs/qs --format onnx --out runs/qs/config.yaml
expect_fail 1 "input of the run" -- "$THORAX_BIN" export runs/qs --format onnx --out runs/qs/checkpoints/best.h5
expect_fail 1 "input of the run" -- "$THORAX_BIN" export runs/qs --format onnx --out "$WORK/p.h5"
cmp -s config.before runs/qs/config.yaml || fail "config.yaml was changed"
cmp -s best.before runs/qs/checkpoints/best.h5 || fail "best.h5 was changed"
expect_fail 2 "--format must be onnx or torch" "tflite" -- "$THORAX_BIN" export runs/qs --format tflite --out x
expect_fail 2 "--checkpoint must be best or last" -- "$THORAX_BIN" export runs/qs --format onnx --checkpoint mid --out x
expect_fail 1 "runs/none" -- "$THORAX_BIN" export runs/none --format onnx --out x.onnx
expect_fail 2 "usage" -- "$THORAX_BIN" export runs/qs --format onnx
[ ! -e x ] && [ ! -e x.onnx ] || fail "a refused export wrote a file"
ls -- *.tmp runs/*/*.tmp 2>/dev/null && fail "a temporary file was left behind"
"$THORAX_BIN" export --help | grep "metadata_props" >/dev/null || fail "export --help does not describe the metadata"
"$THORAX_BIN" --help | grep "export" >/dev/null || fail "thorax --help does not list export"

if [ ${#skips[@]} -gt 0 ]; then
  printf 'skipped: %s\n' "${skips[@]}"
  exit 77
fi
echo "export: passed"
