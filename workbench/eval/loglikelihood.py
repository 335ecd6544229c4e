"""Batched log-likelihood of continuations given contexts: the one forward-pass engine behind every metric.

A *request* is a pair of token-id lists (context, continuation). The model reads ``context + continuation[:-1]``
and we read off ``log P(continuation | context)`` token by token. Requests are sorted by length so that batches
hold sequences of similar length, padded (left by default), and the results come back in request order.

With left padding every continuation ends at the last position of its row, so only the last ``k`` positions
need logits (``logits_to_keep``): the vocabulary projection, which dominates small models, is skipped for the
context. Position ids are taken from the attention mask, so padding never shifts positions.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workbench.errors import WorkbenchError

__all__ = [
    "Batch",
    "Request",
    "Score",
    "LoglikelihoodConfig",
    "encode_pair",
    "encode_pairs",
    "model_max_length",
    "plan_batches",
    "prefix_token_id",
    "run_batch",
    "score_requests",
]


@dataclass
class LoglikelihoodConfig:
    """How requests are batched and run."""

    batch_size: int = 32  # most sequences per forward pass
    max_batch_tokens: int = 32768  # most (rows x padded length) per forward pass, to bound memory
    max_length: int | None = (
        None  # longest input; longer contexts lose their start (default: the model's limit, at most 4096)
    )
    padding_side: str = "left"  # 'left' (computes logits only where needed) or 'right'
    progress: bool = True  # show a tqdm bar
    desc: str = "scoring"  # label of the bar
    vocab_stats: bool = False  # also the mean and variance of log p over the vocabulary at each continuation position


@dataclass
class Request:
    """One continuation to score."""

    context_ids: list[int]  # the context tokens (non-empty: use a prefix token for an empty context)
    continuation_ids: list[int]  # the tokens whose log-probability is wanted (non-empty)
    query_ids: tuple[int, ...] = ()  # token ids whose log-prob and rank at the first continuation position are reported


@dataclass
class Score:
    """The result of one request."""

    logprob: float  # sum of the continuation's token log-probs
    token_logprobs: list[float]  # log-prob of each continuation token
    greedy: bool  # whether every continuation token is the argmax at its position
    query_logprobs: list[float] = field(default_factory=list)  # log-prob of each query id at the first position
    query_ranks: list[int] = field(default_factory=list)  # 1-based rank of each query id in the vocabulary there
    token_hits: list[bool] = field(
        default_factory=list
    )  # whether each continuation token is the argmax at its position
    token_mu: list[float] = field(default_factory=list)  # E_v[log p(v)] at each position (with vocab_stats)
    token_var: list[float] = field(default_factory=list)  # Var_v[log p(v)] under p at each position (with vocab_stats)

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)


@dataclass
class Batch:
    """Padded tensors for one forward pass and where each row's continuation lies."""

    input_ids: torch.Tensor  # [batch, pos]
    attention_mask: torch.Tensor  # [batch, pos]
    position_ids: torch.Tensor  # [batch, pos]
    indices: list[int]  # request index of each row
    continuations: list[list[int]]  # continuation ids of each row (after truncation)
    queries: list[tuple[int, ...]]  # query ids of each row
    input_lengths: list[int]  # unpadded input length of each row
    padding_side: str  # 'left' or 'right'

    @property
    def n_tokens(self) -> int:
        """Non-padding input tokens."""
        return int(sum(self.input_lengths))


