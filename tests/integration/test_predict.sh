#!/usr/bin/env bash
# thorax predict on the quick start's network (2 epochs on a phantom file, 2
# ranks), with 73 of the file's images written out as PNGs (one as JPEG, one
# without a name extension), some in a subdirectory, one named with a comma,
# quotes and a space, and one more as a PNG and a DICOM file of the same
# pixels:
#  - --csv and --json parse (python3 csv/json), hold one row per image with
#    every label, agree with each other to the CSV's 6 decimals, with the
#    table's 4 decimals and '*' marks, and with val's thresholds.json
#    (pred_<label> is p >= threshold);
#  - a directory, glob patterns (quoted: thorax expands them) and the files
#    named one by one give the same rows; a file named twice is one row;
#  - batches of 32 (default), 7 and 1 give byte-identical CSV and JSON;
#  - a DICOM file predicts as the PNG of the same pixels;
#  - a corrupt image: without --skip-bad status 1, the error names it and
#    --skip-bad, and nothing is printed or written; with it status 0, the
#    others predicted, the count on stderr, the image under "skipped";
#  - the only image failing prints no table header;
#  - --csv or --json onto an input image (however spelt) is refused and the
#    image is unchanged; --csv - is CSV alone on stdout;
#  - a progress line with img/s and ETA on stderr.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import h5py, numpy, PIL, pydicom" 2>/dev/null || { echo "skip: $PY lacks h5py, numpy, PIL or pydicom"; exit 77; }
cd "$WORK"
"$THORAX_BIN" phantom --out p.h5 --size 64 --patients 200 --seed 3 >/dev/null 2>&1
mpi 2 "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/quickstart.yaml" --set data.path="$WORK/p.h5" \
  --set runtime.out_dir="$WORK/runs" --set name=q --set train.epochs=2 >train.log 2>&1 || { cat train.log; fail "training"; }
run=runs/q
[ -s $run/eval/val/thresholds.json ] || fail "training chose no operating points on val"

PYTHONPATH="$THORAX_SOURCE_DIR/tests/integration" $PY - <<'PY' || fail "writing the test images"
import os, h5py, numpy as np
from PIL import Image
from dicom_fixtures import dx, save
im = h5py.File("p.h5")["images"]
os.makedirs("imgs/sub", exist_ok=True)
for i in range(70):
    Image.fromarray(im[i]).save(f"{'imgs/sub' if i % 2 else 'imgs'}/img{i:03d}.png")
Image.fromarray(im[70]).save('imgs/odd, "name".png')
Image.fromarray(im[73]).save("imgs/sub/photo.jpg", quality=95)
Image.fromarray(im[74]).save("imgs/magic", format="PNG")   # an image by its first bytes alone
open("imgs/notes.txt", "w").write("not an image\n")       # left out of the walk
Image.fromarray(im[71]).save("imgs/.hidden.png")          # hidden: left out
# The same pixels as PNG and DICOM; a 0 and a 255 make DICOM's min-max window the identity.
os.makedirs("dcm", exist_ok=True)
a = np.array(im[72])
a[0, 0], a[0, 1] = 0, 255
Image.fromarray(a).save("dcm/scan.png")
save(dx(a, 8), "dcm/scan.dcm")
PY
n_img=73

# ---- the table, CSV and JSON of one run -------------------------------------
"$THORAX_BIN" predict $run imgs --csv out.csv --json out.json >table.txt 2>table.err \
  || { cat table.err; fail "thorax predict"; }
grep -F "predict: $n_img/$n_img images (100%)" table.err | grep -F "img/s" | grep -F "ETA" >/dev/null \
  || { cat table.err; fail "no progress line with img/s and ETA"; }
