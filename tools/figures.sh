#!/usr/bin/env bash
# Regenerates the figures docs/evaluation.md shows (tools/figures/*.png): a clean run
# of configs/phantom_cam.yaml (ROC curves, training curves, Grad-CAMs of true
# positives) next to the shortcut demo of configs/shortcut.yaml (Grad-CAMs of
# a network that learned a corner marker), and prints the AUCs docs/evaluation.md
# quotes. Takes a few minutes on 2 cores.
#   tools/figures.sh [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
thorax=${THORAX_BIN:-$root/build/thorax}
work=${1:-$(mktemp -d /tmp/thorax-figures-XXXXXX)}
out=$root/tools/figures
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$work/data" "$out"
cd "$work"
"$thorax" phantom --out data/phantom.h5 --size 64 >/dev/null
"$thorax" phantom --out data/phantom_shortcut.h5 --size 64 --shortcut-marker 0.9 >/dev/null
"$thorax" phantom --out data/phantom_clean.h5 --size 64 --seed 2 >/dev/null
run() { mpirun -np 2 "$thorax" "$@"; }

run train "$root/configs/phantom_cam.yaml" --set runtime.out_dir=runs | grep ' rank0 eval:'
run cam runs/phantom_cam --top-k 10 | tail -n 3
run train "$root/configs/shortcut.yaml" --set runtime.out_dir=runs | grep ' rank0 eval:'
run eval runs/shortcut --data data/phantom_clean.h5 | grep ' rank0 eval:'
run cam runs/shortcut --label Pneumothorax --top-k 10 | tail -n 3

auc() { grep -A1 "\"$2\"" "$1" | grep -o '"auc": [0-9.]*' | head -1; }
echo "shortcut run, Pneumothorax: internal test $(auc runs/shortcut/eval/test/metrics.json Pneumothorax)," \
  "clean external $(auc runs/shortcut/eval/data-phantom_clean-*/metrics.json Pneumothorax)"

cp runs/phantom_cam/eval/test/roc.png "$out/roc.png"
cp runs/phantom_cam/curves.png "$out/curves.png"
# cam/best/gradcam/maps_<label>.h5 (a run with --label) lists the label's
# true positives first, the most confident first: the overlay of its k-th row
# (named with its outcome at the operating point, hence the glob).
overlay() { # RUN LABEL K
  local dir=$1/cam/best/gradcam name f
  name=$(h5dump -d /image_name "$dir/maps_$2.h5" | grep '^ *(' | grep -o '"[^"]*"' | sed -n "$3p" | tr -d '"')
  for f in "$dir/${name%.png}__$2__gradcam_"*.png; do echo "$f"; return; done
}
run cam runs/phantom_cam --label Pneumothorax --top-k 1 >/dev/null
cp "$(overlay runs/phantom_cam Pneumothorax 1)" "$out/clean_1.png"
run cam runs/phantom_cam --label Nodule --top-k 1 >/dev/null
cp "$(overlay runs/phantom_cam Nodule 1)" "$out/clean_2.png"
for k in 1 2; do cp "$(overlay runs/shortcut Pneumothorax $k)" "$out/shortcut_$k.png"; done
echo "figures in $out (work files in $work)"
