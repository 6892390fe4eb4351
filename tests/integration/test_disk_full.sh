#!/usr/bin/env bash
# A checkpoint write that meets a full disk, on 2 ranks:
#  - the run fails (status 1) within a bounded time, the other rank not left
#    waiting, with one message from rank 0 (the writer) naming the file and
#    the OS's reason;
#  - the previous last.h5 and best.h5 stay intact (checksums pass, epoch 1)
#    and no temporary file is left behind;
#  - with room again, --resume auto finishes the run.
# The full disk, whichever works first (THORAX_TEST_ENOSPC=tmpfs|loop|shim
# forces one): an 8 MiB tmpfs; an 8 MiB ext4 image on a loop device (both need
# CAP_SYS_ADMIN); else an LD_PRELOAD shim (tests/tools/enospc) that fails
# writes under the checkpoint directory with ENOSPC past a byte budget.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
DISK=$WORK/disk
mkdir -p "$DISK"
mounted=""
cleanup() {
  if [ -n "$mounted" ]; then umount "$DISK" 2>/dev/null || umount -l "$DISK" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

want=${THORAX_TEST_ENOSPC:-}
method=""
if [ -z "$want" ] || [ "$want" = tmpfs ]; then
  mount -t tmpfs -o size=8m thorax-disk-full "$DISK" 2>/dev/null && method=tmpfs
fi
if [ -z "$method" ] && { [ -z "$want" ] || [ "$want" = loop ]; } && command -v mkfs.ext4 >/dev/null; then
  truncate -s 8M disk.img && mkfs.ext4 -q -m 0 disk.img 2>/dev/null &&
    mount -o loop disk.img "$DISK" 2>/dev/null && method=loop
fi
[ -n "$method" ] && mounted=1
if [ -z "$method" ] && { [ -z "$want" ] || [ "$want" = shim ]; } && [ -f "$TOOLS/libenospc_shim.so" ]; then
  method=shim
fi
[ -n "$method" ] || { echo "SKIP: no way to fill a disk: mount refused and $TOOLS/libenospc_shim.so missing"; exit 77; }
echo "full disk by: $method"

"$THORAX_BIN" phantom --out d.h5 --patients 60 --size 32 --seed 7 >/dev/null
# A wide second conv makes a checkpoint (~0.9 MB with Adam's moments) far
# larger than the run's other files (curves.png, metrics.csv), so that with
# 300 kB left those are written and the checkpoint is not.
cat > d.yaml <<YAML
name: d
seed: 4
data: {path: $WORK/d.h5}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 64, k: 3, pad: 1}
    - {type: relu}
    - {type: maxpool, k: 2}
    - {type: conv, out: 128, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train:
  epochs: 1
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $DISK/runs}
YAML
CK=$DISK/runs/d/checkpoints
mpi 2 "$THORAX_BIN" train d.yaml >first.log 2>&1 || { cat first.log; fail "the first epoch"; }
size=$(stat -c %s "$CK/last.h5")
[ "$size" -gt 600000 ] || fail "the checkpoint is only $size bytes: the test needs it larger than the other files"
"$TOOLS/ckpt_verify" "$CK/last.h5" >/dev/null || fail "the first checkpoint fails its checksum"
cp "$CK/last.h5" last.before

# Leave 300 kB: enough for metrics.csv and curves.png, not for a checkpoint.
preload=()
if [ "$method" = shim ]; then
  # A sanitizer build's runtime must come first in LD_PRELOAD.
  lib=$TOOLS/libenospc_shim.so
  asan=$(ldd "$THORAX_BIN" | awk '/libasan/ {print $3}')
  [ -z "$asan" ] || lib=$asan:$lib
  preload=(-x "LD_PRELOAD=$lib" -x "THORAX_ENOSPC_DIR=$CK" -x THORAX_ENOSPC_BYTES=300000)
else
  avail=$(df -B1 --output=avail "$DISK" | tail -1)
  fill=$((avail - 300000))
  [ "$fill" -gt 0 ] || fail "only $avail bytes free on the $method disk"
  head -c "$fill" /dev/zero > "$DISK/filler" 2>/dev/null || true
fi

# The second epoch's last.h5 does not fit. timeout: a hang is a failure.
status=0
timeout 120 "$MPIEXEC" -np 2 --oversubscribe "${preload[@]}" "$THORAX_BIN" train d.yaml --resume auto \
  --set train.epochs=2 >full.log 2>&1 || status=$?
[ "$status" -ne 124 ] || { cat full.log; fail "a rank hung after the failed checkpoint write"; }
[ "$status" -eq 1 ] || { cat full.log; fail "a full disk exited $status, not 1"; }
for w in "saving checkpoint $CK/last.h5 failed" "$CK/last.h5." ".tmp: No space left on device" "untouched"; do
  grep -qF -- "$w" full.log || { cat full.log; fail "the error does not mention '$w'"; }
done
# Rank 0 wrote and reported it; th_dist_agree prefixes another rank's message with "rank N:".
[ "$(grep -c "No space left on device" full.log)" -eq 1 ] || { cat full.log; fail "the error was not reported once"; }
grep -q "rank 1:" full.log && { cat full.log; fail "the error came from rank 1, not from the writer"; }
[ "$("$TOOLS/ckpt_verify" "$CK/last.h5" | cut -d" " -f2)" = 1 ] || fail "last.h5 is not the first epoch's any more"
cmp -s "$CK/last.h5" last.before || fail "last.h5 changed"
"$TOOLS/ckpt_verify" "$CK/best.h5" >/dev/null || fail "best.h5 fails its checksum"
ls -a "$CK" | grep -q '\.tmp' && fail "a temporary checkpoint was left behind: $(ls -a "$CK")"

# Room again: the run goes on from the intact checkpoint.
rm -f "$DISK/filler"
mpi 2 "$THORAX_BIN" train d.yaml --resume auto --set train.epochs=2 >after.log 2>&1 || { cat after.log; fail "resuming with room again"; }
[ "$("$TOOLS/ckpt_verify" "$CK/last.h5" | cut -d' ' -f2)" = 2 ] || fail "the resumed run did not write epoch 2"
sed -n "/saving checkpoint/p" full.log
echo "disk_full ($method): 1 passed, 0 failed"
