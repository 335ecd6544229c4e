"""Reports: the tidy table, summary, figures (structure), resuming, bad input, and the CLI commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_evaldata, make_pack

from workbench.errors import WorkbenchError
from workbench.eval.cli import add_eval_parser, add_packs_parser
from workbench.eval.config import EvalConfig
from workbench.eval.evaluate import evaluate_models, parse_model_arg
from workbench.eval.summary import load_report
from workbench.eval.units import TABLE_COLUMNS
from workbench.models import tiny_model


@pytest.fixture(scope="module")
def other_tiny():
    return tiny_model(seed=1)


def _config(root: Path, **kw) -> EvalConfig:
    base = dict(
        pack=str(make_pack(root)),
        tasks=("toy", "wino"),
        evaldata_dir=str(make_evaldata(root)),
        limit=None,
        ppl_max_tokens=60,
        ppl_max_length=32,
        ppl_stride=16,
        max_new_tokens=5,
        samples=1,
        progress=False,
    )
    base.update(kw)
    return EvalConfig(**base)


@pytest.fixture(scope="module")
def report(tiny_copy, other_tiny, tmp_path_factory):
    tiny = tiny_copy()
    root = tmp_path_factory.mktemp("report")
    cfg = _config(root)
    rep = evaluate_models([("base", tiny), ("after", other_tiny)], cfg, root / "out")
    return rep, cfg, root


def test_report_files_and_table(report):
    rep, _, root = report
    out = root / "out"
    for name in (
        "results.csv",
        "results.parquet",
        "probes.parquet",
        "completions.csv",
        "mc_items.parquet",
        "summary.json",
        "report.md",
        "figures/familiarity.html",
        "figures/utility.html",
        "figures/probe_scatter.html",
        "figures/completion_grades.html",
        "figures/plotly.min.js",
    ):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == TABLE_COLUMNS
    assert set(table["model"]) == {"base", "after"}
    assert set(table["section"]) == {
        "probes",
        "paraphrase",
        "priming",
        "collateral",
        "completion",
        "utility",
        "perplexity",
    }
    acc = table[(table["section"] == "utility") & (table["metric"] == "acc")]
    assert len(acc) == 4 and acc["value"].between(0, 1).all() and (acc["ci_low"] <= acc["value"]).all()
    mc = pd.read_parquet(out / "mc_items.parquet")
    for (model, task), g in mc.groupby(["model", "task"]):
        row = acc[(acc["model"] == model) & (acc["set"] == task)].iloc[0]
        assert row["value"] == pytest.approx(g["correct"].mean()) and row["n"] == len(g)
    probes = pd.read_parquet(out / "probes.parquet")
    assert set(probes["variant"]) == {"original", "primed", "paraphrase"}
    mean_prob = table[
        (table["model"] == "base")
        & (table["section"] == "probes")
        & (table["set"] == "probability")
        & (table["split"] == "heldout")
        & (table["metric"] == "mean_prob")
    ]["value"].iloc[0]
    orig = probes[(probes["model"] == "base") & (probes["set"] == "probability") & (probes["variant"] == "original")]
    assert mean_prob == pytest.approx(orig[orig["split"] == "heldout"]["prob"].mean())
    # Collateral probes are also summarised per domain.
    assert "collateral/british_schools" in set(table["set"])
    comp = pd.read_csv(out / "completions.csv")
    assert len(comp) == 2 * 3 * 2 and comp["grade"].between(0, 3).all()  # models x prompts x (greedy + 1 sample)


def test_summary_json(report):
    rep, _, root = report
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["baseline"] == "base" and [m["label"] for m in summary["models"]] == ["base", "after"]
    assert summary["headline_split"] == "heldout"
    heads = summary["headlines"]["after"]
    for key in (
        "familiarity_prob",
        "familiarity_top1",
        "completion_familiarity_greedy",
        "primed_prob",
        "priming_delta",
        "paraphrase_max_prob",
        "collateral_prob",
        "general_prob",
        "toy_acc",
        "wino_acc",
        "utility_mean",
        "ppl_wikitext2_test_raw",
    ):
        assert key in heads, key
    comp = summary["comparisons"]["after"]
    assert set(comp["toy_acc"]) == {"diff", "ci_low", "ci_high", "n"} and comp["toy_acc"]["n"] == 4
    assert comp["toy_acc"]["ci_low"] <= comp["toy_acc"]["diff"] <= comp["toy_acc"]["ci_high"]
    assert "probability_original_prob" in comp
    assert "completion_familiarity" in summary["formulas"]
    md = (root / "out" / "report.md").read_text()
    assert "| metric | base | after |" in md and "toy_acc" in md
    assert rep.headline().loc["toy_acc", "base"] == heads_base(summary)


def heads_base(summary):
    return summary["headlines"]["base"]["toy_acc"]


def test_figures_structure(report):
    rep, _, root = report
    figs = rep.figures
    assert set(figs) == {"familiarity", "utility", "probe_scatter", "completion_grades"}
    fam = figs["familiarity"]
    assert {t.name for t in fam.data} == {"base", "after"} and all(t.type == "bar" for t in fam.data)
    xs = set().union(*[set(t.x) for t in fam.data])
    assert {"probability", "probability (primed)", "probability (paraphrase)", "collateral", "general", "greedy"} <= xs
    util = figs["utility"]
    bars = [t for t in util.data if t.name == "base" and t.xaxis == "x"]
    assert len(bars) == 1 and list(bars[0].x) == ["toy (acc)", "wino (acc)"] and bars[0].error_y.array is not None
    assert any(t.name == "after − base" for t in util.data)  # paired differences
    assert any(t.xaxis == "x3" for t in util.data)  # perplexity panel
    scatter = figs["probe_scatter"]
    assert scatter.layout.xaxis.type == "log" and any(t.name == "no change" for t in scatter.data)
    assert all(len(t.x) == len(t.y) for t in scatter.data)
    grades = figs["completion_grades"]
    assert [t.name for t in grades.data] == [
        "grade 0",
        "grade 1",
        "grade 2",
        "grade 3",
    ] and grades.layout.barmode == "stack"
    html = (root / "out" / "figures" / "familiarity.html").read_text()
    assert 'src="plotly.min.js"' in html and "Familiarity with the target" in html
    again = load_report(root / "out")
    assert set(again.figures) == set(figs) and len(again.table) == len(rep.table)


def test_resume_skips_finished_units(report, tiny, other_tiny):
    rep, cfg, root = report
    again = evaluate_models([("base", tiny), ("after", other_tiny)], cfg, root / "out")
    assert all(v == "resumed" for m in again.summary["models"] for v in m["units"].values())
    pd.testing.assert_frame_equal(again.table.reset_index(drop=True), rep.table.reset_index(drop=True))


def test_interrupted_run_resumes(tiny, tmp_path, monkeypatch):
    import workbench.eval.units as report_mod

    cfg = _config(tmp_path, sections=("probes", "utility"))
    calls = {"n": 0}
    real = report_mod.score_mc

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run is stopped during the second benchmark
        return real(*args, **kw)

    monkeypatch.setattr(report_mod, "score_mc", failing)
    with pytest.raises(KeyboardInterrupt):
        evaluate_models([("m", tiny)], cfg, tmp_path / "out")
    done = sorted(p.name for p in (tmp_path / "out" / "partial" / "m").glob("*.json"))
    assert done == ["mc.toy.json", "probes.probability.json"]
    rep = evaluate_models([("m", tiny)], cfg, tmp_path / "out")
    assert rep.summary["models"][0]["units"] == {
        "probes.probability": "resumed",
        "mc.toy": "resumed",
        "mc.wino": "computed",
    }
    # A changed setting recomputes the units it affects.
    cfg.limit = 2
    rep = evaluate_models([("m", tiny)], cfg, tmp_path / "out")
    assert rep.summary["models"][0]["units"] == {
        "probes.probability": "resumed",
        "mc.toy": "computed",
        "mc.wino": "computed",
    }


def test_bad_input(tiny, tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        evaluate_models([str(tmp_path / "no_model_here")], _config(tmp_path, sections=("utility",)), tmp_path / "o1")
    with pytest.raises(WorkbenchError, match="unknown eval section"):
        evaluate_models([("m", tiny)], _config(tmp_path, sections=("vibes",)), tmp_path / "o2")
    bare = make_pack(tmp_path, name="bare", completion=False)
    with pytest.raises(WorkbenchError, match="section 'completion' cannot run: .*no completion probes file"):
        evaluate_models([("m", tiny)], _config(tmp_path, pack=str(bare), sections=("completion",)), tmp_path / "o3")
    with pytest.raises(WorkbenchError, match="judge 'openai' needs an endpoint"):
        evaluate_models([("m", tiny)], _config(tmp_path, judge="openai", sections=("completion",)), tmp_path / "o4")
    with pytest.raises(WorkbenchError, match="unknown benchmark 'nope'"):
        evaluate_models([("m", tiny)], _config(tmp_path, tasks=("nope",), sections=("utility",)), tmp_path / "o5")
    with pytest.raises(WorkbenchError, match="no model"):
        evaluate_models([], _config(tmp_path), tmp_path / "o6")
    # A file named outright that is missing is an error even where the section would otherwise be skipped.
    with pytest.raises(WorkbenchError, match="perplexity text .*gone.txt does not exist"):
        evaluate_models([("m", tiny)], _config(tmp_path, ppl_text=str(tmp_path / "gone.txt")), tmp_path / "o8")
    with pytest.raises(WorkbenchError, match="benchmark file .*gone.jsonl does not exist"):
        evaluate_models([("m", tiny)], _config(tmp_path, tasks=("toy", str(tmp_path / "gone.jsonl"))), tmp_path / "o9")
    # Unreachable judge endpoint: a clear error naming it.
    with pytest.raises(WorkbenchError, match="127.0.0.1:9/v1/chat/completions is unreachable"):
        evaluate_models(
            [("m", tiny)],
            _config(tmp_path, judge="openai", judge_url="http://127.0.0.1:9", sections=("completion",)),
            tmp_path / "o7",
        )


def test_default_sections_skip_what_the_pack_lacks(tiny, tmp_path):
    bare = make_pack(tmp_path, name="bare", completion=False, collateral=False)
    with pytest.warns(UserWarning) as caught:
        rep = evaluate_models(
            [("m", tiny)],
            _config(tmp_path, pack=str(bare), tasks=("toy",), figures=False, formats=("csv",)),
            tmp_path / "out",
        )
    messages = [str(w.message) for w in caught]
    assert any("skipped completion" in m for m in messages) and any("skipped collateral" in m for m in messages)
    assert "completion" not in set(rep.table["section"]) and any("skipped" in n for n in rep.summary["notes"])
    assert not (tmp_path / "out" / "results.parquet").exists() and not (tmp_path / "out" / "figures").exists()


def test_parse_model_arg(tmp_path):
    assert parse_model_arg("embedded") == ("embedded", "embedded")
    assert parse_model_arg("base=embedded") == ("base", "embedded")
    assert parse_model_arg("runs/demo/") == ("demo", "runs/demo/")
    assert parse_model_arg("runs/demo/unlearned") == ("demo", "runs/demo/unlearned")


def _cli(argv):
    parser = argparse.ArgumentParser(prog="workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_packs_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_eval(tmp_path, capsys):
    pack = make_pack(tmp_path)
    evaldata = make_evaldata(tmp_path)
    code = _cli(
        [
            "eval",
            "--model",
            "base=tiny",
            "--pack",
            str(pack),
            "--evaldata",
            str(evaldata),
            "--tasks",
            "toy",
            "--limit",
            "3",
            "--sections",
            "probes,utility,perplexity",
            "--ppl-max-tokens",
            "40",
            "--ppl-max-length",
            "32",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--no-figures",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| metric | base |" in out and "wrote" in out
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(table["section"]) == {"probes", "utility", "perplexity"}
    assert table[(table["section"] == "utility")]["n"].iloc[0] == 3
    with pytest.raises(SystemExit):
        _cli(["eval", "--pack", str(pack)])  # --model is required


def test_cli_packs(tmp_path, capsys):
    assert _cli(["packs", "list"]) == 0
    pack = make_pack(tmp_path)
    assert (
        _cli(
            ["packs", "check", str(pack), "--model", "tiny", "--kinds", "probability", "--out", str(tmp_path / "c.csv")]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "probability: 4 probes ok" in out and "anchors: 7 terms ok" in out and "mean_prob" in out
    assert len(pd.read_csv(tmp_path / "c.csv")) == 4
    with pytest.raises(WorkbenchError, match="unknown pack"):
        _cli(["packs", "check", "no_such_pack", "--model", "tiny"])


def test_a_model_folder_named_from_another_directory_resumes(tiny, tmp_path, monkeypatch):
    # the CLI names a run's model relative to the repository, a notebook from notebooks/: the same weights
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.tokenizer.save_pretrained(tmp_path / "m")
    cfg = _config(tmp_path, sections=("probes",))
    monkeypatch.chdir(tmp_path)
    first = evaluate_models([("m", "m")], cfg, tmp_path / "out")
    assert first.summary["models"][0]["units"] == {"probes.probability": "computed"}
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    again = evaluate_models([("m", "../m")], cfg, tmp_path / "out")
    assert again.summary["models"][0]["units"] == {"probes.probability": "resumed"}
