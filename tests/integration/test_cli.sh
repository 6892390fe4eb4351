#!/usr/bin/env bash
# The command line's conventions, the same for every command (src/cli/opts.c)
# and its log lines (src/cli/log.c):
#  - `--` ends the options: a config named --weird.yaml after it is read;
#  - --opt=value and --opt value are the same;
#  - an unknown flag, even last on the line, is called unknown, a typo gets a
#    did-you-mean, a missing value names its option, a flag takes no value;
#  - every command's --help exits 0 and lists each of its options, and the
#    parser knows each option the help lists;
#  - progress and info lines start with an ISO-8601 UTC time and the rank;
#    with --log-format json (before or after the command, or
#    THORAX_LOG_FORMAT) each line is one JSON object whose numbers agree with
#    metrics.csv; `thorax eval` and the end of training show images/s and ETA.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to parse the JSON log lines"; exit 77; }

"$THORAX_BIN" phantom --out p.h5 --patients 60 --size 32 --seed 4 >phantom.out 2>phantom.err
{
  echo "name: cli"
  echo "data: {path: $WORK/p.h5}"
  echo "train: {epochs: 2, batch_per_rank: 8}"
  echo "eval: {split: test}"
  echo "runtime: {out_dir: $WORK/runs}"
  cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml"
} >--weird.yaml
cp -- --weird.yaml plain.yaml

# `--` ends the options.
"$THORAX_BIN" split -- --weird.yaml >weird.out || fail "split -- --weird.yaml"
grep "leakage check: passed" weird.out >/dev/null || { cat weird.out; fail "split -- --weird.yaml: no report"; }
"$THORAX_BIN" split plain.yaml >plain.out
cmp -s weird.out plain.out || fail "split of --weird.yaml differs from the same config's"
expect_fail 2 "unknown option '--weird.yaml'" -- "$THORAX_BIN" split --weird.yaml

# --opt=value and --opt value.
"$THORAX_BIN" split plain.yaml --set seed=11 --set train.epochs=1 >sep.out
"$THORAX_BIN" split plain.yaml --set=seed=11 --set=train.epochs=1 >eq.out
cmp -s sep.out eq.out || { diff sep.out eq.out; fail "--set=k=v and --set k=v differ"; }
grep "seed 11" eq.out >/dev/null || { cat eq.out; fail "--set=seed=11 was not applied"; }
"$THORAX_BIN" phantom --out a.h5 --patients 20 --size 16 --seed 9 --prevalence 0.4 >a.out 2>/dev/null
"$THORAX_BIN" phantom --out=b.h5 --patients=20 --size=16 --seed=9 --prevalence=0.4 >b.out 2>/dev/null
cmp -s <(tail -n +2 a.out) <(tail -n +2 b.out) || { diff a.out b.out; fail "phantom --opt=value and --opt value differ"; }
grep "of 20 patients (16x16, seed 9)" b.out >/dev/null || { cat b.out; fail "phantom --opt=value was not applied"; }

# Unknown, mistyped, valueless and misused options.
expect_fail 2 "unknown option '--quiet'" -- "$THORAX_BIN" eval runs/cli --quiet
grep "needs a value" "$WORK/err.txt" >/dev/null && fail "an unknown last flag is called a missing value"
expect_fail 2 "unknown option '--quiet'" -- "$THORAX_BIN" ingest --csv l.csv --images i --out x.h5 --quiet
expect_fail 2 "unknown option '--quiet'" -- "$THORAX_BIN" phantom --out x.h5 --quiet
expect_fail 2 "unknown option '--chekpoint'" "did you mean '--checkpoint'?" -- "$THORAX_BIN" eval runs/cli --chekpoint best
expect_fail 2 "did you mean '--patients'?" -- "$THORAX_BIN" phantom --out x.h5 --patinets 3
expect_fail 2 "did you mean '--start-lr'?" -- "$THORAX_BIN" lr-find plain.yaml --strat-lr=1e-5
expect_fail 2 "eval: --checkpoint needs a value" -- "$THORAX_BIN" eval runs/cli --checkpoint
expect_fail 2 "--set needs key=value" -- "$THORAX_BIN" train plain.yaml --set
expect_fail 2 "--patient takes no value" -- "$THORAX_BIN" eval runs/cli --patient=yes
expect_fail 2 "--log-format 'xml'" "plain or json" -- "$THORAX_BIN" split plain.yaml --log-format xml
expect_fail 2 "--log-format 'xml'" -- "$THORAX_BIN" --log-format=xml split plain.yaml
expect_fail 2 "THORAX_LOG_FORMAT='yaml'" -- env THORAX_LOG_FORMAT=yaml "$THORAX_BIN" split plain.yaml
[ ! -e x.h5 ] && [ ! -e runs ] || fail "a usage error left output behind"

