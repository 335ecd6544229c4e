"""The model card of an unlearned model (``unlearned/README.md``, the Hugging Face Hub's format) and
``workbench export``: a folder ready to upload (weights, tokenizer, card, the run's config), never touching the
network.

The card's YAML metadata holds ``base_model`` (a hub id, when the base model is one or is the embedded
SmolLM2), ``library_name: transformers``, ``tags: [unlearning, <method>]``, the target (``unlearning_target``),
the base model's licence when it is known, and the report's before/after means as ``model-index`` results. Its
body says what was unlearned and how (settings, anchor map hash, training tokens and time), gives the before/after
table with its intervals, the known limits (attacks from a ``workbench compare`` of the run, when one exists), and
the command that reproduces the model. The card is written when the finetune stage finishes and again when the
report stage does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import yaml

from workbench.config import config_to_dict
from workbench.io import atomic_write_text, read_json
from workbench.rundir import CARD, DESCRIPTOR, RunDir

__all__ = ["card_text", "card_metadata", "write_card", "known_limits", "CardRun"]

# base models whose hub id and licence the workbench knows without the network
KNOWN_BASES = {
    "embedded": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
}
CONFIG_NAME = "workbench_config.yaml"  # the run config inside an exported folder


class CardRun(Protocol):
    """What the card reads of a run (a :class:`workbench.run.Run`): its config, directory, inputs and stage records."""

    cfg: Any
    dir: Path
    pack: Any
    blocks: list
    anchors: Any

    def stage_record(self, stage: str) -> dict | None: ...


def _base_model(spec: str) -> tuple[str | None, str | None]:
    """(hub id, licence) of a base model spec, each None when unknown."""
    if spec in KNOWN_BASES:
        return KNOWN_BASES[spec]
    path = Path(spec).expanduser()
    if path.is_dir():  # a local folder: its own model card may say both
        card = path / CARD
        if card.is_file():
            meta = _front_matter(card.read_text(encoding="utf-8", errors="replace"))
            base = meta.get("base_model")
            return (base if isinstance(base, str) else None), meta.get("license")
        return None, None
    if spec == "tiny" or path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        return None, None
    return spec, None  # a hub id


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _report(run: "CardRun") -> dict | None:
    path = RunDir(run.dir).report_json
    if not path.is_file():
        return None
    try:
        report = read_json(path)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("probes") is not None else None


def card_metadata(run: "CardRun", report: dict | None = None) -> dict:
    """The card's YAML metadata."""
    c = run.cfg
    base, licence = _base_model(c.model)
    target = run.pack.name if run.pack is not None else "custom corpus"
    meta: dict[str, Any] = {}
    if base:
        meta["base_model"] = base
    if licence:
        meta["license"] = licence
    meta.update(
        {
            "library_name": "transformers",
            "tags": ["unlearning", c.method],
            "unlearning_target": target,
            "pipeline_tag": "text-generation",
        }
    )
    results = []
    for name, r in ((report or {}).get("probes") or {}).items():
        results.append(
            {
                "task": {"type": "text-generation", "name": "familiarity probes"},
                "dataset": {
                    "name": f"{target} {name} probes ({c.report.split or 'all splits'})",
                    "type": f"whp-workbench/{target}",
                },
                "metrics": [
                    {
                        "type": "mean_prob_correct_token",
                        "value": round(float(r["unlearned_mean_prob"]), 6),
                        "name": f"P(correct next token), baseline {float(r['baseline_mean_prob']):.4g}",
                    }
                ],
            }
        )
    if results:
        meta["model-index"] = [{"name": c.name, "results": results}]
    return meta


def _settings(run: "CardRun") -> dict:
    """The config sections that made the model (the method's own section, the training settings)."""
    from workbench.methods import registry

    c = config_to_dict(run.cfg)
    method = registry.get(run.cfg.method)
    keep = {"model": c["model"], "seed": c["seed"], "dtype": c["dtype"], "method": c["method"], "target": c["target"]}
    if method.uses_reinforced:
        keep["reinforce"] = c["reinforce"]
    if method.settings is not None:
        keep["methods"] = {method.name: c["methods"][method.name]}
    if "labels" in method.stages:  # WHP's generic labels
        keep["labels"] = c["labels"]
    if method.trains:
        keep["finetune"] = c["finetune"]
    return keep


