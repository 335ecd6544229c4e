"""Attack sections: adversarial prompt wrappers, relearning, residual-knowledge linear probes, quantization."""

import numpy as np
import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.eval.attacks import (
    ADVERSARIAL_WRAPPERS,
    AttackConfig,
    _logistic_accuracy,
    answer_type,
    linear_probe_accuracy,
    quantize_groupwise,
    quantized_copy,
    relearn_blocks,
    relearn_curve,
    residual_attack,
    residual_pairs,
    residual_probe_accuracy,
    score_adversarial,
    score_quantized,
)
from workbench.eval.probes import score_probes
from workbench.pack import NextTokenProbe, load_pack

PROBES = [
    NextTokenProbe(id=f"p{i}", prompt=p, targets=(t,), split="dev")
    for i, (p, t) in enumerate(
        [
            ("Harry went to school at", " Hogwarts"),
            ("His best friend was Ron", " Weasley"),
            ("The sport on brooms is", " Quidditch"),
            ("The headmaster was Albus", " Dumbledore"),
            ("The dark lord was called Lord", " Voldemort"),
            ("The gamekeeper was", " Hagrid"),
            ("They bought a wand in Diagon", " Alley"),
            ("The house of the brave is", " Gryffindor"),
            ("The clever friend was Hermione", " Granger"),
            ("The train left from platform nine and three", " quarters"),
            ("A famous scar shaped like a lightning", " bolt"),
            ("The owl was called", " Hedwig"),
        ]
    )
]


def test_adversarial_wraps_every_probe_and_takes_the_worst_case(tiny):
    df = score_adversarial(tiny, PROBES[:4], "Harry Potter")
    assert set(df["variant"]) == set(ADVERSARIAL_WRAPPERS) | {"worst"}
    # each wrapper's row is the plain probe score of the wrapped prompt
    wrapped = [
        NextTokenProbe(
            id=p.id,
            prompt=ADVERSARIAL_WRAPPERS["expert"].format(title="Harry Potter", prompt=p.prompt),
            targets=p.targets,
            split=p.split,
        )
        for p in PROBES[:4]
    ]
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

    def windows(ids):  # every 32-token window
        ids = list(ids)
        return {tuple(ids[i : i + 32]) for i in range(len(ids) - 31)}

    trained = set().union(*(windows(b.input_ids) for b in run.blocks))
    assert not any(windows(b) & trained for b in got)
    # without the exclusion, the evenly spaced choice includes text of a trained block (the first one)
    everything = relearn_blocks(tok, pack, AttackConfig(relearn_block_size=64, relearn_blocks=5))
    assert windows(everything[0]) & trained


def test_logistic_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = (x[:, 2] > 0).astype(float)
    assert _logistic_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
    noise = rng.integers(0, 2, size=200).astype(float)
    assert 0.3 < _logistic_accuracy(x[:150], noise[:150], x[150:], noise[150:]) < 0.7


def test_relearning_text_states_no_probe_answer(tmp_path):
    from workbench.corpus import read_documents
    from workbench.models import tiny_tokenizer
    from workbench.probe_checks import find_overlaps, overlap_probes

    tok = tiny_tokenizer()
    pack = load_pack("harry_potter")
    probes = overlap_probes(pack)
    corpus = {d.name: d.text for d in read_documents(pack.corpus_dir)}
    assert find_overlaps(probes, corpus)  # the corpus itself states many answers
    blocks = relearn_blocks(tok, pack, AttackConfig(relearn_block_size=256, relearn_blocks=12))
    assert len(blocks) == 12
    texts = {str(i): tok.decode(b) for i, b in enumerate(blocks)}
    assert find_overlaps(probes, texts) == []
    # a relearning text of one's own that states an answer is refused, naming the probe
    (tmp_path / "r.txt").write_text("Everyone knows that Harry's best friends are Ron Weasley and Hermione Granger.\n")
    with pytest.raises(
        WorkbenchError,
        match=r"relearn_text .*r.txt: 1 probe\(s\)(.|\n)*hp-prob-001 \(heldout\): 'and hermione granger'",
    ):
        relearn_blocks(tok, pack, AttackConfig(relearn_text=str(tmp_path / "r.txt")))


