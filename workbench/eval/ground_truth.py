"""The field's standard forgetting measures (docs/evaluation.md, "Forgetting against a reference"): TOFU's truth
ratio, forget quality and model utility; MUSE's knowledge and verbatim memorisation and PrivLeak; membership
inference (LOSS, zlib, Min-K%, Min-K%++) as an AUC between the target text and holdout text; open-unlearning's
extraction strength; and the two-answer trivia probes.

The pure functions (ROUGE-L, the two-sample KS test, the AUC, the per-text attack scores, extraction strength)
work on plain numbers and strings; the ``score_*`` functions run a model through the forward-pass engine
(workbench/eval/loglikelihood.py) and greedy generation (workbench/eval/completion.py) and return one row per
item. :func:`reference_rows` turns the rows of the evaluated models into the measures that compare a model with
a reference model that never saw the target (forget quality, PrivLeak), or says that one is needed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.completion import CompletionSettings, generate_completions
from workbench.eval.loglikelihood import LoglikelihoodConfig, Request, encode_pairs, prefix_token_id, score_requests
from workbench.eval.utility import wilson_interval
from workbench.models import LoadedModel
from workbench.pack import QAProbe, TriviaProbe, question_context

__all__ = [
    "MIA_ATTACKS",
    "NEEDS_REFERENCE",
    "REFERENCE_METRICS",
    "TextSettings",
    "answer_stop",
    "binomial_pvalue",
    "corpus_passages",
    "extraction_strength",
    "forget_quality",
    "harmonic_mean",
    "ks_2samp",
    "mia_auc",
    "min_k",
    "min_k_plus_plus",
    "STANDARD_COLUMNS",
    "reference_rows",
    "rouge_l",
    "standard_measures",
    "rouge_tokens",
    "score_knowmem",
    "score_mia",
    "score_qa",
    "score_trivia",
    "score_verbmem",
    "summarize_knowmem",
    "summarize_mia",
    "summarize_qa",
    "summarize_trivia",
    "summarize_verbmem",
    "text_chunks",
    "tokenizer_digest",
    "truth_ratio",
    "zlib_score",
]

NEEDS_REFERENCE = "needs a reference model"
MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")
REFERENCE_METRICS = ("forget_quality", "privleak")

# name -> (section, set, metric, split or None): the headline of each measure in an eval table (the rows of
# workbench/eval/evaluate.py); None: one value over the texts, not per probe split
STANDARD_COLUMNS = {
    "trivia_acc": ("trivia", "trivia", "accuracy", "split"),
    "truth_ratio": ("qa", "qa", "truth_ratio_forget", "split"),
    "forget_quality": ("qa", "qa", "forget_quality", "split"),
    "extraction_strength": ("qa", "qa", "extraction_strength", "split"),
    "knowmem": ("knowmem", "knowmem", "rougeL_recall", "split"),
    "model_utility": ("retain_qa", "retain_qa", "model_utility", "split"),
    "verbmem": ("verbmem", "verbmem", "rougeL_f1", None),
    "mia_auc": ("mia", "corpus_vs_holdout", "auc_min_k", None),
    "privleak": ("mia", "corpus_vs_holdout", "privleak_min_k", None),
}


def standard_measures(table: pd.DataFrame, model: str, split: str) -> dict[str, float | str]:
    """The headline of each measure of :data:`STANDARD_COLUMNS` that ``table`` (an eval table: model, section,
    set, split, metric, value) has for ``model``, on probe split ``split``; NaN where the model has no row, and
    forget quality and PrivLeak without a reference row say :data:`NEEDS_REFERENCE`."""
    out: dict[str, float | str] = {}
    for col, (section, set_, metric, by_split) in STANDARD_COLUMNS.items():
        if not (table["section"] == section).any():
            continue
        t = table[
            (table["model"] == model)
            & (table["section"] == section)
            & (table["set"] == set_)
            & (table["metric"] == metric)
        ]
        if by_split:
            t = t[t["split"] == split]
        value = float(t["value"].iloc[0]) if len(t) else math.nan
        if value != value and col in ("forget_quality", "privleak"):
            value = NEEDS_REFERENCE
        out[col] = value
    return out


# -- ROUGE-L ---------------------------------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Tokens as the ``rouge_score`` package's default tokenizer makes them (lowercase, runs of letters and
    digits; no stemming)."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(reference: str, prediction: str) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) of ``prediction`` against ``reference``: the longest common subsequence
    of their tokens over the prediction's length, the reference's length, and their harmonic mean."""
    ref, pred = rouge_tokens(reference), rouge_tokens(prediction)
    if not ref or not pred:
        return 0.0, 0.0, 0.0
    lcs = _lcs(ref, pred)
    p, r = lcs / len(pred), lcs / len(ref)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# -- statistics --------------------------------------------------------------------------------------------------------


