#!/usr/bin/env bash
# Uncertain and unknown labels (/labels value 255):
#  - `thorax ingest --format chexpert` on a CheXpert-style CSV (paths
#    .../patientNNNNN/studyS/viewV_frontal.png, made at test time from the
#    shared NIH PNGs) with -1 and blank cells writes, under --uncertain
#    ones/zeros/ignore and --blank zeros, the /labels the policy documents;
#    the patient comes from the path, Sex/Age/Frontal/Lateral/AP/PA go to
#    /meta, --frontal-only keeps the frontal rows, and the pixels are the PNGs';
#    without --uncertain a -1 is an error naming the flag, and nothing is written;
#  - training on a phantom set with some labels unknown runs on 2 ranks
#    (softmax_ce refuses unknowns by name); eval on 1 and 2 ranks writes the
#    same predictions.csv and metrics.json, with an empty y_ cell for each
#    unknown label, per-label AUC equal to sklearn's on the known rows, and
#    n_unknown their count.
# Needs /usr/bin/python3 with sklearn, h5py and PIL (tools/install-test-deps.sh).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
SHARED=${THORAX_SHARED_DATA:-$THORAX_SOURCE_DIR/../shared/data}/nih14_kcr1000
if ! "$PY" -c 'import sklearn, h5py, PIL' 2>/dev/null; then
  echo "uncertain skipped: $PY lacks sklearn, h5py or PIL"
  exit 77
fi
if [ ! -f "$SHARED/labels.csv" ]; then
  echo "uncertain skipped: no $SHARED"
  exit 77
fi
cd "$WORK"

# 12 images of 4 patients, two of them lateral; labels with -1 and blanks.
"$PY" - "$SHARED" <<'PY' || fail "making the CheXpert-style set"
import csv, os, shutil, sys
src = sys.argv[1]
names = sorted(os.listdir(os.path.join(src, "images")))[:12]
cells = [["1", "", "0"], ["0", "-1", "1"], ["", "1", "-1"], ["0", "0", "0"], ["1", "-1.0", ""],
         ["-1", "1.0", "0.0"], ["0", "", "1"], ["1", "0", "-1"], ["0", "1", "1"], ["", "", "0"],
         ["1", "0", "1"], ["0", "-1", "0"]]
