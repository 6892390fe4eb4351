#!/usr/bin/env bash
# A stop request (SIGUSR1, as SLURM's --signal=B:USR1@N sends it) during a
# long validation or during the evaluation phase at the end of a run, on 1
# and 2 ranks:
#  - mid-validation of epoch 2: every rank stops at the same batch, within a
#    few seconds, exit 75; last.h5 holds the state after epoch 2's steps and
#    metrics.csv epoch 1 only; --resume auto validates epoch 2 again and
#    goes on;
#  - mid-evaluation (eval/val or eval/test being predicted): exit 75, no
#    eval/test/metrics.json; --resume auto trains no more and evaluates;
#  - the stopped-twice run ends with the same last.h5, bit for bit, and the
#    same metrics.csv (but its timing columns) as a run never stopped.
# Validation and evaluation are made slow by THORAX_TEST_VAL_SLEEP_MS, a
# test-only hook of thorax train that sleeps after each prediction batch.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
SLEEP_MS=400
LIMIT=10 # seconds from the signal to the end of the job
"$THORAX_BIN" phantom --out v.h5 --patients 60 --size 32 --seed 7 >/dev/null
cat > v.yaml <<YAML
name: v
seed: 4
data: {path: $WORK/v.h5}
YAML
cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> v.yaml
cat >> v.yaml <<YAML
train:
  epochs: 3
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $WORK/runs}
YAML

# rows FILE: metrics.csv's rows without the timing columns (img_per_s, seconds).
rows() { tail -n +2 "$1" | cut -d, -f1-6,9-; }

# stop_when NP NAME LOG CONDITION: starts `thorax train` of run NAME on NP
# ranks with slow prediction batches, sends SIGUSR1 to mpirun once the shell
# condition holds plus half a batch, and expects exit 75 within LIMIT s.
stop_when() {
  local np=$1 name=$2 log=$3 cond=$4 status=0 t0
  THORAX_TEST_VAL_SLEEP_MS=$SLEEP_MS "$MPIEXEC" -np "$np" --oversubscribe -x THORAX_TEST_VAL_SLEEP_MS \
    "$THORAX_BIN" train v.yaml --set name="$name" --resume auto >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    eval "$cond" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "$name ($np ranks) ended before the signal"; }
    sleep 0.05
  done
  eval "$cond" || { cat "$log"; fail "$name ($np ranks): '$cond' did not come within 30 s"; }
  sleep 0.2
  kill -USR1 "$pid"
  t0=$SECONDS
  wait "$pid" || status=$?
  [ "$status" -eq 75 ] || { cat "$log"; fail "$name ($np ranks): a USR1 in $log's phase exited $status, not 75"; }
  [ $((SECONDS - t0)) -le $LIMIT ] || fail "$name ($np ranks) took $((SECONDS - t0)) s to stop (limit $LIMIT s)"
  ! ls "runs/$name/checkpoints" | grep '\.tmp' >/dev/null || fail "$name: a temporary checkpoint was left behind"
}

epochs_done() { [ -s "runs/$1/metrics.csv" ] && echo $(($(wc -l <"runs/$1/metrics.csv") - 1)) || echo 0; }

for np in 1 2; do
  ref=ref$np run=stop$np
  mpi "$np" "$THORAX_BIN" train v.yaml --set name=$ref >$ref.log 2>&1 || { cat $ref.log; fail "straight run ($np ranks)"; }

  # Epoch 1's row is written once its validation is done; epoch 2's steps
  # take milliseconds, so half a batch later epoch 2 is validating.
  stop_when "$np" $run $run-1.log "[ \$(epochs_done $run) -ge 1 ]"
  grep -q "stop requested during validation: checkpoint after the steps of epoch 2" $run-1.log ||
    { cat $run-1.log; fail "$run ($np ranks) did not stop in epoch 2's validation"; }
  [ "$(epochs_done $run)" -eq 1 ] || fail "$run ($np ranks): metrics.csv has $(epochs_done $run) rows, not 1"

  # Resumed, it validates epoch 2 (no step) and trains on; stopped again once
  # the last epoch's row is there, in the evaluation phase.
  stop_when "$np" $run $run-2.log "[ \$(epochs_done $run) -ge 3 ]"
  grep -q "resuming at epoch 2, its validation" $run-2.log || { cat $run-2.log; fail "$run did not resume at epoch 2's validation"; }
  grep -q "stopped during the evaluation phase" $run-2.log ||
    { cat $run-2.log; fail "$run ($np ranks) did not stop in the evaluation phase"; }
  [ ! -e runs/$run/eval/test/metrics.json ] || fail "$run ($np ranks): evaluated the test split although stopped"

  mpi "$np" "$THORAX_BIN" train v.yaml --set name=$run --resume auto >$run-3.log 2>&1 ||
    { cat $run-3.log; fail "$run ($np ranks): resuming the evaluation phase"; }
  grep " rank0 done: " $run-3.log >/dev/null || { cat $run-3.log; fail "$run ($np ranks) did not finish"; }
  grep " rank0 epoch [0-9]" $run-3.log >/dev/null && { cat $run-3.log; fail "$run ($np ranks) trained again after its last epoch"; }
  [ -s runs/$run/eval/test/metrics.json ] || fail "$run ($np ranks): no eval/test/metrics.json after resuming"

  "$TOOLS/ckpt_compare" runs/$ref/checkpoints/last.h5 runs/$run/checkpoints/last.h5 0 >cmp.txt ||
    { cat cmp.txt; fail "$np ranks: stopped in validation and evaluation, resumed, differs from a run never stopped"; }
  [ "$(rows runs/$ref/metrics.csv)" = "$(rows runs/$run/metrics.csv)" ] ||
    { diff <(rows runs/$ref/metrics.csv) <(rows runs/$run/metrics.csv); fail "$np ranks: metrics.csv differs"; }
  cmp -s runs/$ref/eval/test/metrics.json runs/$run/eval/test/metrics.json ||
    fail "$np ranks: eval/test/metrics.json differs from the straight run's"
done
echo "stop_validation: 1 passed, 0 failed"
