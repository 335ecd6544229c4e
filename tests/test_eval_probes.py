"""Probability familiarity and the batched scoring engine, against hand-computed values on the tiny model."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from helpers import explicit_continuation_logprob, explicit_logprobs

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import (
    LoglikelihoodConfig,
    Request,
    encode_pair,
    encode_pairs,
    prefix_token_id,
    score_requests,
)
from workbench.eval.probes import score_probes, summarize_probes
from workbench.pack import CompletionProbe, NextTokenProbe

PROBES = [
    NextTokenProbe(
        "a",
        "Harry Potter's two best friends are Ron Weasley and",
        (" Hermione", " Hermione Granger", " Ginny"),
        split="heldout",
    ),
    NextTokenProbe("b", "The capital of France is", (" Paris",), split="dev"),
    NextTokenProbe("c", "Quidditch is played on", (" broomsticks", " brooms"), split="heldout"),
    NextTokenProbe("d", "A", (" cat",), split="dev"),
    NextTokenProbe(
        "e",
        "In the long and winding story of the boy who lived under the stairs, the name of the school was",
        (" Hogwarts",),
        split="heldout",
    ),
]


def test_encode_pair_splits_like_running_text(tiny):
    tok = tiny.tokenizer
    ctx, cont = encode_pair(tok, "The capital of France is", " Paris")
    assert ctx + cont == tok("The capital of France is Paris").input_ids
    assert tok.decode(cont) == " Paris"
    # Trailing whitespace of the context moves to the continuation.
    assert encode_pair(tok, "The capital of France is ", "Paris") == (ctx, cont)
    # An empty context becomes the prefix token.
    ctx0, cont0 = encode_pair(tok, "", "Hello world")
    assert ctx0 == [prefix_token_id(tok)] and tok.decode(cont0) == "Hello world"
    assert encode_pairs(tok, [("A", " b"), ("The capital of France is", " Paris")])[1] == (ctx, cont)
    with pytest.raises(WorkbenchError, match="empty continuation"):
        encode_pair(tok, "abc", "")


def test_probe_metrics_match_explicit_softmax(tiny):
    df = score_probes(tiny, PROBES, LoglikelihoodConfig(batch_size=1, progress=False))
    tok = tiny.tokenizer
    for probe, row in zip(PROBES, df.itertuples()):
        encs = [encode_pair(tok, probe.prompt, t) for t in probe.targets]
        prompt_ids = encs[0][0]
        lp = explicit_logprobs(tiny, prompt_ids)[-1]  # [vocab] at the answer position
        firsts = sorted({cont[0] for _, cont in encs})
        expected_prob = float(sum(lp[f].exp() for f in firsts))
        order = torch.argsort(lp, descending=True).tolist()
        expected_rank = min(order.index(f) + 1 for f in firsts)
        assert row.prob == pytest.approx(expected_prob, rel=1e-4)
        assert row.rank == expected_rank
        assert row.logprob == pytest.approx(math.log(expected_prob), abs=1e-4)
        assert row.top1 == (expected_rank == 1) and row.top5 == (expected_rank <= 5)
        seqs = [explicit_continuation_logprob(tiny, c, k) for c, k in encs]
        assert row.seq_logprob == pytest.approx(seqs[0], abs=1e-3)
        assert row.best_seq_logprob == pytest.approx(max(seqs), abs=1e-3)
        assert row.target_tokens == len(encs[0][1])
        assert row.target == probe.targets[0] and row.split == probe.split and row.variant == "original"


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_equals_unbatched(tiny, side):
    one = score_probes(tiny, PROBES, LoglikelihoodConfig(batch_size=1, padding_side=side, progress=False))
    many = score_probes(tiny, PROBES, LoglikelihoodConfig(batch_size=16, padding_side=side, progress=False))
    # Uneven budget: batches of different sizes.
    budget = score_probes(
        tiny, PROBES, LoglikelihoodConfig(batch_size=16, max_batch_tokens=40, padding_side=side, progress=False)
    )
    for other in (many, budget):
        for col in ("prob", "seq_logprob", "best_seq_logprob"):
            assert other[col].tolist() == pytest.approx(one[col].tolist(), rel=1e-4, abs=1e-6)
        assert other["rank"].tolist() == one["rank"].tolist()


def test_left_and_right_padding_agree(tiny):
    left = score_probes(tiny, PROBES, LoglikelihoodConfig(batch_size=8, padding_side="left", progress=False))
    right = score_probes(tiny, PROBES, LoglikelihoodConfig(batch_size=8, padding_side="right", progress=False))
    assert left["seq_logprob"].tolist() == pytest.approx(right["seq_logprob"].tolist(), abs=1e-4)
    assert left["rank"].tolist() == right["rank"].tolist()


def test_score_requests_details_and_truncation(tiny):
    tok = tiny.tokenizer
    ctx, cont = encode_pair(tok, "The quick brown fox jumps over the lazy", " dog and the cat")
    q = (cont[0], 100, 2000)
    [s] = score_requests(tiny.model, [Request(ctx, cont, q)], LoglikelihoodConfig(progress=False))
    lp = explicit_logprobs(tiny, ctx + cont)
    expected = [float(lp[len(ctx) - 1 + t, k]) for t, k in enumerate(cont)]
    assert s.token_logprobs == pytest.approx(expected, abs=1e-4)
    assert s.logprob == pytest.approx(sum(expected), abs=1e-4) and s.n_tokens == len(cont)
    first = lp[len(ctx) - 1]
    assert s.query_logprobs == pytest.approx([float(first[i]) for i in q], abs=1e-4)
    assert s.query_ranks == [int((first > first[i]).sum()) + 1 for i in q]
    assert s.greedy == all(int(lp[len(ctx) - 1 + t].argmax()) == k for t, k in enumerate(cont))
    # With a 6-token window the context loses its start: the same as scoring the cut context directly.
    [cut] = score_requests(tiny.model, [Request(ctx, cont)], LoglikelihoodConfig(progress=False), max_length=6)
    keep = (ctx + cont)[-7:]
    [ref] = score_requests(
        tiny.model, [Request(keep[: len(keep) - len(cont)], cont)], LoglikelihoodConfig(progress=False)
    )
    assert cut.logprob == pytest.approx(ref.logprob, abs=1e-5)
    with pytest.raises(WorkbenchError, match="does not fit"):
        score_requests(tiny.model, [Request(ctx, list(range(10)))], LoglikelihoodConfig(progress=False), max_length=5)


def test_summarize_probes_by_hand():
    df = pd.DataFrame(
        {
            "set": ["probability"] * 4,
            "variant": ["original"] * 4,
            "probe_id": list("abcd"),
            "split": ["dev", "dev", "heldout", "heldout"],
            "prob": [0.5, 0.1, 0.2, 0.0],
            "logprob": [math.log(0.5), math.log(0.1), math.log(0.2), -math.inf],
            "rank": [1, 7, 3, 900],
            "top1": [True, False, False, False],
            "top5": [True, False, True, False],
            "seq_logprob": [-1.0, -3.0, -2.0, -20.0],
        }
    )
    s = summarize_probes(df).set_index("split")
    assert set(s.index) == {"all", "dev", "heldout"}
    assert s.loc["all", "n"] == 4 and s.loc["all", "mean_prob"] == pytest.approx(0.2)
    assert s.loc["dev", "mean_prob"] == pytest.approx(0.3) and s.loc["dev", "median_rank"] == 4
    assert s.loc["heldout", "top1_rate"] == 0 and s.loc["heldout", "top5_rate"] == 0.5
    assert s.loc["all", "top1_rate"] == 0.25 and s.loc["all", "mean_seq_logprob"] == pytest.approx(-6.5)
    sd = pd.Series([0.5, 0.1, 0.2, 0.0]).std()
    assert s.loc["all", "mean_prob_ci_high"] == pytest.approx(0.2 + 1.96 * sd / 2)
    # -inf log-probs are floored at -100 so that one impossible answer does not make the mean -inf.
    assert s.loc["heldout", "mean_logprob"] == pytest.approx((math.log(0.2) - 100) / 2)


def test_probe_errors(tiny):
    with pytest.raises(WorkbenchError, match="probe set is empty"):
        score_probes(tiny, [])
    with pytest.raises(WorkbenchError, match="not a next-token probe"):
        score_probes(tiny, [CompletionProbe("c", "x", ("a",), 1, source="c.jsonl line 1")])
    with pytest.raises(WorkbenchError, match="padding_side"):
        score_probes(tiny, PROBES[:1], LoglikelihoodConfig(padding_side="middle"))
