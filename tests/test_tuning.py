"""`workbench tune`: the same number of dev trials per method, and one rule that picks each method's setting."""

import pandas as pd
import pytest
import yaml
from test_compare import TINY

from workbench.compare import CompareConfig
from workbench.errors import WorkbenchError
from workbench.tuning import select_trials, trials_markdown, tune_methods


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


@pytest.mark.integration
def test_tune_runs_each_group_once_and_marks_one_trial_per_method(tmp_path):
    methods = tmp_path / "methods"
    methods.mkdir()
    for m in ("ga", "prompt"):
        (methods / f"{m}.yaml").write_text(yaml.safe_dump({**TINY, "name": m, "method": m}))
    grid = {"lr": (["ga"], "finetune.learning_rate", [1e-4, 1e-2]), "prompt": (["prompt"], None, None)}
    out = tmp_path / "tune"
    cc = CompareConfig(split="dev", attacks=(), probe_limit=16, bootstrap=100, progress=False)
    trials = tune_methods(out, None, methods, grid=grid, log=lambda s: None, compare_config=cc)
    assert sorted(trials["run"]) == ["ga-learning_rate=0.0001", "ga-learning_rate=0.01", "prompt"]
    assert trials.groupby("method")["chosen"].sum().to_dict() == {"ga": 1, "prompt": 1}
    assert (out / "lr" / "runs" / "ga-learning_rate=0.01" / "unlearned").is_dir()
    # the chosen rows are the rule's, recomputed from the written table
    back = pd.read_csv(out / "trials.csv")
    assert back["chosen"].tolist() == select_trials(back).tolist()
    assert "(one trial)" in trials_markdown(back) and "learning_rate = 0.01" in (out / "trials.md").read_text()
    # rerunning one group keeps the other group's rows
    again = tune_methods(out, ["prompt"], methods, grid=grid, log=lambda s: None, compare_config=cc)
    assert sorted(again["run"]) == sorted(trials["run"])
    with pytest.raises(WorkbenchError, match="tune groups: unknown name .nope.; valid names: "):
        tune_methods(out, ["nope"], methods, grid=grid, log=lambda s: None)
    with pytest.raises(WorkbenchError, match="dev probes"):
        tune_methods(
            out, ["prompt"], methods, grid=grid, log=lambda s: None, compare_config=CompareConfig(split="heldout")
        )
