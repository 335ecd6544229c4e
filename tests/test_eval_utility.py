"""Utility: multiple-choice scoring and perplexity against hand-computed values; benchmark file validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import MC_ITEMS, TEXT, WINO_ITEMS, explicit_continuation_logprob, explicit_logprobs, write_jsonl

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import LoglikelihoodConfig, encode_pair, prefix_token_id
from workbench.eval.utility import (
    BENCHMARKS,
    PerplexityConfig,
    load_mc_task,
    paired_bootstrap,
    paired_bootstrap_relative,
    perplexity,
    score_mc,
    summarize_mc,
    wilson_interval,
)


def _expected_mc(tiny, item):
    contexts = item.get("contexts") or [item["context"]] * len(item["choices"])
    conts = item.get("choices") or [item["continuation"]] * len(contexts)
    lps = [explicit_continuation_logprob(tiny, *encode_pair(tiny.tokenizer, c, k)) for c, k in zip(contexts, conts)]
    norm = [lp / len(k) for lp, k in zip(lps, conts)]
    return lps, int(np.argmax(lps)), int(np.argmax(norm))


@pytest.mark.parametrize("items,name", [(MC_ITEMS, "toy"), (WINO_ITEMS, "wino")])
def test_mc_matches_explicit_loglikelihood(tiny, tmp_path, items, name):
    task = load_mc_task(write_jsonl(tmp_path / f"{name}.jsonl", items))
    df = score_mc(tiny, task, LoglikelihoodConfig(batch_size=3, progress=False))
    assert task.name == name and len(df) == len(items)
    for item, row in zip(items, df.itertuples()):
        lps, pred, pred_norm = _expected_mc(tiny, item)
        assert json.loads(row.logprobs) == pytest.approx(lps, abs=1e-3)
        assert row.pred == pred and row.pred_norm == pred_norm
        assert row.correct == (pred == item["label"]) and row.correct_norm == (pred_norm == item["label"])
        assert row.n_choices == len(lps) and row.item_id == item["id"]
    s = summarize_mc(df).iloc[0]
    assert s["n"] == len(items) and s["acc"] == pytest.approx(df["correct"].mean())
    assert (s["acc_ci_low"], s["acc_ci_high"]) == pytest.approx(wilson_interval(df["correct"].sum(), len(items)))


def test_mc_batched_equals_unbatched(tiny, tmp_path):
    task = load_mc_task(write_jsonl(tmp_path / "toy.jsonl", MC_ITEMS + WINO_ITEMS))
    a = score_mc(tiny, task, LoglikelihoodConfig(batch_size=1, progress=False))
    b = score_mc(tiny, task, LoglikelihoodConfig(batch_size=32, progress=False))
    c = score_mc(tiny, task, LoglikelihoodConfig(batch_size=32, padding_side="right", progress=False))
    for other in (b, c):
        assert np.allclose(
            np.concatenate([json.loads(x) for x in a["logprobs"]]),
            np.concatenate([json.loads(x) for x in other["logprobs"]]),
            atol=1e-4,
        )


def test_mc_validation_errors(tmp_path):
    bad = MC_ITEMS[:2] + [{"id": "x", "context": "c", "choices": [" a", " b"], "label": 2}]
    path = write_jsonl(tmp_path / "bad.jsonl", bad)
    with pytest.raises(WorkbenchError, match=r"bad.jsonl line 3: label 2 is out of range for 2 choices"):
        load_mc_task(path)
    assert len(load_mc_task(path, limit=2).items) == 2  # only the lines read are validated
    cases = [
        ({"context": "c", "label": 0}, "missing field 'choices'"),
        ({"context": "c", "choices": [" a", " b"]}, "missing field 'label'"),
        ({"context": "c", "choices": [" a", " b"], "label": "0"}, "'label' must be an integer"),
        ({"context": "c", "choices": [" a"], "label": 0}, "at least two"),
        ({"contexts": ["a", "b"], "label": 0}, "missing field 'continuation'"),
        ({"contexts": ["a", "b"], "continuation": " c", "label": -1}, "label -1 is out of range"),
    ]
    for obj, msg in cases:
        with pytest.raises(WorkbenchError, match=msg):
            load_mc_task(write_jsonl(tmp_path / "case.jsonl", [obj]))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(WorkbenchError, match="has no items"):
        load_mc_task(tmp_path / "empty.jsonl")
    with pytest.raises(WorkbenchError, match="unknown benchmark 'nope'"):
        load_mc_task("nope", evaldata_dir=tmp_path)
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_mc_task(tmp_path / "missing.jsonl")


def test_shared_benchmark_files_load(evaldata_dir, tiny):
    for name in BENCHMARKS:
        task = load_mc_task(name, limit=5, evaldata_dir=evaldata_dir)
        assert len(task.items) == 5 and all(0 <= it.label < len(it.continuations) for it in task.items)
    wino = load_mc_task("winogrande", limit=2, evaldata_dir=evaldata_dir)
    assert len(set(wino.items[0].contexts)) == 2 and len(set(wino.items[0].continuations)) == 1
    df = score_mc(tiny, load_mc_task("piqa", limit=3, evaldata_dir=evaldata_dir), LoglikelihoodConfig(progress=False))
    assert len(df) == 3 and set(df["task"]) == {"piqa"}


def test_perplexity_matches_explicit_nll(tiny):
    tok = tiny.tokenizer
    ids = [prefix_token_id(tok)] + tok(TEXT, add_special_tokens=False).input_ids
    lp = explicit_logprobs(tiny, ids)
    nll = -float(sum(lp[t - 1, ids[t]] for t in range(1, len(ids))))
    n = len(ids) - 1
    res = perplexity(tiny, TEXT, PerplexityConfig(max_length=512, stride=512))
    assert res["tokens"] == n and res["windows"] == 1
    assert res["nll"] == pytest.approx(nll, rel=1e-5)
    assert res["ppl"] == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert res["word_perplexity"] == pytest.approx(math.exp(nll / len(TEXT.split())), rel=1e-5)
    assert res["bits_per_byte"] == pytest.approx(nll / len(TEXT.encode()) / math.log(2), rel=1e-5)
    # A window that holds everything gives the same numbers however small the stride.
    assert perplexity(tiny, TEXT, PerplexityConfig(max_length=512, stride=7, batch_size=3))["nll"] == pytest.approx(
        nll, rel=1e-5
    )


def test_perplexity_sliding_window_by_hand(tiny, tmp_path):
    tok = tiny.tokenizer
    ids = [prefix_token_id(tok)] + tok(TEXT, add_special_tokens=False).input_ids
    max_len, stride = 12, 5
    nll = 0.0
    for s in range(1, len(ids), stride):  # each new token sees the window's preceding tokens
        e = min(s + stride, len(ids))
        a = max(0, e - 1 - max_len)
        lp = explicit_logprobs(tiny, ids[a:e])
        nll -= float(sum(lp[t - a - 1, ids[t]] for t in range(s, e)))
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    res = perplexity(tiny, path, PerplexityConfig(max_length=max_len, stride=stride, batch_size=4))
    assert res["nll"] == pytest.approx(nll, rel=1e-5)
    short = perplexity(tiny, path, PerplexityConfig(max_length=max_len, stride=stride, max_tokens=10))
    assert short["tokens"] == 10 and short["bytes"] < len(TEXT)
    with pytest.raises(WorkbenchError, match="does not exist"):
        perplexity(tiny, tmp_path / "missing.txt")
    with pytest.raises(WorkbenchError, match="empty"):
        perplexity(tiny, "   ")


def test_intervals_by_hand():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    d, lo, hi = paired_bootstrap([0, 0, 1, 1], [1, 1, 1, 1])
    assert d == 0.5 and 0 <= lo <= 0.5 <= hi <= 1
    d, lo, hi = paired_bootstrap([1, 0, 1], [1, 0, 1])
    assert (d, lo, hi) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap([1], [1, 2])


def test_paired_bootstrap_relative_against_a_plain_loop():
    import random

    a = [0.5, 0.2, 0.9, 0.4, 0.1, 0.6]
    b = [0.1, 0.2, 0.3, 0.4, 0.05, 0.5]
    rel, lo, hi = paired_bootstrap_relative(a, b, n_boot=4000, seed=1)
    assert rel == pytest.approx(sum(b) / sum(a) - 1)
    # an independent resampling loop (another generator): the intervals agree to resampling noise
    rng = random.Random(7)
    ratios = []
    for _ in range(4000):
        pick = [rng.randrange(len(a)) for _ in a]
        ratios.append(sum(b[i] for i in pick) / sum(a[i] for i in pick) - 1)
    ratios.sort()
    assert lo == pytest.approx(ratios[int(0.025 * 4000)], abs=0.05)
    assert hi == pytest.approx(ratios[int(0.975 * 4000)], abs=0.05)
    assert lo <= rel <= hi
    assert paired_bootstrap_relative([1, 2], [1, 2]) == (0.0, 0.0, 0.0)
    assert all(v != v for v in paired_bootstrap_relative([0, 0], [1, 1]))  # no baseline mass: NaN
