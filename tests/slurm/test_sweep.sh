#!/usr/bin/env bash
# jobs/sweep.sbatch on a private SLURM cluster, 1 rank per task:
#  - over seeds: a 3-task array (--array=0-2) trains runs tiny_seed0..2, each
#    with its own seed, and logs into thorax-sweep-<array id>_<task>.out;
#  - over configs: a 2-task array trains the K-th config as <name>_K;
#  - over cross-validation folds: a 3-task array trains fold file K (its own
#    predefined /split) as tiny_foldK, with fold K's patients as validation;
#  - eval.sbatch evaluates one of the seed runs.
source "$(dirname "$0")/lib.sh"
"$THORAX_BIN" phantom --out p.h5 --patients 40 --size 32 --seed 5 >/dev/null
tiny_config s.yaml "$WORK/p.h5" 2
sed 's/^name: tiny/name: wide/; s/out: 16/out: 24/' s.yaml > w.yaml

# Fold files: the same images with a predefined /split. Patients with
# number % 4 == 3 are the test set; fold K validates on number % 4 == K.
mkdir -p cv
h5dump -d patient_id -y -w 0 p.h5 | sed -n '/DATA {/,/}/p' | grep -o '"[^"]*"' | tr -d '"P' > patients.txt
n=$(wc -l < patients.txt)
for k in 0 1 2; do
  awk -v k="$k" '{ r = ($1 + 0) % 4; print (r == 3) ? 2 : (r == k) ? 1 : 0 }' patients.txt > "split$k.txt"
  cat > split.cfg <<CFG
PATH split
INPUT-CLASS TEXTUIN
INPUT-SIZE 8
RANK 1
DIMENSION-SIZES $n
OUTPUT-CLASS UIN
OUTPUT-SIZE 8
OUTPUT-ARCHITECTURE STD
OUTPUT-BYTE-ORDER LE
CFG
  cp p.h5 "cv/fold$k.h5"
  h5import "split$k.txt" -c split.cfg -o "cv/fold$k.h5" >/dev/null
done

seeds=$(submit --array=0-2 --ntasks=1 "$JOBS/sweep.sbatch" s.yaml)
configs=$(submit --array=0-1 --ntasks=1 "$JOBS/sweep.sbatch" s.yaml w.yaml)
folds=$(submit --array=0-2 --ntasks=1 "$JOBS/sweep.sbatch" --folds "$WORK/cv/fold%a.h5" s.yaml)
wait_jobs 240 "$seeds" "$configs" "$folds"
completed "$seeds"
completed "$configs"
completed "$folds"
[ "$(states "$seeds" | wc -l)" -eq 3 ] || fail "the seed array has not 3 tasks"

for k in 0 1 2; do
  log=thorax-sweep-${seeds}_$k.out
  [ -s "$log" ] || fail "no log $log"
  grep -q " rank0 done: $WORK/runs/tiny_seed$k\$" "$log" || fail "$log: run tiny_seed$k did not finish"
  grep -qx "seed: $k" "runs/tiny_seed$k/config.yaml" || fail "run tiny_seed$k was not trained with seed $k"
  [ -s "runs/tiny_seed$k/eval/test/metrics.json" ] || fail "run tiny_seed$k was not evaluated"
done
"$TOOLS/ckpt_compare" runs/tiny_seed0/checkpoints/last.h5 runs/tiny_seed1/checkpoints/last.h5 0 >/dev/null &&
  fail "seeds 0 and 1 gave identical parameters"

grep -qx "name: tiny_0" runs/tiny_0/config.yaml || fail "config task 0 did not train s.yaml as tiny_0"
grep -q "out: 24" runs/wide_1/config.yaml || fail "config task 1 did not train w.yaml as wide_1"

for k in 0 1 2; do
  run=runs/tiny_fold$k
  grep -q "path: $WORK/cv/fold$k.h5" "$run/config.yaml" || fail "fold task $k did not train on cv/fold$k.h5"
  # split.csv: image,patient_id,split; validation patients are fold k's.
  awk -F, -v k="$k" 'NR > 1 && $3 == "val" { p = substr($2, 2) + 0; if (p % 4 != k) bad++; n++ }
    END { exit !(n > 0 && bad == 0) }' "$run/split.csv" ||
    fail "$run/split.csv: the validation patients are not fold $k's"
done

e=$(submit --ntasks=2 "$JOBS/eval.sbatch" runs/tiny_seed2 --split val)
wait_jobs 120 "$e"
completed "$e"
[ -s runs/tiny_seed2/eval/val/metrics.json ] || fail "eval.sbatch did not evaluate run tiny_seed2"
echo "sweep: 1 passed, 0 failed"