$PY - "$run" $n_img <<'PY' || { cat table.txt; fail "CSV, JSON, table and thresholds disagree"; }
import csv, json, sys
import numpy as np
run, n = sys.argv[1], int(sys.argv[2])
# JSON holds each probability and threshold as the shortest decimal of its
# float32: back to that float before formatting or comparing, as C does.
f32 = lambda v: float(np.float32(v))
labels = ["Pneumothorax", "Cardiomegaly", "Effusion", "Nodule"]
th = json.load(open(f"{run}/eval/val/thresholds.json"))
thr = {k: f32(th["labels"][k]["threshold"]) for k in labels}
rows = list(csv.DictReader(open("out.csv", newline="")))
head = open("out.csv").readline().strip().split(",")
assert head == ["image"] + ["p_" + k for k in labels] + ["pred_" + k for k in labels], head
assert len(rows) == n, len(rows)
names = [r["image"] for r in rows]
assert names == sorted(names) and len(set(names)) == n, names
for x in ['imgs/odd, "name".png', "imgs/sub/img001.png", "imgs/sub/photo.jpg", "imgs/magic"]:
    assert x in names, (x, names)
assert not any("hidden" in x or x.endswith(".txt") for x in names), names
js = json.load(open("out.json"))
assert js["labels"] == labels and js["rule"] == th["rule"] and js["skipped"] == [], js.keys()
assert [x["image"] for x in js["images"]] == names
for k in labels:
    assert f32(js["operating_points"][k]) == thr[k], (k, js["operating_points"][k], thr[k])
# The table: the path then one cell per label; the path may hold spaces, so cells come from the right.
lines = open("table.txt").read().splitlines()
assert lines[0].split() == ["image"] + labels, lines[0]
assert lines[-1].startswith("* at or above the label's operating point, chosen on val by " + th["rule"]), lines[-1]
body = lines[1:-1]
assert len(body) == n, len(body)
for r, j, line in zip(rows, js["images"], body):
    cells = line.split()[-len(labels):]
    assert line.startswith(r["image"] + " "), (line, r["image"])
    # Every row's cells start in the same column: the path column is as wide as the longest path.
    assert len(line) == len(body[0]), (line, body[0])
    for k, c in zip(labels, cells):
        p = f32(j["p"][k])
        assert r["p_" + k] == "%.6f" % p, (r, j)
        assert c.rstrip("*") == "%.4f" % p, (c, j["p"][k])
        pred = p >= thr[k]
        assert r["pred_" + k] == str(int(pred)) and j["pred"][k] == int(pred), (k, r, j, thr[k])
        assert c.endswith("*") == pred, (k, c, thr[k])
    assert j["warnings"] == [], j
PY

