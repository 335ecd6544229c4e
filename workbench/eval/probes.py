"""Probability familiarity: how likely a model makes the correct next token(s) after a probe prompt.

Per probe (docs/formats.md):

- ``prob``: probability of the first token of the targets, summed over the distinct first tokens;
- ``rank``: best 1-based rank of those first tokens in the vocabulary (1 = the model's top choice);
- ``seq_logprob``: log-probability of the canonical target's full token sequence; ``best_seq_logprob``: the
  maximum over all targets; ``seq_greedy``: whether greedy decoding produces the canonical target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import LoglikelihoodConfig, Request, encode_pairs, score_requests
from workbench.models import LoadedModel
from workbench.pack import (
    COMPLETION_KIND,
    KNOWMEM_KIND,
    QA_KINDS,
    TRIVIA_KIND,
    VERBMEM_KIND,
    NextTokenProbe,
    Pack,
    load_pack,
)

ANSWER_PROBE_KINDS = (
    *QA_KINDS,
    KNOWMEM_KIND,
    TRIVIA_KIND,
    VERBMEM_KIND,
)  # question files: scored by workbench/eval/ground_truth.py

__all__ = [
    "ANSWER_PROBE_KINDS",
    "PROBE_COLUMNS",
    "check_pack",
    "probe_requests",
    "score_pack_probes",
    "score_probes",
    "summarize_probes",
    "with_prompts",
]

PROBE_COLUMNS = [
    "set",
    "variant",
    "probe_id",
    "split",
    "domain",
    "prompt",
    "target",
    "prob",
    "logprob",
    "rank",
    "top1",
    "top5",
    "seq_logprob",
    "best_seq_logprob",
    "target_tokens",
    "seq_greedy",
]


def with_prompts(probes: Sequence[NextTokenProbe], prompts: Sequence[str]) -> list[NextTokenProbe]:
    """Copies of probes with other prompts (for priming and paraphrases)."""
    if len(prompts) != len(probes):
        raise ValueError("one prompt per probe")
    return [replace(p, prompt=q) for p, q in zip(probes, prompts)]


def probe_requests(tokenizer, probes: Sequence[NextTokenProbe]) -> tuple[list[Request], list[tuple[int, int]]]:
    """The scoring requests of probes (one per target) and the (probe index, target index) of each."""
    if not probes:
        raise WorkbenchError("no probes to score (the probe set is empty)")
    for p in probes:
        if not isinstance(p, NextTokenProbe):
            raise WorkbenchError(f"{getattr(p, 'source', p)}: not a next-token probe (a completion prompt?)")
    pairs = [(p.prompt, t) for p in probes for t in p.targets]
    encoded = encode_pairs(tokenizer, pairs)
    requests: list[Request] = []
    owners: list[tuple[int, int]] = []
    k = 0
    for i, p in enumerate(probes):
        enc = encoded[k : k + len(p.targets)]
        k += len(p.targets)
        firsts = tuple(dict.fromkeys(cont[0] for _, cont in enc))  # distinct, in target order
        for j, (ctx, cont) in enumerate(enc):
            requests.append(Request(ctx, cont, firsts if j == 0 else ()))
            owners.append((i, j))
    return requests, owners


def score_probes(
    lm: LoadedModel,
    probes: Sequence[NextTokenProbe],
    config: LoglikelihoodConfig | None = None,
    variant: str = "original",
) -> pd.DataFrame:
    """One row per probe with its familiarity numbers (columns :data:`PROBE_COLUMNS`).

    Every target of a probe is one request (prompt, target); the first target's request also reports the
    log-probabilities and ranks of all the targets' distinct first tokens at the answer position.
    """
    requests, owners = probe_requests(lm.tokenizer, probes)
    cfg = config or LoglikelihoodConfig(desc="probes")
    scores = score_requests(lm.model, requests, cfg, pad_id=lm.tokenizer.pad_token_id or 0)
    rows = []
    by_probe: dict[int, list] = {}
    for (i, j), req, score in zip(owners, requests, scores):
        by_probe.setdefault(i, []).append((j, req, score))
    for i, p in enumerate(probes):
        entries = sorted(by_probe[i], key=lambda e: e[0])
        _, req0, s0 = entries[0]
        prob = float(sum(math.exp(v) for v in s0.query_logprobs))
        rank = int(min(s0.query_ranks))
        rows.append(
            {
                "set": p.kind,
                "variant": variant,
                "probe_id": p.id,
                "split": p.split,
                "domain": p.domain,
                "prompt": p.prompt,
                "target": p.targets[0],
                "prob": prob,
                "logprob": math.log(prob) if prob > 0 else -math.inf,
                "rank": rank,
                "top1": rank == 1,
                "top5": rank <= 5,
                "seq_logprob": s0.logprob,
                "best_seq_logprob": max(s.logprob for _, _, s in entries),
                "target_tokens": len(req0.continuation_ids),
                "seq_greedy": s0.greedy,
            }
        )
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% interval."""
    n = len(values)
    mean = float(np.mean(values)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def summarize_probes(df: pd.DataFrame, by: Sequence[str] = ("set", "variant", "split")) -> pd.DataFrame:
    """Aggregates per group: n, mean_prob (with 95% CI), median_prob, mean_logprob, median_rank, top1_rate,
    top5_rate, mean_seq_logprob. A split of ``'all'`` is added alongside the per-split rows."""
    if df.empty:
        return pd.DataFrame()
    by = list(by)
    frames = [df]
    if "split" in by:
        frames.append(df.assign(split="all"))
    full = pd.concat(frames, ignore_index=True)
    rows = []
    for key, g in full.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, lo, hi = _mean_ci(g["prob"].to_numpy(dtype=float))
        logp = g["logprob"].to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(by, key)),
                "n": len(g),
                "mean_prob": mean,
                "mean_prob_ci_low": lo,
                "mean_prob_ci_high": hi,
                "median_prob": float(g["prob"].median()),
                "mean_logprob": float(np.mean(np.maximum(logp, -100.0))),
                "median_rank": float(g["rank"].median()),
                "top1_rate": float(g["top1"].mean()),
                "top5_rate": float(g["top5"].mean()),
                "mean_seq_logprob": float(g["seq_logprob"].mean()),
            }
        )
    return pd.DataFrame(rows)


