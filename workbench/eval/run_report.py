"""A run's before/after report: the baseline and the unlearned model on the pack's probe sets and a perplexity
text, through the evaluation pipeline's units (one model loaded at a time, finished units resumed from
``<out>/partial``, every file written atomically), each change with its paired-bootstrap 95% interval. Given a
reference model that never saw the target (an implanted run's untouched baseline), also the field's measures
(workbench/eval/ground_truth.py) of all three models, forget quality and PrivLeak against the reference.

The run's ``report`` stage calls :func:`evaluate_run` (through :func:`workbench.report.make_report`);
``workbench eval`` runs the same units on any models.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench.eval.config import EvalConfig
from workbench.eval.evaluate import run_units
from workbench.eval.ground_truth import reference_rows, standard_measures
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import PROBE_COLUMNS, score_probes, summarize_probes
from workbench.eval.summary import write_frame
from workbench.eval.units import (
    PROBE_CI,
    PROBE_METRICS,
    TABLE_COLUMNS,
    Unit,
    file_stamp,
    ground_truth_units,
    metric_rows,
    perplexity_unit,
    probe_unit,
)
from workbench.eval.utility import PerplexityConfig, paired_bootstrap, paired_bootstrap_relative
from workbench.models import LoadedModel
from workbench.rundir import REPORT_PROBES

if TYPE_CHECKING:
    from workbench.anchors import AnchorMap
    from workbench.pack import NextTokenProbe, Pack

__all__ = ["ANSWER_KINDS", "answer_kind", "evaluate_run", "generic_prompts", "paired_change"]

# What a next-token probe's answer is, with respect to the anchor map. The method relabels the position that
# predicts an anchored term and leaves positions inside a multi-token anchor unlabelled, so it acts on the
# kinds very differently; the report gives each its own row. 'collocation' is stated in the probe file (an
# ordinary word the prompt's last words call for, which no unlearning should remove).
ANSWER_KINDS = {
    "anchor": "answer starts an anchored term",
    "in_anchor": "answer completes an anchored term begun in the prompt",
    "other": "answer is not an anchored term",
    "collocation": "answer is a collocation of the prompt's last words",
}
MODELS = ("baseline", "unlearned")
REFERENCE = "reference"
# the field's measures a reference makes meaningful (trivia is reported with or without one)
REFERENCE_SECTIONS = ("qa", "retain_qa", "knowmem", "verbmem", "mia")


def answer_kind(anchors: "AnchorMap", prompt: str, target: str, tagged: str | None = None) -> str:
    """``anchor``, ``in_anchor`` or ``other`` (see :data:`ANSWER_KINDS`) for a probe's canonical target; an
    ``other`` answer that the probe file tags (``answer_kind: collocation``) takes the tag."""
    end = len(prompt)
    lead = len(target) - len(target.lstrip())
    for occ in anchors.find(prompt + target):
        if occ.start < end < occ.end:
            return "in_anchor"
        if end <= occ.start <= end + lead:
            return "anchor"
    return tagged or "other"


def generic_prompts(anchors: "AnchorMap", probes: list, seed: int = 0) -> list:
    """The probes with every anchored term of the prompt replaced by a generic alternative. The baseline on
    these is the method's own reference (a model that never saw the target, approximated by translation): an
    answer it still predicts there is not something the generic labels teach away."""
    return [dataclasses.replace(p, prompt=anchors.translate(p.prompt, seed, 0)) for p in probes]


def paired_change(base: pd.DataFrame, other: pd.DataFrame) -> dict:
    """The change from ``base`` to ``other`` (probe rows of one set; paired on ``probe_id``) in mean probability,
    absolute and relative, each with its paired-bootstrap 95% interval (probes resampled together)."""
    a = base.groupby("probe_id")["prob"].mean()
    b = other.groupby("probe_id")["prob"].mean()
    common = a.index.intersection(b.index)
    a, b = a.loc[common].to_numpy(), b.loc[common].to_numpy()
    diff, lo, hi = paired_bootstrap(a, b)
    _, rlo, rhi = paired_bootstrap_relative(a, b)
    return {"change": diff, "change_ci95": [lo, hi], "relative_change_ci95": [rlo, rhi]}


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n\x00".join(texts).encode("utf-8")).hexdigest()[:16]


def _generic_unit(probes: Sequence["NextTokenProbe"], stamp: dict, config: EvalConfig) -> Unit:
    """The baseline on the anchor-translated prompts (variant ``generic``)."""

    def run(lm: LoadedModel, memo: dict):
        df = score_probes(lm, probes, config.loglik("generic"), variant="generic")
        return metric_rows(summarize_probes(df), "generic", PROBE_METRICS, ci=PROBE_CI), df

    params = {"probes": stamp, "prompts": _digest([p.prompt for p in probes])}
    return Unit("generic.probability", "generic", params, run, "probes", models=("baseline",))


def evaluate_run(
    baseline: str | LoadedModel,
    unlearned: str | LoadedModel,
    pack: "Pack | None",
    anchors: "AnchorMap",
    out_dir: str | Path,
    probe_sets: Sequence[str] = ("probability", "collateral", "general"),
    split: str | None = "heldout",
    seed: int = 0,
    text: str | None = None,
    text_name: str | None = None,
    max_perplexity_tokens: int | None = 8192,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = True,
    reference: str | LoadedModel | None = None,
    verbmem_limit: int | None = 50,
    mia_limit: int | None = 100,
    probe_limit: int | None = None,
) -> dict:
    """Score the pack's probe sets (split ``split``; None: all) and a perplexity text with both models.

    Writes ``<out_dir>/probes.csv`` (one row per probe and model, ``variant`` naming the model; the target
    probes also once more as variant ``generic``: the baseline on anchor-translated prompts) and returns the
    JSON-ready summary. With ``reference`` (a model that never saw the target), the summary's ``ground_truth``
    holds the field's measures of the baseline, the unlearned model and the reference, as far as the pack's files
    allow (``verbmem_limit`` corpus prefixes, ``mia_limit`` windows per side, the first ``probe_limit`` questions
    and trivia items), and the perplexity of all three.
    """
    out = Path(out_dir)
    models = MODELS + ((REFERENCE,) if reference is not None else ())
    config = EvalConfig(
        pack=None,
        splits=(split,) if split else ("dev", "heldout"),
        batch_size=32,
        device=device,
        dtype=dtype,
        progress=progress,
        figures=False,
        verbmem_limit=verbmem_limit,
        mia_limit=mia_limit,
        probe_limit=probe_limit,
        reference=REFERENCE if reference is not None else None,
    )
    units: list[Unit] = []
    tags: dict[tuple[str, str], str | None] = {}
    for kind in probe_sets:
        if pack is None or not pack.has_probes(kind):
            continue
        all_probes = pack.probes(kind)
        tags.update({(kind, p.id): getattr(p, "answer_kind", None) for p in all_probes})
        probes = [p for p in all_probes if split is None or p.split == split]
        if not probes:
            continue
        stamp = file_stamp(pack.probe_file(kind))
        units.append(
            dataclasses.replace(
                probe_unit(f"probes.{kind}", "probes", probes, stamp, config.splits, config), models=MODELS
            )
        )
        if kind == "probability":
            units.append(_generic_unit(generic_prompts(anchors, probes, seed), stamp, config))
    if pack is not None:
        sections = ["trivia", *(REFERENCE_SECTIONS if reference is not None else ())]

        def probes_of(kind: str) -> list:
            return [p for p in pack.probes(kind) if split is None or p.split == split][:probe_limit]

        units += ground_truth_units(sections, config, pack, probes_of, lambda section, why: None)
    if text:
        # two windows per pass: the logits of a window ([1024, vocab] fp32) dominate the report's memory
        pcfg = PerplexityConfig(max_length=1024, stride=512, max_tokens=max_perplexity_tokens, batch_size=2)
        loglik = LoglikelihoodConfig(batch_size=pcfg.batch_size, progress=progress, desc="perplexity")
        units.append(perplexity_unit("text", text, pcfg, loglik, {"text": _digest([text])}))
    specs = (baseline, unlearned) + ((reference,) if reference is not None else ())
    table, frames, _ = run_units(list(zip(models, specs)), units, config, out) if units else (None, {}, [])
    if reference is not None and table is not None:
        extra, _ = reference_rows(table, frames, REFERENCE, list(models))
        if extra:
            table = pd.concat([table, pd.DataFrame(extra, columns=TABLE_COLUMNS)], ignore_index=True)

    result: dict = {"probe_split": split}
    rows = frames.get("probes")
    if rows is not None and not rows.empty:
        per_probe = _per_probe(rows, probe_sets)
        kinds = {
            (s, pid): answer_kind(anchors, p, t, tags.get((s, pid)))
            for s, pid, p, t, v in per_probe[["set", "probe_id", "prompt", "target", "variant"]].itertuples(index=False)
            if v == "baseline"
        }  # from the original prompts (a generic row shares its probe's kind)
        per_probe["answer_kind"] = [kinds[key] for key in zip(per_probe["set"], per_probe["probe_id"])]
        write_frame(per_probe, out / REPORT_PROBES)
        result.update(_summary(per_probe, probe_sets))
    trivia = frames.get("trivia_items")
    if trivia is not None and not trivia.empty:
        result["trivia"] = _trivia_summary(trivia)
    if text:
        ppl = {
            m: float(
                table[(table["model"] == m) & (table["section"] == "perplexity") & (table["metric"] == "ppl")][
                    "value"
                ].iloc[0]
            )
            for m in MODELS
        }
        result["perplexity"] = {"text": text_name, **ppl, "relative_change": ppl["unlearned"] / ppl["baseline"] - 1.0}
    if reference is not None and table is not None:
        result["ground_truth"] = _ground_truth_summary(table, models, split or "all", text_name if text else None)
    return result


def _ground_truth_summary(table: pd.DataFrame, models: Sequence[str], split: str, text_name: str | None) -> dict:
    """The field's measures per model (:data:`workbench.eval.ground_truth.STANDARD_COLUMNS`, probe split
    ``split``) and each model's perplexity on the report's text."""
    per_model = {}
    for m in models:
        values = standard_measures(table, m, split)
        ppl = table[(table["model"] == m) & (table["section"] == "perplexity") & (table["metric"] == "ppl")]
        if len(ppl):
            values["perplexity"] = float(ppl["value"].iloc[0])
        per_model[m] = values
    n_qa = table[
        (table["model"] == models[0])
        & (table["section"] == "qa")
        & (table["set"] == "qa")
        & (table["split"] == split)
        & (table["metric"] == "truth_ratio_forget")
    ]["n"]
    return {
        "split": split,
        "perplexity_text": text_name,
        "qa_items": int(n_qa.iloc[0]) if len(n_qa) else 0,
        "models": per_model,
    }


def _trivia_summary(rows: pd.DataFrame) -> dict:
    """Trivia accuracy of both models (Wilson 95% intervals, chance 0.5) and its paired change."""
    from workbench.eval.utility import wilson_interval

    known = {m: rows[rows["model"] == m].set_index("probe_id")["known"].astype(float) for m in MODELS}
    common = known["baseline"].index.intersection(known["unlearned"].index)
    out: dict = {"n": len(common), "chance": 0.5}
    for m in MODELS:
        k = known[m].loc[common]
        out[f"{m}_accuracy"] = float(k.mean())
        out[f"{m}_ci95"] = list(wilson_interval(float(k.sum()), len(k)))
    diff, lo, hi = paired_bootstrap(known["baseline"].loc[common].to_numpy(), known["unlearned"].loc[common].to_numpy())
    out.update({"change": diff, "change_ci95": [lo, hi]})
    return out


def _per_probe(rows: pd.DataFrame, probe_sets: Sequence[str]) -> pd.DataFrame:
    """The eval's probe rows in the run report's layout: ``variant`` names the model (or ``generic``); rows by
    probe set in the config's order, then baseline, unlearned, generic."""
    rows = rows.assign(variant=[v if v == "generic" else m for m, v in zip(rows["model"], rows["variant"])])
    order = {s: i for i, s in enumerate(probe_sets)}
    rank = {v: i for i, v in enumerate(MODELS + ("generic",))}
    key = pd.Series([order[s] * len(rank) + rank[v] for s, v in zip(rows["set"], rows["variant"])], index=rows.index)
    return rows.loc[key.sort_values(kind="stable").index, PROBE_COLUMNS].reset_index(drop=True)


