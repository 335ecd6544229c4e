"""Atomic writes: a crash or Ctrl-C never leaves a half-written artifact that looks complete."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_dir",
    "disk_full",
    "disk_full_error",
    "exception_chain",
    "iter_jsonl",
    "parse_json",
    "read_json",
    "read_json_file",
    "read_jsonl",
    "read_text",
    "read_text_file",
    "require_file",
]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place; the one way
    this package writes a file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except Exception as exc:
        if disk_full(exc):
            raise disk_full_error(path) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_text(path: str | os.PathLike, what: str = "file", encoding: str = "utf-8") -> str:
    """The text of ``path``, read by :func:`read_text_file`; its errors name ``what`` and the path."""
    return read_text_file(path, f"{what} {path}", encoding)


# -- a full disk: whatever library wrote the file, one OSError(ENOSPC) naming the file being written -----------------

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_WORDS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from says the disk is full: an OSError with ENOSPC or EDQUOT,
    or any other type whose message says so (safetensors' ``SafetensorError``, pyarrow's errors)."""
    return any(
        (isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS) or any(w in str(e) for w in _DISK_FULL_WORDS)
        for e in exception_chain(exc)
    )


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then the exception it was raised from (``__cause__``, else ``__context__``), and so on."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def disk_full_error(path: str | os.PathLike) -> OSError:
    """The one disk-full error, naming ``path`` (the file or folder being written); the CLI prints it as one line."""
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent))
    try:
        try:
            yield tmp
        except Exception as exc:
            if disk_full(exc):
                raise disk_full_error(path) from exc
            raise
        if path.exists():
            old = path.with_name("." + path.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- reading JSON and JSONL files written by hand: one error naming the file and line ---------------------------------


def require_file(path: str | os.PathLike, display: str | None = None, hint: str = "") -> Path:
    """``path`` as a Path when it is a file; else WorkbenchError naming ``display`` (default: the path) and what is
    there instead: a folder, or nothing (then ``hint`` follows)."""
    from workbench.errors import WorkbenchError

    display = display or str(path)
    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"{display} is a folder, not a file; give the file's path")
    if not path.is_file():
        raise WorkbenchError(f"{display} does not exist{hint}")
    return path


def read_text_file(path: str | os.PathLike, display: str | None = None, encoding: str = "utf-8") -> str:
    """The one reader of the text files the workbench is given: a file's content decoded as UTF-8 (``encoding``).
    A missing file, a folder where a file is expected, or bytes that are not UTF-8 raise WorkbenchError naming
    ``display`` (default: the path) and, for bad bytes, the line, the byte and its offset."""
    from workbench.errors import WorkbenchError

    display = display or str(path)
    raw = require_file(path, display).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise WorkbenchError(
            f"{display} line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from exc


def parse_json(text: str, display: str, object_pairs_hook: Callable[[list], Any] | None = None) -> Any:
    """The value of a JSON text read from ``display``; bad syntax raises WorkbenchError naming it, line and column."""
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as exc:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(f"{display} line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from exc


def read_json_file(path: str | os.PathLike, display: str | None = None) -> Any:
    """A JSON file's value; bad bytes or syntax raise WorkbenchError naming ``display`` (default: the path), line
    and column."""
    return parse_json(read_text_file(path, display), display or str(path))


def iter_jsonl(path: str | os.PathLike, display: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file; bad bytes or syntax raise WorkbenchError
    naming ``display`` (default: the path) and the line."""
    for lineno, line in enumerate(read_text_file(path, display).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            from workbench.errors import WorkbenchError

            raise WorkbenchError(
                f"{display or path} line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from exc
        yield lineno, value


def read_jsonl(path: str | os.PathLike, display: str | None = None) -> list[Any]:
    """The values of a JSONL file's non-blank lines (see :func:`iter_jsonl` for the errors)."""
    return [value for _, value in iter_jsonl(path, display)]
