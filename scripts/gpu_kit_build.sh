#!/usr/bin/env bash
# Builds the GPU validation kit HERE (a machine with the CUDA toolkit and Debian's -dev
# packages) and packs it into .kit/ for the GPU machine, which has a driver, nvcc and Python
# wheels of cuBLAS/cuDNN/NCCL but no -dev libraries, gtest, OpenBLAS or fmt.
#
#   bash scripts/gpu_kit_build.sh          # then carry .kit to the device and run
#   bash scripts/gpu_kit_run.sh            # (on the GPU machine: tests and benchmarks)
#   bash scripts/gpu_reproduce.sh          # (on the GPU machine: dp-train on noisy CIFAR-10)
#
# .kit/kit.tar.xz holds bin/ (every executable of the kit build: tests, benchmarks and the tools
# dp-train, dp-eval, dp-inspect, dp-export, dp-pack) and lib/ (the shared libraries they need that
# the GPU machine lacks: OpenBLAS and its gfortran/quadmath, fmt, toml++, benchmark, TBB, GLX and
# X11 for OpenCV core, cudart; libstdc++/libgcc_s in lib/fallback). The tools link HDF5, OpenCV
# core/imgproc, TurboJPEG, libjpeg, libpng and zlib statically (data/meson.build); every binary
# finds lib/ through its rpath ($ORIGIN/../lib, set with patchelf). The binaries need glibc >= 2.34. cuBLAS, cuBLASLt, cuDNN and NCCL are NOT
# packed: they come from the PyTorch wheels on the device (same sonames).
# .kit/cifar10-packed/ holds CIFAR-10 packed by dp-pack (data/packed.h) from ../shared/data: the
# whole test split and the first KIT_TRAIN_PER_CLASS training images of each class in CIFAR's
# original order, with the CIFAR-10N label columns. The script ends with the ldd check
# (scripts/gpu_kit_check.sh) and fails when kit, data and working tree exceed the 64 MiB that one
# call may carry to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-kit}
ARCH=${GPU_ARCH:-90}
KIT=.kit
LIMIT_MIB=64
TRAIN_PER_CLASS=${KIT_TRAIN_PER_CLASS:-3500}

if [[ ! -f $BUILD/build.ninja ]]; then
  [[ -n ${CXX:-} ]] || ! command -v ccache >/dev/null || export CC="ccache gcc" CXX="ccache g++"
  # -Dmpi=disabled: Open MPI loads its components at run time from its own prefix, which the kit
  # does not carry; the one-GPU device needs no launcher.
  meson setup "$BUILD" -Dcuda=enabled -Dgpu_kit=true -Dmpi=disabled -Dgpu_arch="$ARCH" -Dbuildtype=release
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
  # Meson's build rpath names this machine's folders: the kit's binaries look in ../lib instead.
  patchelf --set-rpath '$ORIGIN/../lib' "$stage/bin/$name"
  # Nothing that the device cannot provide may be linked (OpenCV, HDF5, TurboJPEG...).
  while read -r soname arrow path _; do
    [[ $arrow == "=>" ]] || continue
    [[ $soname =~ $skip_re ]] && continue
    if [[ $path == "not" ]]; then echo "unresolved here: $soname ($name)" >&2; missing=1; continue; fi
    case $soname in  # their closures are too large to carry: the kit build links them statically
      libopencv*|libhdf5*|libturbojpeg*|libjpeg*|libgdal*|libcurl*)
        echo "ERROR: $name links $soname dynamically; the kit links it statically (data/meson.build)" >&2; exit 1;;
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
# The packed libraries find each other (OpenBLAS -> gfortran, GLX -> X11...) in their own folder:
# an executable's RUNPATH does not apply to its libraries' dependencies.
for lib in "$stage"/lib/*.so* "$stage"/lib/fallback/*.so*; do
  [[ -f $lib ]] && patchelf --set-rpath '$ORIGIN' "$lib"
done

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
# One solid stream with a dictionary larger than a binary: the tools and tests share most of
# their code, which then compresses once.
tar -C "$stage" -cf - bin lib | xz -T1 --lzma2=preset=6,dict=128MiB > "$KIT/kit.tar.xz"
git rev-parse HEAD > "$KIT/commit" 2>/dev/null || true
git status --short > "$KIT/status" 2>/dev/null || true

# ---- the data: CIFAR-10 packed by dp-pack (skipped without ../shared/data) ----
DATA=$KIT/cifar10-packed
SHARED=${DP_SHARED_DIR:-../shared}/data
stamp="train-per-class=$TRAIN_PER_CLASS"
if [[ ${KIT_DATA:-1} == 1 && -f $SHARED/cifar10-jpeg.tar ]]; then
  if [[ $(cat "$DATA/STAMP" 2>/dev/null) != "$stamp" ]]; then
    src=$(mktemp -d "${TMPDIR:-/tmp}/dp-kit-cifar-XXXXXX")
    tar -xf "$SHARED/cifar10-jpeg.tar" -C "$src"
    rm -rf "$DATA"
    "$BUILD/tools/dp-pack" "$src" -o "$DATA" --layout cifar10-jpeg --index-order "$SHARED/cifar10n-labels.csv" \
      --label-columns worse_label,aggre_label,random_label1 --train-per-class "$TRAIN_PER_CLASS"
    rm -rf "$src"
    echo "$stamp" > "$DATA/STAMP"
  fi
else
  echo "kit: no CIFAR-10 pack (KIT_DATA=0 or no $SHARED/cifar10-jpeg.tar); gpu_reproduce.sh needs one"
fi

raw=$(du -sb "$stage" | cut -f1)
packed_bytes=$(stat -c %s "$KIT/kit.tar.xz")
data_bytes=$(du -sb "$DATA" 2>/dev/null | cut -f1 || echo 0)
data_bytes=${data_bytes:-0}
# What else travels with a call: tracked and untracked-not-ignored files of the working tree.
tree_bytes=$(git ls-files -z -c -o --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total=$((packed_bytes + data_bytes + tree_bytes))
mib() { echo "$1 / 1048576" | bc -l | xargs printf '%.1f'; }
echo "kit: ${#exes[@]} executables, libraries: ${!packed[*]}"
echo "kit: $(mib "$raw") MiB unpacked, $(mib "$packed_bytes") MiB packed in $KIT/kit.tar.xz"
echo "kit: data $(mib "$data_bytes") MiB in $DATA, working tree $(mib "$tree_bytes") MiB; one call carries $(mib "$total") of $LIMIT_MIB MiB"

# ---- the ldd check, on the kit as the GPU machine unpacks it ----
bash scripts/gpu_kit_check.sh "$KIT/kit.tar.xz"

if (( total > LIMIT_MIB * 1048576 )); then
  echo "ERROR: kit + data + working tree exceed ${LIMIT_MIB} MiB: lower KIT_TRAIN_PER_CLASS" >&2
  exit 1
fi
