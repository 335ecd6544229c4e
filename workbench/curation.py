"""The whole target corpus as an anchor map sees it: occurrences per key, a concordance, and coverage.

:class:`CorpusIndex` is computed once for a corpus (every block, not a sample) and updated incrementally on each
edit of the map: only the blocks that contain a key added or removed are matched again (an edit of alternatives
changes no match at all). Matching is the map's own (longest key first, per block, as the labels stage does),
so the counts are the ones the labels stage will see.

Coverage: the share of corpus tokens inside an anchor, the keys that never match, and the frequent capitalised
words and names ("Nearly Headless Nick", "Order of the Phoenix") that no key covers yet.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.anchors import AnchorMap, AnchorMatch
from workbench.scoring import name_runs, text_words

__all__ = ["CorpusIndex", "Occurrence", "kwic", "read_anchor_file", "write_anchor_file", "CSV_COLUMNS"]


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a key: which text (its position in the index and its block index) and where."""

    pos: int  # position of the text in the index (the editor's preview slider)
    block: int  # the block's index in the corpus (seeds the translation)
    start: int
    end: int


def kwic(text: str, start: int, end: int, width: int = 60) -> tuple[str, str, str]:
    """Key word in context: (left, match, right), each on one line."""
    left = text[max(0, start - width) : start].replace("\n", " ")
    right = text[end : end + width].replace("\n", " ")
    return left, text[start:end], right


def _token_spans(text: str, offsets) -> np.ndarray:
    if offsets is not None:
        return np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    import re

    return np.array([m.span() for m in re.finditer(r"\S+", text)], dtype=np.int64).reshape(-1, 2)


