#!/usr/bin/env bash
# thorax cam: class activation maps of a trained phantom run. The network of
# configs/phantom_cam.yaml must look at the lesion: for the 10 most confident
# true positives of Pneumothorax and of Nodule, the Grad-CAM maximum lies in
# the lesion mask grown by 3 px for at least 80% of the images (the pointing
# game, from pointing.csv). Also: maps.h5 has the documented shapes and one
# PNG per map; the PNGs are >= 512 px on the long side of each of their two
# panels; their names' TP/FP/FN/TN agree with predictions.csv, the truth and
# val's thresholds.json; progress goes to stderr; the maps are bit-identical
# on 1 and 2 ranks; missing predictions are made first; named images work; a
# second method (CAM, one label) writes its own maps file and leaves the
# Grad-CAM one as it was; an unknown name is refused.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import h5py, numpy" 2>/dev/null || { echo "skip: /usr/bin/python3 lacks h5py or numpy"; exit 77; }
cd "$WORK"
"$THORAX_BIN" phantom --out p.h5 --size 64 >/dev/null
mpi 2 "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/phantom_cam.yaml" --set data.path="$WORK/p.h5" \
  --set runtime.out_dir="$WORK/runs" > train.log || { cat train.log; fail "training"; }
run=runs/phantom_cam
out=$run/cam/best/gradcam

# Without the split's predictions, thorax cam evaluates first (val's
# operating points stay: the outcomes are decided against them).
[ -s "$run/eval/val/thresholds.json" ] || fail "training did not choose val's operating points"
rm -rf "$run/eval/test"
mpi 2 "$THORAX_BIN" cam "$run" --top-k 10 > cam2.log 2> cam2.err || { cat cam2.log cam2.err; fail "thorax cam on 2 ranks"; }
cat cam2.log cam2.err
grep -q "evaluated the test split first" cam2.log || fail "cam did not report making the missing predictions"
grep -q "outcomes (file names, /outcome) against val's operating point" cam2.log || fail "cam did not say which threshold"
[ -s "$run/eval/test/predictions.csv" ] || fail "no eval/test/predictions.csv after cam"
grep "rank0 cam (rank 0's share): [0-9]*/[0-9]* images (100%).*ETA" cam2.err >/dev/null || fail "no progress with an ETA on stderr"

# maps.h5: M rows of 64x64 maps and 16x16 feature maps (relu4 after two poolings).
h5ls -r "$out/maps.h5" > ls.txt
m=$(sed -n 's|^/index  *Dataset {\([0-9]*\)}$|\1|p' ls.txt)
[ -n "$m" ] && [ "$m" -ge 80 ] || { cat ls.txt; fail "maps.h5 has ${m:-no} rows; expected TP and FP of 10 each for 4 labels"; }
grep -q "^/maps/gradcam  *Dataset {$m, 64, 64}$" ls.txt || { cat ls.txt; fail "/maps/gradcam is not [$m,64,64]"; }
grep -q "^/maps_feature/gradcam  *Dataset {$m, 16, 16}$" ls.txt || { cat ls.txt; fail "/maps_feature/gradcam is not [$m,16,16]"; }
for d in image_name label prob kind truth split outcome threshold p_operating pointing_hit mask_energy lesion_iou; do
  grep -q "^/$d  *Dataset {$m}$" ls.txt || { cat ls.txt; fail "maps.h5 lacks /$d [$m]"; }
done
n_png=$(ls "$out" | grep -c '__gradcam_\(TP\|FP\|FN\|TN\)\.png$')
[ "$n_png" -eq "$m" ] || fail "$n_png PNG overlays for $m maps"
ls "$out"/P*_*__Nodule__gradcam_*.png > /dev/null || fail "no overlay named <image>__Nodule__gradcam_<outcome>.png"

# Every PNG: two panels side by side, each >= 512 px on its long side (the
# 64x64 images are upsampled 8x), so the image is >= 1024 wide, >= 512 tall.
$PY - "$out" <<'PY' || fail "an overlay PNG is smaller than two 512 px panels"
import os, struct, sys
d = sys.argv[1]
sizes = []
for n in sorted(os.listdir(d)):
    if n.endswith(".png"):
        with open(os.path.join(d, n), "rb") as f:
            head = f.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n", n
        w, h = struct.unpack(">II", head[16:24])
        assert w >= 2 * 512 and h >= 512, (n, w, h)
        sizes.append((w, h))
print("overlays: %d PNGs, %dx%d to %dx%d" % (len(sizes), *min(sizes), *max(sizes)))
PY

# The outcome in each name and in /outcome: the probability of
# predictions.csv against val's threshold for the label, and the truth.
$PY - "$out/maps.h5" "$run/eval/test/predictions.csv" "$run/eval/val/thresholds.json" "$out" <<'PY' \
  || fail "overlay outcomes disagree with predictions.csv and thresholds.json"
