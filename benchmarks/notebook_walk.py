"""A class's walk through the notebooks on a finished run: each notebook executed top to bottom, timed.

    make demo                                    # runs/demo: the finished stages the notebooks reuse
    python benchmarks/notebook_walk.py --run runs/demo
    python benchmarks/notebook_walk.py --run runs/demo --notebooks 00_quickstart 05_familiarity_probes
    python benchmarks/notebook_walk.py --config workbench/configs/sherlock.yaml --notebooks 00_quickstart

Each notebook runs with ``WORKBENCH_RUN`` pointing at the run directory (as ``WORKBENCH_RUN=runs/demo make lab``
opens them; or ``WORKBENCH_CONFIG`` at a run config, which trains what is not finished yet), in the notebooks' folder, one after another in the order a class takes them, so what one notebook
saves (the curated map of 02, a variant) is there for the next. Prints one row per notebook (seconds, the kernel's
peak resident memory, the stages it ran, by the stage records it wrote) and writes ``benchmarks/results/notebook_walk_<run or config>.json``. A notebook that raises stops the walk
with its error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workbench.io import atomic_write_text  # noqa: E402

__all__ = ["walk"]


def _stage_records(run_dir: Path | None) -> dict[str, float]:
    """``{"<variant or .>: <stage>": mtime}`` of every stage record under a run directory, but a variant's copy of
    the run's own record (a stage the variant reuses, copied when the variant is made): it ran nothing."""
    if run_dir is None or not run_dir.is_dir():
        return {}
    out = {}
    for rec in run_dir.rglob("stages/*.json"):
        where = rec.parent.parent.relative_to(run_dir).as_posix()
        own = run_dir / "stages" / rec.name
        if where != "." and own.is_file() and own.read_bytes() == rec.read_bytes():
            continue
        out[f"{where}: {rec.stem}" if where != "." else rec.stem] = rec.stat().st_mtime
    return out


def _peak_rss_mib(pid: int | None) -> float | None:
    """A live process's peak resident memory (``VmHWM``) in MiB; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, TypeError, ValueError):
        return None
    return None


def _execute(client, nb) -> float | None:
    """Run every cell in one kernel; returns the kernel's peak resident memory (MiB), read before it ends."""
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        provisioner = getattr(client.km, "provisioner", None)
        return _peak_rss_mib(getattr(provisioner, "pid", None))


def walk(names: list[str], run_dir: Path | None = None, config: Path | None = None, timeout: int = 3600) -> list[dict]:
    """Execute ``names`` in order with ``WORKBENCH_RUN=run_dir`` (or ``WORKBENCH_CONFIG=config``); a row each."""
    import nbformat
    from nbclient import NotebookClient

    for var in ("WORKBENCH_RUN", "WORKBENCH_CONFIG", "WORKBENCH_MODEL"):
        os.environ.pop(var, None)
    if run_dir is not None:
        os.environ["WORKBENCH_RUN"] = str(run_dir.resolve())
    else:
        os.environ["WORKBENCH_CONFIG"] = str(config.resolve())
    rows = []
    if run_dir is None:  # a config's notebooks run in the notebooks' runs folder, under the config's name
        import yaml

        run_dir = NOTEBOOKS / "runs" / (yaml.safe_load(config.read_text()) or {}).get("name", "")
    for i, name in enumerate(names, 1):
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        before = _stage_records(run_dir)
        t0 = time.perf_counter()
        peak = _execute(client, nb)
        seconds = time.perf_counter() - t0
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        if errors:
            raise SystemExit(f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}")
        # the stages this notebook ran (a stage record written or rewritten), with the variant they went to
        after = _stage_records(run_dir)
        ran = sorted(k for k, v in after.items() if before.get(k) != v)
        rows.append({"notebook": name, "seconds": round(seconds, 1), "peak_rss_mib": peak, "ran": ran})
        print(f"    {seconds:.0f} s, peak {peak} MiB resident{'; ran: ' + ', '.join(ran) if ran else ''}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="a finished run directory (e.g. runs/demo)")
    where.add_argument("--config", type=Path, help="a run config (the notebooks train what is not finished)")
    ap.add_argument("--notebooks", nargs="*", default=None, help="notebook names (default: 00 to 05)")
    args = ap.parse_args(argv)
    if args.run is not None and not (args.run / "config.yaml").is_file():
        print(f"error: {args.run} is not a run directory (no config.yaml): run `make demo` first", file=sys.stderr)
        return 2
    if args.config is not None and not args.config.is_file():
        print(f"error: {args.config}: no such config file", file=sys.stderr)
        return 2
    names = args.notebooks or sorted(p.stem for p in NOTEBOOKS.glob("0[0-5]_*.ipynb"))
    rows = walk(names, args.run, args.config)
    total = sum(r["seconds"] for r in rows)
    import torch

    record = {
        "run": str(args.run or ""),
        "config": str(args.config or ""),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "rows": rows,
        "total_seconds": round(total, 1),
    }
    out = RESULTS / f"notebook_walk_{(args.run or args.config).stem}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print("\n| notebook | seconds | peak resident memory | stages run |\n|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_rss_mib'] / 1024:.2f} GiB" if r["peak_rss_mib"] is not None else "n/a"
        print(f"| {r['notebook']} | {r['seconds']:.0f} | {peak} | {', '.join(r['ran']) or 'none (all reused)'} |")
    print(f"| total | {total:.0f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
