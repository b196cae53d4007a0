#!/usr/bin/env python3
"""Counts test cases (not executables) in meson's JUnit log and prints
'N passed, N failed, N skipped'. Exit status 1 when anything failed or nothing ran."""
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1]
# meson's own exit status: an executable that crashed may leave no failing case in the log.
runner_status = int(sys.argv[2]) if len(sys.argv) > 2 else 0
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError) as err:
    print(f"no test log at {path}: {err}")
    print("0 passed, 1 failed, 0 skipped")
    sys.exit(1)

passed = failed = skipped = 0
failures = []
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
        failures.append(f"{case.get('classname')}.{case.get('name')}")
    elif case.find("skipped") is not None:
        skipped += 1
    else:
        passed += 1
if runner_status != 0 and failed == 0:
    failed = 1
    failures.append("a test executable failed outside any test case (see the meson log above)")
for name in failures:
    print(f"FAILED: {name}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed + failed == 0 else 0)
