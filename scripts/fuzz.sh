#!/usr/bin/env bash
# libFuzzer harnesses of tests/fuzz, built with clang + ASan/UBSan in build-fuzz/:
#   scripts/fuzz.sh smoke [RUNS]      each harness for RUNS inputs (default 3000): CI's check
#   scripts/fuzz.sh campaign [RUNS]   each harness for RUNS inputs (default 1000000), corpus kept
# Seeds: the test goldens, configs/, and (when present) files from ../shared/data. Prints the
# executions per harness; any crash, sanitizer report or broken property fails the script and
# leaves the input as build-fuzz/fuzz-artifacts/<harness>-crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
runs=${2:-}
[ -n "$runs" ] || { [ "$mode" = campaign ] && runs=1000000 || runs=3000; }
build=build-fuzz
shared=${DP_SHARED_DIR:-../shared}/data
harnesses=(fuzz_jpeg fuzz_config fuzz_safetensors fuzz_checkpoint fuzz_cifar fuzz_label_csv)

# clang and its libFuzzer runtime, from Debian, only for this path (scripts/setup.sh installs the rest).
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -f "$build/build.ninja" ]; then
  CC="ccache clang" CXX="ccache clang++" meson setup "$build" -Dcuda=disabled -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$build" ${DP_BUILD_JOBS:+-j "$DP_BUILD_JOBS"} "${harnesses[@]/#/tests/fuzz/}" >/dev/null

seeds=$build/fuzz-seeds
rm -rf "$seeds" && mkdir -p "$seeds"
for h in "${harnesses[@]}"; do mkdir -p "$seeds/$h"; done
cp configs/*.toml "$seeds/fuzz_config/"
# Only the checksummed format: HDF5 1.10 itself overflows a heap buffer on some damaged files of
# the old unchecksummed format (notes/robustness.md), which dp-engine cannot prevent.
cp tests/app/golden/checkpoint_v1.h5 tests/app/golden/checkpoint_v1_mid_epoch.h5 "$seeds/fuzz_checkpoint/"
if [ -d "$shared" ]; then
  tar -xf "$shared/jpeg-testimages.tar" -C "$seeds/fuzz_jpeg" --wildcards '*.jp*g' 2>/dev/null || true
  tar -xf "$shared/cifar10-jpeg.tar" -C "$seeds/fuzz_jpeg" --wildcards 'test/cat/000*.jpg' 2>/dev/null || true
  find "$seeds/fuzz_jpeg" -type f -size +200k -delete   # small inputs keep the fuzzer fast
  head -12 "$shared/cifar10n-labels.csv" > "$seeds/fuzz_label_csv/cifar10n-head.csv"
fi
# Small valid inputs the harnesses accept, written here (no binary files in the repository).
python3 - "$seeds" <<'PY'
import json, os, struct, sys, random
seeds = sys.argv[1]
rng = random.Random(1)
with open(os.path.join(seeds, "fuzz_label_csv", "keyed.csv"), "w") as f:
    f.write("orig_index,label\n" + "".join(f"{i},{(i * 3) % 10}\n" for i in (7, 1, 2, 0, 4, 5, 6, 3)))
with open(os.path.join(seeds, "fuzz_label_csv", "rows.csv"), "w") as f:
    f.write("label,orig_index\n" + "".join(f"{i % 10},{i}\n" for i in range(8)))
with open(os.path.join(seeds, "fuzz_cifar", "three.bin"), "wb") as f:
    for label in (3, 9, 0):
        f.write(bytes([label]) + bytes(rng.randrange(256) for _ in range(3072)))
header = {"__metadata__": {"format": "pt"},
          "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "b": {"dtype": "BF16", "shape": [3], "data_offsets": [24, 30]}}
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(seeds, "fuzz_safetensors", "small.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + struct.pack("<6f", *range(6)) + b"\x80\x3f" * 3)
PY

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$build/fuzz-artifacts"
status=0
for h in "${harnesses[@]}"; do
  corpus=$build/fuzz-corpus/$h
  [ "$mode" = campaign ] || rm -rf "$corpus"
  mkdir -p "$corpus"
  log=$build/fuzz-artifacts/$h.log
  if "$build/tests/fuzz/$h" -runs="$runs" -max_len=65536 -rss_limit_mb=4096 -timeout=30 \
       -artifact_prefix="$build/fuzz-artifacts/$h-" "$corpus" "$seeds/$h" > "$log" 2>&1; then
    echo "fuzz: $h: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)"
  else
    echo "fuzz: $h: FAILED (see $log)"; tail -30 "$log"; status=1
  fi
done
exit $status
