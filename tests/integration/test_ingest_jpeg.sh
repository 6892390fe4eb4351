#!/usr/bin/env bash
# JPEG images in `thorax ingest`, made at test time from kermany224 PNGs with
# libjpeg-turbo's cjpeg (quality 95: baseline, progressive, and colour from a
# PPM of the gray image) and with PIL (a tinted colour image, a CMYK one):
#   - every JPEG's decoded pixels are within JPEG's loss of the PNG they came
#     from: mean absolute difference < 0.5 grey level, largest < 16
#     (measured at quality 95: 0.08 to 0.10, largest 4; these PNGs were
#     JPEGs once, so they recompress closely);
#   - a colour JPEG with unequal channels becomes exactly PIL's RGB decode
#     reduced by the BT.601 integer rule of PNG colour (so the luminance code
#     is the PNG path's);
#   - the format comes from the bytes: a JPEG named .png decodes;
#   - CMYK, 12-bit (a frame header saying 12 bits) and truncated JPEGs are
#     errors naming the file and the problem, and --skip-bad lists them.
source "$(dirname "$0")/lib.sh"
DATA="$THORAX_SOURCE_DIR/../shared/data/kermany224"
PY=/usr/bin/python3
[ -d "$DATA" ] || { echo "ingest_jpeg skipped: $DATA not found"; exit 77; }
command -v cjpeg >/dev/null || { echo "ingest_jpeg skipped: no cjpeg (libjpeg-turbo-progs)"; exit 77; }
"$PY" -c 'import PIL, h5py, numpy' 2>/dev/null || { echo "ingest_jpeg skipped: $PY lacks PIL, h5py or numpy"; exit 77; }

SRC=(IM-0115-0001 NORMAL2-IM-0383-0001 person1000_bacteria_2931 person1000_virus_1681)
mkdir -p "$WORK/img"
# PGM and PPM of each source for cjpeg; the tinted colour and CMYK JPEGs.
"$PY" - "$DATA/images" "$WORK/img" "${SRC[@]}" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
src, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for n in names:
    im = Image.open(f"{src}/{n}.png")
    im.save(f"{out}/{n}.pgm")
    im.convert("RGB").save(f"{out}/{n}.ppm")
g = np.asarray(Image.open(f"{src}/{names[0]}.png")).astype(np.float64)
tint = np.stack([g, g * 0.8, 255 - g], axis=-1).round().astype(np.uint8)
Image.fromarray(tint, "RGB").save(f"{out}/tinted.jpg", quality=90)
Image.open(f"{src}/{names[0]}.png").convert("CMYK").save(f"{out}/cmyk.jpg", quality=95)
PYEOF
{
  echo "image,patient_id,source,kind"
  for n in "${SRC[@]}"; do
    cjpeg -quality 95 "$WORK/img/$n.pgm" >"$WORK/img/$n.base.jpg"
    cjpeg -quality 95 -progressive "$WORK/img/$n.pgm" >"$WORK/img/$n.prog.jpg"
    cjpeg -quality 95 "$WORK/img/$n.ppm" >"$WORK/img/$n.colour.jpg"
    for k in base prog colour; do echo "$n.$k.jpg,$n,$n,$k"; done
  done
  cp "$WORK/img/${SRC[1]}.base.jpg" "$WORK/img/named.png"
  echo "named.png,named,${SRC[1]},renamed"
  echo "tinted.jpg,tinted,${SRC[0]},tinted"
} >"$WORK/good.csv"
sed 's/$/,0/; 1s/,0$/,Pneumonia/' "$WORK/good.csv" >"$WORK/labels.csv"
"$THORAX_BIN" ingest --csv "$WORK/labels.csv" --images "$WORK/img" --out "$WORK/jpeg.h5" --labels Pneumonia >"$WORK/ingest.out" \
  2>"$WORK/ingest.err" || { cat "$WORK/ingest.err" >&2; fail "ingest of the JPEGs"; }
