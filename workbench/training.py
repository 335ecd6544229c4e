"""What reinforcement and finetuning share: LoRA set-up, the Hugging Face Trainer, stop and loss callbacks.

Training goes through ``transformers.Trainer``, so ``accelerate launch`` (DDP, FSDP, DeepSpeed) scales it
unchanged, and an interrupted stage resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from workbench.config import TrainConfig, fingerprint_dict
from workbench.distribution import pick_device
from workbench.io import atomic_dir, atomic_write_json, disk_full, disk_full_error
from workbench.rundir import checkpoints_of

if TYPE_CHECKING:
    from workbench.tracking import StageTracking

# peft asks the model for a renamed attribute on every wrap; the notice says nothing to a user of this package
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

__all__ = [
    "TrainConfig",
    "StopController",
    "LossHistory",
    "add_lora",
    "make_training_args",
    "run_trainer",
    "train_and_save",
    "merge_lora",
    "gradient_checkpointing",
    "settings_fingerprint",
    "checkpoint_problem",
    "prepare_checkpoints",
]

SETTINGS_FILE = "workbench_settings.json"  # in a checkpoints folder: the settings fingerprint its checkpoints share


class StopController(TrainerCallback):
    """Stops training cleanly after the current step and saves a checkpoint; call :meth:`stop` from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.stopped_at: int | None = None

    def stop(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def on_step_end(self, args, state, control, **kwargs):
        if self._event.is_set():
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step
        return control


class StepProgress(TrainerCallback):
    """A bar of training steps (tqdm: a widget in a notebook, text elsewhere) with the last logged loss; the
    Trainer's own progress callbacks print every log dict or draw a table of them."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class DatasetEpoch(TrainerCallback):
    """Calls ``dataset.set_epoch`` as each epoch starts, the resumed one too (``state.epoch`` comes from the
    checkpoint), so what the items hold depends on the epoch and not on the process's history. The Trainer's
    own ``set_epoch`` reaches the seeded sampler, not the dataset."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))


class LossHistory(TrainerCallback):
    """Collects ``(step, loss)`` as the Trainer logs, and calls listeners (the notebook's live plot)."""

    def __init__(self, listeners: list[Callable[[int, dict], None]] | None = None) -> None:
        self.records: list[dict] = []
        self.listeners = list(listeners or [])

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            rec = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            self.records.append(rec)
            for fn in self.listeners:
                fn(state.global_step, rec)


def add_lora(model: PreTrainedModel, cfg: TrainConfig, adapter_name: str = "default"):
    """Wrap ``model`` in a trainable LoRA adapter on every linear layer except the output head."""
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lcfg, adapter_name=adapter_name)


def _use_bf16(cfg: TrainConfig) -> bool:
    if cfg.bf16 is not None:
        return bool(cfg.bf16)
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def make_training_args(
    cfg: TrainConfig, output_dir: Path, seed: int, progress: bool = True, tracking: "StageTracking | None" = None
) -> TrainingArguments:
    """The Trainer's arguments for a stage; ``tracking`` says which trackers it reports to (default: none)."""
    report = tracking.training_args() if tracking is not None else {"report_to": "none"}
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        **report,
        seed=seed,
        data_seed=seed,
        bf16=_use_bf16(cfg),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        use_cpu=pick_device().type == "cpu",  # the loader's default device (workbench/distribution.py)
    )


def run_trainer(
    trainer_cls: type[Trainer],
    model: torch.nn.Module,
    dataset: Any,
    collator: Callable,
    cfg: TrainConfig,
    output_dir: Path,
    seed: int,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    tracking: "StageTracking | None" = None,
    **trainer_kwargs: Any,
) -> tuple[Trainer, bool]:
    """Train, resuming from the newest complete checkpoint in ``output_dir`` made with the same settings.

    Returns (trainer, finished). Checkpoints made with other settings, and incomplete ones (a kill during a
    save), are set aside beside ``output_dir`` with a message, never resumed. ``tracking``: the trackers the
    Trainer reports the losses to (workbench/tracking.py).
    """
    with contextlib.ExitStack() as stack:
        if tracking is not None:
            stack.enter_context(tracking.environment())
        if cfg.gradient_checkpointing:
            stack.enter_context(gradient_checkpointing(model))
        return _run_trainer(
            trainer_cls,
            model,
            dataset,
            collator,
            cfg,
            output_dir,
            seed,
            callbacks,
            progress,
            log,
            tracking,
            **trainer_kwargs,
        )


