"""Question and text files in the layouts researchers have, converted to this project's probe files
(``workbench packs import FORMAT SOURCE --out OUT``; docs/formats.md, "Importing").

- ``tofu``: TOFU's question files (JSON Lines, or a JSON list) with ``question, answer, paraphrased_answer,
  perturbed_answer`` -> a ``qa.jsonl`` (or ``retain_qa.jsonl``) probe file;
- ``muse-knowmem``: MUSE's ``knowmem/*_qa.json`` (a JSON list of ``{question, answer}``) -> ``knowmem.jsonl``;
- ``muse-verbmem``: MUSE's ``verbmem/forget.json`` (a JSON list of ``{prompt, gt}``) -> ``verbmem.jsonl``;
- ``muse-privleak``: MUSE's ``privleak/forget.json`` or ``holdout.json`` (a JSON list of texts) -> a folder of
  ``.txt`` files (a pack's corpus or holdout folder);
- ``trivia``: two-answer trivia (JSON Lines of ``{question, true_answer, false_answer}``) -> ``trivia.jsonl``.

Entries that cannot be converted are dropped and reported with their line or index and the reason; entries that
convert are validated by the pack loader's own parser, so the file written always loads. Nothing is written when
no entry converts, and an existing output is replaced only when asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.io import atomic_dir, atomic_write_text, iter_jsonl, parse_json, read_text_file
from workbench.pack import KNOWMEM_KIND, SPLITS, TRIVIA_KIND, VERBMEM_KIND, parse_probe

__all__ = ["FORMATS", "ImportReport", "import_probes", "read_records"]

FORMATS = {
    "tofu": "TOFU question file (question, answer, paraphrased_answer, perturbed_answer) -> qa.jsonl",
    "muse-knowmem": "MUSE knowmem JSON list of {question, answer} -> knowmem.jsonl",
    "muse-verbmem": "MUSE verbmem JSON list of {prompt, gt} -> verbmem.jsonl",
    "muse-privleak": "MUSE privleak JSON list of texts -> a folder of .txt files (corpus or holdout)",
    "trivia": "two-answer trivia JSONL of {question, true_answer, false_answer} -> trivia.jsonl",
}


@dataclass
class ImportReport:
    """What an import read, wrote and dropped."""

    format: str  # one of FORMATS
    source: Path  # the file read
    out: Path  # the file or folder written
    read: int = 0  # entries read
    written: int = 0  # entries written
    dropped: list[str] = field(default_factory=list)  # 'line N: why' for each entry left out

    def summary(self) -> str:
        lines = [
            f"{self.format}: read {self.read} entries from {self.source}, wrote {self.written} to {self.out}, "
            f"dropped {len(self.dropped)}"
        ]
        lines += [f"  dropped {d}" for d in self.dropped[:20]]
        if len(self.dropped) > 20:
            lines.append(f"  ... and {len(self.dropped) - 20} more")
        return "\n".join(lines)


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, value) for each entry of a JSON list or of a JSON Lines file (TOFU's ``.json`` files are JSON Lines)."""
    text = read_text_file(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = parse_json(text, str(path))
        for i, value in enumerate(data, start=1):
            yield f"entry {i}", value
        return
    for lineno, value in iter_jsonl(path):
        yield f"line {lineno}", value


def _str(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _convert(fmt: str, obj: Any, n: int, prefix: str, split: str) -> tuple[dict | str | None, str]:
    """(probe object or text, '') or (None, why)."""
    if fmt == "muse-privleak":
        if isinstance(obj, dict):
            obj = obj.get("text")
        if not isinstance(obj, str) or not obj.strip():
            return None, "not a non-empty text"
        return obj, ""
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    ident = f"{prefix}-{n:04d}"
    fact = _str(obj, "fact") or ident
    split = obj.get("split") if obj.get("split") in SPLITS else split
    if fmt == "tofu":
        q, a, para = _str(obj, "question"), _str(obj, "answer"), _str(obj, "paraphrased_answer")
        pert = obj.get("perturbed_answer")
        if isinstance(pert, str):
            pert = [pert]
        pert = [p.strip() for p in pert if isinstance(p, str) and p.strip()] if isinstance(pert, list) else []
        missing = [k for k, v in (("question", q), ("answer", a), ("paraphrased_answer", para)) if v is None]
        if missing:
            return None, f"no {', '.join(missing)}"
        if len(pert) < 3:
            return None, f"{len(pert)} perturbed answers (the truth ratio needs at least 3)"
        return {
            "id": ident,
            "question": q,
            "answer": a,
            "paraphrased_answer": para,
            "perturbed_answer": pert,
            "split": split,
            "fact": fact,
        }, ""
    if fmt == "muse-knowmem":
        q, a = _str(obj, "question"), _str(obj, "answer")
        if q is None or a is None:
            return None, "no question" if q is None else "no answer"
        return {"id": ident, "question": q, "answer": a, "split": split, "fact": fact}, ""
    if fmt == "muse-verbmem":
        prompt, gt = obj.get("prompt"), obj.get("gt")
        if not isinstance(prompt, str) or not prompt.strip() or not isinstance(gt, str) or not gt.strip():
            return None, "no prompt" if not isinstance(prompt, str) or not prompt.strip() else "no gt"
        return {"id": ident, "prompt": prompt, "continuation": gt, "split": split, "fact": fact}, ""
    if fmt == "trivia":
        q, t, f = _str(obj, "question"), _str(obj, "true_answer"), _str(obj, "false_answer")
        missing = [k for k, v in (("question", q), ("true_answer", t), ("false_answer", f)) if v is None]
        if missing:
            return None, f"no {', '.join(missing)}"
        if t.lower() == f.lower():
            return None, "the true and the false answer are the same"
        return {
            "id": _str(obj, "id") or ident,
            "question": q,
            "true_answer": t,
            "false_answer": f,
            "split": split,
            "fact": fact,
        }, ""
    raise WorkbenchError(f"unknown import format {fmt!r}; choose from {', '.join(FORMATS)}")


def import_probes(
    fmt: str,
    source: str | Path,
    out: str | Path,
    split: str = "heldout",
    kind: str | None = None,
    id_prefix: str | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Convert ``source`` (in the layout ``fmt``, see :data:`FORMATS`) to ``out``: a probe file (JSONL) or, for
    ``muse-privleak``, a folder of ``.txt`` files. Every entry gets ``split`` unless it names its own; ids are
    ``<id_prefix>-0001``...; each entry is its own fact unless it names one. ``kind``: the probe kind a ``tofu``
    file becomes, ``qa`` (default) or ``retain_qa``."""
    if fmt not in FORMATS:
        raise WorkbenchError(f"unknown import format {fmt!r}; choose from {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise WorkbenchError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    src, dst = Path(source), Path(out)
    if not src.is_file():
        raise WorkbenchError(f"import source {src} does not exist")
    if dst.exists() and not overwrite:
        raise WorkbenchError(f"{dst} already exists; choose another output or pass --force to replace it")
    target_kind = {
        "tofu": kind or "qa",
        "muse-knowmem": KNOWMEM_KIND,
        "muse-verbmem": VERBMEM_KIND,
        "trivia": TRIVIA_KIND,
    }.get(fmt)
    if fmt == "tofu" and target_kind not in ("qa", "retain_qa"):
        raise WorkbenchError(f"a TOFU file becomes 'qa' or 'retain_qa' probes, not {kind!r}")
    prefix = id_prefix or (src.stem.replace("_", "-") or "item")
    report = ImportReport(fmt, src, dst)
    kept: list[Any] = []
    for n, (where, obj) in enumerate(read_records(src), start=1):
        report.read += 1
        value, why = _convert(fmt, obj, n, prefix, split)
        if value is None:
            report.dropped.append(f"{where}: {why}")
            continue
        if target_kind is not None:
            try:
                parse_probe(value, target_kind, f"{src} {where}")
            except WorkbenchError as exc:
                report.dropped.append(f"{where}: {exc}")
                continue
        kept.append(value)
    if not kept:
        raise WorkbenchError(
            f"{src}: no entry could be converted as {fmt} ({len(report.dropped)} dropped; first: "
            f"{report.dropped[0] if report.dropped else 'the file is empty'}); check the format"
        )
    if target_kind is None:  # texts: one file each
        with atomic_dir(dst) as tmp:
            for i, text in enumerate(kept, start=1):
                (tmp / f"{prefix}-{i:04d}.txt").write_text(text.strip() + "\n", encoding="utf-8")
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dst, "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in kept))
    report.written = len(kept)
    return report
