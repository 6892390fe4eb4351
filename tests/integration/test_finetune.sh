#!/usr/bin/env bash
# Fine-tuning on 2 ranks, with the quick start's network on a small phantom
# file (SGD with Nesterov momentum, weight decay and the plateau schedule):
#  - run A trains from scratch; run B starts from A's best.h5 (model.init),
#    freezes the four convolutions for 2 epochs, then trains everything at
#    lr 0.01 (train.unfreeze) for 2 more; the log says all three;
#  - a checkpoint of B's first stage holds no optimiser state for the frozen
#    convolutions, and their tensors are bit-identical to A's (momentum and
#    weight decay never touched them) while the head and batch-norms moved;
#    the second stage moves them; metrics.csv logs lr 0.1, 0.1, 0.01, 0.01;
#  - B stopped in the first stage, at the boundary, and in the second stage,
#    then resumed, ends bit-identical to B uninterrupted;
#  - resuming with another train.freeze is refused, naming the key;
#  - lr-find applies train.freeze.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out ft.h5 --patients 60 --size 32 --seed 5 >/dev/null
Q="$THORAX_SOURCE_DIR/configs/quickstart.yaml"
common=(--set data.path="$WORK/ft.h5" --set 'model.input=[1, 32, 32]' --set runtime.out_dir="$WORK/runs")
stages=(--set train.epochs=4 --set model.init="$WORK/runs/A/checkpoints/best.h5"
  --set 'train.freeze=[conv1, conv2, conv3, conv4]' --set 'train.unfreeze={epoch: 2, lr: 0.01}')
train() { mpi 2 "$THORAX_BIN" train "$Q" "${common[@]}" "$@"; }
# stop_at STEP ARGS...: a run the test hook stops after global step STEP (exit 75).
stop_at() {
  local at=$1 status=0
  shift
  THORAX_TEST_STOP_STEP=$at mpi 2 -x THORAX_TEST_STOP_STEP "$THORAX_BIN" train "$Q" "${common[@]}" "$@" \
    >"$WORK/stop$at.log" 2>&1 || status=$?
  [ "$status" -eq 75 ] || { cat "$WORK/stop$at.log"; fail "a run stopped at step $at exited $status, not 75"; }
}
same() { "$TOOLS/ckpt_compare" "$1" "$2" 0 >cmp.txt || { cat cmp.txt; fail "$3"; }; }
# tensors A B: the relative difference of every tensor of A.h5 and B.h5, as "name difference" lines.
tensors() {
  { "$TOOLS/ckpt_compare" "$1" "$2" 0 || true; } | awk '/relative difference/ && $1 != "worst" { print $1, $4 }'
}

train --set name=A --set train.epochs=2 >A.log 2>&1 || { cat A.log; fail "run A"; }
train --set name=B "${stages[@]}" >B.log 2>&1 || { cat B.log; fail "run B"; }
grep -q "init: 26 tensors from $WORK/runs/A/checkpoints/best.h5\$" B.log || { cat B.log; fail "no init line"; }
grep -q "freeze: conv1, conv2, conv3, conv4 (4 layers with parameters) for the first 2 epochs: 500 of 24884 parameters train" B.log ||
  { cat B.log; fail "no freeze line"; }
grep -q "unfreeze: from epoch 3 every layer trains" B.log || { cat B.log; fail "no unfreeze line"; }
lrs=$(tail -n +2 runs/B/metrics.csv | cut -d, -f3 | paste -sd' ')
[ "$lrs" = "0.1 0.1 0.01 0.01" ] || { cat runs/B/metrics.csv; fail "learning rates per epoch: $lrs"; }
grep -q "^  freeze: \[conv1, conv2, conv3, conv4\]$" runs/B/config.yaml || fail "config.yaml lacks train.freeze"