@contextlib.contextmanager
def gradient_checkpointing(model: torch.nn.Module):
    """Recompute each decoder layer in the backward pass while the block runs, then switch it off again.

    Non-reentrant checkpointing, so a LoRA adapter behind frozen embeddings still receives gradients; the
    inputs are made to require gradients as well (what the reentrant variant needs)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {"use_reentrant": False}
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        disable = inner.activation_checkpointing_disable
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        disable = inner.gradient_checkpointing_disable
    peft = hasattr(model, "get_base_model")
    if peft:
        inner.enable_input_require_grads()
    try:
        yield
    finally:
        disable()
        if peft:
            inner.disable_input_require_grads()


def _run_trainer(
    trainer_cls, model, dataset, collator, cfg, output_dir, seed, callbacks, progress, log, tracking, **trainer_kwargs
) -> tuple[Trainer, bool]:
    args = make_training_args(cfg, output_dir, seed, progress, tracking)
    callbacks = list(callbacks or [])
    if hasattr(dataset, "set_epoch"):  # items that depend on the epoch (retain pairing): epoch 0 for the fingerprint
        dataset.set_epoch(0)
        callbacks.append(DatasetEpoch(dataset))
    trainer = trainer_cls(
        model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks, **trainer_kwargs
    )
    fingerprint = settings_fingerprint(trainer_cls, model, dataset, cfg, seed)
    if trainer.is_world_process_zero():
        prepare_checkpoints(output_dir, fingerprint, log or _stderr)
    trainer.accelerator.wait_for_everyone()
    # the Trainer's own progress (a table of logged numbers in a notebook, log dicts printed under a bar) gives way
    # to a plain bar of steps, or to nothing where a notebook's training monitor shows progress and losses
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    for cb in (PrinterCallback, ProgressCallback, NotebookProgressCallback):
        trainer.remove_callback(cb)
    if progress and not any(getattr(c, "shows_progress", False) for c in (callbacks or [])):
        trainer.add_callback(StepProgress(output_dir.name))
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    try:
        trainer.train(resume_from_checkpoint=last)
    except Exception as exc:  # a checkpoint save on a full disk (torch, safetensors): name the checkpoint folder
        if disk_full(exc):
            raise disk_full_error(output_dir) from exc
        raise
    stopped = any(isinstance(c, StopController) and c.requested for c in (callbacks or []))
    return trainer, not stopped


def train_and_save(
    trainer_cls: type[Trainer],
    model: torch.nn.Module,
    dataset: Any,
    collator: Callable,
    cfg: TrainConfig,
    out_dir: str | Path,
    tokenizer: Any,
    seed: int,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    finalize: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    tracking: "StageTracking | None" = None,
    **trainer_kwargs: Any,
) -> tuple[torch.nn.Module, bool]:
    """A training stage from start to artifact: train ``model`` (resuming from ``<out_dir>_ckpt``), then save
    ``finalize(model)`` (default: the model as trained) with the tokenizer to ``out_dir`` in one rename, and drop
    the checkpoints.

    Returns (the final model, finished); a stop request returns (the model as trained, False) and keeps the
    checkpoint a rerun resumes from. Under ``accelerate launch`` one process writes the artifact.
    """
    out_dir = Path(out_dir)
    ckpt = checkpoints_of(out_dir)
    model.train()
    trainer, finished = run_trainer(
        trainer_cls, model, dataset, collator, cfg, ckpt, seed, callbacks, progress, tracking=tracking, **trainer_kwargs
    )
    model.eval()
    if not finished:
        return model, False
    final = finalize(model) if finalize is not None else model
    final.eval()
    if trainer.is_world_process_zero():
        with atomic_dir(out_dir) as tmp:
            final.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        clear_checkpoints(ckpt)
    trainer.accelerator.wait_for_everyone()
    return final, True


def merge_lora(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A trained model as plain weights in ``dtype``: a LoRA adapter is merged in fp32 first, so half-precision
    weights are rounded once, after the update is added (adding it in bf16 rounds small updates away)."""
    half = dtype in (torch.bfloat16, torch.float16)
    if hasattr(model, "merge_and_unload"):
        model = (model.float() if half else model).merge_and_unload()
    return model.to(dtype) if half else model


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# settings that do not change the trained weights: a checkpoint made under other values of them still resumes
_NEUTRAL = ("save_steps", "logging_steps")  # (and the fields marked fingerprint: False, left out by fingerprint_dict)


