#!/usr/bin/env bash
# The evaluation phase: the end of `thorax train` writes eval/<split>/; `thorax
# eval` on 1, 2 and 4 ranks writes identical predictions and metrics (no sample
# padded or counted twice, whatever the shards); --data evaluates every image
# of another file into eval/<its name>/; bad arguments name the culprit;
# `thorax predict` on new PNGs.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out e.h5 --patients 90 --size 32 --seed 3 >/dev/null
"$THORAX_BIN" phantom --out external.h5 --patients 25 --size 32 --seed 99 >/dev/null
cat > e.yaml <<YAML
name: e
data: {path: $WORK/e.h5}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 8, k: 3, pad: 1}
    - {type: batchnorm}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: conv, out: 16, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 3, batch_per_rank: 8}
eval: {split: test}
runtime: {out_dir: $WORK/runs}
YAML
mpi 2 "$THORAX_BIN" train e.yaml > train.log || { cat train.log; fail "training"; }
grep -q " rank0 eval: .* macro AUC" train.log || { cat train.log; fail "no evaluation at the end of training"; }
for f in predictions.csv metrics.json roc.png; do [ -s runs/e/eval/test/$f ] || fail "eval/test lacks $f"; done
n_test=$(grep -c ',test$' runs/e/split.csv)
[ "$(tail -n +2 runs/e/eval/test/predictions.csv | wc -l)" -eq "$n_test" ] || fail "predictions.csv does not have the $n_test test images"
# Every test image exactly once, in dataset order.
diff <(grep ',test$' runs/e/split.csv | cut -d, -f1) <(tail -n +2 runs/e/eval/test/predictions.csv | cut -d, -f1) \
  || fail "predictions.csv is not the test split in dataset order"

for np in 1 2 4; do
  mpi $np "$THORAX_BIN" eval runs/e --split val --patient > eval$np.log || { cat eval$np.log; fail "eval on $np ranks"; }
  cp runs/e/eval/val/predictions.csv pred$np.csv
  cp runs/e/eval/val/metrics.json metrics$np.json
  cp runs/e/eval/val/patient/metrics.json patient_metrics$np.json
done
for np in 2 4; do
  cmp pred1.csv pred$np.csv || fail "predictions differ between 1 and $np ranks"
  cmp metrics1.json metrics$np.json || fail "metrics differ between 1 and $np ranks"
  cmp patient_metrics1.json patient_metrics$np.json || fail "patient-level metrics differ between 1 and $np ranks"
done
[ -s runs/e/eval/val/patient/metrics.json ] || fail "no patient-level metrics"
# The AUC intervals are the patient bootstrap's (eval.bootstrap, default 2000),
# seeded with the run's seed; DeLong's stay beside them.
/usr/bin/python3 - metrics1.json patient_metrics1.json <<'PY' || fail "metrics.json lacks the bootstrap intervals"
import json, sys
for path in sys.argv[1:]:
    m = json.load(open(path))
    assert m["ci_method"] == "patient_bootstrap" and m["bootstrap_resamples"] == 2000 and m["bootstrap_seed"] == 42, m
    for name, x in m["labels"].items():
        assert x["ci_method"] == "patient_bootstrap", name
        assert x["bootstrap_used"] + x["bootstrap_skipped"] == 2000, name
        if x["auc"] is not None:
            assert x["auc_ci"] and x["auc_ci_delong"] and x["auc_ci"][0] <= x["auc_ci"][1], (name, x)
PY

mpi 2 "$THORAX_BIN" eval runs/e --data external.h5 --checkpoint last > ext.log || { cat ext.log; fail "external eval"; }
ext_dir=$(echo runs/e/eval/data-external-*)
[ -d "$ext_dir" ] || fail "--data external.h5 did not write eval/data-external-<hash>/ ($(ls runs/e/eval))"
n_ext=$(tail -n +2 "$ext_dir/predictions.csv" | wc -l)
[ "$n_ext" -gt 25 ] || fail "external evaluation did not cover every image ($n_ext rows)"

# thorax predict: new PNGs prepared as in training, a table of probabilities,
# heat maps with --cam, warnings for images unlike the training data.
"$THORAX_BIN" phantom --out p.h5 --patients 2 --size 32 --seed 5 --preview previews >/dev/null
mkdir -p pngs && "$TOOLS/make_test_pngs" pngs
first=$(ls previews/*.png | grep -v _masks | head -1)
"$THORAX_BIN" predict runs/e "$first" pngs/gray16.png pngs/big.png --cam cams >pred.txt 2>pred.err \
  || { cat pred.txt pred.err; fail "thorax predict"; }
head -1 pred.txt | grep -q "Pneumothorax.*Cardiomegaly.*Effusion.*Nodule" || fail "predict prints no label header"
[ "$(wc -l < pred.txt)" -eq 5 ] || { cat pred.txt; fail "predict prints not one row per image and a footer"; }
# eval/val/thresholds.json is last.h5's now (the external evaluation above
# chose it for --checkpoint last): best.h5 has no operating point yet.
tail -1 pred.txt | grep -q "no operating points for this checkpoint" || { cat pred.txt; fail "predict claims val's operating points of another checkpoint"; }
grep -q '\*' <(sed -n 2,4p pred.txt) && fail "predict marks calls without operating points"
# Once val is evaluated with best.h5, each '*' marks p >= its label's threshold.
mpi 2 "$THORAX_BIN" eval runs/e --split val > evalval.log || { cat evalval.log; fail "eval --split val"; }
"$THORAX_BIN" predict runs/e "$first" pngs/gray16.png pngs/big.png >pred2.txt 2>/dev/null || fail "thorax predict (2)"
tail -1 pred2.txt | grep -q "operating point, chosen on val by youden" || { cat pred2.txt; fail "predict footer"; }
/usr/bin/python3 - pred2.txt runs/e/eval/val/thresholds.json <<'PY' || fail "predict's marks do not follow val's thresholds"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
th = json.load(open(sys.argv[2]))
labels = lines[0].split()[1:]
for row in lines[1:4]:
    cells = row.split()[1:]
    assert len(cells) == len(labels), row
    for name, c in zip(labels, cells):
        t = th["labels"][name]["threshold"]
        p = float(c.rstrip("*"))
        # The table prints 4 decimals: only a probability within rounding of the threshold is ambiguous.
        if abs(p - t) > 5e-5:
            assert c.endswith("*") == (p >= t), (name, c, t)
PY
grep -q "gray16.png: 16-bit samples" pred.err || { cat pred.err; fail "no warning for a 16-bit image"; }
grep -q "big.png: 40x48 resized\|big.png: 48x40 resized" pred.err || { cat pred.err; fail "no warning for another size"; }
[ "$(ls cams/*__gradcam.png | wc -l)" -eq 12 ] || fail "predict --cam did not write a map per image and label"
expect_fail 1 "pngs/text.png" "not a PNG" -- "$THORAX_BIN" predict runs/e pngs/text.png

expect_fail 2 "--checkpoint" "worst" -- "$THORAX_BIN" eval runs/e --checkpoint worst
expect_fail 1 "nowhere/config.yaml" -- "$THORAX_BIN" eval nowhere
expect_fail 1 "missing.h5" -- "$THORAX_BIN" eval runs/e --data missing.h5
echo "eval: 1 passed, 0 failed"
