#!/usr/bin/env bash
# Operating points chosen on val and applied to test: eval/val/thresholds.json
# holds each label's threshold (eval.threshold) and temperature
# (eval.calibrate); test's metrics.json applies them, never re-fits. Every
# count, rate, ECE and Brier score of test is recomputed from predictions.csv
# with sklearn at val's threshold; the files are the same on 1, 2 and 4 ranks;
# a stale thresholds.json (another checkpoint) is remade; the config's errors
# name the key.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import sklearn, numpy" 2>/dev/null || { echo "skip: /usr/bin/python3 lacks sklearn"; exit 77; }
cd "$WORK"
"$THORAX_BIN" phantom --out o.h5 --size 64 --seed 3 >/dev/null
# The quick start's network, 8 epochs: far enough from chance that
# temperatures and thresholds are not degenerate.
sets=(--set data.path="$WORK/o.h5" --set runtime.out_dir="$WORK/runs" --set name=o --set train.epochs=8
      --set eval.threshold=sensitivity@0.9 --set eval.calibrate=temperature)
mpi 2 "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/quickstart.yaml" "${sets[@]}" > train.log \
  || { cat train.log; fail "training"; }
run=runs/o
for f in val/thresholds.json val/metrics.json test/metrics.json test/predictions.csv test/calibration.png; do
  [ -s $run/eval/$f ] || fail "no eval/$f"
done

mpi 2 "$THORAX_BIN" eval $run --split test --patient > evalp.log || { cat evalp.log; fail "eval --patient"; }

# Everything of test from its predictions and val's thresholds.
$PY - "$run" <<'PY' || fail "test metrics do not follow from val's thresholds"
import csv, json, math, sys
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, brier_score_loss
run = sys.argv[1]
th = json.load(open(f"{run}/eval/val/thresholds.json"))
assert th["chosen_on"] == "val" and th["rule"] == "sensitivity@0.9" and th["calibrate"] == "temperature", th
assert th["checkpoint"] == "best"
m = json.load(open(f"{run}/eval/test/metrics.json"))
rows = list(csv.DictReader(open(f"{run}/eval/test/predictions.csv")))
Z = 1.959963984540054

def wilson(k, n):
    if n == 0:
        return None
    p = k / n
    d = 1 + Z * Z / n
    c = (p + Z * Z / (2 * n)) / d
    h = Z / d * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return [max(0.0, c - h), min(1.0, c + h)]

