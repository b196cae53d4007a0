#!/usr/bin/env bash
# dp-train when the disk fails under it (issue 20). Each case resumes a one-epoch run for a second
# epoch while a write fails, and must end with exit 1 and one clear error (no HDF5 diagnostics, no
# crash), leave no temporary file, and leave the previous checkpoint as it was and loadable.
#   write_faults.sh injected  DP_TRAIN DP_EVAL   fsync, close, rename and folder-fsync failures
#                                                (DP_IO_FAULT, io/io_fault.h), of checkpoint.h5 and of config.toml,
#                                                and a failed append to metrics.jsonl
#   write_faults.sh full-disk DP_TRAIN DP_EVAL   a full disk: run.output on a small tmpfs (needs root
#                                                to mount it; skips, exit 77, where it cannot be mounted)
set -uo pipefail
mode=$1 train=$2 eval=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-write-faults-XXXXXX")
cleanup() { mountpoint -q "$tmp/disk" 2>/dev/null && umount "$tmp/disk"; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/run.toml" <<'TOML'
[data]
dataset = "synthetic"
synthetic_train_size = 256
synthetic_test_size = 64
image_size = 12
noise = "permute"
rand_fraction = 0.4
[model]
arch = "tiny-cnn"
[optim]
batch_size = 32
schedule = "constant"
[data_parameters]
learn_inst_parameters = true
[run]
epochs = 3
workers = 1
TOML

# expect_clean_failure CASE RUN_FOLDER TEXT: the resumed run in RUN_FOLDER failed as it must.
expect_clean_failure() {
  local name=$1 folder=$2 text=$3 status=$4
  [ "$status" = 1 ] || { cat "$tmp/$name.err"; fail "$name: exit $status, not 1"; }
  [ "$(grep -c '^dp-train: error:' "$tmp/$name.err")" = 1 ] || { cat "$tmp/$name.err"; fail "$name: not exactly one error"; }
  [ "$(wc -l < "$tmp/$name.err")" -le 2 ] || { cat "$tmp/$name.err"; fail "$name: more than the message and its hint"; }
  grep -q -- "$text" "$tmp/$name.err" || { cat "$tmp/$name.err"; fail "$name: the message does not say '$text'"; }
  local left
  left=$(find "$folder" -name '*.tmp*')
  [ -z "$left" ] || fail "$name: temporary files left behind: $left"
}

# The previous checkpoint: as it was, and it loads.
expect_previous_checkpoint() {
  local name=$1 folder=$2 before=$3
  [ "$(sha256sum < "$folder/checkpoint.h5")" = "$before" ] || fail "$name: checkpoint.h5 changed"
  "$eval" "$folder/checkpoint.h5" > "$tmp/$name.eval" 2>&1 || { cat "$tmp/$name.eval"; fail "$name: checkpoint.h5 does not load"; }
}

resume() {  # resume FOLDER [env...]: the second epoch of the run in FOLDER
  local folder=$1
  shift
  env "$@" "$train" "$tmp/run.toml" --quiet --set run.output="$folder" --set run.stop_epoch=2 \
    --resume "$folder/checkpoint.h5"
}

if [ "$mode" = injected ]; then
  "$train" "$tmp/run.toml" --quiet --set run.output="$tmp/base" --set run.stop_epoch=1 > "$tmp/base.log" 2>&1 ||
    { cat "$tmp/base.log"; fail "the first epoch failed"; }
  for fault in fsync close rename; do
    rm -rf "$tmp/$fault" && cp -r "$tmp/base" "$tmp/$fault"
    before=$(sha256sum < "$tmp/$fault/checkpoint.h5")
    resume "$tmp/$fault" DP_IO_FAULT="$fault:checkpoint.h5" > "$tmp/$fault.out" 2> "$tmp/$fault.err"
    expect_clean_failure "$fault" "$tmp/$fault" "cannot write $tmp/$fault/checkpoint.h5" $?
    expect_previous_checkpoint "$fault" "$tmp/$fault" "$before"
  done
  # The folder's fsync after the rename: the new checkpoint is in place (complete and synced), and
  # the run still stops, saying the disk needs a look.
  rm -rf "$tmp/dirsync" && cp -r "$tmp/base" "$tmp/dirsync"
  resume "$tmp/dirsync" DP_IO_FAULT=dirsync:checkpoint.h5 > "$tmp/dirsync.out" 2> "$tmp/dirsync.err"
  expect_clean_failure dirsync "$tmp/dirsync" "the fsync of its folder failed" $?
  "$eval" "$tmp/dirsync/checkpoint.h5" > /dev/null 2>&1 || fail "dirsync: the new checkpoint does not load"
  # config.toml: a fresh run stops before training; a resumed run keeps the folder's config.toml.
  DP_IO_FAULT=fsync:config.toml "$train" "$tmp/run.toml" --quiet --set run.output="$tmp/config" \
    > "$tmp/config.out" 2> "$tmp/config.err"
  status=$?
  [ ! -e "$tmp/config/checkpoint.h5" ] || fail "config: the run trained although config.toml could not be written"
  rm -rf "$tmp/config-resume" && cp -r "$tmp/base" "$tmp/config-resume"
  config_before=$(sha256sum < "$tmp/config-resume/config.toml")
  resume "$tmp/config-resume" DP_IO_FAULT=rename:config.toml > "$tmp/config-resume.out" 2> "$tmp/config-resume.err"
  expect_clean_failure config-resume "$tmp/config-resume" "cannot write $tmp/config-resume/config.toml" $?
  [ "$(sha256sum < "$tmp/config-resume/config.toml")" = "$config_before" ] || fail "config-resume: config.toml changed"
  expect_clean_failure config "$tmp/config" "cannot write $tmp/config/config.toml" "$status"
  # metrics.jsonl: a line that cannot be appended stops the run (it was lost without a word).
  rm -rf "$tmp/metrics" && cp -r "$tmp/base" "$tmp/metrics"
  before=$(sha256sum < "$tmp/metrics/checkpoint.h5")
  resume "$tmp/metrics" DP_IO_FAULT=write:metrics.jsonl > "$tmp/metrics.out" 2> "$tmp/metrics.err"
  expect_clean_failure metrics "$tmp/metrics" "cannot append to $tmp/metrics/metrics.jsonl" $?
  expect_previous_checkpoint metrics "$tmp/metrics" "$before"
  echo "injected fsync, close, rename, folder-fsync and metrics append failures: exit 1, one message, no temporary, the previous checkpoint loads"
  exit 0
fi

# A full disk: the first epoch fits, then the disk is filled but for 80 KB: enough for the second
# epoch's logs (a new TensorBoard event file with the σ figure: ~47 KB), not for its checkpoint
# (~114 KB).
mkdir -p "$tmp/disk"
if ! mount -t tmpfs -o size=1m tmpfs "$tmp/disk" 2> "$tmp/mount.err"; then
  echo "SKIP: cannot mount a small tmpfs to fill ($(cat "$tmp/mount.err")): run as root to test a full disk"
  exit 77
fi
run=$tmp/disk/run
"$train" "$tmp/run.toml" --quiet --set run.output="$run" --set run.stop_epoch=1 > "$tmp/base.log" 2>&1 ||
  { cat "$tmp/base.log"; fail "the first epoch failed"; }
free_kb=$(df -k --output=avail "$tmp/disk" | tail -1)
dd if=/dev/zero of="$tmp/disk/filler" bs=1k count=$((free_kb - 80)) status=none || fail "cannot fill the disk"
before=$(sha256sum < "$run/checkpoint.h5")
resume "$run" > "$tmp/full.out" 2> "$tmp/full.err"
expect_clean_failure full "$run" "the disk holding $run is full" $?
grep -q "needs about .* free" "$tmp/full.err" || { cat "$tmp/full.err"; fail "full: the message does not give the space needed and free"; }
expect_previous_checkpoint full "$run" "$before"
echo "full disk: exit 1, $(head -1 "$tmp/full.err")"
