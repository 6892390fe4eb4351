#!/usr/bin/env bash
# `thorax ingest` on the real data sets of ../shared/data, at their own size
# and at --size 256: images, patients, positives per label, images without
# findings and the split (images, patients, positives per split) must be the
# figures of each set's SOURCE.md (and each figure is looked up in SOURCE.md,
# so a changed data set fails here rather than passing against stale numbers).
# Also: kermany224 without its patient column gives the same patients from
# the file names; nih14 rewritten as an NIH Data_Entry_2017.csv gives the same
# labels, patients and pixels; resizing to 256 keeps the mean intensity.
# The data are never copied: everything reads them where they are.
source "$(dirname "$0")/lib.sh"
DATA="$THORAX_SOURCE_DIR/../shared/data"
if [ ! -d "$DATA" ]; then
  echo "ingest_shared skipped: ../shared/data not found (looked in $DATA)"
  exit 77   # ctest's skip: nothing was asserted
fi

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
# has FILE LINE: FILE has exactly this line (or, with a trailing space, a line starting with it).
has() {
  if [[ "$2" == *" " ]]; then grep -q "^$2" "$1"; else grep -qxF -- "$2" "$1"; fi && ok || { bad "$1 lacks '$2'"; sed 's/^/  /' "$1" >&2; }
}
# in_source SET TEXT: SOURCE.md (or the data README) states TEXT.
in_source() {
  grep -qF -- "$2" "$DATA/$1/SOURCE.md" "$DATA/README.md" && ok || bad "$1/SOURCE.md no longer says '$2'"
}

# ingest SET NAME [options]: ingests SET into $WORK/NAME.h5, prints the speed,
# leaves the counts in $WORK/NAME.sum; returns non-zero on failure.
ingest() {
  local set=$1 name=$2
  shift 2
  if ! "$THORAX_BIN" ingest --images "$DATA/$set/images" --out "$WORK/$name.h5" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    cat "$WORK/$name.err" >&2
    bad "ingest $name"
    return 1
  fi
  echo "$name: $(grep -o '[0-9]* img/s' "$WORK/$name.out" | tail -1) ($(head -1 "$WORK/$name.out" | grep -o 'in [0-9.]*s'))"
  "$TOOLS/h5_summary" "$WORK/$name.h5" >"$WORK/$name.sum" || { bad "h5_summary $name"; return 1; }
  ok
}

# same_mean A B: the mean pixel of A and B within 1 grey level.
same_mean() {
  local a b
  a=$(awk '$1 == "pixel_mean" {print $2}' "$WORK/$1.sum")
  b=$(awk '$1 == "pixel_mean" {print $2}' "$WORK/$2.sum")
  awk -v a="$a" -v b="$b" 'BEGIN {d = a - b; exit !(a != "" && d < 1 && d > -1)}' && ok || bad "mean $1 $a vs $2 $b"
}

# ---------------------------------------------------------------------------
check_kermany() {
  local s=$1
  has "$WORK/$s.sum" "images 5216"
  has "$WORK/$s.sum" "labels 3 Pneumonia Pneumonia_bacterial Pneumonia_viral"
  has "$WORK/$s.sum" "pos Pneumonia 3875"
  has "$WORK/$s.sum" "all_negative 1341"
  has "$WORK/$s.sum" "patients 2846"
  # Every pneumonia is bacterial or viral, never both.
  local b v
  b=$(awk '$2 == "Pneumonia_bacterial" {print $3}' "$WORK/$s.sum")
  v=$(awk '$2 == "Pneumonia_viral" {print $3}' "$WORK/$s.sum")
  [ "$((b + v))" = 3875 ] && ok || bad "$s: bacterial $b + viral $v != 3875"
  ! grep -q '^split' "$WORK/$s.sum" && ok || bad "$s: kermany224 has no split column"
}

if [ -d "$DATA/kermany224" ]; then
  for t in "5,216 images" "Pneumonia 3,875" "normal 1,341" "2,846 unique patients" "There is no split column"; do
    in_source kermany224 "$t"
  done
  csv="$DATA/kermany224/labels.csv"
  if ingest kermany224 kermany224 --csv "$csv"; then
    has "$WORK/kermany224.sum" "size 224 224"
    check_kermany kermany224
  fi
  if ingest kermany224 kermany224_256 --csv "$csv" --size 256; then
    has "$WORK/kermany224_256.sum" "size 256 256"
    check_kermany kermany224_256
    same_mean kermany224 kermany224_256
  fi
  # Without the patient column: the IDs come from the Kermany file names.
  cut -d, -f1,3- "$csv" >"$WORK/kermany_nopid.csv"
  if ingest kermany224 kermany_nopid --csv "$WORK/kermany_nopid.csv" --labels Pneumonia; then
    has "$WORK/kermany_nopid.sum" "patients 2846"
    "$TOOLS/h5_summary" "$WORK/kermany224.h5" --rows | cut -d' ' -f1,2 >"$WORK/k1.rows"
    "$TOOLS/h5_summary" "$WORK/kermany_nopid.h5" --rows | cut -d' ' -f1,2 >"$WORK/k2.rows"
    cmp -s "$WORK/k1.rows" "$WORK/k2.rows" && ok || bad "kermany224: patient IDs from names differ from the CSV's"
  fi
