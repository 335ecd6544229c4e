"""Anchor maps from other formats: the authors' dictionary file as published, and CSV.

*The authors' dictionary* (``dicts_new.npy`` of the paper's pipeline): a numpy array of GPT-4 answers, each holding
``translations = {"Harry": "Jon", ...}`` among other text. It is read as their ``prepare_dataset.py`` reads it:
newlines removed, the first ``translations = {...}`` taken, trailing commas and ``#`` comments removed, parsed as
JSON; an answer that does not parse (cut off, say) contributes nothing. The answers are merged key by key, each
distinct alternative kept once, in order; an alternative that is the key itself (a no-op) or empty is left out, and
so is a key left with none; then the usual consolidation drops redundant keys. Nothing is dropped silently:
:class:`ImportReport` lists the answers, alternatives and keys left out, with the reason and a count per reason.

*CSV*: the workbench's layout (``key,alternatives,status,note``, the anchor editor's; one row per key), which is
also what ``-o anchors.csv`` writes; on import, a plain ``key,alternative`` list (one row per alternative) too.

:func:`load_any_anchor_map` reads any of these or the JSON format (``target.anchors`` accepts them all);
``workbench anchors import FILE -o anchors.json`` (or ``-o anchors.csv``) converts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workbench.anchors import MAX_KEY_CHARS, AnchorMap, load_anchor_map
from workbench.errors import WorkbenchError
from workbench.io import read_text, require_file

__all__ = [
    "ImportReport",
    "parse_authors_answers",
    "read_authors_dictionary",
    "read_anchor_csv",
    "load_any_anchor_map",
    "import_anchor_map",
    "cli_import",
]

_NPY_MAGIC = b"\x93NUMPY"


@dataclass
class ImportReport:
    """What an import kept and what it left out, with reasons."""

    source: str
    answers: int = 0  # answers in the file (authors' format)
    keys_read: int = 0  # distinct keys in the readable answers
    keys_merged: int = 0  # keys left with at least one alternative, before consolidation
    most_alternatives: tuple[str, int] = ("", 0)  # the key with the most alternatives
    dropped_answers: list[tuple[int, str]] = field(default_factory=list)  # (answer index, why)
    dropped_values: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    dropped_keys: list[tuple[str, str]] = field(default_factory=list)  # (key, why): left empty, or consolidation
    kept_keys: int = 0

    counts: Counter = field(default_factory=Counter)  # what was dropped, by reason -> how many

    def drop_value(self, key: str, answer: int, value: object, why: str, group: str) -> None:
        """Leave out one alternative of ``key`` (from answer ``answer``), saying why; ``group``: its line in
        :attr:`counts`."""
        self.dropped_values.append((key, f"answer {answer}: {value!r} {why}"))
        self.counts[group] += 1

    def drop_key(self, key: str, why: str, group: str) -> None:
        """Leave out ``key``, saying why; ``group``: its line in :attr:`counts`."""
        self.dropped_keys.append((key, why))
        self.counts[group] += 1

    def lines(self, limit: int = 20) -> list[str]:
        out = [f"{self.source}: {self.kept_keys} anchors after consolidation"]
        if self.answers:
            out.append(
                f"  {self.answers} answers, {len(self.dropped_answers)} unreadable; {self.keys_read} keys read, "
                f"{self.keys_merged} with an alternative (most alternatives: {self.most_alternatives[0]!r} "
                f"with {self.most_alternatives[1]})"
            )
        if self.counts:
            out.append("  dropped: " + "; ".join(f"{n} {why}" for why, n in self.counts.items()))
        for what, rows in (
            ("answer", self.dropped_answers),
            ("alternative of", self.dropped_values),
            ("key", self.dropped_keys),
        ):
            for item, why in rows[:limit]:
                out.append(f"  dropped {what} {item!r}: {why}")
            if len(rows) > limit:
                out.append(f"  ... and {len(rows) - limit} more dropped ({what})")
        return out


def _parse_answer(s: str) -> tuple[dict | None, str]:
    """One answer as the authors' pipeline parses it: (dict or None, why not)."""
    s = s.replace("\n", "")
    match = re.search(r"translations\s*=\s*({.*?})", s)
    if not match:
        return None, "no `translations = {...}` in the answer (cut off?)"
    dict_str = re.sub(r",\s*([}\]])", r"\1", match.group(1))
    dict_str = re.sub(r"#.*?(,|})", r"\1", dict_str)
    try:
        parsed = json.loads(dict_str)
    except json.JSONDecodeError as exc:
        return None, f"its `translations` object is not valid JSON ({exc.msg}; cut off?)"
    if parsed is None:
        return {}, ""
    if not isinstance(parsed, dict):
        return None, f"`translations` is a {type(parsed).__name__}, not an object"
    return parsed, ""


