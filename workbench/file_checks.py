"""Cheap checks that a file is really there and opens, before a run trusts its stage record; errors the user must
fix on their machine; the report's inputs.

A stage record says a stage finished; the files can still have been deleted, truncated or damaged since. Each
check reads only sizes, headers and footers (a parquet footer, a safetensors header, a JSON file), so a run
with every stage done stays instant. Which files each stage leaves, and the check of them all, are the run
directory's (:meth:`workbench.rundir.RunDir.artifact_problem`).
"""

from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path

__all__ = [
    "environment_error",
    "check_report_inputs",
    "read_record",
    "safetensors_problem",
    "parquet_problem",
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