else
  echo "kermany224 skipped: not in $DATA"
  skipped=$((skipped + 1))
fi

# ---------------------------------------------------------------------------
NIH_POS=(Atelectasis:95 Cardiomegaly:83 Effusion:170 Infiltration:162 Mass:35 Nodule:39 Pneumonia:11
         Pneumothorax:40 Consolidation:42 Edema:31 Emphysema:37 Fibrosis:32 Pleural_Thickening:29 Hernia:9)
check_nih() {
  local s=$1 split=$2 p
  has "$WORK/$s.sum" "images 1000"
  has "$WORK/$s.sum" "patients 264"
  has "$WORK/$s.sum" "all_negative 499"
  for p in "${NIH_POS[@]}"; do has "$WORK/$s.sum" "pos ${p%%:*} ${p##*:}"; done
  if [ "$split" = split ]; then
    has "$WORK/$s.sum" "split train 600 165 "
    has "$WORK/$s.sum" "split val 200 71 "
    has "$WORK/$s.sum" "split test 200 59 "
  fi
}

if [ -d "$DATA/nih14_kcr1000" ]; then
  for t in "1,000 images from **264 unique patients**" "499 rows with every label 0" \
           "Train has 600 images and 165 patients," "val has 200 and 71, test has 200 and 59"; do
    in_source nih14_kcr1000 "$t"
  done
  for p in "${NIH_POS[@]}"; do in_source nih14_kcr1000 "${p%%:*} ${p##*:}"; done
  csv="$DATA/nih14_kcr1000/labels.csv"
  if ingest nih14_kcr1000 nih14 --csv "$csv"; then
    has "$WORK/nih14.sum" "size 64 64"
    check_nih nih14 split
  fi
  if ingest nih14_kcr1000 nih14_256 --csv "$csv" --size 256; then
    has "$WORK/nih14_256.sum" "size 256 256"
    check_nih nih14_256 split
    same_mean nih14 nih14_256
  fi
  # The same labels as NIH's Data_Entry_2017.csv writes them: findings joined
  # by '|' or "No Finding", numeric patient IDs, metadata columns, and the
  # header split by the commas inside its brackets.
  awk -F, 'NR == 1 { for (k = 3; k <= 16; k++) name[k] = $k
                     print "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
                     next }
           { f = ""
             for (k = 3; k <= 16; k++) if ($k == 1) f = f (f == "" ? "" : "|") name[k]
             if (f == "") f = "No Finding"
             split($1, part, /[_.]/)
             printf "%s,%s,%d,%d,50,M,PA,64,64,0.143,0.143,\n", $1, f, part[2], $2 }' "$csv" >"$WORK/Data_Entry_2017.csv"
  if ingest nih14_kcr1000 nih14_entry --csv "$WORK/Data_Entry_2017.csv"; then
    grep -q "nih layout" "$WORK/nih14_entry.out" && ok || bad "Data_Entry_2017.csv not read as the NIH layout"
    check_nih nih14_entry nosplit
    # Name, patient, labels and pixel sum, row by row (the split is not in Data_Entry).
    "$TOOLS/h5_summary" "$WORK/nih14.h5" --rows | cut -d' ' -f1-4 >"$WORK/n1.rows"
    "$TOOLS/h5_summary" "$WORK/nih14_entry.h5" --rows | cut -d' ' -f1-4 >"$WORK/n2.rows"
    cmp -s "$WORK/n1.rows" "$WORK/n2.rows" && ok || bad "nih14: the Data_Entry layout gives other rows than labels.csv"
  fi
else
  echo "nih14_kcr1000 skipped: not in $DATA"
  skipped=$((skipped + 1))
fi

# ---------------------------------------------------------------------------
check_pmnist() {
  local s=$1
  has "$WORK/$s.sum" "images 5232"
  has "$WORK/$s.sum" "patients 5232"
  has "$WORK/$s.sum" "pos Pneumonia 3883"
  has "$WORK/$s.sum" "split train 4708 4708 3494"
  has "$WORK/$s.sum" "split val 524 524 389"
  has "$WORK/$s.sum" "split test 0 0 0"
}

if [ -d "$DATA/pneumoniamnist" ]; then
  for t in "official train (4,708) and val (524)" "Train 4708 (Pneumonia 3494), val 524 (389)" \
           "5,232 MedMNIST v2 PneumoniaMNIST (train + val)" "unique ID per image"; do
    in_source pneumoniamnist "$t"
  done
  csv="$DATA/pneumoniamnist/labels.csv"
  if ingest pneumoniamnist pmnist --csv "$csv"; then
    has "$WORK/pmnist.sum" "size 28 28"
    check_pmnist pmnist
  fi
  if ingest pneumoniamnist pmnist_256 --csv "$csv" --size 256; then
    has "$WORK/pmnist_256.sum" "size 256 256"
    check_pmnist pmnist_256
    same_mean pmnist pmnist_256
  fi
else
  echo "pneumoniamnist skipped: not in $DATA"
  skipped=$((skipped + 1))
fi

# Nothing left over next to the outputs.
[ -z "$(find "$WORK" -name '*.tmp')" ] && ok || bad "temporary files left: $(find "$WORK" -name '*.tmp')"

echo "ingest_shared: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || exit 1
# None of the three sets there: nothing real was asserted, which is a skip.
[ "$skipped" -lt 3 ] || exit 77
