#!/usr/bin/env python3
"""Runs a GoogleTest executable on N MPI ranks for `meson test` (protocol: 'gtest') and merges the
ranks' JUnit files into the one meson reads, so scripts/test.sh counts each test case once:
a case passes only when it passed on every rank, fails when it failed on any (the failure names
the rank), and is skipped when rank 0 skipped it.

  mpirun_gtest.py MPIRUN NP TIMEOUT_S EXE [gtest args...] --gtest_output=xml:PATH   (meson adds the last)
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

mpirun, np, timeout_s, exe, *args = sys.argv[1:]
xml_path = None
rest = []
for a in args:
    if a.startswith("--gtest_output=xml:"):
        xml_path = a[len("--gtest_output=xml:"):]
    else:
        rest.append(a)
np = int(np)
base = xml_path or "mpirun_gtest.xml"
per_rank = [f"{base}.rank{r}" for r in range(np)]
for p in per_rank:
    if os.path.exists(p):
        os.remove(p)

# Each rank writes its own file: the shell expands Open MPI's rank variable on the rank.
cmd = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(np), "--bind-to", "none",
       "sh", "-c", f'exec "$0" "$@" --gtest_output=xml:{base}.rank$OMPI_COMM_WORLD_RANK', exe] + rest
try:
    status = subprocess.run(cmd, timeout=float(timeout_s)).returncode
except subprocess.TimeoutExpired:
    print(f"mpirun_gtest: {exe} on {np} ranks did not finish within {timeout_s} s", flush=True)
    status = 124

if xml_path is None:
    sys.exit(status)
trees = []
for r, p in enumerate(per_rank):
    try:
        trees.append(ET.parse(p))
    except (OSError, ET.ParseError) as err:
        print(f"mpirun_gtest: rank {r} wrote no test report ({err})", flush=True)
        trees.append(None)
if trees[0] is None:
    sys.exit(status or 1)


def key(case):
    return (case.get("classname"), case.get("name"))


merged = trees[0]
cases0 = {key(c): c for c in merged.getroot().iter("testcase")}
for r, tree in enumerate(trees[1:], start=1):
    if tree is None:
        status = status or 1
        continue
    for case in tree.getroot().iter("testcase"):
        target = cases0.get(key(case))
        failures = case.findall("failure") + case.findall("error")
        if target is None or not failures:
            continue
        for f in failures:
            e = ET.SubElement(target, "failure")
            e.set("message", f"on rank {r}: " + (f.get("message") or ""))
            e.text = f"on rank {r}:\n" + (f.text or "")
merged.write(xml_path)
sys.exit(status)
