"""Generic labels: ``argmax(v_base(translated) - alpha * ReLU(v_reinf(original) - v_base(translated)))``.

For each aligned position the stored inspection record holds the baseline's top-k tokens on the translated
text (after suppression) with the reinforced logits at those tokens, and the reinforced model's top-k tokens
with the baseline logits at those. That is enough to recompute the label for any alpha without a model:

*Exactness.* For any token ``g = v_b - alpha * relu(v_r - v_b) <= v_b``. Tokens outside the baseline's top-k
have ``v_b <= b_k`` (the k-th largest baseline logit). So if the best generic score among the top-k tokens is
``>= b_k``, no token outside can beat it and the recomputed label is exact; otherwise it is flagged inexact.
Labels computed during generation are always exact (inexact rows fall back to the full vocabulary).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.io import atomic_write, atomic_write_json, read_json
from workbench.model_pair import ModelPair, generic_scores, pad_batch  # generic_scores: re-exported
from workbench.models import with_small_heap
from workbench.rundir import LABELS_MANIFEST, label_shard
from workbench.translate import AlignedBlock

__all__ = [
    "BlockLabels",
    "generic_scores",
    "generic_labels_full",
    "labels_from_topk",
    "labels_at",
    "compute_block_labels",
    "compute_batch_labels",
    "generate_labels",
    "LabelStore",
    "alpha_column",
]

IGNORE = -100


def alpha_column(alpha: float) -> str:
    """Column name of the labels for ``alpha`` (``label_a5``, ``label_a0.5``)."""
    return f"label_a{float(alpha):g}"


def generic_labels_full(v_base: torch.Tensor, v_reinf: torch.Tensor, alpha: float) -> torch.Tensor:
    """Reference argmax over the full vocabulary. v_base, v_reinf: [pos, vocab] -> [pos]."""
    return generic_scores(v_base, v_reinf, alpha).argmax(-1)


def labels_from_topk(
    base_ids: np.ndarray, base_vals: np.ndarray, reinf_at_base: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Recompute labels from stored top-k records. Inputs: [n, k]. Returns (labels [n], exact [n] bool)."""
    g = generic_scores(base_vals, reinf_at_base, alpha)
    best = g.argmax(-1)
    rows = np.arange(len(g))
    exact = g[rows, best] >= base_vals.min(-1)
    return base_ids[rows, best], exact


