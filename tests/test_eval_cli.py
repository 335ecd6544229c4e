"""`workbench eval`'s flags come from the config dataclasses: every field has one, and a flag sets its field."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from workbench.eval.attacks import AttackConfig
from workbench.eval.cli import add_eval_parser, config_from_args
from workbench.eval.config import EvalConfig


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser()
    add_eval_parser(root.add_subparsers(dest="command"))
    return root


def _parse(*flags: str) -> EvalConfig:
    return config_from_args(_parser().parse_args(["eval", "--model", "tiny", *flags]))


def _other_value(f: dataclasses.Field, tp) -> tuple[list[str], object]:
    """Command-line words that set field ``f`` to a value other than its default, and that value."""
    flag = "--" + f.name.replace("_", "-")
    choices = f.metadata.get("choices")
    if choices:
        value = next(c for c in choices if c != f.default)
        return [flag, value], value
    inner = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) is not tuple else []
    base = inner[0] if len(inner) == 1 else tp
    if base is bool:
        return ([f"--no-{f.name.replace('_', '-')}"], False) if f.default else ([flag], True)
    if base is int:
        v = 8 if f.default == 7 else 7
        return [flag, str(v)], v
    if base is float:
        return [flag, "0.25"], 0.25
    if typing.get_origin(base) is tuple:
        return ([flag, "3,4"], (3, 4)) if typing.get_args(base)[0] is int else ([flag, "a,b"], ("a", "b"))
    if base is str:
        return [flag, "some-value"], "some-value"
    raise AssertionError(f"no test value for field {f.name} of type {tp}")


def test_every_eval_config_field_has_a_flag_that_sets_it(tmp_path):
    hints = typing.get_type_hints(EvalConfig)
    defaults = _parse()
    checked = []
    for f in dataclasses.fields(EvalConfig):
        if f.name == "attacks":
            continue
        words, value = _other_value(f, hints[f.name])
        if f.name == "priming_text":  # the flag names a file holding the passage
            (tmp_path / "passage.txt").write_text("A passage.", encoding="utf-8")
            words, value = [words[0], str(tmp_path / "passage.txt")], "A passage."
        if f.name == "sections":
            words, value = [words[0], "probes,utility"], ("probes", "utility")
        cfg = _parse(*words)
        assert getattr(cfg, f.name) == value, (f.name, words)
        # ... and nothing else changed
        others = {g.name: getattr(cfg, g.name) for g in dataclasses.fields(EvalConfig) if g.name != f.name}
        assert others == {g.name: getattr(defaults, g.name) for g in dataclasses.fields(EvalConfig) if g.name != f.name}
        assert f.metadata.get("help"), f"field {f.name} has no help"
        checked.append(f.name)
    assert {"padding_side", "gen_batch_size", "top_k", "judge_rubric"} <= set(checked)


def test_defaults_match_the_dataclass_and_aliases_still_work():
    assert _parse() == EvalConfig()
    cfg = _parse(
        "--evaldata",
        "/data",
        "--quiet",
        "--no-greedy",
        "--limit",
        "all",
        "--pack",
        "none",
        "--lm-eval-tasks",
        "arc_easy",
        "--sections",
        "probes",
    )
    assert (cfg.evaldata_dir, cfg.progress, cfg.greedy, cfg.limit, cfg.pack) == ("/data", False, False, None, None)
    assert cfg.sections == ("probes", "lm_eval")  # lm-eval tasks add their section


def test_every_attack_field_has_a_flag_that_sets_it():
    hints = typing.get_type_hints(AttackConfig)
    assert _parse().attacks is None  # no attack flag: the attack defaults, as in the API
    for f in dataclasses.fields(AttackConfig):
        words, value = _other_value(f, hints[f.name])
        words[0] = "--attack-" + words[0][2:]
        cfg = _parse(*words)
        assert getattr(cfg.attacks, f.name) == value, (f.name, words)
        assert cfg.attacks == dataclasses.replace(AttackConfig(), **{f.name: value})


def test_a_bad_choice_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse("--judge", "oracle")
    assert exc.value.code == 2 and "oracle" in capsys.readouterr().err


def test_help_lists_each_field_with_its_help(capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert exc.value.code == 0
    for f in dataclasses.fields(EvalConfig):
        if f.name != "attacks":
            assert "--" + f.name.replace("_", "-") in out and " ".join(f.metadata["help"].split()[:4]) in out, f.name
    for f in dataclasses.fields(AttackConfig):
        assert "--attack-" + f.name.replace("_", "-") in out, f.name
