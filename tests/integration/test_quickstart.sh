#!/usr/bin/env bash
# The quick start, as the README runs it: tools/quickstart.sh itself, in a
# scratch copy of the repository's layout (with this build's binary, so it
# skips the install and the build), writes a fresh phantom file and runs
# `mpirun -np 2 thorax train configs/quickstart.yaml`. The run directory must
# hold what DESIGN.md lists, and the best val macro AUC must exceed 0.85.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
mkdir -p repo/tools repo/configs
cp "$THORAX_SOURCE_DIR/tools/quickstart.sh" repo/tools/
cp "$THORAX_SOURCE_DIR/configs/quickstart.yaml" repo/configs/
start=$(date +%s)
repo/tools/quickstart.sh | tee train.log
echo "quick start took $(( $(date +%s) - start ))s"
run=$(ls -d "$WORK"/repo/runs/quickstart-*)
mkdir -p "$WORK/runs" && mv "$run" "$WORK/runs/qs" && run="$WORK/runs/qs"
cp -r repo/data "$WORK/data"
for f in config.yaml split.csv metrics.csv checkpoints/last.h5 checkpoints/best.h5; do
  [ -s "$run/$f" ] || fail "run directory lacks $f"
done
ls "$run" "$run/checkpoints" | grep -q '\.tmp$' && fail "a temporary file was left behind"
head -1 "$run/metrics.csv" | grep -qx \
  'epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds,ranks,val_auc_Pneumothorax,val_auc_Cardiomegaly,val_auc_Effusion,val_auc_Nodule' \
  || fail "metrics.csv header: $(head -1 "$run/metrics.csv")"
# Every row: 2 ranks, and the macro AUC is the mean of the four label AUCs.
tail -n +2 "$run/metrics.csv" | awk -F, '$9 != 2 { exit 1 }
  { m = ($10 + $11 + $12 + $13) / 4; d = m - $6; if (d > 2e-6 || d < -2e-6) exit 1 }' \
  || fail "metrics.csv: ranks or per-label AUCs do not fit the macro AUC"
head -1 "$run/split.csv" | grep -qx 'image,patient_id,split' || fail "split.csv header"
# The resolved config loads again on its own and names every section.
for k in name: seed: data: model: train: eval: runtime:; do grep -q "^$k" "$run/config.yaml" || fail "config.yaml lacks $k"; done
# No patient in two splits.
leaks=$(tail -n +2 "$run/split.csv" | awk -F, '{print $2","$3}' | sort -u | cut -d, -f1 | uniq -d | wc -l)
[ "$leaks" -eq 0 ] || fail "$leaks patients in more than one split"
best=$(tail -n +2 "$run/metrics.csv" | cut -d, -f6 | sort -g | tail -1)
echo "best val macro AUC: $best"
awk -v a="$best" 'BEGIN { exit !(a > 0.85) }' || fail "best val macro AUC $best is not above 0.85"
# MODEL_CARD.md: its sections, and numbers that must be those of split.csv and
# eval/test/metrics.json (the card prints 4 decimals).
card="$run/MODEL_CARD.md"
[ -s "$card" ] || fail "run directory lacks MODEL_CARD.md"
grep -q '^# Model card: quickstart' "$card" || fail "MODEL_CARD.md title"
for h in '## Data' '## Split' '## Network' '## Training' '## Evaluation' '### test' \
  '### val' '## Known limits'; do
  grep -qx -- "$h" "$card" || fail "MODEL_CARD.md lacks the line '$h'"
done
grep -q '^Leakage check: passed, 0 patients in more than one split\.$' "$card" || fail "MODEL_CARD.md leakage check"
grep -q '^- index SHA-256: `[0-9a-f]\{64\}`' "$card" || fail "MODEL_CARD.md index SHA-256"
grep -q "^- size: $(stat -c %s "$WORK/data/phantom.h5") bytes$" "$card" || fail "MODEL_CARD.md file size"
grep -q '^- ranks: 2, ' "$card" || fail "MODEL_CARD.md ranks"
for s in train val test; do
  col=$((${#s} == 5 ? 3 : ${#s} == 3 ? 4 : 5))   # train, val, test in "| row | train | val | test |"
  pat=$(awk -F, -v s=$s '$3 == s {print $2}' "$run/split.csv" | sort -u | wc -l)
  img=$(awk -F, -v s=$s '$3 == s' "$run/split.csv" | wc -l)
  cell() { awk -F'|' -v row="$1" -v c=$col '$2 == " " row " " {gsub(/ /, "", $c); print $c}' "$card"; }
  [ "$(cell patients)" = "$pat" ] || fail "MODEL_CARD.md: $s patients $(cell patients), split.csv $pat"
  [ "$(cell images)" = "$img" ] || fail "MODEL_CARD.md: $s images $(cell images), split.csv $img"
done
/usr/bin/python3 - "$card" "$run/eval/test/metrics.json" <<'PY' || fail "MODEL_CARD.md's test metrics differ from metrics.json"
import json, sys
card = open(sys.argv[1]).read().split("### test")[1].split("###")[0]
m = json.load(open(sys.argv[2]))["labels"]
lines = [r for r in card.splitlines() if r.startswith("| ")]
head = [h.strip() for h in lines[0].strip("| ").split(" | ")]
rows = [dict(zip(head, [c.strip() for c in r.strip("| ").split(" | ")])) for r in lines[1:]]
assert len(rows) == 4, rows
f4 = lambda v: "%.4f" % v
for r in rows:
    x = m[r["label"]]
    op = x["operating_point"]
    assert r["AUC"] == f4(x["auc"]) and r["AUC 95% CI"] == "%.4f-%.4f" % tuple(x["auc_ci"]), (r, x)
    assert r["CI method"] == {"patient_bootstrap": "patient bootstrap", "delong": "DeLong"}[x["ci_method"]], (r, x)
    assert int(r["n_pos"]) == x["n_pos"] and int(r["n_neg"]) == x["n_neg"], (r, x)
    assert r["threshold (chosen on)"] == f4(x["threshold"]) + " (val)" and op["chosen_on"] == "val", (r, x)
    assert r["sensitivity"] == f4(x["sensitivity"]) and r["specificity"] == f4(x["specificity"]), (r, x)
    assert r["PPV"] == f4(op["ppv"]["value"]) and r["NPV"] == f4(op["npv"]["value"]), (r, x)
    assert r["F1"] == f4(op["f1"]["value"]) and r["AP"] == f4(x["average_precision"]), (r, x)
    assert r["ECE"] == f4(x["calibration"]["ece"]) and r["Brier"] == f4(x["calibration"]["brier"]), (r, x)
PY
# A second run into the same directory is refused rather than overwriting it.
expect_fail 2 "already holds a run" -- "$THORAX_BIN" train "$THORAX_SOURCE_DIR/configs/quickstart.yaml" \
  --set runtime.out_dir="$WORK/runs" --set name=qs
echo "quickstart: 1 passed, 0 failed"
