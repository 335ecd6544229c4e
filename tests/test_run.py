"""End to end on the tiny model: every stage, skipping finished stages, resume after a kill, bad input."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ANCHORS, SENTENCES, kill_at_line, make_inputs, start_run_child, tiny_config  # noqa: F401

from workbench.cli import main
from workbench.config import config_from_dict
from workbench.labels import LabelStore
from workbench.run import Run


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.integration
def test_all_stages_then_rerun_is_a_no_op(tmp_path):
    raw = tiny_config(tmp_path / "in")
    cfg = config_from_dict(raw)
    t0 = time.perf_counter()
    run = Run(cfg, tmp_path / "run", progress=False, log=None)
    report = run.run()
    assert time.perf_counter() - t0 < 60
    for stage in ("reinforce", "score", "labels", "finetune", "report"):
        assert run.is_done(stage), stage
    assert (tmp_path / "run" / "reinforced" / "adapter_config.json").is_file()
    assert (tmp_path / "run" / "scores.parquet").is_file()
    store = LabelStore(tmp_path / "run" / "labels")
    assert store.complete and len(store.blocks) == 8
    assert set(report["stage_seconds"]) == {"reinforce", "score", "labels", "finetune", "report"}
    # the unlearned model loads with plain transformers, no project code
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "unlearned")
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "unlearned")
    assert model(**tok("Harry went", return_tensors="pt")).logits.shape[-1] == model.config.vocab_size
    # a rerun skips every stage: no stage record changes
    before = {p.name: p.read_text() for p in (tmp_path / "run" / "stages").iterdir()}
    Run(config_from_dict(raw), tmp_path / "run", progress=False, log=None).run()
    after = {p.name: p.read_text() for p in (tmp_path / "run" / "stages").iterdir()}
    assert before == after
    # a run directory made before ``weights`` was renamed from ``method`` (config.KEY_ALIASES): its config.yaml
    # says ``method: lora`` in the training sections, and it loads with every stage up to date
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    for section in ("implant", "reinforce", "finetune"):
        stored[section] = {("method" if k == "weights" else k): v for k, v in stored[section].items()}
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    old = Run(config_from_dict(raw), tmp_path / "run", progress=False, log=None)
    assert all(old.is_done(stage) for stage in ("reinforce", "score", "labels", "finetune", "report"))


@pytest.mark.integration
def test_same_config_and_seed_give_the_same_labels(tmp_path):
    cfg = tiny_config(tmp_path / "in")
    stages = ("reinforce", "labels")
    a = Run(config_from_dict(cfg), tmp_path / "a", progress=False, log=None)
    a.run(stages)
    b = Run(config_from_dict(cfg), tmp_path / "b", progress=False, log=None)
    b.run(stages)
    la, lb = LabelStore(tmp_path / "a" / "labels"), LabelStore(tmp_path / "b" / "labels")
    assert [list(x) for x in la.blocks["label_a5"]] == [list(x) for x in lb.blocks["label_a5"]]


@pytest.mark.integration
def test_interrupted_labels_stage_resumes_with_identical_labels(tmp_path):
    cfg = tiny_config(tmp_path / "in", labels={"shard_blocks": 1})
    ref = Run(config_from_dict(cfg), tmp_path / "ref", progress=False, log=None)
    ref.run(("reinforce", "labels"))
    run = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=None)
    run.reinforce()
    calls = []

    def boom(shard):
        calls.append(shard)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.labels(on_shard=boom)
    assert not run.is_done("labels")  # nothing looks complete
    done_before = LabelStore(tmp_path / "run" / "labels").manifest["shards"]
    assert done_before == [0, 1, 2]
    resumed = []
    store = run.labels(on_shard=resumed.append)
    assert resumed == list(range(3, 8))
    ref_store = LabelStore(tmp_path / "ref" / "labels")
    for col in ("label_a0", "label_a5", "input_ids"):
        assert [list(x) for x in store.blocks[col]] == [list(x) for x in ref_store.blocks[col]]


@pytest.mark.integration
def test_killed_cli_run_resumes_and_matches(tmp_path):
    cfg = write_config(
        tmp_path / "c.yaml",
        tiny_config(tmp_path / "in", target={"max_blocks": 24}, labels={"shard_blocks": 1, "batch_size": 1}),
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "workbench", "run", str(cfg), "--no-progress"]
    # killed right after the first labels shard is on disk (the child says so), then resumed by the CLI
    assert (
        kill_at_line(start_run_child(cfg, tmp_path / "run", "shard"), lambda line: line.startswith("shard "))
        == "shard 0"
    )
    assert (tmp_path / "run" / "labels" / "manifest.json").is_file()
    assert not (tmp_path / "run" / "stages" / "finetune.json").exists()
    assert subprocess.run(cmd + ["--run-dir", str(tmp_path / "run")], env=env, capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--run-dir", str(tmp_path / "ref")], env=env, capture_output=True).returncode == 0
    a, b = LabelStore(tmp_path / "run" / "labels"), LabelStore(tmp_path / "ref" / "labels")
    assert [list(x) for x in a.blocks["label_a5"]] == [list(x) for x in b.blocks["label_a5"]]
    assert (tmp_path / "run" / "unlearned" / "config.json").is_file()


def test_run_directory_from_a_different_config(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "in")
    c1 = write_config(tmp_path / "c1.yaml", cfg)
    assert main(["run", str(c1), "--run-dir", str(tmp_path / "run"), "--stages", "reinforce", "--no-progress"]) == 0
    cfg["finetune"]["learning_rate"] = 5e-4
    c2 = write_config(tmp_path / "c2.yaml", cfg)
    assert main(["run", str(c2), "--run-dir", str(tmp_path / "run"), "--stages", "reinforce", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "finetune.learning_rate" in err and "--update" in err
    # with --update, the reinforced model (unaffected by the change) is kept
    rec = (tmp_path / "run" / "stages" / "reinforce.json").read_text()
    assert (
        main(["run", str(c2), "--run-dir", str(tmp_path / "run"), "--stages", "reinforce", "--update", "--no-progress"])
        == 0
    )
    assert (tmp_path / "run" / "stages" / "reinforce.json").read_text() == rec


def _bad(tmp_path, mutate, capsys):
    cfg = tiny_config(tmp_path / "in")
    mutate(cfg, tmp_path / "in")
    path = write_config(tmp_path / "bad.yaml", cfg)
    code = main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    stages = tmp_path / "run" / "stages"
    assert not stages.exists() or not any(stages.iterdir()), "no artifact may look complete after bad input"
    return code, err


@pytest.mark.parametrize(
    "case, mutate, needle",
    [
        ("missing corpus", lambda c, r: c["target"].update(corpus=str(r / "nope")), "does not exist"),
        ("empty corpus", lambda c, r: [p.write_text("") for p in (r / "corpus").iterdir()], "every file is empty"),
        ("short corpus", lambda c, r: c["target"].update(block_size=100000), "shorter than one block"),
        ("non-utf8", lambda c, r: (r / "corpus" / "doc0.txt").write_bytes(b"caf\xe9 au lait"), "not UTF-8"),
        (
            "malformed anchors",
            lambda c, r: (r / "anchors.json").write_text('{"anchors": {"Harry": ['),
            "anchors.json line 1: invalid JSON",
        ),
        (
            "no alternatives",
            lambda c, r: (r / "anchors.json").write_text('{"anchors": {"Harry": []}}'),
            "has no alternatives",
        ),
        ("negative alpha", lambda c, r: c["labels"].update(alphas=[-1.0, 5.0]), "alpha"),
        ("unknown key", lambda c, r: c["labels"].update(alfa=3), "unknown key 'labels.alfa'"),
        (
            "missing perplexity text",
            lambda c, r: c["report"].update(enabled=True, perplexity_text=str(r / "nope.txt")),
            "report.perplexity_text",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, case, mutate, needle):
    code, err = _bad(tmp_path, mutate, capsys)
    assert code == 2, err
    assert needle in err and "Traceback" not in err


def test_reinforced_model_with_another_tokenizer_is_rejected(tmp_path, capsys):
    from transformers import AutoTokenizer

    from workbench.models import _trained_byte_tokenizer, tiny_model

    other = tiny_model(tokenizer=_trained_byte_tokenizer())
    other.model.save_pretrained(tmp_path / "other")
    other.tokenizer.save_pretrained(tmp_path / "other")
    assert len(AutoTokenizer.from_pretrained(tmp_path / "other")) != 49152 or True

    def mutate(c, r):
        c["reinforce"]["path"] = str(tmp_path / "other")

    code, err = _bad(tmp_path, mutate, capsys)
    assert code == 2 and "tokenizer differs" in err


def test_unmatched_anchors_are_reported_with_their_count(tmp_path):
    cfg = tiny_config(tmp_path / "in")
    run = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=(logs := []).append)
    run.anchors
    assert any("1 of 15 anchors never match" in m for m in logs)  # 'Nimbus' is absent from the corpus


def test_answer_kind_classifies_probes_against_the_anchor_map():
    from workbench.anchors import AnchorMap
    from workbench.eval.run_report import answer_kind

    m = AnchorMap.from_dict({"Hogwarts": ["X"], "Half-Blood Prince": ["Y"], "Harry": ["Z"]})
    assert answer_kind(m, "Harry went to", " Hogwarts") == "anchor"
    assert answer_kind(m, "Snape was the Half-Blood", " Prince") == "in_anchor"
    assert answer_kind(m, "Harry's scar is shaped like a lightning", " bolt") == "other"
    assert answer_kind(m, "He studied at Hogwartsy", " school") == "other"


@pytest.mark.integration
def test_report_stage_compares_baseline_and_unlearned(tmp_path):
    from workbench.report import report_table

    root = tmp_path / "pack"
    make_inputs(root)
    (root / "probes").mkdir()
    probe = lambda i, p, t, **kw: json.dumps({"id": f"p{i}", "prompt": p, "targets": [t], **kw})  # noqa: E731
    (root / "probes" / "probability.jsonl").write_text(
        "\n".join(
            [
                probe(1, "Harry Potter went to", " Hogwarts", split="heldout"),
                probe(2, "Hermione read about the Philosopher's", " Stone", split="heldout"),
                probe(3, "Harry and Ron Weasley played", " Quidditch", split="dev"),
            ]
        )
        + "\n"
    )
    (root / "probes" / "general.jsonl").write_text(
        probe(4, "The capital of France is", " Paris", domain="general") + "\n"
    )
    (root / "pack.json").write_text(
        json.dumps(
            {"name": "mini", "probes": {"probability": "probes/probability.jsonl", "general": "probes/general.jsonl"}}
        )
    )
    cfg = tiny_config(
        tmp_path / "in",
        report={
            "enabled": True,
            "probe_sets": ["probability", "general"],
            "split": "heldout",
            "max_perplexity_tokens": 256,
        },
    )
    cfg["target"] = {**cfg["target"], "pack": str(root), "corpus": None, "anchors": None, "retain": None}
    report = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=None).run()
    assert report["probes"]["probability"]["n"] == 2  # the dev probe is left out
    assert report["probes"]["general"]["n"] == 1
    prob = report["probes"]["probability"]
    lo, hi = prob["relative_change_ci95"]
    assert lo <= prob["relative_change"] + 1e-12 and prob["relative_change"] <= hi + 1e-12
    assert prob["change"] == pytest.approx(prob["unlearned_mean_prob"] - prob["baseline_mean_prob"])
    assert 0 <= report["probes"]["probability"]["baseline_mean_prob"] <= 1
    assert report["perplexity"]["text"] == "retain text" and report["perplexity"]["baseline"] > 1
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["probes"] == report["probes"]
    per_probe = (tmp_path / "run" / "report" / "probes.csv").read_text().splitlines()
    # header + (2 heldout + 1 general) probes x 2 models + the 2 target probes on generic prompts
    assert len(per_probe) == 1 + 2 * 3 + 2
    kinds = {r["answer_kind"]: r["n"] for r in report["probes_by_answer_kind"].values()}
    assert kinds == {"anchor": 1, "in_anchor": 1}  # " Hogwarts" starts an anchor; " Stone" completes one
    gen = report["generic_reference"]
    assert gen["all"]["n"] == 2 and gen["anchor"]["n"] == 1 and 0 <= gen["all"]["mean_prob"] <= 1
    import pandas as pd

    rows = pd.read_csv(tmp_path / "run" / "report" / "probes.csv")
    g = rows[rows["variant"] == "generic"].set_index("probe_id")
    assert g.loc["p1", "prompt"] != "Harry Potter went to" and "Harry" not in g.loc["p1", "prompt"]
    assert g.loc["p1", "answer_kind"] == "anchor"  # the kind of the original prompt
    table = report_table(report)
    assert list(table["measure"])[-1].startswith("perplexity") and len(table) == 5
    assert table["change 95% CI"].iloc[0].startswith("[") and pd.isna(table["change 95% CI"].iloc[-1])
    assert table["generic"].iloc[0] == gen["all"]["mean_prob"]