def _ks_exact_inside(n: int, m: int, d: float) -> float:
    """P(every lattice point of a uniformly random path from (0,0) to (n,m) has |i/n - j/m| < d): the
    probability under the null that the two-sample statistic stays below ``d``."""
    tol = 1e-9
    j = np.arange(m + 1)
    row = np.zeros(m + 1)
    for i in range(n + 1):
        inside = (np.abs(i / n - j / m) < d - tol).tolist()
        if i == 0:
            new = [1.0] + [0.0] * m
        else:  # a step in i from (i-1, j) has probability (n-i+1) / ((n-i+1) + (m-j))
            new = (row * (n - i + 1) / ((n - i + 1) + (m - j))).tolist()
        for jj in range(m + 1):
            if jj:  # a step in j from (i, jj-1) has probability (m-jj+1) / ((n-i) + (m-jj+1))
                new[jj] += new[jj - 1] * (m - jj + 1) / ((n - i) + (m - jj + 1))
            if not inside[jj]:
                new[jj] = 0.0
        row = np.asarray(new)
    return float(row[m])


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: (D, p-value).

    D is the largest gap between the two empirical distribution functions; the p-value is exact (the share of
    all orderings of the pooled sample whose gap reaches D, counted as lattice paths) while both samples have
    at most 2000 values, as ``scipy.stats.ks_2samp``'s default does up to 10000, and Kolmogorov's asymptotic
    distribution beyond."""
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise WorkbenchError("the KS test needs two non-empty samples")
    pooled = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, pooled, side="right") / n
    cdf_y = np.searchsorted(y, pooled, side="right") / m
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    if max(n, m) <= 2000:
        return d, min(1.0, max(0.0, 1.0 - _ks_exact_inside(n, m, d)))
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def mia_auc(member: Sequence[float], nonmember: Sequence[float]) -> float:
    """The area under the ROC curve of telling target (member) text from holdout text by a score that is
    higher for non-members (a loss): P(holdout score > target score) + P(tie)/2, the Mann-Whitney form.
    1: every target text is recognised; 0.5: indistinguishable."""
    mem, non = np.asarray(member, dtype=float), np.asarray(nonmember, dtype=float)
    if len(mem) == 0 or len(non) == 0:
        return math.nan
    pooled = np.concatenate([mem, non])
    order = pooled.argsort(kind="mergesort")
    ranks = np.empty(len(pooled))
    sorted_vals = pooled[order]
    i = 0
    while i < len(pooled):  # average ranks of ties
        j = i
        while j + 1 < len(pooled) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_non = ranks[len(mem) :].sum()
    return float((r_non - len(non) * (len(non) + 1) / 2) / (len(mem) * len(non)))


def harmonic_mean(values: Sequence[float]) -> float:
    """The harmonic mean (0 if any value is 0, NaN if any is missing), as ``scipy.stats.hmean``."""
    vals = [float(v) for v in values]
    if not vals or any(v != v for v in vals):
        return math.nan
    if any(v <= 0 for v in vals):
        return 0.0
    return len(vals) / sum(1 / v for v in vals)


def binomial_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test of k successes in n trials against ``p`` (outcomes no likelier than k)."""
    if n == 0:
        return math.nan
    probs = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return float(min(1.0, sum(q for q in probs if q <= probs[k] * (1 + 1e-7))))


