#!/usr/bin/env python
"""Run every benchmark in sequence (one process), print figure / value / target / pass, write JSON.

    python benchmarks/run_all.py                     # full suite on the embedded model (~15 min on 2 CPU cores)
    python benchmarks/run_all.py --skip-demo         # without the ~10-minute demo run
    python benchmarks/run_all.py --readme            # also rewrite the README's performance section
    python benchmarks/run_all.py --quick --out /tmp/b.json   # tiny model, seconds (what the tests run)

Every figure is measured in the same run on this machine; ratios compare two measurements taken side by side.
Results: ``benchmarks/results/latest.json`` (written atomically), see docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Context, env_info, set_threads  # noqa: E402

from workbench.io import atomic_write_text  # noqa: E402

# order matters: labels hands its folder to storage; the demo runs last but one (storage may measure its labels)
BENCHMARKS = ["translate", "curation", "load", "labels", "training", "demo_memory", "storage"]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "latest.json"
README_START, README_END = "<!-- perf:start -->", "<!-- perf:end -->"


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and unit in ("ratio",):
        return f"{v:.3f}"
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _verdict(f: dict) -> str:
    return {True: "PASS", False: "FAIL", None: ("n/a" if f.get("target") is not None else "")}[f["pass"]]


def table(figures: list[dict]) -> str:
    rows = [("figure", "value", "target", "pass")]
    for f in figures:
        target = "" if f["target"] is None else f"{f['op']} {_fmt(f['target'], f['unit'])}"
        rows.append((f["name"], f"{_fmt(f['value'], f['unit'])} {f['unit']}", target, _verdict(f)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(result: dict, results_dir: Path | None = None) -> str:
    """The README section: a table of every figure and how it was measured."""
    m = result["machine"]
    head = (
        f"Measured by `python benchmarks/run_all.py{' --quick' if result['quick'] else ''}` on "
        f"{m.get('cpu', '?')} ({m.get('cpu_count')} cores, {m.get('torch_threads')} torch threads, "
        f"torch {m.get('torch')}), {result['created']}, model `{result['model']}`, "
        f"{result['total_seconds']:.0f} s in all. Raw figures: `benchmarks/results/latest.json`; "
        "method and GPU projections: [docs/performance.md](docs/performance.md)."
    )
    lines = [head, "", "| figure | value | target | pass | how |", "|---|---|---|---|---|"]
    for f in result["figures"]:
        target = "" if f["target"] is None else f"{f['op']} {_fmt(f['target'], f['unit'])}"
        lines.append(
            f"| {f['name']} | {_fmt(f['value'], f['unit'])} {f['unit']} | {target} | {_verdict(f)} | "
            f"{f.get('note', '').replace('|', '/')} |"
        )
    errors = {k: v["error"] for k, v in result["benchmarks"].items() if v.get("error")}
    if errors:
        lines += ["", "Benchmarks that failed: " + "; ".join(f"{k}: {v.splitlines()[-1]}" for k, v in errors.items())]
    gpu = (results_dir or DEFAULT_OUT.parent) / "gpu_check.json"  # from a GPU run of benchmarks/gpu_check.py
    if gpu.is_file():
        try:
            g = json.loads(gpu.read_text())
            if not g.get("cpu_smoke"):
                lines += [
                    "",
                    f"GPU check ({g.get('device')}, {g.get('created')}): label generation "
                    f"{g['labels']['mfu']:.0%} MFU (target 45%), {g['finetune'].get('method')} finetuning "
                    f"{g['finetune']['mfu']:.0%} MFU (target 35%); projected Llama-2-7b on ~4M tokens on one "
                    f"H100: {g['projection']['total_hours']:.2f} h for labels + "
                    f"{g['projection'].get('finetune_method')} finetuning (docs/performance.md).",
                ]
        except (KeyError, ValueError, TypeError):
            pass
    return "\n".join(lines)


def update_readme(path: Path, section: str) -> None:
    """Replace the text between the perf markers; without markers, append a Performance section holding them."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = f"{README_START}\n{section}\n{README_END}"
    if README_START in text and README_END in text:
        before, rest = text.split(README_START, 1)
        _, after = rest.split(README_END, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + "## Performance\n\n" + block + "\n"
    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="tiny model and few tokens: seconds (figures not representative)"
    )
    p.add_argument("--out", default=None, help=f"JSON output (default {DEFAULT_OUT.relative_to(REPO)})")
    p.add_argument(
        "--readme",
        nargs="?",
        const=str(REPO / "README.md"),
        default=None,
        help="rewrite the section between <!-- perf:start --> and <!-- perf:end --> (default README.md)",
    )
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--skip-demo", action="store_true", help="do not run the demo (it takes ~10 minutes on 2 cores)")
    p.add_argument(
        "--demo-run-dir", default=None, help="existing demo run directory: stage timings and labels to measure"
    )
    p.add_argument(
        "--demo-config", default=None, help="config the demo benchmark runs (default workbench/configs/demo.yaml)"
    )
    p.add_argument("--model", default=None, help="model spec to measure (default: embedded; --quick: tiny)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS, else all cores)"
    )
    p.add_argument("--label-blocks", type=int, default=4, help="blocks of 512 tokens in the label benchmark")
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="measured steps per training benchmark, after 1 warm-up (default: one checkpoint period of "
        "demo.yaml, 8; a multiple of it)",
    )
    p.add_argument("--train-batch", type=int, default=1, help="blocks per training step in the training benchmark")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (printed)")
    args = p.parse_args(argv)

    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    set_threads(threads)
    asked = BENCHMARKS if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in asked if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")
    names = [n for n in BENCHMARKS if n in asked]  # always in the suite's order (labels before storage)
    out = Path(args.out) if args.out else DEFAULT_OUT
    work = Path(tempfile.mkdtemp(prefix="whp-bench-"))
    ctx = Context(
        quick=args.quick,
        model=args.model or ("tiny" if args.quick else "embedded"),
        threads=threads,
        work=work,
        skip_demo=args.skip_demo,
        demo_run_dir=Path(args.demo_run_dir) if args.demo_run_dir else None,
        demo_config=Path(args.demo_config) if args.demo_config else None,
    )
    ctx.shared.update(label_blocks=args.label_blocks, train_steps=args.train_steps, train_batch=args.train_batch)
    result = {
        "schema": "whp-bench/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "quick": args.quick,
        "model": ctx.model,
        "machine": env_info(),
        "benchmarks": {},
        "figures": [],
    }
    t_all = time.perf_counter()
    try:
        for name in names:
            print(f"== {name} ...", flush=True)
            t0 = time.perf_counter()
            entry: dict = {"figures": [], "details": {}, "error": None}
            try:
                mod = importlib.import_module(f"bench_{name}")
                entry.update(mod.run(ctx))
            except Exception:  # one broken benchmark must not hide the others
                entry["error"] = traceback.format_exc()
                print(entry["error"], file=sys.stderr, flush=True)
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            for f in entry["figures"]:
                f["benchmark"] = name
            result["benchmarks"][name] = entry
            result["figures"] += entry["figures"]
            print(f"   {name}: {entry['seconds']:.1f} s" + (" (FAILED)" if entry["error"] else ""), flush=True)
    finally:
        if args.keep_work:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["total_seconds"] = round(time.perf_counter() - t_all, 1)
    checked = [f for f in result["figures"] if f["pass"] is not None]
    result["summary"] = {
        "figures": len(result["figures"]),
        "with_target": len(checked),
        "passed": sum(f["pass"] for f in checked),
        "failed": [f["key"] for f in checked if not f["pass"]],
        "errors": [k for k, v in result["benchmarks"].items() if v.get("error")],
    }
    atomic_write_text(out, json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(table(result["figures"]))
    s = result["summary"]
    print(f"\n{s['passed']}/{s['with_target']} targets met; {result['total_seconds']:.0f} s in all; results: {out}")
    if args.readme:
        update_readme(Path(args.readme), markdown(result, out.parent))
        print(f"README section updated: {args.readme}")
    return 1 if s["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
