#!/usr/bin/env bash
# jobs/train.sbatch and jobs/eval.sbatch on a private SLURM cluster:
#  - a 2-task training job with 2 CPUs per task completes, says so in its
#    log (%x-%j.out), trains 2 ranks x 2 threads (config.yaml records
#    threads_per_rank: 2), and leaves a whole run directory;
#  - eval.sbatch, submitted at once with --dependency=afterok on it and
#    launched with mpirun (the path for sites without PMIx), evaluates the
#    run's val split per image and per patient;
#  - eval.sbatch on a directory that does not exist fails with status 2.
source "$(dirname "$0")/lib.sh"
"$THORAX_BIN" phantom --out p.h5 --patients 40 --size 32 --seed 3 >/dev/null
tiny_config t.yaml "$WORK/p.h5" 3

train=$(submit --ntasks=2 --cpus-per-task=2 "$JOBS/train.sbatch" t.yaml --set name=t)
evaluate=$(THORAX_LAUNCHER=mpirun submit --ntasks=2 --dependency="afterok:$train" "$JOBS/eval.sbatch" runs/t --split val --patient)
missing=$(submit --ntasks=1 "$JOBS/eval.sbatch" runs/none)
wait_jobs 180 "$train" "$evaluate" "$missing"
completed "$train"
completed "$evaluate"

log=thorax-train-$train.out
[ -s "$log" ] || fail "no log $log"
grep -q "2 ranks x 2 threads, srun" "$log" || fail "$log: not 2 ranks x 2 threads launched by srun"
grep -q " rank0 done: $WORK/runs/t\$" "$log" || fail "$log: training did not finish"
grep -q "threads_per_rank: 2" runs/t/config.yaml || fail "config.yaml does not record 2 threads per rank"
for f in config.yaml split.csv metrics.csv curves.png checkpoints/last.h5 checkpoints/best.h5 \
  eval/test/metrics.json eval/test/predictions.csv eval/test/roc.png; do
  [ -s "runs/t/$f" ] || fail "the run directory lacks $f"
done
[ "$(tail -n +2 runs/t/metrics.csv | wc -l)" -eq 3 ] || fail "metrics.csv has not 3 epochs"

grep -q "2 ranks x 1 threads, mpirun" "thorax-eval-$evaluate.out" || fail "eval.sbatch did not run 2 ranks with mpirun"
grep -q "eval: .* -> runs/t/eval/val" "thorax-eval-$evaluate.out" || fail "eval.sbatch did not evaluate the val split"
for f in metrics.json predictions.csv roc.png patient/metrics.json; do
  [ -s "runs/t/eval/val/$f" ] || fail "eval.sbatch did not write eval/val/$f"
done

[ "$(states "$missing")" = FAILED ] || fail "eval.sbatch of a missing run directory did not fail"
job "$missing" | grep -q 'ExitCode=2:0' || fail "eval.sbatch of a missing run directory did not exit 2"
grep -q "run directory runs/none not found" "thorax-eval-$missing.out" || fail "eval.sbatch did not name the missing directory"
echo "train_eval: 1 passed, 0 failed"
