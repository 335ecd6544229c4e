"""The evaluation's summary and files: headline numbers per model, paired differences to the baseline with 95%
intervals, the formulas, and the report written to ``<out>``:

- ``results.csv`` / ``results.parquet``: the tidy table, one row per (model, section, set, split, variant,
  metric) with ``value, ci_low, ci_high, n``;
- ``probes.*``, ``completions.*``, ``mc_items.*``: per-probe, per-completion and per-item rows;
- ``summary.json``: the config, the models, the headline numbers per model and the differences to the first
  model (the baseline) with 95% confidence intervals;
- ``report.md``: the headline table in markdown; ``figures/*.html``: the plotly figures (workbench/eval/figures.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.config import EvalConfig
from workbench.eval.figures import build_figures, write_figures
from workbench.eval.ground_truth import NEEDS_REFERENCE
from workbench.eval.utility import BENCHMARKS, paired_bootstrap
from workbench.io import atomic_write, atomic_write_text

__all__ = [
    "FORMULAS",
    "EvalReport",
    "dumps_json",
    "headline_table",
    "load_report",
    "summarize",
    "write_frame",
    "write_report",
]


DETAIL_FRAMES = (
    "probes",
    "completions",
    "mc_items",
    "qa_items",
    "knowmem_items",
    "verbmem_items",
    "mia_items",
    "trivia_items",
)  # the per-item frames a report writes (each unit names its own)


@dataclass
class EvalReport:
    """What `evaluate_models` produced (also on disk in ``out_dir``)."""

    out_dir: Path  # where the files are
    table: pd.DataFrame  # the tidy table (TABLE_COLUMNS)
    details: dict[str, pd.DataFrame]  # 'probes', 'completions', 'mc_items': per-item rows with a 'model' column
    summary: dict[str, Any]  # the JSON summary
    figures: dict[str, Any] = field(default_factory=dict)  # name -> plotly Figure
    files: dict[str, Path] = field(default_factory=dict)  # name -> written file

    def headline(self) -> pd.DataFrame:
        """Headline metrics (rows) per model (columns)."""
        return headline_table(self.summary)

    def markdown(self) -> str:
        """The headline table as markdown."""
        return _markdown(self.headline())


def write_frame(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _clean(obj: Any) -> Any:
    """NaN and infinities become None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, default=_json_default, allow_nan=False)


def _pick(
    table: pd.DataFrame,
    model: str,
    section: str,
    set_: str,
    metric: str,
    split: str | None = None,
    variant: str | None = None,
) -> tuple[float, float, float, int] | None:
    t = table[
        (table["model"] == model) & (table["section"] == section) & (table["set"] == set_) & (table["metric"] == metric)
    ]
    if split is not None:
        t = t[t["split"] == split]
    if variant is not None:
        t = t[t["variant"] == variant]
    if t.empty:
        return None
    r = t.iloc[0]
    return float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n"])


def _headline_split(table: pd.DataFrame) -> str:
    splits = set(
        table.loc[table["section"].isin(["probes", "priming", "paraphrase", "completion", "qa", "trivia"]), "split"]
    )
    return "heldout" if "heldout" in splits else "all"


