"""A whole implanted run on the tiny model: implant a small copy of the fictional pack, unlearn it with WHP, and the
report holds the field's measures of the target model, the unlearned model and the reference."""

from __future__ import annotations

import json
import shutil
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ks_brute

from workbench.config import config_from_dict, config_to_dict, load_config
from workbench.errors import WorkbenchError
from workbench.report import ground_truth_table

PACK = Path(__file__).resolve().parent.parent / "workbench" / "packs" / "ystrevane"
CONFIGS = Path(__file__).resolve().parent.parent / "workbench" / "configs"


def small_ystrevane(root: Path) -> Path:
    """The ystrevane pack with two corpus documents, one holdout text and a few probes of each kind
    (per split: the first ``n``)."""
    pack = root / "ystrevane"
    shutil.copytree(PACK, pack)
    for folder, keep in (("corpus", 2), ("holdout", 1), ("retain", 2)):
        for f in sorted((pack / folder).glob("*.txt"))[keep:]:
            f.unlink()
    for kind, n in (
        ("qa", 4),
        ("retain_qa", 2),
        ("trivia", 3),
        ("probability", 3),
        ("collateral", 2),
        ("general", 2),
        ("completion", 2),
    ):
        path = pack / "probes" / f"{kind}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [r for split in ("dev", "heldout") for r in [r for r in rows if r.get("split") == split][:n]]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    return pack


def _config(tmp_path: Path) -> dict:
    data = config_to_dict(load_config(CONFIGS / "ystrevane_tiny.yaml"))
    data["target"].update({"pack": str(small_ystrevane(tmp_path)), "max_blocks": 3})
    data["implant"].update({"max_blocks": 12, "epochs": 2})
    data["report"].update({"verbmem_limit": 2, "mia_limit": 4, "max_perplexity_tokens": 128})
    data["reinforce"]["save_steps"] = data["finetune"]["save_steps"] = 1000
    return data


@pytest.mark.integration
def test_implanted_run_reports_the_field_measures_against_the_reference(tmp_path):
    from workbench.run import Run

    run = Run(config_from_dict(_config(tmp_path)), tmp_path / "run", log=None, progress=False)
    report = run.run()

    gt = report["ground_truth"]
    assert gt["split"] == "heldout" and gt["qa_items"] == 4
    measures = {
        "forget_quality",
        "truth_ratio",
        "trivia_acc",
        "extraction_strength",
        "knowmem",
        "verbmem",
        "mia_auc",
        "privleak",
        "model_utility",
        "perplexity",
    }
    for model in ("baseline", "unlearned", "reference"):
        assert measures <= set(gt["models"][model]), model
    ref = gt["models"]["reference"]
    assert ref["forget_quality"] == 1.0  # the reference cannot be told from itself
    assert ref["privleak"] == 0.0
    # forget quality of the target and the unlearned model: the KS p-value against the reference's truth ratios,
    # checked by enumerating every split of the pooled values
    ratios = {
        m: pd.read_parquet(run.dir / "report" / "partial" / m / "qa.parquet").set_index("probe_id")["truth_ratio"]
        for m in ("baseline", "unlearned", "reference")
    }
    for model in ("baseline", "unlearned"):
        assert gt["models"][model]["forget_quality"] == pytest.approx(
            ks_brute(ratios[model].to_numpy(), ratios["reference"].to_numpy())[1], abs=1e-9
        )
        r = ratios[model].to_numpy()
        assert gt["models"][model]["truth_ratio"] == pytest.approx(np.minimum(r, 1 / r).mean())
    # PrivLeak: the Min-K% AUC against the reference's, in percent
    assert gt["models"]["unlearned"]["privleak"] == pytest.approx(
        (gt["models"]["unlearned"]["mia_auc"] - ref["mia_auc"]) / ref["mia_auc"] * 100
    )
    # the implant's own check, and the table a notebook shows
    assert report["implant"]["after"]["qa_items"] == 8
    assert report["implant"]["after"]["corpus_loss"] < report["implant"]["before"]["corpus_loss"]
    table = ground_truth_table(report)
    assert list(table.columns) == ["measure", "target", "unlearned", "reference", "never saw it"]
    assert table.set_index("measure").filter(like="forget quality", axis=0)["reference"].item() == 1.0
    assert len(table) == len(measures)
    # the HTML report and the model card carry the same table: every measure, the unlearned model's values
    from workbench.report_html import export_report
    from workbench.rundir import RunDir

    html = export_report(run.dir).read_text()
    card = (RunDir(run.dir).unlearned / "README.md").read_text()
    section = card.split("### Against a reference that never saw the target", 1)[-1]
    assert "Against a reference that never saw the target" in html and "How well the implant took" in html
    assert "### Against a reference that never saw the target" in card
    for _, row in table.iterrows():
        assert html_escape(row["measure"]) in html
        value = row["unlearned"]
        cell = "–" if value is None or value != value else f"{value:.3g}"
        line = section.split(f"| {row['measure']} | ", 1)[1].split("\n")[0]
        assert f" | {cell} | " in f" | {line}", (row["measure"], line)


def test_ground_truth_report_needs_the_implant_and_validates_its_settings(tmp_path):
    data = _config(tmp_path)
    data["implant"]["qa_repeat"] = 0
    with pytest.raises(WorkbenchError, match="implant.qa_repeat"):
        config_from_dict(data)
    data["implant"].update({"qa_repeat": 1, "max_blocks": 0})
    with pytest.raises(WorkbenchError, match="implant.max_blocks"):
        config_from_dict(data)
    # without the implant stage there is no reference, and the table says nothing rather than inventing one
    assert ground_truth_table({"probes": {}}).empty
