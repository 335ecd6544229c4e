"""A run's report: the baseline and the unlearned model side by side on the pack's probes and on perplexity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from workbench.distribution import process_device
from workbench.eval.run_report import ANSWER_KINDS
from workbench.io import read_text, require_file
from workbench.rundir import RunDir

if TYPE_CHECKING:
    from workbench.anchors import AnchorMap
    from workbench.config import ReportConfig, RunConfig

__all__ = ["ground_truth_table", "implant_table", "make_report", "perplexity_text", "report_table"]


class RunView(Protocol):
    """What the report needs of a run (:class:`workbench.run.Run`, which imports this module, not the reverse)."""

    cfg: "RunConfig"
    dir: Path
    pack: Any
    anchors: "AnchorMap"
    retain_documents: list
    baseline_spec: str
    reference_spec: str | None

    def stage_record(self, stage: str) -> dict | None: ...


def perplexity_text(run: RunView, rc: "ReportConfig") -> tuple[str | None, str | None]:
    """The text the report measures perplexity on, and its name: ``rc.perplexity_text`` when given (a missing
    file is an error, never a silent switch to other text), else the run's retain text (None where it has none)."""
    if rc.perplexity_text:
        path = rc.perplexity_text
        require_file(
            path,
            f"report.perplexity_text: {path}",
            "; give an existing text file (a relative path is relative to the config file) or null for the retain text",
        )
        return read_text(path, "report.perplexity_text:"), os.path.basename(
            path
        )  # the full path is in the report's config
    if run.retain_documents:
        return "\n\n".join(d.text for d in run.retain_documents), "retain text"
    return None, None


def make_report(run: RunView, rc: "ReportConfig", progress: bool = True) -> dict:
    """The run's baseline and unlearned model on the pack's probe sets (split ``rc.split``) and a perplexity
    text: :func:`workbench.eval.run_report.evaluate_run`, resumable in ``<run>/report``. With the implant
    stage on, also the field's measures of the target model, the unlearned model and the reference (with
    ``rc.ground_truth``), and how well the implant took (``implant``: the stage's before/after check)."""
    from workbench.eval.run_report import evaluate_run

    cfg = run.cfg
    text, text_name = perplexity_text(run, rc)
    reference = run.reference_spec if rc.ground_truth else None
    result = evaluate_run(
        run.baseline_spec,
        str(RunDir(run.dir).unlearned),
        run.pack,
        run.anchors,
        RunDir(run.dir).report_dir,
        probe_sets=rc.probe_sets,
        split=rc.split,
        seed=cfg.seed,
        text=text,
        text_name=text_name,
        max_perplexity_tokens=rc.max_perplexity_tokens,
        device=process_device(cfg.device),  # as every stage chooses it (workbench/distribution.py)
        dtype=cfg.dtype,
        progress=progress,
        reference=reference,
        verbmem_limit=rc.verbmem_limit,
        mia_limit=rc.mia_limit,
        probe_limit=rc.probe_limit,
    )
    record = run.stage_record("implant") if cfg.implant.enabled else None
    if record:
        result["implant"] = {k: record.get(k) for k in ("before", "after", "seconds", "tokens")}
    return result


def _ci(r: dict) -> str | None:
    ci = r.get("relative_change_ci95")
    return f"[{100 * ci[0]:+.1f}%, {100 * ci[1]:+.1f}%]" if ci else None


