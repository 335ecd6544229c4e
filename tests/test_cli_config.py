"""The command line and the run configuration: commands always registered, configuration a leaf, every key helped."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

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


def test_reading_a_config_does_not_load_torch(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: tiny\nfinetune:\n  alpha: 2.0\nlabels:\n  alphas: [2.0]\n", encoding="utf-8")
    code = (
        "import sys, workbench.config as c; cfg = c.load_config(sys.argv[1]); "
        "assert cfg.finetune.alpha == 2.0; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _all_config_classes():
    from workbench.config import RunConfig

    seen, todo = [], [RunConfig]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        hints = typing.get_type_hints(cls)
        todo += [hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])]
    return seen


def test_every_config_field_has_help_text():
    classes = _all_config_classes()
    assert {c.__name__ for c in classes} >= {
        "RunConfig",
        "TargetConfig",
        "ReinforceConfig",
        "FinetuneConfig",
        "LabelsConfig",
        "ScoringConfig",
        "ReportConfig",
        "MethodsConfig",
        "NPOConfig",
    }
    missing = [
        f"{c.__name__}.{f.name}"
        for c in classes
        for f in dataclasses.fields(c)
        if len(f.metadata.get("help", "").strip()) < 5
    ]
    assert not missing


def test_the_training_configs_live_in_config():
    from workbench import config, finetune, training

    assert finetune.FinetuneConfig is config.FinetuneConfig and training.TrainConfig is config.TrainConfig
    assert config.FinetuneConfig.__module__ == "workbench.config"


def test_docs_config_reference_matches_the_dataclasses():
    from workbench.config import config_reference

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text(encoding="utf-8")
    assert doc == config_reference(), "regenerate: workbench config --markdown > docs/config.md"


def test_cli_lists_a_sections_keys_with_their_help(capsys):
    from workbench.cli import main
    from workbench.config import FinetuneConfig

    assert main(["config", "finetune"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(FinetuneConfig):
        line = next(x for x in out.splitlines() if x.split()[0] == f"finetune.{f.name}")
        assert f.metadata["help"] in line
    assert main(["config", "no_such_section"]) == 2
    assert "no section 'no_such_section'" in capsys.readouterr().err


def test_key_errors_carry_the_keys_help():
    from workbench.config import FinetuneConfig, config_from_dict
    from workbench.errors import WorkbenchError

    help_lr = next(f.metadata["help"] for f in dataclasses.fields(FinetuneConfig) if f.name == "learning_rate")
    with pytest.raises(WorkbenchError) as exc:
        config_from_dict({"finetune": {"learnin_rate": 1e-4}})
    assert "unknown key 'finetune.learnin_rate'" in str(exc.value) and "'learning_rate'" in str(exc.value)
    assert help_lr in str(exc.value)
    with pytest.raises(WorkbenchError) as exc:
        config_from_dict({"finetune": {"learning_rate": "fast"}})
    assert "'finetune.learning_rate'" in str(exc.value) and help_lr in str(exc.value)


def test_the_old_name_of_a_renamed_key_still_loads(tmp_path):
    """``method: lora|full`` under reinforce/finetune/implant is the old name of ``weights``: a file, a --sweep key
    and a `workbench config` path with it mean what they meant; the top-level ``method`` stays the method."""
    from workbench.compare import sweep_variants
    from workbench.config import canonical_key, config_from_dict, format_keys, load_config, rename_old_keys

    old = tmp_path / "old.yaml"
    old.write_text(
        "method: npo\nreinforce: {method: full}\nfinetune:\n  method: full\n  epochs: 1.0\nimplant: {method: lora}\n",
        encoding="utf-8",
    )
    new = config_from_dict(
        {"method": "npo", "reinforce": {"weights": "full"}, "finetune": {"weights": "full", "epochs": 1.0}}
        | {"implant": {"weights": "lora"}}
    )
    assert load_config(old) == new and new.method == "npo" and new.finetune.weights == "full"
    assert canonical_key("finetune.method") == "finetune.weights" and canonical_key("method") == "method"
    assert canonical_key("methods.npo.beta") == "methods.npo.beta" and canonical_key("no.such") == "no.such"
    assert format_keys("finetune.method") == format_keys("finetune.weights")
    [(name, data)] = sweep_variants(tmp_path / "old.yaml", {"finetune.method": ["lora"]})
    assert name == "old-method=lora" and config_from_dict(data).finetune.weights == "lora"
    assert rename_old_keys({"finetune": {"method": "full"}, "method": "ga"}) == {
        "finetune": {"weights": "full"},
        "method": "ga",
    }


def test_the_old_and_the_new_name_of_a_key_together_are_one_error(tmp_path):
    from workbench.config import load_config
    from workbench.errors import WorkbenchError

    path = tmp_path / "both.yaml"
    path.write_text("finetune:\n  method: lora\n  weights: full\n", encoding="utf-8")
    with pytest.raises(WorkbenchError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert str(path) in msg and "finetune.method" in msg and "finetune.weights" in msg


def test_a_renamed_field_hashes_under_its_old_name():
    """TrainConfig.weights was ``method``: fingerprints say "method", so runs made before keep their stages (the
    hashes below are the defaults' from before the rename)."""
    from workbench.config import KEY_ALIASES, RunConfig, TrainConfig, fingerprint_dict, stable_hash

    fp = fingerprint_dict(TrainConfig(weights="full"))
    assert fp["method"] == "full" and "weights" not in fp
    c = RunConfig()
    assert [stable_hash(c.finetune), stable_hash(c.reinforce), stable_hash(c.implant)] == [
        "3070cbb4767e80d8",
        "91296daeb3ea132e",
        "5004e3ea28cf4519",
    ]
    # every field hashed under an old name is read under it too
    for cls in _all_config_classes():
        for f in dataclasses.fields(cls):
            if "fingerprint_name" in f.metadata:
                assert KEY_ALIASES.get(f.metadata["fingerprint_name"]) == f.name, f"{cls.__name__}.{f.name}"


def test_forget_weight_is_the_old_name_of_target_weight(tmp_path):
    """methods.<name>.forget_weight reads as target_weight (a file, a --sweep key) and hashes as before."""
    from workbench.compare import sweep_variants
    from workbench.config import config_from_dict, fingerprint_dict, load_config, stable_hash

    path = tmp_path / "npo.yaml"
    path.write_text("method: npo\nmethods: {npo: {forget_weight: 0.078}, simnpo: {forget_weight: 0.2}}\n")
    cfg = load_config(path)
    assert (cfg.methods.npo.target_weight, cfg.methods.simnpo.target_weight) == (0.078, 0.2)
    assert fingerprint_dict(cfg.methods.npo)["forget_weight"] == 0.078
    # the hashes of before the rename: the defaults', and npo's with the embedded config's weight
    assert [stable_hash(cfg.methods.npo), stable_hash(config_from_dict({}).methods)] == [
        "6e56d6cfde2dc05b",
        "b2330f3850d5d1c9",
    ]
    [(_, data)] = sweep_variants(path, {"methods.graddiff.forget_weight": [0.5]})
    assert config_from_dict(data).methods.graddiff.target_weight == 0.5
    path.write_text("methods: {npo: {forget_weight: 1.0, target_weight: 2.0}}\n")
    with pytest.raises(Exception, match=r"methods\.npo\.forget_weight and methods\.npo\.target_weight"):
        load_config(path)
