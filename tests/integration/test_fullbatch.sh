#!/usr/bin/env bash
# Full-batch check: with batch_per_rank larger than the training split, one
# step is the gradient of the whole split, so 1 rank and 2 ranks (and 3, with
# uneven shards) must end with the same parameters after 3 epochs. The
# normalisation statistics must equal those of one process reading the file.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out fb.h5 --patients 60 --size 32 --seed 7 >/dev/null
cat > fb.yaml <<YAML
name: fb
seed: 3
data: {path: $WORK/fb.h5, split: {train: 0.7, val: 0.15, test: 0.15}}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 8, k: 3, pad: 1}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: conv, out: 16, k: 3, pad: 1, stride: 2}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train:
  epochs: 3
  batch_per_rank: 100000
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4}
runtime: {out_dir: $WORK/runs}
YAML
for np in 1 2 3; do
  mpi $np "$THORAX_BIN" train fb.yaml --set name=np$np >"np$np.log" || { cat "np$np.log"; fail "training on $np ranks"; }
done
for np in 2 3; do
  "$TOOLS/ckpt_compare" runs/np1/checkpoints/last.h5 runs/np$np/checkpoints/last.h5 1e-4 \
    || fail "parameters after 3 epochs differ between 1 and $np ranks"
done
# The same split whatever the number of ranks.
cmp runs/np1/split.csv runs/np2/split.csv || fail "split.csv differs between 1 and 2 ranks"
# The training-set statistics, summed across ranks, equal a one-process computation.
for np in 1 3; do
  "$TOOLS/norm_check" fb.h5 runs/np$np/split.csv runs/np$np/checkpoints/last.h5 \
    || fail "normalisation statistics on $np ranks differ from a one-process computation"
done
echo "fullbatch: 1 passed, 0 failed"