def _headlines(table: pd.DataFrame, model: str, notes: Sequence[str] = ()) -> dict[str, float | str]:
    """The numbers a reader looks at first, per model."""
    split = _headline_split(table)
    out: dict[str, float] = {}

    def put(key: str, got) -> None:
        if got is not None:
            out[key] = got[0]

    put("familiarity_prob", _pick(table, model, "probes", "probability", "mean_prob", split, "original"))
    put("familiarity_top1", _pick(table, model, "probes", "probability", "top1_rate", split, "original"))
    put("familiarity_seq_logprob", _pick(table, model, "probes", "probability", "mean_seq_logprob", split, "original"))
    put(
        "completion_familiarity_greedy", _pick(table, model, "completion", "completion", "familiarity", split, "greedy")
    )
    put(
        "completion_familiarity_sampled",
        _pick(table, model, "completion", "completion", "familiarity", split, "sampled"),
    )
    put("completion_share_3_greedy", _pick(table, model, "completion", "completion", "share_3", split, "greedy"))
    put(
        "completion_authors_score_greedy",
        _pick(table, model, "completion", "completion", "authors_score", split, "greedy"),
    )
    put(
        "completion_authors_score_sampled",
        _pick(table, model, "completion", "completion", "authors_score", split, "sampled"),
    )
    put("primed_prob", _pick(table, model, "priming", "probability", "mean_prob", split, "primed"))
    put("priming_delta", _pick(table, model, "priming", "probability", "delta", split, "primed"))
    put("paraphrase_prob", _pick(table, model, "paraphrase", "probability", "mean_prob", split, "paraphrase"))
    put("paraphrase_max_prob", _pick(table, model, "paraphrase", "probability", "mean_max_prob", split, "paraphrase"))
    put("collateral_prob", _pick(table, model, "collateral", "collateral", "mean_prob", "all", "original"))
    put("general_prob", _pick(table, model, "collateral", "general", "mean_prob", "all", "original"))
    util = table[(table["model"] == model) & (table["section"] == "utility")]
    accs = []
    for task in sorted(util["set"].unique()):
        metric = BENCHMARKS.get(task, "acc")
        got = _pick(table, model, "utility", task, metric)
        if got is not None:
            out[f"{task}_{metric}"] = got[0]
            accs.append(got[0])
    if accs:
        out["utility_mean"] = float(np.mean(accs))
    ppl = table[(table["model"] == model) & (table["section"] == "perplexity") & (table["metric"] == "ppl")]
    for _, r in ppl.iterrows():
        out[f"ppl_{r['set']}"] = float(r["value"])
    put("trivia_accuracy", _pick(table, model, "trivia", "trivia", "accuracy", split))
    put("truth_ratio_forget", _pick(table, model, "qa", "qa", "truth_ratio_forget", split))
    put("forget_quality", _pick(table, model, "qa", "qa", "forget_quality", split))
    put("extraction_strength", _pick(table, model, "qa", "qa", "extraction_strength", split))
    put("knowmem_rougeL_recall", _pick(table, model, "knowmem", "knowmem", "rougeL_recall", split))
    put("model_utility", _pick(table, model, "retain_qa", "retain_qa", "model_utility", split))
    put("verbmem_rougeL_f1", _pick(table, model, "verbmem", "verbmem", "rougeL_f1"))
    put("mia_auc_min_k", _pick(table, model, "mia", "corpus_vs_holdout", "auc_min_k"))
    put("privleak_min_k", _pick(table, model, "mia", "corpus_vs_holdout", "privleak_min_k"))
    needs = [n.split(":")[0] for n in notes if NEEDS_REFERENCE in n]
    if "forget_quality" in needs:
        out["forget_quality"] = NEEDS_REFERENCE
    if "privleak" in needs:
        out["privleak_min_k"] = NEEDS_REFERENCE
    lme = table[(table["model"] == model) & (table["section"] == "lm_eval")]
    for _, r in lme.iterrows():
        out[f"lm_eval_{r['set']}_{r['metric']}"] = float(r["value"])
    return out


def _comparisons(table: pd.DataFrame, frames: dict[str, pd.DataFrame], base: str, other: str) -> dict[str, dict]:
    """Paired differences ``other - baseline`` with 95% bootstrap intervals over items/probes."""
    out: dict[str, dict] = {}
    mc = frames.get("mc_items")
    if mc is not None and not mc.empty:
        for task in sorted(mc["task"].unique()):
            a = mc[(mc["model"] == base) & (mc["task"] == task)].set_index("item_id")
            b = mc[(mc["model"] == other) & (mc["task"] == task)].set_index("item_id")
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            metric = BENCHMARKS.get(task, "acc")
            col = "correct_norm" if metric == "acc_norm" else "correct"
            d, lo, hi = paired_bootstrap(a.loc[common, col].astype(float), b.loc[common, col].astype(float))
            out[f"{task}_{metric}"] = {"diff": d, "ci_low": lo, "ci_high": hi, "n": len(common)}
    pr = frames.get("probes")
    if pr is not None and not pr.empty:
        split = _headline_split(table)
        for (set_, variant), g in pr.groupby(["set", "variant"]):
            if split != "all":
                g = g[g["split"] == split]
            key_cols = ["probe_id"] + (["paraphrase"] if "paraphrase" in g.columns and variant == "paraphrase" else [])
            a = g[g["model"] == base].set_index(key_cols)["prob"]
            b = g[g["model"] == other].set_index(key_cols)["prob"]
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            d, lo, hi = paired_bootstrap(a.loc[common], b.loc[common])
            out[f"{set_}_{variant}_prob"] = {"diff": d, "ci_low": lo, "ci_high": hi, "n": len(common)}
    return out


