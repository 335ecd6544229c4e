"""Experiment tracking (TensorBoard event files of every training stage and of the run's report), model cards
that huggingface_hub parses, `workbench export`, and the settings that change no stage's output."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import make_inputs, tensorboard_scalars, tiny_config

from workbench.cli import main
from workbench.config import TRACKERS, config_from_dict, stable_hash
from workbench.errors import WorkbenchError
from workbench.run import Run
from workbench.tracking import PACKAGES, resolve_trackers


def _mini_pack(root: Path) -> Path:
    """A pack with two heldout probes, so the report stage has a before/after table."""
    make_inputs(root)
    (root / "probes").mkdir()
    probe = lambda i, p, t: json.dumps({"id": f"p{i}", "prompt": p, "targets": [t], "split": "heldout"})  # noqa: E731
    (root / "probes" / "probability.jsonl").write_text(
        "\n".join(
            [probe(1, "Harry Potter went to", " Hogwarts"), probe(2, "Harry and Ron Weasley played", " Quidditch")]
        )
        + "\n"
    )
    (root / "pack.json").write_text(
        json.dumps({"name": "mini", "title": "Mini Potter", "probes": {"probability": "probes/probability.jsonl"}})
    )
    return root


def _config(tmp_path: Path, **over) -> dict:
    report = {"enabled": True, "probe_sets": ["probability"], "split": "heldout", "max_perplexity_tokens": 128}
    cfg = tiny_config(tmp_path / "in", **{"report": report, **over})
    cfg["target"] = {
        **cfg["target"],
        "pack": str(_mini_pack(tmp_path / "pack")),
        "corpus": None,
        "anchors": None,
        "retain": None,
    }
    return cfg


@pytest.mark.integration
def test_tracked_run_leaves_tensorboard_losses_report_rows_and_a_model_card(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from huggingface_hub import ModelCard

    from workbench.training import LossHistory

    cfg = config_from_dict(_config(tmp_path, tracking={"report_to": ["tensorboard"], "project": "hp-tests"}))
    monitor = LossHistory()  # the training monitor's callback keeps receiving the losses beside the tracker
    run = Run(cfg, tmp_path / "run", progress=False, callbacks=[monitor], log=None)
    report = run.run()
    tracking = tmp_path / "run" / "tracking"
    for stage in ("reinforce", "finetune"):
        scalars = tensorboard_scalars(tracking / stage)
        assert "train/loss" in scalars and len(scalars["train/loss"]) >= 2, (stage, sorted(scalars))
        assert all(v == v for v in scalars["train/loss"])
    assert "train/target_loss" in tensorboard_scalars(tracking / "finetune")  # the unlearning loss's parts too
    assert len(monitor.records) >= 4  # both stages' logged losses reached the monitor's callback
    logged = tensorboard_scalars(tracking / "run")
    prob = report["probes"]["probability"]
    name = [k for k in logged if k.startswith("report/probability_probes") and k.endswith("/baseline")]
    assert len(name) == 1 and logged[name[0]] == [pytest.approx(prob["baseline_mean_prob"])]
    assert logged[name[0].replace("/baseline", "/unlearned")] == [pytest.approx(prob["unlearned_mean_prob"])]
    assert logged["labels/alpha_5/changed_share"] == [pytest.approx(report["labels"][1]["changed_share"])]

    # the model card: Hub format, metadata, the before/after table with its interval, written atomically
    card_path = tmp_path / "run" / "unlearned" / "README.md"
    card = ModelCard.load(card_path)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["tags"] == ["unlearning", "whp"]
    assert data["unlearning_target"] == "mini" and "base_model" not in data  # the tiny model has no hub id
    assert card.data.eval_results[0].metric_value == pytest.approx(prob["unlearned_mean_prob"], abs=1e-6)
    lo, hi = prob["relative_change_ci95"]
    assert f"[{100 * lo:+.1f}%, {100 * hi:+.1f}%]" in card.text
    assert f"hash `{run.anchors.fingerprint()}`" in card.text and "workbench run workbench_config.yaml" in card.text
    assert not list(card_path.parent.glob(".README.md.*"))  # no temporary file left beside it

    # export: weights, tokenizer, card and config in a new folder; an existing target is refused
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "run"), "--to", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "workbench_config.yaml", "config.json", "model.safetensors", "tokenizer.json"} <= names
    assert yaml.safe_load((out / "workbench_config.yaml").read_text())["name"] == cfg.name
    assert ModelCard.load(out / "README.md").data.to_dict()["tags"] == ["unlearning", "whp"]
    unlearned = tmp_path / "run" / "unlearned"
    assert (out / "model.safetensors").read_bytes() == (unlearned / "model.safetensors").read_bytes()
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    assert main(["export", str(tmp_path / "run"), "--to", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.integration
def test_every_method_gets_a_card_and_tracked_losses(tmp_path):
    pytest.importorskip("tensorboard")
    from huggingface_hub import ModelCard

    cfg = _config(
        tmp_path,
        method="npo",
        report={"enabled": False},
        tracking={"report_to": ["tensorboard"]},
        finetune={"gradient_checkpointing": True},
    )  # LoRA under checkpointing, through the Trainer
    run = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=None)
    run.run()
    card = ModelCard.load(tmp_path / "run" / "unlearned" / "README.md")
    assert card.data.to_dict()["tags"] == ["unlearning", "npo"]
    assert "Not evaluated yet" in card.text and "No attack results" in card.text
    losses = tensorboard_scalars(tmp_path / "run" / "tracking" / "finetune")["train/loss"]
    assert len(losses) >= 2 and all(v == v for v in losses)
    from safetensors.torch import load_file

    from workbench.models import tiny_model

    trained = load_file(tmp_path / "run" / "unlearned" / "model.safetensors")
    start = tiny_model().model.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in trained if "proj" in k)  # the adapters were trained


def test_unknown_tracker_is_one_error_listing_the_valid_names(tmp_path, capsys):
    with pytest.raises(WorkbenchError, match="unknown tracker 'tensorbord'; did you mean 'tensorboard'"):
        config_from_dict({"tracking": {"report_to": ["tensorbord"]}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "in", tracking={"report_to": ["neptune"]})))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(name in err for name in TRACKERS)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_missing_tracker_package_is_one_error_before_any_stage(tmp_path, capsys):
    import importlib.util

    absent = next((n for n in TRACKERS if importlib.util.find_spec(PACKAGES[n]) is None), None)
    if absent is None:
        pytest.skip("every tracker package is installed here")
    with pytest.raises(WorkbenchError, match=f"pip install {PACKAGES[absent]}"):
        resolve_trackers(config_from_dict({"tracking": {"report_to": [absent]}}).tracking)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "in", tracking={"report_to": [absent]})))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "reinforced").exists()


def test_default_tracking_is_tensorboard_where_installed_and_nothing_otherwise():
    import importlib.util

    cfg = config_from_dict({})
    expected = (
        ["tensorboard"] if (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")) else []
    )
    assert resolve_trackers(cfg.tracking) == expected
    assert resolve_trackers(config_from_dict({"tracking": {"report_to": []}}).tracking) == []


def test_tracking_and_checkpointing_change_no_fingerprint_and_need_no_update(tmp_path):
    base = tiny_config(tmp_path / "in")
    run = Run(config_from_dict(base), tmp_path / "run", progress=False, log=None)
    before = {s: run.fingerprint(s) for s in ("reinforce", "labels", "finetune", "report")}
    run._claim()  # records config.yaml as a run does

    def variant(**over):
        cfg = copy.deepcopy(base)
        for k, v in over.items():
            cfg[k] = {**cfg.get(k, {}), **v}
        return cfg

    changed = variant(
        tracking={"report_to": [], "project": "elsewhere"},
        reinforce={"gradient_checkpointing": True},
        finetune={"gradient_checkpointing": True},
    )
    again = Run(config_from_dict(changed), tmp_path / "run", progress=False, log=None)  # no --update needed
    assert {s: again.fingerprint(s) for s in before} == before
    # a setting that does change the output still changes the fingerprint and still needs --update
    other = variant(finetune={"learning_rate": 5e-3})
    with pytest.raises(WorkbenchError, match="different config"):
        Run(config_from_dict(other), tmp_path / "run", progress=False, log=None)
    assert (
        Run(config_from_dict(other), tmp_path / "run", update=True, log=None).fingerprint("finetune")
        != before["finetune"]
    )
    # the hash of a section is the one it had before the field existed
    cfg = config_from_dict(base)
    old_style = {k: v for k, v in dataclasses.asdict(cfg.reinforce).items() if k != "gradient_checkpointing"}
    old_style["method"] = old_style.pop("weights")  # and under the name it had then (config.KEY_ALIASES)
    assert stable_hash(cfg.reinforce) == stable_hash(old_style)


def test_known_limits_read_the_attacks_of_a_comparison_of_the_run(tmp_path):
    from types import SimpleNamespace

    from workbench.model_card import known_limits

    run_dir = tmp_path / "compare" / "runs" / "npo"
    run_dir.mkdir(parents=True)
    run = SimpleNamespace(dir=run_dir)
    assert known_limits(run) is None  # no comparison yet
    row = {
        "run": "npo",
        "run_dir": str(run_dir),
        "target_prob": 0.1,
        "base_target_prob": 0.4,
        "primed_prob": 0.25,
        "para_max_prob": 0.1,
        "adv_worst_prob": float("nan"),
        "relearn8_prob": 0.37,
        "residual_best_acc": 0.81,
    }
    other = {**row, "run": "ga", "run_dir": str(tmp_path / "compare" / "runs" / "ga"), "primed_prob": 0.4}
    (tmp_path / "compare" / "compare.json").write_text(json.dumps({"split": "dev", "runs": [other, row]}))
    lines = known_limits(run)
    text = "\n".join(lines)
    # the share of the removed probability (0.4 - 0.1) each attack brings back: (attack - 0.1) / 0.3
    assert "passage of the target text in the prompt: 0.25 (50% of the removed probability comes back)" in text
    assert "paraphrases: 0.1 (0% of" in text and "after 8 relearning steps: 0.37 (90% of" in text
    assert "adversarial" not in text  # not measured
    assert "accuracy 0.81" in text and "dev probes" in lines[0]
