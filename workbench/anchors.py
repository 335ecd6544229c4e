"""The anchor map: idiosyncratic expressions of the target ("Hogwarts") mapped to generic alternatives.

Format (see docs/formats.md)::

    {"format": "whp-anchors/1", "description": "...",
     "anchors": {"Hogwarts": ["Northbrook Academy", "Kingsmere College"], "Quidditch": ["skyball"]}}

A bare mapping ``{"Hogwarts": [...]}`` is accepted too. Matching is case-sensitive, on word boundaries, longest
key first, so ``Harry's`` matches ``Harry`` followed by ``'s`` and ``Harry Potter`` wins over ``Harry`` when both
are keys (unless consolidation dropped it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workbench.anchor_families import check_family_entry, family_index, parse_families, prune_families
from workbench.errors import WorkbenchError
from workbench.io import atomic_write_text, parse_json, read_text_file

__all__ = [
    "AnchorMap",
    "AnchorMatch",
    "load_anchor_map",
    "consolidate",
    "covered_by",
    "key_counts",
    "corpus_key_counts",
    "AnchorWarning",
    "REVIEW_STATUSES",
]

FORMAT = "whp-anchors/1"
REVIEW_STATUSES = ("to review", "accepted", "rejected")  # a curator's verdict on a key (or a dismissed suggestion)
_APOSTROPHES = ("'s", "\u2019s")
MAX_KEY_CHARS = 200  # longest anchored expression
_UNSPACED = "\u0e00-\u0e7f\u2e80-\u9fff\uf900-\ufaff"  # Thai, CJK and kana: word characters with no spaces around


class AnchorWarning(UserWarning):
    """Anchors that never match the corpus, and similar advice that does not stop a run."""


@dataclass(frozen=True)
class AnchorMatch:
    """One occurrence of an anchored expression in a text: ``text[start:end] == key``."""

    key: str
    start: int
    end: int


def consolidate(entries: Mapping[str, list[str]]) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Drop redundant keys as in the paper; returns (kept entries, [(dropped key, reason)]).

    - a multi-word key whose every word is itself a key ("Harry Potter" when "Harry" and "Potter" are keys);
    - ``X's`` when ``X`` is a key (the possessive is matched through ``X``).
    """
    kept: dict[str, list[str]] = {}
    dropped: list[tuple[str, str]] = []
    for key, alts in entries.items():
        words = key.split()
        if len(words) > 1 and all(w in entries for w in words):
            dropped.append((key, "every word is itself a key"))
            continue
        base = next((key[: -len(s)] for s in _APOSTROPHES if key.endswith(s)), None)
        if base and base in entries:
            dropped.append((key, f"possessive of key {base!r}"))
            continue
        kept[key] = list(alts)
    return kept, dropped


def covered_by(key: str, reason: str) -> str:
    """What a run matches instead of a key consolidation dropped, for a curator: "covered by 'Sherlock' +
    'Holmes' (every word is itself a key)"."""
    base = next((key[: -len(s)] for s in _APOSTROPHES if key.endswith(s)), None)
    if reason.startswith("possessive") and base:
        return f"covered by {base!r} ({reason})"
    return "covered by " + " + ".join(repr(w) for w in key.split()) + f" ({reason})"


def key_counts(amap: "AnchorMap", counts: Mapping[str, int]) -> dict:
    """The counts a run's log and the anchor editor both report, from a consolidated map and the occurrences of
    its keys: ``keys`` (in the file), ``covered`` (dropped by consolidation: another key matches them), ``used``
    (the keys a run matches), ``never`` (used keys with no occurrence, in map order) and ``line``, the sentence
    both show ("15 keys, 1 of 15 anchors never match the corpus: 'Nimbus'"); ``unmarked``, the never-matching keys
    not marked ``keep_unmatched`` (what a warning and ``packs check`` name)."""
    never = amap.never_matching(counts)
    kept = amap.kept_unmatched
    unmarked = [k for k in never if k not in kept]
    n_keys = len(amap.entries) + len(amap.dropped)
    shown = ", ".join(repr(k) for k in unmarked[:8]) + (" ..." if len(unmarked) > 8 else "")
    marked = len(never) - len(unmarked)
    line = (
        f"{n_keys} keys"
        + (f" ({len(amap.dropped)} covered by other keys, not matched on their own)" if amap.dropped else "")
        + f", {len(never)} of {len(amap.entries)} anchors never match the corpus"
        + (f" ({marked} marked keep_unmatched)" if marked else "")
        + (f": {shown}" if unmarked else "")
    )
    return {
        "keys": n_keys,
        "covered": len(amap.dropped),
        "used": len(amap.entries),
        "never": never,
        "unmarked": unmarked,
        "line": line,
    }