FORMULAS = {
    "prob": "probability of the answer's first token, summed over the distinct first tokens of the targets",
    "familiarity_prob": "mean over probes of prob (probability probes, headline split)",
    "top1_rate": "share of probes whose answer's first token is the model's top choice",
    "completion_familiarity": "F = mean(grade)/3 = (1*share_1 + 2*share_2 + 3*share_3)/3 over graded completions",
    "completion_authors_score": "(5*n3 + n2)/n over graded completions (the authors' score, 0-5)",
    "keyword_grade": "min(3, 1 point per new reference keyword + 2 points per new anchored name)",
    "priming_delta": "mean over probes of prob(passage + prompt) - prob(prompt)",
    "paraphrase_max_prob": "mean over probes of the max prob over the probe's paraphrases",
    "acc": "argmax of summed log P(choice | context)",
    "acc_norm": "argmax of summed log P(choice | context) / len(choice in characters)",
    "ppl": "exp(total NLL / tokens), sliding window",
    "trivia_accuracy": "share of two-answer questions whose true answer has the higher mean per-token log-likelihood "
    "(chance 0.5; Wilson 95% interval)",
    "truth_ratio": "R = exp(mean_j mean_lp(perturbed_j) - mean_lp(paraphrased)) per question (TOFU)",
    "truth_ratio_forget": "mean over target questions of min(R, 1/R) (open-unlearning's aggregate; 1: cannot tell)",
    "forget_quality": "p-value of the two-sample KS test between the model's and the reference's truth ratios (TOFU)",
    "extraction_strength": "1 - k/len, k the first answer position from which every greedy token is right",
    "knowmem_rougeL_recall": "ROUGE-L recall of the greedy answer against the gold answer (MUSE knowmem)",
    "model_utility": "harmonic mean of answer probability, ROUGE-L recall and mean max(0, 1-R) on retain questions",
    "verbmem_rougeL_f1": "ROUGE-L F1 of the greedy continuation of a corpus prefix against the true one (MUSE verbmem)",
    "mia_auc_min_k": "AUC of Min-K% (k=40%) telling corpus text from holdout text (1: recognised, 0.5: chance)",
    "privleak_min_k": "(AUC - AUC_reference) / AUC_reference x 100 (MUSE PrivLeak)",
}


def summarize(
    table: pd.DataFrame, frames: dict[str, pd.DataFrame], config: EvalConfig, model_info: list[dict], notes: list[str]
) -> dict:
    labels = [m["label"] for m in model_info]
    summary = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": asdict(config),
        "models": model_info,
        "baseline": labels[0],
        "headline_split": _headline_split(table) if not table.empty else "all",
        "headlines": {lab: _headlines(table, lab, notes) for lab in labels},
        "comparisons": {lab: _comparisons(table, frames, labels[0], lab) for lab in labels[1:]},
        "formulas": FORMULAS,
        "notes": notes,
    }
    return summary


def headline_table(summary: dict) -> pd.DataFrame:
    """Headline metrics (rows) per model (columns), plus ``diff`` columns against the baseline."""
    heads = summary["headlines"]
    labels = list(heads)
    keys: list[str] = []
    for lab in labels:
        keys += [k for k in heads[lab] if k not in keys]
    df = pd.DataFrame({lab: [heads[lab].get(k, math.nan) for k in keys] for lab in labels}, index=keys)
    df.index.name = "metric"
    return df


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    return str(v)


def _markdown(df: pd.DataFrame) -> str:
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for key, row in df.iterrows():
        lines.append("| " + " | ".join([str(key)] + [_fmt(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def write_report(
    table: pd.DataFrame,
    details: dict[str, pd.DataFrame],
    summary: dict,
    out_dir: str | Path,
    config: EvalConfig | None = None,
) -> EvalReport:
    """Write the table, details, summary, markdown and figures to ``out_dir`` (atomically) and return them."""
    config = config or EvalConfig()
    out = Path(out_dir)
    files: dict[str, Path] = {}
    formats = tuple(config.formats)
    bad = [f for f in formats if f not in ("csv", "parquet")]
    if bad:
        raise WorkbenchError(f"unknown table format(s) {', '.join(bad)}: use csv and/or parquet")
    names = {"results": table, **{k: details.get(k) for k in DETAIL_FRAMES}}
    for name, df in names.items():
        if df is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            write_frame(df, path)
            files[f"{name}.{fmt}"] = path
    atomic_write_text(out / "summary.json", dumps_json(summary))
    files["summary.json"] = out / "summary.json"
    report = EvalReport(out, table, details, summary, {}, files)
    atomic_write_text(out / "report.md", "# Evaluation report\n\n" + report.markdown() + "\n")
    files["report.md"] = out / "report.md"
    if config.figures:
        report.figures = build_figures(table, details, summary)
        for name, path in write_figures(report.figures, out / "figures").items():
            files[f"figures/{name}.html"] = path
    return report


def load_report(out_dir: str | Path) -> EvalReport:
    """Read a written report back (table, details, summary; figures are rebuilt)."""
    out = Path(out_dir)
    if not (out / "summary.json").is_file():
        raise WorkbenchError(f"{out} holds no summary.json; run `workbench eval --out {out}` first")

    def read(name: str) -> pd.DataFrame | None:
        for fmt in ("parquet", "csv"):
            p = out / f"{name}.{fmt}"
            if p.is_file():
                return pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
        return None

    table = read("results")
    if table is None:
        raise WorkbenchError(f"{out} holds no results.parquet or results.csv")
    details = {k: v for k in DETAIL_FRAMES if (v := read(k)) is not None}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return EvalReport(out, table, details, summary, build_figures(table, details, summary), {})
