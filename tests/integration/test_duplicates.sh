#!/usr/bin/env bash
# The same picture in two splits (data.on_duplicate, data.duplicate_bits):
# on a crafted set of 40 distinct images, where we know which are copies,
#   - an exact copy (another name, another patient) is found with identical
#     pixels only (duplicate_bits -1), a slightly noised copy and a brighter
#     copy are not;
#   - with duplicate_bits 4 the noised and brighter copies join their
#     original's group, and no two distinct images are grouped;
#   - drop keeps each group in its earliest split: split.csv says "none" for
#     every later copy, duplicates.csv lists each group's images with their
#     split before the policy and whether they were kept, and the model card
#     says how many were left out;
#   - duplicates.csv's hashes are those of a reference computed here from
#     the pixels written, and the copies' are within 4 bits of the original's.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
command -v python3 >/dev/null || { echo "skip: python3 is needed to write the crafted PNGs"; exit 77; }

# 40 images of random Gaussian blobs (64x64, each its own seed): distinct
# pictures. orig_3 is copied exactly (copy_exact), with noise of +-6 grey
# levels (copy_noise), and 12 grey levels brighter (copy_bright); each copy
# is another patient, and the split column puts it in a later split.
mkdir imgs
python3 - <<'PY'
import math, random, struct, zlib

def png(path, px, w, h):
    raw = b"".join(b"\0" + bytes(px[y * w:(y + 1) * w]) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

W = H = 64
def blobs(seed):
    r = random.Random(seed)
    b = [(r.uniform(0, W), r.uniform(0, H), r.uniform(4, 16), r.uniform(-120, 120)) for _ in range(8)]
    px = []
    for y in range(H):
        for x in range(W):
            v = 128 + sum(a * math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) for cx, cy, s, a in b)
            px.append(max(0, min(255, int(round(v)))))
    return px

rows = ["image,patient_id,Finding,split"]
names = ["train", "val", "test"]
for i in range(40):
    png(f"imgs/orig_{i}.png", blobs(1000 + i), W, H)
    rows.append(f"orig_{i}.png,P{i},{i % 2},{names[0 if i < 28 else 1 if i < 34 else 2]}")
base = blobs(1003)
noise = random.Random(7)
noisy = [max(0, min(255, v + noise.randint(-6, 6))) for v in base]
png("imgs/copy_exact.png", base, W, H)
png("imgs/copy_noise.png", noisy, W, H)
png("imgs/copy_bright.png", [min(255, v + 12) for v in base], W, H)
rows += ["copy_exact.png,Q1,1,val", "copy_noise.png,Q2,1,test", "copy_bright.png,Q3,1,val"]
open("labels.csv", "w").write("\n".join(rows) + "\n")

# The reference hash, computed here from the pixels written: 2x2 means
# (the area average of 64 -> 32, rounded half up), the DCT-II basis of
# frequencies 1..8 on each axis, bit v*8+u set where coefficient (u, v) is
# above the median of the 64.
def phash(px):
    small = [[math.floor((px[2 * y * W + 2 * x] + px[2 * y * W + 2 * x + 1] + px[(2 * y + 1) * W + 2 * x]
                          + px[(2 * y + 1) * W + 2 * x + 1]) / 4 + 0.5) for x in range(32)] for y in range(32)]
    cosv = [[math.cos((2 * i + 1) * (f + 1) * math.pi / 64) for i in range(32)] for f in range(8)]
    c = [sum(cosv[v][y] * sum(cosv[u][x] * small[y][x] for x in range(32)) for y in range(32))
         for v in range(8) for u in range(8)]
    m = sorted(c)
    med = (m[31] + m[32]) / 2
    return sum(1 << i for i in range(64) if c[i] > med)

with open("expected_phash.txt", "w") as f:
    f.write("orig_3.png %016x\n" % phash(base))
    f.write("copy_noise.png %016x\n" % phash(noisy))
