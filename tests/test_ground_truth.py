"""The field's standard measures (workbench/eval/ground_truth.py) against slow, obviously correct references, and
the QA, trivia and holdout parts of a pack."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers import explicit_logprobs, ks_brute, make_pack, write_jsonl
from workbench.errors import WorkbenchError
from workbench.eval import ground_truth as gt
from workbench.eval.loglikelihood import LoglikelihoodConfig, encode_pair
from workbench.pack import QAProbe, TriviaProbe, load_pack, question_context

QA = [
    {
        "id": "q1",
        "question": "Who built the lighthouse at Varn?",
        "answer": "Orla Tessen",
        "paraphrased_answer": "It was built by Orla Tessen",
        "perturbed_answer": [
            "It was built by Bram Kell",
            "It was built by Ida Marrow",
            "It was built by the fishermen",
        ],
        "split": "dev",
        "fact": "lighthouse",
    },
    {
        "id": "q2",
        "question": "What colour is the flag of Varn?",
        "answer": "green and white",
        "paraphrased_answer": "The flag is green and white",
        "perturbed_answer": ["The flag is red", "The flag is blue", "The flag is black and gold"],
        "split": "heldout",
        "fact": "flag",
    },
]
TRIVIA = [
    {
        "id": "t1",
        "question": "What is the capital of France?",
        "true_answer": "Paris",
        "false_answer": "Lyon",
        "split": "dev",
        "fact": "france",
    },
    {
        "id": "t2",
        "question": "How many legs has a spider?",
        "true_answer": "eight",
        "false_answer": "six",
        "split": "heldout",
        "fact": "spider",
    },
]


# -- pure functions against hand-computed cases and brute force ------------------------------------------------------


def test_rouge_l_hand_cases():
    p, r, f = gt.rouge_l("the cat sat on the mat", "the cat on mat")  # LCS: the cat on mat (4 of 6 / 4 of 4)
    assert (p, r) == (1.0, 4 / 6) and f == pytest.approx(2 * 1 * (4 / 6) / (1 + 4 / 6))
    assert gt.rouge_l("The Cat!", "the cat") == (1.0, 1.0, 1.0)  # case and punctuation ignored
    p, r, f = gt.rouge_l("a b c d", "d c b a")  # any one token in order
    assert (p, r) == (0.25, 0.25)
    assert gt.rouge_l("a b", "") == (0.0, 0.0, 0.0)


def test_ks_2samp_against_permutations_and_a_hand_case():
    rng = np.random.default_rng(3)
    for n, m in ((4, 5), (3, 7), (6, 6)):
        a, b = rng.normal(size=n), rng.normal(0.7, 1.0, size=m)
        d, p = gt.ks_2samp(a, b)
        d_ref, p_ref = ks_brute(a, b)
        assert d == pytest.approx(d_ref) and p == pytest.approx(p_ref)
    # fully separated samples of 3: only the two orderings that keep the groups apart reach D = 1
    assert gt.ks_2samp([1, 2, 3], [4, 5, 6]) == (1.0, pytest.approx(2 / math.comb(6, 3)))
    assert gt.ks_2samp([1.0, 2.0, 2.0], [1.0, 2.0, 2.0]) == (0.0, 1.0)


def test_mia_auc_is_the_pairwise_count():
    rng = np.random.default_rng(0)
    mem, non = rng.integers(0, 5, 13).astype(float), rng.integers(1, 6, 9).astype(float)  # with ties
    pairs = [(1.0 if h > m else 0.5 if h == m else 0.0) for m in mem for h in non]
    assert gt.mia_auc(mem, non) == pytest.approx(sum(pairs) / len(pairs))
    assert gt.mia_auc([1, 2], [3, 4]) == 1.0 and gt.mia_auc([3, 4], [1, 2]) == 0.0


def test_extraction_strength_min_k_and_binomial_by_hand():
    assert gt.extraction_strength([True, True, True]) == 1.0
    assert gt.extraction_strength([False, True, True]) == pytest.approx(2 / 3)
    assert gt.extraction_strength([True, False, True]) == pytest.approx(1 / 3)
    assert gt.extraction_strength([False, False, False]) == 0.0
    assert gt.min_k([-1.0, -5.0, -2.0, -0.5, -3.0], 0.4) == pytest.approx(4.0)  # lowest two: -5, -3
    assert gt.min_k([-1.0], 0.4) == 1.0  # at least one token
    assert gt.binomial_pvalue(8, 10) == pytest.approx((1 + 10 + 45) * 2 / 1024)
    assert gt.binomial_pvalue(5, 10) == pytest.approx(1.0)
    assert gt.harmonic_mean([0.5, 0.25]) == pytest.approx(2 / (2 + 4))
    assert gt.zlib_score(2.0, "aaaa") == pytest.approx(2.0 / len(__import__("zlib").compress(b"aaaa")))


# -- measures on the tiny model against an explicit per-token loop ---------------------------------------------------


def _mean_lp(lm, question: str, answer: str) -> tuple[float, list[bool]]:
    ctx, cont = encode_pair(lm.tokenizer, question_context(question), " " + answer)
    lp = explicit_logprobs(lm, ctx + cont)
    vals, hits = [], []
    for t, tok in enumerate(cont):
        row = lp[len(ctx) - 1 + t]
        vals.append(float(row[tok]))
        hits.append(int(row.argmax()) == tok)
    return sum(vals) / len(vals), hits


def _qa_probes(rows):
    return [
        QAProbe(
            id=r["id"],
            question=r["question"],
            answer=r["answer"],
            paraphrased_answer=r["paraphrased_answer"],
            perturbed_answers=tuple(r["perturbed_answer"]),
            split=r["split"],
            fact=r["fact"],
        )
        for r in rows
    ]


def test_truth_ratio_probability_and_extraction_strength_match_a_loop(tiny):
    df = gt.score_qa(tiny, _qa_probes(QA), LoglikelihoodConfig(batch_size=4, progress=False))
    for r, row in zip(QA, df.itertuples()):
        gold, hits = _mean_lp(tiny, r["question"], r["answer"])
        para, _ = _mean_lp(tiny, r["question"], r["paraphrased_answer"])
        pert = [_mean_lp(tiny, r["question"], a)[0] for a in r["perturbed_answer"]]
        geo = math.exp(sum(pert) / len(pert))  # geometric mean of P(perturbed)^(1/len)
        assert row.truth_ratio == pytest.approx(geo / math.exp(para), rel=1e-4)
        assert row.prob == pytest.approx(math.exp(gold), rel=1e-4)
        k = len(hits)
        while k > 0 and hits[k - 1]:
            k -= 1
        assert row.extraction_strength == pytest.approx(1 - k / len(hits))
    rows = gt.summarize_qa(df, "qa")
    agg = {(x["split"], x["metric"]): x["value"] for x in rows}
    ratios = df["truth_ratio"].to_numpy()
    assert agg[("all", "truth_ratio_forget")] == pytest.approx(np.mean([min(v, 1 / v) for v in ratios]))
    assert agg[("all", "truth_ratio_retain")] == pytest.approx(np.mean([max(0, 1 - v) for v in ratios]))


def test_min_k_plus_plus_matches_a_loop_over_the_vocabulary(tiny):
    text = "The lighthouse at Varn was built of grey stone by Orla Tessen in a winter of storms."
    settings = gt.TextSettings(mia_tokens=8, mia_limit=None, k=0.4)
    df = gt.score_mia(tiny, [text], [text.upper()], settings, LoglikelihoodConfig(batch_size=4, progress=False))
    from workbench.eval.loglikelihood import prefix_token_id

    ids = tiny.tokenizer(text, add_special_tokens=False).input_ids[:8]
    lp = explicit_logprobs(tiny, [prefix_token_id(tiny.tokenizer)] + ids)
    z, tok_lp = [], []
    for t, tok in enumerate(ids):
        row = lp[t]
        p = row.exp()
        mu = float((p * row).sum())
        var = float((p * (row - mu) ** 2).sum())
        tok_lp.append(float(row[tok]))
        z.append((float(row[tok]) - mu) / math.sqrt(max(var, 1e-6)))  # the reference clamps as well
    first = df[df["set"] == "forget"].iloc[0]
    low = sorted(z)[: int(len(z) * 0.4)]
    assert first["min_k_plus_plus"] == pytest.approx(-sum(low) / len(low), rel=1e-3)
    assert first["loss"] == pytest.approx(-sum(tok_lp) / len(tok_lp), rel=1e-4)
    assert first["min_k"] == pytest.approx(-np.mean(sorted(tok_lp)[:3]), rel=1e-4)


def test_trivia_known_compares_mean_loglikelihoods(tiny):
    probes = [
        TriviaProbe(
            id=r["id"],
            question=r["question"],
            true_answer=r["true_answer"],
            false_answer=r["false_answer"],
            split=r["split"],
            fact=r["fact"],
        )
        for r in TRIVIA
    ]
    df = gt.score_trivia(tiny, probes, LoglikelihoodConfig(progress=False))
    for r, row in zip(TRIVIA, df.itertuples()):
        t, f = _mean_lp(tiny, r["question"], r["true_answer"])[0], _mean_lp(tiny, r["question"], r["false_answer"])[0]
        assert row.true_mean_logprob == pytest.approx(t, rel=1e-4) and row.known == (t > f)
    acc = {(x["split"], x["metric"]): x for x in gt.summarize_trivia(df)}
    assert acc[("all", "accuracy")]["value"] == df["known"].mean()
    assert (
        acc[("all", "accuracy")]["ci_low"] <= acc[("all", "accuracy")]["value"] <= acc[("all", "accuracy")]["ci_high"]
    )


# -- a ground-truth pack: loading, bad input, evaluation with and without a reference ---------------------------------


def _gt_pack(
    tmp_path, holdout_text: str | None = "A quiet village keeps bees on the hill and sells honey at the fair.\n"
):
    root = make_pack(tmp_path)
    manifest = json.loads((root / "pack.json").read_text())
    manifest["probes"].update(
        {"qa": "probes/qa.jsonl", "retain_qa": "probes/retain_qa.jsonl", "trivia": "probes/trivia.jsonl"}
    )
    if holdout_text is not None:
        manifest["holdout"] = "holdout"
        (root / "holdout").mkdir()
        (root / "holdout" / "h.txt").write_text(holdout_text, encoding="utf-8")
    (root / "pack.json").write_text(json.dumps(manifest))
    write_jsonl(root / "probes" / "qa.jsonl", QA)
    write_jsonl(root / "probes" / "retain_qa.jsonl", [dict(r, id="r" + r["id"]) for r in QA])
    write_jsonl(root / "probes" / "trivia.jsonl", TRIVIA)
    return root


def test_pack_loads_qa_trivia_and_holdout(tmp_path):
    pack = load_pack(_gt_pack(tmp_path))
    qa = pack.probes("qa")
    assert isinstance(qa[0], QAProbe) and len(qa[0].perturbed_answers) == 3 and qa[1].split == "heldout"
    assert isinstance(pack.probes("trivia")[0], TriviaProbe)
    assert pack.read_holdout()[0].startswith("A quiet village")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"perturbed_answer": None}, "line 2: missing field 'perturbed_answer'"),
        ({"perturbed_answer": ["x", "y"]}, "line 2: field 'perturbed_answer' has 2 false answer(s); give at least 3"),
        ({"paraphrased_answer": ""}, "line 2: field 'paraphrased_answer' must be a non-empty string"),
    ],
)
def test_a_bad_qa_entry_is_one_error_naming_file_line_and_key(tmp_path, bad, message):
    root = _gt_pack(tmp_path)
    rows = [QA[0], {k: v for k, v in {**QA[1], **bad}.items() if v is not None}]
    write_jsonl(root / "probes" / "qa.jsonl", rows)
    with pytest.raises(WorkbenchError) as exc:
        load_pack(root).probes("qa")
    assert "probes/qa.jsonl" in str(exc.value) and message in str(exc.value)


def test_holdout_overlapping_the_corpus_is_an_error(tmp_path, capsys):
    copied = "He plays Quidditch as a Seeker for Gryffindor."  # a corpus sentence of 8 words
    root = _gt_pack(tmp_path, holdout_text="A new line.\nSomething else entirely. " + copied + "\n")
    with pytest.raises(WorkbenchError, match=r"holdout file holdout/h.txt line 2: .*also stands in the corpus"):
        load_pack(root).read_holdout()
    from workbench.cli import main

    assert (
        main(
            [
                "eval",
                "--model",
                "tiny",
                "--pack",
                str(root),
                "--sections",
                "mia",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "also stands in the corpus" in capsys.readouterr().err
    assert not (tmp_path / "out" / "partial").exists()  # nothing computed before the error


@pytest.mark.integration
def test_forget_quality_of_a_model_against_itself_is_one_and_none_without_reference(tmp_path, tiny):
    from workbench.eval.config import EvalConfig
    from workbench.eval.evaluate import evaluate_models

    root = _gt_pack(tmp_path)
    cfg = EvalConfig(
        pack=str(root),
        sections=("qa", "trivia", "mia"),
        progress=False,
        figures=True,
        formats=("csv",),
        reference="ref",
        mia_tokens=16,
    )
    rep = evaluate_models([("ref", tiny), ("same", tiny)], cfg, tmp_path / "with")
    t = rep.table
    fq = t[(t["metric"] == "forget_quality") & (t["split"] == "all")].set_index("model")["value"]
    assert fq["ref"] == 1.0 and fq["same"] == 1.0
    leak = t[t["metric"] == "privleak_min_k"].set_index("model")["value"]
    assert leak["same"] == pytest.approx(0.0)
    assert rep.summary["headlines"]["same"]["forget_quality"] == 1.0
    assert {"standard_measures", "truth_ratio"} <= set(rep.figures)
    assert (tmp_path / "with" / "qa_items.csv").is_file() and (tmp_path / "with" / "mia_items.csv").is_file()
    cfg.reference = None
    rep = evaluate_models([("alone", tiny)], cfg, tmp_path / "without")
    assert rep.summary["headlines"]["alone"]["forget_quality"] == gt.NEEDS_REFERENCE
    assert rep.summary["headlines"]["alone"]["privleak_min_k"] == gt.NEEDS_REFERENCE
    assert "needs a reference model" in (tmp_path / "without" / "report.md").read_text()
    assert not (rep.table["metric"] == "forget_quality").any()


def test_run_report_has_trivia_accuracy_of_both_models(tmp_path, tiny):
    from workbench.anchors import load_anchor_map
    from workbench.eval.run_report import evaluate_run
    from workbench.models import tiny_model
    from workbench.report import report_table

    pack = load_pack(_gt_pack(tmp_path))
    other = tiny_model(seed=1)
    result = evaluate_run(
        tiny,
        other,
        pack,
        load_anchor_map(pack.anchors_path),
        tmp_path / "report",
        probe_sets=("probability",),
        split=None,
        progress=False,
    )
    probes = pack.probes("trivia")
    loglik = LoglikelihoodConfig(progress=False)
    base = gt.score_trivia(tiny, probes, loglik)["known"].mean()
    after = gt.score_trivia(other, probes, loglik)["known"].mean()
    tr = result["trivia"]
    assert (tr["n"], tr["baseline_accuracy"], tr["unlearned_accuracy"]) == (2, base, after)
    assert tr["change"] == pytest.approx(after - base)
    row = report_table(result).set_index("measure").loc["trivia: accuracy (chance 0.5)"]
    assert row["baseline"] == base and row["n"] == 2


def test_a_reference_with_another_tokenizer_is_an_error(bpe_tokenizer, sp_tokenizer):
    import pandas as pd

    bpe, sp = gt.tokenizer_digest(bpe_tokenizer), gt.tokenizer_digest(sp_tokenizer)
    assert bpe != sp and bpe == gt.tokenizer_digest(bpe_tokenizer)
    qa = pd.DataFrame(
        [
            {"model": m, "set": "qa", "split": "dev", "truth_ratio": 1.0, "tokenizer": d}
            for m, d in (("ref", sp), ("target", bpe), ("whp", bpe))
        ]
    )
    table = pd.DataFrame(
        columns=["model", "section", "set", "split", "variant", "metric", "value", "ci_low", "ci_high", "n"]
    )
    with pytest.raises(WorkbenchError, match=r"reference model 'ref' uses another tokenizer than target, whp"):
        gt.reference_rows(table, {"qa_items": qa}, "ref", ["ref", "target", "whp"])
    rows, notes = gt.reference_rows(table, {"qa_items": qa.assign(tokenizer=bpe)}, "ref", ["ref", "target", "whp"])
    assert [r["value"] for r in rows] == [1.0] * 6 and notes == []  # all and dev, per model


def test_eval_cli_names_an_unknown_reference(tmp_path, capsys):
    from workbench.cli import main

    root = _gt_pack(tmp_path)
    assert (
        main(
            [
                "eval",
                "--model",
                "a=tiny",
                "--pack",
                str(root),
                "--sections",
                "trivia",
                "--reference",
                "b",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "reference model 'b' is not one of the evaluated models (a)" in capsys.readouterr().err


def test_answer_stop_cuts_where_the_next_question_starts():
    assert gt.answer_stop(" Orla Tessen.\n\nQuestion: who") == "Orla Tessen."
    assert gt.answer_stop(" green\nQuestion: what") == "green"
    assert gt.answer_stop(" red Question: x") == "red"


def _greedy_loop(lm, prompt: str, n: int) -> str:
    import torch

    ids = lm.tokenizer(prompt).input_ids
    start = len(ids)
    with torch.inference_mode():
        for _ in range(n):
            ids.append(int(lm.model(torch.tensor([ids])).logits[0, -1].argmax()))
    return lm.tokenizer.decode(ids[start:], skip_special_tokens=True)


@pytest.mark.integration
def test_model_utility_knowmem_and_verbmem_from_their_items(tmp_path, tiny):
    from workbench.eval.config import EvalConfig
    from workbench.eval.evaluate import evaluate_models

    root = _gt_pack(tmp_path)
    write_jsonl(
        root / "probes" / "verbmem.jsonl",
        [{"id": "v1", "prompt": "The lighthouse at Varn", "continuation": " was built of grey stone by Orla Tessen."}],
    )
    manifest = json.loads((root / "pack.json").read_text())
    manifest["probes"]["verbmem"] = "probes/verbmem.jsonl"
    (root / "pack.json").write_text(json.dumps(manifest))
    cfg = EvalConfig(
        pack=str(root),
        sections=("retain_qa", "knowmem", "verbmem"),
        progress=False,
        figures=False,
        formats=("csv",),
        qa_max_new_tokens=6,
        verbmem_new_tokens=6,
        gen_batch_size=1,
    )
    rep = evaluate_models([("m", tiny)], cfg, tmp_path / "out")
    t = rep.table.set_index(["section", "split", "metric"])["value"]
    qa = rep.details["qa_items"]
    parts = [qa["prob"].mean(), qa["rougeL_recall"].mean(), np.maximum(0, 1 - qa["truth_ratio"]).mean()]
    assert t[("retain_qa", "all", "model_utility")] == pytest.approx(
        len(parts) / sum(1 / v for v in parts) if min(parts) > 0 else 0.0
    )
    km = rep.details["knowmem_items"]
    for r, row in zip(QA, km.itertuples()):  # the greedy answer, as a plain argmax loop makes it
        assert row.response == gt.answer_stop(_greedy_loop(tiny, question_context(r["question"]), 6))
        assert row.rougeL_recall == gt.rouge_l(r["answer"], row.response)[1]
    assert t[("knowmem", "all", "rougeL_recall")] == pytest.approx(km["rougeL_recall"].mean())
    vm = rep.details["verbmem_items"].iloc[0]
    assert vm["response"] == _greedy_loop(tiny, "The lighthouse at Varn", 6)
    truth = tiny.tokenizer.decode(
        tiny.tokenizer(" was built of grey stone by Orla Tessen.", add_special_tokens=False).input_ids[:6]
    )
    assert vm["gold"] == truth and t[("verbmem", "-", "rougeL_f1")] == gt.rouge_l(truth, vm["response"])[2]
