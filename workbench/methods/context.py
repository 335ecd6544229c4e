"""The run's side of the method interface: a :class:`~workbench.methods.base.StageContext` over a run, with the
training services a method calls (the Trainer path, the model loader, descriptors), which the method modules
cannot import themselves (they sit below the config).

The run builds one with :class:`RunStageContext` and hands it to its method's ``check``, ``fingerprint`` and
``run_stage``; the run's inputs (pack, tokenizer, blocks) are read from the run when a method first asks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from workbench.methods.base import LossFn

__all__ = ["RunInputs", "RunStageContext", "spec_for_descriptor"]


class RunInputs(Protocol):
    """What the context reads of a run (a :class:`workbench.run.Run`; the methods sit below the run)."""

    cfg: Any
    dir: Path
    pack: Any
    tokenizer: Any
    blocks: list
    retain_blocks: list
    retain_documents: list
    progress: bool
    callbacks: list
    log: Callable[[str], None]

    def load_baseline(self) -> Any: ...
    def stage_tracking(self, stage: str) -> Any: ...


def spec_for_descriptor(spec: str) -> str:
    """A model spec that still resolves from another working directory (paths made absolute)."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if (path.exists() or spec.startswith((".", "~", os.sep))) else spec


class RunStageContext:
    """A :class:`~workbench.methods.base.StageContext` over ``run``: ``require`` checks a stage ran before
    another, ``out`` is the folder the method's stage writes (``unlearned/``)."""

    def __init__(self, run: RunInputs, require: Callable[[str, str], None], out: Path) -> None:
        self.run = run
        self.require = require
        self.out = Path(out)

    # -- inputs, read from the run when asked ------------------------------------------------------------------
    @property
    def cfg(self) -> Any:
        return self.run.cfg

    @property
    def settings(self) -> Any:
        return getattr(self.run.cfg.methods, self.run.cfg.method, None)

    @property
    def dir(self) -> Path:
        return self.run.dir

    @property
    def pack(self) -> Any:
        return self.run.pack

    @property
    def tokenizer(self) -> Any:
        return self.run.tokenizer

    @property
    def blocks(self) -> list:
        return self.run.blocks

    @property
    def retain_blocks(self) -> list:
        return self.run.retain_blocks

    @property
    def retain_documents(self) -> list:
        return self.run.retain_documents

    @property
    def progress(self) -> bool:
        return self.run.progress

    @property
    def callbacks(self) -> list:
        return self.run.callbacks

    def log(self, text: str) -> None:
        self.run.log(text)

    def load_baseline(self) -> Any:
        return self.run.load_baseline()

    def stage_tracking(self, stage: str) -> Any:
        return self.run.stage_tracking(stage)

    # -- services -----------------------------------------------------------------------------------------------
    def train(
        self,
        model: Any,
        make_loss: Callable[[Any], LossFn],
        train_cfg: Any,
        retain: list | None,
        *,
        reference: Any = None,
        trainable_layers: list[int] | None = None,
        constant_lr: bool = False,
    ) -> Any:
        from workbench.methods.train import train_method

        c = self.cfg
        trained, finished = train_method(
            model,
            self.tokenizer,
            [b.input_ids for b in self.blocks],
            retain,
            train_cfg,
            make_loss,
            self.out,
            c.seed,
            self.callbacks,
            self.progress,
            reference=reference,
            trainable_layers=trainable_layers,
            tracking=self.stage_tracking("finetune"),
            constant_lr=constant_lr,
        )
        if not finished:
            raise KeyboardInterrupt(f"{c.method} training stopped; rerun to resume from the last checkpoint")
        return trained

    def load_model(self, spec: str) -> Any:
        from workbench.distribution import process_device
        from workbench.models import load_model

        return load_model(spec, device=process_device(self.cfg.device), dtype=self.cfg.dtype).model

    def describe(self, data: dict) -> Any:
        from workbench.io import atomic_dir
        from workbench.methods.wrappers import write_descriptor

        with atomic_dir(self.out) as tmp:
            write_descriptor(tmp, {"method": self.cfg.method, "base": spec_for_descriptor(self.cfg.model), **data})
            self.tokenizer.save_pretrained(tmp)  # so tools that read the folder's tokenizer find it
        return self.load_model(str(self.out))

    def num_layers(self) -> int:
        from transformers import AutoConfig

        from workbench.models import EMBEDDED_NAMES, embedded_model_dir, tiny_model

        spec = self.cfg.model
        if spec == "tiny":
            return tiny_model().model.config.num_hidden_layers  # built in-process; a few milliseconds
        source = str(embedded_model_dir()) if spec in EMBEDDED_NAMES else spec
        try:
            return int(AutoConfig.from_pretrained(source).num_hidden_layers)
        except (OSError, ValueError, AttributeError):
            return int(self.load_baseline().model.config.num_hidden_layers)

    def check_model_spec(self, spec: str) -> None:
        from workbench.models import resolve_spec

        resolve_spec(spec)
