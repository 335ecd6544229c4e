"""`workbench compare`: runs, one evaluation, the table, the Pareto front and the figure; resumable."""

import json

import numpy as np
import pytest
import yaml

from workbench.compare import CompareConfig, _parse_sweep, compare_runs, pareto_mask, sweep_variants

TINY = {
    "name": "ga",
    "model": "tiny",
    "seed": 0,
    "method": "ga",
    "target": {
        "pack": "harry_potter",
        "block_size": 64,
        "max_blocks": 4,
        "spread_blocks": True,
        "retain_block_size": 64,
        "max_retain_blocks": 4,
    },
    "finetune": {
        "epochs": 1,
        "batch_size": 2,
        "lora_rank": 2,
        "lora_alpha": 4,
        "learning_rate": 1e-2,
        "save_steps": 50,
        "logging_steps": 1,
    },
    "report": {"enabled": False},
}


def test_pareto_mask_by_hand():
    good = np.array([0.5, 0.4, 0.6, 0.5, 0.1])
    bad = np.array([0.1, 0.2, 0.3, 0.1, 0.0])
    # 1 is dominated by 0 (forgets less, more damage); 3 ties 0 exactly (neither dominates); 2 and 4 are extremes
    assert pareto_mask(good, bad).tolist() == [True, False, True, True, True]
    # several harms: 1 is now kept (its second harm, 0.0, is the lowest of those that forget as much), and 0 falls to
    # 3 (the same target drop and first harm, a lower second harm)
    harms = np.column_stack([bad, [0.5, 0.0, 0.3, 0.1, 0.0]])
    assert pareto_mask(good, harms).tolist() == [False, True, True, True, True]
    # a point beaten on the target and on both harms is dropped
    assert pareto_mask(np.array([0.5, 0.4]), np.array([[0.1, 0.1], [0.2, 0.1]])).tolist() == [True, False]


def test_pareto_counts_only_harm_that_hurts_and_never_a_rising_target():
    # 0 forgets most (30%, harm 5%). 1 forgets 20% and *raises* the collateral probes (-10%), 2 forgets 20% at -2%:
    # both count as zero harm, so they tie and both stay (signed, 1 would have beaten 2). 3's target probes rose
    # (-5%): off the front, although its harm is the lowest of all. 4 forgets 10% at zero harm: beaten by 1 and 2.
    good = np.array([0.30, 0.20, 0.20, -0.05, 0.10])
    bad = np.array([0.05, -0.10, -0.02, -0.50, 0.00])
    assert pareto_mask(good, bad).tolist() == [True, True, True, False, False]
    # a run whose target probes rose is never on the front, even when it harms nothing and is alone
    assert pareto_mask(np.array([-0.01]), np.array([[0.0, 0.0]])).tolist() == [False]
    assert pareto_mask(np.array([0.0]), np.array([[0.0, 0.0]])).tolist() == [True]  # no change is not a rise
    # several harms: each clipped at zero before the comparison
    harms = np.array([[0.02, -0.30], [0.02, 0.00], [0.01, 0.01]])
    assert pareto_mask(np.array([0.4, 0.4, 0.4]), harms).tolist() == [True, True, True]  # 0 and 1 tie; 2 trades
    harms[2] = [0.03, 0.0]
    assert pareto_mask(np.array([0.4, 0.4, 0.4]), harms).tolist() == [True, True, False]


def test_sweep_variants_name_each_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**TINY, "target": {**TINY["target"], "anchors": "a.json"}}))
    got = sweep_variants(path, {"methods.npo.beta": [0.05, 0.1]})
    assert [n for n, _ in got] == ["ga-beta=0.05", "ga-beta=0.1"]
    assert got[1][1]["methods"]["npo"]["beta"] == 0.1
    assert got[0][1]["target"]["anchors"] == str(tmp_path / "a.json")  # relative to the config file


def test_sweep_values_read_exponents_as_numbers():
    # YAML 1.1 reads "2e-4" as a string; a learning-rate sweep written that way must still be numbers
    got = _parse_sweep(
        ["finetune.learning_rate=2e-4,6.0e-4,1", "methods.rmu.layer=null,3", "methods.prompt.system=Forget it"]
    )
    assert got["finetune.learning_rate"] == [0.0002, 0.0006, 1]
    assert got["methods.rmu.layer"] == [None, 3]
    assert got["methods.prompt.system"] == ["Forget it"]


