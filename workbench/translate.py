"""Translation of blocks with the anchor map, and the alignment of original to translated token positions.

Position convention: position ``t`` of a block is the model state after reading tokens ``0..t``; its logits
predict token ``t + 1``. A generic label is attached to position ``t`` of the *original* block and comes from
the baseline's prediction at the aligned position ``t'`` of the *translated* block, where both prefixes end at
the same place of the text (character ends map through the anchor replacements).

Rules (as in the paper's pipeline):

1. positions whose prefix ends inside an anchor (all but the anchor's last token) get no label;
2. the anchor's last token maps to the last token of its translation;
3. at a repeated occurrence of an anchor within a block, the position that predicts it gets no label;
4. once a generic value has been used in the block, its *distinctive token* is suppressed at every later
   position (its baseline logit, and that of the same token with and without its leading space, " Jon" and "Jon",
   is set to that position's mean logit), so the model does not learn "Harry" -> "Jon". The suppression starts
   strictly after the position that holds the value's first token, as in the authors' pipeline, and keeps the
   token's case, as theirs does: "Red House" suppresses " Red" and "Red", never " red". The distinctive token is
   the value's first *word-initial* token (one that starts a word of the value) that is not a common word; a
   token inside a word is never suppressed ("Anita", " An" + "ita", never suppresses "ita"). A token is common
   when its variant group (the token up to case and surrounding spaces) makes up at least ``COMMON_SHARE`` (0.1%)
   of the tokens of a reference text (the retain text in a run; the target blocks themselves where none is
   given), which in English prose is about the 100 most frequent words: " the", " of", " and", " for"... A value
   whose word-initial tokens are all common ("the house", "Anita" as " An" + "ita") suppresses nothing:
   suppressing a function word would forbid it everywhere in the block. The authors suppress the value's first
   token whatever it is (" the" for "the dark wizard"); here that value suppresses " dark" and "dark".

Optional rule 5 (``inner=True``, beyond the paper): in the *first* occurrence of a multi-word anchor in a
block, the positions between its words are labelled too. The translation has no counterpart for them, so their
label comes from the baseline on the *original* text with the anchor's next word (its first token, and that
token's case and spacing variants) suppressed: after "Half-Blood" the model learns a continuation other than
" Prince". Positions inside a word ("Herm" -> "ione") stay unlabelled: completing a begun word is spelling, not
knowledge, and their suppressed targets are noise. (labels.py applies the suppression; here the positions are found.)

Alignment works from the fast tokenizer's character offsets alone, so it serves any tokenizer family.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import PreTrainedTokenizerBase

from workbench.anchors import AnchorMap
from workbench.corpus import Block

__all__ = [
    "Occurrence",
    "AlignedBlock",
    "TokenVariants",
    "COMMON_SHARE",
    "common_tokens",
    "translate_text",
    "translate_blocks",
    "align_block",
    "ALIGNMENT_VERSION",
]

COMMON_SHARE = 1e-3  # rule 4: a token whose variant group makes up this share of the reference text is a common word
ALIGNMENT_VERSION = 2  # bump when the rules change what a label is, so finished runs compute their labels again


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
    inner_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [m] rule 5 positions
    inner_suppress: list[list[int]] = field(default_factory=list)  # [m] token ids suppressed at each of them

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


def translate_text(
    text: str, anchors: AnchorMap, seed: int = 0, block: int = 0
) -> tuple[str, list[Occurrence], dict[str, str]]:
    """``text`` translated as block ``block`` is: (translation, every replacement with its spans, key -> value)."""
    pieces, occs, seen, choices = [], [], set(), {}
    last, shift = 0, 0
    for m in anchors.find(text):
        value = choices.get(m.key)
        if value is None:
            value = choices[m.key] = anchors.choose(m.key, seed, block)
        pieces.append(text[last : m.start])
        t0 = m.start + shift
        occs.append(Occurrence(m.key, value, m.start, m.end, t0, t0 + len(value), m.key in seen))
        pieces.append(value)
        seen.add(m.key)
        shift += len(value) - (m.end - m.start)
        last = m.end
    pieces.append(text[last:])
    return "".join(pieces), occs, choices


def _last_index_with_end(ends: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each target character position, the last token whose end equals it, else -1. ``ends`` ascending."""
    idx = np.searchsorted(ends, targets, side="right") - 1
    ok = (idx >= 0) & (ends[np.clip(idx, 0, None)] == targets)
    return np.where(ok, idx, -1)


