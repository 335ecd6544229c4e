"""A unit of the evaluation's work (:class:`Unit`) and the tidy metric rows units return (:func:`metric_rows`);
the planning of units is in workbench/eval/units.py, the attacks' units in workbench/eval/attacks.py."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.models import LoadedModel

__all__ = ["PROBE_CI", "PROBE_METRICS", "Unit", "file_stamp", "metric_rows"]


@dataclass
class Unit:
    name: str  # file-safe unit name, e.g. 'mc.piqa'
    section: str  # one of ALL_SECTIONS
    params: dict  # what the result depends on besides the model (for the fingerprint)
    run: Callable[
        [LoadedModel, dict], tuple[list[dict], pd.DataFrame | None]
    ]  # (model, memo) -> (metric rows, detail rows)
    detail: str | None  # which details frame its rows go to
    models: tuple[str, ...] | None = None  # the model labels it runs for (None: every model)


def metric_rows(
    frame: pd.DataFrame,
    section: str,
    metrics: Sequence[str],
    set_col: str = "set",
    split_col: str | None = "split",
    variant_col: str | None = "variant",
    n_col: str = "n",
    ci: dict[str, tuple[str, str]] | None = None,
    set_value: str | None = None,
    split_value: str = "-",
    variant_value: str = "-",
) -> list[dict]:
    rows = []
    ci = ci or {}
    for _, r in frame.iterrows():
        for metric in metrics:
            if metric not in r:
                continue
            lo, hi = ci.get(metric, (None, None))
            rows.append(
                {
                    "section": section,
                    "set": str(set_value if set_value is not None else r[set_col]),
                    "split": str(r[split_col]) if split_col else split_value,
                    "variant": str(r[variant_col]) if variant_col else variant_value,
                    "metric": metric,
                    "value": float(r[metric]) if r[metric] is not None else math.nan,
                    "ci_low": float(r[lo]) if lo else math.nan,
                    "ci_high": float(r[hi]) if hi else math.nan,
                    "n": int(r[n_col]) if n_col in r else 0,
                }
            )
    return rows


PROBE_METRICS = [
    "mean_prob",
    "median_prob",
    "mean_logprob",
    "median_rank",
    "top1_rate",
    "top5_rate",
    "mean_seq_logprob",
]
PROBE_CI = {"mean_prob": ("mean_prob_ci_low", "mean_prob_ci_high")}


def file_stamp(path: Path) -> dict:
    return {"file": str(path), "mtime": path.stat().st_mtime if path.exists() else None}
