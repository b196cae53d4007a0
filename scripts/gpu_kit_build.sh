#!/usr/bin/env bash
# Builds the GPU validation kit HERE (a machine with the CUDA toolkit and Debian's -dev
# packages) and packs it into .kit/ for the GPU machine, which has a driver, nvcc and Python
# wheels of cuBLAS/cuDNN/NCCL but no -dev libraries, gtest, OpenBLAS or fmt.
#
#   bash scripts/gpu_kit_build.sh          # then carry .kit to the device and run
#   bash scripts/gpu_kit_run.sh            # (on the GPU machine, from the repository root)
#
# .kit/kit.tar.xz holds bin/ (every test and benchmark executable of the kit build) and lib/
# (the shared libraries they need that the GPU machine lacks: OpenBLAS and its gfortran/quadmath,
# fmt, benchmark, cudart; libstdc++/libgcc_s as a fallback). The binaries need glibc >= 2.34. cuBLAS, cuBLASLt and cuDNN are NOT packed: they
# come from the PyTorch wheels on the device (same sonames: libcublas.so.13, libcublasLt.so.13,
# libcudnn.so.9). The archive must stay under 60 MiB (64 MiB may be carried).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-kit}
ARCH=${GPU_ARCH:-90}
KIT=.kit
LIMIT_MIB=60

if [[ ! -f $BUILD/build.ninja ]]; then
  meson setup "$BUILD" -Dcuda=enabled -Dgpu_kit=true -Dgpu_arch="$ARCH" -Dbuildtype=release
fi
ninja -C "$BUILD"

# Every executable of the kit build (tests and benchmarks), from Meson's own target list.
mapfile -t exes < <(meson introspect --targets "$BUILD" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable":
        for f in t["filename"]:
            print(f)')

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"

# Provided by the device: glibc and the loader, and the CUDA libraries of the wheels.
skip_re='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libcublas|libcublasLt|libcudnn|libnccl|libcuda\.so)'
declare -A packed=()
missing=0
for exe in "${exes[@]}"; do
  name=$(basename "$exe")
  if [[ -e $stage/bin/$name ]]; then echo "duplicate executable name: $name" >&2; exit 1; fi
  cp "$exe" "$stage/bin/$name"
  strip --strip-unneeded "$stage/bin/$name" 2>/dev/null || true
  # Nothing that the device cannot provide may be linked (OpenCV, HDF5, TurboJPEG...).
  while read -r soname arrow path _; do
    [[ $arrow == "=>" ]] || continue
    [[ $soname =~ $skip_re ]] && continue
    if [[ $path == "not" ]]; then echo "unresolved here: $soname ($name)" >&2; missing=1; continue; fi
    case $soname in
      libopencv*|libhdf5*|libturbojpeg*|libjpeg*|libtbb*|libX*)
        echo "ERROR: $name links $soname, which the kit cannot carry" >&2; exit 1;;
    esac
    if [[ -z ${packed[$soname]:-} ]]; then
      # The C++ runtime goes to lib/fallback: the device's own is preferred (ours needs glibc
      # 2.36); gpu_kit_run.sh adds the fallback only when the binaries do not start without it.
      case $soname in
        libstdc++.so.*|libgcc_s.so.*) mkdir -p "$stage/lib/fallback"; cp -L "$path" "$stage/lib/fallback/$soname";;
        *) cp -L "$path" "$stage/lib/$soname";;
      esac
      packed[$soname]=1
    fi
  done < <(ldd "$exe")
done
[[ $missing == 0 ]] || exit 1

# The registered tests (whatever their executable names), for gpu_kit_run.sh.
meson introspect --tests "$BUILD" | python3 -c '
import json, os, sys
seen = []
for t in json.load(sys.stdin):
    name = os.path.basename(t["cmd"][0])
    if name not in seen:
        seen.append(name)
print("\n".join(seen))' > "$stage/bin/TESTS"

mkdir -p "$KIT"
rm -f "$KIT/kit.tar.xz"
tar -C "$stage" -cf - bin lib | xz -T2 -6 > "$KIT/kit.tar.xz"
git rev-parse HEAD > "$KIT/commit" 2>/dev/null || true
git status --short > "$KIT/status" 2>/dev/null || true

raw=$(du -sb "$stage" | cut -f1)
packed_bytes=$(stat -c %s "$KIT/kit.tar.xz")
echo "kit: ${#exes[@]} executables, libraries: ${!packed[*]}"
printf 'kit: %.1f MiB unpacked, %.1f MiB packed in %s/kit.tar.xz\n' \
  "$(echo "$raw / 1048576" | bc -l)" "$(echo "$packed_bytes / 1048576" | bc -l)" "$KIT"
if (( packed_bytes > LIMIT_MIB * 1048576 )); then
  echo "ERROR: the kit exceeds ${LIMIT_MIB} MiB" >&2
  exit 1
fi
