"""Byte-identity of a run's outputs across a code change: tiny-model runs of every method, hashed file by file.

    python benchmarks/refactor_identity.py --out /tmp/before.json        # on the old code
    python benchmarks/refactor_identity.py --out /tmp/after.json --against /tmp/before.json

Each method runs ``workbench/configs/tiny.yaml`` (the report stage on, so the report is compared too) in a fresh
temporary directory, with the working directory set there so relative paths match. Hashed: every file under the
run directory except logs and tracking event files; JSON files without their seconds and dates, model cards without
their stage table's times. With ``--against``,
prints the files that differ and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["whp", "whp_test_time", "ga", "graddiff", "npo", "simnpo", "rmu", "prompt"]
# files whose bytes hold times, absolute paths or process ids rather than what the run computed
SKIP_PARTS = ("tracking", "runs", "logs")
SKIP_NAMES = ("run.log", "timings.json", "trainer_state.json", "training_args.bin", "lock", "report.html")


def digest(run_dir: Path) -> dict[str, str]:
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or any(part in SKIP_PARTS for part in rel.parts[:-1]) or p.name in SKIP_NAMES:
            continue
        if p.suffix == ".json":
            data = strip_times(json.loads(p.read_text()))
            if rel.parts[0] == "report" and isinstance(data, dict):
                data.pop("fingerprint", None)  # a resume key over the model files' mtime, not a result
            out[str(rel)] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        elif p.name == "README.md":  # a model card: its stage table holds seconds and dates
            text = re.sub(r"\| \d+ \| \d{4}-\d\d-\d\dT[\d:]+ \|", "| s | date |", p.read_text())
            out[str(rel)] = hashlib.sha256(text.encode()).hexdigest()
        else:
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def strip_times(obj):
    """Stage records without their seconds and timestamps."""
    if isinstance(obj, dict):
        return {
            k: strip_times(v)
            for k, v in obj.items()
            if k
            not in ("seconds", "stage_seconds", "align_seconds", "finished", "finished_at", "started_at", "pid", "host")
        }
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="where the hashes go (JSON)")
    ap.add_argument("--against", help="an earlier --out file to compare with")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    ap.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "refactor_identity"),
        help="where the runs go; the same folder before and after (a report unit's fingerprint names the model's path)",
    )
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    lock = open(Path(args.workdir) / ".lock", "w")  # noqa: SIM115 - held for the whole process
    fcntl.flock(lock, fcntl.LOCK_EX)  # two checkouts comparing at once take turns
    cfg = yaml.safe_load((ROOT / "workbench" / "configs" / "tiny.yaml").read_text())
    cfg["report"] = {"enabled": True, "max_perplexity_tokens": 512}
    result = {}
    for method in args.methods.split(","):
        tmp = Path(args.workdir) / method
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        path = Path(tmp) / "cfg.yaml"
        path.write_text(yaml.safe_dump({**cfg, "name": f"id-{method}", "method": method}))
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT),
            "PYTHONHASHSEED": "0",
        }  # peft writes a set
        proc = subprocess.run(
            [sys.executable, "-m", "workbench", "run", str(path), "--no-progress", "--run-dir", "r"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            return proc.returncode
        result[method] = digest(Path(tmp) / "r")
        print(f"{method}: {len(result[method])} files hashed", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True))
    if args.against:
        before = json.loads(Path(args.against).read_text())
        bad = 0
        for method, files in result.items():
            old = before.get(method, {})
            for name in sorted(set(files) | set(old)):
                if files.get(name) != old.get(name):
                    bad += 1
                    state = "missing now" if name not in files else "new" if name not in old else "differs"
                    print(f"  {method}: {name} {state}")
        total = sum(len(f) for f in result.values())
        print(f"{total - bad} of {total} files identical; {bad} differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
