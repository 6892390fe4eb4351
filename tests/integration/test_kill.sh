#!/usr/bin/env bash
# A rank killed outright (SIGKILL: an OOM kill, a node lost), on 2 ranks:
#  - the job ends within a bounded time (no rank left waiting in a
#    collective for the dead one), with a non-zero status that is not 75 (a
#    kill is no clean preemption), and mpirun's message names the dead rank;
#    no rank process outlives it;
#  - the newest checkpoint passes its checksum, and at most the epoch that
#    was under way is lost (metrics.csv is written just before last.h5, so it
#    may be one epoch ahead of it);
#  - --resume auto continues at the checkpoint's next epoch and completes
#    every epoch of the run.
# Rank 1 is killed first; then rank 0, the one that writes the checkpoints,
# in the resumed run, so that a kill during a write is possible too.
#
# Open MPI: when a rank dies, mpirun (errmgr, orte_abort_on_non_zero_status,
# default true) sends the others SIGTERM and, odls_base_sigkill_timeout (1 s)
# later, SIGKILL. Thorax takes SIGTERM as a stop request, so the survivors go
# on to their next collective, which cannot complete, until that SIGKILL.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
EPOCHS=150
LIMIT=30 # seconds from the kill to the end of the job
"$THORAX_BIN" phantom --out k.h5 --patients 60 --size 32 --seed 5 >/dev/null
cat > k.yaml <<YAML
name: k
seed: 3
data: {path: $WORK/k.h5}
YAML
cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> k.yaml
cat >> k.yaml <<YAML
train:
  epochs: $EPOCHS
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $WORK/runs}
YAML
CK=runs/k/checkpoints

ckpt_epoch() { "$TOOLS/ckpt_verify" "$1" | awk '{print $2}'; }
metrics_last_epoch() { tail -n +2 runs/k/metrics.csv | awk -F, 'END {print $1 + 0}'; }

# The PID of rank $2 among mpirun $1's children (mpirun starts local ranks itself).
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# kill_run RANK MIN_EPOCH LOG ARGS...: starts the training, waits until
# last.h5 holds at least MIN_EPOCH epochs, SIGKILLs rank RANK, and checks the
# job's end. Leaves the checkpoint's epoch in $killed_at.
kill_run() {
  local rank=$1 min_epoch=$2 log=$3
  shift 3
  "$MPIEXEC" -np 2 --oversubscribe "$THORAX_BIN" train k.yaml "$@" >"$log" 2>&1 &
  local mpirun=$! victim="" others="" t
  for _ in $(seq 600); do
    if [ -f "$CK/last.h5" ] && [ "$(ckpt_epoch "$CK/last.h5" 2>/dev/null || echo 0)" -ge "$min_epoch" ]; then break; fi
    kill -0 "$mpirun" 2>/dev/null || { cat "$log"; fail "the run ended before it could be killed"; }
    sleep 0.1
  done
  victim=$(rank_pid "$mpirun" "$rank") || { kill "$mpirun"; cat "$log"; fail "no rank $rank under mpirun $mpirun"; }
  others=$(pgrep -P "$mpirun" | grep -vx "$victim" || true)
  kill -0 "$mpirun" 2>/dev/null || { cat "$log"; fail "the run ended before it could be killed"; }
  kill -KILL "$victim"
  t=$SECONDS
  while kill -0 "$mpirun" 2>/dev/null; do
    if [ $((SECONDS - t)) -ge "$LIMIT" ]; then
      kill -KILL "$mpirun" $others 2>/dev/null || true
      cat "$log"
      fail "the job still runs ${LIMIT}s after rank $rank was killed: a rank waits for the dead one"
    fi
    sleep 0.2
  done
  local status=0
  wait "$mpirun" || status=$?
  echo "rank $rank killed: the job ended after $((SECONDS - t))s with status $status"
  [ "$status" -ne 0 ] && [ "$status" -ne 75 ] || { cat "$log"; fail "a killed run exited $status"; }
  grep -q "rank $rank" "$log" && grep -Eq "signal 9|Killed" "$log" || { cat "$log"; fail "no message names the killed rank $rank"; }
  # mpirun has ended; its other ranks were sent SIGKILL and may still be
  # tearing down (an ASan process unmaps terabytes of shadow, slowly on a
  # loaded machine): outliving means still there 20 s later.
  for p in $others; do
    for _ in $(seq 100); do
      kill -0 "$p" 2>/dev/null && ! grep -Eq "zombie|^State:.*[ZX]" "/proc/$p/status" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$p" 2>/dev/null && ! grep -Eq "zombie|^State:.*[ZX]" "/proc/$p/status" 2>/dev/null; then
      fail "rank process $p outlived the job by 20 s"
    fi
  done
  killed_at=$(ckpt_epoch "$CK/last.h5") || fail "last.h5 after the kill fails its checksum"
  local ahead=$(($(metrics_last_epoch) - killed_at))
  [ "$ahead" -ge 0 ] && [ "$ahead" -le 1 ] || fail "metrics.csv reaches epoch $(metrics_last_epoch), last.h5 epoch $killed_at"
  [ "$killed_at" -lt "$EPOCHS" ] || fail "the run had finished before the kill"
}

# resume_check LOG EPOCH: --resume auto from a checkpoint of EPOCH epochs
# must say it continues at the next one.
resume_check() {
  grep -q "resuming at epoch $(($2 + 1))," "$1" || { cat "$1"; fail "the resumed run does not continue at epoch $(($2 + 1))"; }
}

kill_run 1 1 kill1.log
first=$killed_at
kill_run 0 $((first + 2)) kill2.log --resume auto
resume_check kill2.log "$first"
mpi 2 "$THORAX_BIN" train k.yaml --resume auto >resume.log 2>&1 || { cat resume.log; fail "--resume auto after the kills"; }
resume_check resume.log "$killed_at"
[ "$(ckpt_epoch "$CK/last.h5")" -eq "$EPOCHS" ] || fail "the resumed run did not reach epoch $EPOCHS"
[ "$(tail -n +2 runs/k/metrics.csv | cut -d, -f1 | tr '\n' ' ')" = "$(seq -s ' ' 1 $EPOCHS) " ] ||
  fail "metrics.csv does not hold epochs 1..$EPOCHS once each"
ls "$CK" | grep -q '\.tmp' && fail "a temporary checkpoint was left behind after the resumed run"
grep -q " rank0 done:" resume.log || { cat resume.log; fail "the resumed run did not finish"; }
echo "kill: 1 passed, 0 failed"