def align_block(
    block: Block,
    trans_text: str,
    trans_ids: np.ndarray,
    trans_offsets: np.ndarray,
    occs: list[Occurrence],
    choices: dict[str, str],
    variants: "TokenVariants | None" = None,
    common: frozenset[int] = frozenset(),
    inner: bool = False,
) -> AlignedBlock:
    """Map each original position to its translated position (vectorised; see the module rules).
    ``variants`` (a :class:`TokenVariants` of the tokenizer) gives rule 4 the variants of each suppressed token
    (without it only the token itself is suppressed); ``common``: the token ids that are common words (rule 4);
    ``inner=True`` (needs ``variants``) finds the rule-5 inner positions too."""
    ends = block.offsets[:, 1]
    n = len(ends)
    if occs:
        spans = np.array(
            [(o.orig_start, o.orig_end, o.trans_start, o.trans_end, o.repeated) for o in occs], dtype=np.int64
        )
        o_start, o_end, o_tstart = spans[:, 0], spans[:, 1], spans[:, 2]
        deltas = (spans[:, 3] - o_tstart) - (o_end - o_start)
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
    suppress: list[tuple[int, int]] = []
    if occs:
        # rule 3: the position that predicts a repeated anchor (the token before the one holding its start)
        repeated = spans[:, 4].astype(bool)
        if repeated.any():
            p = np.searchsorted(ends, o_start[repeated], side="right") - 1
            target[p[(p >= 0) & (p < n)]] = -1
        suppress = _rule4(occs, trans_text, trans_ids, trans_offsets, variants, common)
    ab = AlignedBlock(block, trans_text, trans_ids, trans_offsets, target.astype(np.int64), occs, suppress, choices)
    if inner and variants is not None and occs:
        # rule 5: inside a first occurrence, between two words of the anchor, the next token still in the block
        text = block.text
        between_words = np.array([e < len(text) and text[e].isspace() for e in ends.tolist()], dtype=bool)
        inner = inside & whole & between_words & ~repeated[np.clip(j, 0, None)]
        inner[-1] = False
        ab.inner_positions = np.nonzero(inner)[0].astype(np.int64)
        ab.inner_suppress = [variants.of(int(block.input_ids[t + 1])) for t in ab.inner_positions]
    return ab


def _word_start(text: str, p: int) -> bool:
    """Whether a word begins at character ``p`` of ``text`` (a letter or digit not preceded by one, nor by an
    apostrophe inside a word: the "s" of "Boar's" does not begin a word)."""
    if not text[p].isalnum():
        return False
    if p == 0:
        return True
    before = text[p - 1]
    return not (before.isalnum() or (before in "'\u2019" and p >= 2 and text[p - 2].isalnum()))


def _rule4(
    occs: list[Occurrence],
    trans_text: str,
    trans_ids: np.ndarray,
    trans_offsets: np.ndarray,
    variants: "TokenVariants | None",
    common: frozenset[int],
) -> list[tuple[int, int]]:
    """Rule 4 as (first suppressed translated position, token id) pairs, one per token, earliest start kept."""
    start_of: dict[int, int] = {}
    n = len(trans_ids)
    t_ends = trans_offsets[:, 1] if n else np.zeros(0, dtype=np.int64)
    for o in occs:
        first = int(np.searchsorted(t_ends, o.trans_start, side="right"))  # the token holding the value's first char
        if first >= n:
            continue
        last = min(int(np.searchsorted(t_ends, o.trans_end, side="left")), n - 1)  # ... and its last char
        distinctive = None
        for i in range(first, last + 1):
            a, b = int(trans_offsets[i, 0]), int(trans_offsets[i, 1])
            p = next((q for q in range(a, b) if not trans_text[q].isspace()), b)  # the token's first visible char
            if o.trans_start <= p < o.trans_end and _word_start(trans_text, p) and int(trans_ids[i]) not in common:
                distinctive = int(trans_ids[i])
                break
        if distinctive is None:  # only common words: suppressing them would forbid function words in the block
            continue
        for tok in variants.spacing(distinctive) if variants is not None else [distinctive]:
            start_of.setdefault(tok, first + 1)  # strictly after the value's first token
    return sorted(((s, t) for t, s in start_of.items()), key=lambda st: (st[0], st[1]))


def common_tokens(
    texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, variants: "TokenVariants", share: float = COMMON_SHARE
) -> frozenset[int]:
    """Token ids whose variant group (" The", "the", " the"...) makes up at least ``share`` of the tokens of
    ``texts``, and tokens that are only spaces: the common words rule 4 never suppresses."""
    counts: Counter[str] = Counter()
    total = 0
    for ids, _ in _encode([t for t in texts if t], tokenizer):
        total += len(ids)
        counts.update(variants.key(int(i)) for i in ids)
    frequent = {k for k, c in counts.items() if total and c >= share * total}
    return frozenset(i for i in range(variants.size) if variants.key(i) in frequent or not variants.key(i))


