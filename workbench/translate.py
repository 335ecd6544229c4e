"""Translation of blocks with the anchor map, and the alignment of original to translated token positions.

Position convention: position ``t`` of a block is the model state after reading tokens ``0..t``; its logits
predict token ``t + 1``. A generic label is attached to position ``t`` of the *original* block and comes from
the baseline's prediction at the aligned position ``t'`` of the *translated* block, where both prefixes end at
the same place of the text (character ends map through the anchor replacements).

Rules (as in the paper's pipeline):

1. positions whose prefix ends inside an anchor (all but the anchor's last token) get no label;
2. the anchor's last token maps to the last token of its translation;
3. at a repeated occurrence of an anchor within a block, the position that predicts it gets no label;
4. the first token of a generic value already used in the block is suppressed at later positions (its
   baseline logit is set to that position's mean logit), so the model does not learn "Harry" -> "Jon".

Alignment works from the fast tokenizer's character offsets alone, so it serves any tokenizer family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from workbench.anchors import AnchorMap
from workbench.corpus import Block

__all__ = ["Occurrence", "AlignedBlock", "translate_blocks", "align_block"]


@dataclass(frozen=True)
class Occurrence:
    """One replaced anchor: ``orig_text[orig_start:orig_end] == key``, ``trans_text[trans_start:trans_end] == value``."""

    key: str
    value: str
    orig_start: int
    orig_end: int
    trans_start: int
    trans_end: int
    repeated: bool  # the key already occurred earlier in the block


@dataclass
class AlignedBlock:
    """A block, its translation, and the position mapping between them."""

    block: Block
    trans_text: str
    trans_ids: np.ndarray  # [trans_pos] token ids of the translated text
    trans_offsets: np.ndarray  # [trans_pos, 2]
    orig_to_trans: np.ndarray  # [pos] aligned translated position, -1 where the position gets no label
    occurrences: list[Occurrence]
    suppress: list[tuple[int, int]] = field(default_factory=list)  # (from translated position, token id)
    choices: dict[str, str] = field(default_factory=dict)  # key -> value used in this block

    @property
    def label_positions(self) -> np.ndarray:
        """Original positions that get a generic label: [n_labelled]."""
        return np.nonzero(self.orig_to_trans >= 0)[0]

    def suppression_mask(self, vocab_size: int) -> np.ndarray:
        """[trans_pos, vocab] bool: True where the baseline logit is replaced by the position mean."""
        mask = np.zeros((len(self.trans_ids), vocab_size), dtype=bool)
        for start, token in self.suppress:
            if token < vocab_size:
                mask[start:, token] = True
        return mask


def _occurrences(block: Block, anchors: AnchorMap, seed: int) -> tuple[str, list[Occurrence], dict[str, str]]:
    pieces, occs, seen, choices = [], [], set(), {}
    last, shift = 0, 0
    for m in anchors.find(block.text):
        value = choices.get(m.key)
        if value is None:
            value = choices[m.key] = anchors.choose(m.key, seed, block.index)
        pieces.append(block.text[last : m.start])
        t0 = m.start + shift
        occs.append(Occurrence(m.key, value, m.start, m.end, t0, t0 + len(value), m.key in seen))
        pieces.append(value)
        seen.add(m.key)
        shift += len(value) - (m.end - m.start)
        last = m.end
    pieces.append(block.text[last:])
    return "".join(pieces), occs, choices


def _last_index_with_end(ends: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each target character position, the last token whose end equals it, else -1. ``ends`` ascending."""
    idx = np.searchsorted(ends, targets, side="right") - 1
    ok = (idx >= 0) & (ends[np.clip(idx, 0, None)] == targets)
    return np.where(ok, idx, -1)


def align_block(
    block: Block, trans_text: str, trans_ids: np.ndarray, trans_offsets: np.ndarray,
    occs: list[Occurrence], choices: dict[str, str],
) -> AlignedBlock:
    """Map each original position to its translated position (vectorised; see the module rules)."""
    ends = block.offsets[:, 1]
    n = len(ends)
    if occs:
        o_start = np.array([o.orig_start for o in occs])
        o_end = np.array([o.orig_end for o in occs])
        deltas = np.array([(o.trans_end - o.trans_start) - (o.orig_end - o.orig_start) for o in occs])
        cum = np.concatenate([[0], np.cumsum(deltas)])
        # occurrences that end at or before each token end shift it by their summed length change
        k = np.searchsorted(o_end, ends, side="right")
        mapped = ends + cum[k]
        # rule 1: an end strictly inside an anchor has no counterpart
        j = np.searchsorted(o_start, ends, side="left") - 1  # last occurrence starting before the end
        inside = (j >= 0) & (ends < o_end[np.clip(j, 0, None)]) & (ends > o_start[np.clip(j, 0, None)])
    else:
        mapped = ends.copy()
        inside = np.zeros(n, dtype=bool)
    t_ends = trans_offsets[:, 1] if len(trans_offsets) else np.zeros(0, dtype=np.int64)
    # several tokens can share an end (a multi-byte character split in bytes): the prefix is whole only at the last
    whole = np.ones(n, dtype=bool)
    whole[:-1] = ends[:-1] != ends[1:]
    target = _last_index_with_end(t_ends, mapped) if len(t_ends) else np.full(n, -1)
    target = np.where(inside | ~whole, -1, target)
    target[-1] = -1  # the last position has no next token inside the block
    # rule 3: the position that predicts a repeated anchor (the token before the one holding its start)
    for o in occs:
        if o.repeated:
            p = int(np.searchsorted(ends, o.orig_start, side="right")) - 1
            if 0 <= p < n:
                target[p] = -1
    # rule 4: the first translated token of each used value is suppressed from there on
    suppress = []
    for o in occs:
        first = int(np.searchsorted(t_ends, o.trans_start, side="right"))
        if first < len(trans_ids):
            suppress.append((first, int(trans_ids[first])))
    return AlignedBlock(block, trans_text, trans_ids, trans_offsets, target.astype(np.int64), occs, suppress, choices)


def translate_blocks(
    blocks: Sequence[Block], anchors: AnchorMap, tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> list[AlignedBlock]:
    """Translate and align every block; the translated texts are tokenized in one batched call."""
    prepared = [_occurrences(b, anchors, seed) for b in blocks]
    enc = tokenizer([p[0] for p in prepared], add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for b, (text, occs, choices), ids, offs in zip(blocks, prepared, enc["input_ids"], enc["offset_mapping"]):
        t_ids = np.asarray(ids, dtype=np.int64)
        t_offs = np.asarray(offs, dtype=np.int64).reshape(-1, 2)
        out.append(align_block(b, text, t_ids, t_offs, occs, choices))
    return out
