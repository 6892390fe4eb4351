#!/usr/bin/env bash
# run.json, the run's provenance, on 2 ranks:
#  - a fresh run lists one session: its start time (between the test's clock
#    before and after), the build's version (thorax --version's), the
#    arguments, the working directory, 2 ranks, the configured threads per
#    rank, one host name per rank gathered from every rank (rank 1 runs in
#    its own UTS namespace under another host name where unshare can make
#    one), and resumed_at null;
#  - --resume auto appends a second session, resumed at epoch 1 and the
#    global step metrics.csv gives for it, and keeps the first as it was;
#  - a run.json that is not thorax's stops the resume naming the file, and
#    leaves the file as it was.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read run.json"; exit 77; }
cd "$WORK"
"$THORAX_BIN" phantom --out j.h5 --patients 40 --size 32 --seed 2 >/dev/null
cat > j.yaml <<YAML
name: j
seed: 5
data: {path: $WORK/j.h5}
YAML
cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> j.yaml
cat >> j.yaml <<YAML
train:
  epochs: 1
  batch_per_rank: 4
runtime: {out_dir: $WORK/runs}
YAML

# Rank 1 under another host name: a private UTS namespace (root, util-linux).
host0=$(hostname)
host1=$host0
rank1=("$THORAX_BIN")
if unshare --uts true 2>/dev/null; then
  host1=thorax-rank1-host
  rank1=(unshare --uts sh -c "hostname $host1 && exec \"\$0\" \"\$@\"" "$THORAX_BIN")
else
  echo "note: unshare --uts is not possible here; both ranks report host $host0"
fi
train() {
  "$MPIEXEC" -np 1 --oversubscribe "$THORAX_BIN" train "$@" : -np 1 "${rank1[@]}" train "$@"
}

before=$(date -u +%s)
train j.yaml --set runtime.threads_per_rank=1 >a.log 2>&1 || { cat a.log; fail "the first session"; }
after=$(date -u +%s)
cp runs/j/run.json first.json
version=$("$THORAX_BIN" --version | sed -n 's/^thorax [^ ]* (\(.*\))$/\1/p')
[ -n "$version" ] || fail "thorax --version gives no revision"

# check FILE SESSIONS: the fields of run.json's last session, against the
# shell's values passed in the environment.
check() {
  FILE=$1 N=$2 BEFORE=$before AFTER=$after VERSION=$version CWD=$WORK HOST0=$host0 HOST1=$host1 python3 - <<'PY'
import calendar, json, os, sys, time
e = os.environ
doc = json.load(open(e["FILE"]))
def bad(msg):
    sys.exit("FAIL: %s: %s" % (e["FILE"], msg))
if doc.get("run") != "j": bad("run is %r, not 'j'" % doc.get("run"))
s = doc["sessions"]
if len(s) != int(e["N"]): bad("%d sessions, not %s" % (len(s), e["N"]))
last = s[-1]
t = calendar.timegm(time.strptime(last["started"], "%Y-%m-%dT%H:%M:%SZ"))
if not int(e["BEFORE"]) <= t <= int(e["AFTER"]): bad("started %s is outside the session" % last["started"])
want = {"version": e["VERSION"], "cwd": e["CWD"], "ranks": 2, "threads_per_rank": 1,
        "hosts": [e["HOST0"], e["HOST1"]], "args": json.loads(e["ARGS"]), "resumed_at": json.loads(e["RESUMED"])}
for k, v in want.items():
    if last.get(k) != v: bad("%s is %r, not %r" % (k, last.get(k), v))
PY
}
ARGS='["train", "j.yaml", "--set", "runtime.threads_per_rank=1"]' RESUMED=null check runs/j/run.json 1 ||
  fail "run.json of the first session"

step=$(sed -n '2p' runs/j/metrics.csv | cut -d, -f2)
before=$(date -u +%s)
train j.yaml --set train.epochs=2 --resume auto >b.log 2>&1 || { cat b.log; fail "the resumed session"; }
after=$(date -u +%s)
ARGS='["train", "j.yaml", "--set", "train.epochs=2", "--resume", "auto"]' RESUMED="{\"epoch\": 1, \"step\": $step}" \
  check runs/j/run.json 2 || fail "run.json of the resumed session"
python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a["sessions"][0] != b["sessions"][0])' \
  first.json runs/j/run.json || fail "the resumed session changed the first session's entry"

echo '{"sessions": "edited by hand"}' > runs/j/run.json
cp runs/j/run.json edited.json
expect_fail 1 "runs/j/run.json" "not a run.json" -- train j.yaml --set train.epochs=3 --resume auto
cmp -s edited.json runs/j/run.json || fail "a refused run.json was changed"
echo "run_json: 1 passed, 0 failed"
