"""The run's before/after report through the eval units: the numbers of its parts, the per-probe file, resuming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_pack

from workbench.anchors import load_anchor_map
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import score_probes
from workbench.eval.run_report import evaluate_run, generic_prompts
from workbench.eval.utility import PerplexityConfig, perplexity
from workbench.models import tiny_model
from workbench.pack import load_pack

TEXT = "The quick brown fox jumps over the lazy dog. " * 8


@pytest.fixture(scope="module")
def other_tiny():
    return tiny_model(seed=1)


def _report(tiny, other_tiny, pack, out):
    return evaluate_run(
        tiny,
        other_tiny,
        pack,
        load_anchor_map(pack.anchors_path),
        out,
        probe_sets=("probability", "general"),
        split="heldout",
        seed=3,
        text=TEXT,
        text_name="fox",
        max_perplexity_tokens=40,
        progress=False,
    )


def test_run_report_matches_its_parts_and_resumes(tiny, other_tiny, tmp_path):
    pack = load_pack(make_pack(tmp_path))
    out = tmp_path / "report"
    result = _report(tiny, other_tiny, pack, out)

    # each mean is the mean of the probes scored one model at a time, outside the pipeline
    cfg = LoglikelihoodConfig(batch_size=1, progress=False)
    heldout = [p for p in pack.probes("probability") if p.split == "heldout"]
    for name, probes in (("probability", heldout), ("general", pack.probes("general"))):
        base = score_probes(tiny, probes, cfg)["prob"].to_numpy()
        after = score_probes(other_tiny, probes, cfg)["prob"].to_numpy()
        r = result["probes"][name]
        assert r["n"] == len(probes)
        assert r["baseline_mean_prob"] == pytest.approx(base.mean(), rel=1e-4)
        assert r["unlearned_mean_prob"] == pytest.approx(after.mean(), rel=1e-4)
        assert r["change"] == pytest.approx(after.mean() - base.mean(), rel=1e-3, abs=1e-12)
        assert r["change_ci95"][0] <= r["change"] <= r["change_ci95"][1]
    generic = generic_prompts(load_anchor_map(pack.anchors_path), heldout, 3)
    assert all("Harry" not in p.prompt for p in generic)
    gen = score_probes(tiny, generic, cfg)["prob"].to_numpy()
    assert result["generic_reference"]["all"]["mean_prob"] == pytest.approx(gen.mean(), rel=1e-4)
    pcfg = PerplexityConfig(max_length=1024, stride=512, max_tokens=40, batch_size=1)
    ppl = result["perplexity"]
    assert ppl["text"] == "fox"
    assert ppl["baseline"] == pytest.approx(perplexity(tiny, TEXT, pcfg)["ppl"], rel=1e-4)
    assert ppl["unlearned"] == pytest.approx(perplexity(other_tiny, TEXT, pcfg)["ppl"], rel=1e-4)

    # probes.csv: per set, the baseline rows, the unlearned rows, then the generic ones (baseline only)
    rows = pd.read_csv(out / "probes.csv")
    assert list(zip(rows["set"], rows["variant"])) == (
        [("probability", "baseline")] * 2
        + [("probability", "unlearned")] * 2
        + [("probability", "generic")] * 2
        + [("general", "baseline")] * 2
        + [("general", "unlearned")] * 2
    )
    assert np.allclose(rows.loc[rows["variant"] == "generic", "prob"], gen, rtol=1e-4)

    # a second call computes nothing: every unit comes back from <out>/partial, with the same result
    partial = sorted((out / "partial").rglob("*.json"))
    assert {p.parent.name for p in partial} == {"baseline", "unlearned"}
    assert not any(p.name.startswith("generic") for p in (out / "partial" / "unlearned").iterdir())
    stamps = [p.stat().st_mtime_ns for p in partial]
    assert _report(tiny, other_tiny, pack, out) == result
    assert [p.stat().st_mtime_ns for p in partial] == stamps
