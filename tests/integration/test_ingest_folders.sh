#!/usr/bin/env bash
# `thorax ingest --format folders` on kermany224 laid out as the Kaggle
# pediatric-pneumonia collection is: train|test/NORMAL|PNEUMONIA/<name>.jpeg,
# every image re-encoded as JPEG (PIL, quality 95), NORMAL and PNEUMONIA from
# labels.csv's Pneumonia column, and a fixed split by patient (every fifth
# patient in byte order to test). The same images ingested from the PNGs
# with a CSV of those labels and that split must give, image by image
# (matched by name stem), the same /patient_id (here from the file names, there
# from the CSV's column), /labels and /split, and pixels within JPEG's loss
# (mean |difference| < 0.5 grey level). Then the layout's errors: a file
# beside the class folders, a class folder beside split folders, a name
# without a patient ID (and --patient-from file, which takes it with a
# warning), and --csv given with folders.
source "$(dirname "$0")/lib.sh"
DATA="$THORAX_SOURCE_DIR/../shared/data/kermany224"
PY=/usr/bin/python3
[ -d "$DATA" ] || { echo "ingest_folders skipped: $DATA not found"; exit 77; }
"$PY" -c 'import PIL, h5py, numpy' 2>/dev/null || { echo "ingest_folders skipped: $PY lacks PIL, h5py or numpy"; exit 77; }

TREE="$WORK/chest_xray"
"$PY" - "$DATA" "$TREE" "$WORK/labels.csv" <<'PYEOF'
import csv, os, sys
from PIL import Image
data, tree, out = sys.argv[1:]
rows = list(csv.DictReader(open(f"{data}/labels.csv")))
patients = sorted({r["patient_id"] for r in rows})
test = set(patients[::5])
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["image", "patient_id", "Pneumonia", "split"])
    for r in rows:
        split = "test" if r["patient_id"] in test else "train"
        cls = "PNEUMONIA" if r["Pneumonia"] == "1" else "NORMAL"
        d = f"{tree}/{split}/{cls}"
        os.makedirs(d, exist_ok=True)
        Image.open(f"{data}/images/{r['image']}").save(f"{d}/{r['image'][:-4]}.jpeg", quality=95)
        w.writerow([r["image"], r["patient_id"], r["Pneumonia"], split])
PYEOF
touch "$TREE/.DS_Store" "$TREE/train/NORMAL/.hidden"     # hidden entries are not images

"$THORAX_BIN" ingest --images "$TREE" --format folders --out "$WORK/folders.h5" >"$WORK/folders.out" \
  2>"$WORK/folders.err" || { cat "$WORK/folders.err" >&2; fail "ingest --format folders"; }
cat "$WORK/folders.out"
"$THORAX_BIN" ingest --csv "$WORK/labels.csv" --images "$DATA/images" --out "$WORK/csv.h5" >"$WORK/csv.out" \
  2>"$WORK/csv.err" || { cat "$WORK/csv.err" >&2; fail "ingest of the PNG CSV"; }
grep -q "wrote 5216 images of 2846 patients (224x224, folders layout)" "$WORK/folders.out" || fail "folders summary"
grep -q "PNEUMONIA *3875 positive" "$WORK/folders.out" || fail "folders positives"

"$PY" - "$WORK/folders.h5" "$WORK/csv.h5" <<'PYEOF' || fail "the folders file differs from the CSV file"
import os, sys
import h5py
import numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
names = [n.decode() if isinstance(n, bytes) else n for n in a["labels"].attrs["names"]]
assert names == ["PNEUMONIA"], names
stem = lambda n: os.path.splitext(os.path.basename(n.decode()))[0]
ia = {stem(n): i for i, n in enumerate(a["image_name"][:])}
ib = {stem(n): i for i, n in enumerate(b["image_name"][:])}
assert len(ia) == len(ib) == 5216 and ia.keys() == ib.keys()
order = sorted(ia)
ra, rb = [ia[s] for s in order], [ib[s] for s in order]
for key in ("patient_id", "labels", "split"):
    va, vb = a[key][:][ra], b[key][:][rb]
    assert np.array_equal(va, vb), key
    print(f"{key}: equal for all {len(order)} images")
for s in order:
    assert a["image_name"][ia[s]].decode().startswith(("train/", "test/"))
pa, pb = a["images"][:], b["images"][:]
total, largest = 0, 0
for i, j in zip(ra, rb):
    d = np.abs(pa[i].astype(np.int16) - pb[j])
    total, largest = total + int(d.sum()), max(largest, int(d.max()))
mean = total / (len(order) * pa[0].size)
print(f"pixels: mean |JPEG - PNG| {mean:.3f} grey levels, largest {largest}")
assert mean < 0.5
PYEOF

# The layout's errors, each naming what is wrong, on a small copy of the tree.
SMALL="$WORK/small"
for d in train/NORMAL train/PNEUMONIA test/NORMAL; do
  mkdir -p "$SMALL/$d"
  cp $(ls "$TREE/$d"/*.jpeg | head -3) "$SMALL/$d/"
done
touch "$SMALL/notes.txt"
expect_fail 1 "$SMALL/notes.txt: a file where class or split folders are expected" -- \
  "$THORAX_BIN" ingest --images "$SMALL" --format folders --out "$WORK/x.h5"
rm "$SMALL/notes.txt"
mkdir "$SMALL/holdout"
expect_fail 1 "$SMALL/holdout: a class folder beside the split folders" -- \
  "$THORAX_BIN" ingest --images "$SMALL" --format folders --out "$WORK/x.h5"
rmdir "$SMALL/holdout"
cp "$(ls "$SMALL"/test/NORMAL/*.jpeg | head -1)" "$SMALL/test/NORMAL/scan7.jpeg"
expect_fail 1 "image test/NORMAL/scan7.jpeg" "no patient ID in the image name" "--patient-from file" -- \
  "$THORAX_BIN" ingest --images "$SMALL" --format folders --out "$WORK/x.h5"
[ ! -e "$WORK/x.h5" ] || fail "a failed ingest left x.h5"
"$THORAX_BIN" ingest --images "$SMALL" --format folders --out "$WORK/x.h5" --patient-from file >"$WORK/out.txt" \
  2>"$WORK/err.txt" || { cat "$WORK/err.txt" >&2; fail "--patient-from file"; }
grep -q "warning: 1 images have no patient ID" "$WORK/err.txt" || fail "no warning for --patient-from file"
grep -q "wrote 10 images of" "$WORK/out.txt" || fail "--patient-from file: $(head -1 "$WORK/out.txt")"
expect_fail 2 "--format folders takes its labels from the folders" -- \
  "$THORAX_BIN" ingest --images "$SMALL" --format folders --csv "$WORK/labels.csv" --out "$WORK/x.h5"
echo "ingest_folders: all checks passed"