class CorpusIndex:
    """Occurrences, coverage and uncovered names of an anchor map over a corpus; see the module docstring.

    ``texts``: :class:`~workbench.corpus.Block` objects (their token offsets count tokens; their ``index`` names
    the block) or plain strings (white-space separated words stand for tokens).
    """

    def __init__(self, texts: Sequence, anchors: AnchorMap):
        self.texts: list[str] = []
        self.blocks: list[int] = []
        self._spans: list[np.ndarray] = []
        for i, t in enumerate(texts):
            text = t if isinstance(t, str) else t.text
            self.texts.append(text)
            self.blocks.append(i if isinstance(t, str) else int(getattr(t, "index", i)))
            self._spans.append(_token_spans(text, None if isinstance(t, str) else getattr(t, "offsets", None)))
        self.n_tokens = int(sum(len(s) for s in self._spans))
        self.anchors = anchors
        self._lower_vocab = {w for t in self.texts for w in t.split() if w.isalpha() and w.islower()}
        self._matches: list[list[AnchorMatch]] = [[] for _ in self.texts]
        self._covered = np.zeros(len(self.texts), dtype=np.int64)
        self._names: list[Counter] = [Counter() for _ in self.texts]
        self._counts: Counter = Counter()
        self._where: dict[str, set[int]] = {}
        self._names_total: Counter = Counter()
        self.last_update_seconds = 0.0
        self.last_update_texts = 0
        self._recompute(range(len(self.texts)))

    # -- updating ---------------------------------------------------------------------------------------------
    def _recompute(self, positions: Iterable[int]) -> None:
        t0 = time.perf_counter()
        n = 0
        for i in positions:
            n += 1
            for m in self._matches[i]:
                self._counts[m.key] -= 1
                self._where.get(m.key, set()).discard(i)
            self._names_total.subtract(self._names[i])
            text = self.texts[i]
            matches = self.anchors.find(text)
            self._matches[i] = matches
            for m in matches:
                self._counts[m.key] += 1
                self._where.setdefault(m.key, set()).add(i)
            self._covered[i] = self._covered_tokens(i, matches)
            self._names[i] = self._uncovered_names(text, matches)
            self._names_total.update(self._names[i])
        self._counts = +self._counts  # drop zeros
        self._names_total = +self._names_total
        self.last_update_seconds, self.last_update_texts = time.perf_counter() - t0, n

    def update(self, anchors: AnchorMap) -> int:
        """Switch to an edited map; returns how many texts were matched again."""
        old, new = set(self.anchors.entries), set(anchors.entries)
        changed = old ^ new
        self.anchors = anchors
        if not changed:
            self.last_update_seconds, self.last_update_texts = 0.0, 0
            return 0
        hit = [i for i, t in enumerate(self.texts) if any(k in t for k in changed)]
        self._recompute(hit)
        return len(hit)

    def _covered_tokens(self, i: int, matches: list[AnchorMatch]) -> int:
        spans = self._spans[i]
        if not matches or not len(spans):
            return 0
        mark = np.zeros(len(self.texts[i]) + 1, dtype=np.int64)
        for m in matches:
            mark[m.start] += 1
            mark[m.end] -= 1
        flags = np.cumsum(mark)[:-1] > 0  # flags[c]: character c lies inside a match
        inside = np.concatenate([[0], np.cumsum(flags)])  # inside[c]: covered characters before c
        return int(((inside[spans[:, 1]] - inside[spans[:, 0]]) > 0).sum())

    def _uncovered_names(self, text: str, matches: list[AnchorMatch]) -> Counter:
        words = text_words(text, matches)
        out: Counter = Counter()
        in_run: set[int] = set()
        for run in name_runs(words, text, self._lower_vocab):
            out[" ".join(w.text for w in run)] += 1
            in_run.update(w.start for w in run)
        for w in words:
            if (
                w.text[:1].isupper()
                and not w.covered
                and w.start not in in_run
                and not (w.sentence_start and w.text.lower() in self._lower_vocab)
            ):
                out[w.text] += 1
        return out

    # -- queries ----------------------------------------------------------------------------------------------
    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    @property
    def counts(self) -> dict[str, int]:
        """Occurrences of every key of the map over the whole corpus (0 for keys that never match)."""
        return {k: self._counts.get(k, 0) for k in self.anchors.entries}

    def occurrences(self, key: str) -> list[Occurrence]:
        """Every occurrence of ``key``, in corpus order."""
        out = []
        for i in sorted(self._where.get(key, ())):
            out += [Occurrence(i, self.blocks[i], m.start, m.end) for m in self._matches[i] if m.key == key]
        return out

    def concordance(self, key: str, width: int = 60, limit: int | None = None) -> pd.DataFrame:
        """One row per occurrence: pos, block, left, match, right."""
        rows = []
        for o in self.occurrences(key)[:limit]:
            left, mid, right = kwic(self.texts[o.pos], o.start, o.end, width)
            rows.append({"pos": o.pos, "block": o.block, "left": left, "match": mid, "right": right})
        return pd.DataFrame(rows, columns=["pos", "block", "left", "match", "right"])

    @property
    def covered_tokens(self) -> int:
        return int(self._covered.sum())

    @property
    def coverage_share(self) -> float:
        """Share of the corpus tokens inside an anchor."""
        return self.covered_tokens / self.n_tokens if self.n_tokens else 0.0

    def never_matching(self) -> list[str]:
        """Keys that never occur in the texts (:meth:`AnchorMap.never_matching`, as the run counts them)."""
        return self.anchors.never_matching(self._counts)

    def uncovered(self, top: int = 30, min_count: int = 2) -> pd.DataFrame:
        """Capitalised words and names no key covers, most frequent first: name, count, n_words."""
        rejected = {k for k, r in self.anchors.review.items() if r.get("status") == "rejected"}
        rows = [
            {"name": k, "count": n, "n_words": len(k.split())}
            for k, n in self._names_total.items()
            if n >= min_count and k not in rejected
        ]
        df = pd.DataFrame(rows, columns=["name", "count", "n_words"])
        return (
            df.sort_values(["count", "name"], ascending=[False, True], kind="stable").head(top).reset_index(drop=True)
        )

    def summary(self) -> dict:
        return {
            "texts": len(self.texts),
            "tokens": self.n_tokens,
            "covered_tokens": self.covered_tokens,
            "coverage_share": self.coverage_share,
            "keys": len(self.anchors),
            "never_matching": len(self.never_matching()),
        }


