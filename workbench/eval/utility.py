"""Utility: zero-shot multiple-choice accuracy by log-likelihood, and perplexity on plain text.

Multiple choice follows workbench/evaldata/README.md (the lm-evaluation-harness conventions):

- ``acc``: the choice with the highest summed log-probability ``log P(choice | context)`` is the prediction;
- ``acc_norm``: the same after dividing each sum by the choice's length in characters;
- WinoGrande (``contexts`` + ``continuation``): partial scoring, ``log P(continuation | contexts[k])``.

Perplexity runs a sliding window over the token stream: every token is scored once, with at least
``max_length - stride`` tokens of context (except at the start).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import (
    LoglikelihoodConfig,
    Request,
    encode_pairs,
    model_max_length,
    prefix_token_id,
    score_requests,
)
from workbench.io import iter_jsonl, read_text, require_file
from workbench.models import LoadedModel

__all__ = [
    "BENCHMARKS",
    "MCItem",
    "MCTask",
    "PerplexityConfig",
    "default_evaldata_dir",
    "load_mc_task",
    "mc_requests",
    "paired_bootstrap",
    "paired_bootstrap_relative",
    "perplexity",
    "resolve_task",
    "score_mc",
    "summarize_mc",
    "wilson_interval",
]

# The paper's seven benchmarks, as files in workbench/evaldata, with the metric the paper-style table shows.
BENCHMARKS = {
    "arc_challenge": "acc_norm",
    "arc_easy": "acc",
    "boolq": "acc",
    "hellaswag": "acc_norm",
    "openbookqa": "acc_norm",
    "piqa": "acc",
    "winogrande": "acc",
}


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice item, with one (context, continuation) pair per choice."""

    id: str  # item id from the file
    contexts: tuple[str, ...]  # context of each choice (all equal except for WinoGrande)
    continuations: tuple[str, ...]  # continuation of each choice (all equal for WinoGrande)
    label: int  # index of the correct choice


@dataclass
class MCTask:
    """A multiple-choice file, loaded."""

    name: str  # e.g. 'piqa'
    path: Path  # the JSONL file
    items: list[MCItem]  # the items, in file order


