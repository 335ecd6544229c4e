"""Scoring: how strongly each token of the target is tied to it, from reinforced vs baseline logits.

For position t (predicting token t+1) of a block:

- ``gain_logit = v_reinf[next] - v_base[next]``: how much reinforcement raised the actual next token's logit;
- ``gain_logprob``: the same on log-probabilities (insensitive to a shift of all logits);
- ``raised``: the tokens whose probability the reinforced model raises most at that position.

Word-level aggregation of the gains gives *suggested anchors*: words and multi-word names the reinforced model
boosts most that the anchor map does not cover yet, each with its mean gain, count and example contexts.
A word's gain is the sum over the tokens that overlap it (byte-level BPE tokens carry the word's leading space).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workbench.anchors import AnchorMap
from workbench.corpus import Block
from workbench.models import with_small_heap

if TYPE_CHECKING:  # torch is imported where the models run, so the word statistics load fast (anchor editor)
    from transformers import PreTrainedTokenizerBase

    from workbench.model_pair import ModelPair

__all__ = [
    "score_blocks",
    "token_summary",
    "suggest_anchors",
    "block_words",
    "text_words",
    "name_runs",
    "token_gains",
    "WordOccurrence",
    "SUGGESTION_COLUMNS",
]

_WORD = re.compile(r"[A-Za-z\u00C0-\u024F][\w'\u2019-]*[\w]|[A-Za-z]")
# lower-case words that may join the capitalised words of one name ("Order of the Phoenix", "Ludwig van Beethoven")
PARTICLES = frozenset(
    {"of", "the", "de", "du", "des", "la", "le", "von", "van", "der", "den", "di", "da", "del", "y", "al", "el"}
)
SUGGESTION_COLUMNS = ["word", "kind", "n_words", "count", "mean_gain", "score", "name_like", "examples"]


@with_small_heap
def score_blocks(
    pair: ModelPair,
    blocks: Sequence[Block],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 4,
    n_raised: int = 3,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per position: block, pos, next_id, next_token, gain_logit, gain_logprob, p_base, p_reinf, raised."""
    import torch
    from tqdm.auto import tqdm

    from workbench.model_pair import pad_batch

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
            frames.append(
                pd.DataFrame(
                    {
                        "block": b.index,
                        "pos": np.arange(n),
                        "next_id": b.input_ids[1:],
                        "next_token": tokenizer.convert_ids_to_tokens(b.input_ids[1:].tolist()),
                        "gain_logit": g_logit.cpu().numpy(),
                        "gain_logprob": g_lp.cpu().numpy(),
                        "p_base": lb.gather(-1, nxt[:, None])[:, 0].exp().cpu().numpy(),
                        "p_reinf": lr.gather(-1, nxt[:, None])[:, 0].exp().cpu().numpy(),
                        "raised": [tokenizer.convert_ids_to_tokens(r.tolist()) for r in raised],
                    }
                )
            )
        bar.update(sum(len(b) for b in batch))
    bar.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def token_summary(
    scores: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, top: int = 30, min_count: int = 2
) -> pd.DataFrame:
    """Tokens with the largest mean log-probability gain (seen at least ``min_count`` times)."""
    g = scores.groupby("next_id").agg(
        count=("gain_logprob", "size"),
        mean_gain=("gain_logprob", "mean"),
        mean_p_base=("p_base", "mean"),
        mean_p_reinf=("p_reinf", "mean"),
    )
    g = g[g["count"] >= min_count].sort_values("mean_gain", ascending=False).head(top)
    g.insert(0, "token", [tokenizer.decode([int(i)]) for i in g.index])
    return g.reset_index()


def token_gains(block: Block, df: pd.DataFrame) -> np.ndarray:
    """Gain of each token of ``block`` from its rows of the scores table (row ``pos = t`` scores token ``t+1``);
    NaN where nothing predicted the token (the block's first token) or the position was not scored."""
    g = np.full(len(block), np.nan)
    g[df["pos"].to_numpy() + 1] = df["gain_logprob"].to_numpy()
    return g


@dataclass
class WordOccurrence:
    """One word of a block: its text, span in the block's text, and the summed gain of its tokens."""

    text: str
    start: int
    end: int
    gain: float  # summed gain of every token overlapping the word (NaN when one of them was not scored)
    sentence_start: bool  # first word of a sentence, a line or the block
    covered: bool  # inside an anchor of the map


