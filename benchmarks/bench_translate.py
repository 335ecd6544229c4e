"""Translation + alignment throughput on the Harry Potter pack (target: at least 200,000 tokens/s)."""

from __future__ import annotations

import time

from common import Context, figure, median, pack_inputs

TARGET_TOKENS_PER_S = 200_000


def run(ctx: Context) -> dict:
    from workbench.models import load_tokenizer
    from workbench.translate import translate_blocks

    tok = load_tokenizer(ctx.model)
    _, amap, blocks = pack_inputs(tok, 512)
    n_tokens = sum(len(b) for b in blocks)
    aligned = translate_blocks(blocks, amap, tok, seed=0)  # warm-up: regex compile, tokenizer caches
    repeats = 3 if ctx.quick else 9
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        translate_blocks(blocks, amap, tok, seed=0)
        times.append(time.perf_counter() - t0)
    rate = n_tokens / median(times)
    labelled = sum(len(ab.label_positions) for ab in aligned)
    details = {
        "tokens": n_tokens,
        "blocks": len(blocks),
        "block_size": 512,
        "repeats": repeats,
        "seconds_median": round(median(times), 4),
        "seconds_min": round(min(times), 4),
        "tokens_per_s_best": round(n_tokens / min(times)),
        "occurrences": sum(len(ab.occurrences) for ab in aligned),
        "labelled_share": round(labelled / n_tokens, 4),
        "tokenizer": type(tok).__name__,
        "vocab": len(tok),
    }
    figs = [
        figure(
            "translate.tokens_per_s",
            "translation + alignment throughput (HP pack, median)",
            round(rate),
            "tokens/s",
            TARGET_TOKENS_PER_S,
            ">=",
            f"{n_tokens} tokens in {len(blocks)} blocks of 512",
        )
    ]
    return {"figures": figs, "details": details}