def ece(p, y, bins=15):
    order = sorted(range(len(p)), key=lambda i: (p[i], i))
    n, e = len(p), 0.0
    for b in range(bins):
        idx = order[b * n // bins:(b + 1) * n // bins]
        if idx:
            e += len(idx) / n * abs(np.mean([p[i] for i in idx]) - np.mean([y[i] for i in idx]))
    return e

def close(a, b, tol, what):
    assert abs(a - b) <= tol, f"{what}: {a} vs {b}"

differs = 0
for label, lm in m["labels"].items():
    op = lm["operating_point"]
    t = th["labels"][label]["threshold"]
    assert op["threshold"] == t == lm["threshold"], (label, op["threshold"], t)
    assert op["chosen_on"] == "val" and op["rule"] == "sensitivity@0.9"
    y = np.array([int(r[f"y_{label}"]) for r in rows])
    p = np.array([float(r[f"p_{label}"]) for r in rows])
    raw = np.array([float(r[f"p_raw_{label}"]) for r in rows])
    # predictions.csv has 6 decimals: a score within 1e-6 of t could flip.
    assert not np.any(np.abs(p - t) < 1e-6), f"{label}: a test score within 1e-6 of the threshold"
    pred = (p >= t).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (op["tp"], op["fp"], op["tn"], op["fn"]) == (tp, fp, tn, fn), (label, op, (tp, fp, tn, fn))
    for name, k, n in [("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp), ("ppv", tp, tp + fp),
                       ("npv", tn, tn + fn), ("accuracy", tp + tn, len(y))]:
        if n == 0:
            assert op[name]["value"] is None and op[name]["ci"] is None
            continue
        close(op[name]["value"], k / n, 1e-12, f"{label} {name}")
        lo, hi = wilson(k, n)
        close(op[name]["ci"][0], lo, 1e-9, f"{label} {name} lo")
        close(op[name]["ci"][1], hi, 1e-9, f"{label} {name} hi")
    close(lm["sensitivity"], op["sensitivity"]["value"], 0, "legacy sensitivity")
    close(op["f1"]["value"], f1_score(y, pred, zero_division=0), 1e-12, f"{label} f1")
    if tp + fp + fn:
        lo, hi = wilson(tp, tp + fp + fn)
        close(op["f1"]["ci"][0], 2 * lo / (1 + lo), 1e-9, f"{label} f1 lo")
    cal = lm["calibration"]
    close(cal["brier"], brier_score_loss(y, p), 1e-5, f"{label} brier")
    close(cal["brier_raw"], brier_score_loss(y, raw), 1e-5, f"{label} brier_raw")
    close(cal["ece"], ece(list(p), list(y)), 1e-4, f"{label} ece")
    close(cal["ece_raw"], ece(list(raw), list(y)), 1e-4, f"{label} ece_raw")
    T = th["labels"][label]["temperature"]
    assert cal["temperature"] == T
    # p = sigmoid(logit(raw) / T), to the 6 decimals of the file: raw's
    # rounding (5e-7) grows by dp/draw = p(1-p) / (T raw(1-raw)).
    r = np.clip(raw, 1e-7, 1 - 1e-7)
    want = 1 / (1 + np.exp(-np.log(r / (1 - r)) / T))
    slope = want * (1 - want) / (T * r * (1 - r))
    ok = (r > 1e-3) & (r < 1 - 1e-3)
    assert ok.sum() > 0 and np.all(np.abs(want - p)[ok] <= 1e-6 + 6e-7 * slope[ok]), (label, T)
    # The same rule re-fitted on test would give another threshold for some label.
    if lm["n_pos"] > 0:
        pos = np.sort(p[y == 1])[::-1]
        need = math.ceil(0.9 * len(pos) - 1e-9)
        refit = pos[need - 1]
        differs += abs(refit - t) > 1e-6
assert differs > 0, "val and test thresholds coincide for every label: the test shows nothing"

# Patient level: thresholds chosen on val per patient.
pm = json.load(open(f"{run}/eval/test/patient/metrics.json"))
for label, lm in pm["labels"].items():
    assert lm["operating_point"]["threshold"] == th["labels"][label]["patient_threshold"], label
    assert lm["operating_point"]["chosen_on"] == "val"
print("test metrics follow from val's thresholds;", differs, "labels would re-fit differently on test")
PY

# The same files on 1, 2 and 4 ranks (val chosen afresh each time).
for np in 1 2 4; do
  rm -f $run/eval/val/thresholds.json
  mpi $np "$THORAX_BIN" eval $run --split test > eval$np.log || { cat eval$np.log; fail "eval on $np ranks"; }
  for f in test/predictions.csv test/metrics.json val/thresholds.json val/metrics.json; do cp $run/eval/$f $np.${f//\//_}; done
done
for np in 2 4; do
  for f in test_predictions.csv test_metrics.json val_thresholds.json val_metrics.json; do
    cmp 1.$f $np.$f || fail "$f differs between 1 and $np ranks"
  done
done

# Another checkpoint makes val's choice stale: it is remade for last.h5.
mpi 2 "$THORAX_BIN" eval $run --split test --checkpoint last > last.log || { cat last.log; fail "eval --checkpoint last"; }
grep -q '"checkpoint": "last"' $run/eval/val/thresholds.json || fail "thresholds.json not remade for last.h5"

# Config errors name the key and line.
q="$THORAX_SOURCE_DIR/configs/quickstart.yaml"
expect_fail 2 "eval.threshold" "(0, 1)" -- "$THORAX_BIN" split "$q" --set eval.threshold=sensitivity@1.5
expect_fail 2 "eval.threshold" "youden" -- "$THORAX_BIN" split "$q" --set eval.threshold=f1
printf 'name: bad\ndata: {path: o.h5}\nmodel: {input: [1, 64, 64], layers: [{type: gap}, {type: dense, out: labels}]}\neval:\n  threshold: "fixed:2"\n' > bad.yaml
expect_fail 2 "bad.yaml:5" "eval.threshold" "[0, 1]" -- "$THORAX_BIN" split bad.yaml
expect_fail 2 "eval.calibrate" -- "$THORAX_BIN" split "$q" --set eval.calibrate=platt
echo "oppoint: 1 passed, 0 failed"
