#!/usr/bin/env bash
# One writer per run folder (issue 20), with real processes: while a run trains, a second dp-train
# on its folder (--resume, a fresh start, --overwrite) is refused naming the first's process id and
# host, before its datasets are built, and nothing of the run is moved; two fresh starts at the same moment: one trains, the other
# is refused naming it; after a kill -9 the lock is taken over by the next --resume.
#   run_lock.sh DP_TRAIN
set -uo pipefail
train=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-run-lock-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
host=$(hostname)

cat > "$tmp/run.toml" <<'TOML'
[data]
dataset = "synthetic"
synthetic_train_size = 128
synthetic_test_size = 32
image_size = 8
[model]
arch = "tiny-cnn"
[optim]
batch_size = 32
schedule = "constant"
[run]
epochs = 100000
workers = 1
TOML
# A refused attempt ends at once; one that trains instead is stopped after 60 s (and fails the test).
run() { timeout -s KILL 60 "$train" "$tmp/run.toml" --quiet --set run.output="$tmp/$1" "${@:2}"; }
start() { local log=$1; shift; (exec "$train" "$tmp/run.toml" --quiet --set run.output="$tmp/$1" "${@:2}" > "$tmp/$log.log" 2>&1) & }  # $! = dp-train
wait_for() { for _ in $(seq 1 300); do [ -e "$1" ] && return 0; sleep 0.1; done; fail "no $1 after 30 s"; }

# refused NAME PID: the attempt logged in NAME.log ended with exit 1 and names process PID on this host.
refused() {
  [ "$2" = 1 ] || { cat "$tmp/$1.log"; fail "$1: exit $2, not 1"; }
  grep -q "is in use by another dp-train: pid $3 on host $host" "$tmp/$1.log" ||
    { cat "$tmp/$1.log"; fail "$1: the refusal does not name pid $3 on host $host"; }
}

start a a
a=$!
pids+=("$a")
wait_for "$tmp/a/checkpoint.h5"
run a --resume "$tmp/a/checkpoint.h5" > "$tmp/resume.log" 2>&1
refused resume $? "$a"
run a > "$tmp/fresh.log" 2>&1
refused fresh $? "$a"
run a --overwrite > "$tmp/overwrite.log" 2>&1
refused overwrite $? "$a"
ls -d "$tmp"/a.replaced-* > /dev/null 2>&1 && fail "--overwrite moved a running run's folder aside"
# The lock comes before the datasets are built (minutes of folder scan at ImageNet scale): a resume
# whose data would not even load is refused for the lock, not for the data.
run a --resume "$tmp/a/checkpoint.h5" --set data.dataset=imagefolder --set data.path="$tmp/no-such-dataset" \
  > "$tmp/before-data.log" 2>&1
refused before-data $? "$a"
kill -0 "$a" 2>/dev/null || { cat "$tmp/a.log"; fail "the first run did not survive the refused attempts"; }

# The holder killed: its lock goes with it, and a resume takes the folder over.
kill -9 "$a"
wait "$a" 2>/dev/null
start takeover a --resume "$tmp/a/checkpoint.h5"
b=$!
pids+=("$b")
for _ in $(seq 1 300); do grep -q "pid $b " "$tmp/a/.dp-train.lock" 2>/dev/null && break; sleep 0.1; done
grep -q "pid $b on host $host" "$tmp/a/.dp-train.lock" || { cat "$tmp/takeover.log"; fail "the resume did not take the dead run's lock over"; }
kill -9 "$b"

# Two fresh starts at once: exactly one is refused, naming the other.
start twin1 twin
t1=$!
start twin2 twin
t2=$!
pids+=("$t1" "$t2")
for _ in $(seq 1 300); do
  kill -0 "$t1" 2>/dev/null && kill -0 "$t2" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$t1" 2>/dev/null; then winner=$t1 loser=$t2 log=twin2; else winner=$t2 loser=$t1 log=twin1; fi
wait "$loser"
refused "$log" $? "$winner"
kill -0 "$winner" 2>/dev/null || fail "neither of two fresh starts kept training"
echo "a running run's folder: --resume, a fresh start and --overwrite refused naming pid $a on $host; lock taken over after kill -9; two fresh starts: one trains, the other refused"
