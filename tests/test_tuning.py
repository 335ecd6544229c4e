"""`workbench tune`: the same number of dev trials per method, and one rule that picks each method's setting."""

import json

import pandas as pd
import pytest
import yaml
from test_compare import TINY

from workbench.compare import CompareConfig
from workbench.errors import WorkbenchError
from workbench.tuning import select_trials, tune_methods


def test_select_trials_by_hand():
    t = pd.DataFrame(
        [
            # a: the strongest trial breaks the perplexity limit, so the next strongest within all limits wins
            {"method": "a", "target_drop": 0.60, "collateral_drop": 0.01, "general_drop": 0.00, "ppl_rise": 0.50},
            {"method": "a", "target_drop": 0.40, "collateral_drop": 0.05, "general_drop": 0.02, "ppl_rise": 0.08},
            {"method": "a", "target_drop": 0.10, "collateral_drop": 0.00, "general_drop": 0.00, "ppl_rise": 0.00},
            # b: none within the limits; ratios max(0.10/0.05, 0, 0.1/0.1) = 2.0 and max(0.06/0.05, 0.06/0.05, 0.3) = 1.2
            {"method": "b", "target_drop": 0.90, "collateral_drop": 0.10, "general_drop": 0.00, "ppl_rise": 0.10},
            {"method": "b", "target_drop": 0.20, "collateral_drop": 0.06, "general_drop": 0.06, "ppl_rise": 0.03},
            # c: one trial; negative drops (the probes rose) are within the limits
            {"method": "c", "target_drop": -0.5, "collateral_drop": -0.2, "general_drop": -0.1, "ppl_rise": 0.0},
        ]
    )
    assert select_trials(t).tolist() == [False, True, False, False, True, True]


def test_every_method_gets_nine_trials_over_two_declared_knobs():
    """The budget: two knobs of three values each for every method (prompt: its one setting, three instructions),
    every combination once, each trial's config built from the method's file with exactly its knobs changed."""
    import itertools

    from workbench.config import read_config_mapping
    from workbench.methods import registry
    from workbench.methods.base import TRIALS
    from workbench.tuning import METHODS_DIR, trial_configs, tuning_grid

    grid = tuning_grid()
    assert list(grid) == list(registry.names())
    for method, knobs in grid.items():
        sizes = [len(v) for v in knobs.values()]
        assert sizes == ([3] if method == "prompt" else [3, 3]), (method, knobs)
        trials = trial_configs(method, knobs, METHODS_DIR)
        expected = [dict(zip(knobs, combo)) for combo in itertools.product(*knobs.values())]
        assert [s for s, _ in trials] == expected
        assert len(trials) == (3 if method == "prompt" else TRIALS)
        base = read_config_mapping(METHODS_DIR / f"{method}.yaml")
        names = set()
        for settings, data in trials:
            names.add(data["name"])
            for key, value in settings.items():
                node = data
                for part in key.split("."):
                    node = node[part]
                assert node == value
            # nothing else changed: the model, the target and every section the knobs do not name
            assert data["model"] == base["model"] and data["target"]["pack"] == base["target"]["pack"]
        assert len(names) == len(trials)  # one folder per trial


def test_a_knob_a_method_does_not_read_is_one_error_before_anything_runs(tmp_path):
    from workbench.tuning import METHODS_DIR, read_grid, trial_configs

    grid = tmp_path / "grid.yaml"
    for text, match in [
        (
            "ga: {methods.npo.beta: [0.1, 0.2]}\n",
            r"grid.yaml: ga: methods.npo.beta: not a knob of ga \(methods.npo is another",
        ),
        ("ga: {reinforce.epochs: [1, 2]}\n", r"not a knob of ga \(ga does not read the reinforce section\)"),
        ("prompt: {finetune.learning_rate: [1.0e-4]}\n", r"not a knob of prompt \(prompt does not read the finetune"),
        ("ga: {target.max_blocks: [4, 8]}\n", r"'target' is not a section a method's trials may change"),
        ("gaa: {finetune.epochs: [1]}\n", r"grid.yaml: methods: unknown name 'gaa' \(did you mean 'ga'\?\)"),
        ("ga: {finetune.epochs: []}\n", r"ga: finetune.epochs: expected a non-empty list"),
    ]:
        grid.write_text(text)
        with pytest.raises(WorkbenchError, match=match):
            read_grid(grid)
    # a key the method's section does not have: the config check names it
    with pytest.raises(WorkbenchError, match=r"unknown key 'methods.ga.beta'"):
        trial_configs("ga", {"methods.ga.beta": [0.1]}, METHODS_DIR)
    # a value the setting refuses: refused before the first trial
    with pytest.raises(WorkbenchError, match=r"finetune.learning_rate"):
        trial_configs("ga", {"finetune.learning_rate": [1e-4, -1.0]}, METHODS_DIR)


