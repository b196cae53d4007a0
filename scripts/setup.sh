#!/usr/bin/env bash
# Installs the Debian packages dp-engine needs (only those missing), then configures and builds.
#   scripts/setup.sh [BUILD_DIR] [extra meson options...]
# CUDA is used when nvcc is found (PATH or /usr/local/cuda/bin); DP_CUDA=enabled|disabled|auto
# overrides. Set DP_SETUP_PYTHON=1 to also install Debian's PyTorch for goldens and benchmarks,
# DP_SETUP_CHROMIUM=1 Debian's chromium (headless) for the report test (tests/tools/report_real_images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true

packages=(build-essential meson ninja-build pkg-config ccache python3
  libopenblas-dev libfmt-dev libgtest-dev libbenchmark-dev
  libturbojpeg0-dev libjpeg62-turbo-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libhdf5-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libcsv-dev libxml2-dev libssl-dev  # the relabel file's CSV; dp-inspect's HTML report and its base64
  libopenmpi-dev openmpi-bin
  patchelf)  # patchelf: scripts/gpu_kit_build.sh points the kit's binaries at its lib/
if [ "${DP_SETUP_PYTHON:-0}" = 1 ]; then
  packages+=(python3-torch python3-torchvision python3-h5py python3-numpy python3-pil)
fi
if [ "${DP_SETUP_CHROMIUM:-0}" = 1 ]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cuda=${DP_CUDA:-auto}

if command -v ccache >/dev/null 2>&1; then
  export CC="ccache gcc" CXX="ccache g++"
fi

if [ -f "$build_dir/build.ninja" ]; then
  meson configure "$build_dir" -Dcuda="$cuda" "$@" >/dev/null
else
  meson setup "$build_dir" -Dcuda="$cuda" "$@" >/dev/null
fi
ninja -C "$build_dir" ${DP_BUILD_JOBS:+-j "$DP_BUILD_JOBS"}