def labels_at(positions: pd.DataFrame, arrays: dict, alpha: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """The labels of the rows of ``positions`` (a label store's positions table, or some of its rows, with their
    top-k ``arrays``) at ``alpha``: (labels, exact, stored). At a stored alpha, the labels the labels stage stored
    (full vocabulary, what a run trains on; all exact); at any other, recomputed from the top-k
    (:func:`labels_from_topk`; ``exact`` says where the top-k vouches for the label)."""
    col = alpha_column(alpha)
    if col in positions.columns:
        return positions[col].to_numpy(), np.ones(len(positions), dtype=bool), True
    lab, exact = labels_from_topk(arrays["base_ids"], arrays["base_vals"], arrays["reinf_at_base"], float(alpha))
    return lab, exact, False


@dataclass
class BlockLabels:
    """Labels and inspection records of one block; arrays over its ``n`` labelled positions."""

    block_index: int
    positions: np.ndarray  # [n] original positions t (logits at t predict token t+1)
    trans_positions: np.ndarray  # [n] aligned translated positions; -1 at rule-5 inner positions
    next_ids: np.ndarray  # [n] the original next token
    labels: dict[float, np.ndarray]  # alpha -> [n] generic label
    base_ids: np.ndarray  # [n, k] baseline top-k on the translated text (the original at inner positions), suppressed
    base_vals: np.ndarray  # [n, k]
    reinf_at_base: np.ndarray  # [n, k] reinforced logits at those tokens
    reinf_ids: np.ndarray  # [n, k] reinforced top-k on the original text
    reinf_vals: np.ndarray  # [n, k]
    base_at_reinf: np.ndarray  # [n, k] baseline (translated) logits at those tokens
    gain_next: np.ndarray  # [n] reinforced minus baseline logit of the original next token


def _suppressed_cells(ab: AlignedBlock, tpos: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Rule 4 as (row, token) cells among rows at translated positions ``tpos``: row i, token x for every
    suppression entry (start, x) with ``tpos[i] >= start`` (its logit becomes the row's mean)."""
    if not ab.suppress:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sup = np.asarray(ab.suppress, dtype=np.int64).reshape(-1, 2)
    sup = sup[sup[:, 1] < vocab]
    entry, row = np.nonzero(tpos[None, :] >= sup[:, :1])
    return row, sup[entry, 1]


def compute_block_labels(
    ab: AlignedBlock,
    v_reinf: torch.Tensor,
    v_base_trans: torch.Tensor,
    alphas: Sequence[float],
    top_k: int = 32,
    v_base_orig: torch.Tensor | None = None,
) -> BlockLabels:
    """Labels for one block. v_reinf: [pos, vocab] on the original; v_base_trans: [trans_pos, vocab] on the
    translation; v_base_orig: [pos, vocab], the baseline on the original, needed only for rule-5 inner positions."""
    return compute_batch_labels(
        [ab], v_reinf[None], v_base_trans[None], alphas, top_k, None if v_base_orig is None else v_base_orig[None]
    )[0]


def compute_batch_labels(
    batch: Sequence[AlignedBlock],
    v_reinf: torch.Tensor,
    v_base_trans: torch.Tensor,
    alphas: Sequence[float],
    top_k: int = 32,
    v_base_orig: torch.Tensor | None = None,
) -> list[BlockLabels]:
    """Labels for a batch of blocks in one pass (a few large tensor operations and three device-to-host copies,
    whatever the batch size). v_reinf: [batch, pos, vocab] on the right-padded originals; v_base_trans:
    [batch, trans_pos, vocab] on the right-padded translations; v_base_orig: [batch, pos, vocab], the baseline
    on the originals, used at the rule-5 inner positions of blocks that have them (required then). The inputs
    are left unchanged: only the labelled rows of the baseline are copied (suppression writes into the copy);
    the reinforced logits are read in place (top-k over every row, then the labelled rows picked).

    Rows are ordered: every block's aligned positions, then every block's inner positions; each block's
    output is put back in position order.
    """
    n_b, width, vocab = v_reinf.shape
    t_width = v_base_trans.shape[1]
    dev = v_reinf.device
    pos = [ab.label_positions for ab in batch]
    tpos = [ab.orig_to_trans[p] for ab, p in zip(batch, pos)]
    ipos = [ab.inner_positions for ab in batch]
    counts, i_counts = [len(p) for p in pos], [len(q) for q in ipos]
    n_main = sum(counts)
    if sum(i_counts) and v_base_orig is None:
        raise ValueError("blocks with inner positions need v_base_orig (the baseline's logits on the original text)")
    vr_flat = v_reinf.reshape(n_b * width, vocab)
    all_pos = [i * width + p for i, p in enumerate(pos)] + [i * width + q for i, q in enumerate(ipos)]
    r_rows = torch.as_tensor(np.concatenate(all_pos).astype(np.int64), device=dev)
    b_rows = np.concatenate([i * t_width + tp for i, tp in enumerate(tpos)]).astype(np.int64)
    vb = v_base_trans.reshape(n_b * t_width, vocab)[torch.as_tensor(b_rows, device=v_base_trans.device)]  # [n, vocab]
    if sum(i_counts):
        o_rows = np.concatenate([i * width + q for i, q in enumerate(ipos)]).astype(np.int64)
        vb_inner = v_base_orig.reshape(n_b * width, vocab)[torch.as_tensor(o_rows, device=v_base_orig.device)]
        vb = torch.cat([vb, vb_inner.to(vb.device, vb.dtype)])
    next_np = np.concatenate(
        [ab.block.input_ids[p + 1] for ab, p in zip(batch, pos)]
        + [ab.block.input_ids[q + 1] for ab, q in zip(batch, ipos)]
    ).astype(np.int64)
    next_ids = torch.as_tensor(next_np, device=dev)
    gain = vr_flat[r_rows, next_ids] - vb.gather(-1, next_ids[:, None].to(vb.device))[:, 0].to(
        dev
    )  # before suppression
    cells = [_suppressed_cells(ab, tp, vocab) for ab, tp in zip(batch, tpos)]
    offsets = np.cumsum([0] + counts[:-1])
    i_offsets = n_main + np.cumsum([0] + i_counts[:-1])
    sup_rows = [r + o for (r, _), o in zip(cells, offsets)]
    sup_toks = [t for _, t in cells]
    for ab, o in zip(batch, i_offsets):  # rule 5: the anchor's own continuation and its variants
        for r, toks in enumerate(ab.inner_suppress):
            toks = [x for x in toks if x < vocab]
            sup_rows.append(np.full(len(toks), o + r, dtype=np.int64))
            sup_toks.append(np.asarray(toks, dtype=np.int64))
    sup_rows = np.concatenate(sup_rows) if sup_rows else np.zeros(0, dtype=np.int64)
    if len(sup_rows):
        sup_tok = torch.as_tensor(np.concatenate(sup_toks), device=vb.device)
        mean = vb.mean(-1)  # of the rows before any suppression
        sup_rows_t = torch.as_tensor(sup_rows, device=vb.device)
        vb[sup_rows_t, sup_tok] = mean[sup_rows_t]
    k = min(top_k, vocab)
    b_vals, b_ids = vb.topk(k, dim=-1)
    r_at_b = vr_flat[r_rows[:, None], b_ids.to(dev)]  # [n, k] without copying whole rows
    r_vals, r_ids = (t[r_rows] for t in vr_flat.topk(k, dim=-1))
    b_at_r = vb.gather(-1, r_ids.to(vb.device))
    floats = torch.stack(
        [x.float().cpu() for x in (b_vals, r_at_b, r_vals, b_at_r)]
    ).numpy()  # one copy each for floats,
    ids = torch.stack([b_ids.cpu(), r_ids.cpu()]).numpy()  # ids
    gain_np = gain.float().cpu().numpy()  # and the gains
    bv, rb = floats[0], floats[1]
    bi = ids[0]
    labels = {}
    for a in alphas:
        lab, exact = labels_from_topk(bi, bv, rb, float(a))
        if not exact.all():  # rare: fall back to the full vocabulary for those rows
            rows = torch.as_tensor(np.nonzero(~exact)[0], device=vb.device)
            lab[~exact] = (
                generic_labels_full(vb[rows], vr_flat[r_rows[rows.to(dev)]].to(vb.device), float(a)).cpu().numpy()
            )
        labels[float(a)] = lab.astype(np.int64)
    all_tpos = np.concatenate(tpos + [np.full(c, -1, dtype=np.int64) for c in i_counts])
    all_p = np.concatenate(pos + list(ipos)).astype(np.int64)
    out = []
    for i, ab in enumerate(batch):
        rows = np.concatenate(
            [np.arange(offsets[i], offsets[i] + counts[i]), np.arange(i_offsets[i], i_offsets[i] + i_counts[i])]
        ).astype(np.int64)
        rows = rows[np.argsort(all_p[rows], kind="stable")]
        out.append(
            BlockLabels(
                ab.block.index,
                all_p[rows],
                all_tpos[rows].astype(np.int64),
                next_np[rows],
                {a: lab[rows] for a, lab in labels.items()},
                bi[rows].astype(np.int32),
                bv[rows].astype(np.float32),
                rb[rows].astype(np.float32),
                ids[1][rows].astype(np.int32),
                floats[2][rows].astype(np.float32),
                floats[3][rows].astype(np.float32),
                gain_np[rows].astype(np.float32),
            )
        )
    return out


def _fixed_list(arr: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def _shard_tables(aligned: Sequence[AlignedBlock], results: Sequence[BlockLabels], alphas: Sequence[float]):
    blocks = {
        "block": [ab.block.index for ab in aligned],
        "input_ids": [ab.block.input_ids.astype(np.int32) for ab in aligned],
        "trans_ids": [ab.trans_ids.astype(np.int32) for ab in aligned],
        "orig_to_trans": [ab.orig_to_trans.astype(np.int32) for ab in aligned],
        "choices": [json.dumps(ab.choices, ensure_ascii=False) for ab in aligned],
        "n_occurrences": [len(ab.occurrences) for ab in aligned],
    }
    for a in alphas:
        col = []
        for ab, r in zip(aligned, results):
            full = np.full(len(ab.block.input_ids), IGNORE, dtype=np.int32)
            full[r.positions] = r.labels[float(a)]
            col.append(full)
        blocks[alpha_column(a)] = col
    cat = lambda name: np.concatenate([getattr(r, name) for r in results])  # noqa: E731
    positions = {
        "block": np.concatenate([np.full(len(r.positions), r.block_index, dtype=np.int32) for r in results]),
        "pos": cat("positions").astype(np.int32),
        "trans_pos": cat("trans_positions").astype(np.int32),
        "next_id": cat("next_ids").astype(np.int32),
        "gain_next": cat("gain_next"),
    }
    for a in alphas:
        positions[alpha_column(a)] = np.concatenate([r.labels[float(a)] for r in results]).astype(np.int32)
    table = pa.table({k: pa.array(v) for k, v in positions.items()})
    for name in ("base_ids", "base_vals", "reinf_at_base", "reinf_ids", "reinf_vals", "base_at_reinf"):
        table = table.append_column(name, _fixed_list(np.concatenate([getattr(r, name) for r in results])))
    return pa.table(blocks), table


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


@with_small_heap
def generate_labels(
    pair: ModelPair,
    aligned: Sequence[AlignedBlock],
    out_dir: str | os.PathLike,
    alphas: Sequence[float],
    top_k: int = 32,
    batch_size: int = 4,
    shard_blocks: int = 16,
    pad_id: int = 0,
    fingerprint: str = "",
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> "LabelStore":
    """Compute labels for all blocks into ``out_dir``, shard by shard, resuming finished shards.

    Each shard is written atomically (``blocks-NNNNN.parquet``, ``positions-NNNNN.parquet``), then recorded in
    ``manifest.json``. A rerun with the same ``fingerprint`` skips recorded shards; another fingerprint starts over.
    """
    if any(a < 0 for a in alphas):
        raise WorkbenchError(f"labels: alpha must be >= 0, got {list(alphas)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / LABELS_MANIFEST
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    if manifest.get("fingerprint") != fingerprint or manifest.get("alphas") != [float(a) for a in alphas]:
        for f in out.glob("*.parquet"):
            f.unlink()
        manifest = {
            "fingerprint": fingerprint,
            "alphas": [float(a) for a in alphas],
            "top_k": top_k,
            "shard_blocks": shard_blocks,
            "n_blocks": len(aligned),
            "shards": [],
            "complete": False,
        }
    done = set(manifest["shards"])
    n_shards = (len(aligned) + shard_blocks - 1) // shard_blocks
    pair.eval()
    bar = tqdm(total=sum(len(ab.block) for ab in aligned), unit="tok", desc="generic labels", disable=not progress)

    def write(shard: int, group, results) -> None:  # in the writer thread, while the next shard is computed
        blocks_t, pos_t = _shard_tables(group, results, alphas)
        _write_parquet_atomic(blocks_t, label_shard(out, "blocks", shard))
        _write_parquet_atomic(pos_t, label_shard(out, "positions", shard))
        manifest["shards"] = sorted(set(manifest["shards"]) | {shard})
        atomic_write_json(manifest_path, manifest)

    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labels-writer")
    pending: list = []  # at most one (shard, future): its files and manifest entry are being written

    def settle() -> None:
        while pending:
            shard, fut = pending.pop()
            fut.result()  # re-raises a write error here
            if on_shard is not None:
                on_shard(shard)

    try:
        for shard in range(n_shards):
            group = aligned[shard * shard_blocks : (shard + 1) * shard_blocks]
            if shard in done:
                bar.update(sum(len(ab.block) for ab in group))
                continue
            results = []
            for i in range(0, len(group), batch_size):
                batch = group[i : i + batch_size]
                ids, mask = pad_batch([ab.block.input_ids for ab in batch], pad_id, pair.device)
                t_ids, t_mask = pad_batch([ab.trans_ids for ab in batch], pad_id, pair.device)
                v_r = pair.reinforced_logits(ids, mask)
                v_b = pair.base_logits(t_ids, t_mask)
                # rule 5 (inner anchor positions) needs the baseline on the original text as well
                v_o = pair.base_logits(ids, mask) if any(len(ab.inner_positions) for ab in batch) else None
                results += compute_batch_labels(batch, v_r, v_b, alphas, top_k, v_o)
                del v_r, v_b, v_o  # free the logits tensors before the next batch's forward passes
                bar.update(sum(len(ab.block) for ab in batch))
            settle()
            pending.append((shard, writer.submit(write, shard, group, results)))
        settle()
    finally:
        writer.shutdown(wait=True)  # an interrupted run still finishes (atomically) the shard being written
    bar.close()
    manifest["complete"] = len(manifest["shards"]) == n_shards
    atomic_write_json(manifest_path, manifest)
    return LabelStore(out)


class LabelStore:
    """Read access to a labels folder: per-block arrays and per-position inspection records."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mf = self.path / LABELS_MANIFEST
        if not mf.is_file():
            raise WorkbenchError(f"{self.path} holds no labels (manifest.json missing); run the `labels` stage first")
        self.manifest = read_json(mf)
        self._blocks: pd.DataFrame | None = None
        self._positions: pd.DataFrame | None = None

    @property
    def alphas(self) -> list[float]:
        return list(self.manifest["alphas"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def _read(self, prefix: str) -> pd.DataFrame:
        files = [label_shard(self.path, prefix, s) for s in sorted(self.manifest["shards"])]
        if not files:
            raise WorkbenchError(f"{self.path}: no finished label shards yet")
        return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)

    @property
    def blocks(self) -> pd.DataFrame:
        """One row per block: block, input_ids, trans_ids, orig_to_trans, choices, label_a<alpha> (-100 = none)."""
        if self._blocks is None:
            self._blocks = self._read("blocks")
        return self._blocks

    @property
    def positions(self) -> pd.DataFrame:
        """One row per labelled position, with the top-k inspection records (``trans_pos`` -1: an inner anchor
        position, whose baseline records come from the original text with the anchor's continuation suppressed)."""
        if self._positions is None:
            self._positions = self._read("positions")
        return self._positions

    def topk_arrays(self, block: int | None = None) -> dict[str, np.ndarray]:
        """Stacked top-k arrays ([n, k]) of all positions, or of one block."""
        df = self.positions if block is None else self.positions[self.positions["block"] == block]
        return {
            name: np.stack(df[name].to_numpy()) if len(df) else np.zeros((0, self.manifest["top_k"]))
            for name in ("base_ids", "base_vals", "reinf_at_base", "reinf_ids", "reinf_vals", "base_at_reinf")
        }

    def recompute(self, alpha: float, block: int | None = None) -> pd.DataFrame:
        """Labels for a new alpha from the stored top-k, no model needed. Columns: block, pos, next_id, label, exact."""
        df = self.positions if block is None else self.positions[self.positions["block"] == block]
        arr = self.topk_arrays(block)
        lab, exact = labels_from_topk(arr["base_ids"], arr["base_vals"], arr["reinf_at_base"], float(alpha))
        return pd.DataFrame(
            {
                "block": df["block"].to_numpy(),
                "pos": df["pos"].to_numpy(),
                "next_id": df["next_id"].to_numpy(),
                "label": lab,
                "exact": exact,
            }
        )

    def soft_targets(self, alpha: float, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n, k], probs [n, k]): softmax of the generic scores over each position's stored baseline top-k.

        Where the top-k cannot vouch for the label (the exactness flag of :func:`labels_from_topk` is off: the
        true generic label may lie outside the top-k), the row is the exact stored label for ``alpha`` with
        probability 1 instead of a renormalised top-k (needs ``alpha`` among the stored alphas).
        """
        arr = self.topk_arrays()
        ids = arr["base_ids"].astype(np.int64)
        g = generic_scores(arr["base_vals"], arr["reinf_at_base"], alpha)
        _, exact = labels_from_topk(arr["base_ids"], arr["base_vals"], arr["reinf_at_base"], float(alpha))
        g = g / max(temperature, 1e-6)
        g = g - g.max(-1, keepdims=True)
        p = np.exp(g)
        probs = (p / p.sum(-1, keepdims=True)).astype(np.float32)
        if not exact.all():
            col = alpha_column(alpha)
            if col not in self.positions.columns:
                raise WorkbenchError(
                    f"{self.path}: soft targets for alpha={alpha:g} need the exact labels where the stored top-k "
                    f"cannot vouch for them; add {alpha:g} to labels.alphas (stored: {self.alphas})"
                )
            rows = np.nonzero(~exact)[0]
            ids[rows] = 0
            ids[rows, 0] = self.positions[col].to_numpy()[rows]
            probs[rows] = 0.0
            probs[rows, 0] = 1.0
        return ids, probs

    def summary(self) -> pd.DataFrame:
        """Per alpha: labelled positions, share of labels that differ from the original next token."""
        pos = self.positions
        rows = []
        for a in self.alphas:
            col = pos[alpha_column(a)].to_numpy()
            rows.append(
                {"alpha": a, "labelled": len(col), "changed_share": float((col != pos["next_id"].to_numpy()).mean())}
            )
        return pd.DataFrame(rows)
