#!/usr/bin/env bash
# `thorax ingest` of DICOM files made at test time from real radiographs
# (../shared/data/nih14_kcr1000 PNGs) by tests/integration/dicom_fixtures.py
# (pydicom) and DCMTK's dcmcrle/dcmcjpls/dcmcjpeg:
#   - every decoded pixel equals the value computed in Python from the source
#     PNG (stored value, rescale, the PS3.3 linear window or min-max,
#     MONOCHROME1 inverted): 8-bit MONOCHROME2, 12 bits in 16 rescaled with
#     two windows (--window 1, 2, none), MONOCHROME1, signed 12-bit, no
#     window; and the 8-bit and MONOCHROME1 files give the PNG itself;
#   - the same for RLE, JPEG-LS and JPEG lossless (process 14 SV1) copies,
#     and for implicit VR and explicit big endian ones (dcmconv);
#   - patients from PatientID without a patient column, the tags in /meta;
#   - truncated, image-less, RGB and multi-frame objects are errors naming
#     the file and the problem, leave nothing behind, and --skip-bad lists them.
# Needs /usr/bin/python3 with pydicom, numpy, PIL and h5py, and DCMTK's
# tools (tools/install-test-deps.sh); skipped (77) without them.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
FIX="$THORAX_SOURCE_DIR/tests/integration/dicom_fixtures.py"
SRC="$THORAX_SOURCE_DIR/../shared/data/nih14_kcr1000/images"
if ! "$PY" -c 'import pydicom, numpy, PIL, h5py' 2>/dev/null || ! command -v dcmcjpls >/dev/null; then
  echo "ingest_dicom skipped: $PY lacks pydicom/numpy/PIL/h5py or DCMTK's tools are missing"
  exit 77
fi
[ -d "$SRC" ] || { echo "ingest_dicom skipped: no $SRC"; exit 77; }

D="$WORK/dcm"
mkdir -p "$D/rle" "$D/jpegls" "$D/jpegll" "$D/implicit" "$D/bigend" "$WORK/out"
"$PY" "$FIX" make "$SRC" "$D" || fail "making the DICOM fixtures"
for f in mono2_8 ct12 mono1 signed12 nowindow; do
  dcmcrle "$D/$f.dcm" "$D/rle/$f.dcm" || fail "dcmcrle $f"
  dcmcjpls --encode-lossless "$D/$f.dcm" "$D/jpegls/$f.dcm" || fail "dcmcjpls $f"
  dcmcjpeg --encode-lossless-sv1 "$D/$f.dcm" "$D/jpegll/$f.dcm" || fail "dcmcjpeg $f"
  dcmconv +ti "$D/$f.dcm" "$D/implicit/$f.dcm" || fail "dcmconv +ti $f"
  dcmconv +tb "$D/$f.dcm" "$D/bigend/$f.dcm" || fail "dcmconv +tb $f"
done
O="$WORK/out"

# Pixels: the default window, the second, and min-max.
"$THORAX_BIN" ingest --csv "$D/labels.csv" --images "$D" --out "$O/w1.h5" >"$O/w1.txt" 2>&1 ||
  { cat "$O/w1.txt"; fail "ingest of the DICOM files"; }
grep -qF "wrote 5 images of 5 patients (64x64" "$O/w1.txt" || { cat "$O/w1.txt"; fail "patients from PatientID"; }
"$PY" "$FIX" check "$D" "$O/w1.h5" 1 || fail "pixels, first window"
"$PY" "$FIX" png "$O/w1.h5" mono2_8.dcm "$("$PY" "$FIX" source "$SRC" 0)" 0 || fail "8-bit MONOCHROME2 is not its PNG"
"$PY" "$FIX" png "$O/w1.h5" mono1.dcm "$("$PY" "$FIX" source "$SRC" 2)" 0 || fail "MONOCHROME1 is not inverted"
"$THORAX_BIN" ingest --csv "$D/ct12.csv" --images "$D" --out "$O/w2.h5" --window 2 >/dev/null 2>&1 ||
  fail "ingest --window 2"
"$PY" "$FIX" check "$D" "$O/w2.h5" 2 || fail "pixels, second window"
"$THORAX_BIN" ingest --csv "$D/labels.csv" --images "$D" --out "$O/wn.h5" --window none >/dev/null 2>&1 ||
  fail "ingest --window none"
"$PY" "$FIX" check "$D" "$O/wn.h5" none || fail "pixels, min-max"
expect_fail 1 "labels.csv:2" "mono2_8.dcm" "no window 2 (the file has 1 window)" -- \
  "$THORAX_BIN" ingest --csv "$D/labels.csv" --images "$D" --out "$O/nope.h5" --window 2
[ ! -e "$O/nope.h5" ] || fail "a failed run left nope.h5"
expect_fail 2 "--window" "expected 1 to 1000, or none" -- \
  "$THORAX_BIN" ingest --csv "$D/labels.csv" --images "$D" --out "$O/nope.h5" --window 0

# Compressed transfer syntaxes, lossless, and implicit VR and big endian: the same pixels.
"$THORAX_BIN" ingest --csv "$D/compressed.csv" --images "$D" --out "$O/c.h5" >/dev/null 2>&1 ||
  fail "ingest of RLE, JPEG-LS and JPEG lossless files"
