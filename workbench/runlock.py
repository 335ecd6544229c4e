"""One process at a time per run directory: an exclusive lock on ``<run>/.lock`` that names its holder.

The lock is an OS file lock (``flock``), so a killed process (even ``kill -9``) releases it; nothing stale is
left to clean up. It is re-entrant within one process, so a stage method called from ``Run.run`` (or a second
``Run`` object on the same folder in a notebook) does not lock itself out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.rundir import RunDir

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["run_lock", "check_run_dir"]

_held: dict[str, list] = {}  # resolved run dir -> [open lock file, depth]


def check_run_dir(path: Path) -> None:
    """A clear error when ``path`` cannot hold a run: it is a file, sits under a file, or cannot be written."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == path else f"lies under {parent}, which is a file"
                raise WorkbenchError(f"run directory {path} {what}; choose a folder with --run-dir")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise WorkbenchError(
                    f"run directory {path}: {parent} is not writable; fix its permissions or choose another --run-dir"
                )
            return


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run directory's lock for the block; a second process fails at once with the holder's PID."""
    path = Path(run_dir)
    check_run_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(
            f"run directory {path}: cannot create it ({exc.strerror}); choose another --run-dir"
        ) from exc
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _release(key)
        return
    fh = open(RunDir(path).lock, "a+", encoding="utf-8")
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise WorkbenchError(
                f"run directory {path} is in use by process {holder}; wait for it to finish (or stop it), "
                "or choose another --run-dir"
            ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _held[key] = [fh, 1]
    try:
        yield
    finally:
        _release(key)


def _release(key: str) -> None:
    entry = _held[key]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        fh = entry[0]
        with contextlib.suppress(OSError):
            fh.truncate(0)
        fh.close()  # closing the file releases the flock