def _summary(per_probe: pd.DataFrame, probe_sets: Sequence[str]) -> dict:
    """Mean probability per probe set (and per answer kind of the target set) before and after, with paired
    intervals, and the generic reference."""
    out: dict = {}
    generic = per_probe[per_probe["variant"] == "generic"]
    per_probe = per_probe[per_probe["variant"] != "generic"]
    means = per_probe.pivot_table(index="set", columns="variant", values="prob", aggfunc="mean")
    counts = per_probe[per_probe["variant"] == "baseline"].groupby("set").size()
    order = [s for s in probe_sets if s in means.index]  # the config's order: the target set first

    def rows(variant: str, s: str, kind: str | None = None) -> pd.DataFrame:
        sel = (per_probe["variant"] == variant) & (per_probe["set"] == s)
        return per_probe[sel & (per_probe["answer_kind"] == kind)] if kind else per_probe[sel]

    out["probes"] = {
        s: {
            "n": int(counts[s]),
            "baseline_mean_prob": float(means.loc[s, "baseline"]),
            "unlearned_mean_prob": float(means.loc[s, "unlearned"]),
            "relative_change": float(means.loc[s, "unlearned"] / means.loc[s, "baseline"] - 1.0),
            **paired_change(rows("baseline", s), rows("unlearned", s)),
        }
        for s in order
    }
    by_kind = per_probe.pivot_table(index=["set", "answer_kind"], columns="variant", values="prob", aggfunc="mean")
    kind_n = per_probe[per_probe["variant"] == "baseline"].groupby(["set", "answer_kind"]).size()
    out["probes_by_answer_kind"] = {
        f"{s}/{k}": {
            "set": s,
            "answer_kind": k,
            "n": int(kind_n[(s, k)]),
            "baseline_mean_prob": float(by_kind.loc[(s, k), "baseline"]),
            "unlearned_mean_prob": float(by_kind.loc[(s, k), "unlearned"]),
            "relative_change": float(by_kind.loc[(s, k), "unlearned"] / by_kind.loc[(s, k), "baseline"] - 1.0),
            **paired_change(rows("baseline", s, k), rows("unlearned", s, k)),
        }
        for s, k in by_kind.index
        if s == "probability"
    }
    if not generic.empty:  # the baseline on anchor-translated prompts: what the method steers towards
        base = per_probe[(per_probe["variant"] == "baseline") & (per_probe["set"] == "probability")]
        gen = {"all": (generic, base)}
        gen.update(
            {
                k: (generic[generic["answer_kind"] == k], base[base["answer_kind"] == k])
                for k in ANSWER_KINDS
                if (generic["answer_kind"] == k).any()
            }
        )
        out["generic_reference"] = {
            k: {
                "n": len(g),
                "mean_prob": float(g["prob"].mean()),
                "relative_change": float(g["prob"].mean() / b["prob"].mean() - 1.0),
                **paired_change(b, g),
            }
            for k, (g, b) in gen.items()
        }
    return out