"$PY" "$FIX" check "$D" "$O/c.h5" 1 || fail "pixels of the compressed files"

# Patients and tags.
"$PY" - "$O/w1.h5" <<'EOF' || fail "patient IDs or /meta tags"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
pid = [p.decode() for p in f["patient_id"][:]]
assert pid == ["P1", "P2", "P3", "P4", "P5"], pid
for tag, want in [("PatientSex", "F"), ("PatientAge", "042Y"), ("ViewPosition", "PA"), ("Manufacturer", "Thorax Test")]:
    got = {v.decode() for v in f["meta"][tag][:]}
    assert got == {want}, (tag, got)
print("patients and tags ok")
EOF

# Bad objects: named errors, nothing left behind; --skip-bad lists them.
for bad in truncated:"truncated or damaged" nopixel:"no pixel data" rgb:"photometric interpretation RGB" \
           multiframe:"multi-frame object (2 frames)"; do
  name=${bad%%:*} words=${bad#*:}
  mkdir -p "$O/$name"
  expect_fail 1 "bad_$name.csv:3" "$name.dcm" "$words" -- \
    "$THORAX_BIN" ingest --csv "$D/bad_$name.csv" --images "$D" --out "$O/$name/x.h5"
  [ -z "$(ls -A "$O/$name")" ] || fail "$name: a failed run left $(ls -A "$O/$name")"
  "$THORAX_BIN" ingest --csv "$D/bad_$name.csv" --images "$D" --out "$O/$name/x.h5" --skip-bad >"$O/$name.txt" ||
    fail "$name with --skip-bad"
  grep -qF "skipped 1 of 2 rows" "$O/$name.txt" || { cat "$O/$name.txt"; fail "$name: not skipped"; }
  grep -qF "$words" "$O/$name/x.h5.skipped.csv" || { cat "$O/$name/x.h5.skipped.csv"; fail "$name: report"; }
done
printf 'image,patient_id,Effusion\nmono2_8.dcm,P1,0\nmissing.dcm,P9,1\n' >"$D/missing.csv"
mkdir -p "$O/missing"
expect_fail 1 "missing.csv:3" "cannot open" "missing.dcm: No such file" -- \
  "$THORAX_BIN" ingest --csv "$D/missing.csv" --images "$D" --out "$O/missing/x.h5"
[ -z "$(ls -A "$O/missing")" ] || fail "missing: a failed run left $(ls -A "$O/missing")"
# --dicom-dir: a nested tree, rows naming files by base name (with or without
# .dcm); a file no row names is an error, or left out with --skip-bad.
T="$WORK/tree"
mkdir -p "$T/study1/series1" "$T/study2/series9" "$T/.hidden"
cp "$D/mono2_8.dcm" "$D/mono1.dcm" "$T/study1/series1/"
cp "$D/ct12.dcm" "$T/study2/series9/"
cp "$D/nowindow.dcm" "$T/study2/series9/stray.dcm"
cp "$D/signed12.dcm" "$T/.hidden/"
printf 'image,Effusion\nmono2_8,0\nstudy2/ct12.dcm,1\nmono1.dcm,1\n' >"$D/tree.csv"
mkdir -p "$O/tree"
expect_fail 1 "tree.csv" "1 DICOM file under" "stray.dcm" "--skip-bad" -- \
  "$THORAX_BIN" ingest --csv "$D/tree.csv" --dicom-dir "$T" --out "$O/tree/x.h5"
[ -z "$(ls -A "$O/tree")" ] || fail "tree: a failed run left $(ls -A "$O/tree")"
"$THORAX_BIN" ingest --csv "$D/tree.csv" --dicom-dir "$T" --out "$O/tree/x.h5" --skip-bad >"$O/tree.txt" 2>&1 ||
  { cat "$O/tree.txt"; fail "ingest --dicom-dir --skip-bad"; }
grep -qF "wrote 3 images of 3 patients" "$O/tree.txt" || { cat "$O/tree.txt"; fail "tree: images"; }
grep -qF "left out 1 unlabelled DICOM files" "$O/tree.txt" || { cat "$O/tree.txt"; fail "tree: unlabelled"; }
grep -qF "stray.dcm,DICOM file with no row in the CSV" "$O/tree/x.h5.skipped.csv" ||
  { cat "$O/tree/x.h5.skipped.csv"; fail "tree: report"; }
"$PY" "$FIX" check "$D" "$O/tree/x.h5" 1 || fail "tree: pixels"
printf 'image,Effusion\nmono2_8,0\nnothere,1\n' >"$D/tree_missing.csv"
expect_fail 1 "tree_missing.csv:3" "nothere" "no DICOM file of this name under" -- \
  "$THORAX_BIN" ingest --csv "$D/tree_missing.csv" --dicom-dir "$T" --out "$O/tree/y.h5"
cp "$D/mono2_8.dcm" "$T/study2/"
expect_fail 1 "two DICOM files named mono2_8" -- \
  "$THORAX_BIN" ingest --csv "$D/tree.csv" --dicom-dir "$T" --out "$O/tree/y.h5"
expect_fail 2 "--images DIR or --dicom-dir DIR, not both" -- \
  "$THORAX_BIN" ingest --csv "$D/tree.csv" --dicom-dir "$T" --images "$D" --out "$O/tree/y.h5"
echo "ingest_dicom: all checks passed"