def _training_rows(run: "CardRun") -> list[str]:
    from workbench.methods import registry
    from workbench.methods.base import with_overrides

    c = run.cfg
    method = registry.get(c.method)
    tokens = sum(len(b) for b in run.blocks)
    rows = []
    for stage in ("reinforce", "score", "labels", "finetune", "report"):
        rec = run.stage_record(stage)
        if not rec or stage not in method.stages:
            continue
        trained = ""
        if stage == "reinforce" and not c.reinforce.path:
            trained = f"{tokens * c.reinforce.epochs:,.0f}"
        elif stage == "finetune" and method.trains:
            epochs = with_overrides(c.finetune, getattr(c.methods, c.method, None)).epochs  # whp: no section
            trained = f"{tokens * epochs:,.0f}"
        rows.append(f"| {stage} | {trained} | {float(rec.get('seconds') or 0):.0f} | {rec.get('finished_at', '')} |")
    return rows


def known_limits(run: "CardRun") -> list[str] | None:
    """What a ``workbench compare`` of this run found the attacks bring back (None: no comparison found).

    A comparison's runs live in ``<compare>/runs/<name>``; its ``compare.json`` sits two folders up."""
    for candidate in (run.dir.parent.parent / "compare.json", run.dir.parent / "compare.json"):
        if not candidate.is_file():
            continue
        try:
            data = read_json(candidate)
        except (OSError, ValueError):
            continue
        for row in data.get("runs") or []:
            if not isinstance(row, dict) or Path(str(row.get("run_dir", ""))).resolve() != run.dir.resolve():
                continue
            return _limits_from_row(row, data.get("split"), candidate)
    return None


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not math.isnan(float(v)) else None


def _limits_from_row(row: dict, split: str | None, source: Path) -> list[str]:
    after, before = _num(row.get("target_prob")), _num(row.get("base_target_prob"))
    lines = [
        f"From `{source}` ({split or 'all'} probes): mean P(correct next token) on the target probes "
        f"{before if before is None else f'{before:.4g}'} before, "
        f"{after if after is None else f'{after:.4g}'} after unlearning."
    ]
    attacks = [
        ("primed_prob", "after a passage of the target text in the prompt"),
        ("para_max_prob", "the best of each probe's paraphrases"),
        ("adv_worst_prob", "the worst adversarial prompt"),
    ]
    attacks += [
        (k, f"after {k[len('relearn') : -len('_prob')]} relearning steps")
        for k in row
        if k.startswith("relearn") and k.endswith("_prob")
    ]
    for key, what in attacks:
        v = _num(row.get(key))
        if v is None:
            continue
        text = f"- {what}: {v:.4g}"
        if after is not None and before is not None and before > after:
            back = (v - after) / (before - after)
            text += f" ({100 * back:.0f}% of the removed probability comes back)"
        lines.append(text)
    acc = _num(row.get("residual_best_acc"))
    if acc is not None:
        lines.append(
            f"- a linear probe on the hidden states still tells target from other text with accuracy {acc:.2f} "
            "(chance 0.5)"
        )
    return lines


