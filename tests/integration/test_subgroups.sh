#!/usr/bin/env bash
# Subgroups and the model card's fingerprint:
#  - `thorax ingest` keeps the CSV's extra columns (not image, patient or a
#    kept label) as /meta/<column>, one string per image in image order;
#  - `thorax eval --by "View Position"` (the phantom's synthetic column) writes
#    by_View_Position.json, identical on 1, 2 and 4 ranks, whose per-group AUC
#    and n_pos/n_neg are sklearn's roc_auc_score on predictions.csv restricted
#    to that group's images; a missing column names itself and the ones there are;
#  - MODEL_CARD.md's index SHA-256 is that of the index as docs/file-formats.md defines it.
# Needs /usr/bin/python3 with sklearn and h5py (tools/install-test-deps.sh).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
if ! "$PY" -c 'import sklearn, h5py' 2>/dev/null; then
  echo "subgroups skipped: $PY lacks sklearn or h5py"
  exit 77
fi
cd "$WORK"

# Ingest: a "columns" CSV whose label is Effusion; Age and View Position are metadata.
mkdir img
"$TOOLS/make_test_pngs" img || fail "make_test_pngs"
cat > labels.csv <<CSV
image,patient_id,Effusion,Age,View Position
a.png,p1,1,61,PA
b.png,p1,0,61,AP
c.png,p2,0,"7",PA
d.png,p3,1,45,AP
CSV
"$THORAX_BIN" ingest --csv labels.csv --images img --out m.h5 --labels Effusion >ingest.log ||
  { cat ingest.log; fail "ingest"; }
grep -q "metadata: 2 columns in /meta" ingest.log || { cat ingest.log; fail "ingest does not report /meta"; }
"$PY" - <<'PY' || fail "/meta of the ingested file"
import h5py
f = h5py.File("m.h5", "r")
s = lambda d: [v.decode() if isinstance(v, bytes) else v for v in d[()]]
assert sorted(f["meta"].keys()) == ["Age", "View Position"], list(f["meta"].keys())
assert s(f["meta/Age"]) == ["61", "61", "7", "45"], s(f["meta/Age"])
assert s(f["meta/View Position"]) == ["PA", "AP", "PA", "AP"], s(f["meta/View Position"])
assert list(f["labels"].attrs["names"]) == ["Effusion"]
PY

# A run on the phantom, evaluated by view on 1, 2 and 4 ranks.
"$THORAX_BIN" phantom --out s.h5 --patients 90 --size 32 --seed 5 >/dev/null
{ cat <<YAML
name: s
data: {path: $WORK/s.h5}
train: {epochs: 2, batch_per_rank: 8}
runtime: {out_dir: $WORK/runs}
YAML
  cat "$THORAX_SOURCE_DIR/tests/configs/small_net.yaml"; } > s.yaml
mpi 2 "$THORAX_BIN" train s.yaml >train.log || { cat train.log; fail "training"; }
for np in 1 2 4; do
  mpi $np "$THORAX_BIN" eval runs/s --by "View Position" >by$np.log || { cat by$np.log; fail "eval --by on $np ranks"; }
  cp runs/s/eval/test/by_View_Position.json by$np.json
done
cmp by1.json by2.json || fail "by_View_Position.json differs between 1 and 2 ranks"
cmp by1.json by4.json || fail "by_View_Position.json differs between 1 and 4 ranks"
grep -q "^View Position = AP: " by2.log || { cat by2.log; fail "eval --by prints no table"; }
[ -s runs/s/eval/test/by_View_Position.md ] || fail "no by_View_Position.md"
# Each group's thresholds are val's, as in test's metrics.json, not refitted.
/usr/bin/python3 - runs/s <<'PY' || fail "by_View_Position.md does not apply val's thresholds"
import json, sys
run = sys.argv[1]
th = json.load(open(run + "/eval/val/thresholds.json"))["labels"]
lines = [r for r in open(run + "/eval/test/by_View_Position.md").read().splitlines() if r.startswith("| ")]
head = [h.strip() for h in lines[0].strip("| ").split(" | ")]
rows = [dict(zip(head, [c.strip() for c in r.strip("| ").split(" | ")])) for r in lines if not r.startswith("| label")]
assert rows
for r in rows:
    t = th[r["label"]]["threshold"]
    assert r["threshold (chosen on)"] == "%.4f (val)" % t, (r, t)
PY

"$PY" - runs/s <<'PY' || fail "by_View_Position.json against sklearn"
import csv, hashlib, h5py, json, re, sys
from sklearn.metrics import roc_auc_score
run = sys.argv[1]
f = h5py.File("s.h5", "r")
dec = lambda d: [v.decode() if isinstance(v, bytes) else v for v in d[()]]
view = dict(zip(dec(f["image_name"]), dec(f["meta/View Position"])))
rows = list(csv.DictReader(open(run + "/eval/test/predictions.csv")))
by = json.load(open(run + "/eval/test/by_View_Position.json"))
assert by["column"] == "View Position" and sorted(by["groups"]) == ["AP", "PA"], by.keys()
checked = 0
for g, group in by["groups"].items():
    mine = [r for r in rows if view[r["image"]] == g]
    assert group["n_images"] == len(mine), (g, group["n_images"], len(mine))
    for label, m in group["labels"].items():
        y = [int(r["y_" + label]) for r in mine]
        p = [float(r["p_" + label]) for r in mine]
        assert m["n_pos"] == sum(y) and m["n_neg"] == len(y) - sum(y), (g, label, m)
        if 0 < sum(y) < len(y):
            # Exact: the 6 decimals of predictions.csv make no new ties here.
            assert abs(roc_auc_score(y, p) - m["auc"]) < 1e-12, (g, label, roc_auc_score(y, p), m["auc"])
            if m["auc_ci"] is not None:  # null with a single case of a class
                lo, hi = m["auc_ci"]
                assert lo <= m["auc"] <= hi, (g, label, m)
            checked += 1
assert checked >= 4, checked
# MODEL_CARD.md: the SHA-256 of the index as docs/file-formats.md defines it.
h = hashlib.sha256()
for name in ("image_name", "patient_id"):
    for v in dec(f[name]):
        h.update(v.encode() + b"\0")
for v in f["labels"].attrs["names"]:
    h.update((v.decode() if isinstance(v, bytes) else v).encode() + b"\0")
h.update(f["labels"][()].tobytes())
card = open(run + "/MODEL_CARD.md").read()
got = re.search(r"index SHA-256: `([0-9a-f]{64})`", card).group(1)
assert got == h.hexdigest(), (got, h.hexdigest())
PY

expect_fail 1 "no metadata column 'Sex'" "View Position" -- mpi 2 "$THORAX_BIN" eval runs/s --by Sex
echo "subgroups: passed"
