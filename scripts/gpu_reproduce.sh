#!/usr/bin/env bash
# Reproduces the method on a GPU in one call (issue 14), ON THE GPU MACHINE, from the repository
# root, after scripts/gpu_kit_build.sh packed .kit/ here (kit + CIFAR-10 pack) and .kit was carried:
#
#   bash scripts/gpu_reproduce.sh
#
#  1. the PyTorch reference loop (bench/cuda/reference_train_loop.py: the reference's training
#     loop, torchvision-style Dataset over the packed file, DataLoader with 16 workers, WRN-28-10,
#     bf16 autocast, channels-last, instance-level data parameters) for REPRO_REF_EPOCHS epochs;
#  2. dp-train WRN-28-10, bf16, channels-last, on the packed CIFAR-10 with the reference's 40 %
#     image-permutation noise: a baseline run, then an instance-level run (lr_inst 0.2, init 1,
#     wd 0), both REPRO_EPOCHS epochs with the LR ×0.1 at 2/3 and 5/6 of them (the reference's
#     80 and 100 of 120), presets configs/cifar10-packed-noise40-wrn28-10-{baseline,inst}.toml;
#  3. dp-eval (last and best checkpoint) and dp-inspect on both runs;
#  while nvidia-smi samples GPU utilisation every REPRO_SAMPLE_S seconds.
# Results land in $OUT (or ./out-reproduce): results.json and results.md (the figures to paste
# into notes/gpu-validation.md), reproduce.log (everything printed) and runs.tar.gz (metrics,
# eval/inspect JSON, σ picture, GPU samples, reference JSON; no checkpoints).
#
# Variables: REPRO_EPOCHS (default 15: ~2 × 190 s at the H200's measured 4570 img/s bf16 step on
# 35,000 images), REPRO_REF_EPOCHS (2), REPRO_WORKERS (16), REPRO_BUDGET_S (540: every step's
# timeout is bounded by it, so the summary is always written), REPRO_DATA (.kit/cifar10-packed),
# REPRO_BIN (folder with dp-train etc.; default: the unpacked kit's bin/), REPRO_SAMPLE_S (0.5).
# REPRO_TINY=1: the whole script on the CPU in seconds (tiny-cnn / WRN-10-1, 2 epochs, a few
# batches), as tests/tools/gpu_reproduce_tiny.sh runs it; needs REPRO_BIN and REPRO_DATA.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
START=$(date +%s)
TINY=${REPRO_TINY:-0}
EPOCHS=${REPRO_EPOCHS:-15}
REF_EPOCHS=${REPRO_REF_EPOCHS:-2}
WORKERS=${REPRO_WORKERS:-16}
BUDGET=${REPRO_BUDGET_S:-540}
DEADLINE=$((START + BUDGET))
DATA=$(realpath -m "${REPRO_DATA:-$ROOT/.kit/cifar10-packed}")
OUTDIR=${OUT:-$ROOT/out-reproduce}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dp-reproduce-XXXXXX")
mkdir -p "$OUTDIR" "$WORK/files"
exec > >(tee "$OUTDIR/reproduce.log") 2>&1

log() { echo "[reproduce $(($(date +%s) - START))s] $*"; }
left() { echo $((DEADLINE - $(date +%s))); }
phase() { echo "$1 $2 $EPOCHREALTIME" >> "$WORK/files/phases.txt"; }  # NAME begin|end

if [[ -n ${REPRO_BIN:-} ]]; then
  BIN=$(realpath "$REPRO_BIN")
else
  source "$ROOT/scripts/gpu_kit_env.sh"  # unpacks the kit, sets LD_LIBRARY_PATH
  BIN=$KIT_WORK/bin
fi
for t in dp-train dp-eval dp-inspect; do
  [[ -x $BIN/$t ]] || { echo "no $BIN/$t: build the kit (scripts/gpu_kit_build.sh) or set REPRO_BIN" >&2; exit 2; }
done
[[ -f $DATA/train.csv && -f $DATA/test.csv ]] ||
  { echo "no packed dataset in $DATA: scripts/gpu_kit_build.sh makes .kit/cifar10-packed (or set REPRO_DATA)" >&2; exit 2; }

if [[ $TINY == 1 ]]; then
  EPOCHS=2 REF_EPOCHS=1 WORKERS=2
  device=cpu
  overrides=(--set 'model.arch="tiny-cnn"' --set 'run.device="cpu"' --set 'run.precision="fp32"'
             --set 'run.memory_format="contiguous"' --set optim.batch_size=16 --set run.print_freq=2)
  ref_args=(--device cpu --arch wrn-10-1 --precision fp32 --contiguous --batch-size 16 --max-batches 3 --threads 2)
else
  device=cuda
  overrides=(--set run.print_freq=100)
  ref_args=(--device cuda --arch wrn-28-10 --precision bf16)
fi
m1=$(((2 * EPOCHS + 1) / 3)) m2=$(((5 * EPOCHS + 3) / 6))
((m1 < 1)) && m1=1
overrides+=(--set "run.epochs=$EPOCHS" --set "optim.milestones=[$m1, $m2]" --set "run.workers=$WORKERS"
            --set "data.path=\"$DATA\"")