grep -q "wrote 14 images" "$WORK/ingest.out" || fail "ingest wrote $(head -1 "$WORK/ingest.out")"

"$PY" - "$WORK/jpeg.h5" "$DATA/images" "$WORK/img/tinted.jpg" <<'PYEOF' || fail "decoded pixels"
import sys
import h5py
import numpy as np
from PIL import Image
f = h5py.File(sys.argv[1], "r")
meta = {k: [v.decode() for v in f["meta"][k][:]] for k in ("source", "kind")}
bad = 0
for i, name in enumerate(f["image_name"][:]):
    px = f["images"][i].astype(np.int64)
    src, kind = meta["source"][i], meta["kind"][i]
    ref = np.asarray(Image.open(f"{sys.argv[2]}/{src}.png")).astype(np.int64)
    if kind == "tinted":
        rgb = np.asarray(Image.open(sys.argv[3]).convert("RGB")).astype(np.int64)
        y = (299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000
        ok = np.array_equal(px, y)
        print(f"{name.decode()}: {'equal to' if ok else 'differs from'} PIL's RGB as BT.601 luminance")
    else:
        d = np.abs(px - ref)
        ok = d.mean() < 0.5 and d.max() < 16
        print(f"{name.decode()} ({kind}): mean |diff| from the PNG {d.mean():.3f}, max {d.max()}")
    bad += not ok
sys.exit(bad > 0)
PYEOF

# Bad JPEGs: each alone is an error naming it; together with --skip-bad, listed.
head -c 3000 "$WORK/img/${SRC[0]}.base.jpg" >"$WORK/img/truncated.jpg"
"$PY" - "$WORK/img/${SRC[0]}.base.jpg" "$WORK/img/twelve.jpg" <<'PYEOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = 2
while b[i + 1] not in (0xC0, 0xC1, 0xC2):   # to the frame header
    i += 2 + (b[i + 2] << 8 | b[i + 3])
b[i + 4] = 12                               # its sample precision
open(sys.argv[2], "wb").write(b)
PYEOF
n=2
for c in "cmyk.jpg|CMYK JPEG is not supported" "twelve.jpg|12-bit JPEG is not supported" \
         "truncated.jpg|damaged JPEG: Premature end of JPEG file"; do
  f=${c%%|*} msg=${c#*|}
  printf 'image,patient_id,Pneumonia\n%s,p,0\n' "$f" >"$WORK/bad.csv"
  expect_fail 1 "bad.csv:2" "$WORK/img/$f: $msg" -- "$THORAX_BIN" ingest --csv "$WORK/bad.csv" --images "$WORK/img" \
    --out "$WORK/bad.h5"
  [ ! -e "$WORK/bad.h5" ] || fail "a failed ingest left $WORK/bad.h5"
  echo "$f: refused: $(cat "$WORK/err.txt")"
done
printf 'image,patient_id,Pneumonia\ncmyk.jpg,a,0\n%s.base.jpg,b,1\ntwelve.jpg,c,0\ntruncated.jpg,d,0\n' "${SRC[0]}" \
  >"$WORK/mixed.csv"
"$THORAX_BIN" ingest --csv "$WORK/mixed.csv" --images "$WORK/img" --out "$WORK/mixed.h5" --skip-bad \
  >"$WORK/mixed.out" 2>"$WORK/mixed.err" || { cat "$WORK/mixed.err" >&2; fail "ingest --skip-bad"; }
grep -q "skipped 3 of 4 rows" "$WORK/mixed.out" || fail "skip-bad: $(cat "$WORK/mixed.out")"
for w in "2,cmyk.jpg,.*CMYK JPEG" "4,twelve.jpg,.*12-bit JPEG" "5,truncated.jpg,.*damaged JPEG"; do
  grep -q "^$w" "$WORK/mixed.h5.skipped.csv" || { cat "$WORK/mixed.h5.skipped.csv" >&2; fail "skipped report lacks $w"; }
done
echo "ingest_jpeg: all checks passed"
