"""Fault matrix: every fault case of tests/test_reliability.py, run and tallied.

Each case injects one fault into a run on the tiny model (kill -9 of a CLI run, a checkpoint cut short, a second
process on the run directory, a truncated or deleted artifact, a bad value or file) and asserts the outcome:
either the rerun **recovers** (labels and weights identical to a clean run) or the command stops with a **clear
error** (exit 2, one message naming the file or key, nothing half-written). A case whose assertion fails counts
as **silent** (a wrong result, a traceback, or exit 0 on bad input).

    python benchmarks/fault_matrix.py                  # the cases against this checkout (about a minute)
    python benchmarks/fault_matrix.py --code OTHER_DIR # against another copy of the package (e.g. an older one)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "test_reliability.py"
# test names that assert exit 2 with a message; every other case asserts recovery
CLEAR_ERROR_WORDS = ("exit_2", "exits_2", "refused", "reported_before", "ctrl_c")


def kind(name: str) -> str:
    return "clear error" if any(w in name for w in CLEAR_ERROR_WORDS) else "recovered"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", default=str(ROOT), help="folder holding the workbench package to test (default: here)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "results.xml"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([args.code, str(ROOT / "tests")])}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
                        f"--junitxml={xml}", str(TESTS)], cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        cases = ET.parse(xml).getroot().iter("testcase")
        rows = []
        for case in cases:
            name = case.get("name")
            if case.find("skipped") is not None:
                outcome = "skipped"
            elif case.find("failure") is not None or case.find("error") is not None:
                outcome = "silent"
            else:
                outcome = kind(name)
            rows.append((name, kind(name), outcome))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'expected':<11}  outcome")
    for name, expected, outcome in rows:
        print(f"{name:<{width}}  {expected:<11}  {outcome}")
    counts = Counter(o for _, _, o in rows)
    ran = len(rows) - counts["skipped"]
    print(f"\ncases {ran}, clear errors {counts['clear error']}, recovered {counts['recovered']}, "
          f"silent {counts['silent']}" + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""))
    return 0 if counts["silent"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
