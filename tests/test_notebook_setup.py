"""notebook.setup on any config or run directory, variants instead of silent retraining, and `packs new`."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from workbench import notebook
from workbench.config import load_config
from workbench.errors import WorkbenchError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in (notebook.ENV_MODEL, notebook.ENV_CONFIG, notebook.ENV_RUN):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(notebook.ENV_RUNS, str(tmp_path / "runs"))
    return tmp_path


def test_default_settings_are_the_demo_config(clean_env):
    nb = notebook.setup("00_quickstart")
    demo = load_config(notebook.DEMO_CONFIG)
    for part in ("target", "reinforce", "labels", "finetune"):
        assert getattr(nb.cfg, part) == getattr(demo, part), part  # one source of truth: demo.yaml
    assert nb.cfg.finetune.target == "soft" and nb.cfg.finetune.retain_weight == 30.0
    assert "demo.yaml" in repr(nb) and nb.run_dir == clean_env / "runs" / "notebooks-embedded"


def test_config_and_run_directory_from_the_environment(clean_env, monkeypatch):
    cfg_path = clean_env / "mine.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "name": "sherlock",
                "model": "tiny",
                "target": {"pack": "sherlock_holmes", "block_size": 64, "max_blocks": 4},
            }
        )
    )
    monkeypatch.setenv(notebook.ENV_CONFIG, str(cfg_path))
    nb = notebook.setup("01_scoring")
    assert nb.cfg.target.pack == "sherlock_holmes" and nb.cfg.model == "tiny" and nb.is_tiny
    assert nb.run_dir == clean_env / "runs" / "sherlock"  # the directory `workbench run` uses
    assert nb.probes("probability", split="dev")[0].id.startswith("sh-")
    # WORKBENCH_RUN opens an existing run directory with the config it was made with
    run_dir = clean_env / "finished"
    run_dir.mkdir()
    data = yaml.safe_load(cfg_path.read_text())
    data["finetune"] = {"retain_weight": 3.0}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv(notebook.ENV_RUN, str(run_dir))
    nb = notebook.setup("05_familiarity_probes")
    assert nb.run_dir == run_dir.resolve() and nb.cfg.finetune.retain_weight == 3.0
    monkeypatch.setenv(notebook.ENV_RUN, str(clean_env / "nowhere"))
    with pytest.raises(WorkbenchError, match="nowhere"):
        notebook.setup("05_familiarity_probes")
    # a config that names no pack: the probes cells say what to do
    monkeypatch.delenv(notebook.ENV_RUN)
    corpus = clean_env / "corpus.txt"
    corpus.write_text("Some text about a detective. " * 20)
    anchors = clean_env / "anchors.json"
    anchors.write_text(json.dumps({"Holmes": ["Parker"]}))
    cfg_path.write_text(
        yaml.safe_dump(
            {"name": "own", "model": "tiny", "target": {"pack": None, "corpus": str(corpus), "anchors": str(anchors)}}
        )
    )
    with pytest.raises(WorkbenchError, match="packs new"):
        notebook.setup("05_familiarity_probes").probes("probability")


@pytest.mark.integration
def test_changed_settings_go_to_a_variant_and_keep_the_earlier_model(clean_env, capsys):
    nb = notebook.setup("04_finetuning", model="tiny")
    run = nb.run(progress=False)
    run.run(stages=("reinforce", "labels", "finetune"))
    first = nb.run_dir / "unlearned"
    weights = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    reinforce_rec = json.loads((nb.run_dir / "stages" / "reinforce.json").read_text())

    # the same settings: the same directory, nothing redone
    assert nb.place() == nb.run_dir
    cfg = copy.deepcopy(nb.cfg)
    cfg.finetune.retain_weight = 0.0
    cfg.finetune.learning_rate = 5e-3
    capsys.readouterr()
    variant = nb.run(cfg=cfg, progress=False)
    out = capsys.readouterr().out
    assert variant.dir.parent == nb.run_dir / "variants"
    assert "retain_weight: 1.0 → 0.0" in out and "finetune" in out and "variant" in out
    # the variant shares the stages the change does not affect: no retraining of the reinforced model
    assert variant.is_done("reinforce") and variant.is_done("labels") and not variant.is_done("finetune")
    assert (variant.dir / "reinforced").is_symlink()
    variant.finetune()
    assert json.loads((variant.dir / "stages" / "reinforce.json").read_text()) == reinforce_rec
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == weights  # the earlier model stays
    models = nb.variants()
    assert list(models) == ["unlearned", f"unlearned: {variant.dir.name}"]
    assert models[f"unlearned: {variant.dir.name}"] == variant.dir / "unlearned"
    # the earlier settings still find the earlier model, untouched
    assert nb.run(progress=False).is_done("finetune")
    # redoing a linked stage inside a variant writes there, never through the link into the parent
    parent_labels = sorted((nb.run_dir / "labels").iterdir())
    stamp = {p.name: p.stat().st_mtime_ns for p in parent_labels}
    cfg3 = copy.deepcopy(cfg)
    cfg3.labels.top_k = 4
    again = nb.run(cfg=cfg3, variant=variant.dir.name, progress=False)
    assert again.dir == variant.dir and not (variant.dir / "labels").is_symlink()
    again.labels()
    assert (variant.dir / "labels").is_dir() and not (variant.dir / "labels").is_symlink()
    assert {p.name: p.stat().st_mtime_ns for p in sorted((nb.run_dir / "labels").iterdir())} == stamp


def test_packs_new_writes_a_pack_that_packs_check_and_runs_accept(tmp_path, capsys):
    from workbench.cli import main
    from workbench.pack import BUNDLED_DIR, load_pack

    dest = tmp_path / "my_target"
    assert (
        main(
            [
                "packs",
                "new",
                str(dest),
                "--corpus",
                str(BUNDLED_DIR / "sherlock_holmes" / "corpus"),
                "--retain",
                str(BUNDLED_DIR / "sherlock_holmes" / "retain"),
            ]
        )
        == 0
    )
    pack = load_pack(dest)
    assert sorted(pack.probe_paths) == ["collateral", "completion", "general", "probability"]
    prob = pack.probes("probability")
    assert len(prob) >= 20 and {p.split for p in prob} == {"dev", "heldout"}
    corpus = " ".join(" ".join(t.split()) for t in pack.read_corpus())
    for p in prob:  # every draft probe is a real prefix of the corpus followed by its answer
        assert p.prompt + p.targets[0] in corpus
    assert all(p.domain for p in pack.probes("collateral"))
    assert json.loads(pack.anchors_path.read_text())["anchors"] == {}
    assert "targets" in (dest / "README.md").read_text()
    assert main(["packs", "check", str(dest), "--model", "tiny", "--kinds", "probability"]) == 0
    out = capsys.readouterr().out
    assert "anchors: empty so far" in out and "overlap: no target, collateral or general probe's answer" in out
    # the collateral drafts were cut from retain sentences: those sentences are left out of the pack's retain text
    coll = pack.probes("collateral")
    retain = " ".join(" ".join(p.read_text().split()) for p in pack.retain_files())
    assert not any(c.prompt + c.targets[0] in retain for c in coll)
    assert "sentence(s) that state a probe answer" in (dest / "README.md").read_text()
    # an existing folder is refused, and nothing is half-written
    assert main(["packs", "new", str(dest), "--corpus", str(BUNDLED_DIR / "sherlock_holmes" / "corpus")]) == 2
    assert main(["packs", "new", str(tmp_path / "other"), "--corpus", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "other").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_probe_comparer_takes_any_number_of_models():
    import pandas as pd

    from workbench.widgets import ProbeComparer

    prob = pd.DataFrame(
        [
            {
                "variant": v,
                "set": "probability",
                "probe_id": f"p{i}",
                "prompt": "x",
                "target": " y",
                "prob": p * (i + 1) / 10,
            }
            for i in range(2)
            for v, p in (("baseline", 4), ("a", 2), ("b", 1))
        ]
    )
    pc = ProbeComparer(None, prob)
    assert pc.names == ["baseline", "a", "b"]
    s = pc.probability_summary().iloc[0]
    assert s["baseline"] == pytest.approx(0.6) and s["change a"] == "-50.0%" and s["change b"] == "-75.0%"
    pc.set_right("b")
    assert pc.right == "b"
    with pytest.raises(KeyError):
        pc.set_right("baseline")


def test_export_report_is_one_self_contained_html_file(tmp_path):
    import re

    from workbench.config import config_to_dict
    from workbench.report_html import export_report

    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    cfg = config_to_dict(load_config(notebook.DEMO_CONFIG))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "stages" / "finetune.json").write_text(json.dumps({"stage": "finetune", "seconds": 210.5}))
    (run / "stages" / "labels.json").write_text(
        json.dumps(
            {"stage": "labels", "seconds": 56.0, "summary": [{"alpha": 5.0, "labelled": 900, "changed_share": 0.1234}]}
        )
    )
    (run / "report.json").write_text(
        json.dumps(
            {
                "probes": {
                    "probability": {
                        "n": 109,
                        "baseline_mean_prob": 0.2373,
                        "unlearned_mean_prob": 0.1081,
                        "relative_change": 0.1081 / 0.2373 - 1,
                    }
                },
                "generic_reference": {"all": {"n": 109, "mean_prob": 0.0917, "relative_change": -0.614}},
                "perplexity": {"text": "wikitext", "baseline": 24.44, "unlearned": 25.11, "relative_change": 0.027},
            }
        )
    )
    variant = run / "variants" / "target=hard"
    variant.mkdir(parents=True)
    (variant / "config.yaml").write_text(yaml.safe_dump({**cfg, "finetune": {**cfg["finetune"], "target": "hard"}}))
    out = export_report(run)
    text = out.read_text()
    assert out == run / "report.html" and text.startswith("<!DOCTYPE html>")
    assert "0.2373" in text and "0.1081" in text and "-54.4%" in text and "0.0917" in text  # table and generic column
    assert "<svg" in text and "210.5" in text and "0.123" in text and "Variant target=hard" in text
    assert "hard targets" in text and "soft targets" in text
    assert "<script" not in text and not re.search(r"""(src|href)=["']?(https?:|/|\.)""", text)  # nothing external


