#!/usr/bin/env bash
# Runs the GPU validation kit ON THE GPU MACHINE, from the repository root, after
# scripts/gpu_kit_build.sh packed .kit/ here and .kit was carried over:
#
#   bash scripts/gpu_kit_run.sh
#
# Unpacks .kit/kit.tar.xz, puts the kit's libraries and the cuBLAS/cuDNN/NCCL wheels' lib
# folders on LD_LIBRARY_PATH, prints nvidia-smi, runs every test binary (--gtest_brief=1),
# test_cuda_ops once more under compute-sanitizer memcheck, then the GPU benchmarks. One failing
# binary never stops the others. Logs go to $OUT (or .kit/out); a summary table comes last.
# Everything is bounded by a deadline (KIT_BUDGET_S, default 450 s) so the run ends within 8 min.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
START=$(date +%s)
BUDGET=${KIT_BUDGET_S:-450}
DEADLINE=$((START + BUDGET))
LOGS=${OUT:-$ROOT/.kit/out}
mkdir -p "$LOGS"
WORK=${KIT_DIR:-${TMPDIR:-/tmp}/dp-gpu-kit}
SUMMARY=()

log() { echo "[kit $(($(date +%s) - START))s] $*"; }

# ---- unpack ----
rm -rf "$WORK" && mkdir -p "$WORK"
if [[ ! -f .kit/kit.tar.xz ]]; then
  echo "no .kit/kit.tar.xz: run scripts/gpu_kit_build.sh on the build machine and carry .kit" >&2
  exit 2
fi
if command -v xz >/dev/null 2>&1; then
  tar -C "$WORK" -xJf .kit/kit.tar.xz
else
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .kit/kit.tar.xz "$WORK"
fi
[[ -f .kit/commit ]] && log "kit built from $(cat .kit/commit) (+ uncommitted changes listed in .kit/status)"

# ---- libraries: the kit's, then the NVIDIA wheels' (cuBLAS, cuDNN, NCCL, cudart) ----
wheel_dirs=""
for py in python3 /opt/torch/.venv/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || [[ -x $py ]] || continue
  wheel_dirs=$("$py" - <<'PY' 2>/dev/null
import glob, os
dirs = []
try:
    import nvidia
    for base in list(nvidia.__path__):
        for d in sorted(glob.glob(os.path.join(base, "**", "lib"), recursive=True)):
            if glob.glob(os.path.join(d, "lib*.so*")) and d not in dirs:
                dirs.append(d)
except Exception:
    pass
print(":".join(dirs))
PY
)
  [[ -n $wheel_dirs ]] && break
done
if [[ -z $wheel_dirs ]]; then  # last resort: the known venv layout
  wheel_dirs=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | paste -sd: -)
fi
export LD_LIBRARY_PATH="$WORK/lib${wheel_dirs:+:$wheel_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Prefer the device's C++ runtime; fall back to the kit's (built on Debian 12: needs glibc 2.36).
if ! probe=$("$WORK/bin/test_cuda_runtime" --gtest_list_tests 2>&1 >/dev/null); then
  log "binaries do not start with the device's C++ runtime (${probe:0:200}); using the kit's"
  export LD_LIBRARY_PATH="$WORK/lib/fallback:$LD_LIBRARY_PATH"
  probe=$("$WORK/bin/test_cuda_runtime" --gtest_list_tests 2>&1 >/dev/null) ||
    log "STILL FAILING TO START: $probe (the device's glibc must be >= 2.34)"
fi
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export DP_SOURCE_DIR=$ROOT
if [[ -d $ROOT/../shared ]]; then export DP_SHARED_DIR=$ROOT/../shared; else export DP_SHARED_DIR=$ROOT/shared; fi

nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.txt" || log "nvidia-smi failed"
log "library resolution of test_cuda_ops:"
ldd "$WORK/bin/test_cuda_ops" | grep -E "cublas|cudnn|cudart|openblas|fmt|not found" | tee "$LOGS/ldd.txt"

remaining() { echo $((DEADLINE - $(date +%s))); }