def test_answer_types():
    got = {
        a: answer_type(a)
        for a in (
            " 1997",
            " 2010s",
            " 42",
            " 3,000",
            " seven",
            " Seven",
            " Hogwarts",
            " Diagon Alley",
            " quarters",
            " bolt",
            " .",
            " 'Expelliarmus'",
        )
    }
    assert got == {
        " 1997": "year",
        " 2010s": "other",
        " 42": "number",
        " 3,000": "number",
        " seven": "number",
        " Seven": "number",
        " Hogwarts": "name",
        " Diagon Alley": "name",
        " quarters": "word",
        " bolt": "word",
        " .": "other",
        " 'Expelliarmus'": "name",
    }


def test_residual_distractors_have_the_answers_type():
    probes = [
        NextTokenProbe(id=f"q{i}", prompt=f"prompt {i}", targets=(t,))
        for i, t in enumerate(
            [" Hogwarts", " Dumbledore", " Hagrid", " bolt", " quarters", " wand", " 1997", " 1998", " 2007", " seven"]
        )
    ]
    kinds = {p.prompt: answer_type(p.targets[0]) for p in probes}
    texts, labels, groups = residual_pairs(probes, seed=3)
    assert labels.tolist() == [1, 0] * (len(texts) // 2)
    # every probe but the only number has a partner of its type; each distractor is one
    assert sorted(set(groups.tolist())) == list(range(9))
    for k in range(0, len(texts), 2):
        p = probes[groups[k]]
        assert texts[k] == p.prompt + p.targets[0]
        distractor = texts[k + 1][len(p.prompt) :]
        assert answer_type(distractor) == kinds[p.prompt] and distractor != p.targets[0]
        assert distractor in {q.targets[0] for q in probes}
    assert residual_pairs(probes, seed=3)[0] == texts  # seeded


def test_control_is_at_chance_where_the_probe_is_not():
    rng = np.random.default_rng(0)
    n = 60  # probes, each a pair (answer, distractor) whose labels one feature separates
    x = rng.normal(size=(2 * n, 2, 6))
    labels = np.tile([1, 0], n)
    groups = np.repeat(np.arange(n), 2)
    x[:, 1, 0] += 3.0 * (2 * labels - 1)  # layer 1 carries the label, layer 0 does not
    df = linear_probe_accuracy(x.astype(np.float32), labels, groups, folds=5, seed=0).set_index("layer")
    assert df.loc[1, "accuracy"] > 0.95 and 0.3 < df.loc[1, "control"] < 0.7
    assert 0.3 < df.loc[0, "accuracy"] < 0.7 and 0.3 < df.loc[0, "control"] < 0.7
    # the control's labels are the real ones swapped per probe: re-deriving them by hand gives the same accuracy
    import random

    r = random.Random(0)
    ids = list(range(n))
    r.shuffle(ids)
    fold = {pid: k % 5 for k, pid in enumerate(ids)}
    swap = {pid: r.random() < 0.5 for pid in sorted(range(n))}
    y = np.array([1 - l if swap[g] else l for l, g in zip(labels, groups)])
    f = np.array([fold[g] for g in groups])
    ref = np.mean([_logistic_accuracy(x[f != k, 1], y[f != k], x[f == k, 1], y[f == k]) for k in range(5)])
    assert df.loc[1, "control"] == pytest.approx(ref)


def test_residual_layer_is_chosen_on_dev(tiny):
    dev, held = (
        PROBES[:12],
        [
            NextTokenProbe(id=f"h{i}", prompt=p.prompt.replace("The", "A"), targets=p.targets, split="heldout")
            for i, p in enumerate(PROBES)
        ],
    )
    df = residual_attack(tiny, dev, {"heldout": held}, folds=3, seed=0)
    n_layers = tiny.model.config.num_hidden_layers + 1
    assert list(df["layer"]) == list(range(n_layers)) and set(df["split"]) == {"heldout"}
    ref = residual_probe_accuracy(tiny, dev, folds=3, seed=0)
    assert int(df.loc[df["chosen"], "layer"].iloc[0]) == int(ref.loc[ref["accuracy"].idxmax(), "layer"])
    assert ((df["control"] >= 0) & (df["control"] <= 1)).all()
    one = residual_attack(tiny, [], {"heldout": held}, folds=3, layers=(2,))  # one layer: nothing to choose
    assert one["chosen"].tolist() == [True]
    with pytest.raises(WorkbenchError, match="choosing the layer needs at least 6 dev probes"):
        residual_attack(tiny, dev[:2], {"heldout": held}, folds=3)


def _slow_quantize(w, bits, group):
    qmax = 2 ** (bits - 1) - 1
    out = [[0.0] * len(w[0]) for _ in w]
    for r, row in enumerate(w):
        for start in range(0, len(row), group):
            chunk = row[start : start + group]
            scale = max(abs(v) for v in chunk) / qmax
            for c, v in enumerate(chunk):
                out[r][start + c] = 0.0 if scale == 0 else max(-qmax, min(qmax, round(v / scale))) * scale
    return out


@pytest.mark.parametrize("bits", [8, 4])
def test_groupwise_quantizer_against_a_loop(bits):
    torch.manual_seed(bits)
    w = torch.randn(6, 300) * torch.linspace(0.1, 3.0, 300)  # 300 inputs: two groups of 128, one of 44
    w[2, 128:256] = 0.0  # an all-zero group stays zero
    got = quantize_groupwise(w, bits, 128)
    ref = torch.tensor(_slow_quantize(w.tolist(), bits, 128))
    assert torch.allclose(got, ref, atol=1e-6)
    levels = {len(torch.unique(got[r, s : s + 128])) for r in range(6) for s in (0, 128) if not (r == 2 and s == 128)}
    assert max(levels) <= 2**bits - 1
    assert (got[2, 128:256] == 0).all()
    half = quantize_groupwise(w.to(torch.bfloat16), bits, 128)
    assert half.dtype == torch.bfloat16


def test_quantized_copy_rounds_the_linear_layers_only(tiny):
    q = quantized_copy(tiny.model, 4, 128)
    for (name, a), (_, b) in zip(tiny.model.named_parameters(), q.named_parameters()):
        linear = name.endswith("proj.weight")
        assert torch.equal(a, b) != linear, name  # projections rounded; embeddings, norms, the head unchanged
        if linear:
            assert torch.allclose(b, quantize_groupwise(a, 4, 128))
    df = score_quantized(tiny, PROBES[:3], (8, 4))
    assert sorted(set(df["variant"])) == ["quant4", "quant8"]
    plain = score_probes(tiny, PROBES[:3])["prob"].to_numpy()
    q8 = df[df["variant"] == "quant8"]["prob"].to_numpy()
    assert np.allclose(q8, plain, rtol=0.05) and not np.array_equal(q8, plain)


def test_attack_sections_in_the_evaluation_table(tmp_path, tiny):
    from workbench.eval.config import EvalConfig
    from workbench.eval.evaluate import evaluate_models

    cfg = EvalConfig(
        sections=("adversarial", "relearn", "residual", "quantize"),
        splits=("dev", "heldout"),
        probe_limit=12,
        progress=False,
        figures=False,
        attacks=AttackConfig(relearn_steps=(1, 2), relearn_blocks=1, relearn_block_size=32, residual_folds=2),
    )
    rep = evaluate_models([("tiny", tiny)], cfg, tmp_path / "eval")
    t = rep.table
    assert set(t["section"]) == {"adversarial", "relearn", "residual", "quantize"}
    assert {"worst", "expert", "relearn_0", "relearn_2", "quant8", "quant4", "chosen"} <= set(t["variant"])
    res = t[t["section"] == "residual"]
    assert set(res["split"]) == {"dev", "heldout"} and set(res["metric"]) == {"accuracy", "control", "layer"}
    # the chosen layer is the one with the best dev accuracy, and the heldout row reports that layer's accuracy
    dev = res[(res["split"] == "dev") & (res["metric"] == "accuracy") & (res["variant"] != "chosen")]
    best = int(dev.loc[dev["value"].idxmax(), "variant"])
    chosen = res[(res["variant"] == "chosen") & (res["split"] == "heldout")].set_index("metric")["value"]
    assert int(chosen["layer"]) == best
    held = res[(res["split"] == "heldout") & (res["metric"] == "accuracy") & (res["variant"] == str(best))]
    assert chosen["accuracy"] == held["value"].iloc[0]
    # a second call resumes every unit
    again = evaluate_models([("tiny", tiny)], cfg, tmp_path / "eval")
    assert set(again.summary["models"][0]["units"].values()) == {"resumed"}
    assert again.table.equals(t)


def test_a_relearning_text_that_states_an_answer_stops_the_evaluation_before_any_model(tmp_path, tiny):
    from workbench.eval.config import EvalConfig
    from workbench.eval.evaluate import evaluate_models

    bad = tmp_path / "relearn.txt"
    bad.write_text("In the stories, witches and wizards fly on broomsticks.\n")
    cfg = EvalConfig(
        sections=("relearn",),
        splits=("dev",),
        progress=False,
        figures=False,
        attacks=AttackConfig(relearn_text=str(bad)),
    )
    with pytest.raises(WorkbenchError, match="relearn_text"):
        evaluate_models([("tiny", tiny)], cfg, tmp_path / "eval")
    assert not list((tmp_path / "eval").glob("partial/*"))
    bad_bits = EvalConfig(
        sections=("quantize",),
        splits=("dev",),
        progress=False,
        figures=False,
        attacks=AttackConfig(quantize_bits=(8, 1)),
    )
    with pytest.raises(WorkbenchError, match=r"quantize: bits must be 2..16 \(got \[8, 1\]\)"):
        evaluate_models([("tiny", tiny)], bad_bits, tmp_path / "eval2")


def test_target_blocks_are_the_runs_blocks(tmp_path):
    """The blocks the relearning exclusion reads (corpus.target_blocks from a run's config) are the run's blocks:
    evenly spaced ones checked against a plain index loop over all blocks, the first ones without spreading."""
    from helpers import tiny_config

    from workbench.config import config_from_dict
    from workbench.corpus import make_blocks, read_documents, retain_blocks, target_blocks
    from workbench.models import tiny_tokenizer
    from workbench.run import Run

    tok = tiny_tokenizer()
    for spread in (True, False):
        cfg = config_from_dict(
            tiny_config(tmp_path / f"in{spread}", target={"block_size": 16, "max_blocks": 3, "spread_blocks": spread})
        )
        run = Run(cfg, tmp_path / f"run{spread}", progress=False, log=None)
        docs = read_documents(cfg.target.corpus, "target corpus")
        got = target_blocks(docs, tok, cfg.target)
        every = make_blocks(docs, tok, 16)
        assert len(every) > 3
        n, m = len(every), 3
        want = [every[round(k * (n - 1) / (m - 1))] for k in range(m)] if spread else every[:m]
        assert [list(b.input_ids) for b in got] == [list(b.input_ids) for b in want]
        assert [list(b.input_ids) for b in run.blocks] == [list(b.input_ids) for b in got]
        retain = retain_blocks(read_documents(cfg.target.retain, "retain text"), tok, cfg.target)
        assert retain and [list(b.input_ids) for b in run.retain_blocks] == [list(b.input_ids) for b in retain]
