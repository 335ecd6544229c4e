"""``workbench compare CONFIG [CONFIG ...]``: several unlearning runs (methods, strengths) side by side.

Every config is run (finished stages are reused, so an interrupted comparison resumes), then the baseline and
every unlearned model go through one evaluation (its finished units are reused too): target probes, collateral
and general probes, perplexity, and the attacks (adversarial prompts, relearning, residual-knowledge probes).
The result is one table (``compare.csv`` / ``compare.md``: one row per run) and one interactive plotly figure
(``compare.html``): target familiarity drop against collateral drop, general drop and perplexity rise, one
point per run, 95% bootstrap intervals as error bars, the Pareto front marked, the attacks in each point's hover.

``--sweep KEY=V1,V2`` adds one variant of every config per value (``methods.npo.beta=0.05,0.1``,
``finetune.learning_rate=1e-4,5e-4``, ``methods.whp_test_time.alpha=1,5``), each a run of its own.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.config import (
    canonical_key,
    check_names,
    config_from_dict,
    parse_yaml,
    read_config_mapping,
    rename_old_keys,
    resolve_paths,
)
from workbench.errors import WorkbenchError
from workbench.io import atomic_write, atomic_write_json, atomic_write_text

__all__ = [
    "CompareConfig",
    "compare_runs",
    "standard_sections",
    "sweep_variants",
    "set_key",
    "compare_figure",
    "attack_figures",
    "pareto_mask",
    "format_change",
    "add_compare_parser",
]

ATTACKS = ("priming", "paraphrase", "adversarial", "relearn", "residual", "quantize")
QUANT_BITS = (8, 4)  # the quantization attack's bit widths (AttackConfig.quantize_bits)


@dataclass
class CompareConfig:
    """How the runs are evaluated side by side."""

    split: str = field(default="dev", metadata={"help": "probe split: 'dev' while tuning, 'heldout' for final numbers"})
    attacks: tuple[str, ...] = field(default=ATTACKS, metadata={"help": "attack sections to run on every model"})
    relearn_steps: tuple[int, ...] = field(default=(5, 20, 50), metadata={"help": "relearning schedule"})
    relearn_text: str | None = field(
        default=None,
        metadata={
            "help": "a .txt file or folder to relearn on; it must state none of the probes' answers (default: the pack "
            "corpus blocks no run trained on, less the sentences that state a probe's answer)"
        },
    )
    ppl_max_tokens: int = field(default=8192, metadata={"help": "tokens of the perplexity text"})
    probe_limit: int | None = field(
        default=None,
        metadata={
            "help": "first N probes of each probe file (None: all; a small N for a quick look, e.g. on the tiny model)"
        },
    )
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the intervals of the drops"})
    seed: int = field(default=0, metadata={"help": "seeds the bootstrap and the attacks"})
    reference: str | None = field(
        default=None,
        metadata={
            "help": "model spec of a model that never saw the target (for an implanted target: the model before "
            "implanting); forget quality and PrivLeak compare every run with it (None: they say that one is needed)"
        },
    )
    progress: bool = field(default=True, metadata={"help": "progress bars"})


# -- configs and sweeps ------------------------------------------------------------------------------------------------------
def set_key(data: dict, key: str, value) -> None:
    """``data["a"]["b"] = value`` for ``key = "a.b"``, making the sections on the way."""
    parts = canonical_key(key).split(".")  # an old key name (finetune.method) sets the new one (finetune.weights)
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise WorkbenchError(f"--sweep {key}: {p!r} is not a section")
    node[parts[-1]] = value


def sweep_variants(path: str | os.PathLike | dict, sweep: dict[str, list] | None) -> list[tuple[str, dict]]:
    """(name, config dict) for a config (a file, or a dict with a ``name``) and each value of each swept key
    (the config itself when no sweep). Relative paths in a file stay relative to it."""
    if isinstance(path, dict):
        data = rename_old_keys(copy.deepcopy(path))
        name = data.get("name", "run")
        base = Path.cwd()  # a dict's relative paths are relative to where it was made
    else:
        path = Path(path)
        data = rename_old_keys(read_config_mapping(path), source=str(path))  # as the swept keys (set_key)
        base = path.parent.resolve()
        name = data.get("name", path.stem)
    # absolute, so that a run directory's config.yaml means the same files wherever it is read from
    data = resolve_paths(data, base)
    if not sweep:
        return [(name, data)]
    out = []
    for key, values in sweep.items():
        for v in values:
            d = copy.deepcopy(data)
            set_key(d, key, v)
            d["name"] = f"{name}-{key.split('.')[-1]}={v}"
            out.append((d["name"], d))
    return out


def _parse_sweep(items: Sequence[str]) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in items or ():
        if "=" not in item:
            raise WorkbenchError(f"--sweep {item!r}: expected KEY=V1,V2,... (e.g. methods.npo.beta=0.05,0.1)")
        key, vals = item.split("=", 1)
        out[key.strip()] = [_sweep_value(v) for v in vals.split(",") if v.strip()]
    return out


def _sweep_value(text: str):
    """A YAML scalar, read as a config file's values are (``2e-4`` and ``1e3`` are numbers)."""
    return parse_yaml(text, f"--sweep value {text!r}")