def score_pack_probes(
    lm: LoadedModel,
    pack: Pack | str,
    kinds: Sequence[str],
    config: LoglikelihoodConfig | None = None,
    require: bool = False,
) -> pd.DataFrame:
    """Probe rows (:data:`PROBE_COLUMNS`) for the next-token probe files ``kinds`` of a pack. A kind whose file
    is missing is skipped, or with ``require`` an error; no file at all is an error."""
    pack = load_pack(pack)
    frames = []
    for kind in kinds:
        if not require and not pack.has_probes(kind):
            continue
        probes = pack.probes(kind)
        if not isinstance(probes[0], NextTokenProbe):
            raise WorkbenchError(f"pack {pack.name!r}: '{kind}' probes are not next-token probes")
        frames.append(score_probes(lm, probes, config or LoglikelihoodConfig(desc=kind)))
    if not frames:
        raise WorkbenchError(f"pack {pack.name!r} has none of the probe files {', '.join(kinds) or '(none)'}")
    return pd.concat(frames, ignore_index=True)


def check_pack(
    pack: Pack | str, loaded_model: LoadedModel, kinds: tuple[str, ...] | None = None, batch_size: int = 16
) -> pd.DataFrame:
    """Each next-token probe's probability and rank of its answer under a model (the pack's baseline numbers).

    ``kinds`` default to every declared next-token kind; a named kind whose file is missing is an error.
    Returns one row per probe: ``kind, id, split, domain, prompt, target, prob, rank, top1, seq_logprob``.
    """
    pack = load_pack(pack)
    if kinds is None:
        kinds = tuple(k for k in pack.probe_paths if k != COMPLETION_KIND and k not in ANSWER_PROBE_KINDS)
    out = score_pack_probes(
        loaded_model, pack, kinds, LoglikelihoodConfig(batch_size=batch_size, desc="check"), require=True
    )
    cols = ["set", "probe_id", "split", "domain", "prompt", "target", "prob", "rank", "top1", "seq_logprob"]
    return out[cols].rename(columns={"set": "kind", "probe_id": "id"})
