#!/usr/bin/env bash
# No command opens a file other than those named on its command line, in its
# config or in its run directory (issue 20): train, eval, cam and predict run
# under `strace -f -e trace=openat,open`, on good files and on crafted ones
# that point outside themselves (HDF5 external storage, an external link, a
# virtual dataset, a checkpoint whose /params is an external link). Every
# path opened must be on an allow-list: the command's own files, and the
# system's (shared libraries, /proc, /sys, /dev, Open MPI's session files,
# fonts). A crafted file must be refused with an error naming it and what it
# points to, and nothing under outside/ (what the files point to) is opened.
source "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || { echo "skip: strace is not installed (tools/install-test-deps.sh)"; exit 77; }
strace -qq -e trace=none true 2>/dev/null || { echo "skip: strace cannot trace here (ptrace not permitted)"; exit 77; }

MPI2=("$MPIEXEC" -np 2 --oversubscribe)
cd "$WORK"
"$THORAX_BIN" phantom --out data.h5 --patients 30 --size 32 --seed 3 >/dev/null 2>&1
mkdir images outside && "$TOOLS/make_test_pngs" images >/dev/null
head -c 100000 /dev/urandom >outside/secret.bin
cp data.h5 outside/other.h5
cat >cfg.yaml <<'EOF'
name: r
seed: 1
data:
  path: data.h5
model:
  input: [1, 32, 32]
  layers:
    - {type: conv, out: 4, k: 3, pad: 1}
    - {type: relu}
    - {type: gap}
    - {type: dense, out: labels}
train:
  epochs: 1
  batch_per_rank: 8
  optimizer: {type: sgd, lr: 0.05}
eval:
  bootstrap: 20
runtime:
  out_dir: runs
EOF

# The system's files, wherever a process of the job may look: libraries and
# their search, kernel interfaces, Open MPI's configuration and session
# directory, name lookup, time zone, fonts (cairo), OpenCL vendors (oneDNN).
system_ok() {
  case "$1" in
    / | /dev | /usr/* | /lib/* | /lib64/* | /proc/* | /sys/* | /dev/*) return 0 ;;
    /run/udev/* | /var/cache/fontconfig*) return 0 ;;
    /etc/ld.so.* | /etc/fonts/* | /etc/OpenCL/* | /etc/openmpi/* | /etc/hosts | /etc/host.conf) return 0 ;;
    /etc/nsswitch.conf | /etc/resolv.conf | /etc/gai.conf | /etc/localtime | /etc/passwd | /etc/group) return 0 ;;
    "$HOME"/.openmpi/* | "$HOME"/.pmix/*) return 0 ;;
    "$HOME"/.cache/fontconfig* | "$HOME"/.fontconfig* | "$HOME"/.config/fontconfig*) return 0 ;;
    "${TMPDIR:-/tmp}"/ompi.* | /tmp/ompi.*) return 0 ;;
  esac
  return 1
}

# traced NAME EXPECTED_STATUS ALLOWED... -- CMD...: runs CMD under strace in
# $WORK, checks its status, then every path it opened: a system file, one of
# ALLOWED (relative to $WORK; a trailing / allows a directory's contents; the
# dataset's MPI-IO lock probe NAME.locktest.N beside it is allowed with it),
# or a failed search for a shared library. Lists the first offenders.
traced() {
  local name=$1 want=$2; shift 2
  local allowed=()
  while [ "$1" != "--" ]; do allowed+=("$1"); shift; done
  shift
  local got=0
  strace -f -qq -e trace=openat,open -o "$WORK/$name.trace" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || got=$?
  [ "$got" = "$want" ] || { cat "$WORK/$name.err" >&2; fail "$name: exited $got, expected $want"; }
  local bad=() line dirfd path flags p a ok
  local re='open(at)?\((([A-Z_]+|-?[0-9]+), )?"([^"]*)", ([A-Z_|]+)'
  while IFS= read -r line; do
    [[ "$line" =~ $re ]] || continue
    dirfd=${BASH_REMATCH[3]} path=${BASH_REMATCH[4]} flags=${BASH_REMATCH[5]}
    # O_PATH from a directory descriptor: udev resolving a /sys path, no data.
    if [[ "$dirfd" =~ ^[0-9]+$ ]]; then [[ "$flags" == *O_PATH* ]] && continue; bad+=("$line"); continue; fi
    [[ "$path" == /* ]] && p=$path || p=$WORK/$path
    system_ok "$p" && continue
    # The loader trying its search path's subdirectories for a library.
    [[ "${path##*/}" == lib*.so* && "$flags" == O_RDONLY\|O_CLOEXEC ]] && continue
    ok=""
    for a in "${allowed[@]}"; do
      case "$p" in
        "$WORK/$a" | "$WORK/$a".locktest.* | "$WORK/$a".tmp) ok=1 ;;
        "$WORK/$a"*) [[ "$a" == */ ]] && ok=1 ;;
      esac
      [ -n "$ok" ] && break
    done
    [ -n "$ok" ] || bad+=("$line")
  done <"$WORK/$name.trace"
  if [ "${#bad[@]}" -gt 0 ]; then
    printf '  %s\n' "${bad[@]:0:10}" >&2
    fail "$name: ${#bad[@]} opens outside the allow-list (above, the first)"
  fi
  if grep -F "$WORK/outside" "$WORK/$name.trace" >/dev/null || grep -F '"outside/' "$WORK/$name.trace" >/dev/null; then
    fail "$name: opened a file under outside/"
  fi
  echo "ok   $name ($(grep -c 'open' "$WORK/$name.trace") opens)"
}

