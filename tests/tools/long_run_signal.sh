#!/usr/bin/env bash
# Long runs end to end (issue 20), as a cluster sends signals: SIGTERM from outside at a random
# step of a random epoch makes dp-train finish the step, save, say how to continue and exit 75;
# `--resume auto` then ends with checkpoint.h5 and best.h5 bit for bit those of an uninterrupted
# run, and metrics.jsonl holding each line once. A second signal ends dp-train at once; --resume
# auto on a finished run does nothing; a run stopped before its first step resumes from step 0.
#   long_run_signal.sh DP_TRAIN CHECKPOINT_DIFF
set -uo pipefail
train=$1 diff=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-long-run-XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cat > "$tmp/run.toml" <<'TOML'
[data]
dataset = "synthetic"
synthetic_train_size = 2048
synthetic_test_size = 64
image_size = 12
noise = "permute"
rand_fraction = 0.4
[model]
arch = "tiny-cnn"
[optim]
batch_size = 32
lr = 0.05
schedule = "multistep"
milestones = [2]
[data_parameters]
learn_inst_parameters = true
learn_class_parameters = true
[run]
epochs = 4
seed = 5
workers = 1
print_freq = 1
TOML
steps=256  # 4 epochs of 64
same_metrics() {  # metrics.jsonl of two runs, the wall-clock field aside
  cmp -s <(sed 's/"seconds":[^,}]*//' "$1/metrics.jsonl") <(sed 's/"seconds":[^,}]*//' "$2/metrics.jsonl")
}

"$train" "$tmp/run.toml" --set run.output="$tmp/straight" > "$tmp/straight.log" 2>&1 || { cat "$tmp/straight.log"; fail "the uninterrupted run failed"; }

# SIGTERM once the run has logged step k (random; where it lands is reported), then --resume auto.
k=$(( RANDOM % (steps / 2) + 10 ))  # the run must still be going when the signal comes
"$train" "$tmp/run.toml" --set run.output="$tmp/split" > "$tmp/split1.log" 2>&1 &
job=$!
for _ in $(seq 1 1500); do
  n=$(grep -c '"iteration"' "$tmp/split/metrics.jsonl" 2>/dev/null)
  [ "${n:-0}" -ge "$k" ] && break
  sleep 0.01
done
kill -TERM "$job"
wait "$job"
status=$?
[ "$status" = 75 ] || { cat "$tmp/split1.log"; fail "exit code $status after SIGTERM, expected 75"; }
grep -q "stopped by SIGTERM after global step" "$tmp/split1.log" || { cat "$tmp/split1.log"; fail "no stop message"; }
grep -q -- "--resume auto" "$tmp/split1.log" || { cat "$tmp/split1.log"; fail "the stop message does not say how to continue"; }
where=$(grep -o "after global step [0-9]* ([^)]*)" "$tmp/split1.log")
"$train" "$tmp/run.toml" --set run.output="$tmp/split" --resume auto > "$tmp/split2.log" 2>&1 \
  || { cat "$tmp/split2.log"; fail "--resume auto failed (stopped $where)"; }
grep -q "resumed from $tmp/split/checkpoint.h5" "$tmp/split2.log" || { cat "$tmp/split2.log"; fail "--resume auto did not resume"; }
for f in checkpoint.h5 best.h5; do
  "$diff" "$tmp/straight/$f" "$tmp/split/$f" --ignore config > "$tmp/diff.log" \
    || { cat "$tmp/diff.log"; fail "$f after the stop ($where) and --resume auto differs from the uninterrupted run's"; }
done
same_metrics "$tmp/straight" "$tmp/split" || fail "metrics.jsonl after the stop ($where) differs (a repeated or missing line)"

# --resume auto on a finished run: nothing to do, exit 0, nothing changed.
before=$(sha256sum "$tmp/split/checkpoint.h5")
"$train" "$tmp/run.toml" --set run.output="$tmp/split" --resume auto > "$tmp/again.log" 2>&1 || { cat "$tmp/again.log"; fail "--resume auto on a finished run failed"; }
[ "$(sha256sum "$tmp/split/checkpoint.h5")" = "$before" ] || fail "--resume auto on a finished run changed its checkpoint"
grep -q "has finished its 4 epochs already" "$tmp/again.log" || { cat "$tmp/again.log"; fail "--resume auto on a finished run does not say so"; }

# A second signal ends dp-train at once (SIGTERM's own exit status, 143), the first one alone does not.
"$train" "$tmp/run.toml" --set run.output="$tmp/twice" --set run.epochs=200 > "$tmp/twice.log" 2>&1 &
job=$!
for _ in $(seq 1 1500); do [ -s "$tmp/twice/metrics.jsonl" ] && break; sleep 0.01; done
kill -TERM "$job"; kill -TERM "$job"
wait "$job"
status=$?
[ "$status" = 143 ] || [ "$status" = 75 ] || { cat "$tmp/twice.log"; fail "two SIGTERMs: exit code $status"; }
# (75 when the first stop completed before the second signal arrived.)

# --resume auto in a folder a killed run left without a checkpoint: a new run there.
mkdir -p "$tmp/early"
cp "$tmp/straight/config.toml" "$tmp/early/config.toml"
echo '{"type": "iteration", "epoch": 1, "step": 1, "loss": 9}' > "$tmp/early/metrics.jsonl"
"$train" "$tmp/run.toml" --set run.output="$tmp/early" --set run.stop_epoch=1 --resume auto > "$tmp/early.log" 2>&1 \
  || { cat "$tmp/early.log"; fail "--resume auto in a folder without a checkpoint failed"; }
grep -q "holds no checkpoint yet, starting the run" "$tmp/early.log" || { cat "$tmp/early.log"; fail "no 'starting the run' line"; }
echo "stopped $where, resumed: checkpoint.h5, best.h5 and metrics.jsonl as the uninterrupted run's; finished run left alone; second signal; fresh start without a checkpoint"
