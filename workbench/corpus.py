"""Target and retain text: reading plain-text files, and cutting them into fixed-length token blocks."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from workbench.errors import WorkbenchError
from workbench.hashing import corpus_fingerprint  # re-exported: the corpus is where callers look
from workbench.io import read_text_file

__all__ = ["Document", "Block", "read_documents", "make_blocks", "corpus_fingerprint", "DOC_SEPARATOR"]

DOC_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Document:
    """One text file of a corpus."""

    name: str  # file name relative to the corpus folder
    text: str


@dataclass
class Block:
    """A fixed-length window of the tokenized corpus, with the text it covers.

    ``offsets[i]`` is the character span of token ``i`` inside ``text`` (block-relative).
    """

    index: int  # position of the block in the corpus
    input_ids: np.ndarray  # [pos] int64 token ids
    offsets: np.ndarray  # [pos, 2] int64 character spans in ``text``
    text: str  # the corpus text from the first token's start to the last token's end
    char_start: int  # where ``text`` starts in the joined corpus

    def __len__(self) -> int:
        return len(self.input_ids)


def read_documents(paths: str | os.PathLike | Sequence[str | os.PathLike], what: str = "corpus") -> list[Document]:
    """Read ``.txt`` files: a file, a folder of them (sorted, recursive), or a list of either.

    Errors name the file: missing path, no ``.txt`` files, non-UTF-8 bytes, all files empty.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise WorkbenchError(f"{what}: no files given")
    files: list[tuple[Path, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise WorkbenchError(f"{what}: folder {path} holds no .txt files")
            files += [(p, str(p.relative_to(path))) for p in found]
        elif path.is_file():
            files.append((path, path.name))
        else:
            raise WorkbenchError(f"{what}: {path} does not exist; give a .txt file or a folder of them")
    docs = []
    for path, name in files:
        text = read_text_file(path, f"{what}: {path}")
        # NFC, as the anchor map's keys are: a decomposed "é" in the text still matches the key "Café"
        text = unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()
        if text:
            docs.append(Document(name, text))
    if not docs:
        raise WorkbenchError(f"{what}: every file is empty ({', '.join(str(p) for p, _ in files[:5])})")
    return docs


def make_blocks(
    docs: Sequence[Document],
    tokenizer: PreTrainedTokenizerBase,
    block_size: int = 512,
    max_blocks: int | None = None,
    min_tokens: int | None = None,
) -> list[Block]:
    """Tokenize the documents (joined by a blank line) and cut the tokens into blocks of ``block_size``.

    The last partial block is kept. ``min_tokens`` (default: ``block_size``) is the smallest corpus accepted.
    """
    if block_size < 2:
        raise WorkbenchError(f"block_size must be at least 2, got {block_size}")
    joined = DOC_SEPARATOR.join(d.text for d in docs)
    enc = tokenizer(joined, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    need = block_size if min_tokens is None else min_tokens
    if len(ids) < need:
        raise WorkbenchError(
            f"the corpus has {len(ids)} tokens, shorter than one block of {block_size}; "
            "add text or lower block_size in the config"
        )
    blocks = []
    for index, start in enumerate(range(0, len(ids), block_size)):
        if max_blocks is not None and index >= max_blocks:
            break
        sl = slice(start, start + block_size)
        off = offsets[sl]
        c0, c1 = int(off[0, 0]), int(off[:, 1].max())
        blocks.append(Block(index, ids[sl].copy(), off - c0, joined[c0:c1], c0))
    return blocks


def target_blocks(docs: Sequence[Document], tokenizer: PreTrainedTokenizerBase, target) -> list[Block]:
    """The blocks a run trains on, from its ``target`` config (:class:`workbench.config.TargetConfig`): blocks of
    ``block_size`` tokens, the first ``max_blocks`` or, with ``spread_blocks``, ``max_blocks`` evenly spaced ones."""
    blocks = make_blocks(docs, tokenizer, target.block_size, None if target.spread_blocks else target.max_blocks)
    if target.spread_blocks and target.max_blocks and target.max_blocks < len(blocks):
        # evenly spaced blocks cover the whole corpus (every document type) in a short run
        keep = np.linspace(0, len(blocks) - 1, target.max_blocks).round().astype(int)
        blocks = [blocks[i] for i in sorted(set(keep.tolist()))]
    return blocks


def retain_blocks(docs: Sequence[Document], tokenizer: PreTrainedTokenizerBase, target) -> list[Block]:
    """The retain blocks of a run, from its retain documents and ``target`` config (none without documents)."""
    if not docs:
        return []
    return make_blocks(docs, tokenizer, target.retain_block_size, target.max_retain_blocks, min_tokens=1)