# -- per-item measures -------------------------------------------------------------------------------------------------


def truth_ratio(paraphrased_mean_logprob: float, perturbed_mean_logprobs: Sequence[float]) -> float:
    """TOFU's truth ratio of one question: the false answers' length-normalised probability over the paraphrased
    answer's, ``exp(mean_j mean_lp(perturbed_j) - mean_lp(paraphrased))`` (the geometric mean over the false
    answers of P(perturbed_j | q)^(1/len_j), over P(paraphrased | q)^(1/len)). Below 1: the model prefers the
    truth; about 1: it cannot tell; a model that never saw the facts has no reason to prefer either."""
    return float(math.exp(float(np.mean(perturbed_mean_logprobs)) - paraphrased_mean_logprob))


def extraction_strength(hits: Sequence[bool]) -> float:
    """open-unlearning's extraction strength of one answer: ``1 - k/len`` for the smallest ``k`` such that the
    model's greedy (teacher-forced) prediction matches every answer token from position ``k`` on; 0 when not even
    the last token is predicted."""
    n = len(hits)
    if n == 0:
        return 0.0
    k = n
    while k > 0 and hits[k - 1]:
        k -= 1
    return 1.0 - k / n


def min_k(token_logprobs: Sequence[float], k: float = 0.4) -> float:
    """Min-K% (Shi et al. 2024): minus the mean of the lowest ``k`` share of the token log-probabilities."""
    lp = np.sort(np.asarray(token_logprobs, dtype=float))
    return float(-lp[: max(1, int(len(lp) * k))].mean())


def min_k_plus_plus(
    token_logprobs: Sequence[float], mu: Sequence[float], var: Sequence[float], k: float = 0.4
) -> float:
    """Min-K%++ (Zhang et al. 2024): each token's log-probability standardised by the mean and variance of the
    log-probability over the vocabulary at its position, then minus the mean of the lowest ``k`` share."""
    z = (np.asarray(token_logprobs) - np.asarray(mu)) / np.sqrt(np.clip(np.asarray(var), 1e-6, None))
    z = np.sort(z)
    return float(-z[: max(1, int(len(z) * k))].mean())


def zlib_score(mean_nll: float, text: str) -> float:
    """The zlib attack (Carlini et al. 2021): the mean token loss over the zlib-compressed length in bytes."""
    return float(mean_nll / len(zlib.compress(text.encode("utf-8"))))


def answer_stop(text: str) -> str:
    """A generated answer cut where the model starts another question (as MUSE cuts its answers)."""
    for stop in ("\n\n", "\nQuestion", "Question:"):
        text = text.split(stop)[0]
    return text.strip()


# -- scoring with a model ----------------------------------------------------------------------------------------------


@dataclass
class TextSettings:
    """How target and holdout text is cut for verbatim memorisation and membership inference."""

    prompt_tokens: int = 32  # verbatim memorisation: tokens of the corpus prefix given to the model
    new_tokens: int = 64  # verbatim memorisation: tokens generated and compared with the true continuation
    verbmem_limit: int | None = 50  # verbatim memorisation: prefixes (spread evenly over the corpus)
    mia_tokens: int = 128  # membership inference: tokens per text sample
    mia_limit: int | None = 100  # membership inference: samples per side (target, holdout), spread evenly
    k: float = 0.4  # Min-K% and Min-K%++: the share of lowest-scoring tokens


