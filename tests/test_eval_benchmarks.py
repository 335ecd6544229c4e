"""The benchmark scripts, run small on the tiny model (a saved run directory stands in for the unlearned model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import make_pack

from workbench.errors import WorkbenchError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory whose unlearned/ holds a saved tiny model."""
    from workbench.models import tiny_model

    lm = tiny_model(seed=3)
    run = tmp_path_factory.mktemp("run")
    lm.model.save_pretrained(run / "unlearned")
    lm.tokenizer.save_pretrained(run / "unlearned")
    return run


def test_paper_table_small(tmp_path, evaldata_dir, run_dir):
    paper = _script("paper_table")
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Results\n<!-- results:start -->\nold table\n<!-- results:end -->\nafter\n")
    pack = make_pack(tmp_path)
    argv = [
        "--baseline",
        "tiny",
        "--unlearned",
        str(run_dir),
        "--pack",
        str(pack),
        "--evaldata",
        evaldata_dir,
        "--limit",
        "2",
        "--ppl-max-tokens",
        "40",
        "--ppl-max-length",
        "32",
        "--samples",
        "1",
        "--max-new-tokens",
        "6",
        "--splits",
        "dev,heldout",
        "--out",
        str(tmp_path / "out"),
        "--readme",
        str(readme),
        "--quiet",
    ]
    block = paper.main(argv)
    for name in (
        "ARC-Challenge (acc_norm)",
        "ARC-Easy (acc)",
        "BoolQ (acc)",
        "HellaSwag (acc_norm)",
        "OpenBookQA (acc_norm)",
        "PIQA (acc)",
        "WinoGrande (acc)",
        "Mean of the benchmarks",
        "WikiText-2 perplexity",
        "Familiarity: answer-token probability",
        "Familiarity: completions, greedy",
        "Primed: answer probability",
        "Paraphrases",
        "Collateral domains",
        "General knowledge",
    ):
        assert name in block, name
    assert "| Measure | baseline | unlearned | Δ (95% CI) |" in block
    assert "python benchmarks/paper_table.py --baseline tiny" in block
    text = readme.read_text()
    assert "old table" not in text and block in text and text.startswith("# Title") and text.endswith("after\n")
    assert (tmp_path / "out" / "paper_table.md").is_file() and (tmp_path / "out" / "results.csv").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["headlines"]["baseline"]["piqa_acc"] is not None
    # Without markers the README is left alone and the error says what to add.
    bare = tmp_path / "BARE.md"
    bare.write_text("# no markers\n")
    with pytest.raises(WorkbenchError, match="has no '<!-- results:start -->'"):
        paper.write_into_readme(bare, "x")


def test_eval_throughput_small(tmp_path, evaldata_dir):
    bench = _script("eval_throughput")
    out = tmp_path / "tp.json"
    result = bench.main(
        [
            "--model",
            "tiny",
            "--pack",
            "none_such",
            "--evaldata",
            evaldata_dir,
            "--probes",
            "6",
            "--items",
            "2",
            "--tasks",
            "piqa,winogrande",
            "--repeats",
            "3",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["ratio"] == pytest.approx(result["ratio"])
    # eval is the reference forward (logits where eval reads them, same batches) plus tokenization, log-softmax
    # and tables: never faster than that forward alone, beyond timing noise
    assert 0 < saved["ratio"] < 1.1, saved
    assert saved["logit_positions"] < saved["padded_tokens"]  # the reference skips the context positions
    assert saved["tokens"] > 0 and saved["probes"] == 6 and saved["tasks"] == {"piqa": 2, "winogrande": 2}
    assert saved["raw_tokens_per_s"] > 0 and saved["eval_tokens_per_s"] > 0


def test_eval_throughput_run_all_adapter(tmp_path, evaldata_dir, monkeypatch):
    bench = _script("eval_throughput")
    monkeypatch.setenv("WORKBENCH_EVALDATA", evaldata_dir)

    class Ctx:
        model, quick, work = "tiny", True, tmp_path

    out = bench.run(Ctx())
    [fig] = out["figures"]
    assert fig["key"] == "eval_throughput_ratio" and fig["target"] == 0.70 and fig["value"] == out["details"]["ratio"]