def test_report_table_html_is_the_report_table_with_its_split(tmp_path):
    """The table the notebooks open and close with: the report's report_table, every row and number, under a
    title naming the report's split and the number of probes of each set; the same block report.html shows."""
    from workbench.report import report_table
    from workbench.report_html import export_report, report_table_html

    report = {
        "config": {"report": {"split": "heldout"}},
        "probes": {
            "probability": {
                "n": 117,
                "baseline_mean_prob": 0.2396,
                "unlearned_mean_prob": 0.1346,
                "relative_change": 0.1346 / 0.2396 - 1,
                "relative_change_ci95": [-0.558, -0.322],
            },
            "collateral": {
                "n": 83,
                "baseline_mean_prob": 0.3238,
                "unlearned_mean_prob": 0.3126,
                "relative_change": -0.034,
                "relative_change_ci95": [-0.066, -0.007],
            },
        },
        "probes_by_answer_kind": {
            "probability/anchor": {
                "set": "probability",
                "answer_kind": "anchor",
                "n": 37,
                "baseline_mean_prob": 0.246,
                "unlearned_mean_prob": 0.0453,
                "relative_change": -0.816,
                "relative_change_ci95": [-0.9, -0.721],
            }
        },
        "generic_reference": {"all": {"n": 117, "mean_prob": 0.1025}, "anchor": {"n": 37, "mean_prob": 0.009}},
    }
    html = report_table_html(report)
    assert "Before and after: heldout probes (117 probability, 83 collateral)" in html
    table = report_table(report)
    for r in table.itertuples():
        assert r.measure.strip() in html and r.change in html and (r._6 is None or r._6 in html)
    for v in ("0.2396", "0.1346", "0.1025", "0.0090", "-43.8%", "[-55.8%, -32.2%]", "-81.6%"):
        assert v in html, v
    assert "<script" not in html
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(report))
    (run / "config.yaml").write_text(yaml.safe_dump({"report": {"split": "heldout"}}))
    assert report_table_html(report) in export_report(run).read_text()
    report["config"]["report"]["split"] = None
    assert "Before and after: all probes" in report_table_html(report)