# run NAME LIMIT_S CMD...: runs with a timeout bounded by the deadline, logs, records a row.
run() {
  local name=$1 limit=$2
  shift 2
  local left
  left=$(remaining)
  if (( left < 15 )); then
    SUMMARY+=("$(printf '%-34s %-8s %6s %6s %6s %6s' "$name" "NOT RUN" - - - -)")
    log "$name: not run (deadline)"
    return
  fi
  (( limit > left )) && limit=$left
  log "$name (limit ${limit}s)"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  local passed failed skipped status
  passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$LOGS/$name.log" | grep -oE '[0-9]+$' | tail -1)
  failed=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$LOGS/$name.log" | grep -oE '[0-9]+' | tail -1)
  skipped=$(grep -oE '\[  SKIPPED \] [0-9]+' "$LOGS/$name.log" | grep -oE '[0-9]+$' | tail -1)
  case $rc in
    0) status=ok ;;
    124 | 137) status=TIMEOUT ;;
    *) status="FAIL($rc)" ;;
  esac
  SUMMARY+=("$(printf '%-34s %-8s %6s %6s %6s %6s' "$name" "$status" "${passed:--}" "${failed:--}" "${skipped:--}" "$dt")")
  if [[ $rc != 0 ]]; then
    log "$name: $status; last lines:"
    tail -n 25 "$LOGS/$name.log"
  fi
}

# ---- tests: the CUDA ones first, then every other test binary ----
tests=()
for t in "$WORK"/bin/test_cuda_*; do [[ -x $t ]] && tests+=("$t"); done
while read -r name; do
  [[ -n $name && $name != test_cuda_* && -x $WORK/bin/$name ]] && tests+=("$WORK/bin/$name")
done < "$WORK/bin/TESTS"
for t in "${tests[@]}"; do
  run "$(basename "$t")" 150 "$t" --gtest_brief=1
done

# ---- memcheck on the CUDA op tests (cudnnFind's timing run excluded: slow under the tool) ----
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [[ -n $SAN && -x $WORK/bin/test_cuda_ops ]]; then
  run memcheck_test_cuda_ops "${KIT_MEMCHECK_LIMIT_S:-110}" "$SAN" --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$WORK/bin/test_cuda_ops" --gtest_brief=1 --gtest_filter='-*BenchmarkMode*'
  # The channels-last (NHWC) BN/pooling kernels and the layout conversions.
  [[ -x $WORK/bin/test_cuda_channels_last ]] &&
    run memcheck_test_cuda_channels_last "${KIT_MEMCHECK_LIMIT_S:-110}" "$SAN" --tool memcheck --error-exitcode 99 \
      --print-limit 20 "$WORK/bin/test_cuda_channels_last" --gtest_brief=1
else
  SUMMARY+=("$(printf '%-34s %-8s' memcheck_test_cuda_ops 'NO TOOL')")
fi

# ---- GPU benchmarks: the whole training step side by side with PyTorch, then per-op ----
if [[ -x $WORK/bin/bench_train_step_gpu ]]; then
  PY=$(command -v python3 || echo /opt/torch/.venv/bin/python3)
  run train_step_side_by_side "${KIT_STEP_LIMIT_S:-300}" "$PY" "$ROOT/bench/cuda/train_step_side_by_side.py" \
    --binary "$WORK/bin/bench_train_step_gpu"
  cat "$LOGS/train_step_side_by_side.log"
fi
if [[ -x $WORK/bin/bench_cuda_ops && ${KIT_SKIP_OPS_BENCH:-0} != 1 ]]; then
  run bench_cuda_ops 150 "$WORK/bin/bench_cuda_ops" --benchmark_min_time=0.05 \
    --benchmark_out="$LOGS/bench_cuda_ops.json" --benchmark_out_format=json
  grep -E "^(BM_|device|allocator)" "$LOGS/bench_cuda_ops.log" || true
fi

echo
echo "==== GPU kit summary ($(($(date +%s) - START)) s; logs in $LOGS) ===="
printf '%-34s %-8s %6s %6s %6s %6s\n' binary status passed failed skipped secs
for row in "${SUMMARY[@]}"; do echo "$row"; done | tee "$LOGS/summary.txt"