log "data $DATA ($(($(wc -l < "$DATA/train.csv") - 1)) training, $(($(wc -l < "$DATA/test.csv") - 1)) test images);" \
    "$EPOCHS epochs, LR x0.1 at epochs $m1 and $m2; tools from $BIN; budget ${BUDGET}s"

# ---- GPU utilisation sampling (our runs and the reference's) ----
sampler=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L > "$WORK/files/nvidia-smi-L.txt" 2>&1; then
  cat "$WORK/files/nvidia-smi-L.txt"
  (
    while :; do
      s=$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
      echo "$EPOCHREALTIME, $s"
      sleep "${REPRO_SAMPLE_S:-0.5}"
    done
  ) > "$WORK/files/gpu_samples.csv" &
  sampler=$!
else
  log "no nvidia-smi: GPU utilisation is not sampled"
fi

# stamped NAME LIMIT CMD...: runs CMD under a timeout bounded by the deadline, every output line
# prefixed with its time (for the epoch-to-epoch wall clock), into $WORK/files/NAME.log.
stamped() {
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  if ((l < 20)); then log "$name: not run (deadline)"; echo "not run: deadline" > "$WORK/files/$name.log"; return 1; fi
  ((limit > l)) && limit=$l
  log "$name (limit ${limit}s): $*"
  phase "$name" begin
  timeout --kill-after=10 "$limit" "$@" 2>&1 | while IFS= read -r line; do
    printf '%s %s\n' "$EPOCHREALTIME" "$line"
  done > "$WORK/files/$name.log"
  local rc=${PIPESTATUS[0]}
  phase "$name" end
  grep -E "epoch [0-9]+/|error|Error|reference epoch|finished" "$WORK/files/$name.log" | cut -d' ' -f2- | tail -n 40
  ((rc == 0)) || log "$name: exit status $rc"
  return "$rc"
}

# ---- 1. the PyTorch reference loop ----
PY=""
for py in python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import torch, torchvision, PIL' 2>/dev/null; then PY=$py; break; fi
done
if [[ -n $PY ]]; then
  stamped reference $((TINY == 1 ? 300 : 150)) env PYTHONUNBUFFERED=1 "$PY" bench/cuda/reference_train_loop.py \
    --data "$DATA" --epochs "$REF_EPOCHS" --workers "$WORKERS" "${ref_args[@]}" --json "$WORK/files/reference.json"
else
  log "SKIPPED the PyTorch reference loop: no python3 with torch, torchvision and PIL"
  echo '{"skipped": "no python3 with torch, torchvision and PIL"}' > "$WORK/files/reference.json"
fi

# ---- 2. our two runs, same epochs ----
per_run=$(((DEADLINE - $(date +%s) - 60) / 2))
for run in baseline inst; do
  limit=$per_run
  [[ $run == inst ]] && limit=$(($(left) - 60))  # dp-eval and dp-inspect follow
  stamped "train_$run" "$limit" "$BIN/dp-train" "configs/cifar10-packed-noise40-wrn28-10-$run.toml" "${overrides[@]}" \
    --set "run.output=\"$WORK/runs/$run\""
  cp "$WORK/runs/$run/metrics.jsonl" "$WORK/files/metrics_$run.jsonl" 2>/dev/null
done
[[ -n $sampler ]] && kill "$sampler" 2>/dev/null

# ---- 3. dp-eval and dp-inspect on both ----
for run in baseline inst; do
  dir=$WORK/runs/$run
  for ck in checkpoint best; do
    [[ -f $dir/$ck.h5 ]] || continue
    timeout 60 "$BIN/dp-eval" "$dir/$ck.h5" --device "$device" --workers "$WORKERS" \
      --json "$WORK/files/eval_${run}_$ck.json" > "$WORK/files/eval_${run}_$ck.log" 2>&1 ||
      log "dp-eval $run/$ck.h5 failed: $(tail -3 "$WORK/files/eval_${run}_$ck.log")"
  done
  if [[ -f $dir/checkpoint.h5 ]]; then
    if timeout 60 "$BIN/dp-inspect" "$dir/checkpoint.h5" --top 10 > "$WORK/files/inspect_$run.log" 2>&1; then
      grep -iE "roc|precision" "$WORK/files/inspect_$run.log" | head -5
    elif [[ $run == baseline ]]; then  # expected: nothing to rank without learnt σ
      log "dp-inspect baseline: $(head -1 "$WORK/files/inspect_$run.log")"
    else
      log "dp-inspect $run failed: $(tail -3 "$WORK/files/inspect_$run.log")"
    fi
    for f in inspect.json sigma_over_epochs.png sigma_over_epochs.csv; do
      [[ -f $dir/$f ]] && cp "$dir/$f" "$WORK/files/${f%.*}_$run.${f##*.}"
    done
  fi
done

# ---- summary ----
SUMMARY_PY=${PY:-python3}
"$SUMMARY_PY" scripts/gpu_reproduce_summary.py "$WORK/files" --data "$DATA" --epochs "$EPOCHS" \
  --commit "$(cat .kit/commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --json "$OUTDIR/results.json" --markdown "$OUTDIR/results.md"
cat "$OUTDIR/results.md"
tar -C "$WORK" -czf "$OUTDIR/runs.tar.gz" files
rm -rf "$WORK"
log "done; results in $OUTDIR"
