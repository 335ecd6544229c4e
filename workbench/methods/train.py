"""The shared training machinery of the methods that train (ga, graddiff, npo, simnpo, rmu): the same Trainer path
as WHP's finetuning: LoRA or full weights, checkpoints a rerun resumes from, ``accelerate launch``, plain HF
``unlearned/``. A method reaches it through its StageContext's ``train`` (workbench/methods/context.py).

Each batch holds target blocks (``input_ids``) and as many retain blocks (``retain_ids``), cycled as in WHP's
finetuning. A method's loss is a function ``loss(model, inputs, frozen) -> (loss, parts)``; ``frozen`` is a
context manager giving the frozen starting model (the adapter disabled, or a frozen copy) for reference terms.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from workbench.config import FinetuneConfig
from workbench.finetune import UnlearnDataset, UnlearningTrainer
from workbench.methods.base import LossFn
from workbench.methods.layers import down_projections
from workbench.tensors import pad_batch
from workbench.training import add_lora, merge_lora, train_and_save

__all__ = ["method_collator", "MethodTrainer", "train_method"]


def method_collator(pad_id: int):
    cpu = torch.device("cpu")

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch([it["input_ids"] for it in items], pad_id, cpu)
        batch = {"input_ids": ids, "attention_mask": mask}
        if "retain_ids" in items[0]:
            batch["retain_ids"], batch["retain_mask"] = pad_batch([it["retain_ids"] for it in items], pad_id, cpu)
        return batch

    return collate


# -- the Trainer ------------------------------------------------------------------------------------------------------
class MethodTrainer(UnlearningTrainer):
    """WHP's unlearning Trainer (same loss-part logging) with a method's loss."""

    def __init__(self, *args, method_loss: LossFn, constant_lr: bool = False, **kwargs):
        super().__init__(*args, unlearn_cfg=None, **kwargs)
        self.method_loss = method_loss
        self.constant_lr = constant_lr

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if not self.constant_lr:
            return super().create_scheduler(num_training_steps, optimizer)
        from transformers import get_constant_schedule_with_warmup

        if self.lr_scheduler is None:
            self.lr_scheduler = get_constant_schedule_with_warmup(
                optimizer or self.optimizer, self.args.get_warmup_steps(num_training_steps)
            )
        return self.lr_scheduler

    @contextlib.contextmanager
    def _frozen(self, model) -> Iterator[torch.nn.Module]:
        if self.reference_model is not None:
            yield self.reference_model
            return
        inner = self.accelerator.unwrap_model(model)
        with inner.disable_adapter():
            yield inner

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, parts = self.method_loss(model, inputs, lambda: self._frozen(model))
        for k, v in parts.items():
            self._parts.setdefault(k, []).append(v)
        return (loss, None) if return_outputs else loss


def _only_down_projections_trainable(model: torch.nn.Module, layers: list[int]) -> None:
    """Full-rank RMU updates only the MLP down-projections of the steered layer and the two below it."""
    model.requires_grad_(False)
    for proj in down_projections(model, layers):
        proj.requires_grad_(True)


def train_method(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    target: list[np.ndarray],
    retain: list[np.ndarray] | None,
    train_cfg: FinetuneConfig,
    make_loss: Callable[[torch.nn.Module], LossFn],
    out_dir: str | Path,
    seed: int = 0,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    reference: torch.nn.Module | None = None,
    trainable_layers: list[int] | None = None,
    tracking=None,
    constant_lr: bool = False,
) -> tuple[PreTrainedModel, bool]:
    """Train ``model`` with a method's loss on target (and retain) blocks; save plain HF to ``out_dir``.

    ``make_loss(model)`` builds the loss once the model is set up (RMU measures activations first).
    ``reference``: the frozen model for reference terms; None uses the LoRA adapter disabled (or, for full
    training, a frozen copy). ``trainable_layers`` (full training only): train just the MLP down-projections of
    these layers. ``constant_lr``: no decay. ``tracking``: where the losses are reported (None: nowhere).
    Returns (the unlearned model, finished).
    """
    train_cfg.validate()
    orig_dtype = next(model.parameters()).dtype
    if train_cfg.weights == "lora":
        train_model = add_lora(model, train_cfg)
    else:
        if reference is None:
            reference = copy.deepcopy(model).eval().requires_grad_(False)
        train_model = model
        if trainable_layers is not None:
            _only_down_projections_trainable(train_model, trainable_layers)
    dataset = UnlearnDataset([{"input_ids": np.asarray(t)} for t in target], retain)
    loss = make_loss(train_model)
    return train_and_save(
        MethodTrainer,
        train_model,
        dataset,
        method_collator(tokenizer.pad_token_id),
        train_cfg,
        out_dir,
        tokenizer,
        seed,
        callbacks,
        progress,
        finalize=lambda m: merge_lora(m, orig_dtype),  # LoRA merged in fp32, then cast
        method_loss=loss,
        reference_model=reference,
        tracking=tracking,
        constant_lr=constant_lr,
    )
