#!/usr/bin/env bash
# Nothing lost, nothing reached that should not be (docs/design.md, Failure
# modes):
# - two `thorax train` into one run directory: the second (2 and 4 ranks), and
#   an eval of the run meanwhile, are refused naming the first's pid and host
#   (as RUN_DIR/.lock records them); the first finishes, and its config.yaml
#   is the config its checkpoints carry, not the refused job's;
# - `eval --data F` writes eval/data-<stem>-<first 8 hex of sha256(realpath F)>/
#   (the hash recomputed here with sha256sum): test.h5 leaves eval/test/ as it
#   was, two x.h5 in two folders keep apart, ...h5 stays inside eval/;
# - split.csv quotes image and patient names with commas and quotes (read back
#   with Python's csv module against the names ingested);
# - jobs/sweep.sbatch hands thorax the run name the config gives, ':' and '#'
#   and quotes included (train.sbatch replaced by a stub that records its
#   arguments; thorax itself then says which name it resolved).
source "$(dirname "$0")/lib.sh"
cd "$WORK"

"$THORAX_BIN" phantom --out small.h5 --patients 30 --size 32 --seed 3 >/dev/null
cat >g.yaml <<'EOF'
name: g
seed: 1
data:
  path: small.h5
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: gap}
    - {type: dense, out: labels}
train:
  epochs: 2
  batch_per_rank: 8
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
runtime:
  out_dir: runs
EOF

# ---- Two trains, one run directory -------------------------------------------
# A slow validation (0.5 s a batch, 12 epochs) keeps the first job in its
# run long enough.
THORAX_TEST_VAL_SLEEP_MS=500 "$MPIEXEC" -np 2 --oversubscribe -x THORAX_TEST_VAL_SLEEP_MS \
  "$THORAX_BIN" train g.yaml --set train.epochs=12 >first.log 2>&1 &
first=$!
for _ in $(seq 300); do [ -s runs/g/.lock ] && break; sleep 0.1; done
[ -s runs/g/.lock ] || { cat first.log; fail "the first train took no lock on runs/g"; }
read -r holder host <runs/g/.lock
[ "$host" = "$(hostname)" ] || fail "the lock names host '$host', not $(hostname)"
kill -0 "$holder" 2>/dev/null || fail "the lock names pid $holder, which is not running"
for np in 2 4; do
  got=0
  mpi $np "$THORAX_BIN" train g.yaml --set seed=7 >second.log 2>&1 || got=$?
  kill -0 "$first" 2>/dev/null || { cat first.log second.log; fail "the first train ended before the second was tried"; }
  [ "$got" = 1 ] || { cat second.log; fail "a second train (-np $np) into runs/g exited $got, not 1"; }
  grep -F "runs/g is in use by another thorax process (pid $holder on host $host" second.log >/dev/null ||
    { cat second.log; fail "the refusal (-np $np) does not name the holder"; }
  [ "$(grep -c '^thorax: ' second.log)" = 1 ] || { cat second.log; fail "the refusal is said more than once"; }
done
got=0
mpi 2 "$THORAX_BIN" eval runs/g --split val >eval_during.log 2>&1 || got=$?
[ "$got" = 1 ] && grep -F "pid $holder on host $host" eval_during.log >/dev/null ||
  { cat eval_during.log; fail "an eval during the training was not refused ($got)"; }
wait "$first" || { cat first.log; fail "the first train failed"; }

# config.yaml is what the checkpoints were trained with: seed 1, not 7.
ckpt_config() { # the checkpoint's config attribute as text
  h5dump -a /config "$1" | sed -n '/DATA {/,/^   }/p' | sed '1d;$d' |
    sed 's/^ *//; s/^(0): "//; s/"$//; s/\\"/"/g' | sed '${/^$/d}'
}
for ck in best last; do
  diff <(sed 's/^ *//' runs/g/config.yaml) <(ckpt_config runs/g/checkpoints/$ck.h5) >/dev/null ||
    { diff <(sed 's/^ *//' runs/g/config.yaml) <(ckpt_config runs/g/checkpoints/$ck.h5) | head; fail "config.yaml is not $ck.h5's config"; }
done
grep -x "seed: 1" runs/g/config.yaml >/dev/null || fail "config.yaml is not the first job's (seed 1)"
[ -z "$(find runs -name '*.tmp')" ] || fail "temporary files left: $(find runs -name '*.tmp')"

# ---- eval --data: where the results go ----------------------------------------
hash8() { printf '%s' "$(realpath "$1")" | sha256sum | cut -c1-8; }
# Another phantom (seed 7): a copy of the run's own file is refused as no
# external validation at all.
"$THORAX_BIN" phantom --out other.h5 --patients 30 --size 32 --seed 7 >/dev/null 2>&1 || fail "phantom other.h5"
cp other.h5 test.h5
before=$(cksum <runs/g/eval/test/predictions.csv)
top=$(ls -A runs/g)
mpi 2 "$THORAX_BIN" eval runs/g --data test.h5 >ext.log 2>&1 || { cat ext.log; fail "eval --data test.h5"; }
dir=runs/g/eval/data-test-$(hash8 test.h5)
[ -f "$dir/predictions.csv" ] || { ls runs/g/eval; fail "eval --data test.h5 did not write $dir"; }
grep -F "$dir" ext.log >/dev/null || { cat ext.log; fail "eval does not say it wrote $dir"; }
[ "$(cksum <runs/g/eval/test/predictions.csv)" = "$before" ] || fail "eval --data test.h5 changed eval/test/"
n=$("$TOOLS/h5_summary" other.h5 --rows | wc -l)
[ "$(($(wc -l <"$dir/predictions.csv") - 1))" = "$n" ] || fail "$dir/predictions.csv has not the $n images of test.h5"

