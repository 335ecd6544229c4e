"""Slow checks on the embedded SmolLM2: a real model knows easy facts, batching changes nothing, MC beats chance."""

from __future__ import annotations

import pytest

from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import score_probes
from workbench.eval.utility import load_mc_task, score_mc
from workbench.pack import NextTokenProbe

pytestmark = pytest.mark.slow

PROBES = [
    NextTokenProbe("fr", "The capital of France is", (" Paris",)),
    NextTokenProbe("hp", "Harry Potter's best friends are Ron Weasley and Hermione", (" Granger",)),
    NextTokenProbe("hw", "Harry Potter studied magic at", (" Hogwarts",)),
    NextTokenProbe("wa", "Water is made of hydrogen and", (" oxygen",)),
    NextTokenProbe(
        "long",
        "In the long series of novels by J. K. Rowling, the boy wizard with a lightning scar is called Harry",
        (" Potter",),
    ),
]


def test_embedded_knows_easy_facts_and_batching_is_exact(embedded):
    one = score_probes(embedded, PROBES, LoglikelihoodConfig(batch_size=1, progress=False))
    many = score_probes(embedded, PROBES, LoglikelihoodConfig(batch_size=8, progress=False))
    assert many["prob"].tolist() == pytest.approx(one["prob"].tolist(), rel=1e-3, abs=1e-6)
    assert many["rank"].tolist() == one["rank"].tolist()
    by_id = one.set_index("probe_id")
    assert by_id.loc["fr", "rank"] == 1 and by_id.loc["fr", "prob"] > 0.3
    assert by_id.loc["long", "rank"] <= 3
    assert by_id.loc["hw", "rank"] <= 5


def test_embedded_piqa_beats_chance(embedded, evaldata_dir):
    df = score_mc(
        embedded, load_mc_task("piqa", limit=40, evaldata_dir=evaldata_dir), LoglikelihoodConfig(progress=False)
    )
    assert df["correct"].mean() > 0.5