class TokenVariants:
    """Token ids that spell the same word up to case and surrounding spaces (" Prince", "Prince", " prince"), and
    the exact text of each token, leading space included (decoded after a letter, so that SentencePiece keeps it)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        n = len(tokenizer)
        lead = tokenizer("a", add_special_tokens=False)["input_ids"][:1]
        prefix = tokenizer.decode(lead, clean_up_tokenization_spaces=False) if lead else ""
        texts = tokenizer.batch_decode([lead + [i] for i in range(n)], clean_up_tokenization_spaces=False)
        self._text = [t[len(prefix) :] if t.startswith(prefix) else t for t in texts]
        self._key = [t.strip().lower() for t in self._text]
        self._groups: dict[str, list[int]] = {}
        for i, k in enumerate(self._key):
            if k:
                self._groups.setdefault(k, []).append(i)
        self._by_text: dict[str, list[int]] | None = None

    @property
    def size(self) -> int:
        return len(self._key)

    def key(self, token_id: int) -> str:
        """The token's text, stripped and lower-cased ("" for a token of spaces, or an id out of range)."""
        return self._key[token_id] if 0 <= token_id < len(self._key) else ""

    def text(self, token_id: int) -> str:
        """The token's exact text, its leading space included ("" for an id out of range)."""
        return self._text[token_id] if 0 <= token_id < len(self._text) else ""

    def of(self, token_id: int) -> list[int]:
        """``token_id`` and its variants (a token that is only spaces stands for itself alone)."""
        k = self._key[token_id] if 0 <= token_id < len(self._key) else ""
        return sorted(set(self._groups.get(k, [])) | {token_id})

    def spacing(self, token_id: int) -> list[int]:
        """``token_id`` and the tokens spelling it with and without one leading space, in the same case
        (" Jon" -> [" Jon", "Jon"]; never " jon"): rule 4's variants."""
        if self._by_text is None:
            self._by_text = {}
            for i, t in enumerate(self._text):
                self._by_text.setdefault(t, []).append(i)
        word = self.text(token_id)
        word = word[1:] if word.startswith(" ") else word
        if not word.strip():
            return [token_id]
        return sorted(set(self._by_text.get(word, [])) | set(self._by_text.get(" " + word, [])) | {token_id})


def translate_blocks(
    blocks: Sequence[Block],
    anchors: AnchorMap,
    tokenizer: PreTrainedTokenizerBase,
    seed: int = 0,
    inner: bool = False,
    reference: Iterable[str] | None = None,
) -> list[AlignedBlock]:
    """Translate and align every block; the translated texts are tokenized in one batched call.
    ``inner=True`` also finds the rule-5 positions inside multi-token anchors (see the module rules).
    ``reference``: texts that decide which tokens are common words for rule 4 (default: the blocks' own text)."""
    prepared = [translate_text(b.text, anchors, seed, b.index) for b in blocks]
    variants = _variants(tokenizer)
    common = common_tokens(reference if reference is not None else [b.text for b in blocks], tokenizer, variants)
    out = []
    for b, (text, occs, choices), (t_ids, t_offs) in zip(
        blocks, prepared, _encode([p[0] for p in prepared], tokenizer)
    ):
        out.append(align_block(b, text, t_ids, t_offs, occs, choices, variants, common, inner))
    return out


_VARIANTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _variants(tokenizer: PreTrainedTokenizerBase) -> TokenVariants:
    """One TokenVariants per tokenizer object (decoding the whole vocabulary takes a moment)."""
    try:
        return _VARIANTS[tokenizer]
    except (KeyError, TypeError):
        tv = TokenVariants(tokenizer)
        try:
            _VARIANTS[tokenizer] = tv
        except TypeError:
            pass
        return tv


def _encode(texts: list[str], tokenizer: PreTrainedTokenizerBase) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids [n] int64, offsets [n, 2] int64) per text, no special tokens, one batched call.

    Calls the Rust tokenizer directly when it holds no truncation or padding setting (the same encodings
    as ``tokenizer(...)`` without the Python-side BatchEncoding round trip); otherwise goes through the wrapper.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        encs = backend.encode_batch(texts, add_special_tokens=False)
        return [(np.asarray(e.ids, dtype=np.int64), np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)) for e in encs]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [
        (np.asarray(ids, dtype=np.int64), np.asarray(offs, dtype=np.int64).reshape(-1, 2))
        for ids, offs in zip(enc["input_ids"], enc["offset_mapping"])
    ]
