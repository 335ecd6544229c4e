"""A run's outcome: the baseline and the unlearned model side by side on the pack's probes and on perplexity."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.models import load_model

if TYPE_CHECKING:
    from workbench.anchors import AnchorMap
    from workbench.config import ReportConfig
    from workbench.run import Run

__all__ = ["before_after", "outcome_table", "answer_kind", "generic_prompts", "paired_change", "perplexity_text",
           "ANSWER_KINDS"]

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
    import dataclasses

    return [dataclasses.replace(p, prompt=anchors.translate(p.prompt, seed, 0)) for p in probes]


def perplexity_text(run: "Run", rc: "ReportConfig") -> tuple[str | None, str | None]:
    """The text the report measures perplexity on, and its name: ``rc.perplexity_text`` when given (a missing
    file is an error, never a silent switch to other text), else the run's retain text (None where it has none)."""
    if rc.perplexity_text:
        path = rc.perplexity_text
        if not os.path.isfile(path):
            raise WorkbenchError(f"report.perplexity_text: {path} does not exist; give an existing text file "
                                 "(a relative path is relative to the config file) or null for the retain text")
        with open(path, encoding="utf-8") as fh:
            return fh.read(), os.path.basename(path)  # the full path is in the report's config
    if run.retain_documents:
        return "\n\n".join(d.text for d in run.retain_documents), "retain text"
    return None, None


def paired_change(base: pd.DataFrame, other: pd.DataFrame) -> dict:
    """The change from ``base`` to ``other`` (probe rows of one set; paired on ``probe_id``) in mean probability,
    absolute and relative, each with its paired-bootstrap 95% interval (probes resampled together)."""
    from workbench.eval.utility import paired_bootstrap, paired_bootstrap_relative

    a = base.groupby("probe_id")["prob"].mean()
    b = other.groupby("probe_id")["prob"].mean()
    common = a.index.intersection(b.index)
    a, b = a.loc[common].to_numpy(), b.loc[common].to_numpy()
    diff, lo, hi = paired_bootstrap(a, b)
    _, rlo, rhi = paired_bootstrap_relative(a, b)
    return {"change": diff, "change_ci95": [lo, hi], "relative_change_ci95": [rlo, rhi]}