def corpus_key_counts(amap: "AnchorMap", documents: Iterable) -> dict:
    """:func:`key_counts` over the target corpus's documents (texts, or objects with a ``text``, such as
    :class:`~workbench.corpus.Document`), each matched whole: the one count the run's log, ``workbench anchors``,
    ``packs check`` and the anchor editor report. Over documents, not blocks: a name that a block boundary cuts
    in two still occurs in the corpus. Adds ``occurrences``: key -> occurrences (:meth:`AnchorMap.coverage`)."""
    occurrences = amap.coverage(d if isinstance(d, str) else d.text for d in documents)
    return {**key_counts(amap, occurrences), "occurrences": occurrences}


def _trie_pattern(keys: Iterable[str]) -> str:
    """A regex alternation factored as a trie, so matching stays fast with thousands of keys.

    At each node longer continuations are tried before stopping, which gives longest-match-first.
    """
    trie: dict = {}
    for key in keys:
        node = trie
        for ch in key:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        prefix = ""
        while len(node) == 1 and "" not in node:  # a chain without branches: one literal, no nesting
            ((ch, node),) = node.items()
            prefix += re.escape(ch)
        end = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not branches:
            return prefix
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return prefix + "(?:" + body + ")?"
        return prefix + body

    return build(trie)


@dataclass
class AnchorMap:
    """A validated, consolidated anchor map. ``entries``: key -> non-empty list of generic alternatives."""

    entries: dict[str, list[str]]
    description: str = ""
    source: str | None = None  # file it came from, for messages
    dropped: list[tuple[str, str]] = field(default_factory=list)  # keys removed by consolidation, with reasons
    # curation state, kept in the saved map but never used by a run: key -> {"status", "note", "placeholder"};
    # a "rejected" record for a word that is not a key remembers a dismissed suggestion
    review: dict[str, dict] = field(default_factory=dict)
    families: dict[str, list[str]] = field(default_factory=dict)  # name -> keys drawn together (anchor_families.py)
    _regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    _family_cache: dict | None = field(default=None, repr=False, compare=False)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping, source: str | None = None, do_consolidate: bool = True) -> "AnchorMap":
        """Validate a parsed anchors JSON object (full format or bare mapping)."""
        where = source or "anchor map"
        if not isinstance(data, Mapping):
            raise WorkbenchError(f"{where}: expected a JSON object, got {type(data).__name__}")
        description, raw_families = "", None
        review: dict[str, dict] = {}
        if "anchors" in data or "format" in data:
            review = _validate_review(where, data.get("review", {}))
            fmt = data.get("format", FORMAT)
            if fmt != FORMAT:
                raise WorkbenchError(f"{where}: unknown format {fmt!r}; expected {FORMAT!r}")
            raw = data.get("anchors")
            if not isinstance(raw, Mapping):
                raise WorkbenchError(
                    f'{where}: "anchors" must be an object mapping each expression to its alternatives '
                    f'({{"Hogwarts": ["Northbrook Academy"]}}), got {_json_type(raw)}'
                )
            description = str(data.get("description", ""))
            raw_families = data.get("families")
        else:
            raw = data
        entries: dict[str, list[str]] = {}
        for key, value in raw.items():
            alts = _validate_entry(where, key, value)
            key = unicodedata.normalize("NFC", key)
            if key in entries:
                raise WorkbenchError(
                    f"{where}: key {key!r} is given twice (after Unicode NFC normalisation); merge them"
                )
            entries[key] = alts
        families = parse_families(raw_families, entries, where)
        # an empty map is valid: curation starts there (labels refuse it)
        amap = cls(entries=entries, description=description, source=source, review=review, families=families)
        return amap.consolidated() if do_consolidate else amap

    def consolidated(self) -> "AnchorMap":
        """The map a run matches: redundant keys dropped (:func:`consolidate`), listed with reasons in ``dropped``."""
        entries, dropped = consolidate(self.entries)
        return AnchorMap(
            entries=entries,
            description=self.description,
            source=self.source,
            dropped=list(self.dropped) + dropped,
            review=dict(self.review),
            families=prune_families(self.families, entries),
        )

    def to_dict(self) -> dict:
        out = {
            "format": FORMAT,
            "description": self.description,
            "anchors": {k: list(v) for k, v in self.entries.items()},
        }
        if self.families:
            out["families"] = {name: list(keys) for name, keys in self.families.items()}
        if self.review:
            out["review"] = {k: dict(v) for k, v in self.review.items()}
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the map as JSON, atomically (a crash never leaves a half-written file)."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def fingerprint(self) -> str:
        """A short hash of the consolidated entries (changes when any key or alternative changes)."""
        data = {"entries": self.entries, "families": self.families} if self.families else self.entries
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- editing (used by the anchor editor widget) -----------------------------------------------------------
    def with_entry(self, key: str, alternatives: list[str]) -> "AnchorMap":
        """A copy with ``key`` set to ``alternatives`` (validated; no consolidation, so the edit stays visible)."""
        alts = _validate_entry(self.source or "anchor map", key, alternatives)
        check_family_entry(self.families, self.entries, key, alts, self.source or "anchor map")
        entries = dict(self.entries)
        entries[key] = alts
        return AnchorMap(
            entries=entries,
            description=self.description,
            source=self.source,
            review=dict(self.review),
            families=self.families,
        )

    def without(self, key: str) -> "AnchorMap":
        entries = {k: v for k, v in self.entries.items() if k != key}
        return AnchorMap(
            entries=entries,
            description=self.description,
            source=self.source,
            review=dict(self.review),
            families=prune_families(self.families, entries),
        )

    def with_review(self, key: str, **record) -> "AnchorMap":
        """A copy whose review record of ``key`` is updated with ``record`` (``status``, ``note``, ``placeholder``);
        ``None`` values remove a field; a plain "to review" record is the default and is not stored."""
        rec = {**self.review.get(key, {}), **record}
        rec = _validate_review(self.source or "anchor map", {key: {k: v for k, v in rec.items() if v is not None}})
        review = {k: v for k, v in self.review.items() if k != key}
        review.update({k: v for k, v in rec.items() if v != {"status": "to review"}})  # the default needs no record
        return AnchorMap(
            entries=dict(self.entries),
            description=self.description,
            source=self.source,
            review=review,
            families=self.families,
        )

    @property
    def _family_of(self) -> dict[str, str]:
        if self._family_cache is None:
            self._family_cache = {k: name for name, keys in self.families.items() for k in keys}
        return self._family_cache

    # -- matching ---------------------------------------------------------------------------------------------
    @property
    def regex(self) -> re.Pattern:
        if self._regex is None and not self.entries:
            self._regex = re.compile(r"(?!)")  # matches nothing (an empty alternation would match everywhere)
        if self._regex is None:
            body = _trie_pattern(self.entries)
            # whole words in spaced scripts; Chinese, Japanese and Thai write words without spaces between them
            self._regex = re.compile(rf"(?<![^\W{_UNSPACED}])(" + body + rf")(?![^\W{_UNSPACED}])")
        return self._regex

    def find(self, text: str) -> list[AnchorMatch]:
        """Non-overlapping occurrences, left to right, longest key first at each place."""
        return [AnchorMatch(m.group(1), m.start(1), m.end(1)) for m in self.regex.finditer(text)]

    def choose(self, key: str, seed: int, block: int) -> str:
        """The alternative used for ``key`` in block ``block``: seeded, stable, independent of other keys
        except those of its family, which all use the same index (anchor_families.py)."""
        alts = self.entries[key]
        if len(alts) == 1:
            return alts[0]
        family = self._family_of.get(key)
        if family is not None:
            return alts[family_index(family, len(alts), seed, block)]
        digest = hashlib.blake2b(f"{seed}|{block}|{key}".encode(), digest_size=8).digest()
        return alts[int.from_bytes(digest, "little") % len(alts)]

    def translate(self, text: str, seed: int = 0, block: int = 0) -> str:
        """``text`` with every anchored expression replaced by its alternative for this block."""
        out, last = [], 0
        for m in self.find(text):
            out.append(text[last : m.start])
            out.append(self.choose(m.key, seed, block))
            last = m.end
        out.append(text[last:])
        return "".join(out)

    def coverage(self, texts: Iterable[str]) -> dict[str, int]:
        """Occurrences per key over ``texts`` (keys that never match get 0)."""
        counts = dict.fromkeys(self.entries, 0)
        for text in texts:
            for m in self.find(text):
                counts[m.key] += 1
        return counts

    def never_matching(self, counts: Mapping[str, int]) -> list[str]:
        """The keys with no occurrence in ``counts`` (key -> occurrences: :meth:`coverage`, or the anchor editor's
        corpus index), in map order: the one definition the run, ``workbench anchors``, ``packs check`` and the
        anchor editor share. Keys marked ``keep_unmatched`` are included (see :attr:`kept_unmatched`)."""
        return [k for k in self.entries if counts.get(k, 0) == 0]

    @property
    def kept_unmatched(self) -> set[str]:
        """Keys whose review record says ``"keep_unmatched": true``: kept although the corpus never holds them
        (a spelling of other texts, say), so no warning or ``packs check`` failure names them."""
        return {k for k, rec in self.review.items() if rec.get("keep_unmatched") and k in self.entries}

    def unintended_unmatched(self, texts: Iterable[str]) -> tuple[list[str], list[str]]:
        """(keys that never occur in ``texts``, those of them not marked ``keep_unmatched``)."""
        counts = corpus_key_counts(self, texts)
        return counts["never"], counts["unmarked"]

    def warn_unmatched(self, texts: Iterable[str]) -> list[str]:
        """Warn (once, with the counts) about keys that never occur in ``texts`` and are not marked
        ``keep_unmatched``; returns every key that never occurs."""
        counts = corpus_key_counts(self, texts)
        if counts["unmarked"]:
            warnings.warn(
                f"{self.source or 'anchor map'}: {counts['line']}; they do no harm but check their spelling, "
                "or mark them keep_unmatched (docs/formats.md)",
                AnchorWarning,
                stacklevel=2,
            )
        return counts["never"]

    def __len__(self) -> int:
        return len(self.entries)