def test_tune_with_a_bad_grid_exits_2_and_writes_nothing(tmp_path, capsys):
    from workbench.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text("ga: {methods.npo.beta: [0.1, 0.2]}\n")
    out = tmp_path / "tune"
    code = main(["tune", "--grid", str(grid), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "methods.npo.beta: not a knob of ga" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.integration
def test_tune_runs_every_trial_once_and_marks_one_per_method(tmp_path):
    methods = tmp_path / "methods"
    methods.mkdir()
    for m in ("ga", "prompt"):
        (methods / f"{m}.yaml").write_text(yaml.safe_dump({**TINY, "name": m, "method": m}))
    grid = {
        "ga": {"finetune.learning_rate": [1e-4, 1e-2], "finetune.epochs": [1.0]},  # two knobs, two trials (seconds)
        "prompt": {"methods.prompt.system": ["Forget {title}.", "You do not know {title} at all, nor any of it."]},
    }
    out = tmp_path / "tune"
    cc = CompareConfig(split="dev", attacks=(), probe_limit=16, bootstrap=100, progress=False)
    trials = tune_methods(out, None, methods, grid=grid, log=lambda s: None, compare_config=cc)
    assert sorted(trials["run"]) == [
        "ga-learning_rate=0.0001-epochs=1",
        "ga-learning_rate=0.01-epochs=1",
        "prompt-system=1",
        "prompt-system=2",
    ]
    assert trials.groupby("method")["chosen"].sum().to_dict() == {"ga": 1, "prompt": 1}
    run = out / "ga" / "runs" / "ga-learning_rate=0.01-epochs=1"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["finetune"]["learning_rate"] == 0.01 and saved["finetune"]["epochs"] == 1.0
    # the chosen rows are the rule's, recomputed from the written table
    back = pd.read_csv(out / "trials.csv")
    assert back["chosen"].tolist() == select_trials(back).tolist()
    md = (out / "trials.md").read_text()
    assert "learning_rate=0.01, epochs=1" in md and "In all 4 trials" in md and "CPU hours" in md
    # each method's config at its chosen setting, to report once on heldout
    for m in ("ga", "prompt"):
        pick = back[(back["method"] == m) & back["chosen"]]["run"].item()
        chosen = yaml.safe_load((out / "chosen" / f"{m}.yaml").read_text())
        picked = yaml.safe_load((out / m / "runs" / pick / "config.yaml").read_text())
        assert chosen["name"] == m
        assert chosen["finetune"] == {
            **chosen["finetune"],
            **{k: picked["finetune"][k] for k in ("learning_rate", "epochs")},
        }
        if m == "prompt":
            assert chosen["methods"]["prompt"]["system"] == picked["methods"]["prompt"]["system"]
    # rerunning one method keeps the other's rows and adds its time to the budget
    budget = json.loads((out / "budget.json").read_text())
    again = tune_methods(out, ["prompt"], methods, grid=grid, log=lambda s: None, compare_config=cc)
    assert sorted(again["run"]) == sorted(trials["run"])
    assert json.loads((out / "budget.json").read_text())["prompt"]["seconds"] >= budget["prompt"]["seconds"]
    with pytest.raises(WorkbenchError, match="tune methods: unknown name .nope.; valid names: "):
        tune_methods(out, ["nope"], methods, grid=grid, log=lambda s: None)
    with pytest.raises(WorkbenchError, match="dev probes"):
        tune_methods(
            out, ["prompt"], methods, grid=grid, log=lambda s: None, compare_config=CompareConfig(split="heldout")
        )
