#!/usr/bin/env bash
# thorax compare: two runs' predictions of the same images, paired by name.
# DeLong's paired test against an independent numpy implementation written
# here from DeLong, DeLong and Clarke-Pearson (1988): placement values by
# counting every (positive, negative) pair, the 2x2 covariance matrix
# S10/m + S01/n, Var(A - B) = [1 -1] S [1 -1]^T. Agreement to 1e-9 on a fixed
# tie-heavy dataset; images and labels of one run only are counted and left
# out; the bootstrap is seeded; a missing evaluation names the fix.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
PY=/usr/bin/python3
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 has no numpy"; exit 77; }

# Run A evaluated img000..img059, run B img005..img064 (in another order):
# 55 images in both. Labels: Effusion and "Pleural Thickening" in both,
# Nodule in A only, Mass in B only. Patients have 1 to 4 images; scores on a
# grid of 0.05, so there are ties within and across classes.
$PY - <<'PY'
import os, random
rng = random.Random(5)
rows = []
patient = 0
while len(rows) < 65:
    for _ in range(rng.randint(1, 4)):
        if len(rows) < 65:
            rows.append(("img%03d.png" % len(rows), "P%02d" % patient))
    patient += 1
labels = ["Effusion", "Pleural Thickening", "Nodule", "Mass"]
y = {(i, l): int(rng.random() < 0.35) for i in range(65) for l in labels}
def score(i, l, signal):
    return round(min(1, max(0, signal * y[i, l] + (1 - signal) * rng.random())) * 20) / 20
pa = {(i, l): score(i, l, 0.45) for i in range(65) for l in labels}
pb = {(i, l): score(i, l, 0.25) for i in range(65) for l in labels}
def write(path, idx, labs, p):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("image,patient_id," + ",".join('"y_%s"' % l if " " in l else "y_" + l for l in labs) + ","
                + ",".join('"p_%s"' % l if " " in l else "p_" + l for l in labs) + "\n")
        for i in idx:
            f.write("%s,%s,%s,%s\n" % (rows[i][0], rows[i][1], ",".join(str(y[i, l]) for l in labs),
                                       ",".join("%.6f" % p[i, l] for l in labs)))
write("runs/a/eval/test/predictions.csv", range(0, 60), ["Effusion", "Pleural Thickening", "Nodule"], pa)
idx_b = list(range(5, 65)); rng.shuffle(idx_b)
write("runs/b/eval/test/predictions.csv", idx_b, ["Mass", "Pleural Thickening", "Effusion"], pb)
PY

"$THORAX_BIN" compare --help | grep "usage: thorax compare" >/dev/null || fail "compare --help"
"$THORAX_BIN" compare runs/a runs/b > cmp.txt || { cat cmp.txt; fail "thorax compare"; }
cat cmp.txt
out=runs/a/compare/b_test/compare.json
[ -s $out ] || fail "no $out"
grep -q "55 images in both runs (A 60: 5 left out; B 60: 5 left out)" cmp.txt || fail "the table does not count the paired images"
grep -q "Nodule (A)" cmp.txt && grep -q "Mass (B)" cmp.txt || fail "labels of one run only are not named"
grep -q "^Pleural Thickening" cmp.txt || fail "no row for Pleural Thickening"

$PY - "$out" <<'PY' || fail "compare.json disagrees with the reference"
import csv, json, math, sys
import numpy as np
res = json.load(open(sys.argv[1]))
def load(path):
    with open(path) as f:
        return {r["image"]: r for r in csv.DictReader(f)}
a, b = load("runs/a/eval/test/predictions.csv"), load("runs/b/eval/test/predictions.csv")
names = sorted(set(a) & set(b))
assert res["n_matched"] == 55 == len(names), res["n_matched"]
assert (res["n_only_a"], res["n_only_b"]) == (5, 5)
assert res["labels_only_a"] == ["Nodule"] and res["labels_only_b"] == ["Mass"], (res["labels_only_a"], res["labels_only_b"])
assert sorted(res["labels"]) == ["Effusion", "Pleural Thickening"]
assert res["n_patients"] == len({a[n]["patient_id"] for n in names})

def delong_paired(y, sa, sb):
    """DeLong et al. (1988): psi over every (positive, negative) pair."""
    pos, neg = y == 1, y == 0
    m, n = pos.sum(), neg.sum()
    v10, v01, auc = [], [], []
    for s in (sa, sb):
        d = s[pos][:, None] - s[neg][None, :]
        psi = (d > 0) + 0.5 * (d == 0)
        auc.append(psi.mean())
        v10.append(psi.mean(axis=1))   # one per positive
        v01.append(psi.mean(axis=0))   # one per negative
    S = np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n
    c = np.array([1.0, -1.0])
    var = c @ S @ c
    se = math.sqrt(var)
    diff = auc[0] - auc[1]
    z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2))
    zc = 1.959963984540054
    return auc[0], auc[1], diff, se, z, p, diff - zc * se, diff + zc * se

worst = 0
for label, got in res["labels"].items():
    y = np.array([int(a[n]["y_" + label]) for n in names])
    assert all(int(b[n]["y_" + label]) == v for n, v in zip(names, y))
    sa = np.array([float(a[n]["p_" + label]) for n in names])
    sb = np.array([float(b[n]["p_" + label]) for n in names])
    ref = delong_paired(y, sa, sb)
    d = got["delong"]
    mine = (got["auc_a"], got["auc_b"], got["diff"], d["se"], d["z"], d["p"], d["diff_ci"][0], d["diff_ci"][1])
    for what, x, r in zip(("auc_a", "auc_b", "diff", "se", "z", "p", "lo", "hi"), mine, ref):
        worst = max(worst, abs(x - r))
        assert abs(x - r) <= 1e-9, (label, what, x, r)
    assert got["n_pos"] == int(y.sum()) and got["n_neg"] == int((1 - y).sum())
    bs = got["bootstrap"]
    assert bs["used"] + bs["skipped"] == 2000 and bs["diff_ci"][0] < bs["diff_ci"][1]
    print("%s: diff %.4f, DeLong SE %.5f, p %.4g, bootstrap CI [%.4f, %.4f]" % (label, ref[2], ref[3], ref[5], *bs["diff_ci"]))