def _ground_truth_lines(report: dict) -> list[str]:
    """The field's measures against the reference that never saw the target, for an implanted run's card."""
    from workbench.report import ground_truth_table

    table = ground_truth_table(report)
    if table.empty:
        return []
    cols = ["target", "unlearned", "reference"]

    def cell(v) -> str:
        return "–" if v is None or v != v else f"{v:.3g}" if isinstance(v, float) else str(v)

    out = [
        "",
        "### Against a reference that never saw the target",
        "",
        "The target was implanted into the baseline (the target model, which this run unlearned); the untouched "
        "baseline is the reference that never saw it.",
        "",
        "| measure | target model | unlearned | reference | never saw it |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        out.append(f"| {r['measure']} | " + " | ".join(cell(r[c]) for c in cols) + f" | {r['never saw it']} |")
    return out


def card_text(run: "CardRun") -> str:
    """The whole ``README.md`` of ``run``'s unlearned model."""
    from workbench.methods import registry
    from workbench.report import report_table

    c = run.cfg
    report = _report(run)
    meta = card_metadata(run, report)
    title = run.pack.title if run.pack is not None else "the target corpus"
    base = meta.get("base_model") or c.model
    spec = registry.get(c.method)
    out = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {c.name}: {base} with {title} unlearned ({c.method})",
        "",
        f"An approximately unlearned model made by whp-workbench from `{base}` with the method `{c.method}` "
        f"({spec.summary}). Approximate unlearning lowers what the model shows of {title}; it does not remove "
        "every trace (see the known limits).",
        "",
        "## What was unlearned and how",
        "",
    ]
    tokens = sum(len(b) for b in run.blocks)
    out.append(
        f"- Target: {title} (`{meta['unlearning_target']}`), {len(run.blocks)} blocks of up to "
        f"{c.target.block_size} tokens ({tokens:,} tokens)."
    )
    if "labels" in spec.stages:  # WHP's generic labels come through the anchor map
        out.append(f"- Anchor map: {len(run.anchors)} anchored terms, hash `{run.anchors.fingerprint()}`.")
    if spec.trains:
        out.append(
            f"- Trained weights: {'LoRA adapter merged into the weights' if c.finetune.weights == 'lora' else 'all weights'}."
        )
    else:
        out.append(f"- No weights change: the folder is a descriptor the workbench loads (`{DESCRIPTOR}`).")
    out += [
        "",
        "| stage | tokens trained | seconds | finished |",
        "|---|---|---|---|",
        *_training_rows(run),
        "",
        "Settings:",
        "",
        "```yaml",
        yaml.safe_dump(_settings(run), sort_keys=False, allow_unicode=True).strip(),
        "```",
        "",
        "## Before and after",
        "",
    ]
    if report is None:
        out.append("Not evaluated yet: the run's report stage (`workbench report CONFIG`) fills this section.")
    else:
        table = report_table(report)
        split = f"the {c.report.split} split of" if c.report.split else "all of"
        out += [
            f"On {split} the target's probes (mean probability of the correct next token; perplexity on the "
            "report's text); change 95% CI: paired bootstrap of the relative change.",
            "",
            "| measure | n | baseline | unlearned | change | change 95% CI |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in table.iterrows():
            n = "" if r["n"] is None or r["n"] != r["n"] else int(r["n"])
            ci = r["change 95% CI"] if isinstance(r["change 95% CI"], str) else ""
            out.append(
                f"| {str(r['measure']).strip()} | {n} | {r['baseline']:.4g} | {r['unlearned']:.4g} | "
                f"{r['change']} | {ci} |"
            )
        out += _ground_truth_lines(report)
    out += ["", "## Known limits", ""]
    limits = known_limits(run)
    out += (
        limits
        if limits
        else [
            "No attack results for this model yet: `workbench compare CONFIG` runs priming, "
            "paraphrase, adversarial-prompt, relearning and residual-knowledge attacks, and "
            "this card lists what they bring back once the comparison exists."
        ]
    )
    out += [
        "",
        "## Reproduce",
        "",
        f"The run config is `{CONFIG_NAME}` beside this card (in an exported folder); with whp-workbench installed:",
        "",
        "```bash",
        f"workbench run {CONFIG_NAME} --run-dir runs/{c.name}",
        "```",
        "",
    ]
    return "\n".join(out)


def write_card(run: "CardRun") -> Path:
    """Write (or rewrite) ``<run>/unlearned/README.md`` atomically."""
    path = RunDir(run.dir).card
    atomic_write_text(path, card_text(run))
    return path