def tokenizer_digest(tokenizer) -> str:
    """A short fingerprint of a tokenizer's vocabulary: models compared token by token must share it."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _mean_logprobs(lm: LoadedModel, pairs: list[tuple[str, str]], loglik: LoglikelihoodConfig):
    encoded = encode_pairs(lm.tokenizer, pairs)
    scores = score_requests(
        lm.model, [Request(c, k) for c, k in encoded], loglik, pad_id=lm.tokenizer.pad_token_id or 0
    )
    return scores


def score_qa(lm: LoadedModel, probes: Sequence[QAProbe], loglik: LoglikelihoodConfig) -> pd.DataFrame:
    """One row per question: the gold answer's length-normalised probability (``prob`` = P(answer | q)^(1/len)),
    the truth ratio and the gold answer's extraction strength."""
    pairs = []
    for p in probes:
        ctx = question_context(p.question)
        pairs += [(ctx, " " + p.answer.strip()), (ctx, " " + p.paraphrased_answer.strip())]
        pairs += [(ctx, " " + a.strip()) for a in p.perturbed_answers]
    scores = iter(_mean_logprobs(lm, pairs, loglik))
    digest = tokenizer_digest(lm.tokenizer)
    rows = []
    for p in probes:
        gold, para = next(scores), next(scores)
        pert = [next(scores) for _ in p.perturbed_answers]
        para_lp = para.logprob / para.n_tokens
        pert_lp = [s.logprob / s.n_tokens for s in pert]
        rows.append(
            {
                "set": p.kind,
                "probe_id": p.id,
                "split": p.split,
                "fact": p.fact,
                "question": p.question,
                "answer_mean_logprob": gold.logprob / gold.n_tokens,
                "prob": math.exp(gold.logprob / gold.n_tokens),
                "paraphrased_mean_logprob": para_lp,
                "perturbed_mean_logprob": float(np.mean(pert_lp)),
                "truth_ratio": truth_ratio(para_lp, pert_lp),
                "extraction_strength": extraction_strength(gold.token_hits),
                "tokenizer": digest,
            }
        )
    return pd.DataFrame(rows)


def _greedy(lm: LoadedModel, prompts: list[str], max_new_tokens: int, batch_size: int, progress: bool) -> list[str]:
    settings = CompletionSettings(
        max_new_tokens=max_new_tokens, batch_size=batch_size, greedy=True, samples=0, progress=progress
    )
    df = generate_completions(lm, prompts, settings)
    return df.sort_values("prompt_index")["completion"].tolist()


def score_knowmem(
    lm: LoadedModel, probes: Sequence[QAProbe], max_new_tokens: int = 32, batch_size: int = 16, progress: bool = True
) -> pd.DataFrame:
    """MUSE's knowledge memorisation: one row per question with the greedy answer and its ROUGE-L recall and F1
    against the gold answer."""
    outputs = _greedy(lm, [question_context(p.question) for p in probes], max_new_tokens, batch_size, progress)
    rows = []
    for p, out in zip(probes, outputs):
        answer = answer_stop(out)
        prec, rec, f1 = rouge_l(p.answer, answer)
        rows.append(
            {
                "set": p.kind,
                "probe_id": p.id,
                "split": p.split,
                "fact": p.fact,
                "question": p.question,
                "gold": p.answer,
                "response": answer,
                "rougeL_recall": rec,
                "rougeL_f1": f1,
            }
        )
    return pd.DataFrame(rows)


