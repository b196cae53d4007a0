#!/usr/bin/env bash
# dp-train on the CPU, one process against 2 MPI ranks at the same global batch (issue 12): the
# same config, the same samples per step; 1 process with DP_NUM_THREADS=2 against 2 ranks with
# DP_NUM_THREADS=1 each (the same 2 cores). Prints the seconds of each epoch from metrics.jsonl
# and the 2-rank speed-up, runs alternating. Run it on a quiet machine.
#
#   bash bench/dist/cpu_ranks.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
build=${1:-build}
repeats=${2:-2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cpu_ranks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/run.toml" <<'TOML'
[data]
dataset = "synthetic"
synthetic_train_size = 2048
synthetic_test_size = 256
image_size = 32
[model]
arch = "wrn-16-2"
[optim]
batch_size = 128
lr = 0.05
schedule = "constant"
[data_parameters]
learn_inst_parameters = true
learn_class_parameters = true
[run]
epochs = 2
workers = 1
print_freq = 1000
TOML
epoch_seconds() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("type") == "epoch": print("%.2f" % r["seconds"], end=" ")' "$1/metrics.jsonl"; }
for i in $(seq 1 "$repeats"); do
  rm -rf "$tmp/one" "$tmp/two"
  DP_NUM_THREADS=2 "$build/tools/dp-train" "$tmp/run.toml" --set run.output="$tmp/one" --quiet > /dev/null
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x DP_NUM_THREADS=1 \
    "$build/tools/dp-train" "$tmp/run.toml" --set run.output="$tmp/two" --quiet > /dev/null
  one=$(epoch_seconds "$tmp/one"); two=$(epoch_seconds "$tmp/two")
  echo "repeat $i: epoch seconds, 1 process x 2 threads: $one| 2 ranks x 1 thread: $two| speed-up (last epoch): $(python3 -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print('%.2f' % (float(a[-1]) / float(b[-1])))" "$one" "$two")"
done
