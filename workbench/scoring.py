"""Scoring: how strongly each token of the target is tied to it, from reinforced vs baseline logits.

For position t (predicting token t+1) of a block:

- ``gain_logit = v_reinf[next] - v_base[next]``: how much reinforcement raised the actual next token's logit;
- ``gain_logprob``: the same on log-probabilities (insensitive to a shift of all logits);
- ``raised``: the tokens whose probability the reinforced model raises most at that position.

Word-level aggregation of the gains gives *suggested anchors*: words the reinforced model boosts most that
the anchor map does not cover yet.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from workbench.anchors import AnchorMap
from workbench.corpus import Block
from workbench.pair import ModelPair, pad_batch

__all__ = ["score_blocks", "token_summary", "suggest_anchors"]

_WORD = re.compile(r"[A-Za-z\u00C0-\u024F][\w'\u2019-]*[\w]|[A-Za-z]")


def score_blocks(
    pair: ModelPair, blocks: Sequence[Block], tokenizer: PreTrainedTokenizerBase, batch_size: int = 4,
    n_raised: int = 3, progress: bool = True,
) -> pd.DataFrame:
    """One row per position: block, pos, next_id, next_token, gain_logit, gain_logprob, p_base, p_reinf, raised."""
    frames = []
    bar = tqdm(total=sum(len(b) for b in blocks), unit="tok", desc="scoring", disable=not progress)
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i : i + batch_size]
        ids, mask = pad_batch([b.input_ids for b in batch], tokenizer.pad_token_id, pair.device)
        v_b = pair.base_logits(ids, mask)
        v_r = pair.reinforced_logits(ids, mask)
        for j, b in enumerate(batch):
            n = len(b) - 1
            if n <= 0:
                continue
            nxt = torch.as_tensor(b.input_ids[1:], device=v_b.device)
            lb, lr = torch.log_softmax(v_b[j, :n], -1), torch.log_softmax(v_r[j, :n], -1)
            g_logit = (v_r[j, :n].gather(-1, nxt[:, None]) - v_b[j, :n].gather(-1, nxt[:, None]))[:, 0]
            g_lp = (lr.gather(-1, nxt[:, None]) - lb.gather(-1, nxt[:, None]))[:, 0]
            raised = (lr.exp() - lb.exp()).topk(n_raised, -1).indices.cpu().numpy()
            frames.append(pd.DataFrame({
                "block": b.index, "pos": np.arange(n), "next_id": b.input_ids[1:],
                "next_token": tokenizer.convert_ids_to_tokens(b.input_ids[1:].tolist()),
                "gain_logit": g_logit.cpu().numpy(), "gain_logprob": g_lp.cpu().numpy(),
                "p_base": lb.gather(-1, nxt[:, None])[:, 0].exp().cpu().numpy(),
                "p_reinf": lr.gather(-1, nxt[:, None])[:, 0].exp().cpu().numpy(),
                "raised": [tokenizer.convert_ids_to_tokens(r.tolist()) for r in raised],
            }))
        bar.update(sum(len(b) for b in batch))
    bar.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def token_summary(scores: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, top: int = 30, min_count: int = 2) -> pd.DataFrame:
    """Tokens with the largest mean log-probability gain (seen at least ``min_count`` times)."""
    g = scores.groupby("next_id").agg(count=("gain_logprob", "size"), mean_gain=("gain_logprob", "mean"),
                                      mean_p_base=("p_base", "mean"), mean_p_reinf=("p_reinf", "mean"))
    g = g[g["count"] >= min_count].sort_values("mean_gain", ascending=False).head(top)
    g.insert(0, "token", [tokenizer.decode([int(i)]) for i in g.index])
    return g.reset_index()


def suggest_anchors(
    scores: pd.DataFrame, blocks: Sequence[Block], anchors: AnchorMap | None = None, top: int = 40, min_count: int = 2,
) -> pd.DataFrame:
    """Words the reinforced model boosts most that no anchor covers: word, count, mean_gain, score.

    A word's gain is the summed log-probability gain of its tokens; ``score = mean_gain * log(1 + count)``.
    """
    by_block = {b.index: b for b in blocks}
    gains: dict[str, list[float]] = defaultdict(list)
    for block_index, df in scores.groupby("block"):
        b = by_block.get(int(block_index))
        if b is None:
            continue
        covered = np.zeros(len(b.text) + 1, dtype=bool)
        if anchors is not None:
            for m in anchors.find(b.text):
                covered[m.start : m.end] = True
        # gain of token t+1 sits at row pos=t; token i spans offsets[i]
        g = np.zeros(len(b))
        g[df["pos"].to_numpy() + 1] = df["gain_logprob"].to_numpy()
        starts = b.offsets[:, 0]
        for m in _WORD.finditer(b.text):
            if covered[m.start()] or not m.group(0)[0].isupper() and len(m.group(0)) < 4:
                continue
            lo, hi = np.searchsorted(starts, m.start(), "left"), np.searchsorted(starts, m.end(), "left")
            if hi > lo and lo > 0:  # skip the block's first word: nothing predicted it
                gains[m.group(0)].append(float(g[lo:hi].sum()))
    rows = [{"word": w, "count": len(v), "mean_gain": float(np.mean(v))} for w, v in gains.items() if len(v) >= min_count]
    df = pd.DataFrame(rows, columns=["word", "count", "mean_gain"])
    if df.empty:
        return df.assign(score=[])
    df["score"] = df["mean_gain"] * np.log1p(df["count"])
    return df.sort_values("score", ascending=False).head(top).reset_index(drop=True)
