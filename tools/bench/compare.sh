#!/usr/bin/env bash
# compare.sh - Thorax against PyTorch on one network (the reference network,
# ResNet-18 or DenseNet-121), same machine, same settings, run alternately so
# that a change in the machine's load hits both alike; prints every run, the
# medians and the ratios Thorax/PyTorch.
#
#   tools/bench/compare.sh [--arch ref|resnet18|densenet121] [--bf16] [--reps R] [--ranks N]
#                          [--threads T] [--batch B] [--size S] [--steps K] [--warmup W]
#                          [--torch-default] [--keep-coretype]
#
# Thorax: mpirun -np N thorax bench configs/<arch>.yaml (train and infer in
# one process), T threads per rank (runtime.threads_per_rank), each rank bound
# to T cores; with --bf16, runtime.precision=bf16.
# PyTorch: ../shared/bench/torch_ref.py --arch <arch> (Debian's python3-torch),
# one process with N x T threads (the same cores), train and infer; with
# --bf16, CPU autocast to bfloat16. B is the batch of one step of one Thorax
# rank; PyTorch's batch is N x B, the same global batch. The networks' heads
# may differ in width (PyTorch's has 14 outputs, Thorax's the config's
# labels): a few kFLOP of GFLOPs per image.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
thorax=${THORAX_BIN:-$root/build/thorax}
torch_ref=${TORCH_REF:-$root/../shared/bench/torch_ref.py}
arch=ref bf16=0 size=
reps=3 ranks=1 threads=2 batch=32 steps=10 warmup=3
torch_best=1 keep_coretype=0

