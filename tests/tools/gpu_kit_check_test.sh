#!/usr/bin/env bash
# The kit's ldd check (scripts/gpu_kit_check.sh) on a small kit made here from one tool: it passes
# when the tool's libraries are all in lib/, and fails, naming the library, when one is missing or
# when the tool cannot find lib/ without LD_LIBRARY_PATH. Then, when scripts/gpu_kit_build.sh has
# built a kit (.kit/kit.tar.xz), the check on that kit.
#   gpu_kit_check_test.sh TOOL      (a dp-* executable of this build)
set -euo pipefail
tool=$1
root=${DP_SOURCE_DIR:?}
check=$root/scripts/gpu_kit_check.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dp-kit-check-test-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v patchelf >/dev/null || { echo "SKIP: no patchelf (scripts/setup.sh installs it)"; exit 77; }

mkdir -p "$tmp/kit/bin" "$tmp/kit/lib/fallback"
cp "$tool" "$tmp/kit/bin/"
exe=$tmp/kit/bin/$(basename "$tool")
patchelf --set-rpath '$ORIGIN/../lib' "$exe"
while read -r soname arrow path _; do
  [[ $arrow == "=>" && $path == /* ]] || continue
  case $soname in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcu*|libnccl*) ;;
    libstdc++*|libgcc_s*) cp -L "$path" "$tmp/kit/lib/fallback/$soname" ;;
    *) cp -L "$path" "$tmp/kit/lib/$soname" ;;
  esac
done < <(ldd "$tool")
for lib in "$tmp"/kit/lib/*.so* "$tmp"/kit/lib/fallback/*.so*; do patchelf --set-rpath '$ORIGIN' "$lib"; done
bash "$check" "$tmp/kit" > "$tmp/ok.log" 2>&1 || fail "the check refused a complete kit: $(cat "$tmp/ok.log")"

victim=$(ls "$tmp/kit/lib" | grep -v fallback | head -1)
[[ -n $victim ]] || fail "$(basename "$tool") needs no packed library: pick a tool that does"
mv "$tmp/kit/lib/$victim" "$tmp/"
if bash "$check" "$tmp/kit" > "$tmp/missing.log" 2>&1; then fail "the check passed a kit without $victim"; fi
grep -q "$victim" "$tmp/missing.log" || fail "the check does not name $victim: $(cat "$tmp/missing.log")"
mv "$tmp/$victim" "$tmp/kit/lib/"

patchelf --remove-rpath "$exe"
if bash "$check" "$tmp/kit" > "$tmp/norpath.log" 2>&1; then fail "the check passed a tool that needs LD_LIBRARY_PATH"; fi
grep -q "rpath only" "$tmp/norpath.log" || fail "the check does not say the rpath run failed: $(cat "$tmp/norpath.log")"

if [[ -f $root/.kit/kit.tar.xz ]]; then
  bash "$check" "$root/.kit/kit.tar.xz" || fail "the built kit .kit/kit.tar.xz fails the check"
else
  echo "no .kit/kit.tar.xz (scripts/gpu_kit_build.sh not run): checked the small kit only"
fi
echo "OK"
