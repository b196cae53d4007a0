#!/usr/bin/env bash
# The tools as a user runs them: dp-train on a small noisy synthetic run, dp-train refusing to
# reuse its folder (and --overwrite moving it aside), dp-inspect on its checkpoint (ranking CSV,
# detection metrics, σ figures, per-sample export), dp-eval's summary and JSON report, dp-export
# choosing the format by extension, --version everywhere, dp-train --help-config, and dp-train refusing a config mistake
# before any work, naming the key and the line.
#   cli_end_to_end.sh DP_TRAIN DP_INSPECT DP_EVAL DP_EXPORT DP_DEMO
set -euo pipefail
train=$1 inspect=$2 eval=$3 export=$4 demo=$5
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
# The configuration reference needs no config file.
"$train" --help-config > "$tmp/config.md" || fail "dp-train --help-config failed"
grep -q '^## \[data_parameters\]' "$tmp/config.md" && grep -q '`lr_inst_param`' "$tmp/config.md" ||
  fail "dp-train --help-config printed no reference: $(head -3 "$tmp/config.md")"

"$train" "$tmp/run.toml" --quiet > "$tmp/train.log"
grep -q "dp-inspect $tmp/run/checkpoint.h5" "$tmp/train.log" || fail "dp-train did not point to dp-inspect"
for f in checkpoint.h5 best.h5 metrics.jsonl; do [[ -s $tmp/run/$f ]] || fail "dp-train wrote no $f"; done
ls "$tmp"/run/tb/events.out.tfevents.* > /dev/null || fail "no TensorBoard event file"
[[ -s $tmp/run/config.toml ]] || fail "the run folder has no config.toml"

# A folder that holds a run is not reused: refused with the way out, best.h5 untouched.
cp "$tmp/run/best.h5" "$tmp/best-before.h5"
if "$train" "$tmp/run.toml" --quiet --set run.epochs=1 > "$tmp/again.log" 2>&1; then
  fail "dp-train reused a folder that holds a run"
fi
grep -q -- "--resume" "$tmp/again.log" && grep -q -- "--overwrite" "$tmp/again.log" ||
  fail "the refusal does not say what to do: $(cat "$tmp/again.log")"
cmp -s "$tmp/best-before.h5" "$tmp/run/best.h5" || fail "the refused run changed best.h5"
cp -r "$tmp/run" "$tmp/run2"
sed "s|$tmp/run\"|$tmp/run2\"|" "$tmp/run.toml" > "$tmp/run2.toml"
"$train" "$tmp/run2.toml" --quiet --overwrite --set run.epochs=1 > "$tmp/over.log"
ls -d "$tmp"/run2.replaced-* > /dev/null || fail "--overwrite did not move the old run aside"

"$inspect" "$tmp/run/checkpoint.h5" --top 3 --per-sample > "$tmp/inspect.log"
[[ -s $tmp/run/sigma_over_epochs.png ]] || fail "no σ-over-epochs picture"
[[ -s $tmp/run/sigma_over_epochs_noise_applied.png ]] || fail "no σ figure of the samples the noise touched"
[[ $(wc -l < "$tmp/run/sigma_ranking.csv") -eq 513 ]] || fail "ranking CSV does not list the 512 samples"
[[ $(wc -l < "$tmp/run/per_sample.csv") -eq 513 ]] || fail "per_sample.csv does not list the 512 samples"
head -1 "$tmp/run/per_sample.csv" | grep -q "^index,path,label,label_name,original_label,original_name,corrupted,mislabelled,sigma_inst,sigma_class,loss,prediction,prediction_name,margin,mean_train_loss$" ||
  fail "per_sample.csv columns: $(head -1 "$tmp/run/per_sample.csv")"
grep -q "kept their true class" "$tmp/inspect.log" || fail "dp-inspect does not say how many permuted samples kept their class"
auc=$(tr -d '\n ' < "$tmp/run/inspect.json" | sed -n 's/.*"wrong_labels":{[^}]*"roc_auc":\([0-9.]*\).*/\1/p')
[[ -n $auc ]] || fail "inspect.json has no roc_auc"
awk -v a="$auc" 'BEGIN { exit !(a > 0.6) }' || fail "ROC-AUC $auc: σ does not single out the corrupted samples"

"$eval" "$tmp/run/best.h5" --json "$tmp/eval.json" > "$tmp/eval.log"
grep -q '"confusion"' "$tmp/eval.json" || fail "dp-eval JSON has no confusion matrix"
grep -q "top-1" "$tmp/eval.log" && grep -q "worst classes" "$tmp/eval.log" || fail "dp-eval summary: $(cat "$tmp/eval.log")"
if grep -q '"confusion"' "$tmp/eval.log"; then fail "dp-eval printed the JSON without --json -"; fi

# dp-export: the extension decides the format; a contradicting --format is refused.
"$export" "$tmp/run/best.h5" -o "$tmp/model.h5" > /dev/null
[[ $(head -c 4 "$tmp/model.h5" | od -An -c | tr -d ' ') == '211HDF' ]] || fail "dp-export -o model.h5 did not write HDF5"
if "$export" "$tmp/run/best.h5" -o "$tmp/model.h5" --format safetensors > /dev/null 2>&1; then
  fail "dp-export wrote safetensors into a .h5 name"
fi

# Class-level runs are inspected too (class ranking by name, class σ figure).
"$train" "$tmp/run.toml" --quiet --set run.output="$tmp/class" --set run.epochs=2 \
  --set data_parameters.learn_inst_parameters=false --set data_parameters.learn_class_parameters=true > /dev/null
"$inspect" "$tmp/class/checkpoint.h5" > "$tmp/class.log" || fail "dp-inspect refused a class-level run: $(cat "$tmp/class.log")"
[[ -s $tmp/class/sigma_class_over_epochs.png ]] || fail "no class σ figure"
[[ $(wc -l < "$tmp/class/sigma_class_ranking.csv") -eq 11 ]] || fail "the class ranking does not list the 10 classes"

for tool in "$train" "$inspect" "$eval" "$export" "$demo"; do
  "$tool" --version | grep -q "commit" || fail "$tool --version does not name the commit"
done
"$demo" --help | grep -qi "usage" || fail "dp-demo --help printed no usage"

printf '[run]\noutput = "%s"\n[optim]\nlr = 0.1\nlearning_rate = 0.2\n' "$tmp/bad-run" > "$tmp/bad.toml"
if "$train" "$tmp/bad.toml" > "$tmp/bad.log" 2>&1; then fail "dp-train accepted an unknown key"; fi
grep -q "optim.learning_rate" "$tmp/bad.log" || fail "the error does not name the key: $(cat "$tmp/bad.log")"
grep -q "bad.toml:5" "$tmp/bad.log" || fail "the error does not name the line: $(cat "$tmp/bad.log")"
[[ ! -e $tmp/bad-run ]] || fail "work started despite the bad config"
echo "OK (ROC-AUC $auc)"