# --help: status 0, and each option of the command both listed and known.
declare -A options=(
  [ingest]="csv images out size labels format patient-from uncertain blank frontal-only dicom-dir window skip-bad boxes masks rle compress"
  [phantom]="out patients size seed studies prevalence marker marker-rate shortcut-marker preview"
  [split]="set"
  [train]="set resume"
  [eval]="split checkpoint data patient by"
  [compare]="split data out bootstrap seed"
  [bench]="steps warmup mode labels no-layers set"
  [lr-find]="steps start-lr end-lr out set"
  [cam]="method layer images top-k split checkpoint label dilate"
  [predict]="csv json skip-bad checkpoint batch cam method layer"
  [export]="format checkpoint out"
)
for c in "${!options[@]}"; do
  for h in --help -h; do
    "$THORAX_BIN" "$c" "$h" >help.txt || fail "$c $h exited $?"
  done
  grep "usage: .*thorax $c" help.txt >/dev/null || fail "$c --help has no usage line"
  for o in ${options[$c]} log-format help; do
    grep -- "--$o\b" help.txt >/dev/null || fail "$c --help does not list --$o"
    # Last on the line: a value option needs its value, a flag runs into a
    # missing operand; neither may be unknown to the parser.
    got=0
    (cd "$WORK" && mkdir -p empty && cd empty && timeout 60 "$THORAX_BIN" "$c" "--$o") >opt.out 2>opt.err || got=$?
    if [ "$o" != help ] && grep "unknown option" opt.err >/dev/null; then fail "$c --$o: $(cat opt.err)"; fi
    [ "$o" = help ] || [ "$got" = 2 ] || { cat opt.err; fail "$c --$o alone exited $got, not 2"; }
  done
  # --log-format after the command is every command's.
  "$THORAX_BIN" "$c" --log-format json --help >/dev/null || fail "$c does not take --log-format"
done

# config's options are whole requests: each alone does its work.
"$THORAX_BIN" config --help | grep -- "--explain" >/dev/null || fail "config --help does not list --explain"
"$THORAX_BIN" config --explain=train.optimizer.lr --log-format json | grep "default:" >/dev/null ||
  fail "config --explain=KEY"
expect_fail 2 "did you mean '--reference'?" -- "$THORAX_BIN" config --refrence
expect_fail 2 "give one of" -- "$THORAX_BIN" config --defaults --reference
expect_fail 2 "unexpected argument 'x'" -- "$THORAX_BIN" config -- x

# Plain log lines: ISO-8601 UTC time and the rank before the old text.
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z rank0 '
grep -E "^${iso}phantom: [0-9]+/[0-9]+ images \([0-9]+%\), [0-9]+ img/s, ETA [0-9]+s$" phantom.err >/dev/null ||
  { cat phantom.err; fail "phantom's progress lines lack the time stamp"; }
mpi 2 "$THORAX_BIN" train plain.yaml >train.log || { cat train.log; fail "train on 2 ranks"; }
bad=$(grep -Ev "^$iso" train.log | head -1 || true)
[ -z "$bad" ] || { cat train.log; fail "a train line without a time stamp: $bad"; }
grep -E "^${iso}epoch [0-9]+/2  train_loss" train.log >/dev/null || fail "no epoch line"
grep -E "^${iso}eval test, rank 0's share: [0-9]+/[0-9]+ images \(100%\), [0-9]+ img/s, ETA 0s$" train.log >/dev/null ||
  { cat train.log; fail "no progress of the evaluation at the end of training"; }
