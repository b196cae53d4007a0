#!/usr/bin/env bash
# The curriculum report of a small real-image run (issue 23): tiny-cnn on the 600 imagenette-mini
# training photos from ../shared/data (224x224, some grey) with the reference's 40% permutation,
# 2 epochs; dp-inspect --report, then the page in headless Chromium: every image decoded
# (naturalWidth > 0) and no script error, as a checker placed first in the page writes into the
# DOM. Then the dataset moves away: the report still comes, with placeholders.
# Skips with a message without ../shared/data or without chromium (DP_SETUP_CHROMIUM=1 bash
# scripts/setup.sh installs Debian's).
#   report_real_images.sh DP_TRAIN DP_INSPECT
set -euo pipefail
train=$1 inspect=$2
shared=${DP_SHARED_DIR:-$(dirname "$0")/../../../shared}/data
[[ -f $shared/imagenette-mini.tar ]] || { echo "SKIP: no $shared/imagenette-mini.tar (../shared/data)"; exit 77; }
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n $browser ]] || { echo "SKIP: no chromium (DP_SETUP_CHROMIUM=1 bash scripts/setup.sh installs it)"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-report-real-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/data"
tar -xf "$shared/imagenette-mini.tar" -C "$tmp/data"
root=$(dirname "$(find "$tmp/data" -type d -name train | head -1)")
cat > "$tmp/run.toml" <<TOML
[data]
dataset = "imagefolder"
path = "$root"
image_size = 32
noise = "permute"
rand_fraction = 0.4
[model]
arch = "tiny-cnn"
[optim]
batch_size = 50
schedule = "constant"
[data_parameters]
learn_inst_parameters = true
lr_inst_param = 0.2
[run]
epochs = 2
workers = 2
eval_batch_size = 50
output = "$tmp/run"
TOML
"$train" "$tmp/run.toml" > "$tmp/train.log" || fail "dp-train: $(tail -5 "$tmp/train.log")"
"$inspect" "$tmp/run/checkpoint.h5" --report --report-samples 40 > "$tmp/inspect.log" ||
  fail "dp-inspect --report: $(cat "$tmp/inspect.log")"
page=$tmp/run/report.html
thumbs=$(grep -o 'data:image/jpeg;base64,' "$page" | wc -l)
[[ $thumbs == 80 ]] || fail "expected 80 thumbnails (40 distrusted, 40 trusted), found $thumbs"

# The checker runs first in the page: it records script errors, and after load counts the images
# and how many did not decode, into an element --dump-dom prints.
checker='<script>window.dpErrors=[];addEventListener("error",function(e){if(e instanceof ErrorEvent)dpErrors.push(e.message)},true);addEventListener("load",function(){var i=Array.from(document.images),b=i.filter(function(m){return !(m.complete&&m.naturalWidth>0)}).length,v=document.createElement("pre");v.id="dp-verdict";v.textContent="images="+i.length+" broken="+b+" errors="+dpErrors.length+" "+dpErrors.join("|");document.body.appendChild(v)})</script>'
awk -v c="$checker" '{ if (!done && (i = index($0, "<head>")) > 0) { $0 = substr($0, 1, i + 5) c substr($0, i + 6); done = 1 } print }' \
  "$page" > "$tmp/checked.html"
grep -q 'dpErrors' "$tmp/checked.html" || fail "the checker was not inserted"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
  --virtual-time-budget=10000 --dump-dom "file://$tmp/checked.html" > "$tmp/dom.html" 2> "$tmp/chromium.log" ||
  fail "chromium: $(tail -3 "$tmp/chromium.log")"
verdict=$(grep -o 'images=[0-9]* broken=[0-9]* errors=[0-9]*[^<]*' "$tmp/dom.html" || true)
[[ -n $verdict ]] || fail "the page's checker wrote no verdict (the page did not load?)"
echo "chromium: $verdict"
read -r images broken errors <<< "$(sed 's/images=\([0-9]*\) broken=\([0-9]*\) errors=\([0-9]*\).*/\1 \2 \3/' <<< "$verdict")"
(( images >= thumbs + 2 )) || fail "chromium saw $images images, the page has $thumbs thumbnails and the σ figures"
[[ $broken == 0 ]] || fail "$broken images did not decode"
[[ $errors == 0 ]] || fail "script errors: $verdict"

# The dataset moved: the report still comes, with placeholders and the reason.
mv "$root" "$tmp/moved"
"$inspect" "$tmp/run/checkpoint.h5" --report --report-samples 10 > "$tmp/moved.log" ||
  fail "dp-inspect --report without the dataset: $(cat "$tmp/moved.log")"
grep -q "dataset is not available" "$tmp/moved.log" || fail "no word about the missing dataset"
[[ $(grep -o 'dataset not available' "$page" | wc -l) == 20 ]] || fail "expected 20 placeholders"
echo "report of real images: OK"
