#!/usr/bin/env bash
# Restarts of jobs/train.sbatch on a private SLURM cluster, 2 tasks each, all
# three ending with bit-identical parameters:
#  - a: never interrupted, launched with mpirun (THORAX_LAUNCHER=mpirun, the
#    path for sites without PMIx);
#  - b: `scontrol requeue` once its first checkpoint exists. SLURM sends
#    SIGTERM and requeues it; the rerun (same job id, cred_expire later)
#    continues from last.h5;
#  - c: the time-limit warning, sent as `scancel --batch --signal=USR1` (what
#    --signal=B:USR1@N does): the script passes it to the ranks, which stop
#    with a checkpoint (exit 75), and requeues the job itself.
# Each log (--open-mode=append) holds both runs, the second one resuming.
source "$(dirname "$0")/lib.sh"
"$THORAX_BIN" phantom --out p.h5 --patients 40 --size 32 --seed 11 >/dev/null
# Jobs b and c must still be training when their signal reaches the ranks,
# or they end without a requeue. The test signals once a job's first
# checkpoint exists; the signal gets there (a 0.2 s poll, scontrol,
# slurmctld, slurmd, and for c the batch script and srun) in 0.1-0.5 s, but
# in seconds when the machine stalls, and what is left of the run is the
# margin. An epoch here takes ~30 ms with the cores to itself (mostly its
# files: metrics.csv, curves.png, last.h5; its 9 steps are a few ms), 50-80
# ms beside another job. 150 epochs, ~4 s for a job alone, became too thin a
# margin once training got faster (a stall of 4-8 s failed the test); 400
# epochs take ~12 s alone, 20-30 s side by side (passes with a 12 s stall).
# The test's time is mostly these three runs.
epochs=400
tiny_config r.yaml "$WORK/p.h5" "$epochs"

# epochs_done NAME: the epochs run NAME has completed (metrics.csv rows;
# rank 0 rewrites metrics.csv, atomically, before each epoch's last.h5).
epochs_done() { echo $(($(wc -l < "runs/$1/metrics.csv") - 1)); }

a=$(THORAX_LAUNCHER=mpirun submit --ntasks=2 "$JOBS/train.sbatch" r.yaml --set name=a)
b=$(submit --ntasks=2 "$JOBS/train.sbatch" r.yaml --set name=b)
wait_file 90 runs/b/checkpoints/last.h5
[ "$(states "$b")" = RUNNING ] ||
  fail "job b is $(states "$b") once its first checkpoint exists (epoch $(epochs_done b) of $epochs); too short to requeue"
b_at=$(epochs_done b)
scontrol requeue "$b" || fail "scontrol requeue $b failed"

c=$(submit --ntasks=2 "$JOBS/train.sbatch" r.yaml --set name=c)
wait_file 120 runs/c/checkpoints/last.h5
[ "$(states "$c")" = RUNNING ] ||
  fail "job c is $(states "$c") once its first checkpoint exists (epoch $(epochs_done c) of $epochs); too short to signal"
c_at=$(epochs_done c)
scancel --batch --signal=USR1 "$c" || fail "scancel --batch --signal=USR1 $c failed (job c is $(states "$c"))"
echo "signalled job b after epoch $b_at of $epochs, job c after epoch $c_at"

wait_jobs 240 "$a" "$b" "$c"
for j in "$a" "$b" "$c"; do completed "$j"; done
grep -q "1 threads, mpirun" "thorax-train-$a.out" || fail "job a was not launched by mpirun"

# resumed NAME JOBID: the job ran twice, the second time from a checkpoint.
resumed() {
  local log=thorax-train-$2.out
  job "$2" | grep -q 'Restarts=1 ' || fail "job $1 was not restarted exactly once"
  grep -q "(restart 0)" "$log" && grep -q "(restart 1)" "$log" || fail "$log does not hold both runs of job $1"
  grep -q " rank0 run $1 -> .* (resuming)\$" "$log" || fail "$log: the rerun of job $1 did not resume"
  local from
  from=$(sed -n 's/.* rank0 resuming at epoch \([0-9]*\),.*/\1/p' "$log")
  [ -n "$from" ] && [ "$from" -ge 2 ] && [ "$from" -le "$epochs" ] ||
    fail "$log: job $1 resumed at epoch '${from}', not mid-training"
  [ "$(tail -n +2 "runs/$1/metrics.csv" | wc -l)" -eq "$epochs" ] || fail "runs/$1/metrics.csv has not $epochs rows"
  echo "job $1 resumed at epoch $from"
}
resumed b "$b"
# Which way job b stopped depends on a race that SLURM sets up: the ranks and
# srun get SIGTERM together, and srun answers with SIGKILL. Either way the
# rerun must continue from a checkpoint; say which one it was.
if grep -q " rank0 stop requested" "thorax-train-$b.out"; then
  echo "job b: the ranks stopped with a checkpoint at SIGTERM"
else
  echo "job b: the ranks were killed at SIGTERM; resumed from the epoch's checkpoint"
fi
resumed c "$c"
grep -q "checkpoint written; job $c requeued" "thorax-train-$c.out" || fail "job c did not requeue itself after USR1"

for r in b c; do
  "$TOOLS/ckpt_compare" runs/a/checkpoints/last.h5 "runs/$r/checkpoints/last.h5" 0 > "cmp-$r.txt" ||
    { cat "cmp-$r.txt"; fail "job $r (restarted) and job a (never stopped) end with different parameters"; }
done
echo "requeue: 1 passed, 0 failed"
