#!/usr/bin/env bash
# thorax bench on 2 ranks: the quick-start network at 32x32 trains and
# predicts on random data, prints the per-layer table and one RESULT line per
# mode with every key and sane values, and --mode infer prints the infer line
# alone. No speed is asserted: CI machines are shared and their speed varies.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
config=$THORAX_SOURCE_DIR/configs/quickstart.yaml
small=(--steps 3 --warmup 1 --set "model.input=[1,32,32]" --set train.batch_per_rank=8)

# check_result MODE LINE: every key of the RESULT contract, with sane values.
check_result() {
  local mode=$1 line=$2
  for key in mode ranks threads_per_rank precision batch size img_per_s gflop_per_s allreduce_share peak_mb act_mb \
             openblas_coretype step_ms; do
    grep -q " $key=" <<<"$line" || fail "RESULT of $mode lacks $key: $line"
  done
  awk -v mode="$mode" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      ok = v["mode"] == mode && v["ranks"] == 2 && v["threads_per_rank"] == 1 && v["batch"] == 8 &&
           v["size"] == 32 && v["img_per_s"] > 0 && v["gflop_per_s"] > 0 && v["peak_mb"] > 0 && v["act_mb"] > 0 &&
           v["allreduce_share"] >= 0 && v["allreduce_share"] <= 1 && v["step_ms"] > 0 &&
           (mode == "train" || v["allreduce_share"] == 0)
      exit ok ? 0 : 1
    }' <<<"$line" || fail "RESULT of $mode has an insane value: $line"
}

mpi 2 "$THORAX_BIN" bench "$config" "${small[@]}" >both.txt 2>err.txt \
  || { cat both.txt err.txt; fail "thorax bench"; }
[ "$(grep -c '^RESULT ' both.txt)" = 2 ] || { cat both.txt; fail "expected two RESULT lines"; }
check_result train "$(grep '^RESULT mode=train ' both.txt)"
check_result infer "$(grep '^RESULT mode=infer ' both.txt)"
# The per-layer table names every layer of the network, conv1 to fc.
for layer in conv1 bn1 relu1 pool1 conv4 gap fc "all layers"; do
  grep -q "^$layer " both.txt || { cat both.txt; fail "per-layer table lacks $layer"; }
done

mpi 2 "$THORAX_BIN" bench "$config" "${small[@]}" --mode infer --no-layers >infer.txt 2>&1 \
  || { cat infer.txt; fail "--mode infer"; }
[ "$(grep -c '^RESULT ' infer.txt)" = 1 ] || { cat infer.txt; fail "--mode infer: expected one RESULT line"; }
check_result infer "$(grep '^RESULT mode=infer ' infer.txt)"
! grep -q "^conv1 " infer.txt || fail "--no-layers still printed the per-layer table"

# OPENBLAS_CORETYPE is reported as it is set.
OPENBLAS_CORETYPE=Haswell mpi 1 "$THORAX_BIN" bench "$config" "${small[@]}" --mode train --no-layers >core.txt 2>&1 \
  || { cat core.txt; fail "bench with OPENBLAS_CORETYPE"; }
grep -q "^RESULT mode=train .*openblas_coretype=Haswell" core.txt \
  || { cat core.txt; fail "openblas_coretype not reported"; }

# Usage errors exit 2 and say why.
expect_fail 2 "--mode" -- "$THORAX_BIN" bench "$config" --mode fast
expect_fail 2 "--steps" -- "$THORAX_BIN" bench "$config" --steps 0
expect_fail 2 "no_such_key" -- "$THORAX_BIN" bench "$config" --set no_such_key=1
"$THORAX_BIN" bench --help | grep "RESULT mode=train" >/dev/null || fail "bench --help does not describe RESULT"
echo "bench: 1 passed, 0 failed"
