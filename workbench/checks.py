"""Cheap checks that a finished stage's files are really there and open, before a run trusts its stage record.

A stage record says a stage finished; the files can still have been deleted, truncated or damaged since. Each
check reads only sizes, headers and footers (a parquet footer, a safetensors header, a JSON file), so a run
with every stage done stays instant. :func:`artifact_problem` returns what is wrong, or None.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path

from workbench.io import atomic_write_json

__all__ = [
    "environment_error",
    "check_report_inputs",
    "artifact_problem",
    "read_record",
    "safetensors_problem",
    "parquet_problem",
    "drop_damaged_shards",
]


def read_record(path: Path) -> tuple[dict | None, str | None]:
    """(the JSON object in ``path``, None), (None, None) when it does not exist, or (None, what is wrong)."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return None, f"{path} is not a JSON object"
    return data, None


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file (missing, truncated, bad header), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path} is truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"{path} is truncated (header of {n} bytes in a file of {size})"
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError) as exc:
        return f"{path} has a damaged header ({exc})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        return f"{path} is truncated ({size} bytes, its header needs {8 + n + end})"
    return None


def parquet_problem(path: Path) -> str | None:
    """What is wrong with a parquet file (missing, truncated, bad footer), or None. Reads the footer only."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return f"{path} is missing"
    try:
        pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        return f"{path} is damaged ({type(exc).__name__}: {exc})"
    return None


def _model_folder_problem(path: Path) -> str | None:
    """A saved model folder: a LoRA adapter (adapter_config.json) or a full model (config.json), weights intact."""
    if not path.is_dir():
        return f"{path} is missing"
    descriptor = path / "workbench_method.json"  # a test-time or prompt method's model (workbench/methods/wrappers.py)
    if descriptor.is_file():
        return read_record(descriptor)[1]
    if (path / "adapter_config.json").is_file():
        weights = sorted(path.glob("adapter_model*.safetensors"))
    elif (path / "config.json").is_file():
        weights = sorted(path.glob("model*.safetensors"))
    else:
        return f"{path} holds neither adapter_config.json nor config.json"
    if not weights:
        if list(path.glob("*.bin")):
            return None  # an older pickle format: exists, not checked further
        return f"{path} holds no weights (*.safetensors)"
    for w in weights:
        problem = safetensors_problem(w)
        if problem:
            return problem
    return None


def _labels_problem(path: Path) -> str | None:
    manifest, bad = read_record(path / "manifest.json")
    if bad:
        return bad
    if manifest is None:
        return f"{path / 'manifest.json'} is missing"
    if not manifest.get("complete"):
        return f"{path} is not complete"
    for shard in manifest.get("shards", []):
        for prefix in ("blocks", "positions"):
            problem = parquet_problem(path / f"{prefix}-{shard:05d}.parquet")
            if problem:
                return problem
    return None


def artifact_problem(run_dir: Path, stage: str, external_reinforced: bool = False) -> str | None:
    """What is wrong with the files a finished ``stage`` left in ``run_dir``, or None when they look whole."""
    if stage == "implant":
        return _model_folder_problem(run_dir / "implanted")
    if stage == "reinforce":
        return None if external_reinforced else _model_folder_problem(run_dir / "reinforced")
    if stage == "score":
        if not (run_dir / "suggested_anchors.csv").is_file():
            return f"{run_dir / 'suggested_anchors.csv'} is missing"
        return parquet_problem(run_dir / "scores.parquet")
    if stage == "labels":
        return _labels_problem(run_dir / "labels")
    if stage == "finetune":
        return _model_folder_problem(run_dir / "unlearned")
    if stage == "report":
        report, bad = read_record(run_dir / "report.json")
        return bad or (None if report is not None else f"{run_dir / 'report.json'} is missing")
    return None


def drop_damaged_shards(labels_dir: Path) -> list[str]:
    """Before the labels stage resumes: forget shards whose files are damaged, so they are computed again.

    A damaged ``manifest.json`` is set aside (``manifest.json.damaged``), which restarts the stage. Returns
    messages saying what was done.
    """
    mf = labels_dir / "manifest.json"
    manifest, bad = read_record(mf)
    if bad:
        os.replace(mf, mf.with_name("manifest.json.damaged"))
        return [f"{bad}; set aside as manifest.json.damaged, labels start over"]
    if manifest is None:
        return []
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        os.replace(mf, mf.with_name("manifest.json.damaged"))
        return [f"{mf} lists no shards; set aside as manifest.json.damaged, labels start over"]
    notes, keep = [], []
    for shard in shards:
        problems = [
            p
            for p in (parquet_problem(labels_dir / f"{pre}-{shard:05d}.parquet") for pre in ("blocks", "positions"))
            if p
        ]
        if problems:
            notes.append(f"{problems[0]}; shard {shard} is computed again")
        else:
            keep.append(shard)
    if notes:
        atomic_write_json(mf, {**manifest, "shards": keep, "complete": False})
    return notes


# errors from the machine rather than the workbench: a full disk, a read-only or protected folder, a file in the way
_ENVIRONMENT = {
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a file is in the way of a folder",
    errno.EEXIST: "a file is in the way of a folder",
    errno.EISDIR: "a folder is in the way of a file",
}


def environment_error(exc: BaseException) -> str | None:
    """A one-line message for an error the user must fix on their machine, or None (a bug: keep the traceback).
    A full disk is recognised whatever raised it (an OSError, safetensors' SafetensorError, ...)."""
    from workbench.io import disk_full, exception_chain

    if not isinstance(exc, OSError) or exc.errno not in _ENVIRONMENT:
        if not disk_full(exc):
            return None
        # the first OSError of the chain that names a file says which one
        exc = next(
            (e for e in exception_chain(exc) if isinstance(e, OSError) and e.filename is not None),
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        )
        exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), exc.filename)
    why = _ENVIRONMENT[exc.errno]
    where = exc.filename if exc.filename is not None else "a file"
    return (
        f"cannot write {where}: {why} ({exc.strerror}); finished work is kept: fix this and rerun the same command "
        "to resume"
    )


def check_report_inputs(run) -> None:
    """Before any stage: the report's probe files parse, and the chosen split selects some probes."""
    from workbench.errors import WorkbenchError

    rc = run.cfg.report
    if not rc.enabled or run.pack is None:
        return
    kinds = [k for k in rc.probe_sets if run.pack.has_probes(k)]
    if not kinds:
        raise WorkbenchError(
            f"report.probe_sets {rc.probe_sets}: pack {run.pack.name!r} has none of these probe "
            f"files (it has: {', '.join(k for k in run.pack.probe_paths if run.pack.has_probes(k))})"
        )
    if not any(rc.split is None or p.split == rc.split for k in kinds for p in run.pack.probes(k)):
        raise WorkbenchError(
            f"report.split {rc.split!r}: no probe of {', '.join(kinds)} has this split; "
            "use 'dev', 'heldout' or null (all)"
        )
