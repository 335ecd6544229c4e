"""Attack sections: adversarial prompt wrappers, relearning, residual-knowledge linear probes."""

import numpy as np
import torch

from workbench.eval.attacks import (
    ADVERSARIAL_WRAPPERS, AttackConfig, _logistic_accuracy, relearn_blocks, relearn_curve, residual_probe_accuracy,
    score_adversarial,
)
from workbench.eval.probes import score_probes
from workbench.pack import NextTokenProbe, load_pack

PROBES = [NextTokenProbe(id=f"p{i}", prompt=p, targets=(t,), split="dev") for i, (p, t) in enumerate([
    ("Harry went to school at", " Hogwarts"), ("His best friend was Ron", " Weasley"), ("The sport on brooms is", " Quidditch"),
    ("The headmaster was Albus", " Dumbledore"), ("The dark lord was called Lord", " Voldemort"),
    ("The gamekeeper was", " Hagrid"), ("They bought a wand in Diagon", " Alley"), ("The house of the brave is", " Gryffindor"),
    ("The clever friend was Hermione", " Granger"), ("The train left from platform nine and three", " quarters"),
    ("A famous scar shaped like a lightning", " bolt"), ("The owl was called", " Hedwig"),
])]


def test_adversarial_wraps_every_probe_and_takes_the_worst_case(tiny):
    df = score_adversarial(tiny, PROBES[:4], "Harry Potter")
    assert set(df["variant"]) == set(ADVERSARIAL_WRAPPERS) | {"worst"}
    # each wrapper's row is the plain probe score of the wrapped prompt
    wrapped = [NextTokenProbe(id=p.id, prompt=ADVERSARIAL_WRAPPERS["expert"].format(title="Harry Potter", prompt=p.prompt),
                              targets=p.targets, split=p.split) for p in PROBES[:4]]
    ref = score_probes(tiny, wrapped)
    got = df[df["variant"] == "expert"].reset_index(drop=True)
    assert np.allclose(got["prob"], ref["prob"], rtol=1e-4)
    assert list(got["prompt"]) == [p.prompt for p in PROBES[:4]]  # rows pair with the plain ones
    worst = df[df["variant"] == "worst"].set_index("probe_id")["prob"]
    per = df[df["variant"].isin(list(ADVERSARIAL_WRAPPERS))].groupby("probe_id")["prob"].max()
    assert np.allclose(worst.sort_index(), per.sort_index())


def test_relearning_with_zero_learning_rate_changes_nothing_and_leaves_the_model(tiny):
    blocks = [np.arange(10, 42), np.arange(50, 82)]
    before = [p.detach().clone() for p in tiny.model.parameters()]
    df = relearn_curve(tiny, blocks, PROBES[:3], steps=(1, 3), lr=0.0, progress=False)
    assert sorted(df["steps"].unique()) == [0, 1, 3]
    p0 = df[df["steps"] == 0]["prob"].to_numpy()
    assert np.allclose(df[df["steps"] == 3]["prob"].to_numpy(), p0, rtol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, tiny.model.parameters()))


def test_relearning_raises_the_probability_of_the_relearned_text(tiny):
    tok = tiny.tokenizer
    text = " Harry went to school at Hogwarts."
    ids = np.asarray(tok(text * 6)["input_ids"])
    probe = [NextTokenProbe(id="x", prompt=" Harry went to school at", targets=(" Hogwarts",), split="dev")]
    df = relearn_curve(tiny, [ids], probe, steps=(10,), lr=1e-2, progress=False)
    p = df.set_index("steps")["prob"]
    assert p[10] > 2 * p[0]


def test_relearn_blocks_leave_out_what_the_run_trained_on(tmp_path):
    from helpers import tiny_config

    from workbench.config import config_from_dict
    from workbench.models import tiny_tokenizer
    from workbench.run import Run

    cfg = tiny_config(tmp_path)
    cfg["target"] = {"pack": "harry_potter", "block_size": 64, "max_blocks": 6, "spread_blocks": True}
    run = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=None)
    run.check_inputs()
    run._claim()  # what a stage does first: the run directory records its config
    tok = tiny_tokenizer()
    pack = load_pack("harry_potter")
    acfg = AttackConfig(relearn_block_size=64, relearn_blocks=5, relearn_exclude_run=str(tmp_path / "run"))
    got = relearn_blocks(tok, pack, acfg)
    assert len(got) == 5
    trained = {tuple(b.input_ids.tolist()) for b in run.blocks}
    assert not any(tuple(b.tolist()) in trained for b in got)
    # without the exclusion, the evenly spaced choice includes a trained block (the first one)
    everything = relearn_blocks(tok, pack, AttackConfig(relearn_block_size=64, relearn_blocks=5))
    assert tuple(everything[0].tolist()) in trained


def test_logistic_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = (x[:, 2] > 0).astype(float)
    assert _logistic_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
    noise = rng.integers(0, 2, size=200).astype(float)
    assert 0.3 < _logistic_accuracy(x[:150], noise[:150], x[150:], noise[150:]) < 0.7


def test_residual_probes_give_one_accuracy_per_layer(tiny):
    df = residual_probe_accuracy(tiny, PROBES, folds=3)
    assert list(df["layer"]) == list(range(tiny.model.config.num_hidden_layers + 1))
    assert ((df["accuracy"] >= 0) & (df["accuracy"] <= 1)).all() and (df["n"] == 24).all()


def test_attack_sections_in_the_evaluation_table(tmp_path, tiny):
    from workbench.eval.config import EvalConfig
    from workbench.eval.runner import evaluate_models

    cfg = EvalConfig(sections=("adversarial", "relearn", "residual"), splits=("dev",), probe_limit=12, progress=False,
                     figures=False, attacks=AttackConfig(relearn_steps=(1, 2), relearn_blocks=1, relearn_block_size=32,
                                                         residual_folds=2))
    rep = evaluate_models([("tiny", tiny)], cfg, tmp_path / "eval")
    t = rep.table
    assert set(t["section"]) == {"adversarial", "relearn", "residual"}
    assert {"worst", "expert", "relearn_0", "relearn_2"} <= set(t["variant"])
    # a second call resumes every unit
    again = evaluate_models([("tiny", tiny)], cfg, tmp_path / "eval")
    assert set(again.summary["models"][0]["units"].values()) == {"resumed"}
    assert again.table.equals(t)