mkdir a b && cp other.h5 a/x.h5 && cp other.h5 b/x.h5
mpi 2 "$THORAX_BIN" eval runs/g --data a/x.h5 >a.log 2>&1 || { cat a.log; fail "eval --data a/x.h5"; }
mpi 4 "$THORAX_BIN" eval runs/g --data b/x.h5 >b.log 2>&1 || { cat b.log; fail "eval --data b/x.h5 (4 ranks)"; }
da=runs/g/eval/data-x-$(hash8 a/x.h5) db=runs/g/eval/data-x-$(hash8 b/x.h5)
[ "$da" != "$db" ] && [ -f "$da/metrics.json" ] && [ -f "$db/metrics.json" ] ||
  { ls runs/g/eval; fail "a/x.h5 and b/x.h5 did not get a directory each"; }
# The same predictions in both: the same file, evaluated on 2 and on 4 ranks.
cmp -s "$da/predictions.csv" "$db/predictions.csv" || fail "2 and 4 ranks predicted x.h5 differently"

cp other.h5 ...h5
mpi 2 "$THORAX_BIN" eval runs/g --data ...h5 >dots.log 2>&1 || { cat dots.log; fail "eval --data ...h5"; }
[ -f "runs/g/eval/data-..-$(hash8 ...h5)/predictions.csv" ] || { ls -a runs/g/eval; fail "...h5 did not go to eval/data-..-<hash>/"; }
# MODEL_CARD.md is rewritten by every eval; nothing else appears beside it.
[ "$(ls -A runs/g)" = "$top" ] || fail "eval --data ...h5 wrote into the run directory itself: $(ls -A runs/g)"

# ---- split.csv quotes names ----------------------------------------------------
mkdir imgs
{
  echo 'image,patient_id,Effusion'
  for i in $(seq 10 39); do
    printf '"p,%d""q.png","P %d, ""x""",%d\n' "$i" "$i" $((i % 2))
  done
} >names.csv
mkdir pngs && "$TOOLS/make_test_pngs" pngs >/dev/null
for i in $(seq 10 39); do cp pngs/a.png "imgs/p,$i\"q.png"; done
"$THORAX_BIN" ingest --csv names.csv --images imgs --out names.h5 >ingest.log 2>&1 || { cat ingest.log; fail "ingest of names with commas and quotes"; }
# One picture under 30 names: the duplicate check would refuse it.
mpi 2 "$THORAX_BIN" train g.yaml --set data.path=names.h5 --set name=names --set train.epochs=1 --set data.on_duplicate=keep >names.log 2>&1 ||
  { cat names.log; fail "training on names with commas and quotes"; }
python3 - runs/names/split.csv <<'PY' || fail "split.csv does not read back as the names ingested"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["image", "patient_id", "split"], rows[0]
want = {(f'p,{i}"q.png', f'P {i}, "x"') for i in range(10, 40)}
got = {(r[0], r[1]) for r in rows[1:]}
assert all(len(r) == 3 and r[2] in ("train", "val", "test") for r in rows[1:]), rows[1:4]
assert got == want, sorted(got ^ want)[:4]
PY

# ---- sweep.sbatch keeps the run name whole -------------------------------------
mkdir -p sweep/jobs
cp "$THORAX_SOURCE_DIR/jobs/sweep.sbatch" sweep/jobs/
# train.sbatch's stand-in: its arguments, one per line.
printf '#!/bin/bash\nprintf "%%s\\n" "$@"\n' >sweep/jobs/train.sbatch
check_sweep() { # WANT CONFIG-LINE [extra arguments]: the name thorax resolves for task 3
  local want=$1 line=$2 args
  shift 2
  { printf '%s\n' "$line"; sed 1d g.yaml; } >sweep/c.yaml
  args=$(env -u SLURM_JOB_ID SLURM_ARRAY_TASK_ID=3 bash sweep/jobs/sweep.sbatch sweep/c.yaml "$@" | tail -n +2) ||
    fail "sweep.sbatch failed for '$line'"
  local set
  set=$(printf '%s\n' "$args" | grep '^name=' | tail -1)
  [ -n "$set" ] || fail "sweep.sbatch passed no name for '$line': $args"
  # thorax says which name it resolved before it finds the data missing.
  "$THORAX_BIN" train sweep/c.yaml --set data.path=missing.h5 --set "$set" >sweep/out.log 2>&1 || true
  grep -F "run ${want}_seed3 -> runs/${want}_seed3" sweep/out.log >/dev/null ||
    { cat sweep/out.log; fail "sweep's $set for '$line' is not the run ${want}_seed3"; }
}
check_sweep 'run:1#a' 'name: run:1#a  # a comment'
check_sweep 'a: b #1' 'name: "a: b #1"'
check_sweep "it's #2" "name: 'it''s #2'"
check_sweep 'x#y:z' 'name: ignored' --set 'name=x#y:z'
check_sweep 'c' '# no name line'
[ ! -e runs/run:1#a_seed3 ] || fail "a failed train left its run directory"
echo "run_guard: ok"