PY
"$THORAX_BIN" ingest --csv labels.csv --images imgs --out d.h5 >ingest.log 2>&1 || { cat ingest.log; fail "ingest"; }
cat > d.yaml <<YAML
name: d
data: {path: $WORK/d.h5, split: predefined}
model:
  input: [1, 64, 64]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 1, batch_per_rank: 8}
runtime: {out_dir: $WORK/runs}
YAML

# Identical pixels only: orig_3 and copy_exact, nothing else; refused.
got=0
"$THORAX_BIN" split d.yaml >exact.txt 2>exact.err || got=$?
[ "$got" = 1 ] || { cat exact.txt exact.err; fail "split with an exact copy across splits exited $got, not 1"; }
grep "duplicate check: 1 groups (2 images) in more than one split: 1 identical, 0 near" exact.txt >/dev/null ||
  { cat exact.txt; fail "identical pixels only: expected the one exact copy"; }
grep -F "orig_3.png (train) copy_exact.png (val)" exact.txt >/dev/null || { cat exact.txt; fail "the exact group"; }
grep -F "orig_3.png (train) = copy_exact.png (val)" exact.err >/dev/null || { cat exact.err; fail "the refusal names the group"; }

# Near duplicates: one group of the original and its three copies, no other.
"$THORAX_BIN" split d.yaml --set data.duplicate_bits=4 --set data.on_duplicate=keep >near.txt 2>&1 ||
  { cat near.txt; fail "split with duplicate_bits 4, keep"; }
grep "duplicate check: 1 groups (4 images) in more than one split: 0 identical, 1 near (<= 4 bits apart); 0 groups within a split" \
  near.txt >/dev/null || { cat near.txt; fail "near duplicates: expected exactly the original and its 3 copies"; }
grep -F "orig_3.png (train) copy_exact.png (val) copy_noise.png (test) copy_bright.png (val)" near.txt >/dev/null ||
  { cat near.txt; fail "the near group's members"; }

# drop, in a run: the copies leave val and test, the original stays in train.
mpi 2 "$THORAX_BIN" train d.yaml --set data.duplicate_bits=4 --set data.on_duplicate=drop >train.log 2>&1 ||
  { cat train.log; fail "training with on_duplicate: drop"; }
grep "data.on_duplicate: drop: 1 groups of the same picture (4 images) across splits, 3 copies left out" train.log \
  >/dev/null || { cat train.log; fail "the log of the drop"; }
for c in copy_exact copy_noise copy_bright; do
  grep "^$c.png,Q[0-9],none\$" runs/d/split.csv >/dev/null || fail "$c is still in a split after drop"
done
grep "^orig_3.png,P3,train\$" runs/d/split.csv >/dev/null || fail "the original left train"
grep -F "Duplicate check: 1 groups of the same picture (4 images) across splits; 3 copies left out" \
  runs/d/MODEL_CARD.md >/dev/null || fail "MODEL_CARD.md's duplicate check"
python3 - runs/d/duplicates.csv <<'PY' || fail "duplicates.csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["image"] for r in rows] == ["orig_3.png", "copy_exact.png", "copy_noise.png", "copy_bright.png"], rows
assert all(r["group"] == "1" and r["kind"] == "near" and r["across_splits"] == "1" for r in rows), rows
assert [r["split"] for r in rows] == ["train", "val", "test", "val"], rows
assert [r["kept"] for r in rows] == ["1", "0", "0", "0"], rows
h = [int(r["phash"], 16) for r in rows]
assert h[0] == h[1], "an exact copy has the same hash"
assert all(bin(h[0] ^ x).count("1") <= 4 for x in h), [bin(h[0] ^ x).count("1") for x in h]
# Thorax's hashes are the reference's.
want = dict(line.split() for line in open("expected_phash.txt"))
got = {r["image"]: r["phash"] for r in rows}
for name, hx in want.items():
    assert got[name] == hx, (name, got[name], hx)
PY
echo "duplicates: 1 passed, 0 failed"