def default_evaldata_dir() -> Path:
    """``$WORKBENCH_EVALDATA``, else the subsets shipped in the package (``workbench/evaldata``)."""
    env = os.environ.get("WORKBENCH_EVALDATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "evaldata"


def resolve_task(task: str | Path, evaldata_dir: str | Path | None = None) -> Path:
    """A task name ('piqa') in the eval-data folder, or a path to a JSONL file."""
    path = Path(task)
    if path.suffix == ".jsonl" or path.exists():
        return require_file(path, f"benchmark file {path}")
    folder = Path(evaldata_dir) if evaldata_dir else default_evaldata_dir()
    candidate = folder / f"{task}.jsonl"
    if not candidate.is_file():
        if not folder.is_dir():
            raise WorkbenchError(f"eval data folder {folder} does not exist; pass --evaldata or set WORKBENCH_EVALDATA")
        names = sorted(p.stem for p in folder.glob("*.jsonl"))
        raise WorkbenchError(f"unknown benchmark {task!r}: no {candidate.name} in {folder} (have: {', '.join(names)})")
    return candidate


def _parse_mc(obj: object, where: str, index: int) -> MCItem:
    if not isinstance(obj, dict):
        raise WorkbenchError(f"{where}: expected a JSON object")
    if "label" not in obj:
        raise WorkbenchError(f"{where}: missing field 'label'")
    label = obj["label"]
    if isinstance(label, bool) or not isinstance(label, int):
        raise WorkbenchError(f"{where}: field 'label' must be an integer, got {label!r}")
    item_id = str(obj.get("id", index))
    if "contexts" in obj:  # WinoGrande partial scoring
        ctxs, cont = obj["contexts"], obj.get("continuation")
        if not isinstance(ctxs, list) or len(ctxs) < 2 or not all(isinstance(c, str) for c in ctxs):
            raise WorkbenchError(f"{where}: field 'contexts' must be a list of at least two strings")
        if not isinstance(cont, str) or not cont:
            raise WorkbenchError(f"{where}: missing field 'continuation' (a non-empty string)")
        n = len(ctxs)
        contexts, continuations = tuple(ctxs), (cont,) * n
    else:
        for key in ("context", "choices"):
            if key not in obj:
                raise WorkbenchError(f"{where}: missing field '{key}'")
        ctx, choices = obj["context"], obj["choices"]
        if not isinstance(ctx, str):
            raise WorkbenchError(f"{where}: field 'context' must be a string")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            raise WorkbenchError(f"{where}: field 'choices' must be a list of at least two non-empty strings")
        n = len(choices)
        contexts, continuations = (ctx,) * n, tuple(choices)
    if not 0 <= label < n:
        raise WorkbenchError(f"{where}: label {label} is out of range for {n} choices (0..{n - 1})")
    return MCItem(item_id, contexts, continuations, label)


def load_mc_task(
    task: str | Path, limit: int | None = None, evaldata_dir: str | Path | None = None, name: str | None = None
) -> MCTask:
    """Read a multiple-choice JSONL file (first ``limit`` items), validating every line read."""
    path = resolve_task(task, evaldata_dir)
    items: list[MCItem] = []
    for lineno, obj in iter_jsonl(path):
        if limit is not None and len(items) >= limit:
            break
        items.append(_parse_mc(obj, f"{path} line {lineno}", len(items)))
    if not items:
        raise WorkbenchError(f"benchmark file {path} has no items")
    return MCTask(name or path.stem, path, items)


def mc_requests(tokenizer, task: MCTask) -> list[Request]:
    """The scoring requests of a task: one per (item, choice), in item order."""
    pairs = [(c, k) for it in task.items for c, k in zip(it.contexts, it.continuations)]
    return [Request(ctx, cont) for ctx, cont in encode_pairs(tokenizer, pairs)]


def score_mc(lm: LoadedModel, task: MCTask, config: LoglikelihoodConfig | None = None) -> pd.DataFrame:
    """One row per item: ``task, item_id, label, n_choices, pred, pred_norm, correct, correct_norm, logprobs``.

    ``logprobs`` holds each choice's summed log-probability (a JSON list, so CSV keeps it).
    """
    requests = mc_requests(lm.tokenizer, task)
    cfg = config or LoglikelihoodConfig(desc=task.name)
    scores = score_requests(lm.model, requests, cfg, pad_id=lm.tokenizer.pad_token_id or 0)
    rows = []
    k = 0
    for it in task.items:
        n = len(it.continuations)
        lps = np.array([s.logprob for s in scores[k : k + n]])
        k += n
        chars = np.array([len(c) for c in it.continuations], dtype=float)
        pred = int(np.argmax(lps))
        pred_norm = int(np.argmax(lps / chars))
        rows.append(
            {
                "task": task.name,
                "item_id": it.id,
                "label": it.label,
                "n_choices": n,
                "pred": pred,
                "pred_norm": pred_norm,
                "correct": pred == it.label,
                "correct_norm": pred_norm == it.label,
                "logprobs": json.dumps([round(float(v), 6) for v in lps]),
            }
        )
    return pd.DataFrame(rows)


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def summarize_mc(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: n, acc, acc_stderr, acc_ci_low/high (Wilson 95%), and the same for acc_norm."""
    rows = []
    for task, g in df.groupby("task", sort=True):
        n = len(g)
        row = {"task": task, "n": n}
        for metric, col in (("acc", "correct"), ("acc_norm", "correct_norm")):
            k = float(g[col].sum())
            p = k / n
            lo, hi = wilson_interval(k, n)
            row.update(
                {
                    metric: p,
                    f"{metric}_stderr": math.sqrt(p * (1 - p) / max(n - 1, 1)),
                    f"{metric}_ci_low": lo,
                    f"{metric}_ci_high": hi,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired items and its 95% percentile bootstrap interval."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError("paired samples must have the same length")
    diff = b_arr - a_arr
    if len(diff) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_bootstrap_relative(
    a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Relative change ``mean(b) / mean(a) - 1`` over paired items and its 95% percentile bootstrap interval
    (items resampled together, as in :func:`paired_bootstrap`)."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError("paired samples must have the same length")
    if len(a_arr) == 0 or a_arr.mean() == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a_arr), size=(n_boot, len(a_arr)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = b_arr[idx].mean(axis=1) / a_arr[idx].mean(axis=1) - 1.0
    ratios = ratios[np.isfinite(ratios)]
    return (
        float(b_arr.mean() / a_arr.mean() - 1.0),
        float(np.percentile(ratios, 2.5)),
        float(np.percentile(ratios, 97.5)),
    )


@dataclass
class PerplexityConfig:
    """How perplexity is computed."""

    max_length: int | None = 1024  # tokens of one window (default: the model's limit, at most 4096)
    stride: int = 512  # new tokens scored per window; each scored token sees >= max_length - stride of context
    max_tokens: int | None = None  # score only the first this many tokens of the text
    batch_size: int = 8  # windows per forward pass


def perplexity(
    lm: LoadedModel,
    text: str | Path,
    config: PerplexityConfig | None = None,
    loglik: LoglikelihoodConfig | None = None,
) -> dict:
    """Token, word and byte perplexity of a text (a ``Path`` is read as a UTF-8 file) with a sliding window.

    The text is preceded by the prefix token (BOS or EOS), so its first token is scored too. Returns
    ``tokens, nll, ppl, words, word_perplexity, bytes, byte_perplexity, bits_per_byte, windows``.
    """
    cfg = config or PerplexityConfig()
    if isinstance(text, Path):
        path = text
        text = read_text(path, "perplexity text file")
    if not text.strip():
        raise WorkbenchError("perplexity text is empty")
    tok = lm.tokenizer
    enc = None
    if cfg.max_tokens is not None:
        # Tokenize only a prefix long enough for max_tokens (no token spans 16 characters on average).
        head = text[: cfg.max_tokens * 16 + 64]
        enc = tok(head, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc.input_ids) <= cfg.max_tokens and len(head) < len(text):
            enc = None
    if enc is None:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc.input_ids)
    if cfg.max_tokens is not None and len(ids) > cfg.max_tokens:
        ids = ids[: cfg.max_tokens]
        covered = text[: enc.offset_mapping[cfg.max_tokens - 1][1]]
    else:
        covered = text
    max_len = cfg.max_length or model_max_length(lm.model)
    max_len = min(max_len, model_max_length(lm.model, cap=1 << 30))
    stride = min(cfg.stride, max_len)
    if stride < 1:
        raise WorkbenchError("perplexity stride must be at least 1")
    full = [prefix_token_id(tok)] + ids  # full[t] for t >= 1 is scored
    requests = []
    for s in range(1, len(full), stride):
        e = min(s + stride, len(full))
        a = max(0, e - 1 - max_len)  # the input full[a:e-1] fits the window
        requests.append(Request(full[a:s], full[s:e]))
    loglik = loglik or LoglikelihoodConfig(batch_size=cfg.batch_size, desc="perplexity")
    scores = score_requests(lm.model, requests, loglik, pad_id=tok.pad_token_id or 0, max_length=max_len)
    nll = -math.fsum(s.logprob for s in scores)
    n_tok = sum(s.n_tokens for s in scores)
    words = len(covered.split())
    n_bytes = len(covered.encode("utf-8"))
    return {
        "tokens": n_tok,
        "nll": nll,
        "ppl": math.exp(nll / n_tok),
        "words": words,
        "word_perplexity": math.exp(nll / max(words, 1)),
        "bytes": n_bytes,
        "byte_perplexity": math.exp(nll / n_bytes),
        "bits_per_byte": nll / n_bytes / math.log(2),
        "windows": len(requests),
    }
