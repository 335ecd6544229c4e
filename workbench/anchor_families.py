"""Families of anchors: keys whose alternatives are drawn together, so one block tells one coherent story.

A family ties keys whose alternative lists are index-aligned (``"Potter": ["Miller", "Parker"]``,
``"James Potter": ["Michael Miller", "David Parker"]``). In each block one index is drawn per family (seeded) and
every key of the family uses its alternative at that index, so "Harry James Potter, son of James Potter" becomes
"Jon Michael Miller, son of Michael Miller", never "..., son of David Parker". Format (docs/formats.md)::

    {"format": "whp-anchors/1", "anchors": {...},
     "families": {"Potter": ["Harry", "Potter", "James Potter", "Lily Potter", "Harry James Potter"]}}
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from workbench.errors import WorkbenchError

__all__ = ["parse_families", "prune_families", "family_index", "check_family_entry"]


def parse_families(raw: object, entries: Mapping[str, list[str]], where: str) -> dict[str, list[str]]:
    """Validate the ``families`` object of an anchor map against its ``entries``; returns name -> keys."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise WorkbenchError(
            f'{where}: "families" must be an object of family name -> list of anchor keys, got {type(raw).__name__}'
        )
    families: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name, keys in raw.items():
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise WorkbenchError(f"{where}: family {name!r}: expected a non-empty list of anchor keys")
        for key in keys:
            if key not in entries:
                raise WorkbenchError(
                    f'{where}: family {name!r}: {key!r} is not a key of "anchors"; '
                    "add it there or remove it from the family"
                )
            if key in owner:
                raise WorkbenchError(
                    f"{where}: key {key!r} is in two families ({owner[key]!r} and {name!r}); "
                    "a key belongs to one family at most"
                )
            owner[key] = name
        lengths = {k: len(entries[k]) for k in keys}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
            raise WorkbenchError(
                f"{where}: family {name!r}: its keys have different numbers of alternatives "
                f"({shown}); give every key of a family the same number, index-aligned "
                "(the i-th alternatives of all keys belong together)"
            )
        families[str(name)] = list(dict.fromkeys(keys))
    return families


def prune_families(families: Mapping[str, list[str]], entries: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Families restricted to keys still in ``entries`` (consolidation or an edit removed some); empty ones go."""
    out = {name: [k for k in keys if k in entries] for name, keys in families.items()}
    return {name: keys for name, keys in out.items() if keys}


def family_index(name: str, n: int, seed: int, block: int) -> int:
    """The alternative index the family ``name`` uses in block ``block``: seeded, stable."""
    digest = hashlib.blake2b(f"{seed}|{block}|family|{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n


def check_family_entry(
    families: Mapping[str, list[str]], entries: Mapping[str, list[str]], key: str, alternatives: list[str], where: str
) -> None:
    """Refuse an edit that gives a family member a different number of alternatives than its family."""
    for name, keys in families.items():
        others = [k for k in keys if k != key and k in entries]
        if key in keys and others and len(entries[others[0]]) != len(alternatives):
            raise WorkbenchError(
                f"{where}: key {key!r} is in family {name!r}, whose keys have "
                f"{len(entries[others[0]])} alternatives each; give it as many (index-aligned), "
                "or take it out of the family first"
            )