def prefix_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that stands for an empty context: BOS when the tokenizer adds one, else EOS (as lm-eval does)."""
    probe = tokenizer("a").input_ids
    if tokenizer.bos_token_id is not None and probe and probe[0] == tokenizer.bos_token_id:
        return tokenizer.bos_token_id
    for tid in (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id):
        if tid is not None:
            return int(tid)
    raise WorkbenchError("the tokenizer has no BOS, EOS or pad token to start an empty context with")


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]]
) -> list[tuple[list[int], list[int]]]:
    """Token ids of (context, continuation) pairs, as lm-eval splits them.

    Trailing whitespace of the context moves to the continuation. The pair is encoded whole and the context's
    tokens are cut off the front, so the continuation gets the tokens it has in running text; where the
    tokenizer merges across the boundary, the continuation is encoded on its own instead. An empty context
    becomes the prefix token.
    """
    fixed: list[tuple[str, str]] = []
    for ctx, cont in pairs:
        stripped = ctx.rstrip()
        if stripped != ctx:
            cont = ctx[len(stripped) :] + cont
            ctx = stripped
        if not cont:
            raise WorkbenchError(f"empty continuation for context {ctx[-60:]!r}")
        fixed.append((ctx, cont))
    contexts = [c for c, _ in fixed]
    wholes = [c + k for c, k in fixed]
    nonempty = [c for c in contexts if c]
    ctx_enc = iter(tokenizer(nonempty).input_ids if nonempty else [])
    whole_enc = tokenizer(wholes).input_ids
    prefix = None
    out: list[tuple[list[int], list[int]]] = []
    for (ctx, cont), whole in zip(fixed, whole_enc):
        if ctx:
            c_ids = list(next(ctx_enc))
            if len(whole) > len(c_ids) and whole[: len(c_ids)] == c_ids:
                k_ids = list(whole[len(c_ids) :])
            else:
                k_ids = tokenizer(cont, add_special_tokens=False).input_ids
        else:
            if prefix is None:
                prefix = prefix_token_id(tokenizer)
            c_ids = [prefix]
            k_ids = tokenizer(cont, add_special_tokens=False).input_ids
        if not k_ids:
            raise WorkbenchError(f"continuation {cont!r} encodes to no tokens")
        out.append((c_ids, k_ids))
    return out


def encode_pair(tokenizer: PreTrainedTokenizerBase, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of one (context, continuation) pair; see :func:`encode_pairs`."""
    return encode_pairs(tokenizer, [(context, continuation)])[0]


def model_max_length(model: PreTrainedModel, cap: int = 4096) -> int:
    """The model's longest input (from its config), at most ``cap``."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return min(value, cap)
    return min(2048, cap)


_SIGNATURES: dict[type, set[str]] = {}


def _forward_args(model: PreTrainedModel) -> set[str]:
    cls = type(model)
    if cls not in _SIGNATURES:
        _SIGNATURES[cls] = set(inspect.signature(model.forward).parameters)
    return _SIGNATURES[cls]


def _truncate(req: Request, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, continuation ids) with the input at most ``max_length`` long (context cut from the left)."""
    ctx, cont = req.context_ids, req.continuation_ids
    if not ctx or not cont:
        raise WorkbenchError("a scoring request needs a non-empty context and continuation")
    if len(cont) > max_length:
        raise WorkbenchError(f"a continuation of {len(cont)} tokens does not fit the model's {max_length}-token window")
    whole = (ctx + cont)[-(max_length + 1) :]
    return whole[:-1], cont


