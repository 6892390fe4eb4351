#!/usr/bin/env bash
# Checkpoint, resume and preemption on 2 ranks, with batch-norm and dropout in
# the network so that running statistics and random masks are covered:
#  - two runs of one config are bit-identical (determinism), and so is one
#    that streams its training images from the file (data.cache: stream);
#  - 4 epochs straight and 2 epochs resumed for 2 more are bit-identical, the
#    second half with another gradient bucket size (runtime, not the
#    experiment: on 2 ranks the sums are the same bits whatever the buckets);
#  - so is a run whose gradient buckets are one layer each;
#  - SIGUSR1 to mpirun mid-epoch stops every rank within a step, exit 75, with
#    a valid last.h5; --resume auto then ends bit-identical to the straight run;
#  - resuming with a changed model is refused, naming the key;
#  - a NaN injected by the test hook stops the run naming step, layer, checkpoint.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out r.h5 --patients 60 --size 32 --seed 11 >/dev/null
cat > r.yaml <<YAML
name: r
seed: 9
data: {path: $WORK/r.h5}
YAML
cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> r.yaml
cat >> r.yaml <<YAML
train:
  epochs: 4
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $WORK/runs}
YAML
train() { mpi 2 "$THORAX_BIN" train r.yaml "$@"; }
same() { "$TOOLS/ckpt_compare" "$1" "$2" 0 >cmp.txt || { cat cmp.txt; fail "$3"; }; }

train --set name=a >a.log || { cat a.log; fail "straight run"; }
train --set name=c >c.log || { cat c.log; fail "second straight run"; }
same runs/a/checkpoints/last.h5 runs/c/checkpoints/last.h5 "two runs of one config differ"
# Streaming the training images from the file changes nothing but memory use.
train --set name=s --set data.cache=stream >s.log || { cat s.log; fail "a streamed run"; }
grep -q "streamed from the file" s.log || fail "data.cache: stream did not stream"
same runs/a/checkpoints/last.h5 runs/s/checkpoints/last.h5 "streamed and in-memory runs differ"
# A bucket per layer (1e-6 MiB rounds up to one float) overlaps the most.
train --set name=k --set runtime.allreduce_bucket_mb=1e-6 >k.log || { cat k.log; fail "per-layer buckets"; }
same runs/a/checkpoints/last.h5 runs/k/checkpoints/last.h5 "per-layer gradient buckets change the result"

train --set name=b --set train.epochs=2 >b1.log || { cat b1.log; fail "first half"; }
train --set name=b --resume auto --set runtime.allreduce_bucket_mb=0 >b2.log || { cat b2.log; fail "resumed half"; }
grep -q "resuming" b2.log || fail "the resumed run does not say so"
same runs/a/checkpoints/last.h5 runs/b/checkpoints/last.h5 "4 epochs and 2+2 epochs differ"
[ "$(tail -n +2 runs/b/metrics.csv | wc -l)" -eq 4 ] || fail "metrics.csv of the resumed run has not 4 rows"
# The same rows but for the timing columns (img_per_s, seconds), per-label AUCs included.
[ "$(cut -d, -f1-6,9- runs/a/metrics.csv)" = "$(cut -d, -f1-6,9- runs/b/metrics.csv)" ] ||
  fail "metrics.csv of the resumed run differs from the straight run's"
head -1 runs/b/metrics.csv | grep -q ',ranks,val_auc_' || fail "metrics.csv header lacks the per-label columns"

expect_fail 1 "cannot resume" "model.layers[0]" -- \
  mpi 2 "$THORAX_BIN" train r.yaml --set name=b --resume auto --set 'model.layers[0].out=4'
expect_fail 2 "already holds a run" "--resume auto" -- "$THORAX_BIN" train r.yaml --set name=b

# Preemption: a long run, SIGUSR1 to mpirun once it is under way.
# mpirun itself, not a shell function around it: the signal must reach mpirun,
# which forwards SIGUSR1 to the ranks.
"$MPIEXEC" -np 2 --oversubscribe "$THORAX_BIN" train r.yaml --set name=p --set train.epochs=40 >p1.log 2>&1 &
pid=$!
for _ in $(seq 200); do
  [ -s runs/p/metrics.csv ] && [ "$(wc -l < runs/p/metrics.csv)" -ge 3 ] && break
  sleep 0.1
done
sleep 0.05
kill -USR1 $pid
status=0
wait $pid || status=$?
[ "$status" -eq 75 ] || { cat p1.log; fail "a SIGUSR1'd run exited $status, not 75"; }
grep -q "stop requested" p1.log || { cat p1.log; fail "no stop message"; }
ls runs/p/checkpoints | grep -q '\.tmp' && fail "a temporary checkpoint was left behind"
train --set name=p --set train.epochs=40 --resume auto >p2.log || { cat p2.log; fail "resume after SIGUSR1"; }
train --set name=q --set train.epochs=40 >q.log || { cat q.log; fail "uninterrupted 40 epochs"; }
same runs/q/checkpoints/last.h5 runs/p/checkpoints/last.h5 "a run stopped by SIGUSR1 and resumed differs from one never stopped"

# A stop request that arrives in an epoch's last step (global step 15 of 15
# per epoch) waits for the end of the epoch; one in its middle (step 20)
# checkpoints mid-epoch. Both resume to the uninterrupted 4-epoch run.
for case in "15:checkpoint at the end of epoch 1" "20:checkpoint at epoch 2, step 5 of 15"; do
  at=${case%%:*}
  status=0
  THORAX_TEST_STOP_STEP=$at mpi 2 -x THORAX_TEST_STOP_STEP "$THORAX_BIN" train r.yaml --set name=s$at \
    >s$at-1.log 2>&1 || status=$?
  [ "$status" -eq 75 ] || { cat s$at-1.log; fail "a run stopped at step $at exited $status, not 75"; }
  grep -qF "${case#*:}" s$at-1.log || { cat s$at-1.log; fail "a run stopped at step $at does not say '${case#*:}'"; }
  train --set name=s$at --resume auto >s$at.log || { cat s$at.log; fail "resume after a stop at step $at"; }
  same runs/a/checkpoints/last.h5 runs/s$at/checkpoints/last.h5 "a run stopped at step $at and resumed differs"
done

# Guard rails: a NaN in the input at global step 20 (epoch 2, step 5 of 15).
# ReLU and max-pool drop a NaN in the forward pass, so it surfaces in the
# gradients, traced back to conv1's output.
THORAX_TEST_NAN_STEP=20 expect_fail 1 "non-finite" "epoch 2, step 5" "conv1" \
  "last good checkpoint: checkpoints/last.h5 (epoch 1)" -- \
  mpi 2 -x THORAX_TEST_NAN_STEP "$THORAX_BIN" train r.yaml --set name=nan
echo "resume: 1 passed, 0 failed"
