#!/usr/bin/env bash
# thorax cam: class activation maps of a trained phantom run. The network of
# configs/phantom_cam.yaml must look at the lesion: for the 10 most confident
# true positives of Pneumothorax and of Nodule, the Grad-CAM maximum lies in
# the lesion mask grown by 3 px for at least 80% of the images (the pointing
# game, from cam/pointing.csv). Also: maps.h5 has the documented shapes and
# one PNG per map; the maps are bit-identical on 1 and 2 ranks; missing
# predictions are made first; named images work; an unknown name is refused.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$THORAX_BIN" phantom --out p.h5 --size 64 >/dev/null
mpi 2 "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/phantom_cam.yaml" --set data.path="$WORK/p.h5" \
  --set runtime.out_dir="$WORK/runs" > train.log || { cat train.log; fail "training"; }
run=runs/phantom_cam

# Without the split's predictions, thorax cam evaluates first.
rm -rf "$run/eval"
mpi 2 "$THORAX_BIN" cam "$run" --top-k 10 > cam2.log || { cat cam2.log; fail "thorax cam on 2 ranks"; }
cat cam2.log
grep -q "evaluated the test split first" cam2.log || fail "cam did not report making the missing predictions"
[ -s "$run/eval/test/predictions.csv" ] || fail "no eval/test/predictions.csv after cam"

# maps.h5: M rows of 64x64 maps and 16x16 feature maps (relu4 after two poolings).
h5ls -r "$run/cam/maps.h5" > ls.txt
m=$(sed -n 's|^/index  *Dataset {\([0-9]*\)}$|\1|p' ls.txt)
[ -n "$m" ] && [ "$m" -ge 80 ] || { cat ls.txt; fail "maps.h5 has ${m:-no} rows; expected TP and FP of 10 each for 4 labels"; }
grep -q "^/maps/gradcam  *Dataset {$m, 64, 64}$" ls.txt || { cat ls.txt; fail "/maps/gradcam is not [$m,64,64]"; }
grep -q "^/maps_feature/gradcam  *Dataset {$m, 16, 16}$" ls.txt || { cat ls.txt; fail "/maps_feature/gradcam is not [$m,16,16]"; }
for d in image_name label prob kind truth split pointing_hit mask_energy lesion_iou; do
  grep -q "^/$d  *Dataset {$m}$" ls.txt || { cat ls.txt; fail "maps.h5 lacks /$d [$m]"; }
done
n_png=$(ls "$run"/cam/*__gradcam.png | wc -l)
[ "$n_png" -eq "$m" ] || fail "$n_png PNG overlays for $m maps"
ls "$run"/cam/P*_*__Nodule__gradcam.png > /dev/null || fail "no overlay named <image>__Nodule__gradcam.png"

# The pointing game over the 10 top true positives.
cat "$run/cam/pointing.csv"
head -1 "$run/cam/pointing.csv" | grep -qx "label,n,hits,rate,mean_energy,mean_iou" || fail "pointing.csv header"
for label in Pneumothorax Nodule; do
  awk -F, -v l=$label '$1 == l { ok = $2 == 10 && $4 >= 0.8 } END { exit !ok }' \
    "$run/cam/pointing.csv" || fail "pointing game of $label TPs below 0.8 (or not 10 maps)"
done

# /lesion_iou recomputed from the maps and the file's masks: the map's
# brightest pixels, as many as the lesion has (ties at the threshold all
# count), against the undilated mask.
if /usr/bin/python3 -c "import h5py, numpy" 2>/dev/null; then
  /usr/bin/python3 - "$run/cam/maps.h5" p.h5 <<'PY' || fail "maps.h5's lesion_iou disagrees with a recomputation"
import sys
import h5py, numpy as np
m, d = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = [n.decode() if isinstance(n, bytes) else n for n in d["labels"].attrs["names"]]
maps, idx, iou, hit = m["maps/gradcam"][()], m["index"][()], m["lesion_iou"][()], m["pointing_hit"][()]
labels = [l.decode() if isinstance(l, bytes) else l for l in m["label"][()]]
checked = 0
for i in range(len(idx)):
    if hit[i] < 0:
        assert np.isnan(iou[i]), (i, iou[i])
        continue
    mask = d["masks"][idx[i], names.index(labels[i])] != 0
    a = mask.sum()
    t = np.sort(maps[i].ravel())[::-1][a - 1]
    sel = maps[i] >= t
    want = (sel & mask).sum() / (sel | mask).sum()
    assert abs(iou[i] - want) < 1e-6, (i, iou[i], want)
    checked += 1
assert checked > 0
print("lesion_iou: %d maps as recomputed, mean %.3f" % (checked, np.nanmean(iou[hit >= 0])))
PY
fi

# The same maps on 1 rank, bit for bit.
dump() { for d in /maps/gradcam /maps_feature/gradcam /index /prob; do
  h5dump -d $d -b LE -o "$2${d//\//_}.bin" "$1" > /dev/null || fail "h5dump $d of $1"; done; }
dump "$run/cam/maps.h5" np2
cp "$run/cam/pointing.csv" pointing2.csv
mpi 1 "$THORAX_BIN" cam "$run" --top-k 10 > cam1.log || { cat cam1.log; fail "thorax cam on 1 rank"; }
dump "$run/cam/maps.h5" np1
for d in _maps_gradcam _maps_feature_gradcam _index _prob; do
  [ -s np1$d.bin ] && cmp np1$d.bin np2$d.bin || fail "$d differs between 1 and 2 ranks"
done
cmp pointing2.csv "$run/cam/pointing.csv" || fail "pointing.csv differs between 1 and 2 ranks"

# Named images, CAM, one label; an unknown name is an error naming it.
names=$(sed -n '2,3p' "$run/eval/test/predictions.csv" | cut -d, -f1 | paste -sd,)
mpi 2 "$THORAX_BIN" cam "$run" --images "$names" --method cam --label Nodule > named.log \
  || { cat named.log; fail "thorax cam --images"; }
h5ls "$run/cam/maps.h5/maps" | grep -q "^cam  *Dataset {2, 64, 64}$" || fail "--images of 2 names: not 2 CAM maps"
for n in ${names//,/ }; do [ -s "$run/cam/${n%.png}__Nodule__cam.png" ] || fail "no overlay of $n"; done
expect_fail 1 "no image named 'nope.png'" -- mpi 2 "$THORAX_BIN" cam "$run" --images "${names%%,*},nope.png"
expect_fail 2 "--top-k" -- "$THORAX_BIN" cam "$run" --top-k 0
expect_fail 2 "--method" -- "$THORAX_BIN" cam "$run" --method lime
echo "cam: 1 passed, 0 failed"