def settings_fingerprint(trainer_cls: type, model: torch.nn.Module, dataset: Any, cfg: TrainConfig, seed: int) -> str:
    """A hash of everything a checkpoint's weights depend on: the settings, the seed, the training items, the
    parameters' shapes and a sample of the starting weights (which model is being trained)."""
    h = hashlib.sha256()
    settings = {k: v for k, v in fingerprint_dict(cfg).items() if k not in _NEUTRAL}
    h.update(json.dumps([trainer_cls.__name__, settings, seed, len(dataset)], sort_keys=True, default=str).encode())
    for i in range(len(dataset)):
        for key, value in sorted(dataset[i].items()):
            arr = np.ascontiguousarray(value.cpu().numpy() if torch.is_tensor(value) else np.asarray(value))
            h.update(f"{key}{arr.dtype}{arr.shape}".encode())
            h.update(arr.tobytes())
    for name, p in model.named_parameters():
        h.update(f"{name}{tuple(p.shape)}{p.dtype}{p.requires_grad}".encode())
        if "lora_" not in name:  # LoRA weights start random and come from the checkpoint; the rest say which model
            flat = p.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy()
            h.update(sample.tobytes())
    return h.hexdigest()[:16]


def checkpoint_problem(path: Path) -> str | None:
    """What makes a checkpoint folder unfit to resume from (a kill during its save), or None.

    The Trainer writes ``trainer_state.json`` last; the weights' header and the optimizer's zip directory are
    checked too, both cheap.
    """
    from workbench.file_checks import read_record, safetensors_problem

    state, bad = read_record(path / "trainer_state.json")
    if bad or state is None:
        return bad or "trainer_state.json is missing"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    for w in weights:
        problem = safetensors_problem(w)
        if problem:
            return problem
    for name in ("optimizer.pt", "scheduler.pt"):
        if not zipfile.is_zipfile(path / name):
            return f"{name} is missing or truncated"
    return None


def prepare_checkpoints(output_dir: Path, fingerprint: str, log: Callable[[str], None]) -> None:
    """Leave in ``output_dir`` only complete checkpoints made with ``fingerprint``; set the others aside."""
    output_dir = Path(output_dir)
    stamp = output_dir / SETTINGS_FILE
    ckpts = (
        sorted(
            (p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
            key=lambda p: int(p.name[11:]),
        )
        if output_dir.is_dir()
        else []
    )
    stored = None
    if stamp.is_file():
        try:
            stored = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            stored = None
    aside = output_dir.with_name(output_dir.name + ".set_aside")
    for ckpt in ckpts:
        if stored != fingerprint:
            why = "was made with other settings" if stored else "carries no record of its settings"
        else:
            problem = checkpoint_problem(ckpt)
            why = f"is incomplete ({problem})" if problem else None
        if why:
            aside.mkdir(parents=True, exist_ok=True)
            dest = aside / f"{ckpt.name}-{stored or 'unknown'}"
            n = 1
            while dest.exists():
                n += 1
                dest = aside / f"{ckpt.name}-{stored or 'unknown'}-{n}"
            os.replace(ckpt, dest)
            log(f"[checkpoint] {ckpt} {why}: not resumed, set aside as {dest} (delete it to free the space)")
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stamp, {"fingerprint": fingerprint})


def clear_checkpoints(output_dir: Path) -> None:
    """Remove a finished stage's checkpoints (the final artifact is saved elsewhere)."""
    shutil.rmtree(output_dir, ignore_errors=True)
