# Sourced ON THE GPU MACHINE by gpu_kit_run.sh and gpu_reproduce.sh (from the repository root,
# .kit carried): unpacks .kit/kit.tar.xz into $KIT_DIR (default /tmp/dp-gpu-kit) and sets
# LD_LIBRARY_PATH to the kit's lib/ and the NVIDIA wheels' lib folders (cuBLAS, cuDNN, NCCL,
# cudart), adding the kit's C++ runtime (lib/fallback) only when the binaries do not start with
# the machine's own. Defines kit_log. Needs ROOT (the repository root) and START (date +%s).
KIT_WORK=${KIT_DIR:-${TMPDIR:-/tmp}/dp-gpu-kit}

kit_log() { echo "[kit $(($(date +%s) - START))s] $*"; }

rm -rf "$KIT_WORK" && mkdir -p "$KIT_WORK"
if [[ ! -f $ROOT/.kit/kit.tar.xz ]]; then
  echo "no .kit/kit.tar.xz: run scripts/gpu_kit_build.sh on the build machine and carry .kit" >&2
  exit 2
fi
if command -v xz >/dev/null 2>&1; then
  tar -C "$KIT_WORK" -xJf "$ROOT/.kit/kit.tar.xz"
else
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$ROOT/.kit/kit.tar.xz" "$KIT_WORK"
fi
[[ -f $ROOT/.kit/commit ]] && kit_log "kit built from $(cat "$ROOT/.kit/commit") (+ uncommitted changes listed in .kit/status)"

# ---- libraries: the kit's, then the NVIDIA wheels' (cuBLAS, cuDNN, NCCL, cudart) ----
kit_wheel_dirs=""
for py in python3 /opt/torch/.venv/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || [[ -x $py ]] || continue
  kit_wheel_dirs=$("$py" - <<'PY' 2>/dev/null
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
  [[ -n $kit_wheel_dirs ]] && break
done
if [[ -z $kit_wheel_dirs ]]; then  # last resort: the known venv layout
  kit_wheel_dirs=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | paste -sd: -)
fi
export LD_LIBRARY_PATH="$KIT_WORK/lib${kit_wheel_dirs:+:$kit_wheel_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Prefer the device's C++ runtime; fall back to the kit's (built on Debian 12: needs glibc 2.36).
kit_probe=$KIT_WORK/bin/test_cuda_runtime
[[ -x $kit_probe ]] || kit_probe=$KIT_WORK/bin/dp-train
if ! kit_probe_out=$("$kit_probe" --help 2>&1 >/dev/null); then
  kit_log "binaries do not start with the device's C++ runtime (${kit_probe_out:0:200}); using the kit's"
  export LD_LIBRARY_PATH="$KIT_WORK/lib/fallback:$LD_LIBRARY_PATH"
  kit_probe_out=$("$kit_probe" --help 2>&1 >/dev/null) ||
    kit_log "STILL FAILING TO START: $kit_probe_out (the device's glibc must be >= 2.34)"
fi
kit_log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export DP_SOURCE_DIR=$ROOT
if [[ -d $ROOT/../shared ]]; then export DP_SHARED_DIR=$ROOT/../shared; else export DP_SHARED_DIR=$ROOT/shared; fi
