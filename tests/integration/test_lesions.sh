#!/usr/bin/env bash
# thorax ingest --boxes / --masks / --rle: real lesion locations into /masks,
# checked on a phantom whose masks are known. The phantom's images, doubled
# to 2S x 2S (so that ingesting at --size S gives the same pixels back), go
# out as PNGs with a label CSV, and its masks as PNG masks, as NIH-style
# boxes (the bounding box of each mask, in 2S pixels) and as SIIM run-length
# codes (Pneumothorax). Ingested back:
#   --masks: /images and /masks equal the phantom's, and `thorax cam`'s
#            pointing game (maps.h5 pointing_hit, pointing.csv) is identical;
#   --boxes: /masks are the masks' bounding boxes, and every pointing_hit is
#            that of the phantom map's maximum against the bounding box;
#   --rle:   the Pneumothorax masks equal the phantom's (a round trip through
#            SIIM's encoding, implemented here after SIIM's mask_functions.py).
# Bad lesion files fail naming the file; --skip-bad leaves a bad mask's row out.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import h5py, numpy, PIL" 2>/dev/null || { echo "no h5py/numpy/PIL for $PY"; exit 77; }
cd "$WORK"
"$THORAX_BIN" phantom --out p.h5 --size 64 --patients 120 --prevalence 0.3 >/dev/null || fail "phantom"

$PY - <<'EOF' || fail "exporting the phantom"
import h5py, numpy as np, os
from PIL import Image
f = h5py.File("p.h5", "r")
img, masks = f["images"][:], f["masks"][:]
names = [n.decode() if isinstance(n, bytes) else n for n in f["image_name"][:]]
pids = [n.decode() if isinstance(n, bytes) else n for n in f["patient_id"][:]]
labels = f["labels"][:]
lnames = [n.decode() if isinstance(n, bytes) else n for n in f["labels"].attrs["names"]]
up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)
os.makedirs("png", exist_ok=True); os.makedirs("m", exist_ok=True)
with open("labels.csv", "w") as c, open("boxes.csv", "w") as b, open("rle.csv", "w") as r:
    c.write("image,patient_id," + ",".join(lnames) + "\n")
    b.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    r.write("ImageId, EncodedPixels\n")
    for i, n in enumerate(names):
        Image.fromarray(up(img[i])).save("png/" + n)
        c.write(f"{n},{pids[i]}," + ",".join(str(v) for v in labels[i]) + "\n")
        stem = n[:-4]
        for k, l in enumerate(lnames):
            m = masks[i, k]
            if not m.any(): continue
            Image.fromarray(up(m * 255).astype(np.uint8)).save(f"m/{stem}__{l}.png")
            ys, xs = np.nonzero(m)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            b.write(f"{n},{l},{2 * x0:.6f},{2 * y0:.6f},{2 * (x1 - x0):.6f},{2 * (y1 - y0):.6f},,,\n")
        # SIIM's mask2rle: column-major over the 2S x 2S mask, starts relative.
        m = up(masks[i, lnames.index("Pneumothorax")]).T.reshape(-1)
        runs, last, pos = [], 0, 0
        p = 0
        while p < m.size:
            if m[p]:
                q = p
                while q < m.size and m[q]: q += 1
                runs += [p - last, q - p]; last = q; p = q
            else:
                p += 1
        r.write(f"{n[:-4]}, {' '.join(map(str, runs)) if runs else '-1'}\n")
EOF

for how in masks boxes rle; do
  case $how in masks) opt="--masks m";; boxes) opt="--boxes boxes.csv";; rle) opt="--rle rle.csv";; esac
  "$THORAX_BIN" ingest --csv labels.csv --images png --out $how.h5 --size 64 $opt > ingest_$how.log \
    || { cat ingest_$how.log; fail "ingest $opt"; }
  grep -q "lesions: [1-9][0-9]* images with a lesion in /masks" ingest_$how.log || { cat ingest_$how.log; fail "no lesion count"; }
done

