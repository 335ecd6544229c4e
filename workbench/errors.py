"""The one exception type the workbench raises for bad input: its message says what, where, and what to do."""

from __future__ import annotations

__all__ = ["WorkbenchError"]


class WorkbenchError(Exception):
    """Bad input or a state the user must fix. The CLI prints the message and exits with code 2."""