def _token_span(block: Block, start: int, end: int) -> tuple[int, int]:
    """Tokens ``[lo, hi)`` whose character span overlaps ``[start, end)``. A byte-level BPE token carries the
    word's leading space (" Harry" spans (4, 10) for "Harry" at 5), so overlap, not "starts inside", decides."""
    return (
        int(np.searchsorted(block.offsets[:, 1], start, "right")),
        int(np.searchsorted(block.offsets[:, 0], end, "left")),
    )


_SENTENCE_END = re.compile(r"(?:[.!?:;\n]|^)[\s\"'\u2018\u201c(*_-]*$")


def text_words(text: str, matches=()) -> list[WordOccurrence]:
    """The words of ``text`` (gain NaN), each marked when it starts a sentence or lies inside one of ``matches``
    (anchor matches: objects with ``start`` and ``end``)."""
    covered = np.zeros(len(text) + 1, dtype=bool)
    for m in matches:
        covered[m.start : m.end] = True
    out: list[WordOccurrence] = []
    for m in _WORD.finditer(text):
        before = text[max(0, m.start() - 8) : m.start()]
        initial = not out or bool(_SENTENCE_END.search(before))
        out.append(
            WordOccurrence(
                m.group(0), m.start(), m.end(), float("nan"), initial, bool(covered[m.start() : m.end()].any())
            )
        )
    return out


def block_words(block: Block, gains: np.ndarray, anchors: AnchorMap | None = None) -> list[WordOccurrence]:
    """The words of a block with the summed gain of their tokens (``gains[i]``: gain of token ``i``)."""
    words = text_words(block.text, anchors.find(block.text) if anchors is not None else ())
    for w in words:
        lo, hi = _token_span(block, w.start, w.end)
        w.gain = float(gains[lo:hi].sum()) if hi > lo else float("nan")
    return words


def _context(text: str, start: int, end: int, width: int = 50) -> str:
    left = text[max(0, start - width) : start].replace("\n", " ")
    right = text[end : end + width].replace("\n", " ")
    return f"…{left}[{text[start:end]}]{right}…"


def name_runs(words: list[WordOccurrence], text: str, lower_vocab: set[str]) -> list[list[WordOccurrence]]:
    """Maximal runs of capitalised words (joined by single spaces, particles allowed inside) outside anchors."""
    runs, cur = [], []

    def flush():
        run = list(cur)
        cur.clear()
        while run and (run[0].text in PARTICLES or run[0].sentence_start and run[0].text.lower() in lower_vocab):
            run.pop(0)  # "The Burrow" at a sentence start names the Burrow
        while run and run[-1].text in PARTICLES:
            run.pop()
        if len(run) >= 2:
            runs.append(run)

    for w in words:
        if cur and text[cur[-1].end : w.start] != " ":
            flush()
        if not w.covered and (w.text[:1].isupper() or (cur and w.text in PARTICLES)):
            cur.append(w)
        else:
            flush()
    flush()
    return runs


