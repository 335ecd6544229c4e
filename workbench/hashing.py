"""Fingerprints: short, stable hashes of settings and texts that decide whether a finished stage is reused.

A core module (no torch, no config): the run, the config and every method's ``fingerprint`` hash with these.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["stable_hash", "fingerprint_dict", "corpus_fingerprint"]


def stable_hash(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (dataclasses are converted, without the fields that change no
    stage's output: see :func:`fingerprint_dict`)."""
    norm = [fingerprint_dict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    return hashlib.sha256(json.dumps(norm, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint_dict(obj: Any) -> Any:
    """A config dataclass as a dict, leaving out the fields marked ``metadata={"fingerprint": False}`` (where logs
    go, gradient checkpointing): changing them redoes no stage and resumes every checkpoint. A field renamed since
    runs were made hashes under its old name, ``metadata={"fingerprint_name": OLD}``, so its stages are reused."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.metadata.get("fingerprint_name", f.name): fingerprint_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("fingerprint", True)
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(fingerprint_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: fingerprint_dict(v) for k, v in obj.items()}
    return copy.deepcopy(obj)


def corpus_fingerprint(docs: Sequence[Any]) -> str:
    """A short hash of documents' names and texts (anything with ``.name`` and ``.text``), so a run notices when
    its corpus changed."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    return h.hexdigest()[:16]