def _validate_entry(where: str, key: object, value: object) -> list[str]:
    if not isinstance(key, str) or not key.strip():
        raise WorkbenchError(f"{where}: key {key!r}: anchored expressions must be non-empty strings")
    if key != key.strip():
        raise WorkbenchError(f"{where}: key {key!r}: remove the leading or trailing white space")
    if len(key) > MAX_KEY_CHARS:
        raise WorkbenchError(
            f"{where}: key {key[:40]!r}... is {len(key)} characters; anchored expressions are names and short phrases "
            f"(at most {MAX_KEY_CHARS} characters)"
        )
    key = unicodedata.normalize("NFC", key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise WorkbenchError(
            f"{where}: key {key!r}: alternatives must be a list of strings, got {type(value).__name__}"
        )
    if not value:
        raise WorkbenchError(f"{where}: key {key!r}: has no alternatives; give at least one generic replacement")
    alts = []
    for alt in value:
        if not isinstance(alt, str) or not alt.strip():
            raise WorkbenchError(f"{where}: key {key!r}: alternative {alt!r} must be a non-empty string")
        alt = unicodedata.normalize("NFC", alt.strip())
        if alt == key:
            raise WorkbenchError(
                f"{where}: key {key!r}: alternative {alt!r} is the key itself; give a generic replacement"
            )
        alts.append(alt)
    return alts


def _validate_review(where: str, raw: object) -> dict[str, dict]:
    if not isinstance(raw, Mapping):
        raise WorkbenchError(f'{where}: "review" must be an object mapping keys to {{"status", "note"}}')
    out = {}
    for key, rec in raw.items():
        if not isinstance(rec, Mapping):
            raise WorkbenchError(f"{where}: review of key {key!r} must be an object, got {type(rec).__name__}")
        unknown = sorted(set(rec) - {"status", "note", "placeholder", "keep_unmatched"})
        if unknown:
            raise WorkbenchError(
                f"{where}: review of key {key!r}: unknown field(s) {unknown}; use status, note, "
                "placeholder, keep_unmatched"
            )
        status = rec.get("status", "to review")
        if status not in REVIEW_STATUSES:
            raise WorkbenchError(
                f"{where}: review of key {key!r}: status {status!r} is not one of {list(REVIEW_STATUSES)}"
            )
        clean: dict = {"status": status}
        if rec.get("note"):
            clean["note"] = str(rec["note"])
        if rec.get("placeholder"):
            clean["placeholder"] = True
        if "keep_unmatched" in rec:
            if not isinstance(rec["keep_unmatched"], bool):
                raise WorkbenchError(
                    f"{where}: review of key {key!r}: keep_unmatched must be true or false, got "
                    f"{rec['keep_unmatched']!r}"
                )
            if rec["keep_unmatched"]:
                clean["keep_unmatched"] = True
        out[str(key)] = clean
    return out


def load_anchor_map(path: str | os.PathLike, do_consolidate: bool = True) -> AnchorMap:
    """Read and validate an anchors JSON file; errors name the file, the line (for JSON syntax) and the key."""
    path = Path(path)
    text = read_text_file(path, f"anchor map {path}")
    data = parse_json(text, f"anchor map {path}", object_pairs_hook=_no_duplicates(str(path), text))
    return AnchorMap.from_dict(data, source=str(path), do_consolidate=do_consolidate)


def _no_duplicates(where: str, text: str):
    """A json ``object_pairs_hook`` that refuses a key given twice in one object (json keeps the last silently)."""

    def hook(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                quoted = json.dumps(key, ensure_ascii=False)
                first = text.find(quoted)
                second = text.find(quoted, first + 1)
                line = f", line {text.count(chr(10), 0, second) + 1}" if second >= 0 else ""
                raise WorkbenchError(f"anchor map {where}{line}: key {key!r} is given twice; merge the two entries")
            out[key] = value
        return out

    return hook


def _json_type(value: object) -> str:
    return {list: "a list", str: "a string", type(None): "nothing", dict: "an object"}.get(
        type(value), type(value).__name__
    )