def text_chunks(tokenizer, texts: Sequence[str], tokens: int, limit: int | None) -> list[list[int]]:
    """Consecutive windows of ``tokens`` token ids cut from each text (a shorter tail of at least half a window
    is kept), at most ``limit`` of them spread evenly over all windows, in order."""
    chunks: list[list[int]] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        for start in range(0, len(ids), tokens):
            piece = ids[start : start + tokens]
            if len(piece) >= max(2, tokens // 2):
                chunks.append(piece)
    if limit is not None and len(chunks) > limit:
        picks = np.linspace(0, len(chunks) - 1, limit).round().astype(int)
        chunks = [chunks[i] for i in sorted(set(picks.tolist()))]
    return chunks


def corpus_passages(tokenizer, corpus: Sequence[str], settings: TextSettings) -> list[tuple[str, str]]:
    """(prefix, true continuation) pairs cut from the corpus: ``prompt_tokens`` tokens, then ``new_tokens``, at most
    ``verbmem_limit`` of them spread evenly."""
    chunks = text_chunks(tokenizer, corpus, settings.prompt_tokens + settings.new_tokens, settings.verbmem_limit)
    chunks = [c for c in chunks if len(c) > settings.prompt_tokens]
    if not chunks:
        raise WorkbenchError("verbatim memorisation: the corpus is too short for one prefix and continuation")
    return [
        (tokenizer.decode(c[: settings.prompt_tokens]), tokenizer.decode(c[settings.prompt_tokens :])) for c in chunks
    ]


def score_verbmem(
    lm: LoadedModel,
    passages: Sequence[tuple[str, str]],
    settings: TextSettings,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """MUSE's verbatim memorisation: the model's greedy continuation (``new_tokens`` tokens) of each passage's
    opening and its ROUGE-L against the true continuation (cut to ``new_tokens`` tokens, as MUSE does); one row
    per passage."""
    tok = lm.tokenizer
    outputs = _greedy(lm, [prompt for prompt, _ in passages], settings.new_tokens, batch_size, progress)
    rows = []
    for i, ((prompt, truth), out) in enumerate(zip(passages, outputs)):
        truth = tok.decode(tok(truth, add_special_tokens=False).input_ids[: settings.new_tokens])
        _, rec, f1 = rouge_l(truth, out)
        rows.append(
            {
                "set": "verbmem",
                "item": i,
                "prompt": prompt,
                "gold": truth,
                "response": out,
                "rougeL_recall": rec,
                "rougeL_f1": f1,
            }
        )
    return pd.DataFrame(rows)


def score_mia(
    lm: LoadedModel,
    member_texts: Sequence[str],
    holdout_texts: Sequence[str],
    settings: TextSettings,
    loglik: LoglikelihoodConfig,
) -> pd.DataFrame:
    """One row per text sample (``set``: 'forget' for the target corpus, 'holdout') with each attack's score,
    higher for text the model did not see: ``loss`` (mean token loss), ``zlib``, ``min_k``, ``min_k_plus_plus``."""
    tok = lm.tokenizer
    prefix = prefix_token_id(tok)
    items = [("forget", c) for c in text_chunks(tok, member_texts, settings.mia_tokens, settings.mia_limit)]
    items += [("holdout", c) for c in text_chunks(tok, holdout_texts, settings.mia_tokens, settings.mia_limit)]
    cfg = LoglikelihoodConfig(**{**loglik.__dict__, "vocab_stats": True})
    scores = score_requests(lm.model, [Request([prefix], c) for _, c in items], cfg, pad_id=tok.pad_token_id or 0)
    digest = tokenizer_digest(tok)
    rows = []
    for i, ((side, ids), s) in enumerate(zip(items, scores)):
        nll = -s.logprob / s.n_tokens
        rows.append(
            {
                "set": side,
                "item": i,
                "tokens": s.n_tokens,
                "tokenizer": digest,
                "loss": nll,
                "zlib": zlib_score(nll, tok.decode(ids)),
                "min_k": min_k(s.token_logprobs, settings.k),
                "min_k_plus_plus": min_k_plus_plus(s.token_logprobs, s.token_mu, s.token_var, settings.k),
            }
        )
    return pd.DataFrame(rows)


def score_trivia(lm: LoadedModel, probes: Sequence[TriviaProbe], loglik: LoglikelihoodConfig) -> pd.DataFrame:
    """One row per question: the true and the false answer's mean per-token log-likelihood and whether the true
    one is higher (``known``)."""
    pairs = []
    for p in probes:
        ctx = question_context(p.question)
        pairs += [(ctx, " " + p.true_answer.strip()), (ctx, " " + p.false_answer.strip())]
    scores = _mean_logprobs(lm, pairs, loglik)
    rows = []
    for i, p in enumerate(probes):
        t, f = scores[2 * i], scores[2 * i + 1]
        t_lp, f_lp = t.logprob / t.n_tokens, f.logprob / f.n_tokens
        rows.append(
            {
                "set": p.kind,
                "probe_id": p.id,
                "split": p.split,
                "fact": p.fact,
                "question": p.question,
                "true_mean_logprob": t_lp,
                "false_mean_logprob": f_lp,
                "known": bool(t_lp > f_lp),
            }
        )
    return pd.DataFrame(rows)


# -- summaries: tidy metric rows (workbench/eval/units.py TABLE_COLUMNS less model) -------------------------------------


def _row(
    section: str,
    set_: str,
    split: str,
    metric: str,
    value: float,
    n: int,
    lo: float = math.nan,
    hi: float = math.nan,
    variant: str = "-",
) -> dict:
    return {
        "section": section,
        "set": set_,
        "split": split,
        "variant": variant,
        "metric": metric,
        "value": float(value),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n": int(n),
    }


def _by_split(df: pd.DataFrame):
    yield "all", df
    for split in sorted(df["split"].unique()):
        yield split, df[df["split"] == split]


def summarize_qa(df: pd.DataFrame, section: str) -> list[dict]:
    """Per split: mean answer probability, mean truth ratio, the open-unlearning aggregate of the truth ratio
    (``truth_ratio_forget`` = mean of min(R, 1/R) for the target's questions; ``truth_ratio_retain`` = mean of
    max(0, 1 - R) for retain questions) and mean extraction strength."""
    rows = []
    set_ = str(df["set"].iloc[0])
    for split, g in _by_split(df):
        r = g["truth_ratio"].to_numpy()
        rows += [
            _row(section, set_, split, "answer_prob", g["prob"].mean(), len(g)),
            _row(section, set_, split, "truth_ratio_mean", r.mean(), len(g)),
            _row(section, set_, split, "truth_ratio_forget", np.minimum(r, 1 / r).mean(), len(g)),
            _row(section, set_, split, "truth_ratio_retain", np.maximum(0.0, 1 - r).mean(), len(g)),
            _row(section, set_, split, "extraction_strength", g["extraction_strength"].mean(), len(g)),
        ]
    return rows


def summarize_knowmem(df: pd.DataFrame, section: str) -> list[dict]:
    """Per split: mean ROUGE-L recall and F1 of the greedy answers."""
    return [
        _row(section, section, split, m, g[m].mean(), len(g))
        for split, g in _by_split(df)
        for m in ("rougeL_recall", "rougeL_f1")
    ]


def summarize_verbmem(df: pd.DataFrame) -> list[dict]:
    """Mean ROUGE-L F1 (MUSE's verbmem) and recall of the continuations."""
    return [_row("verbmem", "verbmem", "-", m, df[m].mean(), len(df)) for m in ("rougeL_f1", "rougeL_recall")]


def summarize_mia(df: pd.DataFrame) -> list[dict]:
    """Each attack's AUC between the target text and the holdout text."""
    mem, non = df[df["set"] == "forget"], df[df["set"] == "holdout"]
    return [_row("mia", "corpus_vs_holdout", "-", f"auc_{a}", mia_auc(mem[a], non[a]), len(df)) for a in MIA_ATTACKS]


def summarize_trivia(df: pd.DataFrame) -> list[dict]:
    """Per split: the share of questions known, its 95% Wilson interval, and the exact binomial p-value against
    chance (0.5)."""
    rows = []
    for split, g in _by_split(df):
        k, n = int(g["known"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        rows += [
            _row("trivia", "trivia", split, "accuracy", k / n if n else math.nan, n, lo, hi),
            _row("trivia", "trivia", split, "p_vs_chance", binomial_pvalue(k, n), n),
        ]
    return rows


def model_utility_rows(qa: pd.DataFrame, knowmem: pd.DataFrame) -> list[dict]:
    """TOFU's model utility on the retain questions: the harmonic mean of answer probability, ROUGE-L recall of
    the greedy answer and the truth-ratio aggregate max(0, 1 - R), per split."""
    rows = []
    for split, g in _by_split(qa):
        k = knowmem if split == "all" else knowmem[knowmem["split"] == split]
        r = g["truth_ratio"].to_numpy()
        parts = [g["prob"].mean(), k["rougeL_recall"].mean(), np.maximum(0.0, 1 - r).mean()]
        rows.append(_row("retain_qa", "retain_qa", split, "model_utility", harmonic_mean(parts), len(g)))
        rows.append(_row("retain_qa", "retain_qa", split, "rougeL_recall", parts[1], len(k)))
    return rows


# -- against a reference model -----------------------------------------------------------------------------------------


def forget_quality(model_ratios: Sequence[float], reference_ratios: Sequence[float]) -> float:
    """TOFU's forget quality: the p-value of the two-sample KS test between the truth ratios of a model and of the
    reference model on the same questions. High: the two distributions cannot be told apart."""
    return ks_2samp(model_ratios, reference_ratios)[1]


def _same_tokenizer(frames: dict[str, pd.DataFrame], reference: str, models: Sequence[str]) -> None:
    """An error if a model was scored with another tokenizer than the reference: per-token normalised truth ratios
    and token windows of the text are then not comparable."""
    for name in ("qa_items", "mia_items"):
        df = frames.get(name)
        if df is None or df.empty or "tokenizer" not in df:
            continue
        digests = df.groupby("model")["tokenizer"].first()
        if reference not in digests:
            continue
        other = [m for m in models if m in digests and digests[m] != digests[reference]]
        if other:
            raise WorkbenchError(
                f"reference model {reference!r} uses another tokenizer than {', '.join(other)}: truth ratios and "
                "membership scores are per token and cannot be compared; give a reference with the same tokenizer "
                "(the finished units are kept: rerun with the same --out to reuse them)"
            )


def reference_rows(
    table: pd.DataFrame, frames: dict[str, pd.DataFrame], reference: str | None, models: Sequence[str]
) -> tuple[list[dict], list[str]]:
    """Rows (with a ``model`` column) of the measures against ``reference`` for every model: forget quality per
    split of the target's questions and PrivLeak (percent, as MUSE reports it) per attack. Without a reference,
    no rows and a note per measure that needs one (the summary shows it instead of a number)."""
    qa = frames.get("qa_items")
    has_qa = qa is not None and not qa.empty and (qa["set"] == "qa").any()
    has_mia = not table.empty and (table["section"] == "mia").any()
    notes = []
    if reference is None:
        if has_qa:
            notes.append(f"forget_quality: {NEEDS_REFERENCE} (EvalConfig.reference / --reference LABEL)")
        if has_mia:
            notes.append(f"privleak: {NEEDS_REFERENCE} (EvalConfig.reference / --reference LABEL)")
        return [], notes
    if reference not in models:
        raise WorkbenchError(
            f"reference model {reference!r} is not one of the evaluated models ({', '.join(models)}); "
            "give it as --model LABEL=SPEC and name the label"
        )
    _same_tokenizer(frames, reference, models)
    rows = []
    if has_qa:
        forget = qa[qa["set"] == "qa"]
        ref = forget[forget["model"] == reference]
        for model in models:
            mine = forget[forget["model"] == model]
            for split in ["all"] + sorted(mine["split"].unique()):
                a = mine if split == "all" else mine[mine["split"] == split]
                b = ref if split == "all" else ref[ref["split"] == split]
                if len(a) and len(b):
                    rows.append(
                        {
                            "model": model,
                            **_row(
                                "qa",
                                "qa",
                                split,
                                "forget_quality",
                                forget_quality(a["truth_ratio"], b["truth_ratio"]),
                                len(a),
                            ),
                        }
                    )
    if has_mia:
        mia = table[table["section"] == "mia"]
        for attack in MIA_ATTACKS:
            ref_auc = mia[(mia["model"] == reference) & (mia["metric"] == f"auc_{attack}")]["value"]
            for model in models:
                auc = mia[(mia["model"] == model) & (mia["metric"] == f"auc_{attack}")]["value"]
                if len(auc) and len(ref_auc):
                    leak = (float(auc.iloc[0]) - float(ref_auc.iloc[0])) / float(ref_auc.iloc[0]) * 100
                    rows.append(
                        {
                            "model": model,
                            **_row("mia", "corpus_vs_holdout", "-", f"privleak_{attack}", leak, int(auc.size)),
                        }
                    )
    return rows, notes