# Stopped mid-way through the first stage (global step 6, 4 steps per epoch).
stop_at 6 --set name=S6 "${stages[@]}"
h5ls -r runs/S6/checkpoints/last.h5 >s6.ls || fail "h5ls cannot read the first stage's checkpoint"
grep -q "^/optimizer/fc.weight.m " s6.ls || { cat s6.ls; fail "the first stage's checkpoint lacks the head's momentum"; }
! grep -q "^/optimizer/conv" s6.ls || { cat s6.ls; fail "the first stage's checkpoint holds state for frozen tensors"; }
# The frozen convolutions are A's bits; the rest moved.
tensors runs/A/checkpoints/best.h5 runs/S6/checkpoints/last.h5 >s6.diff
[ "$(grep -c '^conv' s6.diff)" -eq 8 ] || { cat s6.diff; fail "not 8 conv tensors compared"; }
awk '/^conv/ && $2 != 0 { bad = 1 } END { exit bad }' s6.diff || { cat s6.diff; fail "a frozen convolution changed"; }
awk '$1 == "fc.weight" && $2 != 0 { ok = 1 } END { exit !ok }' s6.diff || { cat s6.diff; fail "the head did not train"; }
awk '$1 == "bn1.weight" && $2 != 0 { ok = 1 } END { exit !ok }' s6.diff || { cat s6.diff; fail "bn1 did not train"; }

# At the boundary (step 8 ends epoch 2) and in the second stage (step 10).
stop_at 8 --set name=S8 "${stages[@]}"
grep -q "checkpoint at the end of epoch 2" stop8.log || { cat stop8.log; fail "no stop at the boundary"; }
stop_at 10 --set name=S10 "${stages[@]}"
tensors runs/A/checkpoints/best.h5 runs/S8/checkpoints/last.h5 >s8.diff
awk '/^conv/ && $2 != 0 { bad = 1 } END { exit bad }' s8.diff || { cat s8.diff; fail "a convolution changed in stage 1"; }
# The boundary's checkpoint is the second stage's: state for every tensor.
h5ls -r runs/S8/checkpoints/last.h5 | grep -q "^/optimizer/conv1.weight.m " ||
  fail "the checkpoint at the boundary lacks the thawed tensors' state"

for at in 6 8 10; do
  train --set name=S$at "${stages[@]}" --resume auto >S$at.log 2>&1 || { cat S$at.log; fail "resume after step $at"; }
  grep -q "resuming" S$at.log || fail "the run resumed after step $at does not say so"
  same runs/B/checkpoints/last.h5 runs/S$at/checkpoints/last.h5 "stopped at step $at and resumed differs from B"
  # Everything but the speed and time columns: the validation loss and AUC
  # too (every rank holds the same batch-norm running statistics, the mean of
  # the ranks', so the checkpoint's are every rank's).
  cmp <(cut -d, -f1-6 runs/B/metrics.csv) <(cut -d, -f1-6 runs/S$at/metrics.csv) >/dev/null ||
    { paste -d'\n' runs/B/metrics.csv runs/S$at/metrics.csv; fail "metrics.csv after a stop at step $at differs"; }
done

# The second stage trained the convolutions.
tensors runs/A/checkpoints/best.h5 runs/B/checkpoints/last.h5 >b.diff
awk '/^conv/ && $2 == 0 { bad = 1 } END { exit bad }' b.diff || { cat b.diff; fail "stage 2 left a convolution as it was"; }

expect_fail 1 "cannot resume" "train.freeze: was [conv1, conv2, conv3, conv4], now [conv1]" -- \
  train --set name=B "${stages[@]}" --set train.epochs=6 --set 'train.freeze=[conv1]' --resume auto

mpi 2 "$THORAX_BIN" lr-find "$Q" "${common[@]}" --set 'train.freeze=[conv1, conv2]' --steps 8 --out lrf >lrf.log 2>&1 ||
  { cat lrf.log; fail "lr-find with train.freeze"; }
grep -q "freeze: conv1, conv2 (2 layers with parameters): 23636 of 24884 parameters train" lrf.log || { cat lrf.log; fail "lr-find ignores freeze"; }
echo "finetune: 1 passed, 0 failed"
