#!/usr/bin/env bash
# The quick start, as the README runs it: tools/quickstart.sh itself, in a
# scratch copy of the repository's layout (with this build's binary, so it
# skips the install and the build), writes a fresh phantom file and runs
# `mpirun -np 2 thorax train configs/quickstart.yaml`. The run directory must
# hold what DESIGN.md lists, and the best val macro AUC must exceed 0.85.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
mkdir -p repo/tools repo/configs
cp "$THORAX_SOURCE_DIR/tools/quickstart.sh" repo/tools/
cp "$THORAX_SOURCE_DIR/configs/quickstart.yaml" repo/configs/
start=$(date +%s)
repo/tools/quickstart.sh | tee train.log
echo "quick start took $(( $(date +%s) - start ))s"
run=$(ls -d "$WORK"/repo/runs/quickstart-*)
mkdir -p "$WORK/runs" && mv "$run" "$WORK/runs/qs" && run="$WORK/runs/qs"
cp -r repo/data "$WORK/data"
for f in config.yaml split.csv metrics.csv checkpoints/last.h5 checkpoints/best.h5; do
  [ -s "$run/$f" ] || fail "run directory lacks $f"
done
ls "$run" "$run/checkpoints" | grep -q '\.tmp$' && fail "a temporary file was left behind"
head -1 "$run/metrics.csv" | grep -qx \
  'epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds,ranks,val_auc_Pneumothorax,val_auc_Cardiomegaly,val_auc_Effusion,val_auc_Nodule' \
  || fail "metrics.csv header: $(head -1 "$run/metrics.csv")"
# Every row: 2 ranks, and the macro AUC is the mean of the four label AUCs.
tail -n +2 "$run/metrics.csv" | awk -F, '$9 != 2 { exit 1 }
  { m = ($10 + $11 + $12 + $13) / 4; d = m - $6; if (d > 2e-6 || d < -2e-6) exit 1 }' \
  || fail "metrics.csv: ranks or per-label AUCs do not fit the macro AUC"
head -1 "$run/split.csv" | grep -qx 'image,patient_id,split' || fail "split.csv header"
# The resolved config loads again on its own and names every section.
for k in name: seed: data: model: train: eval: runtime:; do grep -q "^$k" "$run/config.yaml" || fail "config.yaml lacks $k"; done
# No patient in two splits.
leaks=$(tail -n +2 "$run/split.csv" | awk -F, '{print $2","$3}' | sort -u | cut -d, -f1 | uniq -d | wc -l)
[ "$leaks" -eq 0 ] || fail "$leaks patients in more than one split"
best=$(tail -n +2 "$run/metrics.csv" | cut -d, -f6 | sort -g | tail -1)
echo "best val macro AUC: $best"
awk -v a="$best" 'BEGIN { exit !(a > 0.85) }' || fail "best val macro AUC $best is not above 0.85"
# A second run into the same directory is refused rather than overwriting it.
expect_fail 2 "already holds a run" -- "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/quickstart.yaml" \
  --set runtime.out_dir="$WORK/runs" --set name=qs
echo "quickstart: 1 passed, 0 failed"
