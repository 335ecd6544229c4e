"""Side effects and robustness: does familiarity come back through hints or other phrasings, and do
neighbouring topics suffer?

- *Priming* (in-context relearning, Lynch et al. 2024): a short passage about the target is put before every
  probe prompt; the rise in answer probability shows how much knowledge a hint brings back.
- *Paraphrases*: each probe's ``paraphrases`` are scored with the same targets; the worst case (max) shows
  leaks through other phrasings.
- *Collateral*: next-token probes on neighbouring domains (collateral.jsonl) and general knowledge
  (general.jsonl), summarised per domain, which must not drop.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import score_pack_probes, score_probes, with_prompts
from workbench.io import read_text
from workbench.models import LoadedModel
from workbench.pack import NextTokenProbe, Pack, load_pack

__all__ = [
    "PrimingConfig",
    "paraphrase_summary",
    "priming_passage",
    "priming_summary",
    "score_collateral",
    "score_paraphrases",
    "score_primed",
]


@dataclass
class PrimingConfig:
    """Where the priming passage comes from."""

    chars: int = 600  # longest passage, cut at a sentence end
    text: str | None = None  # use this passage instead of one from the corpus
    seed: int = 0  # picks the corpus document
    separator: str = "\n\n"  # between the passage and the probe prompt


def priming_passage(pack: Pack | str | Path, config: PrimingConfig | None = None) -> str:
    """A short passage about the target: the first paragraphs of a seeded-random corpus document, cut at a
    sentence end within ``config.chars`` characters (the document's title line is skipped)."""
    cfg = config or PrimingConfig()
    if cfg.text is not None:
        if not cfg.text.strip():
            raise WorkbenchError("the priming text is empty")
        return cfg.text.strip()
    pack = load_pack(pack)
    files = pack.corpus_files()
    doc = read_text(files[random.Random(cfg.seed).randrange(len(files))], "corpus file")
    paras = [p.strip() for p in re.split(r"\n\s*\n", doc) if p.strip()]
    body = [p for p in paras if len(p) > 80] or paras  # skip headings and title lines
    text = " ".join(body)[: cfg.chars]
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("! "), text.rfind("? "))
    if text.endswith((".", "!", "?")):
        cut = len(text) - 1
    return text[: cut + 1] if cut > 0 else text


def score_primed(
    lm: LoadedModel,
    probes: Sequence[NextTokenProbe],
    passage: str,
    config: LoglikelihoodConfig | None = None,
    separator: str = "\n\n",
) -> pd.DataFrame:
    """Probe rows (as :func:`score_probes`) with the passage before every prompt; variant ``'primed'``.

    The ``prompt`` column keeps the original prompt so that rows pair with the unprimed ones.
    """
    primed = with_prompts(probes, [passage + separator + p.prompt for p in probes])
    df = score_probes(lm, primed, config or LoglikelihoodConfig(desc="primed probes"), variant="primed")
    df["prompt"] = [p.prompt for p in probes]
    return df


def score_paraphrases(
    lm: LoadedModel, probes: Sequence[NextTokenProbe], config: LoglikelihoodConfig | None = None
) -> pd.DataFrame:
    """One row per (probe, paraphrase), variant ``'paraphrase'``, with a ``paraphrase`` index column.

    Probes without paraphrases are skipped; an empty frame comes back when none has any.
    """
    flat: list[NextTokenProbe] = []
    index: list[int] = []
    for p in probes:
        for j in range(len(p.paraphrases)):
            flat.append(p)
            index.append(j)
    if not flat:
        return pd.DataFrame()
    variants = with_prompts(flat, [p.paraphrases[j] for p, j in zip(flat, index)])
    df = score_probes(lm, variants, config or LoglikelihoodConfig(desc="paraphrases"), variant="paraphrase")
    df["paraphrase"] = index
    return df


def paraphrase_summary(original: pd.DataFrame, paraphrased: pd.DataFrame) -> pd.DataFrame:
    """Per probe with paraphrases: ``prob`` of the original prompt, mean and max over its paraphrases, and
    ``leak = max(0, max_paraphrase_prob - prob)``."""
    if paraphrased.empty:
        return pd.DataFrame(columns=["set", "probe_id", "split", "prob", "para_mean_prob", "para_max_prob", "leak"])
    agg = paraphrased.groupby(["set", "probe_id"], sort=False)["prob"].agg(para_mean_prob="mean", para_max_prob="max")
    base = original.set_index(["set", "probe_id"])[["split", "prob"]]
    out = base.join(agg, how="inner").reset_index()
    out["leak"] = (out["para_max_prob"] - out["prob"]).clip(lower=0)
    return out


def priming_summary(plain: pd.DataFrame, primed: pd.DataFrame) -> pd.DataFrame:
    """Per set and split (and ``'all'``): mean prob without and with the passage, their difference, and the
    share of probes whose answer became the top-1 token only with the passage."""
    merged = plain.merge(primed, on=["set", "probe_id", "split"], suffixes=("", "_primed"))
    if merged.empty:
        return pd.DataFrame()
    merged = pd.concat([merged, merged.assign(split="all")], ignore_index=True)
    rows = []
    for (s, split), g in merged.groupby(["set", "split"], sort=True):
        rows.append(
            {
                "set": s,
                "split": split,
                "n": len(g),
                "mean_prob": float(g["prob"].mean()),
                "mean_prob_primed": float(g["prob_primed"].mean()),
                "delta": float((g["prob_primed"] - g["prob"]).mean()),
                "newly_top1_rate": float((g["top1_primed"] & ~g["top1"]).mean()),
            }
        )
    return pd.DataFrame(rows)


def score_collateral(
    lm: LoadedModel,
    pack: Pack | str | Path,
    kinds: Sequence[str] = ("collateral", "general"),
    config: LoglikelihoodConfig | None = None,
) -> pd.DataFrame:
    """Probe rows for the pack's neighbouring-domain and general probes (files that exist)."""
    return score_pack_probes(lm, pack, kinds, config)
