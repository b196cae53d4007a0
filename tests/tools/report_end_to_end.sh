#!/usr/bin/env bash
# The curriculum loop as a user runs it on a small noisy synthetic run (issue 23): dp-inspect
# --report and --relabel, dp-train on the relabel file (the labels it trains on are the suggested
# ones, the dropped samples are gone), and a baseline's checkpoint (no data parameters): the report
# shows what exists, --relabel by σ says why it cannot and --rank-by another detector works.
#   report_end_to_end.sh DP_TRAIN DP_INSPECT
set -euo pipefail
train=$1 inspect=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-report-e2e-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3) || { echo "SKIP: no python3 to read the CSV files"; exit 77; }

# The quickstart (synthetic data, 40% permutation noise, instance parameters), made small.
run=(--set data.synthetic_train_size=512 --set data.synthetic_test_size=64 --set data.image_size=12
     --set optim.schedule=constant --set run.epochs=6 --set run.workers=1)
"$train" "${DP_SOURCE_DIR:?}/configs/quickstart.toml" "${run[@]}" --set "run.output=$tmp/run" > "$tmp/train.log"
"$inspect" "$tmp/run/checkpoint.h5" --report --relabel "$tmp/relabel.csv" --top-fraction 0.3 \
    --relabel-confidence 0 > "$tmp/inspect.log" ||
  fail "dp-inspect --report --relabel: $(cat "$tmp/inspect.log")"
[[ -s $tmp/run/report.html ]] || fail "no report.html in the run folder"
grep -q "most distrusted" "$tmp/run/report.html" || fail "the report has no grid"
grep -q "<script" "$tmp/run/report.html" && fail "the report carries a script"
grep -q "mean training loss" "$tmp/inspect.log" || fail "dp-inspect did not compare the detectors: $(cat "$tmp/inspect.log")"
grep -q "data.relabel_file=" "$tmp/inspect.log" || fail "dp-inspect did not give the retraining command"
head -1 "$tmp/relabel.csv" | grep -q "^index,path,label,label_name,suggested_label,suggested_name,action,sigma,rank$" ||
  fail "relabel header: $(head -1 "$tmp/relabel.csv")"

# Retrain on the cleaned labels (the command dp-inspect printed, into another folder).
"$train" "$tmp/run/config.toml" --set "data.relabel_file=$tmp/relabel.csv" --set "run.output=$tmp/cleaned" \
  --set run.epochs=1 > "$tmp/cleaned.log" || fail "dp-train on the relabel file: $(cat "$tmp/cleaned.log")"
"$inspect" "$tmp/cleaned/checkpoint.h5" --per-sample > "$tmp/cleaned-inspect.log"
"$py" - "$tmp/relabel.csv" "$tmp/cleaned/per_sample.csv" <<'PY' || fail "the cleaned run trains on other labels"
import csv, sys
plan = list(csv.DictReader(open(sys.argv[1])))
trained = list(csv.DictReader(open(sys.argv[2])))
kept = [r for r in plan if r["action"] != "drop"]
actions = {a: sum(r["action"] == a for r in plan) for a in ("keep", "relabel", "drop")}
assert actions["relabel"] > 0 and actions["drop"] > 0, actions
assert len(trained) == len(kept), (len(trained), len(kept))
for new, old in zip(trained, kept):
    want = old["suggested_label"] if old["action"] == "relabel" else old["label"]
    assert new["label"] == want, (new, old)
    assert new["path"] == old["path"], (new["path"], old["path"])
print("cleaned run: %d samples, %s" % (len(trained), actions))
PY

# A baseline (no data parameters): the report of what exists; --relabel by σ cannot, by loss can.
"$train" "$DP_SOURCE_DIR/configs/quickstart.toml" "${run[@]}" --set data_parameters.learn_inst_parameters=false \
  --set "run.output=$tmp/base" --set run.epochs=2 > "$tmp/base.log"
"$inspect" "$tmp/base/checkpoint.h5" --report > "$tmp/base-inspect.log" || fail "report of a baseline: $(cat "$tmp/base-inspect.log")"
grep -q "no learnt data parameters" "$tmp/base-inspect.log" || fail "no word about the missing σ"
grep -q "has no instance parameters" "$tmp/base/report.html" || fail "the baseline's report does not say σ is missing"
if "$inspect" "$tmp/base/checkpoint.h5" --relabel "$tmp/base.csv" > "$tmp/nosigma.log" 2>&1; then
  fail "--relabel by σ on a checkpoint without σ was accepted"
fi
grep -q "no detector 'sigma'" "$tmp/nosigma.log" && grep -q "mean_train_loss" "$tmp/nosigma.log" ||
  fail "the refusal does not name what is available: $(cat "$tmp/nosigma.log")"
[[ ! -e $tmp/base.csv ]] || fail "a refused relabel file was written"
"$inspect" "$tmp/base/checkpoint.h5" --relabel "$tmp/base.csv" --rank-by mean_train_loss > /dev/null
head -1 "$tmp/base.csv" | grep -q ",mean_train_loss,rank$" || fail "the score column is not the detector's"
echo "report end to end: OK"