# -- statistics --------------------------------------------------------------------------------------------------------------
def _relative_drop(
    base: np.ndarray, new: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """``1 - mean(new) / mean(base)`` over paired probes, with a 95% paired-bootstrap interval."""
    value = 1.0 - new.mean() / base.mean()
    idx = rng.integers(0, len(base), size=(n_boot, len(base)))
    boots = 1.0 - new[idx].mean(1) / np.maximum(base[idx].mean(1), 1e-12)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(value), float(lo), float(hi)


def pareto_mask(good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Points on the front: ``good`` (the target drop) is not below zero, and no other point has ``good`` at
    least as high and every ``bad`` at least as low, one of them strictly. ``good``: [n]; ``bad``: [n] or [n, k]
    (several harms, each lower is better). A harm below zero (a probe set that rose) counts as zero: only harm
    that hurts is traded against forgetting; a point whose target measure rose (``good`` < 0) is never on it."""
    good = np.asarray(good, dtype=float)
    bad = np.maximum(np.asarray(bad, dtype=float).reshape(len(good), -1), 0.0)
    n = len(good)
    keep = ~(good < 0)
    for i in range(n):
        for j in range(n):
            no_worse = good[j] >= good[i] and (bad[j] <= bad[i]).all()
            if j != i and no_worse and (good[j] > good[i] or (bad[j] < bad[i]).any()):
                keep[i] = False
                break
    return keep


# -- the comparison ----------------------------------------------------------------------------------------------------------
def compare_runs(
    configs: Sequence[str | os.PathLike | dict],
    out_dir: str | os.PathLike = "runs/compare",
    config: CompareConfig | None = None,
    sweep: dict[str, list] | None = None,
    runs_dir: str | os.PathLike | None = None,
    log=print,
) -> pd.DataFrame:
    """Run every config (and sweep variant), evaluate, and write the table and the figure. Returns the table."""
    from workbench.eval.attacks import AttackConfig
    from workbench.eval.config import EvalConfig
    from workbench.eval.evaluate import evaluate_models
    from workbench.run import Run

    cc = config or CompareConfig()
    check_names("compare attacks", cc.attacks, ATTACKS)
    out = Path(out_dir)
    variants = [v for c in configs for v in sweep_variants(c, sweep)]
    if not variants:
        raise WorkbenchError("compare: give at least one config")
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise WorkbenchError(
            f"compare: two configs share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
            "give each its own name:"
        )
    cfgs = [(n, config_from_dict(d, f"config {n}")) for n, d in variants]  # every config checked before any run
    models = {c.model for _, c in cfgs}
    packs = {c.target.pack for _, c in cfgs}
    if len(models) != 1 or len(packs) != 1:
        raise WorkbenchError(
            f"compare: every config needs the same model and pack (got models {sorted(models)}, "
            f"packs {sorted(map(str, packs))})"
        )
    if cc.relearn_text and "relearn" in cc.attacks:  # a text that states the answers fails before any training
        from workbench.corpus import read_documents
        from workbench.pack import load_pack
        from workbench.probe_checks import check_pack_disjoint

        docs = read_documents(cc.relearn_text, "relearning text")
        pack_ref = next(iter(packs))
        if pack_ref is not None:
            check_pack_disjoint(
                load_pack(pack_ref),
                {f"relearning text {d.name}": d.text for d in docs},
                f"--relearn-text {cc.relearn_text}",
            )
    runs_root = Path(runs_dir) if runs_dir else out / "runs"
    runs = []
    for i, (name, cfg) in enumerate(cfgs, 1):
        cfg.report.enabled = False  # the comparison evaluates every model once, below
        log(f"[compare] run {i}/{len(cfgs)}: {name} (method {cfg.method})")
        run = Run(cfg, runs_root / name, update=True, progress=cc.progress, log=log)
        run.run(("reinforce", "score", "labels", "finetune"))
        runs.append(run)
    first = runs[0]
    pack = first.cfg.target.pack
    reference = cc.reference or first.reference_spec  # an implanted run's untouched baseline never saw the target
    from workbench.eval.utility import default_evaldata_dir

    # WikiText-2 where the eval data is present; else the retain text (which retain-NLL methods train on)
    ppl_text = default_evaldata_dir() / "wikitext2_test_raw.txt"
    if not ppl_text.is_file():
        ppl_text = out / "perplexity_text.txt"
        if first.retain_documents and not ppl_text.is_file():
            atomic_write_text(ppl_text, "\n\n".join(d.text for d in first.retain_documents))
    sections = ("probes", "collateral") + (("perplexity",) if ppl_text.is_file() else ()) + tuple(cc.attacks)
    sections += standard_sections(pack)
    ecfg = EvalConfig(
        pack=pack,
        sections=sections,
        splits=(cc.split,),
        ppl_text=str(ppl_text),
        ppl_max_tokens=cc.ppl_max_tokens,
        probe_limit=cc.probe_limit,
        seed=cc.seed,
        progress=cc.progress,
        figures=False,
        formats=("csv",),
        batch_size=8,
        max_batch_tokens=2048,  # two 1024-token perplexity windows per pass: their logits dominate memory
        attacks=AttackConfig(
            relearn_steps=tuple(cc.relearn_steps),
            relearn_exclude_run=str(first.dir),
            seed=cc.seed,
            relearn_text=cc.relearn_text,
            quantize_bits=QUANT_BITS,
        ),
        reference="reference" if reference else None,
    )
    log(f"[compare] evaluating the baseline and {len(runs)} unlearned models on the {cc.split} probes")
    models_arg = [("baseline", first.baseline_spec)] + [(r.cfg.name, str(r.dir)) for r in runs]
    if reference:
        models_arg.append(("reference", reference))
    rep = evaluate_models(models_arg, ecfg, out / "eval")
    table = comparison_table(rep.table, rep.details.get("probes", pd.DataFrame()), runs, cc)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    atomic_write_text(out / "compare.md", _markdown(table, cc))
    atomic_write_json(out / "compare.json", {"split": cc.split, "runs": table.to_dict(orient="records")})
    fig = compare_figure(table, cc)
    atomic_write(out / "compare.html", lambda tmp: fig.write_html(tmp, include_plotlyjs="directory", full_html=True))
    log(f"[compare] {out / 'compare.md'}, {out / 'compare.html'}")
    return table


def standard_sections(pack) -> tuple[str, ...]:
    """The field's measures (workbench/eval/ground_truth.py) that a pack's files allow."""
    from workbench.pack import load_pack

    p = load_pack(pack)
    out = tuple(s for s in ("trivia", "qa", "retain_qa") if p.has_probes(s))
    if p.has_probes("qa") or p.has_probes("knowmem"):
        out += ("knowmem",)
    if p.has_probes("qa") or p.has_probes("verbmem"):
        out += ("verbmem",)
    return out + (("mia",) if p.has_holdout() else ())


def _pick(
    table: pd.DataFrame,
    model: str,
    section: str,
    metric: str,
    variant: str | None = None,
    set_: str | None = None,
    split: str | None = None,
) -> float:
    t = table[(table["model"] == model) & (table["section"] == section) & (table["metric"] == metric)]
    if variant is not None:
        t = t[t["variant"] == variant]
    if set_ is not None:
        t = t[t["set"] == set_]
    if split is not None:
        t = t[t["split"] == split]
    return float(t["value"].iloc[0]) if len(t) else math.nan


def comparison_table(table: pd.DataFrame, probes: pd.DataFrame, runs: list, cc: CompareConfig) -> pd.DataFrame:
    """One row per run: drops with 95% intervals, perplexity rise, the attacks; and the Pareto flags."""
    from workbench.eval.ground_truth import standard_measures

    rng = np.random.default_rng(cc.seed)
    plain = probes[probes["variant"] == "original"] if not probes.empty else probes
    rows = []
    for run in runs:
        name = run.cfg.name
        row = {
            "run": name,
            "method": run.cfg.method,
            "run_dir": str(run.dir),
            "seconds": (run.stage_record("finetune") or {}).get("seconds"),
        }
        for key, set_ in (("target", "probability"), ("collateral", "collateral"), ("general", "general")):
            b = plain[(plain["model"] == "baseline") & (plain["set"] == set_)].set_index("probe_id")["prob"]
            u = plain[(plain["model"] == name) & (plain["set"] == set_)].set_index("probe_id")["prob"]
            both = b.index.intersection(u.index)
            if len(both):
                v, lo, hi = _relative_drop(b[both].to_numpy(), u[both].to_numpy(), cc.bootstrap, rng)
                row.update(
                    {
                        f"{key}_prob": float(u[both].mean()),
                        f"base_{key}_prob": float(b[both].mean()),
                        f"{key}_drop": v,
                        f"{key}_drop_lo": lo,
                        f"{key}_drop_hi": hi,
                        f"{key}_n": len(both),
                    }
                )
        pb, pu = _pick(table, "baseline", "perplexity", "ppl"), _pick(table, name, "perplexity", "ppl")
        row["ppl_rise"] = pu / pb - 1.0 if pb == pb and pu == pu else math.nan
        # attacks: the mean probability of the target probes that each brings back (baseline beside it)
        for who, prefix in (("baseline", "base_"), (name, "")):
            row[f"{prefix}primed_prob"] = _pick(table, who, "priming", "mean_prob", "primed", "probability", cc.split)
            row[f"{prefix}para_max_prob"] = _pick(
                table, who, "paraphrase", "mean_max_prob", "paraphrase", "probability", cc.split
            )
            row[f"{prefix}adv_worst_prob"] = _pick(
                table, who, "adversarial", "mean_prob", "worst", "probability", cc.split
            )
            for n in cc.relearn_steps:
                row[f"{prefix}relearn{n}_prob"] = _pick(
                    table, who, "relearn", "mean_prob", f"relearn_{n}", "probability", cc.split
                )
            for b in QUANT_BITS:
                row[f"{prefix}quant{b}_prob"] = _pick(
                    table, who, "quantize", "mean_prob", f"quant{b}", "probability", cc.split
                )
            # the residual probe at the layer chosen on the dev probes, and its shuffled-label control
            for metric, key in (
                ("accuracy", "residual_acc"),
                ("control", "residual_control"),
                ("layer", "residual_layer"),
            ):
                row[f"{prefix}{key}"] = _pick(table, who, "residual", metric, "chosen", "probability", cc.split)
            row.update({f"{prefix}{k}": v for k, v in standard_measures(table, who, cc.split).items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    if "target_drop" in df and "collateral_drop" in df:
        harms = [k for k in ("collateral_drop", "general_drop", "ppl_rise") if k in df and df[k].notna().all()]
        df["pareto"] = pareto_mask(df["target_drop"].to_numpy(), df[harms].to_numpy())
    return df


def format_change(v) -> str:
    """A relative change as a percentage; a blow-up (a diverged model's perplexity) as a factor."""
    if v is None or v != v:
        return ""
    return f"×{1 + v:.2g}" if v >= 10 else f"{100 * v:+.1f}%"


def _markdown(df: pd.DataFrame, cc: CompareConfig) -> str:
    steps = [0, *cc.relearn_steps]
    head = [
        "run",
        "method",
        "target drop [95% CI]",
        "collateral drop",
        "general drop",
        "ppl rise",
        "primed P",
        "paraphrase max P",
        "adv. worst P",
        "relearning P after " + " → ".join(map(str, steps)) + " steps",
        "quantized P (" + " / ".join(f"{b}-bit" for b in QUANT_BITS) + ")",
        "residual acc (control) [layer]",
        "Pareto",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(v, digits=3):
        return "" if v is None or v != v else f"{v:.{digits}f}"

    def attacks(r, prefix):
        curve = [r.get(f"{prefix}target_prob")] + [r.get(f"{prefix}relearn{n}_prob") for n in cc.relearn_steps]
        quant = [r.get(f"{prefix}quant{b}_prob") for b in QUANT_BITS]
        acc, ctrl, layer = (r.get(f"{prefix}residual_{k}") for k in ("acc", "control", "layer"))
        residual = "" if acc is None or acc != acc else f"{acc:.2f} ({num(ctrl, 2)}) [{int(layer)}]"
        return [
            num(r.get(f"{prefix}primed_prob")),
            num(r.get(f"{prefix}para_max_prob")),
            num(r.get(f"{prefix}adv_worst_prob")),
            " → ".join(num(v) for v in curve) if any(v == v and v is not None for v in curve[1:]) else "",
            " / ".join(num(v) for v in quant) if any(v == v and v is not None for v in quant) else "",
            residual,
        ]

    if len(df):
        lines.append("| " + " | ".join(["baseline", "", "", "", "", "", *attacks(df.iloc[0], "base_"), ""]) + " |")
    for _, r in df.iterrows():

        def ci(key, r=r):
            if f"{key}_drop" not in r or r[f"{key}_drop"] != r[f"{key}_drop"]:
                return ""
            return f"{100 * r[f'{key}_drop']:.1f}% [{100 * r[f'{key}_drop_lo']:.1f}, {100 * r[f'{key}_drop_hi']:.1f}]"

        cells = [
            r["run"],
            r["method"],
            ci("target"),
            ci("collateral"),
            ci("general"),
            format_change(r.get("ppl_rise")),
            *attacks(r, ""),
            "✓" if r.get("pareto") else "",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    note = (
        f"\nDrops are 1 - mean(unlearned)/mean(baseline) of P(correct next token) on the {cc.split} probes, "
        "95% paired-bootstrap intervals. Attacks, as the mean P of the target probes: after a passage of the "
        "target text (primed), the best of each probe's paraphrases, the worst adversarial prompt, and after N "
        "relearning steps (0: no attack) on text that states none of the probes' answers, and with the weights "
        "rounded to 8- and 4-bit grids (round to nearest, per-group absmax, groups of 128); residual acc: the "
        "linear-probe accuracy telling each answer from a same-type distractor at the layer chosen on the dev "
        "probes (chance 0.5), beside its control (the same probe on shuffled labels). "
        "The baseline row is the same attacks on the model before unlearning. Pareto: the target drop is not "
        "below zero, and no other run forgets at least as much with no more collateral drop, general drop and "
        "perplexity rise (harms below zero count as zero).\n"
    )
    return "\n".join(lines) + "\n" + note + _standard_markdown(df)


def _standard_markdown(df: pd.DataFrame) -> str:
    """The field's measures per run (and the baseline) as a second table, where the pack allows any."""
    from workbench.eval.ground_truth import STANDARD_COLUMNS

    cols = [c for c in STANDARD_COLUMNS if c in df]
    if not len(df) or not cols:
        return ""

    def cell(v):
        return v if isinstance(v, str) else "" if v is None or v != v else f"{v:.3g}"

    lines = [
        "",
        "| run | " + " | ".join(cols) + " |",
        "|" + "---|" * (len(cols) + 1),
        "| baseline | " + " | ".join(cell(df.iloc[0].get(f"base_{c}")) for c in cols) + " |",
    ]
    lines += ["| " + str(r["run"]) + " | " + " | ".join(cell(r.get(c)) for c in cols) + " |" for _, r in df.iterrows()]
    note = (
        "\nThe field's measures (docs/evaluation.md): trivia accuracy (chance 0.5), TOFU's truth ratio "
        "(mean min(R, 1/R)), forget quality (KS p-value against the reference), extraction strength, knowledge "
        "memorisation (ROUGE-L recall), model utility on retain questions, verbatim memorisation (ROUGE-L F1), "
        "Min-K% AUC corpus vs holdout and PrivLeak (% against the reference).\n"
    )
    return "\n".join(lines) + "\n" + note


def compare_figure(df: pd.DataFrame, cc: CompareConfig | None = None):
    """Target drop (y) against collateral drop, general drop and perplexity rise (x), one point per run, error
    bars from the intervals, the Pareto front of each panel drawn, the attacks in the hover."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cc = cc or CompareConfig()
    panels = [("collateral_drop", "collateral drop"), ("general_drop", "general drop"), ("ppl_rise", "perplexity rise")]
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=[p[1] for p in panels])
    methods = sorted(df["method"].unique())
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    color = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    hover = []
    for _, r in df.iterrows():
        parts = [f"<b>{r['run']}</b> ({r['method']})", f"target drop {format_change(r.get('target_drop'))}"]
        for key, what in (("primed_prob", "primed P"), ("para_max_prob", "paraphrase max P")):
            if r.get(key) == r.get(key) and r.get(key) is not None:
                parts.append(f"{what} {r[key]:.3f} (base {r['base_' + key]:.3f})")
        if r.get("adv_worst_prob") == r.get("adv_worst_prob"):
            parts.append(f"adversarial worst P {r['adv_worst_prob']:.3f} (base {r['base_adv_worst_prob']:.3f})")
        for n in cc.relearn_steps:
            v = r.get(f"relearn{n}_prob")
            if v == v and v is not None:
                parts.append(f"after {n} relearning steps P {v:.3f} (base {r[f'base_relearn{n}_prob']:.3f})")
        for b in QUANT_BITS:
            v = r.get(f"quant{b}_prob")
            if v == v and v is not None:
                parts.append(f"{b}-bit quantized P {v:.3f} (base {r[f'base_quant{b}_prob']:.3f})")
        if r.get("residual_acc") == r.get("residual_acc") and r.get("residual_acc") is not None:
            parts.append(
                f"residual probe acc {r['residual_acc']:.2f}, control {r['residual_control']:.2f}, layer "
                f"{int(r['residual_layer'])} (base {r['base_residual_acc']:.2f})"
            )
        hover.append("<br>".join(parts))
    df = df.assign(_hover=hover)
    for col, (xkey, _title) in enumerate(panels, 1):
        if xkey not in df:
            continue
        for m in methods:
            d = df[df["method"] == m]
            err_x = None
            if f"{xkey}_lo" in d:
                err_x = dict(
                    type="data",
                    symmetric=False,
                    array=(d[f"{xkey}_hi"] - d[xkey]).tolist(),
                    arrayminus=(d[xkey] - d[f"{xkey}_lo"]).tolist(),
                )
            fig.add_trace(
                go.Scatter(
                    x=d[xkey],
                    y=d["target_drop"],
                    mode="markers+text",
                    text=d["run"],
                    textposition="top center",
                    name=m,
                    legendgroup=m,
                    showlegend=col == 1,
                    marker=dict(size=11, color=color[m]),
                    error_x=err_x,
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(d["target_drop_hi"] - d["target_drop"]).tolist(),
                        arrayminus=(d["target_drop"] - d["target_drop_lo"]).tolist(),
                    ),
                    hovertext=d["_hover"],
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
        ok = df[[xkey, "target_drop"]].notna().all(axis=1)
        sub = df[ok]
        if len(sub):
            front = sub[pareto_mask(sub["target_drop"].to_numpy(), sub[xkey].to_numpy())].sort_values(xkey)
            fig.add_trace(
                go.Scatter(
                    x=front[xkey],
                    y=front["target_drop"],
                    mode="lines",
                    line=dict(dash="dash", color="grey"),
                    name="Pareto front",
                    legendgroup="front",
                    showlegend=col == 1,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(tickformat=".0%", title_text=panels[col - 1][1] + " (lower is better)", row=1, col=col)
    fig.update_yaxes(
        tickformat=".0%", title_text=f"target familiarity drop ({cc.split} probes; higher forgets more)", row=1, col=1
    )
    fig.update_layout(
        title="Unlearning methods: forgetting against collateral damage",
        height=520,
        autosize=True,
        template="plotly_white",
    )
    return fig


def attack_figures(out_dir: str | os.PathLike, split: str = "dev") -> dict:
    """From a finished comparison: the relearning curves (target P against relearning steps, one line per model)
    and the residual-probe accuracy per layer (one line per model)."""
    import plotly.graph_objects as go

    t = pd.read_csv(Path(out_dir) / "eval" / "results.csv")
    figs = {}
    rel = t[
        (t["section"] == "relearn") & (t["metric"] == "mean_prob") & (t["set"] == "probability") & (t["split"] == split)
    ]
    if len(rel):
        fig = go.Figure()
        for model, g in rel.groupby("model", sort=False):
            g = g.assign(steps=g["variant"].str.replace("relearn_", "").astype(int)).sort_values("steps")
            fig.add_trace(
                go.Scatter(
                    x=g["steps"],
                    y=g["value"],
                    mode="lines+markers",
                    name=model,
                    line=dict(width=4 if model == "baseline" else 2, dash="dot" if model == "baseline" else None),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(g["ci_high"] - g["value"]).tolist(),
                        arrayminus=(g["value"] - g["ci_low"]).tolist(),
                    ),
                )
            )
        fig.update_layout(
            title="Relearning: familiarity after N finetuning steps on unseen target text",
            xaxis_title="relearning steps",
            yaxis_title=f"mean P(correct next token), {split} probes",
            template="plotly_white",
            height=420,
        )
        figs["relearn"] = fig
    res = t[(t["section"] == "residual") & (t["split"] == split) & (t["variant"] != "chosen")]
    if len(res):
        fig = go.Figure()
        palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        for i, (model, g) in enumerate(res.groupby("model", sort=False)):
            g = g.assign(layer=g["variant"].astype(int)).sort_values("layer")
            acc, ctrl = g[g["metric"] == "accuracy"], g[g["metric"] == "control"]
            color = "black" if model == "baseline" else palette[i % len(palette)]
            fig.add_trace(
                go.Scatter(
                    x=acc["layer"],
                    y=acc["value"],
                    mode="lines",
                    name=model,
                    legendgroup=model,
                    line=dict(
                        width=4 if model == "baseline" else 2, color=color, dash="dot" if model == "baseline" else None
                    ),
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=ctrl["layer"],
                    y=ctrl["value"],
                    mode="lines",
                    name=f"{model} control",
                    legendgroup=model,
                    showlegend=False,
                    opacity=0.5,
                    line=dict(width=1, dash="dash", color=color),
                )
            )
            chosen = t[
                (t["section"] == "residual")
                & (t["model"] == model)
                & (t["split"] == split)
                & (t["variant"] == "chosen")
                & (t["metric"] == "layer")
            ]
            if len(chosen):
                pick = acc[acc["layer"] == int(chosen["value"].iloc[0])]
                fig.add_trace(
                    go.Scatter(
                        x=pick["layer"],
                        y=pick["value"],
                        mode="markers",
                        legendgroup=model,
                        showlegend=False,
                        marker=dict(size=10, symbol="diamond", color=color),
                        hovertext=f"{model}: layer chosen on the dev probes",
                        hoverinfo="text",
                    )
                )
        fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="chance")
        fig.update_layout(
            title="Residual knowledge: linear probe accuracy per layer (answer vs same-type distractor; "
            "thin dashed: the shuffled-label control; diamond: the layer chosen on dev)",
            xaxis_title="layer (0 = embeddings)",
            yaxis_title="cross-validated accuracy",
            template="plotly_white",
            height=420,
        )
        figs["residual"] = fig
    return figs


# -- the command line -------------------------------------------------------------------------------------------------------
def add_compare_parser(sub) -> None:
    sp = sub.add_parser(
        "compare", help="run several configs (methods, strengths) and compare them in one table and figure"
    )
    sp.add_argument("configs", nargs="+", help="YAML run configs (each with its own name)")
    sp.add_argument("--out", default="runs/compare", help="output folder (runs, evaluation, table, figure)")
    sp.add_argument("--runs-dir", default=None, help="where the runs go (default OUT/runs)")
    sp.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="one variant of every config per value, e.g. methods.npo.beta=0.05,0.1 (repeatable)",
    )
    sp.add_argument("--split", choices=("dev", "heldout"), default="dev", help="probe split (tune on dev)")
    sp.add_argument("--attacks", default=",".join(ATTACKS), help="attack sections, comma-separated ('' for none)")
    sp.add_argument("--relearn-steps", default="5,20,50", help="relearning schedule")
    sp.add_argument(
        "--relearn-text",
        default=None,
        help="a .txt file or folder to relearn on; it must state none of the probes' answers (default: "
        "the pack corpus no run trained on, less the sentences that state a probe's answer)",
    )
    sp.add_argument("--probe-limit", type=int, default=None, help="first N probes of each probe file (a quick look)")
    sp.add_argument(
        "--reference",
        default=None,
        metavar="MODEL",
        help="a model that never saw the target: forget quality and PrivLeak compare each run with it",
    )
    sp.add_argument("--no-progress", action="store_true")
    sp.set_defaults(func=_cmd_compare)


def _cmd_compare(args) -> int:
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    check_names("--attacks", attacks, ATTACKS)
    try:
        steps = tuple(int(s) for s in args.relearn_steps.split(",") if s)
    except ValueError as exc:
        raise WorkbenchError(f"--relearn-steps: expected integers like 5,20,50, got {args.relearn_steps!r}") from exc
    cc = CompareConfig(
        split=args.split,
        attacks=attacks,
        relearn_steps=steps,
        probe_limit=args.probe_limit,
        progress=not args.no_progress,
        relearn_text=args.relearn_text,
        reference=args.reference,
    )
    table = compare_runs(args.configs, args.out, cc, _parse_sweep(args.sweep), args.runs_dir)
    print(_markdown(table, cc))
    return 0