def suggest_anchors(
    scores: pd.DataFrame,
    blocks: Sequence[Block],
    anchors: AnchorMap | None = None,
    top: int | None = 40,
    min_count: int = 2,
    phrases: bool = True,
    boost: float = 1.0,
    examples: int = 3,
) -> pd.DataFrame:
    """Words and phrases the reinforced model boosts most that no anchor covers (columns ``SUGGESTION_COLUMNS``).

    - a word's gain at one occurrence is the summed log-probability gain of its tokens; ``mean_gain`` averages
      the occurrences in the scored blocks, ``score = mean_gain * log(1 + count)``;
    - words: capitalised ones, and lower-case ones of 4+ letters; a capitalised word at a sentence start whose
      lower-case form occurs too ("This", "When") is not counted there;
    - phrases (``kind == 'phrase'``): runs of capitalised words with particles ("Nearly Headless Nick", "Order of
      the Phoenix") in which reinforcement raised a word after the first by at least ``boost`` nats somewhere,
      i.e. the reinforced model learned that the words belong together. A word seen only inside a suggested
      phrase is left to the phrase;
    - ``name_like``: capitalised where no sentence starts (a proper name; placeholders and proposers use it);
    - ``examples``: up to ``examples`` contexts, the occurrence in [brackets], joined by ``" | "``.
    """
    by_block = {b.index: b for b in blocks}
    per_block: list[tuple[Block, list[WordOccurrence]]] = []
    for block_index, df in scores.groupby("block"):
        b = by_block.get(int(block_index))
        if b is not None:
            per_block.append((b, block_words(b, token_gains(b, df), anchors)))
    lower_vocab = {w.text for _, ws in per_block for w in ws if w.text.islower()}

    candidates: set[tuple[str, ...]] = set()
    if phrases:
        for b, ws in per_block:
            for run in name_runs(ws, b.text, lower_vocab):
                # a sentence may open with a word that is not part of the name ("Later Nearly Headless Nick")
                for sub in (run, run[1:]) if run[0].sentence_start and len(run) > 2 else (run,):
                    if any(np.isfinite(w.gain) and w.gain >= boost for w in sub[1:]):
                        candidates.add(tuple(w.text for w in sub))

    def matches(ws: list[WordOccurrence], text: str, i: int, cands: dict[str, list[tuple[str, ...]]]):
        for c in cands.get(ws[i].text, ()):
            seg = ws[i : i + len(c)]
            if (
                len(seg) == len(c)
                and all(w.text == t and not w.covered for w, t in zip(seg, c))
                and all(text[x.end : y.start] == " " for x, y in zip(seg, seg[1:]))
            ):
                yield seg

    def index(cands) -> dict[str, list[tuple[str, ...]]]:
        out: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for c in sorted(cands, key=lambda c: (-len(c), c)):  # longest first
            out[c[0]].append(c)
        return out

    # keep the candidates that recur (counting overlapping occurrences), then match them longest first
    seen: dict[tuple[str, ...], int] = defaultdict(int)
    every = index(candidates)
    for b, ws in per_block:
        for i in range(len(ws)):
            for seg in matches(ws, b.text, i, every):
                seen[tuple(w.text for w in seg)] += 1
    by_first = index(c for c, n in seen.items() if n >= min_count)

    stats: dict[tuple[str, str], dict] = {}

    def add(kind: str, text: str, gain: float, b: Block, start: int, end: int, name: bool) -> None:
        s = stats.setdefault((kind, text), {"gains": [], "examples": [], "name": 0, "where": []})
        s["gains"].append(gain)
        s["name"] += name
        s["where"].append((b.index, start))
        if len(s["examples"]) < examples:
            s["examples"].append(_context(b.text, start, end))

    in_phrase: dict[tuple[int, int], tuple[str, ...]] = {}  # (block, word start) -> the phrase holding it
    for b, ws in per_block:
        i = 0
        while i < len(ws):
            hit = next(matches(ws, b.text, i, by_first), None)
            if hit is None:
                i += 1
                continue
            gain = float(sum(w.gain for w in hit))
            if np.isfinite(gain):
                phrase = " ".join(w.text for w in hit)
                add("phrase", phrase, gain, b, hit[0].start, hit[-1].end, True)
                for w in hit:
                    in_phrase[(b.index, w.start)] = phrase
            i += len(hit)
        for w in ws:
            cap = w.text[:1].isupper()
            if w.covered or not np.isfinite(w.gain) or not cap and len(w.text) < 4:
                continue
            if cap and w.sentence_start and w.text.lower() in lower_vocab:
                continue  # "This" opening a sentence is the word "this"
            add("word", w.text, w.gain, b, w.start, w.end, cap and not w.sentence_start)

    kept_phrases = {t for (k, t), s in stats.items() if k == "phrase" and len(s["gains"]) >= min_count}
    rows = []
    for (kind, text), s in stats.items():
        n = len(s["gains"])
        if n < min_count:
            continue
        if kind == "word" and all(in_phrase.get(w) in kept_phrases for w in s["where"]):
            continue
        rows.append(
            {
                "word": text,
                "kind": kind,
                "n_words": len(text.split()),
                "count": n,
                "mean_gain": float(np.mean(s["gains"])),
                "name_like": kind == "phrase" or s["name"] * 2 > n,
                "examples": " | ".join(s["examples"]),
            }
        )
    df = pd.DataFrame(rows, columns=[c for c in SUGGESTION_COLUMNS if c != "score"])
    df["score"] = df["mean_gain"] * np.log1p(df["count"].astype(float))
    df = df[SUGGESTION_COLUMNS].sort_values(["score", "word"], ascending=[False, True], kind="stable")
    return (df if top is None else df.head(top)).reset_index(drop=True)