def parse_authors_answers(
    answers: list[str], source: str = "authors' dictionary"
) -> tuple[dict[str, list[str]], ImportReport]:
    """Merge the answers' ``translations`` dicts key by key (distinct alternatives, in order), leaving out what the
    anchors format cannot hold, each with its reason in the report: an alternative that is not a non-empty string,
    one that is the key itself (a no-op: "CHAPTER TWENTY-THREE" -> "CHAPTER TWENTY-THREE"), an empty key, a key over
    :data:`~workbench.anchors.MAX_KEY_CHARS` characters, and a key left with no alternative. Keys and alternatives
    are trimmed and NFC-normalised first, as the anchors format compares them."""
    report = ImportReport(source=source, answers=len(answers))
    merged: dict[str, list[str]] = {}
    read: set[str] = set()
    for i, answer in enumerate(answers):
        parsed, why = _parse_answer(str(answer))
        if parsed is None:
            report.dropped_answers.append((i, why))
            continue
        for raw_key, value in parsed.items():
            read.add(raw_key)
            key = unicodedata.normalize("NFC", raw_key.strip())
            alts = merged.setdefault(key, [])
            for v in value if isinstance(value, list) else [value]:
                if not isinstance(v, str) or not v.strip():
                    report.drop_value(
                        raw_key, i, v, "is not a non-empty string", "alternatives that are empty or not strings"
                    )
                    continue
                v = unicodedata.normalize("NFC", v.strip())
                if v == key:
                    report.drop_value(
                        raw_key, i, v, "is the key itself (a no-op)", "alternatives that are the key itself"
                    )
                elif v not in alts:
                    alts.append(v)
    report.keys_read = len(read)
    for key in list(merged):
        if not key:
            report.drop_key(key, "empty key", "empty keys")
        elif len(key) > MAX_KEY_CHARS:
            report.drop_key(key, f"longer than {MAX_KEY_CHARS} characters", f"keys over {MAX_KEY_CHARS} characters")
        elif not merged[key]:
            report.drop_key(key, "left with no alternative", "keys left with no alternative")
        else:
            continue
        del merged[key]
    report.keys_merged = len(merged)
    if merged:
        key = max(merged, key=lambda k: len(merged[k]))
        report.most_alternatives = (key, len(merged[key]))
    return merged, report


def read_authors_dictionary(path: str | os.PathLike) -> tuple[AnchorMap, ImportReport]:
    """The authors' ``.npy`` dictionary as a consolidated AnchorMap, and what was left out.

    The file as published: a one-dimensional numpy array of unicode strings (``<U1029``, 380 answers), each a
    GPT-4 answer ``'translations = {\\n    "Harry": "Jon",\\n ...}'``, some cut off before the closing brace."""
    import numpy as np

    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise WorkbenchError(
            f"{path}: a numpy file, but not an array of strings as the authors published "
            f"({exc}); save the answers as a plain string array"
        ) from exc
    if arr.dtype.kind not in "US":
        raise WorkbenchError(
            f"{path}: a numpy array of {arr.dtype}, not of strings; expected the authors' "
            "dictionary (an array of answers holding `translations = {...}`)"
        )
    answers = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr.reshape(-1).tolist()]
    merged, report = parse_authors_answers(answers, str(path))
    if not merged:
        raise WorkbenchError(
            f"{path}: none of its {len(answers)} answers holds a readable `translations = {{...}}` "
            "with a usable alternative"
        )
    amap = AnchorMap.from_dict(merged, source=str(path))
    for key, why in amap.dropped:
        report.drop_key(key, why, "keys dropped by consolidation")
    report.kept_keys = len(amap)
    return amap, report


def read_anchor_csv(path: str | os.PathLike) -> AnchorMap:
    """A CSV anchor map as a consolidated AnchorMap: the workbench's layout (``key,alternatives,status,note``, read
    by :func:`workbench.curation.read_anchor_file`), or, on import, a plain ``key,alternative`` list (one row per
    alternative). The workbench writes only the first (:func:`workbench.curation.write_anchor_file`)."""
    path = Path(path)
    text = read_text(path, "anchor map", encoding="utf-8-sig")
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is not None and [h.strip().lower() for h in header[:2]] == ["key", "alternatives"]:
        from workbench.curation import read_anchor_file  # the one CSV layout the workbench writes

        return read_anchor_file(path)
    if header is None or [h.strip().lower() for h in header[:2]] != ["key", "alternative"]:
        raise WorkbenchError(
            f"anchor map {path}, line 1: expected the header `key,alternative` (one row per "
            f"alternative) or `key,alternatives,status,note` (the anchor editor's), got {header!r}"
        )
    entries: dict[str, list[str]] = {}
    for line, row in enumerate(rows, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise WorkbenchError(f"anchor map {path}, line {line}: expected `key,alternative`, got {row!r}")
        alts = entries.setdefault(row[0].strip(), [])
        if row[1].strip() not in alts:
            alts.append(row[1].strip())
    return AnchorMap.from_dict(entries, source=str(path))


def _kind(path: Path) -> str:
    require_file(path, f"anchor map {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_NPY_MAGIC):
        return "authors"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json" or head.lstrip()[:1] in (b"{", b"["):
        return "json"
    raise WorkbenchError(
        f"anchor map {path}: neither JSON, CSV (key,alternative) nor the authors' .npy dictionary; "
        "convert it to one of these (docs/formats.md)"
    )


def import_anchor_map(path: str | os.PathLike) -> tuple[AnchorMap, ImportReport]:
    """Read JSON, CSV or the authors' dictionary; returns the map and what was left out."""
    path = Path(path)
    kind = _kind(path)
    if kind == "authors":
        return read_authors_dictionary(path)
    amap = read_anchor_csv(path) if kind == "csv" else load_anchor_map(path)
    return amap, ImportReport(source=str(path), dropped_keys=list(amap.dropped), kept_keys=len(amap))


def load_any_anchor_map(path: str | os.PathLike) -> AnchorMap:
    """An anchor map from JSON, CSV or the authors' dictionary file."""
    return import_anchor_map(path)[0]


def cli_import(source: str, output: str | None) -> int:
    """``workbench anchors import FILE -o OUT``: convert, and say what was dropped and why."""
    if not output:
        raise WorkbenchError("anchors import: give the output file with -o (anchors.json or anchors.csv)")
    amap, report = import_anchor_map(source)
    from workbench.curation import write_anchor_file

    write_anchor_file(amap, output)
    print("\n".join(report.lines()))
    print(f"wrote {output}")
    return 0
