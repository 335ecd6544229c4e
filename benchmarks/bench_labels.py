"""Generic-label generation throughput against the bound of two raw forward passes per token.

The bound: for the same padded batches, one raw forward of the reinforced model on the original blocks and one
of the baseline on the translated blocks (``inference_mode``, nothing else). ``generate_labels`` adds the label
math (suppression, top-k, exactness check, alphas) and the parquet shards. Target: at least 0.85 of the bound.
Order: warm-up, bound, labels, bound (the two bound passes are averaged, so a load change on the shared machine
hits both sides).
"""

from __future__ import annotations

import time

import torch
from common import REPO, Context, figure, free, load, pack_inputs, spread

TARGET_RATIO = 0.85


def reinforced_stand_in(model, seed: int = 0):
    """The demo's LoRA reinforced model, with random (small) adapter weights standing in for trained ones."""
    from workbench.config import load_config
    from workbench.training import add_lora

    cfg = load_config(REPO / "workbench" / "configs" / "demo.yaml").reinforce
    peft_model = add_lora(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return peft_model.eval()


def padded_batches(aligned, batch_size: int, pad_id: int, device):
    from workbench.model_pair import pad_batch

    out = []
    for i in range(0, len(aligned), batch_size):
        batch = aligned[i : i + batch_size]
        ids, mask = pad_batch([ab.block.input_ids for ab in batch], pad_id, device)
        t_ids, t_mask = pad_batch([ab.trans_ids for ab in batch], pad_id, device)
        out.append((ids, mask, t_ids, t_mask))
    return out


@torch.inference_mode()
def raw_forwards(peft_model, batches) -> float:
    """Seconds for the bound: reinforced forward on the original + baseline forward on the translation."""
    t0 = time.perf_counter()
    for ids, mask, t_ids, t_mask in batches:
        peft_model(input_ids=ids, attention_mask=mask)
        with peft_model.disable_adapter():
            peft_model(input_ids=t_ids, attention_mask=t_mask)
    return time.perf_counter() - t0


def run(ctx: Context) -> dict:
    from workbench.config import load_config
    from workbench.corpus import Block
    from workbench.labels import generate_labels
    from workbench.model_pair import ModelPair
    from workbench.translate import translate_blocks

    lc = load_config(REPO / "workbench" / "configs" / "demo.yaml").labels
    block_size = 64 if ctx.quick else 512
    n_blocks = 2 if ctx.quick else int(ctx.shared.get("label_blocks", 4))
    batch_size = min(lc.batch_size, n_blocks)
    lm = load(ctx)
    tok = lm.tokenizer
    _, amap, blocks = pack_inputs(tok, block_size)
    full = [b for b in blocks if len(b) == block_size]
    chosen = spread(full[:-1], n_blocks)
    warm = [full[-1]]  # a block outside the measured set
    aligned = translate_blocks(chosen, amap, tok, seed=0)
    warm_aligned = translate_blocks(warm, amap, tok, seed=0)
    model = reinforced_stand_in(lm.model)
    pair = ModelPair.from_peft(model)
    pad = tok.pad_token_id
    batches = padded_batches(aligned, batch_size, pad, pair.device)
    out = ctx.work / "labels"
    kw = dict(
        alphas=lc.alphas,
        top_k=lc.top_k,
        batch_size=batch_size,
        shard_blocks=max(lc.shard_blocks, n_blocks),
        pad_id=pad,
        progress=False,
    )
    # warm-up, not timed: a full block through the raw forwards (allocator, lazy kernels), a short one through
    # generate_labels (its code paths)
    raw_forwards(model, padded_batches(warm_aligned, 1, pad, pair.device))
    w = warm[0]
    short_block = Block(w.index, w.input_ids[:32], w.offsets[:32], w.text[: int(w.offsets[31, 1])], w.char_start)
    short = translate_blocks([short_block], amap, tok, seed=0)
    generate_labels(pair, short, ctx.work / "labels_warmup", fingerprint="warm", **kw)
    t_bound1 = raw_forwards(model, batches)
    t0 = time.perf_counter()
    store = generate_labels(pair, aligned, out, fingerprint="bench", **kw)
    t_labels = time.perf_counter() - t0
    t_bound2 = raw_forwards(model, batches)
    t_bound = (t_bound1 + t_bound2) / 2
    n_tokens = sum(len(ab.block) for ab in aligned)
    ratio = t_bound / t_labels
    ctx.shared["labels_dir"] = out
    ctx.shared["labels_tokens"] = n_tokens
    details = {
        "model": ctx.model,
        "blocks": n_blocks,
        "block_size": block_size,
        "batch_size": batch_size,
        "alphas": lc.alphas,
        "top_k": lc.top_k,
        "tokens": n_tokens,
        "labelled_positions": int(len(store.positions)),
        "labels_seconds": round(t_labels, 3),
        "bound_seconds": [round(t_bound1, 3), round(t_bound2, 3)],
        "labels_tokens_per_s": round(n_tokens / t_labels, 1),
        "bound_tokens_per_s": round(n_tokens / t_bound, 1),
        "threads": torch.get_num_threads(),
    }
    del store, pair, model, lm
    free()
    figs = [
        figure(
            "labels.ratio_to_bound",
            "generic-label throughput / two-raw-forward bound",
            round(ratio, 3),
            "ratio",
            TARGET_RATIO,
            ">=",
            f"{details['labels_tokens_per_s']} vs {details['bound_tokens_per_s']} tokens/s, "
            f"{n_blocks} blocks of {block_size}, batch {batch_size}",
        ),
        figure("labels.tokens_per_s", "generic-label throughput", details["labels_tokens_per_s"], "tokens/s"),
    ]
    return {"figures": figs, "details": details}
