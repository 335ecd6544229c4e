"""The method interface end to end: the example method of docs/architecture.md ("Adding a method"), taken from the
docs as written, registered at run time, shows in the registry, the config (keys, validation, `workbench config`,
`workbench compare`'s checks) and trains on the tiny model into ``unlearned/``."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml
from helpers import tiny_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def example_source() -> str:
    """The first python block of the docs' "Adding a method" section."""
    text = DOC.read_text(encoding="utf-8").split("\n## Adding a method\n", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def ga_clipped(tmp_path, monkeypatch):
    """The docs' example written as a module of a temporary package, imported and registered; unregistered after."""
    from workbench.methods import registry

    pkg = tmp_path / "my_methods"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "ga_clipped.py").write_text(example_source(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_methods.ga_clipped")
    method = registry.register(module.ClippedGA())
    yield method
    registry.unregister(method.name)
    for name in ("my_methods.ga_clipped", "my_methods"):
        sys.modules.pop(name, None)


def test_the_registry_is_the_list_of_methods():
    from workbench.config import RunConfig
    from workbench.methods import registry
    from workbench.tuning import tuning_grid

    assert registry.names() == ("whp", "whp_test_time", "ga", "graddiff", "npo", "simnpo", "rmu", "prompt")
    # the config's sections are the registry's methods with settings (training ones first, as configs have them)
    assert list(registry.MethodsConfig.__dataclass_fields__) == [
        "ga",
        "graddiff",
        "npo",
        "simnpo",
        "rmu",
        "whp_test_time",
        "prompt",
    ]
    assert isinstance(RunConfig().methods, registry.MethodsConfig)
    assert list(tuning_grid()) == list(registry.names())  # every method is tuned, in registry order


def test_an_unknown_method_names_the_registered_ones(tmp_path):
    from workbench.config import config_from_dict
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match=r"unknown method 'gaa' \(did you mean 'ga'\?\); choose one of whp, "):
        config_from_dict(tiny_config(tmp_path, method="gaa"))


def test_a_registered_method_is_a_config_key_and_runs(tmp_path, ga_clipped, capsys):
    from workbench.cli import main
    from workbench.compare import sweep_variants
    from workbench.config import config_from_dict, format_keys
    from workbench.errors import WorkbenchError
    from workbench.methods import registry
    from workbench.plan import estimate_stages
    from workbench.run import Run

    base = tiny_config(tmp_path, method="ga_clipped", finetune={"learning_rate": 5e-2})

    def config(**methods) -> dict:
        return {**base, "methods": {"ga_clipped": methods}}

    assert registry.get("ga_clipped") is ga_clipped and registry.names()[-1] == "ga_clipped"
    assert "methods.ga_clipped.cap" in format_keys("methods.ga_clipped")

    # config validation: its own range check, and an unknown key named in full, exit 2 from compare
    with pytest.raises(WorkbenchError, match=r"methods\.ga_clipped\.cap: must be > 0, got -1\.0"):
        config_from_dict(config(cap=-1.0))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config(capp=2)))
    assert main(["compare", str(bad), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'methods.ga_clipped.capp'" in err and "did you mean 'cap'" in err
    assert not (tmp_path / "cmp").exists()

    # compare's sweep of its key gives one valid config per value
    variants = sweep_variants(base, {"methods.ga_clipped.cap": [0.5, 20.0]})
    cfgs = [config_from_dict(d) for _, d in variants]
    assert [c.methods.ga_clipped.cap for c in cfgs] == [0.5, 20.0]
    assert [s.stage for s in estimate_stages(cfgs[0], _shape())] == ["finetune", "report"]

    # a tiny run trains it and writes unlearned/ as a plain transformers model; the record names the method
    run = Run(cfgs[1], tmp_path / "run", progress=False, log=None)
    run.run(("finetune",))
    assert run.stage_record("finetune")["method"] == "ga_clipped"
    assert (tmp_path / "run" / "unlearned" / "config.json").is_file()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["methods"]["ga_clipped"] == {
        "learning_rate": None,
        "epochs": None,
        "cap": 20.0,
    }
    # its fingerprint holds its settings: another cap is another model
    other = Run(cfgs[0], tmp_path / "run0", progress=False, log=None)
    assert other.fingerprint("finetune") != run.fingerprint("finetune")


def _shape():
    from workbench.models import tiny_model
    from workbench.plan import model_shape

    return model_shape(tiny_model().model.config)


def test_the_run_takes_each_stage_body_from_the_training_layer():
    """run.py names no method: a stage the method runs itself is its own, any other is the body (and fingerprint)
    that methods/context gives, WHP's pipeline in methods/whp_stages; the declaration does not import it."""
    from workbench.errors import WorkbenchError
    from workbench.methods import registry, whp_stages
    from workbench.methods.context import skipped, stage_body

    whp, ga, test_time = registry.get("whp"), registry.get("ga"), registry.get("whp_test_time")
    for stage in ("reinforce", "score", "labels", "finetune"):
        assert stage_body(whp, stage) is whp_stages.STAGES[stage]
    assert stage_body(test_time, "reinforce") is whp_stages.reinforce  # the reinforce stage is shared
    with pytest.raises(WorkbenchError, match="no shared body for its finetune stage"):
        stage_body(ga, "finetune")  # GA's finetune is its own (Method.run_stage)
    with pytest.raises(WorkbenchError, match="no shared body for its report stage"):
        stage_body(whp, "report")  # the report is the run's
    assert not skipped(ga, None, "finetune")
    source = (Path(__file__).resolve().parents[1] / "workbench" / "methods" / "whp.py").read_text(encoding="utf-8")
    assert "import whp_stages" not in source and "from workbench.methods.whp_stages" not in source