@pytest.mark.integration
def test_compare_two_methods_on_the_tiny_model(tmp_path):
    paths = []
    for name, method in (("ga", "ga"), ("prompt", "prompt")):
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump({**TINY, "name": name, "method": method}))
        paths.append(p)
    cc = CompareConfig(relearn_steps=(1, 2), bootstrap=200, probe_limit=12, ppl_max_tokens=1024, progress=False)
    out = tmp_path / "cmp"
    table = compare_runs(paths, out, cc, log=lambda s: None)
    assert list(table["run"]) == ["ga", "prompt"]
    for col in (
        "target_drop",
        "target_drop_lo",
        "target_drop_hi",
        "collateral_drop",
        "general_drop",
        "ppl_rise",
        "adv_worst_prob",
        "base_adv_worst_prob",
        "relearn2_prob",
        "base_relearn2_prob",
        "residual_acc",
        "residual_control",
        "residual_layer",
        "base_residual_acc",
        "quant8_prob",
        "quant4_prob",
        "base_quant4_prob",
        "primed_prob",
        "base_primed_prob",
        "para_max_prob",
        "base_para_max_prob",
        "trivia_acc",
        "base_trivia_acc",
    ):
        assert table[col].notna().all(), col
    assert (table["target_drop_lo"] <= table["target_drop"]).all() and (
        table["target_drop"] <= table["target_drop_hi"]
    ).all()
    # the drop is the paired relative change of the per-probe rows the evaluation wrote
    probes = __import__("pandas").read_csv(out / "eval" / "probes.csv")
    plain = probes[(probes["variant"] == "original") & (probes["set"] == "probability")]
    b = plain[plain["model"] == "baseline"]["prob"].mean()
    u = plain[plain["model"] == "ga"]["prob"].mean()
    assert table.loc[0, "target_drop"] == pytest.approx(1 - u / b, rel=1e-6)
    # the primed column is the mean of the primed per-probe rows; the table's relearning curve starts at the plain P
    primed = probes[(probes["variant"] == "primed") & (probes["set"] == "probability")]
    assert table.loc[0, "primed_prob"] == pytest.approx(primed[primed["model"] == "ga"]["prob"].mean(), rel=1e-6)
    md = (out / "compare.md").read_text()
    assert "| baseline |" in md and f"{b:.3f} → {table.loc[0, 'base_relearn1_prob']:.3f}" in md
    quant = probes[(probes["variant"] == "quant4") & (probes["set"] == "probability")]
    assert table.loc[0, "quant4_prob"] == pytest.approx(quant[quant["model"] == "ga"]["prob"].mean(), rel=1e-6)
    assert "quantized P (8-bit / 4-bit)" in md and "residual acc (control) [layer]" in md
    harms = table[["collateral_drop", "general_drop", "ppl_rise"]].to_numpy()
    assert table["pareto"].tolist() == pareto_mask(table["target_drop"].to_numpy(), harms).tolist()
    for f in ("compare.csv", "compare.md", "compare.html", "compare.json"):
        assert (out / f).is_file()
    # a second call reuses the runs and every evaluation unit
    again = compare_runs(paths, out, cc, log=lambda s: None)
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert all(set(m["units"].values()) == {"resumed"} for m in summary["models"])
    assert np.allclose(again["target_drop"], table["target_drop"])


def test_compare_refuses_mixed_models(tmp_path):
    from workbench.errors import WorkbenchError

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(TINY))
    b.write_text(yaml.safe_dump({**TINY, "name": "b", "model": "embedded"}))
    with pytest.raises(WorkbenchError, match="same model"):
        compare_runs([a, b], tmp_path / "o", CompareConfig(progress=False), log=lambda s: None)


def test_compare_cli_bad_input_exits_2(tmp_path, capsys):
    from workbench.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "method": "unlearn_harder"}))
    assert main(["compare", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "unknown method 'unlearn_harder'" in capsys.readouterr().err
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(TINY))
    assert main(["compare", str(ok), "--attacks", "bribery", "--out", str(tmp_path / "o")]) == 2
    assert "--attacks: unknown name 'bribery'; valid names: priming" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written
    # a relearning text that states a probe's answer is refused before any run trains
    text = tmp_path / "relearn.txt"
    text.write_text("Harry Potter's two best friends are Hermione Granger and Ron Weasley.\n")
    assert main(["compare", str(ok), "--relearn-text", str(text), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--relearn-text" in err and "hp-prob-002 (dev): 'and ron weasley'" in err
    assert not (tmp_path / "o").exists()


def test_standard_columns_say_when_a_reference_is_needed():
    import pandas as pd

    from workbench.compare import _standard_markdown
    from workbench.eval.ground_truth import NEEDS_REFERENCE, standard_measures

    def row(model, section, set_, metric, value, split="dev"):
        return {
            "model": model,
            "section": section,
            "set": set_,
            "split": split,
            "variant": "-",
            "metric": metric,
            "value": value,
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "n": 4,
        }

    table = pd.DataFrame(
        [
            row("m", "qa", "qa", "truth_ratio_forget", 0.4),
            row("m", "trivia", "trivia", "accuracy", 0.75),
            row("m", "mia", "corpus_vs_holdout", "auc_min_k", 0.9, "-"),
        ]
    )
    got = standard_measures(table, "m", "dev")
    assert got["truth_ratio"] == 0.4 and got["trivia_acc"] == 0.75 and got["mia_auc"] == 0.9
    assert got["forget_quality"] == NEEDS_REFERENCE and got["privleak"] == NEEDS_REFERENCE
    assert "knowmem" not in got  # no such section evaluated: no column
    table = pd.concat([table, pd.DataFrame([row("m", "qa", "qa", "forget_quality", 0.02)])])
    assert standard_measures(table, "m", "dev")["forget_quality"] == 0.02
    md = _standard_markdown(pd.DataFrame([{"run": "m", **got, **{f"base_{k}": v for k, v in got.items()}}]))
    assert "| m | 0.75 | 0.4 | needs a reference model |" in md