def plan_batches(requests: Sequence[Request], config: LoglikelihoodConfig, pad_id: int, max_length: int) -> list[Batch]:
    """Sort requests by input length (longest first) and pad them into batches."""
    if config.padding_side not in ("left", "right"):
        raise WorkbenchError(f"padding_side must be 'left' or 'right', got {config.padding_side!r}")
    prepared = [_truncate(r, max_length) for r in requests]
    order = sorted(range(len(requests)), key=lambda i: (-len(prepared[i][0]), i))
    batches: list[Batch] = []
    start = 0
    while start < len(order):
        width = len(prepared[order[start]][0])  # the longest row of this batch
        rows = max(1, min(config.batch_size, config.max_batch_tokens // max(width, 1)))
        idx = order[start : start + rows]
        start += rows
        batches.append(_pad(idx, prepared, requests, pad_id, width, config.padding_side))
    return batches


def _pad(idx: list[int], prepared, requests, pad_id: int, width: int, side: str) -> Batch:
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    lengths = []
    for row, i in enumerate(idx):
        inp = prepared[i][0]
        n = len(inp)
        lengths.append(n)
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        ids[row, sl] = torch.tensor(inp, dtype=torch.long)
        mask[row, sl] = 1
    # Positions count real tokens only, so left padding does not shift them.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(
        ids,
        mask,
        pos,
        list(idx),
        [prepared[i][1] for i in idx],
        [tuple(requests[i].query_ids) for i in idx],
        lengths,
        side,
    )


def forward_logits(model: PreTrainedModel, batch: Batch, keep: int | None = None) -> torch.Tensor:
    """Logits of one batch, ``[batch, pos, vocab]``, or only the last ``keep`` positions when given."""
    args = _forward_args(model)
    device = next(model.parameters()).device
    kwargs = {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}
    if "position_ids" in args:
        kwargs["position_ids"] = batch.position_ids.to(device)
    if "use_cache" in args:
        kwargs["use_cache"] = False
    if keep is not None and "logits_to_keep" in args:
        kwargs["logits_to_keep"] = keep
    logits = model(**kwargs).logits
    if keep is not None and logits.shape[1] > keep:
        logits = logits[:, -keep:]
    return logits


def run_batch(model: PreTrainedModel, batch: Batch, vocab_stats: bool = False) -> list[Score]:
    """Score one padded batch; the scores follow the batch's rows. ``vocab_stats``: also the mean and variance
    of the log-probability over the vocabulary, weighted by the model's distribution, at each position (Min-K%++)."""
    cont_lens = [len(c) for c in batch.continuations]
    k = max(cont_lens)
    rows = len(cont_lens)
    # Continuations are laid out right-aligned in k slots: row r uses slots k - n_r .. k - 1.
    targets = torch.zeros((rows, k), dtype=torch.long)
    valid = torch.zeros((rows, k), dtype=torch.bool)
    for r, cont in enumerate(batch.continuations):
        targets[r, k - len(cont) :] = torch.tensor(cont, dtype=torch.long)
        valid[r, k - len(cont) :] = True
    if batch.padding_side == "left":
        # Every row ends at the last position, so its continuation is predicted by the last k positions.
        sel = forward_logits(model, batch, k)  # [batch, k, vocab]
    else:
        logits = forward_logits(model, batch)  # [batch, pos, vocab]
        idx = torch.zeros((rows, k), dtype=torch.long)
        for r, (length, n) in enumerate(zip(batch.input_lengths, cont_lens)):
            idx[r] = torch.arange(length - k, length).clamp(min=length - n)
        idx = idx.to(logits.device)
        sel = logits.gather(1, idx[:, :, None].expand(-1, -1, logits.shape[-1]))  # [batch, k, vocab]
    sel = sel.float()
    targets = targets.to(sel.device)
    valid = valid.to(sel.device)
    lse = torch.logsumexp(sel, dim=-1)  # [batch, k]
    tok_lp = sel.gather(-1, targets[:, :, None])[:, :, 0] - lse  # [batch, k]
    hit = (sel.argmax(-1) == targets) | ~valid  # [batch, k]
    greedy = hit.all(-1).tolist()
    hits_cpu = hit.cpu()
    tok_lp_cpu = tok_lp.cpu()
    if vocab_stats:
        logp = sel - lse[:, :, None]  # [batch, k, vocab]
        p = logp.exp()
        mu = (p * logp).sum(-1)  # [batch, k]
        var = (p * (logp - mu[:, :, None]).square()).sum(-1)  # centred: E[x^2] - mu^2 cancels in float32
        mu_cpu, var_cpu = mu.cpu(), var.cpu()
    scores: list[Score] = []
    for r, n in enumerate(cont_lens):
        lps = tok_lp_cpu[r, k - n :].tolist()
        q_lp: list[float] = []
        q_rank: list[int] = []
        if batch.queries[r]:
            first = sel[r, k - n]  # [vocab], logits at the first continuation position
            q = torch.tensor(batch.queries[r], device=first.device)
            q_vals = first[q]  # [n_query]
            q_lp = (q_vals - lse[r, k - n]).tolist()
            q_rank = ((first[None, :] > q_vals[:, None]).sum(-1) + 1).tolist()
        score = Score(float(math.fsum(lps)), lps, bool(greedy[r]), q_lp, q_rank, hits_cpu[r, k - n :].tolist())
        if vocab_stats:
            score.token_mu, score.token_var = mu_cpu[r, k - n :].tolist(), var_cpu[r, k - n :].tolist()
        scores.append(score)
    return scores


@torch.inference_mode()
def score_requests(
    model: PreTrainedModel,
    requests: Sequence[Request],
    config: LoglikelihoodConfig | None = None,
    pad_id: int = 0,
    max_length: int | None = None,
) -> list[Score]:
    """Score every request; results are in request order.

    ``pad_id`` only fills padded positions, which the attention mask hides, so any id works.
    """
    config = config or LoglikelihoodConfig()
    if not requests:
        return []
    limit = max_length or config.max_length or model_max_length(model)
    batches = plan_batches(requests, config, pad_id, limit)
    out: list[Score | None] = [None] * len(requests)
    bar = tqdm(total=len(requests), desc=config.desc, disable=not config.progress or len(batches) < 2, leave=False)
    for batch in batches:
        for i, score in zip(batch.indices, run_batch(model, batch, config.vocab_stats)):
            out[i] = score
        bar.update(len(batch.indices))
    bar.close()
    return out  # type: ignore[return-value]


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
