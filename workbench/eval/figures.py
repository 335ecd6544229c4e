"""The evaluation's plotly figures (offline HTML): familiarity per probe set, utility per task with the paired
differences to the baseline, per-probe scatter, completion grades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.eval.completion import GRADES
from workbench.eval.utility import BENCHMARKS
from workbench.io import atomic_write

__all__ = ["build_figures", "write_figures"]


def _err(values: pd.Series, lo: pd.Series, hi: pd.Series) -> dict:
    plus = (hi - values).where(hi.notna(), None)
    minus = (values - lo).where(lo.notna(), None)
    return dict(type="data", array=plus.tolist(), arrayminus=minus.tolist(), visible=True)


def build_figures(table: pd.DataFrame, details: dict[str, pd.DataFrame], summary: dict) -> dict[str, Any]:
    """Plotly figures: 'familiarity', 'utility', 'probe_scatter', 'completion_grades', 'standard_measures',
    'truth_ratio' (those the data allow)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs: dict[str, Any] = {}
    models = [m["label"] for m in summary.get("models", [])] or sorted(table["model"].unique())
    split = summary.get("headline_split", "all")
    palette = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]
    color = {m: palette[i % len(palette)] for i, m in enumerate(models)}

    # Familiarity per probe set, before/after.
    fam = table[
        (table["metric"] == "mean_prob")
        & table["section"].isin(["probes", "priming", "paraphrase", "collateral"])
        & ~table["set"].str.contains("/", regex=False)
    ]
    fam = fam[(fam["split"] == split) | (fam["section"] == "collateral") & (fam["split"] == "all")]
    comp = table[(table["section"] == "completion") & (table["metric"] == "familiarity") & (table["split"] == split)]
    if not fam.empty or not comp.empty:
        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.65, 0.35],
            subplot_titles=(
                f"Answer probability per probe set (mean, 95% CI, split {split})",
                "Completion familiarity (mean grade / 3)",
            ),
        )
        for m in models:
            f = fam[fam["model"] == m]
            if not f.empty:
                x = [s if v in ("original", "-") else f"{s} ({v})" for s, v in zip(f["set"], f["variant"])]
                fig.add_trace(
                    go.Bar(
                        name=m,
                        x=x,
                        y=f["value"],
                        marker_color=color[m],
                        legendgroup=m,
                        error_y=_err(f["value"], f["ci_low"], f["ci_high"]),
                    ),
                    row=1,
                    col=1,
                )
            c = comp[comp["model"] == m]
            if not c.empty:
                fig.add_trace(
                    go.Bar(
                        name=m,
                        x=c["variant"],
                        y=c["value"],
                        marker_color=color[m],
                        legendgroup=m,
                        showlegend=f.empty,
                        error_y=_err(c["value"], c["ci_low"], c["ci_high"]),
                    ),
                    row=1,
                    col=2,
                )
        fig.update_layout(barmode="group", title="Familiarity with the target, per model", template="plotly_white")
        fig.update_yaxes(title_text="mean probability", row=1, col=1)
        fig.update_yaxes(title_text="familiarity (0-1)", range=[0, 1], row=1, col=2)
        figs["familiarity"] = fig

    # Utility per task with confidence intervals, and paired differences to the baseline.
    util = table[table["section"] == "utility"]
    util = util[[BENCHMARKS.get(t, "acc") == m for t, m in zip(util["set"], util["metric"])]]
    ppl = table[(table["section"] == "perplexity") & (table["metric"] == "ppl")]
    if not util.empty or not ppl.empty:
        comps = summary.get("comparisons", {})
        titles = [
            "Accuracy per task (95% Wilson CI)",
            "Difference to the baseline (95% paired bootstrap CI)",
            "Perplexity",
        ]
        fig = make_subplots(rows=1, cols=3, column_widths=[0.45, 0.35, 0.2], subplot_titles=titles)
        for m in models:
            u = util[util["model"] == m]
            if not u.empty:
                fig.add_trace(
                    go.Bar(
                        name=m,
                        x=[f"{s} ({k})" for s, k in zip(u["set"], u["metric"])],
                        y=u["value"],
                        marker_color=color[m],
                        legendgroup=m,
                        error_y=_err(u["value"], u["ci_low"], u["ci_high"]),
                    ),
                    row=1,
                    col=1,
                )
            diffs = comps.get(m, {})
            keys = [k for k in diffs if k.endswith(("_acc", "_acc_norm"))]  # the multiple-choice comparisons
            if keys:
                d = pd.DataFrame([diffs[k] | {"key": k} for k in keys])
                fig.add_trace(
                    go.Bar(
                        name=f"{m} − {models[0]}",
                        x=d["key"],
                        y=d["diff"],
                        marker_color=color[m],
                        legendgroup=m,
                        showlegend=False,
                        error_y=_err(d["diff"], d["ci_low"], d["ci_high"]),
                    ),
                    row=1,
                    col=2,
                )
            p = ppl[ppl["model"] == m]
            if not p.empty:
                fig.add_trace(
                    go.Bar(name=m, x=p["set"], y=p["value"], marker_color=color[m], legendgroup=m, showlegend=False),
                    row=1,
                    col=3,
                )
        fig.update_layout(barmode="group", title="Utility per task, per model", template="plotly_white")
        fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=1)
        fig.update_yaxes(title_text="accuracy difference", row=1, col=2)
        fig.update_yaxes(title_text="perplexity", row=1, col=3)
        figs["utility"] = fig

    # Per-probe scatter: baseline probability against each other model's.
    pr = details.get("probes")
    if pr is not None and not pr.empty and len(models) >= 2:
        fig = go.Figure()
        base = pr[pr["model"] == models[0]]
        for m in models[1:]:
            other = pr[pr["model"] == m]
            keys = ["set", "variant", "probe_id"] + (["paraphrase"] if "paraphrase" in pr.columns else [])
            merged = base.merge(other, on=keys, suffixes=("_base", "_other"))
            for (set_, variant), g in merged.groupby(["set", "variant"]):
                label = set_ if variant == "original" else f"{set_} ({variant})"
                fig.add_trace(
                    go.Scatter(
                        x=g["prob_base"].clip(lower=1e-8),
                        y=g["prob_other"].clip(lower=1e-8),
                        mode="markers",
                        name=f"{m}: {label}",
                        text=g["probe_id"] + ": " + g["prompt_base"].str.slice(-80),
                        hovertemplate="%{text}<br>baseline %{x:.3g}<br>model %{y:.3g}<extra></extra>",
                    )
                )
        fig.add_trace(
            go.Scatter(x=[1e-8, 1], y=[1e-8, 1], mode="lines", name="no change", line=dict(dash="dash", color="grey"))
        )
        fig.update_layout(
            title=f"Per-probe answer probability: {models[0]} (x) vs other models (y)",
            xaxis=dict(type="log", title=f"{models[0]} probability"),
            yaxis=dict(type="log", title="model probability"),
            template="plotly_white",
        )
        figs["probe_scatter"] = fig

    # Share of completions at each grade.
    shares = table[
        (table["section"] == "completion") & table["metric"].str.startswith("share_") & (table["split"] == split)
    ]
    if not shares.empty:
        fig = go.Figure()
        for g in GRADES:
            s = shares[shares["metric"] == f"share_{g}"]
            fig.add_trace(
                go.Bar(name=f"grade {g}", x=[f"{m} ({v})" for m, v in zip(s["model"], s["variant"])], y=s["value"])
            )
        fig.update_layout(
            barmode="stack", title="Completions at each familiarity grade", yaxis_title="share", template="plotly_white"
        )
        figs["completion_grades"] = fig

    # The field's measures (workbench/eval/ground_truth.py), each on its 0-1 scale, and the truth-ratio distributions.
    picks = [
        ("trivia", "trivia", "accuracy", split, "trivia accuracy"),
        ("qa", "qa", "truth_ratio_forget", split, "truth ratio min(R, 1/R)"),
        ("qa", "qa", "forget_quality", split, "forget quality"),
        ("qa", "qa", "extraction_strength", split, "extraction strength"),
        ("knowmem", "knowmem", "rougeL_recall", split, "knowmem ROUGE-L"),
        ("retain_qa", "retain_qa", "model_utility", split, "model utility"),
        ("verbmem", "verbmem", "rougeL_f1", "-", "verbmem ROUGE-L"),
        ("mia", "corpus_vs_holdout", "auc_min_k", "-", "Min-K% AUC"),
    ]
    rows = []
    for section, set_, metric, sp, name in picks:
        t = table[(table["section"] == section) & (table["set"] == set_) & (table["metric"] == metric)]
        t = t[t["split"] == (sp if sp in set(t["split"]) else "all")] if sp != "-" else t
        rows += [
            {"model": r["model"], "measure": name, "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
            for _, r in t.iterrows()
        ]
    if rows:
        gt = pd.DataFrame(rows)
        fig = go.Figure()
        for m in models:
            g = gt[gt["model"] == m]
            if not g.empty:
                fig.add_trace(
                    go.Bar(
                        name=m,
                        x=g["measure"],
                        y=g["value"],
                        marker_color=color[m],
                        error_y=_err(g["value"], g["ci_low"], g["ci_high"]),
                    )
                )
        fig.update_layout(
            barmode="group",
            title="The field's measures per model (docs/evaluation.md)",
            template="plotly_white",
            yaxis=dict(range=[0, 1.05], title="value (0-1)"),
        )
        figs["standard_measures"] = fig
    qa = details.get("qa_items")
    if qa is not None and not qa.empty and (qa["set"] == "qa").any():
        fig = go.Figure()
        for m in models:
            r = qa[(qa["model"] == m) & (qa["set"] == "qa")]["truth_ratio"]
            if len(r):
                fig.add_trace(go.Histogram(x=np.log10(r), name=m, marker_color=color[m], opacity=0.6))
        fig.update_layout(
            barmode="overlay",
            template="plotly_white",
            xaxis_title="log10 truth ratio R (0: cannot tell)",
            yaxis_title="questions",
            title="Truth ratios on the target's questions (forget quality compares these distributions)",
        )
        figs["truth_ratio"] = fig
    return figs


def write_figures(figures: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write each figure to ``<folder>/<name>.html`` atomically; returns name -> path. The plotly library is
    written once beside them (``plotly.min.js``): offline, and each HTML stays small."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        paths[name] = folder / f"{name}.html"
        atomic_write(
            paths[name], lambda tmp, fig=fig: fig.write_html(tmp, include_plotlyjs="directory", full_html=True)
        )
    return paths
