#!/usr/bin/env bash
# Runs the whole test suite of a configured build and prints the per-test-case totals last:
#   scripts/test.sh [BUILD_DIR] [extra `meson test` options...]
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true
rm -f "$build_dir/meson-logs/testlog.junit.xml"
meson test -C "$build_dir" --print-errorlogs --num-processes "${DP_TEST_JOBS:-2}" "$@"
status=$?
python3 scripts/junit_summary.py "$build_dir/meson-logs/testlog.junit.xml" "$status" || status=1
exit $status