usage() {
  cat <<EOF
usage: tools/bench/compare.sh [options]

Runs \`thorax bench configs/<arch>.yaml\` and torch_ref.py --arch <arch>
alternately, R times each, with the same global batch, image size and cores,
and prints the median images/s of training and inference steps and the ratio
Thorax/PyTorch.

options:
  --arch A          ref (configs/reference.yaml, 256x256), resnet18 or
                    densenet121 (their configs, 224x224); default ref
  --bf16            Thorax with runtime.precision=bf16, PyTorch with bf16 autocast
  --reps R          repetitions of each (default 3)
  --ranks N         Thorax MPI ranks (default 1)
  --threads T       threads per rank (default 2); PyTorch gets N x T threads
  --batch B         images per step per Thorax rank (default 32); PyTorch's
                    batch is ranks x B
  --size S          image side (default 256 for ref, 224 otherwise)
  --steps K         timed steps per run (default 10)
  --warmup W        warm-up steps per run (default 3)
  --torch-default   PyTorch with its default settings (NCHW, glibc malloc); by
                    default it runs at its best measured here: --channels-last
                    --keep-memory
  --keep-coretype   keep OPENBLAS_CORETYPE for Thorax; by default it is unset,
                    so OpenBLAS picks the kernels for this CPU
  -h, --help        this help

environment: THORAX_BIN (default build/thorax), TORCH_REF (default
../shared/bench/torch_ref.py beside the checkout), MPIEXEC (default mpirun).
As root, Open MPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
EOF
}

die() { echo "compare.sh: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[0-9]+$ && $2 -ge $3 ]] || die "$1 needs a whole number >= $3, got '$2'"; }

while [ $# -gt 0 ]; do
  case $1 in
    --reps|--ranks|--threads|--batch|--size|--steps|--warmup)
      [ $# -ge 2 ] || die "$1 needs a value"
      min=1; [ "$1" = --warmup ] && min=0
      need_int "$1" "$2" $min
      declare "${1#--}=$2"; shift 2 ;;
    --arch)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $2 in ref|resnet18|densenet121) arch=$2 ;; *) die "--arch takes ref, resnet18 or densenet121, got '$2'" ;; esac
      shift 2 ;;
    --bf16) bf16=1; shift ;;
    --torch-default) torch_best=0; shift ;;
    --keep-coretype) keep_coretype=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
config=$root/configs/$arch.yaml
[ "$arch" = ref ] && config=$root/configs/reference.yaml
[ -n "$size" ] || { size=224; [ "$arch" = ref ] && size=256; }
[ -x "$thorax" ] || die "no thorax binary at $thorax (build it: tools/build.sh, or set THORAX_BIN)"
[ -f "$torch_ref" ] || die "no torch_ref.py at $torch_ref (set TORCH_REF)"
/usr/bin/python3 -c 'import torch' 2>/dev/null || die "Debian's python3 has no torch: apt-get install -y python3-torch"

log=$(mktemp -d /tmp/thorax-compare-XXXXXX)
torch_threads=$((ranks * threads))
torch_opts=(--arch "$arch" --batch $((ranks * batch)) --size "$size" --steps "$steps" --warmup "$warmup"
  --threads "$torch_threads")
[ "$torch_best" = 1 ] && torch_opts+=(--channels-last --keep-memory)
precision=fp32
[ "$bf16" = 1 ] && torch_opts+=(--bf16) && precision=bf16
# OpenBLAS reads OPENBLAS_CORETYPE at load time: unset it in Thorax's
# environment only, so a value forced for other work does not slow it.
thorax_env=(env)
[ "$keep_coretype" = 1 ] || thorax_env+=(-u OPENBLAS_CORETYPE)
# Bind each rank to its own T cores: by default mpirun binds a rank to one core
# when there are at most 2 ranks, which would crowd T threads onto it.
thorax_cmd=("${thorax_env[@]}" "${MPIEXEC:-mpirun}" -np "$ranks" --map-by "slot:PE=$threads"
  "$thorax" bench "$config" --mode both --no-layers --steps "$steps" --warmup "$warmup"
  --set "runtime.threads_per_rank=$threads" --set "train.batch_per_rank=$batch" --set "model.input=[1,$size,$size]")
[ "$bf16" = 1 ] && thorax_cmd+=(--set runtime.precision=bf16)

# field KEY LINE: the value of KEY=value in a RESULT line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n1; }

run_thorax() {
  local out=$log/thorax_$1.txt
  "${thorax_cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "thorax bench failed (log: $out)"; }
  grep '^RESULT mode=train' "$out" >>"$log/results.txt"
  grep '^RESULT mode=infer' "$out" >>"$log/results.txt"
}

run_torch() {
  local out=$log/torch_$1_$2.txt
  /usr/bin/python3 "$torch_ref" --mode "$2" "${torch_opts[@]}" >"$out" 2>&1 \
    || { cat "$out" >&2; die "torch_ref.py failed (log: $out)"; }
  grep '^RESULT' "$out" | tail -n1 | sed 's/^RESULT /RESULT tool=pytorch /' >>"$log/results.txt"
}

echo "Thorax:  ${thorax_cmd[*]}"
echo "PyTorch: /usr/bin/python3 $torch_ref --mode train|infer ${torch_opts[*]}"
coretype=unset
[ "$keep_coretype" = 1 ] && coretype="${OPENBLAS_CORETYPE:-unset} (kept)"
echo "OPENBLAS_CORETYPE for Thorax: $coretype"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$log/results.txt"
for r in $(seq 1 "$reps"); do
  # Alternate who goes first, so a drift in the machine's load favours neither.
  if [ $((r % 2)) = 1 ]; then
    run_thorax "$r"; run_torch "$r" train; run_torch "$r" infer
  else
    run_torch "$r" train; run_torch "$r" infer; run_thorax "$r"
  fi
  echo "repetition $r/$reps done" >&2
done
sed -i '/tool=pytorch/!s/^RESULT /RESULT tool=thorax /' "$log/results.txt"

echo
printf '%-8s %-6s %10s %10s %10s %10s\n' tool mode img/s step_ms GFLOP/s other_cpu
while read -r line; do
  step=$(field step_ms "$line"); [ -n "$step" ] || step=$(field step_ms_median "$line")
  printf '%-8s %-6s %10s %10s %10s %10s\n' "$(field tool "$line")" "$(field mode "$line")" \
    "$(field img_per_s "$line")" "$step" "$(field gflop_per_s "$line")" "$(field other_cpu "$line")"
done <"$log/results.txt"

# median TOOL MODE: the median img/s of those runs.
median() {
  grep "tool=$1 mode=$2 " "$log/results.txt" | while read -r line; do field img_per_s "$line"; done \
    | sort -g | awk '{v[NR] = $1}
                    END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
                         else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
echo "median of $reps, $arch, $precision: $ranks rank(s) x $threads thread(s) x batch $batch vs PyTorch" \
  "with $torch_threads threads x batch $((ranks * batch)), ${size}x${size}"
printf '%-6s %12s %12s %16s\n' mode thorax_img/s pytorch_img/s ratio_thorax/pt
for mode in train infer; do
  t=$(median thorax "$mode") p=$(median pytorch "$mode")
  printf '%-6s %12s %12s %16s\n' "$mode" "$t" "$p" "$(awk -v t="$t" -v p="$p" 'BEGIN {printf "%.2f", t / p}')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); other_cpu = CPUs busy with other processes during a run"
echo "logs: $log"