import csv, json, os, sys
import h5py
m = h5py.File(sys.argv[1], "r")
pred = {r["image"]: r for r in csv.DictReader(open(sys.argv[2]))}
thr = {k: v["threshold"] for k, v in json.load(open(sys.argv[3]))["labels"].items()}
s = lambda v: v.decode() if isinstance(v, bytes) else v
names, labels = [s(v) for v in m["image_name"][()]], [s(v) for v in m["label"][()]]
outcome = [s(v) for v in m["outcome"][()]]
seen = set()
for i, (img, lab) in enumerate(zip(names, labels)):
    r = pred[img]
    p, y, t = float(r["p_" + lab]), int(r["y_" + lab]), thr[lab]
    want = ("TP" if p >= t else "FN") if y == 1 else ("FP" if p >= t else "TN")
    assert abs(m["threshold"][i] - t) < 1e-6, (img, lab, m["threshold"][i], t)
    assert abs(m["p_operating"][i] - p) < 1e-5, (img, lab, m["p_operating"][i], p)
    assert outcome[i] == want, (img, lab, p, y, t, outcome[i])
    png = "%s__%s__gradcam_%s.png" % (img[:-4], lab, want)
    assert os.path.exists(os.path.join(sys.argv[4], png)), png
    seen.add(want)
assert "TP" in seen and len(seen) >= 2, seen
print("outcomes: %d maps agree (%s)" % (len(names), ", ".join(sorted(seen))))
PY

# The pointing game over the 10 top true positives.
cat "$out/pointing.csv"
head -1 "$out/pointing.csv" | grep -qx "label,n,hits,rate,mean_energy,mean_iou" || fail "pointing.csv header"
for label in Pneumothorax Nodule; do
  awk -F, -v l=$label '$1 == l { ok = $2 == 10 && $4 >= 0.8 } END { exit !ok }' \
    "$out/pointing.csv" || fail "pointing game of $label TPs below 0.8 (or not 10 maps)"
done

# /lesion_iou recomputed from the maps and the file's masks: the map's
# brightest pixels, as many as the lesion has (ties at the threshold all
# count), against the undilated mask.
$PY - "$out/maps.h5" p.h5 <<'PY' || fail "maps.h5's lesion_iou disagrees with a recomputation"
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

# The same maps on 1 rank, bit for bit.
dump() { for d in /maps/gradcam /maps_feature/gradcam /index /prob; do
  h5dump -d $d -b LE -o "$2${d//\//_}.bin" "$1" > /dev/null || fail "h5dump $d of $1"; done; }
dump "$out/maps.h5" np2
cp "$out/pointing.csv" pointing2.csv
mpi 1 "$THORAX_BIN" cam "$run" --top-k 10 > cam1.log 2> cam1.err || { cat cam1.log cam1.err; fail "thorax cam on 1 rank"; }
dump "$out/maps.h5" np1
for d in _maps_gradcam _maps_feature_gradcam _index _prob; do
  [ -s np1$d.bin ] && cmp np1$d.bin np2$d.bin || fail "$d differs between 1 and 2 ranks"
done
cmp pointing2.csv "$out/pointing.csv" || fail "pointing.csv differs between 1 and 2 ranks"

# Named images, CAM, one label: its own maps file under cam/best/cam/, and
# the Grad-CAM maps of the runs above kept as they were.
names=$(sed -n '2,3p' "$run/eval/test/predictions.csv" | cut -d, -f1 | paste -sd,)
mpi 2 "$THORAX_BIN" cam "$run" --images "$names" --method cam --label Nodule > named.log \
  || { cat named.log; fail "thorax cam --images"; }
h5ls "$run/cam/best/cam/maps_Nodule.h5/maps" | grep -q "^cam  *Dataset {2, 64, 64}$" \
  || fail "--images of 2 names: not 2 CAM maps in cam/best/cam/maps_Nodule.h5"
for n in ${names//,/ }; do
  ls "$run/cam/best/cam/${n%.png}__Nodule__cam_"*.png > /dev/null || fail "no overlay of $n"
done
dump "$out/maps.h5" np3
for d in _maps_gradcam _index; do cmp np1$d.bin np3$d.bin || fail "the CAM run changed the Grad-CAM maps.h5 ($d)"; done
# thorax predict --cam draws the same overlays (no truth: no outcome in the name).
"$THORAX_BIN" phantom --out q.h5 --patients 1 --size 64 --seed 3 --preview prev >/dev/null
img=$(ls prev/*.png | grep -v _masks | head -n 1)
"$THORAX_BIN" predict "$run" "$img" --cam pcam > predict.log || { cat predict.log; fail "thorax predict --cam"; }
$PY - pcam <<'PY' || fail "predict --cam overlays"
import os, struct, sys
names = sorted(os.listdir(sys.argv[1]))
assert len(names) == 4 and all(n.endswith("__gradcam.png") for n in names), names
for n in names:
    w, h = struct.unpack(">II", open(os.path.join(sys.argv[1], n), "rb").read(24)[16:24])
    assert w >= 2 * 512 and h >= 512, (n, w, h)
PY
# An unknown name is an error naming it.
expect_fail 1 "no image named 'nope.png'" -- mpi 2 "$THORAX_BIN" cam "$run" --images "${names%%,*},nope.png"
expect_fail 2 "--top-k" -- "$THORAX_BIN" cam "$run" --top-k 0
expect_fail 2 "--method" -- "$THORAX_BIN" cam "$run" --method lime
echo "cam: 1 passed, 0 failed"
