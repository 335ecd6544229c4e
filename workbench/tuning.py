"""``workbench tune``: every unlearning method tuned on the dev probes with the same budget, each one's setting picked
by one rule fixed in advance.

The budget (:data:`workbench.methods.base.TRIALS`): two knobs per method, three values each, every combination:
nine dev trials. Each method declares its knobs in its module (``tuning = Tuning({...})``), written down before any
trial runs; ``--grid FILE`` replaces them (a YAML mapping ``method: {key: [values]}``), checked before anything
runs. ``prompt`` has one setting that matters, its instruction: three trials. Every method is one
:func:`workbench.compare.compare_runs` over its trials on the dev probes without the attacks (they belong to the
final heldout report), in ``<out>/<method>/``; finished runs and evaluations are reused when tuning is rerun.

The rule (:func:`select_trials`): among a method's trials whose dev collateral drop and general drop are at most
5% and whose perplexity rise is at most 10% (``LIMITS``), the one with the largest target drop; when no trial
keeps within the limits, the one that exceeds them least (the smallest largest harm/limit ratio). Writes
``<out>/trials.csv`` (every trial, the chosen ones marked), ``<out>/trials.md`` (the table, the trial counts and
the time each method took) and ``<out>/chosen/<method>.yaml`` (each method's config at its chosen setting), to
report once on the heldout probes: ``workbench compare <out>/chosen/*.yaml --split heldout``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import yaml

from workbench.compare import format_change, set_key, sweep_variants
from workbench.config import check_names, config_from_dict, read_config_mapping
from workbench.errors import WorkbenchError
from workbench.io import atomic_write_text

__all__ = [
    "tuning_grid",
    "read_grid",
    "trial_configs",
    "LIMITS",
    "select_trials",
    "tune_methods",
    "trials_markdown",
    "add_tune_parser",
]

METHODS_DIR = Path(__file__).resolve().parent / "configs" / "methods"
LIMITS = {"collateral_drop": 0.05, "general_drop": 0.05, "ppl_rise": 0.10}


def tuning_grid() -> dict[str, dict[str, list]]:
    """method: its knobs ``{key: values}``, from each registered method's ``tuning``, in registry order."""
    from workbench.methods import registry

    return {m.name: dict(m.tuning.knobs) for m in registry.METHODS.values() if m.tuning is not None}


def _knob_problem(method: str, key: str) -> str | None:
    """Why ``key`` cannot be a knob of ``method`` (None: it can): a section the method never reads."""
    from workbench.methods import registry

    spec = registry.get(method)
    section, _, rest = key.partition(".")
    if section == "methods":
        owner = rest.partition(".")[0]
        return None if owner == method else f"methods.{owner} is another method's section"
    reads = {"finetune": spec.trains, "reinforce": spec.uses_reinforced, "labels": "labels" in spec.stages}
    if section in reads:
        return None if reads[section] else f"{method} does not read the {section} section"
    return f"{section!r} is not a section a method's trials may change (methods.{method}, finetune, reinforce, labels)"


def read_grid(path: str | os.PathLike) -> dict[str, dict[str, list]]:
    """A grid file: ``method: {key: [values, ...]}`` for the methods whose declared knobs it replaces. Unknown
    methods, keys outside the method's sections and empty value lists are one error naming the file."""
    from workbench.methods import registry

    data = read_config_mapping(path, "tuning grid")
    check_names(f"{path}: methods", list(data), registry.names())
    grid = {}
    for method, knobs in data.items():
        if not isinstance(knobs, dict) or not knobs:
            raise WorkbenchError(f"{path}: {method}: expected a mapping of config keys to value lists")
        for key, values in knobs.items():
            where = f"{path}: {method}: {key}"
            problem = _knob_problem(method, str(key))
            if problem:
                raise WorkbenchError(f"{where}: not a knob of {method} ({problem})")
            if not isinstance(values, list) or not values:
                raise WorkbenchError(f"{where}: expected a non-empty list of values")
        grid[method] = {str(k): list(v) for k, v in knobs.items()}
    return grid


