"""A run's outcome: the baseline and the unlearned model side by side on the pack's probes and on perplexity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from workbench.io import read_text, require_file
from workbench.eval.run_report import ANSWER_KINDS

if TYPE_CHECKING:
    from workbench.anchors import AnchorMap
    from workbench.config import ReportConfig, RunConfig

__all__ = ["before_after", "outcome_table", "perplexity_text"]


class RunView(Protocol):
    """What the report needs of a run (:class:`workbench.run.Run`, which imports this module, not the reverse)."""

    cfg: "RunConfig"
    dir: Path
    pack: Any
    anchors: "AnchorMap"
    retain_documents: list
    baseline_spec: str


def perplexity_text(run: RunView, rc: "ReportConfig") -> tuple[str | None, str | None]:
    """The text the report measures perplexity on, and its name: ``rc.perplexity_text`` when given (a missing
    file is an error, never a silent switch to other text), else the run's retain text (None where it has none)."""
    if rc.perplexity_text:
        path = rc.perplexity_text
        require_file(path, f"report.perplexity_text: {path}", "; give an existing text file (a relative path is "
                     "relative to the config file) or null for the retain text")
        return read_text(path, "report.perplexity_text:"), os.path.basename(path)  # the full path is in the report's config
    if run.retain_documents:
        return "\n\n".join(d.text for d in run.retain_documents), "retain text"
    return None, None


def before_after(run: RunView, rc: "ReportConfig", progress: bool = True) -> dict:
    """The run's baseline and unlearned model on the pack's probe sets (split ``rc.split``) and a perplexity
    text: :func:`workbench.eval.run_report.before_after_report`, resumable in ``<run>/report``."""
    from workbench.eval.run_report import before_after_report

    cfg = run.cfg
    text, text_name = perplexity_text(run, rc)
    return before_after_report(
        run.baseline_spec, str(run.dir / "unlearned"), run.pack, run.anchors, run.dir / "report", probe_sets=rc.probe_sets,
        split=rc.split, seed=cfg.seed, text=text, text_name=text_name, max_perplexity_tokens=rc.max_perplexity_tokens,
        device=cfg.device, dtype=cfg.dtype, progress=progress)


def _ci(r: dict) -> str | None:
    ci = r.get("relative_change_ci95")
    return f"[{100 * ci[0]:+.1f}%, {100 * ci[1]:+.1f}%]" if ci else None


def outcome_table(report: dict) -> pd.DataFrame:
    """The before/after table of a report: one row per probe set (mean probability of the correct token), the
    target set split by answer kind, one row for the trivia accuracy (where the pack has trivia) and one for
    perplexity. ``change 95% CI``: the paired-bootstrap
    interval of the relative change (probes resampled together)."""
    rows = []
    gen = report.get("generic_reference") or {}
    for s, r in (report.get("probes") or {}).items():
        rows.append({"measure": f"{s} probes: P(correct next token)", "n": r["n"], "baseline": r["baseline_mean_prob"],
                     "unlearned": r["unlearned_mean_prob"], "change": f"{100 * r['relative_change']:+.1f}%",
                     "change 95% CI": _ci(r),
                     "generic": (gen.get("all") or {}).get("mean_prob") if s == "probability" else None})
        for kr in (report.get("probes_by_answer_kind") or {}).values():
            if kr["set"] == s:
                rows.append({"measure": f"  of which: {ANSWER_KINDS[kr['answer_kind']]}", "n": kr["n"],
                             "baseline": kr["baseline_mean_prob"], "unlearned": kr["unlearned_mean_prob"],
                             "change": f"{100 * kr['relative_change']:+.1f}%", "change 95% CI": _ci(kr),
                             "generic": (gen.get(kr["answer_kind"]) or {}).get("mean_prob")})
    trivia = report.get("trivia")
    if trivia:
        rows.append({"measure": "trivia: accuracy (chance 0.5)", "n": trivia["n"], "baseline": trivia["baseline_accuracy"],
                     "unlearned": trivia["unlearned_accuracy"], "change": f"{100 * trivia['change']:+.1f} points",
                     "change 95% CI": f"[{100 * trivia['change_ci95'][0]:+.1f}, {100 * trivia['change_ci95'][1]:+.1f}] points"})
    ppl = report.get("perplexity")
    if ppl:
        rows.append({"measure": f"perplexity ({ppl['text']})", "n": None, "baseline": ppl["baseline"],
                     "unlearned": ppl["unlearned"], "change": f"{100 * ppl['relative_change']:+.1f}%"})
    return pd.DataFrame(rows, columns=["measure", "n", "baseline", "unlearned", "change", "change 95% CI", "generic"])
