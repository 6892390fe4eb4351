#!/usr/bin/env bash
# Real X-rays end to end (../shared/data, skipped when absent):
#  - nih14_kcr1000's own split lets 30 patients into two splits: training with
#    `split: predefined` refuses to start and names them; with on_leak:
#    drop_from_eval it goes on without those patients' val/test images; with a
#    patient split, split.csv has no patient in two splits;
#  - `mpirun -np 2 thorax train` runs on an ingested kermany224 file.
source "$(dirname "$0")/lib.sh"
DATA="$THORAX_SOURCE_DIR/../shared/data"
if [ ! -d "$DATA/nih14_kcr1000" ] || [ ! -d "$DATA/kermany224" ]; then
  echo "real_data skipped: ../shared/data not found (looked in $DATA)"
  exit 77   # ctest's skip: nothing was asserted
fi
cd "$WORK"
"$THORAX_BIN" ingest --csv "$DATA/nih14_kcr1000/labels.csv" --images "$DATA/nih14_kcr1000/images" --out nih.h5 >/dev/null
cat > nih.yaml <<YAML
name: nih
data: {path: $WORK/nih.h5, split: predefined}
model:
  input: [1, 64, 64]
  layers:
    - {type: conv, out: 8, k: 3, pad: 1}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 1, batch_per_rank: 32, loss: bce}
eval: {split: val}
runtime: {out_dir: $WORK/runs}
YAML
expect_fail 1 "30 patients" "309 images" "00000" "drop_from_eval" -- mpi 2 "$THORAX_BIN" train nih.yaml
# Hernia and Pneumonia are too rare for some splits: keep to common findings.
labels='data.labels=[Effusion,Infiltration,Atelectasis]'
mpi 2 "$THORAX_BIN" train nih.yaml --set "$labels" --set data.on_leak=drop_from_eval --set name=drop >drop.log \
  || { cat drop.log; fail "training with on_leak: drop_from_eval"; }
grep -q "left out" drop.log || fail "the log does not say how many images were left out"
leaks=$(tail -n +2 runs/drop/split.csv | grep -v ',none$' | awk -F, '{print $2","$3}' | sort -u | cut -d, -f1 | uniq -d | wc -l)
[ "$leaks" -eq 0 ] || fail "$leaks patients still cross splits after drop_from_eval"
mpi 2 "$THORAX_BIN" train nih.yaml --set "$labels" --set 'data.split={train: 0.6, val: 0.2, test: 0.2}' \
  --set name=bypatient >bp.log || { cat bp.log; fail "training with a patient split"; }
leaks=$(tail -n +2 runs/bypatient/split.csv | awk -F, '{print $2","$3}' | sort -u | cut -d, -f1 | uniq -d | wc -l)
[ "$leaks" -eq 0 ] || fail "$leaks patients in two splits with a patient split"

"$THORAX_BIN" ingest --csv "$DATA/kermany224/labels.csv" --images "$DATA/kermany224/images" --out kermany.h5 \
  --labels Pneumonia >/dev/null
cat > k.yaml <<YAML
name: kermany
data: {path: $WORK/kermany.h5}
model:
  input: [1, 224, 224]
  layers:
    - {type: conv, out: 8, k: 5, stride: 4, pad: 2}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: conv, out: 16, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 1, batch_per_rank: 32}
runtime: {out_dir: $WORK/runs}
YAML
start=$(date +%s)
mpi 2 "$THORAX_BIN" train k.yaml >k.log || { cat k.log; fail "training on ingested kermany224"; }
grep -q " rank0 eval: .*macro AUC" k.log || { cat k.log; fail "no evaluation after training on kermany224"; }
echo "kermany224: one epoch on 2 ranks in $(( $(date +%s) - start ))s; $(grep ' rank0 eval:' k.log)"
echo "real_data: 1 passed, 0 failed"
