#!/usr/bin/env bash
# Checks that a GPU kit carries what its executables need: with the kit unpacked, `ldd` of every
# executable in bin/ must resolve each shared library inside the kit's lib/, except
#   - glibc's own libraries (the GPU machine's glibc, >= 2.34), and
#   - the libraries the GPU machine provides: the CUDA wheels' cudart, cuBLAS, cuBLASLt, cuDNN and
#     NCCL, and the driver's libcuda (listed below, by soname), and the C++ runtime
#     (libstdc++, libgcc_s), which the kit also carries in lib/fallback in case the machine's is
#     older.
# Executables are checked as gpu_kit_run.sh runs them (LD_LIBRARY_PATH=lib), and the tools (dp-*)
# also with no LD_LIBRARY_PATH at all (they find lib/ through their $ORIGIN/../lib rpath).
#
#   scripts/gpu_kit_check.sh .kit/kit.tar.xz      # or an unpacked kit folder (bin/, lib/)
# Exit status 1 and one line per offending library when the kit is incomplete.
set -euo pipefail
kit=${1:?usage: gpu_kit_check.sh KIT.tar.xz|KIT_DIR}

if [[ -f $kit ]]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/dp-kit-check-XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  tar -C "$dir" -xJf "$kit"
else
  dir=$kit
fi
dir=$(cd "$dir" && pwd -P)
[[ -d $dir/bin && -d $dir/lib ]] || { echo "gpu_kit_check: $kit has no bin/ and lib/" >&2; exit 2; }

glibc_re='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|librt\.so\.1|libpthread\.so\.0|libresolv\.so\.2|libutil\.so\.1)$'
device_re='^(libcudart\.so\.13|libcublas\.so\.13|libcublasLt\.so\.13|libcudnn\.so\.9|libnccl\.so\.2|libcuda\.so\.1)$'
runtime_re='^(libstdc\+\+\.so\.6|libgcc_s\.so\.1)$'

bad=0 checked=0
# check EXE [env-prefix...]: one ldd run, every resolved library judged.
check() {
  local exe=$1 how=$2
  shift 2
  local out
  if ! out=$("$@" ldd "$exe" 2>&1); then
    echo "FAIL ($how): ldd $(basename "$exe"): $out" | head -3
    bad=1
    return
  fi
  while read -r soname arrow path _; do
    [[ $soname =~ $glibc_re ]] && continue
    [[ $arrow == "=>" ]] || continue
    if [[ $soname =~ $device_re ]]; then continue; fi
    if [[ $soname =~ $runtime_re ]]; then
      [[ -f $dir/lib/fallback/$soname ]] && continue
      echo "FAIL ($how): $(basename "$exe") needs $soname but the kit has no lib/fallback/$soname"
      bad=1
      continue
    fi
    if [[ $path == not ]]; then
      echo "FAIL ($how): $(basename "$exe") needs $soname, which is neither in the kit's lib/ nor provided by the GPU machine"
      bad=1
      continue
    fi
    local real
    real=$(readlink -f "$path")
    if [[ $real != "$dir/lib/"* ]]; then
      echo "FAIL ($how): $(basename "$exe") resolves $soname to $path, outside the kit's lib/"
      bad=1
    fi
  done <<< "$out"
  checked=$((checked + 1))
}

for exe in "$dir"/bin/*; do
  [[ -f $exe && -x $exe ]] || continue
  head -c 4 "$exe" | grep -q 'ELF' || continue
  check "$exe" "LD_LIBRARY_PATH=lib" env LD_LIBRARY_PATH="$dir/lib"
  case $(basename "$exe") in
    dp-*) check "$exe" "rpath only" env -u LD_LIBRARY_PATH ;;
  esac
done
if [[ $bad != 0 ]]; then
  echo "gpu_kit_check: the kit is incomplete (see above): pack the library into lib/ or link it statically" >&2
  exit 1
fi
echo "gpu_kit_check: OK, $checked ldd runs over $(ls "$dir/bin" | wc -l) files in bin/: every library is in the kit's lib/, glibc, or provided by the GPU machine"
