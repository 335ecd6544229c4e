"""A settings sweep: one base run config, several variants, one table of forgetting against collateral damage.

    python benchmarks/sweep.py workbench/configs/demo.yaml benchmarks/sweeps/demo.yaml --out runs/sweep
    python benchmarks/sweep.py BASE.yaml GRID.yaml --set model=/models/smollm2 --split dev

GRID.yaml is a list of variants, each ``{name: ..., set: {dotted.key: value, ...}}``; ``--set key=value``
applies to every variant. Each variant is a full run in ``<out>/<name>/``; finished variants are reused when the
sweep is rerun. Tune on the ``dev`` probes (the default) and report ``heldout`` once, with the chosen settings.
Writes ``<out>/sweep.csv``, one row per variant, after each variant (rows of earlier variants in the same folder
are kept). Returns the rows of the variants run now.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from workbench.compare import set_key  # noqa: E402
from workbench.config import (  # noqa: E402
    check_names,
    config_from_dict,
    parse_yaml,
    read_config_mapping,
    rename_old_keys,
    resolve_paths,
)
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.io import atomic_write_text, read_text  # noqa: E402
from workbench.run import Run  # noqa: E402


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise WorkbenchError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        out[key] = parse_yaml(raw, f"--set {key}")
    return out


def summarize(report: dict) -> dict:
    """The sweep's columns from a report: relative changes in percent, and the stage seconds."""
    row = {}
    for name, r in (report.get("probes") or {}).items():
        row[name] = 100 * r["relative_change"]
    for key, r in (report.get("probes_by_answer_kind") or {}).items():
        row[key.replace("probability/", "target/")] = 100 * r["relative_change"]
    if report.get("perplexity"):
        row["perplexity"] = 100 * report["perplexity"]["relative_change"]
    row["seconds"] = sum(v or 0.0 for v in (report.get("stage_seconds") or {}).values())
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="base run config (YAML)")
    ap.add_argument("grid", help="YAML list of variants: {name, set: {dotted.key: value}}")
    ap.add_argument("--out", default="runs/sweep", help="folder of the variants' run dirs and sweep.csv")
    ap.add_argument("--split", default="dev", help="probe split to score (tune on dev; report heldout once)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    ap.add_argument("--only", action="append", default=[], help="run only these variant names")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (shorter logs)")
    args = ap.parse_args(argv)

    # the base config's relative paths are relative to its file, as `workbench run` reads them
    base = resolve_paths(read_config_mapping(args.base), Path(args.base).resolve().parent)
    base = rename_old_keys(base, source=str(args.base))  # the keys --set and the grid set are the new names too
    grid = parse_yaml(read_text(args.grid, "sweep grid"), f"sweep grid {args.grid}") or []
    if not isinstance(grid, list) or not all(isinstance(v, dict) and "name" in v for v in grid):
        raise WorkbenchError(f"{args.grid}: expected a list of {{name: ..., set: {{...}}}} variants")
    check_names("--only", args.only, [v["name"] for v in grid])
    common = parse_set(args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "sweep.csv"
    earlier = pd.read_csv(csv) if csv.is_file() else pd.DataFrame({"variant": []})
    rows = []
    for variant in grid:
        if args.only and variant["name"] not in args.only:
            continue
        data = copy.deepcopy(base)
        for key, value in {**common, **(variant.get("set") or {}), "report.split": args.split}.items():
            set_key(data, key, value)
        data["name"] = variant["name"]
        cfg = config_from_dict(data, f"{args.grid}: variant {variant['name']}")
        t0 = time.perf_counter()
        report = Run(cfg, out / variant["name"], update=True, progress=not args.no_progress).run()
        rows.append(
            {
                "variant": variant["name"],
                **summarize(report),
                "wall_seconds": time.perf_counter() - t0,
                **{k: v for k, v in (variant.get("set") or {}).items()},
            }
        )
        table = pd.DataFrame(rows)
        # rows of variants run earlier into the same folder stay, unless run again now
        kept = earlier[~earlier["variant"].isin(table["variant"])]
        atomic_write_text(
            csv, (pd.concat([kept, table], ignore_index=True) if len(kept) else table).to_csv(index=False)
        )
        print(table.round(1).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    try:
        main()
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
