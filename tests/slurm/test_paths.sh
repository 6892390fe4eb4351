#!/usr/bin/env bash
# How the batch scripts of jobs/ find thorax and each other, on a private
# SLURM cluster, with a checkout, a config, a run directory and a binary
# directory whose paths hold spaces:
#  - train.sbatch without THORAX_BIN and no thorax on PATH runs the submit
#    directory's build/thorax, and trains into "<checkout>/runs/<name>";
#  - sweep.sbatch, submitted from elsewhere (no jobs/ there), finds the
#    train.sbatch beside it from the job record, and runs thorax from PATH;
#  - eval.sbatch runs THORAX_BIN, a path with a space, on the first run;
#  - with no binary anywhere, or THORAX_BIN naming no executable, a job
#    fails with status 2 and says so in its log.
# Each log's header line names the binary the job ran.
source "$(dirname "$0")/lib.sh"
! command -v thorax >/dev/null || skip "thorax is on PATH ($(command -v thorax)); the lookup test needs a PATH without it"
repo="$WORK/my checkout"
bindir="$WORK/bin dir"
mkdir -p "$repo/build" "$bindir" "$WORK/elsewhere"
cp -r "$THORAX_SOURCE_DIR/jobs" "$repo/jobs"
ln -s "$THORAX_BIN" "$repo/build/thorax"
ln -s "$THORAX_BIN" "$bindir/thorax"
"$THORAX_BIN" phantom --out "$repo/p q.h5" --patients 40 --size 32 --seed 8 >/dev/null
tiny_config "$repo/my config.yaml" "$repo/p q.h5" 2
sed -i "s|^runtime: .*|runtime: {out_dir: $repo/runs}|" "$repo/my config.yaml"
sed -i "s|^data: {path: \(.*\)}|data: {path: '\1'}|" "$repo/my config.yaml"

# unbound SBATCH_ARGS...: submits without THORAX_BIN in the environment.
unbound() { (unset THORAX_BIN && submit "$@"); }

cd "$repo"
train=$(unbound --ntasks=2 "$repo/jobs/train.sbatch" "my config.yaml" --set name=t)
cd "$WORK/elsewhere"
sweep=$(PATH="$bindir:$PATH" unbound --array=0-0 --ntasks=1 "$repo/jobs/sweep.sbatch" "$repo/my config.yaml")
none=$(unbound --ntasks=1 "$repo/jobs/train.sbatch" "$repo/my config.yaml" --set name=none)
wait_jobs 180 "$train"
wrong=$(THORAX_BIN="$bindir/missing" submit --ntasks=1 "$repo/jobs/eval.sbatch" "$repo/runs/t")
cd "$repo"
evaluate=$(THORAX_BIN="$bindir/thorax" submit --ntasks=2 "$repo/jobs/eval.sbatch" "runs/t" --split val)
wait_jobs 180 "$sweep" "$none" "$wrong" "$evaluate"

completed "$train"
log="$repo/thorax-train-$train.out"
grep -qF "2 ranks x 1 threads, srun, " "$log" || fail "$log: no header line"
grep -qF ", $repo/build/thorax" "$log" || fail "$log: train.sbatch did not run the submit directory's build/thorax"
grep -qE "^[0-9T:-]+Z rank0 done: $repo/runs/t\$" "$log" || fail "$log: training did not finish in '$repo/runs/t'"
[ -s "$repo/runs/t/checkpoints/last.h5" ] || fail "no last.h5 in '$repo/runs/t'"

completed "$sweep"
log="$WORK/elsewhere/thorax-sweep-${sweep}_0.out"
grep -qF ", $bindir/thorax" "$log" || fail "$log: sweep.sbatch did not run thorax from PATH"
grep -qE "^[0-9T:-]+Z rank0 done: $repo/runs/tiny_seed0\$" "$log" || fail "$log: the sweep's training did not finish"

completed "$evaluate"
log="$repo/thorax-eval-$evaluate.out"
grep -qF ", $bindir/thorax" "$log" || fail "$log: eval.sbatch did not run THORAX_BIN"
[ -s "$repo/runs/t/eval/val/metrics.json" ] || fail "eval.sbatch did not evaluate '$repo/runs/t'"

for j in "$none" "$wrong"; do
  [ "$(states "$j")" = FAILED ] && job "$j" | grep -q 'ExitCode=2:0' || fail "job $j did not fail with status 2"
done
grep -qF "no thorax binary: THORAX_BIN is not set, thorax is not on PATH" "$WORK/elsewhere/thorax-train-$none.out" ||
  fail "train.sbatch with no binary anywhere does not say so"
grep -qF "THORAX_BIN='$bindir/missing' is not an executable file" "$WORK/elsewhere/thorax-eval-$wrong.out" ||
  fail "eval.sbatch with a wrong THORAX_BIN does not name it"
echo "paths: 1 passed, 0 failed"
