"""Finetuning the baseline on the original text with generic labels: the unlearning step.

Loss on each target batch, at labelled positions only (logits at position t against the label of t):

- ``hard``: cross-entropy to the generic label ``argmax(generic scores)`` (the paper);
- ``soft``: cross-entropy to ``softmax(generic scores / temperature)`` over the stored baseline top-k.

Optional retain term: ``retain_weight * KL(p_baseline || p_model)`` on retain text, one retain block per
target block, so general knowledge and neighbouring domains stay where the baseline had them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from workbench.config import FinetuneConfig
from workbench.errors import WorkbenchError
from workbench.labels import IGNORE, LabelStore, alpha_column
from workbench.training import add_lora, merge_lora, train_and_save

__all__ = ["FinetuneConfig", "UnlearnDataset", "UnlearningTrainer", "unlearning_loss", "finetune", "build_dataset"]


class UnlearnDataset(torch.utils.data.Dataset):
    """Items: ``input_ids`` [pos], ``generic_labels`` [pos] (-100 = none), optional ``soft_ids``/``soft_probs``
    [pos, k], optional ``retain_ids`` [retain_pos].

    Retain blocks walk on from epoch to epoch: in epoch ``e`` target item ``i`` is paired with retain block
    ``(i + e * len(items)) % len(retain)``, so a retain text longer than the target corpus is used in full over the
    epochs instead of its first ``len(items)`` blocks every epoch. The Trainer sets the epoch (``set_epoch``,
    see :func:`workbench.training.run_trainer`).
    """

    def __init__(self, items: list[dict], retain: Sequence[np.ndarray] | None = None):
        self.items = items
        self.retain = list(retain or [])
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def retain_index(self, i: int) -> int:
        return (i + self.epoch * len(self.items)) % len(self.retain)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.items[i])
        if self.retain:
            item["retain_ids"] = self.retain[self.retain_index(i)]
        return item


def build_dataset(store: LabelStore, cfg: FinetuneConfig, retain: Sequence[np.ndarray] | None = None) -> UnlearnDataset:
    """Training items from a label store: hard labels for ``cfg.alpha``, or soft targets over the top-k."""
    blocks = store.blocks
    col = alpha_column(cfg.alpha)
    if cfg.target == "hard" and col not in blocks.columns:
        raise WorkbenchError(
            f"finetune.alpha={cfg.alpha}: no stored labels for it (stored: {store.alphas}); add it to labels.alphas "
            "or use target: soft, which recomputes from the top-k"
        )
    items: list[dict] = []
    soft_ids = soft_probs = None
    if cfg.target == "soft":
        soft_ids, soft_probs = store.soft_targets(cfg.alpha, cfg.temperature)
        pos_block = store.positions["block"].to_numpy()
        pos_pos = store.positions["pos"].to_numpy()
        # the rows of each block, grouped once with a stable sort
        order = np.argsort(pos_block, kind="stable")
        uniq, starts, counts = np.unique(pos_block[order], return_index=True, return_counts=True)
        rows_of = {int(b): order[s : s + c] for b, s, c in zip(uniq, starts, counts)}
    for _, row in blocks.iterrows():
        ids = np.asarray(row["input_ids"], dtype=np.int64)
        item = {"input_ids": ids}
        if cfg.target == "hard":
            item["generic_labels"] = np.asarray(row[col], dtype=np.int64)
        else:
            sel = rows_of.get(int(row["block"]), np.zeros(0, dtype=np.int64))
            k = soft_ids.shape[1]
            s_ids = np.zeros((len(ids), k), dtype=np.int64)
            s_p = np.zeros((len(ids), k), dtype=np.float32)
            p = pos_pos[sel]
            s_ids[p], s_p[p] = soft_ids[sel], soft_probs[sel]
            lab = np.full(len(ids), IGNORE, dtype=np.int64)
            lab[p] = s_ids[p, np.argmax(s_p[p], -1)]
            item.update(generic_labels=lab, soft_ids=s_ids, soft_probs=s_p)
        items.append(item)
    return UnlearnDataset(items, retain)


def _pad(seqs: list[np.ndarray], value, dtype) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    shape = (len(seqs), width) + tuple(np.asarray(seqs[0]).shape[1:])
    out = torch.full(shape, value, dtype=dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(np.asarray(s), dtype=dtype)
    return out


def unlearning_collator(pad_id: int):
    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        ids = [it["input_ids"] for it in items]
        batch = {
            "input_ids": _pad(ids, pad_id, torch.long),
            "attention_mask": _pad([np.ones(len(s)) for s in ids], 0, torch.long),
            "generic_labels": _pad([it["generic_labels"] for it in items], IGNORE, torch.long),
        }
        if "soft_ids" in items[0]:
            batch["soft_ids"] = _pad([it["soft_ids"] for it in items], 0, torch.long)
            batch["soft_probs"] = _pad([it["soft_probs"] for it in items], 0.0, torch.float32)
        if "retain_ids" in items[0]:
            r = [it["retain_ids"] for it in items]
            batch["retain_ids"] = _pad(r, pad_id, torch.long)
            batch["retain_mask"] = _pad([np.ones(len(s)) for s in r], 0, torch.long)
        return batch

    return collate


def unlearning_loss(
    model, inputs: dict[str, torch.Tensor], cfg: FinetuneConfig, reference=None
) -> tuple[torch.Tensor, dict]:
    """The training loss and its parts. ``reference``: a callable giving baseline logits for the retain term."""
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits  # [batch, pos, vocab]
    labels = inputs["generic_labels"]
    mask = labels != IGNORE
    sel = logits[mask].float()  # [n, vocab]
    if cfg.target == "soft":
        logp = F.log_softmax(sel, -1)
        target_loss = -(inputs["soft_probs"][mask] * logp.gather(-1, inputs["soft_ids"][mask])).sum(-1).mean()
    else:
        target_loss = F.cross_entropy(sel, labels[mask])
    parts = {"target_loss": float(target_loss.detach())}
    loss = target_loss
    if cfg.retain_weight > 0 and "retain_ids" in inputs:
        r_ids, r_mask = inputs["retain_ids"], inputs["retain_mask"]
        r_logits = model(input_ids=r_ids, attention_mask=r_mask).logits.float()
        with torch.no_grad():
            ref = reference(r_ids, r_mask).float()
        valid = r_mask.bool()
        kl = F.kl_div(
            F.log_softmax(r_logits[valid], -1), F.log_softmax(ref[valid], -1), log_target=True, reduction="batchmean"
        )
        loss = loss + cfg.retain_weight * kl
        parts["retain_kl"] = float(kl.detach())
    return loss, parts


class UnlearningTrainer(Trainer):
    """A Trainer whose loss is :func:`unlearning_loss`."""

    def __init__(self, *args, unlearn_cfg: FinetuneConfig, reference_model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unlearn_cfg = unlearn_cfg
        self.reference_model = reference_model
        self._parts: dict[str, list[float]] = {}

    def _reference(self, model):
        inner = self.accelerator.unwrap_model(model)

        def ref(ids, mask):
            if self.reference_model is not None:
                return self.reference_model(input_ids=ids, attention_mask=mask).logits
            with inner.disable_adapter():
                return inner(input_ids=ids, attention_mask=mask).logits

        return ref

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, parts = unlearning_loss(model, inputs, self.unlearn_cfg, self._reference(model))
        for k, v in parts.items():
            self._parts.setdefault(k, []).append(v)
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs):
        for k, vals in self._parts.items():
            if vals:
                logs[k] = round(sum(vals) / len(vals), 4)
        self._parts = {}
        super().log(logs, *args, **kwargs)


def finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: UnlearnDataset,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    seed: int = 0,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    tracking=None,
) -> tuple[PreTrainedModel, bool]:
    """Finetune ``model`` (the baseline) and save the unlearned model in plain HF format to ``out_dir``.

    Returns (the unlearned model, finished). A stop request leaves a checkpoint that a rerun resumes from.
    """
    cfg.validate()
    reference = None
    # half-precision weights (dtype auto on CUDA) train through fp32 master weights: AdamW steps on bf16 weights
    # round small updates away, and so does adding a LoRA update into bf16 weights (the Trainer's bf16 autocast
    # keeps the compute in half precision)
    orig_dtype = next(model.parameters()).dtype
    half = orig_dtype in (torch.bfloat16, torch.float16)
    if cfg.weights == "lora":
        train_model = add_lora(model, cfg)
        for p in train_model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    else:
        if cfg.retain_weight > 0:
            reference = copy.deepcopy(model).eval().requires_grad_(False)
        train_model = model.float() if half else model
    return train_and_save(
        UnlearningTrainer,
        train_model,
        dataset,
        unlearning_collator(tokenizer.pad_token_id),
        cfg,
        out_dir,
        tokenizer,
        seed,
        callbacks,
        progress,
        finalize=lambda m: merge_lora(m, orig_dtype),  # one rounding of the finished weights
        unlearn_cfg=cfg,
        reference_model=reference,
        tracking=tracking,
    )
