#!/usr/bin/env bash
# scripts/gpu_reproduce.sh end to end on the CPU in its tiny mode (REPRO_TINY=1: tiny-cnn, 2
# epochs; the PyTorch reference loop for 3 batches when Debian's torch is installed, skipped with a
# message otherwise) on a tiny pack made by dp-pack from ../shared/data's CIFAR-10 JPEGs
# (20 training and 10 test images per class). Checks that every step ran and the summary holds
# the figures the GPU run reports. Skips (exit 77) without ../shared/data.
#   gpu_reproduce_tiny.sh DP_TRAIN DP_EVAL DP_INSPECT DP_PACK
set -euo pipefail
train=$1 eval=$2 inspect=$3 pack=$4
shared=${DP_SHARED_DIR:-}/data
if [[ ! -f $shared/cifar10-jpeg.tar ]]; then
  echo "SKIP: no $shared/cifar10-jpeg.tar (../shared/data): the tiny reproduction needs real JPEGs"
  exit 77
fi
root=${DP_SOURCE_DIR:?}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-repro-tiny-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; [[ -f $tmp/out/reproduce.log ]] && tail -n 40 "$tmp/out/reproduce.log"; exit 1; }

tar -xf "$shared/cifar10-jpeg.tar" -C "$tmp" --wildcards 'train/*/00[01]?.jpg' 'test/*/000?.jpg'
"$pack" "$tmp" -o "$tmp/pack" > "$tmp/pack.log" || fail "dp-pack: $(cat "$tmp/pack.log")"
[[ $(($(wc -l < "$tmp/pack/train.csv") - 1)) -eq 200 ]] || fail "the tiny pack does not hold 200 training images"
mkdir -p "$tmp/bin"
for t in "$train" "$eval" "$inspect"; do ln -s "$(realpath "$t")" "$tmp/bin/$(basename "$t")"; done

REPRO_TINY=1 REPRO_BIN="$tmp/bin" REPRO_DATA="$tmp/pack" OUT="$tmp/out" REPRO_BUDGET_S=240 \
  bash "$root/scripts/gpu_reproduce.sh" > "$tmp/run.log" 2>&1 || fail "gpu_reproduce.sh exited with $?"
for f in results.json results.md reproduce.log runs.tar.gz; do [[ -s $tmp/out/$f ]] || fail "no $f in \$OUT"; done
python3 - "$tmp/out/results.json" <<'PY' || fail "results.json lacks figures"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["train_images"] == 200 and r["test_images"] == 100, r
for run in ("baseline", "inst"):
    s = r["runs"][run]
    assert s["epochs_done"] == 2, (run, s)
    for k in ("last_epoch_top1", "best_epoch_top1", "dp_eval_checkpoint_top1", "dp_eval_best_top1",
              "end_to_end_img_per_s_steady", "end_to_end_img_per_s_whole_run", "train_img_per_s_median"):
        assert k in s, (run, k, s)
assert "sigma_roc_auc" in r["runs"]["inst"], r["runs"]["inst"]
assert "inst_minus_baseline_last_epoch_top1" in r["goals"] and "sigma_roc_auc" in r["goals"], r["goals"]
ref = r["reference"]
assert "skipped" in ref or (ref["epochs"][0]["train_images"] == 48 and "end_to_end_vs_reference" in r["goals"]), ref
print("reference loop:", ref.get("skipped") or "%s img/s end to end" % ref["epochs"][0]["end_to_end_img_per_s"])
PY
# Listed to a file first: under pipefail, grep -q leaving early makes tar die of SIGPIPE.
tar -tzf "$tmp/out/runs.tar.gz" > "$tmp/runs.list"
grep -q "files/sigma_over_epochs_inst.png" "$tmp/runs.list" || fail "runs.tar.gz has no σ picture"
grep -q "SKIPPED the PyTorch reference loop\|reference epoch 1" "$tmp/out/reproduce.log" || fail "the reference step neither ran nor said why not"
echo "OK"