grep -E "^${iso}done: $WORK/runs/cli$" train.log >/dev/null || fail "no done line"
python3 - train.log <<'EOF' || fail "the time stamps are not now"
import datetime, sys
now = datetime.datetime.now(datetime.timezone.utc)
for line in open(sys.argv[1]):
    t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < 600, line
EOF

# JSON log lines, the option before the command, after it, or from the
# environment; rank 0 on 4 ranks.
mpi 4 "$THORAX_BIN" --log-format json train plain.yaml --set name=j1 >j1.log || { cat j1.log; fail "train, json"; }
mpi 2 "$THORAX_BIN" train plain.yaml --set name=j2 --log-format=json >j2.log || { cat j2.log; fail "train, json after"; }
THORAX_LOG_FORMAT=json mpi 2 -x THORAX_LOG_FORMAT "$THORAX_BIN" eval runs/cli --split val >j3.log ||
  { cat j3.log; fail "eval, THORAX_LOG_FORMAT=json"; }
THORAX_LOG_FORMAT=json mpi 2 -x THORAX_LOG_FORMAT "$THORAX_BIN" eval runs/cli --log-format plain >p3.log
grep -E "^${iso}eval: " p3.log >/dev/null || { cat p3.log; fail "--log-format plain does not win over the environment"; }
expect_fail 2 "" -- env THORAX_LOG_FORMAT=json "$THORAX_BIN" eval runs/cli --bogus
python3 - "$WORK" <<'EOF' || fail "JSON log lines"
import csv, datetime, json, math, sys
w = sys.argv[1]
def lines(path):
    out = []
    for n, line in enumerate(open(path), 1):
        try:
            o = json.loads(line)
        except ValueError as e:
            sys.exit(f"{path}:{n}: not JSON ({e}): {line!r}")
        for k in ("time", "level", "msg", "rank"):
            assert k in o, f"{path}:{n}: no {k}: {line!r}"
        datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%SZ")
        assert o["rank"] == 0, f"{path}:{n}: rank {o['rank']}"
        out.append(o)
    return out
for run in ("j1", "j2"):
    objs = lines(f"{w}/{run}.log")
    epochs = [o for o in objs if o["msg"].startswith("epoch ") and "train_loss" in o]
    rows = list(csv.DictReader(open(f"{w}/runs/{run}/metrics.csv")))
    assert len(epochs) == len(rows) == 2, (run, len(epochs), len(rows))
    for o, r in zip(epochs, rows):
        assert o["epoch"] == int(r["epoch"]) and o["epochs"] == 2, (o, r)
        for k in ("train_loss", "val_loss"):
            assert math.isclose(o[k], float(r[k]), abs_tol=1e-5), (run, k, o[k], r[k])
        assert o["msg"].startswith(f"epoch {o['epoch']}/2  train_loss {o['train_loss']:.4f}"), o
    prog = [o for o in objs if o["level"] == "progress" and o["msg"].startswith("eval test")]
    assert prog and prog[-1]["done"] == prog[-1]["total"] and prog[-1]["eta_s"] == 0, prog
    assert all(o["img_per_s"] > 0 and "ETA" in o["msg"] for o in prog), prog
    assert objs[-1]["msg"] == f"done: {w}/runs/{run}", objs[-1]
objs = lines(f"{w}/j3.log")
summary = [o for o in objs if o["msg"].startswith("eval: ")]
metrics = json.load(open(f"{w}/runs/cli/eval/val/metrics.json"))
assert len(summary) == 1 and summary[0]["images"] == metrics["n_images"], (summary, metrics["n_images"])
assert math.isclose(summary[0]["macro_auc"], metrics["macro"]["auc"], abs_tol=1e-12), summary
assert any(o["level"] == "progress" and "img/s" in o["msg"] for o in objs), objs
err = json.loads(open(f"{w}/err.txt").read().splitlines()[0])
assert err["level"] == "error" and "unknown option '--bogus'" in err["msg"], err
print(f"json: {len(lines(w + '/j1.log'))} + {len(lines(w + '/j2.log'))} + {len(objs)} lines parse")
EOF
echo "cli: all passed"
