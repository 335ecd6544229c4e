"""Training the gradient-based methods (ga, graddiff, npo, simnpo, rmu) through the same Trainer path as WHP's
finetuning: LoRA or full weights, checkpoints a rerun resumes from, ``accelerate launch``, plain HF ``unlearned/``.

Each batch holds target blocks (``input_ids``) and as many retain blocks (``retain_ids``), cycled as in WHP's
finetuning. A method's loss is a function ``loss(model, inputs, frozen) -> (loss, parts)``; ``frozen`` is a
context manager giving the frozen starting model (the adapter disabled, or a frozen copy) for reference terms.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from workbench.config import FinetuneConfig
from workbench.errors import WorkbenchError
from workbench.finetune import UnlearnDataset, UnlearningTrainer
from workbench.methods import losses as L
from workbench.pair import pad_batch
from workbench.training import add_lora, merge_lora, train_and_save

__all__ = [
    "method_collator",
    "MethodTrainer",
    "train_method",
    "decoder_layers",
    "layer_output",
    "down_projections",
    "LOSSES",
    "rmu_control_vector",
    "with_overrides",
]

LossFn = Callable[[torch.nn.Module, dict, Callable], tuple[torch.Tensor, dict]]


def method_collator(pad_id: int):
    cpu = torch.device("cpu")

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch([it["input_ids"] for it in items], pad_id, cpu)
        batch = {"input_ids": ids, "attention_mask": mask}
        if "retain_ids" in items[0]:
            batch["retain_ids"], batch["retain_mask"] = pad_batch([it["retain_ids"] for it in items], pad_id, cpu)
        return batch

    return collate


# -- activations at one decoder layer (RMU) ---------------------------------------------------------------------
class _Stop(Exception):
    pass


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder layers (the first ModuleList as long as ``config.num_hidden_layers``)."""
    inner = getattr(model, "module", model)  # under DDP, the wrapped model holds the config
    n = getattr(getattr(inner, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise WorkbenchError(f"cannot find the decoder layers of {type(model).__name__} (config.num_hidden_layers={n})")


def layer_output(
    model: torch.nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The output ``[batch, pos, hidden]`` of decoder layer ``layer``; the layers above it are not run."""
    got: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        got.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got[0]


def rmu_control_vector(hidden: int, coeff: float, seed: int) -> torch.Tensor:
    """``c * u``: u uniform in [0, 1)^hidden, normalised to unit length (as the WMDP authors draw it)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden, generator=g)
    return u / u.norm() * coeff


# -- the losses on a batch ------------------------------------------------------------------------------------------
def _logp(model, ids, mask):
    return L.token_logprobs(model(input_ids=ids, attention_mask=mask).logits, ids, mask)


def _retain_nll(model, inputs, weight: float, parts: dict):
    if weight <= 0 or "retain_ids" not in inputs:
        return 0.0
    r = L.mean_nll(*_logp(model, inputs["retain_ids"], inputs["retain_mask"]))
    parts["retain_nll"] = float(r.detach())
    return weight * r


def ga(cfg) -> LossFn:
    def loss(model, inputs, frozen):
        f = L.ga_loss(*_logp(model, inputs["input_ids"], inputs["attention_mask"]))
        return f, {"forget_nll": -float(f.detach())}

    return loss


def graddiff(cfg) -> LossFn:
    def loss(model, inputs, frozen):
        f_logp, f_mask = _logp(model, inputs["input_ids"], inputs["attention_mask"])
        if cfg.retain_weight > 0 and "retain_ids" in inputs:
            r_logp, r_mask = _logp(model, inputs["retain_ids"], inputs["retain_mask"])
        else:  # no retain term: an empty mask makes its NLL 0
            r_logp, r_mask = f_logp[:, :0], f_mask[:, :0]
        total = L.graddiff_loss(f_logp, f_mask, r_logp, r_mask, cfg.forget_weight, cfg.retain_weight)
        parts = {"forget_nll": float(L.mean_nll(f_logp, f_mask).detach())}
        if r_mask.numel():
            parts["retain_nll"] = float(L.mean_nll(r_logp, r_mask).detach())
        return total, parts

    return loss


def npo(cfg) -> LossFn:
    def loss(model, inputs, frozen):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        seq, _ = L.sequence_logprobs(*_logp(model, ids, mask))
        with frozen() as ref, torch.no_grad():
            ref_seq, _ = L.sequence_logprobs(*_logp(ref, ids, mask))
        f = L.npo_loss(seq, ref_seq, cfg.beta)
        parts = {"forget_loss": float(f.detach()), "log_ratio": float((seq - ref_seq).mean().detach())}
        return cfg.forget_weight * f + _retain_nll(model, inputs, cfg.retain_weight, parts), parts

    return loss


def simnpo(cfg) -> LossFn:
    def loss(model, inputs, frozen):
        seq, n = L.sequence_logprobs(*_logp(model, inputs["input_ids"], inputs["attention_mask"]))
        f = L.simnpo_loss(seq, n, cfg.beta, cfg.gamma)
        parts = {"forget_loss": float(f.detach())}
        return cfg.forget_weight * f + _retain_nll(model, inputs, cfg.retain_weight, parts), parts

    return loss


def rmu(cfg, layer: int, control: torch.Tensor) -> LossFn:
    def loss(model, inputs, frozen):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        h = layer_output(model, layer, ids, mask)
        f = L.rmu_forget_loss(h, mask, control.to(h.device))
        parts = {"forget_mse": float(f.detach())}
        total = f
        if cfg.retain_weight > 0 and "retain_ids" in inputs:
            r_ids, r_mask = inputs["retain_ids"], inputs["retain_mask"]
            hr = layer_output(model, layer, r_ids, r_mask)
            with frozen() as ref, torch.no_grad():
                hr0 = layer_output(ref, layer, r_ids, r_mask)
            r = L.rmu_retain_loss(hr, hr0, r_mask)
            parts["retain_mse"] = float(r.detach())
            total = total + cfg.retain_weight * r
        return total, parts

    return loss


LOSSES = {"ga": ga, "graddiff": graddiff, "npo": npo, "simnpo": simnpo}


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


# the MLP's output projection in the decoder-layer layouts of Llama/Mistral/Qwen (down_proj), GPT-2 (c_proj),
# GPT-NeoX (dense_4h_to_h) and OPT/Falcon-style layers (fc2)
DOWN_PROJ_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc2")


def down_projections(model: torch.nn.Module, layers: list[int]) -> list[torch.nn.Module]:
    """The MLP down-projection of each of ``layers`` (what the WMDP authors' RMU trains: ``--param_ids 6``)."""
    stack = decoder_layers(model)
    found = []
    for i in layers:
        mlp = getattr(stack[i], "mlp", None)
        proj = next((getattr(mlp, n) for n in DOWN_PROJ_NAMES if mlp is not None and hasattr(mlp, n)), None)
        if proj is None:
            raise WorkbenchError(
                f"RMU: decoder layer {i} of {type(model).__name__} has no MLP down-projection "
                f"({' / '.join(DOWN_PROJ_NAMES)}); set methods.rmu.full_rank: false to train with finetune.method"
            )
        found.append(proj)
    return found


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
    if train_cfg.method == "lora":
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


def with_overrides(train_cfg: FinetuneConfig, section) -> FinetuneConfig:
    """The finetune section's optimiser settings with a method's ``learning_rate`` / ``epochs`` overrides."""
    over = {k: getattr(section, k) for k in ("learning_rate", "epochs") if getattr(section, k, None) is not None}
    return dataclasses.replace(train_cfg, **over)
