"""``workbench tune``: every unlearning method tuned on the dev probes with the same number of trials, each one's
setting picked by one rule fixed in advance.

Each method sweeps its strength knob over three values (its ``tuning``, gathered in ``TUNING_GRID``): the learning rate for the trained
methods, alpha for the test-time WHP mix, the retain weight for WHP (whose learning rate the demo's own sweep
chose, benchmarks/sweeps/demo.yaml). ``prompt`` has no strength knob: one trial. Every group is one
:func:`workbench.compare.compare_runs` on the dev probes without the attacks (they belong to the final heldout
report), in ``<out>/<group>/``; finished runs and evaluations are reused when tuning is rerun.

The rule (:func:`select_trials`): among a method's trials whose dev collateral drop and general drop are at most
5% and whose perplexity rise is at most 10% (``LIMITS``), the one with the largest target drop; when no trial
keeps within the limits, the one that exceeds them least (the smallest largest harm/limit ratio). Writes
``<out>/trials.csv`` (every trial, the chosen ones marked) and ``<out>/trials.md``. Then set each method's
config to its chosen value and report once on the heldout probes:
``workbench compare workbench/configs/methods/*.yaml --split heldout``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from workbench.compare import format_change
from workbench.config import check_names
from workbench.errors import WorkbenchError
from workbench.io import atomic_write_text

__all__ = [
    "TUNING_GRID",
    "tuning_grid",
    "LIMITS",
    "select_trials",
    "tune_methods",
    "trials_markdown",
    "add_tune_parser",
]

METHODS_DIR = Path(__file__).resolve().parent / "configs" / "methods"


def tuning_grid() -> dict[str, tuple[list[str], str | None, list | None]]:
    """group: (methods, swept key, values), from each registered method's ``tuning`` (methods without one are not
    tuned); groups and their methods in registry order."""
    from workbench.methods import registry

    grid: dict[str, tuple[list[str], str | None, list | None]] = {}
    for method in registry.METHODS.values():
        t = method.tuning
        if t is not None:
            grid.setdefault(t.group, ([], t.key, t.values))[0].append(method.name)
    return grid


# three trials for every method with a strength knob; prompt: one
TUNING_GRID = tuning_grid()
LIMITS = {"collateral_drop": 0.05, "general_drop": 0.05, "ppl_rise": 0.10}


def select_trials(trials: pd.DataFrame, limits: dict[str, float] | None = None) -> pd.Series:
    """True for each method's chosen trial. ``trials``: one row per trial with ``method``, ``target_drop`` and a
    column per key of ``limits`` (fractions: 0.05 is 5%)."""
    limits = LIMITS if limits is None else limits
    chosen = pd.Series(False, index=trials.index)
    for _, group in trials.groupby("method"):
        ratio = pd.concat([group[k] / v for k, v in limits.items()], axis=1).max(axis=1)
        within = group[ratio <= 1.0]
        chosen[within["target_drop"].idxmax() if len(within) else ratio.idxmin()] = True
    return chosen


def tune_methods(
    out_dir: str | os.PathLike = "runs/methods_dev",
    groups: list[str] | None = None,
    methods_dir: str | os.PathLike = METHODS_DIR,
    grid: dict | None = None,
    progress: bool = True,
    log=print,
    compare_config=None,
) -> pd.DataFrame:
    """Run the groups of ``grid`` (default :data:`TUNING_GRID`) on the dev probes and choose each method's trial.
    ``compare_config``: how each group is evaluated (default: the dev probes, no attacks).
    Returns every trial (the rows of groups not run now are kept from ``<out>/trials.csv``)."""
    from workbench.compare import CompareConfig, compare_runs

    grid = tuning_grid() if grid is None else grid
    groups = list(grid) if groups is None else groups
    check_names("tune groups", groups, list(grid))
    out = Path(out_dir)
    cc = compare_config or CompareConfig(split="dev", attacks=(), progress=progress)
    if cc.split != "dev":
        raise WorkbenchError(
            f"tune: methods are tuned on the dev probes, not {cc.split!r}; report heldout with compare"
        )
    tables = []
    for group in groups:
        methods, key, values = grid[group]
        log(f"[tune] group {group}: {', '.join(methods)}" + (f", {key} in {values}" if key else ", one trial"))
        configs = [Path(methods_dir) / f"{m}.yaml" for m in methods]
        table = compare_runs(configs, out / group, cc, {key: values} if key else None, log=log)
        table.insert(2, "knob", key or "")
        table.insert(3, "value", [r.split("=", 1)[1] if "=" in r else "" for r in table["run"]])
        tables.append(table)
    trials = pd.concat(tables, ignore_index=True)
    old = out / "trials.csv"
    if old.is_file():
        prev = pd.read_csv(old, keep_default_na=False, na_values=[""])
        trials = pd.concat([prev[~prev["run"].isin(trials["run"])], trials], ignore_index=True)
    trials["chosen"] = select_trials(trials)
    cols = [
        "run",
        "method",
        "knob",
        "value",
        "target_drop",
        "target_drop_lo",
        "target_drop_hi",
        "collateral_drop",
        "general_drop",
        "ppl_rise",
        "seconds",
        "chosen",
    ]
    trials = trials[[c for c in cols if c in trials]]
    atomic_write_text(old, trials.to_csv(index=False))
    atomic_write_text(out / "trials.md", trials_markdown(trials))
    return trials


def trials_markdown(trials: pd.DataFrame) -> str:
    """Every trial, one row each, the chosen ones ticked; the rule under the table."""
    lines = [
        "| method | knob = value | target drop [95% CI] | collateral drop | general drop | ppl rise | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in trials.sort_values(["method", "run"]).iterrows():
        knob = r["knob"] if isinstance(r["knob"], str) else ""
        setting = f"{knob.split('.')[-1]} = {r['value']}" if knob else "(one trial)"
        ci = f"{100 * r['target_drop']:.1f}% [{100 * r['target_drop_lo']:.1f}, {100 * r['target_drop_hi']:.1f}]"
        harms = " | ".join(format_change(r[k]) for k in ("collateral_drop", "general_drop", "ppl_rise"))
        lines.append(f"| {r['method']} | {setting} | {ci} | {harms} | {'✓' if r['chosen'] else ''} |")
    limits = ", ".join(f"{k.replace('_', ' ')} ≤ {100 * v:.0f}%" for k, v in LIMITS.items())
    return (
        "\n".join(lines) + f"\n\nDev probes. Chosen: each method's largest target drop with {limits} "
        "(else the trial that exceeds the limits least).\n"
    )


def add_tune_parser(sub) -> None:
    sp = sub.add_parser("tune", help="tune every method on the dev probes, the same number of trials each")
    sp.add_argument("--out", default="runs/methods_dev", help="output folder (one comparison per group)")
    sp.add_argument("--only", default=None, help=f"groups to run, comma-separated (of {', '.join(TUNING_GRID)})")
    sp.add_argument("--methods-dir", default=str(METHODS_DIR), help="folder of the method configs")
    sp.add_argument("--no-progress", action="store_true")
    sp.set_defaults(func=_cmd_tune)


def _cmd_tune(args) -> int:
    groups = [g for g in args.only.split(",") if g] if args.only else None
    trials = tune_methods(args.out, groups, args.methods_dir, progress=not args.no_progress)
    print(trials_markdown(trials))
    return 0
