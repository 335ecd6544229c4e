"""Priming, paraphrases and collateral probes."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import make_pack

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import score_probes, with_prompts
from workbench.eval.robustness import (
    PrimingConfig,
    paraphrase_summary,
    priming_passage,
    priming_summary,
    score_collateral,
    score_paraphrases,
    score_primed,
)
from workbench.pack import load_pack

CFG = LoglikelihoodConfig(progress=False)


def test_priming_passage(tmp_path):
    pack = load_pack(make_pack(tmp_path))
    passage = priming_passage(pack, PrimingConfig(chars=150))
    assert 20 < len(passage) <= 150 and passage.endswith(".")
    assert "Encyclopedia" not in passage  # the title line is skipped
    assert passage.startswith("Harry Potter is a young wizard")
    assert priming_passage(pack, PrimingConfig(text="  Given passage.  ")) == "Given passage."
    with pytest.raises(WorkbenchError, match="priming text is empty"):
        priming_passage(pack, PrimingConfig(text=" "))


def test_primed_equals_prefixed_prompts(tiny, tmp_path):
    probes = load_pack(make_pack(tmp_path)).probes("probability")
    passage = "Hermione Granger and Ron Weasley are Harry's friends at Hogwarts."
    primed = score_primed(tiny, probes, passage, CFG)
    manual = score_probes(tiny, with_prompts(probes, [passage + "\n\n" + p.prompt for p in probes]), CFG)
    assert primed["prob"].tolist() == pytest.approx(manual["prob"].tolist(), rel=1e-5)
    assert set(primed["variant"]) == {"primed"}
    assert primed["prompt"].tolist() == [p.prompt for p in probes]  # pairs with the plain rows


def test_paraphrases(tiny, tmp_path):
    probes = load_pack(make_pack(tmp_path)).probes("probability")
    para = score_paraphrases(tiny, probes, CFG)
    assert para["probe_id"].tolist() == ["p1", "p1", "p3"] and para["paraphrase"].tolist() == [0, 1, 0]
    direct = score_probes(tiny, with_prompts([probes[0]], [probes[0].paraphrases[1]]), CFG)
    assert para["prob"].iloc[1] == pytest.approx(direct["prob"].iloc[0], rel=1e-5)
    assert score_paraphrases(tiny, [probes[1]], CFG).empty


def test_summaries_by_hand():
    plain = pd.DataFrame(
        {
            "set": "probability",
            "probe_id": ["a", "b"],
            "split": ["heldout", "dev"],
            "prob": [0.1, 0.5],
            "top1": [False, True],
        }
    )
    primed = plain.assign(prob=[0.4, 0.6], top1=[True, True])
    s = priming_summary(plain, primed).set_index("split")
    assert s.loc["all", "mean_prob"] == pytest.approx(0.3) and s.loc["all", "mean_prob_primed"] == pytest.approx(0.5)
    assert s.loc["all", "delta"] == pytest.approx(0.2) and s.loc["all", "newly_top1_rate"] == pytest.approx(0.5)
    assert s.loc["dev", "newly_top1_rate"] == 0
    para = pd.DataFrame({"set": "probability", "probe_id": ["a", "a", "b"], "prob": [0.05, 0.3, 0.2]})
    ps = paraphrase_summary(plain, para).set_index("probe_id")
    assert ps.loc["a", "para_max_prob"] == pytest.approx(0.3) and ps.loc["a", "para_mean_prob"] == pytest.approx(0.175)
    assert ps.loc["a", "leak"] == pytest.approx(0.2) and ps.loc["b", "leak"] == 0


def test_collateral(tiny, tmp_path):
    pack = load_pack(make_pack(tmp_path))
    df = score_collateral(tiny, pack, config=CFG)
    assert set(df["set"]) == {"collateral", "general"}
    assert set(df["domain"]) == {"other_fantasy", "british_schools", "general"}
    bare = load_pack(make_pack(tmp_path, name="bare", collateral=False))
    with pytest.raises(WorkbenchError, match="has none of the probe files"):
        score_collateral(tiny, bare)
