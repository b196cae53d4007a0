#!/usr/bin/env bash
# The data is part of the run (issue 20), as a user meets it: an image-folder run (PPM images),
# then its folder's images replaced by others under the same names (the same counts, classes and
# labels): --resume, dp-eval and dp-inspect --with-paths refuse, saying what differs, and go on
# with --allow-data-change (a warning); dp-eval refuses to score a synthetic-data model on an
# image folder.
#   data_fingerprint.sh DP_TRAIN DP_EVAL DP_INSPECT
set -uo pipefail
train=$1 eval=$2 inspect=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-fingerprint-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

ppm() {  # ppm FILE SIDE: a SIDE x SIDE binary PPM of random pixels
  { printf 'P6\n%d %d\n255\n' "$2" "$2"; head -c $(($2 * $2 * 3)) /dev/urandom; } > "$1"
}
for split in train val; do
  for cls in cat dog; do
    mkdir -p "$tmp/data/$split/$cls"
    for i in 0 1 2 3 4 5 6 7; do ppm "$tmp/data/$split/$cls/$i.ppm" 8; done
  done
done
cat > "$tmp/run.toml" <<TOML
[data]
dataset = "imagefolder"
path = "$tmp/data"
image_size = 8
[model]
arch = "tiny-cnn"
[optim]
batch_size = 8
schedule = "constant"
[data_parameters]
learn_inst_parameters = true
[run]
epochs = 2
workers = 1
output = "$tmp/run"
TOML
"$train" "$tmp/run.toml" --quiet --set run.stop_epoch=1 > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; fail "training failed"; }
"$eval" "$tmp/run/checkpoint.h5" > "$tmp/eval.log" 2>&1 || { cat "$tmp/eval.log"; fail "dp-eval refused the run's own data"; }
"$inspect" "$tmp/run/checkpoint.h5" --with-paths > "$tmp/inspect.log" 2>&1 ||
  { cat "$tmp/inspect.log"; fail "dp-inspect refused the run's own data"; }

# Other images under the same names: 9x9 instead of 8x8 (another file size).
for split in train val; do
  for cls in cat dog; do for i in 0 1 2 3 4 5 6 7; do ppm "$tmp/data/$split/$cls/$i.ppm" 9; done; done
done
expect_refusal() {  # expect_refusal NAME STATUS TEXT
  [ "$2" = 1 ] || { cat "$tmp/$1.log"; fail "$1: exit $2 on swapped data, not 1"; }
  grep -q -- "$3" "$tmp/$1.log" || { cat "$tmp/$1.log"; fail "$1: the refusal does not say '$3'"; }
  grep -q -- "--allow-data-change" "$tmp/$1.log" || { cat "$tmp/$1.log"; fail "$1: the refusal does not name --allow-data-change"; }
}
"$train" "$tmp/run.toml" --quiet --resume "$tmp/run/checkpoint.h5" > "$tmp/resume.log" 2>&1
expect_refusal resume $? "the training set's 16 samples have the same names and labels but other file sizes"
"$eval" "$tmp/run/checkpoint.h5" > "$tmp/eval-swapped.log" 2>&1
expect_refusal eval-swapped $? "the validation set's 16 samples have the same names and labels but other file sizes"
"$inspect" "$tmp/run/checkpoint.h5" --with-paths > "$tmp/inspect-swapped.log" 2>&1
expect_refusal inspect-swapped $? "the training set's 16 samples have the same names and labels but other file sizes"

# Meant: --allow-data-change goes on, with a warning.
"$train" "$tmp/run.toml" --quiet --resume "$tmp/run/checkpoint.h5" --allow-data-change > "$tmp/resume-allowed.log" 2>&1 ||
  { cat "$tmp/resume-allowed.log"; fail "--allow-data-change: the resume failed"; }
grep -q "warning: this is not the data" "$tmp/resume-allowed.log" || { cat "$tmp/resume-allowed.log"; fail "no warning"; }
"$eval" "$tmp/run/checkpoint.h5" --allow-data-change > "$tmp/eval-allowed.log" 2>&1 ||
  { cat "$tmp/eval-allowed.log"; fail "dp-eval --allow-data-change failed"; }
"$inspect" "$tmp/run/checkpoint.h5" --with-paths --allow-data-change > "$tmp/inspect-allowed.log" 2>&1 ||
  { cat "$tmp/inspect-allowed.log"; fail "dp-inspect --allow-data-change failed"; }

# A synthetic-data model scored on an image folder.
"$train" "$tmp/run.toml" --quiet --set data.dataset=synthetic --set data.path= --set run.output="$tmp/synthetic" \
  --set run.epochs=1 > "$tmp/synthetic.log" 2>&1 || { cat "$tmp/synthetic.log"; fail "the synthetic run failed"; }
"$eval" "$tmp/synthetic/checkpoint.h5" --data imagefolder --path "$tmp/data" > "$tmp/eval-other.log" 2>&1
expect_refusal eval-other $? 'data.dataset is "imagefolder", the run'"'"'s was "synthetic"'
echo "swapped images (same names and counts): --resume, dp-eval and dp-inspect refuse, --allow-data-change warns; a synthetic model on an image folder refused"
