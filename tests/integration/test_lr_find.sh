#!/usr/bin/env bash
# `thorax lr-find` on the quick start's config and phantom data:
#  - on 2 ranks it writes lr_find.csv (step,lr,loss,smoothed; rates growing
#    exponentially) and lr_find.png into <out_dir>/<name>/lr_find/, no
#    checkpoint and no training file, and prints a suggested rate;
#  - training from the suggested rate still learns (best val macro AUC above
#    0.85, as test_quickstart asserts for the config's own rate);
#  - on 1 rank with the same global batch (batch_per_rank 32 instead of 2 x 16)
#    the curve has as many rows and the suggestion is within a factor of 3.
#    The curves are not the same numbers: each rank shuffles its own shard and
#    batch-norm statistics are per rank, so 1 and 2 ranks see other batches;
#  - bad options are usage errors naming the option.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
start=$(date +%s)
"$THORAX_BIN" phantom --out p.h5 --size 64 >/dev/null
cfg="$THORAX_SOURCE_DIR/configs/quickstart.yaml"
set_data=(--set data.path="$WORK/p.h5" --set runtime.out_dir="$WORK/runs")
"$THORAX_BIN" lr-find --help | grep -- "--start-lr" >/dev/null || fail "lr-find --help"
"$THORAX_BIN" --help | grep "lr-find" >/dev/null || fail "thorax --help does not list lr-find"

mpi 2 "$THORAX_BIN" lr-find "$cfg" "${set_data[@]}" > np2.log || { cat np2.log; fail "lr-find on 2 ranks"; }
cat np2.log
dir="$WORK/runs/quickstart/lr_find"
[ -s "$dir/lr_find.csv" ] && [ -s "$dir/lr_find.png" ] || fail "lr_find.csv or lr_find.png missing in $dir"
ls "$dir" | grep -q '\.tmp$' && fail "a temporary file was left behind"
[ "$(ls "$WORK/runs/quickstart")" = "lr_find" ] || fail "lr-find wrote more than lr_find/: $(ls "$WORK/runs/quickstart")"
head -1 "$dir/lr_find.csv" | grep -qx 'step,lr,loss,smoothed' || fail "lr_find.csv header"
head -c 8 "$dir/lr_find.png" | od -An -c | grep -q 'P   N   G' || fail "lr_find.png is not a PNG"
# Rates from 1e-7, each step the same factor up.
awk -F, 'NR == 2 { if ($2 != 1e-07) exit 1 } NR > 2 { r = $2 / prev; if (NR > 3 && (r / ratio > 1.001 || r / ratio < 0.999)) exit 1; ratio = r }
         NR > 1 { prev = $2 }' "$dir/lr_find.csv" || fail "lr_find.csv rates do not grow exponentially from 1e-7"
grep -q "^suggested lr: " np2.log || fail "no suggestion printed"
result=$(grep '^RESULT ' np2.log)
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $result"; }
lr2=$(get suggested_lr) rows2=$(get steps)
[ "$(($(wc -l < "$dir/lr_find.csv") - 1))" = "$rows2" ] || fail "lr_find.csv rows != steps=$rows2"
awk -v a="$lr2" 'BEGIN { exit !(a > 1e-7 && a < 10) }' || fail "suggested lr $lr2 outside the range"
echo "suggested lr on 2 ranks: $lr2 ($(get rule))"

# Training from the suggestion learns.
mpi 2 "$THORAX_BIN" train "$cfg" "${set_data[@]}" --set name=from_lr --set train.optimizer.lr="$lr2" > train.log \
  || { cat train.log; fail "training at the suggested lr $lr2"; }
best=$(tail -n +2 "$WORK/runs/from_lr/metrics.csv" | cut -d, -f6 | sort -g | tail -1)
echo "best val macro AUC at lr $lr2: $best"
awk -v a="$best" 'BEGIN { exit !(a > 0.85) }' || fail "best val macro AUC $best at the suggested lr is not above 0.85"

# 1 rank, the same global batch.
mpi 1 "$THORAX_BIN" lr-find "$cfg" "${set_data[@]}" --set train.batch_per_rank=32 --out "$WORK/np1" > np1.log \
  || { cat np1.log; fail "lr-find on 1 rank"; }
result=$(grep '^RESULT ' np1.log)
lr1=$(get suggested_lr) rows1=$(get steps)
echo "suggested lr on 1 rank: $lr1 ($(get rule))"
[ "$rows1" = "$rows2" ] || fail "1 rank recorded $rows1 steps, 2 ranks $rows2"
awk -v a="$lr1" -v b="$lr2" 'BEGIN { r = a / b; exit !(r < 3 && r > 1 / 3.0) }' \
  || fail "suggestions on 1 rank ($lr1) and 2 ranks ($lr2) differ by more than 3x"

expect_fail 2 "--steps" -- "$THORAX_BIN" lr-find "$cfg" --steps 1
expect_fail 2 "--end-lr" -- "$THORAX_BIN" lr-find "$cfg" --start-lr 1 --end-lr 0.5
expect_fail 2 "unknown option" -- "$THORAX_BIN" lr-find "$cfg" --bogus
echo "lr-find took $(( $(date +%s) - start ))s"
echo "lr_find: 1 passed, 0 failed"
