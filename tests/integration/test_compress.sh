#!/usr/bin/env bash
# thorax ingest --compress on real X-rays (nih14_kcr1000, ../shared/data):
#  - /images is chunked one image per chunk with the shuffle and deflate
#    (level 4) filters, as h5dump reports them, and holds the same pixels as
#    the plain file; ingest prints a compression ratio above 1;
#  - the dataset reader reads it in parallel: read_bench on 1, 2 and 4 ranks
#    sums the same pixels as on the plain file;
#  - a run trained and evaluated on the compressed file (2 ranks) writes
#    predictions.csv and metrics.json byte-identical to the plain file's, and
#    evaluating it on 4 ranks changes nothing.
source "$(dirname "$0")/lib.sh"
DATA="$THORAX_SOURCE_DIR/../shared/data/nih14_kcr1000"
[ -d "$DATA" ] || { echo "compress skipped: $DATA not found"; exit 77; }
cd "$WORK"
"$THORAX_BIN" ingest --csv "$DATA/labels.csv" --images "$DATA/images" --out plain.h5 >plain.log \
  || { cat plain.log; fail "ingest"; }
"$THORAX_BIN" ingest --csv "$DATA/labels.csv" --images "$DATA/images" --out packed.h5 --compress >packed.log \
  || { cat packed.log; fail "ingest --compress"; }
cat packed.log
ratio=$(sed -n 's/.*compressed \/images: ratio \([0-9.]*\).*/\1/p' packed.log)
awk -v r="${ratio:-0}" 'BEGIN { exit !(r > 1) }' || fail "compression ratio '${ratio}' is not above 1"
grep -q "compressed" plain.log && fail "the plain ingest reports compression"

h5dump -p -H -d /images packed.h5 > packed.txt || fail "h5dump of packed.h5"
for w in "CHUNKED ( 1, 64, 64 )" "SHUFFLE" "COMPRESSION DEFLATE { LEVEL 4 }"; do
  grep -qF "$w" packed.txt || { cat packed.txt; fail "packed.h5 /images: no '$w'"; }
done
h5dump -p -H -d /images plain.h5 > plain.txt || fail "h5dump of plain.h5"
grep -q "DEFLATE\|SHUFFLE" plain.txt && fail "plain.h5 /images is filtered"
h5dump -d /images -b LE -o plain.bin plain.h5 >/dev/null && h5dump -d /images -b LE -o packed.bin packed.h5 >/dev/null \
  || fail "h5dump of the pixels"
cmp plain.bin packed.bin || fail "the compressed file's pixels differ"

want=$(mpi 1 "$TOOLS/read_bench" plain.h5 1 | sed -n 's/.*bytes_sum //p')
[ -n "$want" ] || fail "read_bench on plain.h5"
for np in 1 2 4; do
  got=$(mpi $np "$TOOLS/read_bench" packed.h5 1 | sed -n 's/.*bytes_sum //p')
  [ "$got" = "$want" ] || fail "read_bench on $np ranks sums $got on packed.h5, $want on plain.h5"
done

cat > c.yaml <<YAML
name: c
data: {path: $WORK/plain.h5, split: {train: 0.6, val: 0.2, test: 0.2}, labels: [Effusion, Infiltration, Atelectasis]}
model:
  input: [1, 64, 64]
  layers:
    - {type: conv, out: 8, k: 3, pad: 1}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: 1, batch_per_rank: 32, loss: bce}
runtime: {out_dir: $WORK/runs}
YAML
for f in plain packed; do
  mpi 2 "$THORAX_BIN" train c.yaml --set data.path="$WORK/$f.h5" --set name=$f > train_$f.log \
    || { cat train_$f.log; fail "training on $f.h5"; }
  mpi 2 "$THORAX_BIN" eval runs/$f > eval_$f.log || { cat eval_$f.log; fail "eval on $f.h5"; }
done
for x in predictions.csv metrics.json; do
  cmp runs/plain/eval/test/$x runs/packed/eval/test/$x || fail "$x differs between the plain and compressed files"
done
cp runs/packed/eval/test/predictions.csv p2.csv
mpi 4 "$THORAX_BIN" eval runs/packed > eval4.log || { cat eval4.log; fail "eval on 4 ranks"; }
cmp p2.csv runs/packed/eval/test/predictions.csv || fail "predictions on 4 ranks differ from 2 ranks"
echo "compress: 1 passed, 0 failed"