# ---- the same images named as a directory, as globs and one by one ----------
"$THORAX_BIN" predict $run imgs/ --csv dir.csv >/dev/null 2>&1 || fail "predict DIR/"
"$THORAX_BIN" predict $run 'imgs/*' 'imgs/sub/*' --csv glob.csv >/dev/null 2>&1 || fail "predict GLOB"
"$THORAX_BIN" predict $run imgs/sub/* imgs/*.png imgs/magic imgs/img000.png --csv files.csv >/dev/null 2>&1 \
  || fail "predict FILE..."
for f in dir glob files; do cmp -s out.csv $f.csv || { diff out.csv $f.csv | head; fail "$f.csv differs from out.csv"; }; done
expect_fail 1 "no file matches" "nothere/*.png" -- "$THORAX_BIN" predict $run 'nothere/*.png'
mkdir -p empty && expect_fail 1 "empty" "no PNG, JPEG or DICOM image" -- "$THORAX_BIN" predict $run empty

# ---- batches -----------------------------------------------------------------
for b in 7 1; do
  "$THORAX_BIN" predict $run imgs --batch $b --csv b$b.csv --json b$b.json >/dev/null 2>&1 || fail "--batch $b"
  cmp -s out.csv b$b.csv || { diff out.csv b$b.csv | head; fail "--batch $b gives another CSV than 32"; }
  cmp -s out.json b$b.json || fail "--batch $b gives another JSON than 32"
done
expect_fail 2 "--batch" "'0'" -- "$THORAX_BIN" predict $run imgs --batch 0

# ---- DICOM -------------------------------------------------------------------
"$THORAX_BIN" predict $run dcm --csv dcm.csv >/dev/null 2>&1 || fail "predict a DICOM file"
[ "$(cut -d, -f2- dcm.csv | tail -n +2 | uniq | wc -l)" = 1 ] || { cat dcm.csv; fail "DICOM and PNG of the same pixels differ"; }
[ "$(wc -l <dcm.csv)" = 3 ] || { cat dcm.csv; fail "the DICOM directory did not give its two images"; }

# ---- corrupt images -----------------------------------------------------------
mkdir -p bad && cp imgs/img000.png imgs/img002.png bad/ && head -c 300 imgs/img004.png >bad/img001.png
expect_fail 1 "bad/img001.png" "truncated" "--skip-bad" -- "$THORAX_BIN" predict $run bad --csv bad.csv --json bad.json
if [ -s "$WORK/out.txt" ]; then cat "$WORK/out.txt"; fail "a failed predict printed a table"; fi
if [ -e bad.csv ] || [ -e bad.json ]; then fail "a failed predict wrote its outputs"; fi
"$THORAX_BIN" predict $run bad --skip-bad --csv bad.csv --json bad.json >bad.txt 2>bad.err \
  || { cat bad.err; fail "--skip-bad did not go on"; }
grep -F "bad/img001.png" bad.err | grep -F "truncated" >/dev/null || { cat bad.err; fail "--skip-bad did not name the image"; }
grep -F "skipped 1 of 3 images" bad.err >/dev/null || { cat bad.err; fail "--skip-bad gave no count"; }
if grep -F "img001" bad.txt >/dev/null; then fail "the table lists the unreadable image"; fi
[ "$(grep -c '^bad/img00[02].png ' bad.txt)" = 2 ] || { cat bad.txt; fail "the table lacks the good images"; }
$PY - <<'PY' || fail "--skip-bad's CSV or JSON"
import csv, json
rows = list(csv.DictReader(open("bad.csv", newline="")))
assert [r["image"] for r in rows] == ["bad/img000.png", "bad/img002.png"], rows
full = {r["image"].replace("imgs/", "bad/"): r for r in csv.DictReader(open("out.csv", newline=""))}
for r in rows:
    assert {k: v for k, v in r.items() if k != "image"} == {k: v for k, v in full[r["image"]].items() if k != "image"}
js = json.load(open("bad.json"))
assert [s["image"] for s in js["skipped"]] == ["bad/img001.png"] and "truncated" in js["skipped"][0]["error"], js
PY
# The only image failing: no header, with or without --skip-bad.
for opt in "" --skip-bad; do
  expect_fail 1 "bad/img001.png" -- "$THORAX_BIN" predict $run bad/img001.png $opt
  if [ -s "$WORK/out.txt" ]; then cat "$WORK/out.txt"; fail "predict printed a table for an image that failed"; fi
done

# ---- outputs never overwrite an input ----------------------------------------
sum=$(sha256sum imgs/img000.png)
expect_fail 1 "refusing" "imgs/img000.png" -- "$THORAX_BIN" predict $run imgs --csv imgs/img000.png
expect_fail 1 "refusing" "./imgs/sub/../img000.png" -- "$THORAX_BIN" predict $run 'imgs/*.png' --json ./imgs/sub/../img000.png
[ "$(sha256sum imgs/img000.png)" = "$sum" ] || fail "an input image was overwritten"
if ls imgs imgs/sub | grep '\.tmp$'; then fail "a temporary file was left behind"; fi
expect_fail 2 "--csv and --json" -- "$THORAX_BIN" predict $run imgs --csv o.txt --json o.txt

# ---- stdout -------------------------------------------------------------------
"$THORAX_BIN" predict $run imgs --csv - >stdout.csv 2>/dev/null || fail "--csv -"
cmp -s out.csv stdout.csv || fail "--csv - is not the CSV alone"
"$THORAX_BIN" predict --help | grep -F -- "--skip-bad" >/dev/null || fail "--help lacks --skip-bad"
echo "predict: all checks passed"