def report_table(report: dict) -> pd.DataFrame:
    """The before/after table of a report: one row per probe set (mean probability of the correct token), the
    target set split by answer kind, one row for the trivia accuracy (where the pack has trivia) and one for
    perplexity. ``change 95% CI``: the paired-bootstrap
    interval of the relative change (probes resampled together)."""
    rows = []
    gen = report.get("generic_reference") or {}
    for s, r in (report.get("probes") or {}).items():
        rows.append(
            {
                "measure": f"{s} probes: P(correct next token)",
                "n": r["n"],
                "baseline": r["baseline_mean_prob"],
                "unlearned": r["unlearned_mean_prob"],
                "change": f"{100 * r['relative_change']:+.1f}%",
                "change 95% CI": _ci(r),
                "generic": (gen.get("all") or {}).get("mean_prob") if s == "probability" else None,
            }
        )
        for kr in (report.get("probes_by_answer_kind") or {}).values():
            if kr["set"] == s:
                rows.append(
                    {
                        "measure": f"  of which: {ANSWER_KINDS[kr['answer_kind']]}",
                        "n": kr["n"],
                        "baseline": kr["baseline_mean_prob"],
                        "unlearned": kr["unlearned_mean_prob"],
                        "change": f"{100 * kr['relative_change']:+.1f}%",
                        "change 95% CI": _ci(kr),
                        "generic": (gen.get(kr["answer_kind"]) or {}).get("mean_prob"),
                    }
                )
    trivia = report.get("trivia")
    if trivia:
        rows.append(
            {
                "measure": "trivia: accuracy (chance 0.5)",
                "n": trivia["n"],
                "baseline": trivia["baseline_accuracy"],
                "unlearned": trivia["unlearned_accuracy"],
                "change": f"{100 * trivia['change']:+.1f} points",
                "change 95% CI": f"[{100 * trivia['change_ci95'][0]:+.1f}, {100 * trivia['change_ci95'][1]:+.1f}] points",
            }
        )
    ppl = report.get("perplexity")
    if ppl:
        rows.append(
            {
                "measure": f"perplexity ({ppl['text']})",
                "n": None,
                "baseline": ppl["baseline"],
                "unlearned": ppl["unlearned"],
                "change": f"{100 * ppl['relative_change']:+.1f}%",
            }
        )
    return pd.DataFrame(rows, columns=["measure", "n", "baseline", "unlearned", "change", "change 95% CI", "generic"])


# measure -> (what it is, what a model that never saw the target shows); the rows of ground_truth_table
GROUND_TRUTH_ROWS = {
    "forget_quality": ("forget quality: KS p-value of truth ratios vs the reference", "1.0"),
    "truth_ratio": ("truth ratio (mean min(R, 1/R); 1: cannot tell true from false)", "about 1"),
    "trivia_acc": ("trivia accuracy (two answers)", "0.5"),
    "extraction_strength": ("extraction strength", "about 0"),
    "knowmem": ("knowledge memorisation: ROUGE-L recall of greedy answers", "low"),
    "verbmem": ("verbatim memorisation: ROUGE-L F1 of corpus continuations", "low"),
    "mia_auc": ("membership inference: Min-K% AUC, corpus vs holdout", "0.5"),
    "privleak": ("PrivLeak: Min-K% AUC vs the reference's, %", "0"),
    "model_utility": ("model utility on retain questions", "as the reference"),
    "perplexity": ("perplexity", "as the reference"),
}


def ground_truth_table(report: dict) -> pd.DataFrame:
    """The field's measures of a report with a reference (an implanted run's): one row per measure, with the target
    model (``target``: the baseline taught the target), the unlearned model, the reference that never saw it, and
    what a model that never learned the target shows. Empty when the report has none."""
    gt = (report.get("ground_truth") or {}).get("models") or {}
    if not gt:
        return pd.DataFrame(columns=["measure", "target", "unlearned", "reference", "never saw it"])
    text = (report.get("ground_truth") or {}).get("perplexity_text")
    rows = []
    for key, (label, ideal) in GROUND_TRUTH_ROWS.items():
        if not any(key in gt.get(m, {}) for m in ("baseline", "unlearned", "reference")):
            continue
        if key == "perplexity" and text:
            label = f"perplexity ({text})"
        rows.append(
            {
                "measure": label,
                "target": gt.get("baseline", {}).get(key),
                "unlearned": gt.get("unlearned", {}).get(key),
                "reference": gt.get("reference", {}).get(key),
                "never saw it": ideal,
            }
        )
    return pd.DataFrame(rows, columns=["measure", "target", "unlearned", "reference", "never saw it"])


def implant_table(report: dict) -> pd.DataFrame:
    """How well an implanted run's implant took (the implant stage's check): QA accuracy (the true answer beats
    every perturbed one), its chance level and the mean per-token loss on target blocks, before (the reference) and
    after (the target model). Empty when the run has no implant stage."""
    imp = report.get("implant") or {}
    rows = [
        {"model": label, **{k: (imp.get(when) or {}).get(k) for k in ("qa_accuracy", "qa_chance", "corpus_loss")}}
        for label, when in (("reference (before implanting)", "before"), ("target (after implanting)", "after"))
        if imp.get(when)
    ]
    return pd.DataFrame(rows, columns=["model", "qa_accuracy", "qa_chance", "corpus_loss"])