# -- import and export -------------------------------------------------------------------------------------------
CSV_COLUMNS = ("key", "alternatives", "status", "note")
CSV_SEPARATOR = " | "  # between the alternatives of one key


def write_anchor_file(amap: AnchorMap, path) -> Path:
    """Write the map as JSON (the run format, review records included) or, for a ``.csv`` path, as CSV with the
    columns key, alternatives (joined by ``" | "``), status, note. Atomic."""
    import csv
    import io

    from workbench.errors import WorkbenchError
    from workbench.io import atomic_write_text

    path = Path(path)
    if path.suffix.lower() != ".csv":
        amap.save(path)
        return path
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for key, alts in amap.entries.items():
        bad = [a for a in alts if CSV_SEPARATOR.strip() in a]
        if bad:
            raise WorkbenchError(
                f"anchor map {path}: key {key!r}: the alternative {bad[0]!r} holds "
                f"{CSV_SEPARATOR.strip()!r}, which separates alternatives in CSV; save it as JSON"
            )
        rec = amap.review.get(key, {})
        w.writerow([key, CSV_SEPARATOR.join(alts), rec.get("status", "to review"), rec.get("note", "")])
    for key, rec in amap.review.items():  # dismissed suggestions, so they stay dismissed
        if key not in amap.entries and rec.get("status") == "rejected":
            w.writerow([key, "", "rejected", rec.get("note", "")])
    atomic_write_text(path, buf.getvalue())
    return path


def read_anchor_file(path, consolidate: bool = True) -> AnchorMap:
    """Read a map from JSON (:func:`~workbench.anchors.load_anchor_map`) or CSV (see :func:`write_anchor_file`;
    only ``key`` and ``alternatives`` are required). Errors name the file, the line and the key. ``consolidate``:
    drop redundant keys as a run does (the editor keeps them, to show and save them)."""
    import csv

    from workbench.anchors import load_anchor_map
    from workbench.errors import WorkbenchError
    from workbench.io import read_text

    path = Path(path)
    if path.suffix.lower() != ".csv":
        return load_anchor_map(path, do_consolidate=consolidate)
    text = read_text(path, "anchor map", encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("key", "alternatives") if c not in (reader.fieldnames or [])]
    if missing:
        raise WorkbenchError(f"anchor map {path}, line 1: missing column(s) {missing}; expected {list(CSV_COLUMNS)}")
    entries: dict[str, list[str]] = {}
    review: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        key = (row.get("key") or "").strip()
        if not key:
            raise WorkbenchError(f"anchor map {path}, line {line}: empty key")
        if key in first_line:
            raise WorkbenchError(
                f"anchor map {path}, line {line}: key {key!r} repeats line {first_line[key]}; keep one row per key"
            )
        first_line[key] = line
        alts = [a.strip() for a in (row.get("alternatives") or "").split(CSV_SEPARATOR.strip()) if a.strip()]
        status = (row.get("status") or "").strip() or "to review"
        note = (row.get("note") or "").strip()
        if status != "to review" or note:
            review[key] = {"status": status, **({"note": note} if note else {})}
        if status == "rejected" and not alts:
            continue  # a dismissed suggestion
        entries[key] = alts
    try:
        return AnchorMap.from_dict(
            {"format": "whp-anchors/1", "anchors": entries, "review": review},
            source=str(path),
            do_consolidate=consolidate,
        )
    except WorkbenchError as exc:
        msg = str(exc)
        for key, line in first_line.items():  # point at the line of the key the validator names
            if f"key {key!r}" in msg:
                raise WorkbenchError(msg.replace(f"{path}:", f"{path}, line {line}:", 1)) from exc
        raise
