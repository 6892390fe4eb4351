#!/usr/bin/env bash
# The data fingerprint and eval --data's overlap report (issue 20, class 4):
#  - run.json's data_fingerprint is the one docs/file-formats.md defines,
#    recomputed here from the file with h5dump and sha256sum (names, patient
#    IDs, pixels: per-image SHA-256s, then the SHA-256 of their bytes);
#  - it does not depend on the ranks: a run trained on 2 ranks evaluates its
#    own file on 4 (which checks the fingerprint);
#  - eval --data F counts F's patients (by ID) and images (by pixels) that are
#    in the run's training split, in metrics.json and as a warning: checked
#    against the same counts made here from split.csv, h5_summary's patient
#    IDs and h5dump's pixels, on 2 and 4 ranks; for a file with the same
#    patient IDs but other pixels, and for one sharing some images.
# Needs h5dump (hdf5-tools).
source "$(dirname "$0")/lib.sh"
command -v h5dump >/dev/null || { echo "data_pin skipped: no h5dump (apt-get install hdf5-tools)"; exit 77; }
cd "$WORK"

"$THORAX_BIN" phantom --out small.h5 --patients 30 --size 32 --seed 3 >/dev/null 2>&1 || fail "phantom small"
# The first 30 patients of the same seed and 10 more (their images match
# small.h5's where the renders agree), and 30 patients of another seed (the
# same IDs P00000..., other pixels).
"$THORAX_BIN" phantom --out big.h5 --patients 40 --size 32 --seed 3 >/dev/null 2>&1 || fail "phantom big"
"$THORAX_BIN" phantom --out other.h5 --patients 30 --size 32 --seed 9 >/dev/null 2>&1 || fail "phantom other"
# small.h5 with an 'R' tag drawn on some images: some images shared, not all.
"$THORAX_BIN" phantom --out mark.h5 --patients 30 --size 32 --seed 3 --marker 0 >/dev/null 2>&1 || fail "phantom mark"
cp "$THORAX_SOURCE_DIR/tests/corpus/bad_input/base.yaml" base.yaml
mpi 2 "$THORAX_BIN" train base.yaml --set data.path="$WORK/small.h5" >train.log 2>&1 || { cat train.log; fail "train"; }
RUN=runs/base

# Per-image SHA-256s of a file, one hex line per image in row order.
image_digests() {
  local f=$1 px="$WORK/$1.px" side=32
  h5dump -d /images -b LE -o "$px" "$f" >/dev/null || fail "h5dump $f"
  mkdir -p "$WORK/$f.img"
  split -b $((side * side)) -a 5 -d "$px" "$WORK/$f.img/i"
  for i in "$WORK/$f.img"/i*; do sha256sum "$i" | cut -d' ' -f1; done
}
sha_nul() { while IFS= read -r s; do printf '%s\0' "$s"; done | sha256sum | cut -d' ' -f1; }

# ---- The fingerprint, recomputed -----------------------------------------
fp=$(grep '"data_fingerprint"' "$RUN/run.json" | sed 's/.*": "\(.*\)".*/\1/')
[ -n "$fp" ] || fail "run.json has no data_fingerprint"
"$TOOLS/h5_summary" small.h5 --rows >small.rows || fail "h5_summary"
n=$(wc -l <small.rows)
names=$(cut -d' ' -f1 small.rows | sha_nul)
patients=$(cut -d' ' -f2 small.rows | sha_nul)
image_digests small.h5 >small.dig
[ "$(wc -l <small.dig)" = "$n" ] || fail "h5dump gave $(wc -l <small.dig) images, h5_summary $n"
pixels=$(xxd -r -p small.dig | sha256sum | cut -d' ' -f1)
for want in "images=$n " "names=$names " "patients=$patients " "pixels=$pixels"; do
  case "$fp" in *"$want"*) ;; *) fail "run.json's fingerprint '$fp' lacks '$want'" ;; esac
done
echo "fingerprint: $n images, names/patients/pixels digests recomputed"

# Same fingerprint on 4 ranks: eval of the run's own file checks it.
mpi 4 "$THORAX_BIN" eval "$RUN" --split test >eval4.log 2>&1 || { cat eval4.log; fail "eval on 4 ranks of the run's own file"; }

# ---- Overlap with the training split --------------------------------------
# split.csv lists the images in row order: `image,patient_id,split`.
tail -n +2 "$RUN/split.csv" >split.rows
[ "$(wc -l <split.rows)" = "$n" ] || fail "split.csv does not list the $n images"
paste -d, split.rows small.dig | awk -F, '$3 == "train" {print $4}' | sort -u >train.dig
awk -F, '$3 == "train" {print $2}' split.rows | sort -u >train.patients

check_overlap() {
  local f=$1 np=$2 stem=${1%.h5}
  "$TOOLS/h5_summary" "$f" --rows | cut -d' ' -f2 | sort -u >"$stem.patients"
  image_digests "$f" >"$stem.dig"
  local want_p want_i
  want_p=$(comm -12 "$stem.patients" train.patients | wc -l)
  want_i=$(grep -cFxf train.dig "$stem.dig" || true)
  mpi "$np" "$THORAX_BIN" eval "$RUN" --data "$f" >"eval_$stem.log" 2>&1 || { cat "eval_$stem.log"; fail "eval --data $f"; }
  local got
  # eval --data's directory: eval/data-<stem>-<8 hex of the path's SHA-256>/.
  local dir
  dir=$(ls -d "$RUN/eval/data-$stem-"*/ | head -1) || fail "eval --data $f wrote no eval/data-$stem-*/"
  got=$(grep '"overlap_with_training"' "$dir/metrics.json") || fail "$stem/metrics.json has no overlap_with_training"
  [ "$got" = "  \"overlap_with_training\": {\"patients\": $want_p, \"images\": $want_i}," ] ||
    fail "eval --data $f on $np ranks: $got, expected $want_p patients and $want_i images"
  if [ "$want_p$want_i" != 00 ]; then
    grep "$want_p patients and $want_i identical images of this file are in the run.s training split" "eval_$stem.log" >/dev/null ||
      { cat "eval_$stem.log"; fail "eval --data $f: no warning of the overlap"; }
  fi
  echo "eval --data $f on $np ranks: $want_p patients, $want_i images shared with the training split"
}
check_overlap big.h5 2
check_overlap big.h5 4
check_overlap other.h5 2
check_overlap mark.h5 4
# The reference must have seen both kinds for the test to mean anything.
[ "$(comm -12 other.patients train.patients | wc -l)" -gt 0 ] || fail "other.h5 shares no patient ID: a weak test"
[ "$(grep -cFxf train.dig big.dig)" -gt 0 ] || fail "big.h5 shares no image: a weak test"
some=$(grep -cFxf train.dig mark.dig || true)
[ "$some" -gt 0 ] && [ "$some" -lt "$(wc -l <train.dig)" ] || fail "mark.h5 shares $some training images: a weak test"
echo "data_pin: ok"