with open("chexpert.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Cardiomegaly", "Effusion"])
    for i, n in enumerate(names):
        view = "lateral" if i in (3, 8) else "frontal"
        path = "CheXpert-v1.0-small/train/patient%05d/study%d/view1_%s.png" % (i // 3 + 1, i % 3 + 1, view)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy(os.path.join(src, "images", n), path)
        w.writerow([path, "Female" if i % 2 else "Male", str(40 + i), view.capitalize(),
                    "" if view == "lateral" else "AP"] + cells[i])
PY

expect_fail 1 "chexpert.csv:3" "label Cardiomegaly is -1 (uncertain)" "--uncertain ones, zeros or ignore" -- \
  "$THORAX_BIN" ingest --csv chexpert.csv --images . --out refused.h5
[ ! -e refused.h5 ] && [ ! -e refused.h5.tmp ] || fail "a refused ingest left a file"

for policy in ones zeros ignore; do
  "$THORAX_BIN" ingest --csv chexpert.csv --images . --out $policy.h5 --uncertain $policy >$policy.log ||
    { cat $policy.log; fail "ingest --uncertain $policy"; }
  grep -q "chexpert layout" $policy.log || { cat $policy.log; fail "the layout is not found as chexpert"; }
done
"$THORAX_BIN" ingest --csv chexpert.csv --images . --out blank0.h5 --uncertain ignore --blank zeros >blank0.log ||
  { cat blank0.log; fail "ingest --blank zeros"; }
"$THORAX_BIN" ingest --csv chexpert.csv --images . --out frontal.h5 --uncertain zeros --frontal-only \
  --format chexpert >frontal.log || { cat frontal.log; fail "ingest --frontal-only"; }

"$PY" - <<'PY' || fail "the ingested /labels, patients, /meta and pixels"
import csv
import h5py, numpy as np
from PIL import Image
rows = list(csv.DictReader(open("chexpert.csv")))
labels = ["No Finding", "Cardiomegaly", "Effusion"]
def want(uncertain, blank, keep=lambda r: True):
    out = []
    for r in rows:
        if not keep(r):
            continue
        row = []
        for l in labels:
            v = r[l]
            if v == "":
                row.append(blank)
            elif float(v) == -1:
                row.append(uncertain)
            else:
                row.append(int(float(v)))
        out.append(row)
    return np.array(out, dtype=np.uint8)
s = lambda d: [v.decode() if isinstance(v, bytes) else v for v in d[()]]
cases = {"ones.h5": want(1, 255), "zeros.h5": want(0, 255), "ignore.h5": want(255, 255),
         "blank0.h5": want(255, 0), "frontal.h5": want(0, 255, lambda r: r["Frontal/Lateral"] == "Frontal")}
for name, y in cases.items():
    f = h5py.File(name, "r")
    got = f["labels"][()]
    assert got.dtype == np.uint8 and (got == y).all(), (name, got.tolist(), y.tolist())
    assert [str(n.decode() if isinstance(n, bytes) else n) for n in f["labels"].attrs["names"]] == labels
    kept = [r for r in rows if name != "frontal.h5" or r["Frontal/Lateral"] == "Frontal"]
    assert s(f["image_name"]) == [r["Path"] for r in kept], (name, s(f["image_name"]))
    assert s(f["patient_id"]) == [r["Path"].split("/")[2] for r in kept], (name, s(f["patient_id"]))
    assert sorted(f["meta"].keys()) == ["AP_PA", "Age", "Frontal_Lateral", "Sex"], list(f["meta"].keys())
    assert s(f["meta/Frontal_Lateral"]) == [r["Frontal/Lateral"] for r in kept]
    assert s(f["meta/Age"]) == [r["Age"] for r in kept]
    for i, r in enumerate(kept):
        png = np.asarray(Image.open(r["Path"]).convert("L"))
        assert (f["images"][i] == png).all(), (name, r["Path"])
assert len(h5py.File("frontal.h5", "r")["labels"]) == 10
PY
grep -Eq "Cardiomegaly +3 positive \(25.0%\), 6 unknown" ignore.log || { cat ignore.log; fail "ingest does not count the unknown labels"; }

# A phantom set with a fifth of its labels unknown (every split).
"$THORAX_BIN" phantom --out p.h5 --patients 90 --size 32 --seed 7 >/dev/null
"$PY" - <<'PY' || fail "making labels unknown"
import h5py, numpy as np
with h5py.File("p.h5", "r+") as f:
    y = f["labels"][()]
    rng = np.random.default_rng(3)
    y[rng.random(y.shape) < 0.2] = 255
    f["labels"][...] = y
PY
{ cat <<YAML
name: p
data: {path: $WORK/p.h5}
train: {epochs: 2, batch_per_rank: 8}
runtime: {out_dir: $WORK/runs}
YAML
  cat "$THORAX_SOURCE_DIR/tests/configs/small_net.yaml"; } > p.yaml
expect_fail 1 "softmax_ce needs every label known" -- mpi 2 "$THORAX_BIN" train p.yaml --set train.loss=softmax_ce \
  --set name=sm
mpi 2 "$THORAX_BIN" train p.yaml >train.log || { cat train.log; fail "training with unknown labels"; }
for np in 1 2; do
  mpi $np "$THORAX_BIN" eval runs/p >eval$np.log || { cat eval$np.log; fail "eval on $np ranks"; }
  cp runs/p/eval/test/predictions.csv pred$np.csv
  cp runs/p/eval/test/metrics.json metrics$np.json
done
cmp pred1.csv pred2.csv || fail "predictions.csv differs between 1 and 2 ranks"
cmp metrics1.json metrics2.json || fail "metrics.json differs between 1 and 2 ranks"

"$PY" - <<'PY' || fail "metrics over the known labels against sklearn"
import csv, json
import h5py
from sklearn.metrics import roc_auc_score
rows = list(csv.DictReader(open("pred1.csv")))
m = json.load(open("metrics1.json"))
f = h5py.File("p.h5", "r")
names = [n.decode() if isinstance(n, bytes) else n for n in f["labels"].attrs["names"]]
order = {(v.decode() if isinstance(v, bytes) else v): i for i, v in enumerate(f["image_name"][()])}
y = f["labels"][()]
found = 0
for k, name in enumerate(names):
    for r in rows:
        want = y[order[r["image"]], k]
        assert r["y_" + name] == ("" if want == 255 else str(want)), (r["image"], name, r["y_" + name], want)
    known = [r for r in rows if r["y_" + name] != ""]
    got = m["labels"][name] if "labels" in m else m[name]
    assert got["n_unknown"] == len(rows) - len(known), (name, got["n_unknown"], len(rows) - len(known))
    assert got["n_pos"] + got["n_neg"] == len(known)
    found += got["n_unknown"]
    yk = [int(r["y_" + name]) for r in known]
    if 0 < sum(yk) < len(yk):
        auc = roc_auc_score(yk, [float(r["p_" + name]) for r in known])
        assert abs(got["auc"] - auc) < 1e-9, (name, got["auc"], auc)
assert found > 0, "no unknown label in the test split"
PY

# thorax cam's top-k ranks only the images whose label is known: no TP, FP
# or FN item has an unknown truth (maps.h5's /truth would say -1).
mpi 2 "$THORAX_BIN" cam runs/p --top-k 3 --method cam >cam.log || { cat cam.log; fail "cam with unknown labels"; }
"$PY" - <<'PY' || fail "cam chose an image whose label is unknown"
import h5py
f = h5py.File("runs/p/cam/best/cam/maps.h5", "r")
kind = [k.decode() if isinstance(k, bytes) else k for k in f["kind"][()]]
truth = f["truth"][()]
assert len(kind) > 0
for k, t in zip(kind, truth):
    assert t in (0, 1), (k, t)
    assert (k in ("TP", "FN")) == (t == 1), (k, t)
print("cam: %d top-k maps, every truth known" % len(kind))
PY
echo "uncertain: ok"
