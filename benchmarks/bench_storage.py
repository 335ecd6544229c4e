"""Label storage: bytes per token on disk (top-k records and labels, never full logits).

Measures the label folder written by the label benchmark and, when a demo run directory is given, the demo's
(32 blocks, so per-shard overheads weigh less). Target: at most 1% of what full fp16 logits of both models would take.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from common import Context, figure

TARGET_SHARE_OF_FULL = 0.01


def measure(folder: Path) -> dict:
    from workbench.labels import LabelStore

    store = LabelStore(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    sizes = {p.name: p.stat().st_size for p in files}
    blocks_bytes = sum(v for k, v in sizes.items() if k.startswith("blocks-"))
    positions_bytes = sum(v for k, v in sizes.items() if k.startswith("positions-"))
    total = sum(sizes.values())
    tokens = int(sum(len(x) for x in store.blocks["input_ids"]))
    positions = int(len(store.positions))
    # the widest column of any shard: top-k lists, never a vocabulary-wide row
    widest = 0
    for p in files:
        if p.suffix == ".parquet":
            for f in pq.read_schema(p):
                size = getattr(f.type, "list_size", None)
                widest = max(widest, size or 1)
    return {
        "folder": str(folder),
        "tokens": tokens,
        "labelled_positions": positions,
        "bytes": total,
        "blocks_bytes": blocks_bytes,
        "positions_bytes": positions_bytes,
        "files": len(files),
        "bytes_per_token": total / max(tokens, 1),
        "bytes_per_labelled_position": total / max(positions, 1),
        "top_k": store.manifest.get("top_k"),
        "alphas": store.alphas,
        "widest_column": widest,
    }


def run(ctx: Context) -> dict:
    from workbench.models import load_tokenizer

    vocab = len(load_tokenizer(ctx.model))
    full_fp16 = 2 * vocab * 2  # both models' logits at every position, fp16
    stores = {}
    if ctx.shared.get("labels_dir") and (Path(ctx.shared["labels_dir"]) / "manifest.json").is_file():
        stores["benchmark"] = measure(Path(ctx.shared["labels_dir"]))
    demo_dir = ctx.shared.get("demo_run_dir") or ctx.demo_run_dir
    if demo_dir and (Path(demo_dir) / "labels" / "manifest.json").is_file():
        stores["demo"] = measure(Path(demo_dir) / "labels")
    if not stores:
        return {
            "figures": [
                figure(
                    "storage.bytes_per_token",
                    "label storage on disk",
                    None,
                    "bytes/token",
                    round(TARGET_SHARE_OF_FULL * full_fp16),
                    "<=",
                    "no label folder to measure",
                )
            ],
            "details": {},
        }
    main = stores.get("demo") or stores["benchmark"]
    bpt = main["bytes_per_token"]
    no_full = main["widest_column"] < vocab
    figs = [
        figure(
            "storage.bytes_per_token",
            "label storage on disk (top-k, no full logits)",
            round(bpt, 1),
            "bytes/token",
            round(TARGET_SHARE_OF_FULL * full_fp16),
            "<=",
            f"{'demo' if 'demo' in stores else 'benchmark'} labels: {main['tokens']} tokens, top-{main['top_k']}, "
            f"{len(main['alphas'])} alphas; full fp16 logits of both models: {full_fp16} bytes/token",
        ),
        figure(
            "storage.share_of_full_logits",
            "label storage / full fp16 logits of both models",
            round(bpt / full_fp16, 5),
            "ratio",
            TARGET_SHARE_OF_FULL,
            "<=",
            "widest stored column: "
            f"{main['widest_column']} values (vocabulary {vocab}){'' if no_full else ' - FULL LOGITS STORED'}",
        ),
    ]
    return {"figures": figs, "details": {"vocab": vocab, "full_fp16_logits_bytes_per_token": full_fp16, **stores}}
