#!/usr/bin/env bash
# The split does not depend on the number of ranks: split.csv of a 1-, 2- and
# 4-rank run are identical, no patient is in two splits, and `thorax split`
# reports the same, and the log states how balanced the rank shards are
# (whole patients per rank is th_shard_by_patient's unit test).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out s.h5 --patients 80 --size 32 --seed 5 >/dev/null
cat > s.yaml <<YAML
name: s
data: {path: $WORK/s.h5, split: {train: 0.6, val: 0.2, test: 0.2}}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 1, batch_per_rank: 8}
runtime: {out_dir: $WORK/runs}
YAML
for np in 1 2 4; do
  mpi $np "$THORAX_BIN" train s.yaml --set name=np$np >"np$np.log" 2>&1 || { cat "np$np.log"; fail "training on $np ranks"; }
done
cmp runs/np1/split.csv runs/np2/split.csv || fail "split.csv differs between 1 and 2 ranks"
cmp runs/np1/split.csv runs/np4/split.csv || fail "split.csv differs between 1 and 4 ranks"
leaks=$(tail -n +2 runs/np1/split.csv | awk -F, '{print $2","$3}' | sort -u | cut -d, -f1 | uniq -d | wc -l)
[ "$leaks" -eq 0 ] || fail "$leaks patients in two splits"
grep -q "shards by patient: train" np4.log || fail "the log does not say how balanced the shards are"
"$THORAX_BIN" split s.yaml > report.txt
grep -q "leakage check: passed" report.txt || fail "split report"
# The report's image counts are split.csv's.
for s in train val test; do
  want=$(grep -c ",$s\$" runs/np1/split.csv)
  got=$(awk '$1 == "images" {print}' report.txt | awk -v c=$s 'BEGIN{i=(c=="train")?2:(c=="val")?3:4} {print $i}')
  [ "$want" = "$got" ] || fail "split report says $got $s images, split.csv $want"
done
echo "split_ranks: 1 passed, 0 failed"