def _label(key: str, value, values: list) -> str:
    """``learning_rate=0.0002`` in a trial's name; a long text value by its place in the knob's list (``system=2``)."""
    v = f"{value:g}" if isinstance(value, float) else str(value)
    plain = len(v) <= 16 and re.fullmatch(r"[\w.+-]+", v) is not None  # a number or a word: a folder name as it is
    return f"{key.split('.')[-1]}={v if plain else values.index(value) + 1}"


def trial_configs(method: str, knobs: dict[str, list], methods_dir: str | os.PathLike) -> list[tuple[dict, dict]]:
    """(settings, config dict) of every trial of ``method``: its config file in ``methods_dir`` with each combination
    of the knobs' values set. Every config is built (and so checked) here, before any trial runs."""
    from workbench.methods.base import Tuning

    path = Path(methods_dir) / f"{method}.yaml"
    if not path.is_file():
        raise WorkbenchError(f"tune: {path} not found: every tuned method needs its config in {methods_dir}")
    for key in knobs:
        problem = _knob_problem(method, key)
        if problem:
            raise WorkbenchError(f"tune: {method}: {key} is not a knob of {method} ({problem})")
    [(name, base)] = sweep_variants(path, None)
    out = []
    for settings in Tuning(knobs).trials():
        data = copy.deepcopy(base)
        for key, value in settings.items():
            set_key(data, key, value)
        data["name"] = "-".join([name] + [_label(k, v, knobs[k]) for k, v in settings.items()])
        config_from_dict(copy.deepcopy(data), f"tune: {method} trial {data['name']}")
        out.append((settings, data))
    return out


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
    methods: list[str] | None = None,
    methods_dir: str | os.PathLike = METHODS_DIR,
    grid: dict | None = None,
    progress: bool = True,
    log=print,
    compare_config=None,
) -> pd.DataFrame:
    """Run every trial of ``methods`` (default: every method of ``grid``, default :func:`tuning_grid`) on the dev
    probes and choose each method's setting. ``compare_config``: how trials are evaluated (default: the dev
    probes, no attacks). Every trial's config is built before the first one runs. Returns every trial (rows of
    methods not run now are kept from ``<out>/trials.csv``)."""
    from workbench.compare import CompareConfig, compare_runs

    grid = tuning_grid() if grid is None else grid
    methods = list(grid) if methods is None else methods
    check_names("tune methods", methods, list(grid))
    out = Path(out_dir)
    cc = compare_config or CompareConfig(split="dev", attacks=(), progress=progress)
    if cc.split != "dev":
        raise WorkbenchError(
            f"tune: methods are tuned on the dev probes, not {cc.split!r}; report heldout with compare"
        )
    planned = {m: trial_configs(m, grid[m], methods_dir) for m in methods}  # every config checked first
    budget = _read_budget(out)
    tables = []
    for method, trials in planned.items():
        knobs = ", ".join(f"{k} in {v}" for k, v in grid[method].items())
        log(f"[tune] {method}: {len(trials)} trials, {knobs}")
        t0 = time.perf_counter()
        table = compare_runs([d for _, d in trials], out / method, cc, log=log)
        spent = time.perf_counter() - t0
        by_name = {d["name"]: s for s, d in trials}
        table = table[table["run"].isin(by_name)].copy()  # the baseline row is not a trial
        table.insert(2, "setting", [_setting(by_name[r]) for r in table["run"]])
        tables.append(table)
        row = budget.get(method, {"seconds": 0.0})
        budget[method] = {"trials": len(trials), "seconds": row["seconds"] + spent, "cores": os.cpu_count()}
    trials = pd.concat(tables, ignore_index=True)
    old = out / "trials.csv"
    if old.is_file():
        prev = pd.read_csv(old, keep_default_na=False, na_values=[""])
        trials = pd.concat([prev[~prev["method"].isin(methods)], trials], ignore_index=True)
    trials["chosen"] = select_trials(trials)
    cols = [
        "run",
        "method",
        "setting",
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
    atomic_write_text(out / "budget.json", json.dumps(budget, indent=1))
    atomic_write_text(old, trials.to_csv(index=False))
    atomic_write_text(out / "trials.md", trials_markdown(trials, budget))
    for method, chosen in planned.items():
        pick = trials[(trials["method"] == method) & trials["chosen"]]
        data = next(d for _, d in chosen if d["name"] == pick["run"].iloc[0])
        atomic_write_text(out / "chosen" / f"{method}.yaml", yaml.safe_dump({**data, "name": method}, sort_keys=False))
    return trials


def _setting(settings: dict) -> str:
    """``learning_rate=0.0002, epochs=2`` (a text value by its first words)."""
    parts = []
    for k, v in settings.items():
        text = f"{v:g}" if isinstance(v, float) else str(v)
        parts.append(f"{k.split('.')[-1]}={text if len(text) <= 24 else repr(text[:21] + '...')}")
    return ", ".join(parts)


def _read_budget(out: Path) -> dict:
    path = out / "budget.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def trials_markdown(trials: pd.DataFrame, budget: dict | None = None) -> str:
    """Every trial, one row each, the chosen ones ticked; the rule, and each method's trials and time, under it."""
    lines = [
        "| method | setting | target drop [95% CI] | collateral drop | general drop | ppl rise | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in trials.sort_values(["method", "run"]).iterrows():
        setting = r["setting"] if isinstance(r.get("setting"), str) and r["setting"] else "(one trial)"
        ci = f"{100 * r['target_drop']:.1f}% [{100 * r['target_drop_lo']:.1f}, {100 * r['target_drop_hi']:.1f}]"
        harms = " | ".join(format_change(r[k]) for k in ("collateral_drop", "general_drop", "ppl_rise"))
        lines.append(f"| {r['method']} | {setting} | {ci} | {harms} | {'✓' if r['chosen'] else ''} |")
    limits = ", ".join(f"{k.replace('_', ' ')} ≤ {100 * v:.0f}%" for k, v in LIMITS.items())
    text = (
        "\n".join(lines) + f"\n\nDev probes. Chosen: each method's largest target drop with {limits} "
        "(else the trial that exceeds the limits least).\n"
    )
    if budget:
        n = trials.groupby("method").size()
        per = [f"{m} {int(n.get(m, b['trials']))} ({b['seconds'] / 3600:.2f} h)" for m, b in sorted(budget.items())]
        wall = sum(b["seconds"] for b in budget.values()) / 3600
        cores = max(int(b.get("cores") or 1) for b in budget.values())
        text += (
            f"\nTrials per method (wall time): {', '.join(per)}. In all {int(n.sum())} trials, {wall:.2f} h of wall "
            f"time on {cores} CPU cores ({wall * cores:.2f} CPU hours).\n"
        )
    return text


def add_tune_parser(sub) -> None:
    sp = sub.add_parser("tune", help="tune every method on the dev probes, the same number of trials each")
    sp.add_argument("--out", default="runs/methods_dev", help="output folder (one comparison per method)")
    sp.add_argument("--only", default=None, help=f"methods to tune, comma-separated (of {', '.join(tuning_grid())})")
    sp.add_argument("--grid", default=None, help="YAML file `method: {key: [values]}` replacing declared knobs")
    sp.add_argument("--methods-dir", default=str(METHODS_DIR), help="folder of the method configs")
    sp.add_argument("--no-progress", action="store_true")
    sp.set_defaults(func=_cmd_tune)


def _cmd_tune(args) -> int:
    methods = [m for m in args.only.split(",") if m] if args.only else None
    grid = {**tuning_grid(), **read_grid(args.grid)} if args.grid else None
    trials = tune_methods(args.out, methods, args.methods_dir, grid=grid, progress=not args.no_progress)
    print(trials_markdown(trials, _read_budget(Path(args.out))))
    print(f"Report once on the heldout probes: workbench compare {Path(args.out) / 'chosen'}/*.yaml --split heldout")
    return 0