$PY - <<'EOF' || fail "the ingested masks"
import h5py, numpy as np
p = h5py.File("p.h5", "r")
img, masks = p["images"][:], p["masks"][:]
def bbox(m):
    out = np.zeros_like(m)
    ys, xs = np.nonzero(m)
    if len(ys): out[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 1
    return out
boxes = np.array([[bbox(m) for m in row] for row in masks])
rle = np.zeros_like(masks); rle[:, 0] = masks[:, 0]
for how, want in (("masks", masks), ("boxes", boxes), ("rle", rle)):
    f = h5py.File(how + ".h5", "r")
    assert (f["images"][:] == img).all(), how + ": /images differ from the phantom's"
    got = f["masks"][:]
    assert got.shape == want.shape and (got == want).all(), \
        f"{how}: /masks differ from the expected in {(got != want).sum()} pixels"
print("ingested masks: all equal")
EOF

# The pointing game: one run trained on the phantom, its maps scored against
# each file's masks (d.h5 is the run's data file, pointed at each in turn).
ln -sf p.h5 d.h5
mpi 2 "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/phantom_cam.yaml" --set data.path="$WORK/d.h5" \
  --set runtime.out_dir="$WORK/runs" --set train.epochs=3 > train.log || { cat train.log; fail "training"; }
run=runs/phantom_cam
for f in p masks boxes; do
  ln -sf $f.h5 d.h5
  mpi 2 "$THORAX_BIN" cam "$run" --top-k 8 --dilate 0 > cam_$f.log || { cat cam_$f.log; fail "thorax cam on $f.h5"; }
  cp "$run/cam/best/gradcam/maps.h5" maps_$f.h5
  cp "$run/cam/best/gradcam/pointing.csv" pointing_$f.csv
done
cat pointing_p.csv
cmp pointing_p.csv pointing_masks.csv || fail "pointing.csv with --masks differs from the phantom's own masks"

$PY - <<'EOF' || fail "the pointing game on boxes"
import h5py, numpy as np
p = h5py.File("p.h5", "r")
masks = p["masks"][:]
lnames = [n.decode() if isinstance(n, bytes) else n for n in p["labels"].attrs["names"]]
a, m, b = (h5py.File(f"maps_{x}.h5", "r") for x in ("p", "masks", "boxes"))
assert (a["pointing_hit"][:] == m["pointing_hit"][:]).all(), "--masks: pointing_hit differs"
assert (a["maps/gradcam"][:] == b["maps/gradcam"][:]).all(), "the maps differ between the files"
label = [l.decode() if isinstance(l, bytes) else l for l in a["label"][:]]
maps, index, got = a["maps/gradcam"][:], a["index"][:], b["pointing_hit"][:]
scored = 0
for j in range(len(maps)):
    mk = masks[index[j], lnames.index(label[j])]
    want = -1
    if mk.any():
        ys, xs = np.nonzero(mk)
        r, c = divmod(int(np.argmax(maps[j])), maps.shape[2])
        want = int(ys.min() <= r <= ys.max() and xs.min() <= c <= xs.max())
        scored += 1
    assert got[j] == want, f"map {j} ({label[j]}): pointing_hit {got[j]} against the box, expected {want}"
assert scored > 10, f"only {scored} maps scored"
print(f"boxes: {scored} maps scored as expected")
EOF

# Bad lesion inputs: the file and line named, nothing written.
printf 'Image Index,Finding Label,Bbox [x,y,w,h],,,\nP00000_000.png,Nodule,1,2,x,4,,,\n' > bad_boxes.csv
expect_fail 1 "bad_boxes.csv:2: image P00000_000.png: box w 'x'" -- \
  "$THORAX_BIN" ingest --csv labels.csv --images png --out bad.h5 --boxes bad_boxes.csv
printf 'ImageId,EncodedPixels\nP00000_000,5 3 7\n' > bad_rle.csv
expect_fail 1 "bad_rle.csv:2: image P00000_000: EncodedPixels" -- \
  "$THORAX_BIN" ingest --csv labels.csv --images png --out bad.h5 --rle bad_rle.csv
printf 'ImageId,EncodedPixels\nP00000_000,16380 100\n' > long_rle.csv
expect_fail 1 "long_rle.csv:2: image P00000_000: a run ends past pixel 16384" -- \
  "$THORAX_BIN" ingest --csv labels.csv --images png --out bad.h5 --rle long_rle.csv
expect_fail 1 "not among the labels kept" -- \
  "$THORAX_BIN" ingest --csv labels.csv --images png --out bad.h5 --rle rle.csv --labels Nodule
all_masks=(m/*.png)
first=${all_masks[0]#m/}
head -c 100 "m/$first" > "m/${first}.part" && mv "m/${first}.part" "m/$first"
expect_fail 1 "m/$first" -- "$THORAX_BIN" ingest --csv labels.csv --images png --out bad.h5 --masks m
[ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "a failed ingest left bad.h5"
"$THORAX_BIN" ingest --csv labels.csv --images png --out skip.h5 --masks m --skip-bad > skip.log || fail "--skip-bad"
grep -q "skipped 1 of" skip.log || { cat skip.log; fail "--skip-bad did not skip the damaged mask's row"; }
grep -q "${first%%__*}" skip.h5.skipped.csv || fail "the skipped report does not name the row"
echo "lesions: 1 passed, 0 failed"