def before_after(run: "Run", rc: "ReportConfig", progress: bool = True) -> dict:
    """Score the pack's probe sets (split ``rc.split``) and a perplexity text with both models.

    Writes ``<run>/report/probes.csv`` (one row per probe and model; the target probes also once more as
    variant ``generic``: the baseline on anchor-translated prompts) and returns the JSON-ready summary.
    """
    from workbench.eval.probes import score_probes

    cfg = run.cfg
    models = {"baseline": load_model(cfg.model, device=cfg.device, dtype=cfg.dtype),
              "unlearned": load_model(str(run.dir / "unlearned"), device=cfg.device, dtype=cfg.dtype)}
    frames = []
    pack = run.pack
    for kind in rc.probe_sets:
        if pack is None or not pack.has_probes(kind):
            continue
        probes = [p for p in pack.probes(kind) if rc.split is None or p.split == rc.split]
        if not probes:
            continue
        for name, lm in models.items():
            frames.append(score_probes(lm, probes, variant=name))
        if kind == "probability":
            frames.append(score_probes(models["baseline"], generic_prompts(run.anchors, probes, cfg.seed), variant="generic"))
    per_probe = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out: dict = {"probe_split": rc.split}
    if not per_probe.empty:
        # answer kinds from the original prompts (a generic row shares its probe's kind)
        original = per_probe[per_probe["variant"] == "baseline"]
        tags = {(kind, p.id): getattr(p, "answer_kind", None) for kind in rc.probe_sets
                if pack is not None and pack.has_probes(kind) for p in pack.probes(kind)}
        kinds = {(s, pid): answer_kind(run.anchors, p, t, tags.get((s, pid)))
                 for s, pid, p, t in zip(original["set"], original["probe_id"], original["prompt"], original["target"])}
        per_probe["answer_kind"] = [kinds[key] for key in zip(per_probe["set"], per_probe["probe_id"])]
        os.makedirs(run.dir / "report", exist_ok=True)
        per_probe.to_csv(run.dir / "report" / "probes.csv", index=False)
        generic = per_probe[per_probe["variant"] == "generic"]
        per_probe = per_probe[per_probe["variant"] != "generic"]
        means = per_probe.pivot_table(index="set", columns="variant", values="prob", aggfunc="mean")
        counts = per_probe[per_probe["variant"] == "baseline"].groupby("set").size()
        order = [s for s in rc.probe_sets if s in means.index]  # the config's order: the target set first
        def rows(variant: str, s: str, kind: str | None = None) -> pd.DataFrame:
            sel = (per_probe["variant"] == variant) & (per_probe["set"] == s)
            return per_probe[sel & (per_probe["answer_kind"] == kind)] if kind else per_probe[sel]

        out["probes"] = {
            s: {"n": int(counts[s]), "baseline_mean_prob": float(means.loc[s, "baseline"]),
                "unlearned_mean_prob": float(means.loc[s, "unlearned"]),
                "relative_change": float(means.loc[s, "unlearned"] / means.loc[s, "baseline"] - 1.0),
                **paired_change(rows("baseline", s), rows("unlearned", s))}
            for s in order
        }
        by_kind = per_probe.pivot_table(index=["set", "answer_kind"], columns="variant", values="prob", aggfunc="mean")
        kind_n = per_probe[per_probe["variant"] == "baseline"].groupby(["set", "answer_kind"]).size()
        out["probes_by_answer_kind"] = {
            f"{s}/{k}": {"set": s, "answer_kind": k, "n": int(kind_n[(s, k)]),
                         "baseline_mean_prob": float(by_kind.loc[(s, k), "baseline"]),
                         "unlearned_mean_prob": float(by_kind.loc[(s, k), "unlearned"]),
                         "relative_change": float(by_kind.loc[(s, k), "unlearned"] / by_kind.loc[(s, k), "baseline"] - 1.0),
                         **paired_change(rows("baseline", s, k), rows("unlearned", s, k))}
            for s, k in by_kind.index if s == "probability"
        }
        if not generic.empty:  # the baseline on anchor-translated prompts: what the method steers towards
            base = per_probe[(per_probe["variant"] == "baseline") & (per_probe["set"] == "probability")]
            gen = {"all": (generic, base)}
            gen.update({k: (generic[generic["answer_kind"] == k], base[base["answer_kind"] == k])
                        for k in ANSWER_KINDS if (generic["answer_kind"] == k).any()})
            out["generic_reference"] = {
                k: {"n": len(g), "mean_prob": float(g["prob"].mean()),
                    "relative_change": float(g["prob"].mean() / b["prob"].mean() - 1.0), **paired_change(b, g)}
                for k, (g, b) in gen.items()
            }
    text, text_name = perplexity_text(run, rc)
    if text:
        from workbench.eval.utility import PerplexityConfig, perplexity

        # two windows per pass: the logits of a window ([1024, vocab] fp32) dominate the report's memory
        pcfg = PerplexityConfig(max_length=1024, stride=512, max_tokens=rc.max_perplexity_tokens, batch_size=2)
        ppl = {name: perplexity(lm, text, pcfg)["ppl"] for name, lm in models.items()}
        out["perplexity"] = {"text": text_name, **ppl,
                             "relative_change": ppl["unlearned"] / ppl["baseline"] - 1.0}
    return out


def _ci(r: dict) -> str | None:
    ci = r.get("relative_change_ci95")
    return f"[{100 * ci[0]:+.1f}%, {100 * ci[1]:+.1f}%]" if ci else None


def outcome_table(report: dict) -> pd.DataFrame:
    """The before/after table of a report: one row per probe set (mean probability of the correct token), the
    target set split by answer kind, and one row for perplexity. ``change 95% CI``: the paired-bootstrap
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
    ppl = report.get("perplexity")
    if ppl:
        rows.append({"measure": f"perplexity ({ppl['text']})", "n": None, "baseline": ppl["baseline"],
                     "unlearned": ppl["unlearned"], "change": f"{100 * ppl['relative_change']:+.1f}%"})
    return pd.DataFrame(rows, columns=["measure", "n", "baseline", "unlearned", "change", "change 95% CI", "generic"])
