#!/usr/bin/env bash
# Soak: 30 tiny epochs on 2 ranks, each rank watched from outside by its pid
# (/proc/PID/status VmRSS, /proc/PID/fd) while the log says which epoch it is
# in. After a warm-up of 10 epochs (allocator pools, HDF5 caches, MPI
# buffers, the first checkpoints and curves), every epoch does the same work,
# so a rank's resident memory must not grow by 2 MB or more over the last 20
# epochs, and its open file descriptors must come back to the same count in
# every epoch: a per-epoch leak of a buffer, an HDF5 handle or a file (a
# checkpoint, metrics.csv, curves.png) shows here long before a 3-day job
# dies of it.
source "$(dirname "$0")/lib.sh"
# Under AddressSanitizer freed memory waits in its quarantine (256 MB), so
# resident memory grows by design; ASan finds real leaks its own way.
if ldd "$THORAX_BIN" | grep libasan >/dev/null; then
  echo "skip: an ASan build's resident memory includes its quarantine; the plain build runs the soak"
  exit 77
fi
cd "$WORK"
EPOCHS=30 WARM=10 RSS_MAX_KB=2048

"$THORAX_BIN" phantom --out s.h5 --patients 300 --size 32 --seed 11 >/dev/null
cat > s.yaml <<YAML
name: soak
data: {path: $WORK/s.h5}
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train: {epochs: $EPOCHS, batch_per_rank: 8}
runtime: {out_dir: $WORK/runs}
YAML

# Not through mpi(): $! must be the launcher itself, the ranks' parent.
"$MPIEXEC" -np 2 --oversubscribe "$THORAX_BIN" train s.yaml >train.log 2>&1 &
launcher=$!

# The ranks: thorax processes whose parent is the launcher.
ranks() {
  local s pid comm state ppid rest
  for s in /proc/[0-9]*/stat; do
    { read -r pid comm state ppid rest <"$s"; } 2>/dev/null || continue
    [ "$ppid" = "$launcher" ] && [ "$comm" = "(thorax)" ] && echo "$pid"
  done
  return 0
}

# One line per sample: epochs finished (from the log), pid, VmRSS kB, fds.
# A rank that exits between two reads is skipped.
: >samples
while kill -0 "$launcher" 2>/dev/null; do
  done_epochs=$(grep -c " epoch [0-9]*/$EPOCHS " train.log || true)
  for p in $(ranks); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l || true)
    [ -n "$rss" ] && [ "$fds" -gt 0 ] && echo "$done_epochs $p $rss $fds" >>samples
  done
  sleep 0.05
done
wait "$launcher" || { cat train.log; fail "the soak run failed"; }
grep "epoch $EPOCHS/$EPOCHS " train.log >/dev/null || { cat train.log; fail "the run did not reach epoch $EPOCHS"; }
[ "$(cut -d' ' -f2 samples | sort -u | wc -l)" = 2 ] || fail "did not find the 2 ranks to watch"

# Per rank, two windows of 5 epochs: the first after the warm-up and the
# last (samples taken while the log shows k epochs done belong to epoch
# k + 1; after the last epoch the evaluation phase has needs of its own).
# In each, the largest RSS and the smallest fd count: a rank between two
# steps, not one that holds a checkpoint file open for a moment. A leak of
# one descriptor or of 100 kB per epoch shows as a difference between them.
awk -v warm="$WARM" -v last="$EPOCHS" -v rss_max="$RSS_MAX_KB" '
  $1 >= warm && $1 < last {
    w = $1 < warm + 5 ? 0 : $1 >= last - 5 ? 1 : -1
    if (w < 0) next
    k = $2 SUBSEP w
    if (!(k in rss) || $3 > rss[k]) rss[k] = $3
    if (!(k in fd) || $4 < fd[k]) fd[k] = $4
    n[k]++; pids[$2] = 1
  }
  END {
    bad = 0
    for (p in pids) {
      a = p SUBSEP 0; b = p SUBSEP 1
      if (n[a] < 3 || n[b] < 3) { printf "rank pid %s: too few samples (%d, %d)\n", p, n[a], n[b]; bad = 1; continue }
      printf "rank pid %s: epochs %d-%d: VmRSS %d kB, %d fds; epochs %d-%d: VmRSS %d kB, %d fds\n", p, warm + 1,
             warm + 5, rss[a], fd[a], last - 4, last, rss[b], fd[b]
      if (fd[b] != fd[a]) { printf "rank pid %s: open files went from %d to %d\n", p, fd[a], fd[b]; bad = 1 }
      if (rss[b] - rss[a] >= rss_max) {
        printf "rank pid %s: VmRSS grew by %d kB (limit %d)\n", p, rss[b] - rss[a], rss_max; bad = 1
      }
    }
    exit bad
  }' samples >soak.txt || { cat soak.txt; fail "memory or file descriptors grow from epoch to epoch"; }
cat soak.txt
echo "soak: 1 passed, 0 failed"
