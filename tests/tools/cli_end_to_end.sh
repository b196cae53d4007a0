#!/usr/bin/env bash
# The tools as a user runs them: dp-train on a small noisy synthetic run, dp-inspect on its
# checkpoint (ranking CSV, detection metrics, σ picture), dp-eval's JSON report, and dp-train
# refusing a config mistake before any work, naming the key and the line.
#   cli_end_to_end.sh DP_TRAIN DP_INSPECT DP_EVAL
set -euo pipefail
train=$1 inspect=$2 eval=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/run.toml" <<TOML
[data]
dataset = "synthetic"
synthetic_train_size = 512
synthetic_test_size = 64
image_size = 12
noise = "permute"
rand_fraction = 0.4
[model]
arch = "tiny-cnn"
[optim]
batch_size = 64
schedule = "constant"
[data_parameters]
learn_inst_parameters = true
lr_inst_param = 0.2
[run]
epochs = 6
output = "$tmp/run"
TOML
"$train" "$tmp/run.toml" --quiet > "$tmp/train.log"
grep -q "dp-inspect $tmp/run/checkpoint.h5" "$tmp/train.log" || fail "dp-train did not point to dp-inspect"
for f in checkpoint.h5 best.h5 metrics.jsonl; do [[ -s $tmp/run/$f ]] || fail "dp-train wrote no $f"; done
ls "$tmp"/run/tb/events.out.tfevents.* > /dev/null || fail "no TensorBoard event file"

"$inspect" "$tmp/run/checkpoint.h5" --top 3 > "$tmp/inspect.log"
[[ -s $tmp/run/sigma_over_epochs.png ]] || fail "no σ-over-epochs picture"
[[ $(wc -l < "$tmp/run/sigma_ranking.csv") -eq 513 ]] || fail "ranking CSV does not list the 512 samples"
auc=$(sed -n 's/.*"roc_auc": \([0-9.]*\).*/\1/p' "$tmp/run/inspect.json")
[[ -n $auc ]] || fail "inspect.json has no roc_auc"
awk -v a="$auc" 'BEGIN { exit !(a > 0.6) }' || fail "ROC-AUC $auc: σ does not single out the corrupted samples"

"$eval" "$tmp/run/best.h5" --json "$tmp/eval.json" > /dev/null
grep -q '"confusion"' "$tmp/eval.json" || fail "dp-eval JSON has no confusion matrix"

printf '[run]\noutput = "%s"\n[optim]\nlr = 0.1\nlearning_rate = 0.2\n' "$tmp/bad-run" > "$tmp/bad.toml"
if "$train" "$tmp/bad.toml" > "$tmp/bad.log" 2>&1; then fail "dp-train accepted an unknown key"; fi
grep -q "optim.learning_rate" "$tmp/bad.log" || fail "the error does not name the key: $(cat "$tmp/bad.log")"
grep -q "bad.toml:5" "$tmp/bad.log" || fail "the error does not name the line: $(cat "$tmp/bad.log")"
[[ ! -e $tmp/bad-run ]] || fail "work started despite the bad config"
echo "OK (ROC-AUC $auc)"
