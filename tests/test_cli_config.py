"""The command line and the run configuration: commands always registered, configuration a leaf, every key helped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.cli import build_parser


def _commands(parser) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_eval_and_packs_commands_are_always_registered():
    assert {"run", "eval", "packs", "compare", "anchors"} <= _commands(build_parser())


def test_a_broken_eval_import_is_an_error_not_a_missing_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "workbench.eval.cli", None)  # importing it now raises ImportError
    with pytest.raises(ImportError):
        build_parser()
