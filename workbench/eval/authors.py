"""The paper's authors' completion prompts as a completion probe file.

Eldan & Russinovich's evaluation pipeline (mirrored publicly in ``magikarp01/tasks``, ``hp/data/msr_data``) keeps
its completion prompts in ``evaluation_prompts.json``: a JSON list whose entries look like::

    {"prompt": {"references": ["Ron", "Hermione", "wand"], "prompt": "Ron and Hermione were ...", "subtlety": 8}}

:func:`convert_authors_prompts` turns such a file into this project's ``completion.jsonl`` schema (docs/formats.md),
so ``workbench eval`` can run the authors' protocol: their prompts and references, their generation settings
(``--generation-preset authors``), their grading instruction (``--judge-rubric authors``) and their score
``(5*n3 + n2)/n``. The file itself is not shipped; bring your own copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.io import atomic_write_text, read_json_file, require_file
from workbench.pack import COMPLETION_KIND, SPLITS, CompletionProbe, parse_probe

__all__ = ["convert_authors_prompts", "read_authors_prompts"]


def read_authors_prompts(path: str | Path, split: str = "heldout", id_prefix: str = "authors") -> list[CompletionProbe]:
    """The entries of an ``evaluation_prompts.json`` file as completion probes, in file order.

    Ids are ``<id_prefix>-<n>`` (n from 1, zero-padded to three digits); every probe gets ``split``. The
    authors' ``subtlety`` is kept as given. Entries may also be flat (``{"prompt": str, "references": [...],
    "subtlety": n}``). Errors name the file and the entry.
    """
    path = Path(path)
    if split not in SPLITS:
        raise WorkbenchError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    require_file(path, f"authors' prompt file {path}")
    data = read_json_file(path)
    if not isinstance(data, list) or not data:
        raise WorkbenchError(f"{path}: expected a non-empty JSON list of prompt entries")
    probes = []
    for n, entry in enumerate(data, start=1):
        where = f"{path} entry {n}"
        inner: Any = entry.get("prompt") if isinstance(entry, dict) else None
        if isinstance(inner, dict):
            entry = inner  # the authors' nesting: {"prompt": {"prompt": ..., "references": ..., "subtlety": ...}}
        if not isinstance(entry, dict):
            raise WorkbenchError(f"{where}: expected an object with 'prompt', 'references' and 'subtlety'")
        obj = {
            "id": f"{id_prefix}-{n:03d}",
            "prompt": entry.get("prompt"),
            "references": entry.get("references"),
            "subtlety": entry.get("subtlety"),
            "split": split,
        }
        for key in ("prompt", "references", "subtlety"):
            if obj[key] is None:
                raise WorkbenchError(f"{where}: missing field '{key}'")
        probes.append(parse_probe(obj, COMPLETION_KIND, where))
    return probes


def convert_authors_prompts(
    src: str | Path, dst: str | Path, split: str = "heldout", id_prefix: str = "authors", overwrite: bool = False
) -> list[CompletionProbe]:
    """Write the authors' prompts (``src``) as a completion probe file ``dst`` (JSONL, written atomically).

    An existing ``dst`` is kept unless ``overwrite``: a curated probe file is never replaced by accident.
    Returns the probes written.
    """
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise WorkbenchError(f"{dst} already exists; choose another output file or pass --force to replace it")
    probes = read_authors_prompts(src, split=split, id_prefix=id_prefix)
    lines = [
        json.dumps(
            {
                "id": p.id,
                "prompt": p.prompt,
                "references": list(p.references),
                "subtlety": p.subtlety,
                "split": p.split,
            },
            ensure_ascii=False,
        )
        for p in probes
    ]
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst, "\n".join(lines) + "\n")
    return probes
