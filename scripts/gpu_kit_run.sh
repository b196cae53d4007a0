#!/usr/bin/env bash
# Runs the GPU validation kit ON THE GPU MACHINE, from the repository root, after
# scripts/gpu_kit_build.sh packed .kit/ here and .kit was carried over:
#
#   bash scripts/gpu_kit_run.sh
#
# Unpacks .kit/kit.tar.xz, puts the kit's libraries and the cuBLAS/cuDNN/NCCL wheels' lib
# folders on LD_LIBRARY_PATH, prints nvidia-smi, runs every test binary (--gtest_brief=1),
# the op tests' CUDA cases (kernels_ops) once more under compute-sanitizer memcheck, then the GPU
# benchmarks. One failing
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
SUMMARY=()

# Unpack the kit and set LD_LIBRARY_PATH (shared with gpu_reproduce.sh).
source "$ROOT/scripts/gpu_kit_env.sh"
WORK=$KIT_WORK
log() { kit_log "$@"; }

nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.txt" || log "nvidia-smi failed"
log "library resolution of kernels_ops:"
ldd "$WORK/bin/kernels_ops" | grep -E "cublas|cudnn|cudart|openblas|fmt|not found" | tee "$LOGS/ldd.txt"

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

# ---- tests: the CUDA ones and the op tests first, then every other test binary ----
tests=()
for t in "$WORK"/bin/test_cuda_* "$WORK/bin/kernels_ops"; do [[ -x $t ]] && tests+=("$t"); done
while read -r name; do
  [[ -n $name && $name != test_cuda_* && $name != kernels_ops && -x $WORK/bin/$name ]] && tests+=("$WORK/bin/$name")
done < "$WORK/bin/TESTS"
for t in "${tests[@]}"; do
  run "$(basename "$t")" 150 "$t" --gtest_brief=1
done

# ---- memcheck on the op tests' CUDA cases: the device instances (*/cuda) and the CUDA-only
# suites (*Cuda.*: NHWC kernels in every dtype, bf16 mode, math modes); cudnnFind's timing run
# excluded (slow under the tool) ----
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [[ -n $SAN && -x $WORK/bin/kernels_ops ]]; then
  run memcheck_kernels_ops "${KIT_MEMCHECK_LIMIT_S:-200}" "$SAN" --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$WORK/bin/kernels_ops" --gtest_brief=1 --gtest_filter='*/cuda:*Cuda.*-*BenchmarkMode*'
else
  SUMMARY+=("$(printf '%-34s %-8s' memcheck_kernels_ops 'NO TOOL')")
fi

# ---- GPU benchmarks: the whole training step side by side with PyTorch, then per-op ----
if [[ -x $WORK/bin/bench_train_step_gpu ]]; then
  PY=$(command -v python3 || echo /opt/torch/.venv/bin/python3)
  run train_step_side_by_side "${KIT_STEP_LIMIT_S:-300}" "$PY" "$ROOT/bench/cuda/train_step_side_by_side.py" \
    --binary "$WORK/bin/bench_train_step_gpu" --torch-modes "${KIT_TORCH_MODES:-eager,graph,compile}" \
    --rows "${KIT_STEP_ROWS:-bf16:channels_last,tf32:contiguous}"
  cat "$LOGS/train_step_side_by_side.log"
fi
# Data-parallel overhead at world size 1 (issue 12: <= 2 % of the step): the step with a one-rank
# NCCL communicator (bucketed all-reduces from the backward hook, θ all-gathers; eager) against
# the plain eager step and the graphed step dp-train runs alone. WRN-28-10, bf16, channels-last.
if [[ -x $WORK/bin/bench_train_step_gpu && ${KIT_SKIP_DP_OVERHEAD:-0} != 1 ]]; then
  for mode in "none off" "nccl off" "none on"; do
    read -r sync graphs <<<"$mode"
    run "dp_overhead_sync_${sync}_graphs_${graphs}" 90 "$WORK/bin/bench_train_step_gpu" --net wrn-28-10 --batch 128 \
      --size 32 --classes 100 --precision bf16 --memory-format channels_last --data-params joint --sync "$sync" \
      --cuda-graphs "$graphs" --warmup 5 --iters 30
  done
  grep -h "^RESULT" "$LOGS"/dp_overhead_*.log | tee "$LOGS/dp_overhead.txt"
  awk '{for (i = 1; i <= NF; ++i) if ($i ~ /^(sync|graphs|step_ms)=/) { split($i, kv, "="); v[kv[1]] = kv[2] }
        ms[v["sync"] " " v["graphs"]] = v["step_ms"] }
       END { if (ms["none off"] > 0 && ms["nccl off"] > 0)
               printf "data-parallel overhead (1 rank, NCCL) vs eager: %+.1f %%; vs graphed: %+.1f %%\n",
                 100 * (ms["nccl off"] / ms["none off"] - 1), 100 * (ms["nccl off"] / ms["none on"] - 1) }' \
    "$LOGS/dp_overhead.txt" | tee -a "$LOGS/dp_overhead.txt"
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