print("largest difference from the reference: %.2e" % worst)
PY

# Seeded: the same file again; another seed moves only the bootstrap.
cp $out first.json
"$THORAX_BIN" compare runs/a runs/b > /dev/null || fail "second compare"
cmp first.json $out || fail "compare.json differs between two identical runs"
"$THORAX_BIN" compare runs/a runs/b --seed 7 --out other > /dev/null || fail "compare --seed --out"
[ -s other/compare.json ] || fail "--out is not honoured"
! cmp -s first.json other/compare.json || fail "--seed does not change the bootstrap"
"$THORAX_BIN" compare runs/a runs/b --bootstrap 0 --out noboot > /dev/null || fail "compare --bootstrap 0"
! grep -q '"bootstrap":' noboot/compare.json || fail "--bootstrap 0 still bootstraps"

# A run against itself: no difference, no variance of it.
"$THORAX_BIN" compare runs/a runs/a --out self > self.txt || fail "compare a a"
$PY -c '
import json, sys
for l, g in json.load(open("self/compare.json"))["labels"].items():
    assert g["diff"] == 0 and g["delong"]["se"] == 0 and g["delong"]["p"] is None, g
    assert g["bootstrap"]["diff_ci"] == [0, 0], g
' || fail "a run compared with itself"

expect_fail 1 "runs/a/eval/val/predictions.csv is missing" "thorax eval runs/a --split val" -- "$THORAX_BIN" compare runs/a runs/b --split val
expect_fail 1 "eval/data-ext-" "predictions.csv is missing" "--data data/ext.h5" -- "$THORAX_BIN" compare runs/a runs/b --data data/ext.h5
expect_fail 2 "--split must be val or test" -- "$THORAX_BIN" compare runs/a runs/b --split train
expect_fail 2 "--bootstrap" -- "$THORAX_BIN" compare runs/a runs/b --bootstrap -3
expect_fail 2 "unexpected argument" -- "$THORAX_BIN" compare runs/a runs/b runs/c
# Different truth for the same image: not the same evaluation.
mkdir -p runs/c/eval/test
awk -F, -v OFS=, '$1 == "img000.png" { $3 = 1 - $3 } 1' runs/a/eval/test/predictions.csv > runs/c/eval/test/predictions.csv
expect_fail 1 "img000.png" "different labels" -- "$THORAX_BIN" compare runs/a runs/c
# Unknown labels (an empty y_ cell, as thorax eval writes for 255): such an
# image takes no part in that label's test, in both the paired DeLong test
# and the counts; the reference is the same numpy test on the known rows.
$PY - <<'PY'
import csv, os
for run in ("a", "b"):
    rows = list(csv.reader(open("runs/%s/eval/test/predictions.csv" % run)))
    col = rows[0].index("y_Effusion")
    for r in rows[1:]:
        if int(r[0][3:6]) % 4 == 1:
            r[col] = ""
    os.makedirs("runs/u%s/eval/test" % run, exist_ok=True)
    csv.writer(open("runs/u%s/eval/test/predictions.csv" % run, "w"), lineterminator="\n").writerows(rows)
PY
"$THORAX_BIN" compare runs/ua runs/ub --bootstrap 200 > unk.txt || { cat unk.txt; fail "compare with unknown labels"; }
$PY - runs/ua/compare/ub_test/compare.json <<'PY' || fail "compare with unknown labels disagrees with the known rows' reference"
import csv, json, math, sys
import numpy as np
res = json.load(open(sys.argv[1]))["labels"]["Effusion"]
a = {r["image"]: r for r in csv.DictReader(open("runs/ua/eval/test/predictions.csv"))}
b = {r["image"]: r for r in csv.DictReader(open("runs/ub/eval/test/predictions.csv"))}
names = sorted(n for n in set(a) & set(b) if a[n]["y_Effusion"] != "")
assert len(names) < 55
y = np.array([int(a[n]["y_Effusion"]) for n in names])
assert res["n_pos"] == int(y.sum()) and res["n_neg"] == int((1 - y).sum()), res
sa = np.array([float(a[n]["p_Effusion"]) for n in names])
sb = np.array([float(b[n]["p_Effusion"]) for n in names])
pos, neg = y == 1, y == 0
v = []
for s in (sa, sb):
    d = s[pos][:, None] - s[neg][None, :]
    psi = (d > 0) + 0.5 * (d == 0)
    v.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
S = np.cov(np.array([v[0][1], v[1][1]])) / pos.sum() + np.cov(np.array([v[0][2], v[1][2]])) / neg.sum()
se = math.sqrt(np.array([1, -1]) @ S @ np.array([1, -1]))
assert abs(res["auc_a"] - v[0][0]) <= 1e-9 and abs(res["auc_b"] - v[1][0]) <= 1e-9, res
assert abs(res["delong"]["se"] - se) <= 1e-9, (res["delong"]["se"], se)
print("unknown labels: %d of 55 images known for Effusion, SE %.5f as the reference" % (len(names), se))
PY
echo "compare: 1 passed, 0 failed"