# expect_words NAME WORD...: the command's stderr names each.
expect_words() {
  local name=$1 w; shift
  for w in "$@"; do
    grep -F -- "$w" "$WORK/$name.err" >/dev/null ||
      { cat "$WORK/$name.err" >&2; fail "$name: error does not mention '$w'"; }
  done
}

# ---- Good files: each command opens its own files and the system's --------
traced train 0 cfg.yaml data.h5 runs/ -- "${MPI2[@]}" "$THORAX_BIN" train cfg.yaml
traced eval 0 data.h5 runs/r/ -- "${MPI2[@]}" "$THORAX_BIN" eval runs/r
traced cam 0 data.h5 runs/r/ -- "${MPI2[@]}" "$THORAX_BIN" cam runs/r --top-k 2
traced predict 0 runs/r/ images/a.png images/b.png -- "$THORAX_BIN" predict runs/r images/a.png images/b.png

# ---- Crafted files: refused, naming them, before the outside is touched ----
"$TOOLS/h5_hostile" external data.h5 ext.h5 "$WORK/outside/secret.bin"
"$TOOLS/h5_hostile" elink data.h5 elink.h5 "$WORK/outside/other.h5"
"$TOOLS/h5_hostile" virtual data.h5 vds.h5 "$WORK/outside/other.h5"

# train takes its run directory's lock (runs/x/.lock) before it reads the data, and
# removes the directory again when it refuses the file.
traced train_external 1 cfg.yaml ext.h5 runs/x runs/x/ -- "${MPI2[@]}" "$THORAX_BIN" train cfg.yaml --set data.path=ext.h5 --set name=x
expect_words train_external ext.h5 /images "external storage" outside/secret.bin
[ ! -e runs/x ] || fail "train_external: left runs/x behind"
traced train_external_np4 1 cfg.yaml ext.h5 runs/x runs/x/ -- "$MPIEXEC" -np 4 --oversubscribe "$THORAX_BIN" train cfg.yaml \
  --set data.path=ext.h5 --set name=x
expect_words train_external_np4 ext.h5 "external storage"
traced train_elink 1 cfg.yaml elink.h5 runs/x runs/x/ -- "${MPI2[@]}" "$THORAX_BIN" train cfg.yaml --set data.path=elink.h5 --set name=x
expect_words train_elink elink.h5 /images "external link" outside/other.h5
traced train_virtual 1 cfg.yaml vds.h5 runs/x runs/x/ -- "${MPI2[@]}" "$THORAX_BIN" train cfg.yaml --set data.path=vds.h5 --set name=x
expect_words train_virtual vds.h5 /images "virtual dataset"

traced eval_elink 1 runs/r/ elink.h5 -- "${MPI2[@]}" "$THORAX_BIN" eval runs/r --data elink.h5
expect_words eval_elink elink.h5 "external link"
[ ! -e runs/r/eval/elink ] || fail "eval_elink: left runs/r/eval/elink behind"

# cam maps the images of the run's own dataset file: here a crafted one.
cp -r runs/r runs/c
sed -i "s#^  path: .*#  path: $WORK/vds.h5#" runs/c/config.yaml
grep -F "path: $WORK/vds.h5" runs/c/config.yaml >/dev/null || fail "could not point runs/c at vds.h5"
traced cam_virtual 1 runs/c/ vds.h5 -- "${MPI2[@]}" "$THORAX_BIN" cam runs/c --top-k 2
expect_words cam_virtual vds.h5 "virtual dataset"

# predict reads the checkpoint: one whose /params lives in another file.
cp -r runs/r runs/p
cp runs/r/checkpoints/best.h5 outside/ckpt.h5
"$TOOLS/h5_hostile" elink runs/r/checkpoints/best.h5 runs/p/checkpoints/best.h5 "$WORK/outside/ckpt.h5" params
traced predict_elink 1 runs/p/ images/a.png -- "$THORAX_BIN" predict runs/p images/a.png
expect_words predict_elink runs/p/checkpoints/best.h5 /params "external link" outside/ckpt.h5
echo "openat: every command kept to its own files"
