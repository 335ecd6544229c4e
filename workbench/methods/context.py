"""The run's side of the method interface: a :class:`~workbench.methods.base.StageContext` over a run, with the
training services a method calls (the Trainer path, the model loader, descriptors), which the method modules
cannot import themselves (they sit below the config).

The run builds one with :class:`RunStageContext` and hands it to its method's ``check``, ``fingerprint`` and
``run_stage``; the run's inputs (pack, tokenizer, blocks) are read from the run when a method first asks.

The run names no method: it asks this module for the body of each stage (:func:`stage_body`), the fingerprint of
each stage after reinforce (:func:`stage_fingerprint`), the checks before a whole run (:func:`before_run`) and the
stages the config turns off (:func:`skipped`). A stage in the method's ``own_stages`` is the method's
(:meth:`~workbench.methods.base.Method.run_stage`, :meth:`~workbench.methods.base.Method.fingerprint`); the other
stages a method declares are the paper's pipeline's, in workbench/methods/whp_stages.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.methods import whp_stages
from workbench.methods.base import LossFn, Method, RunInputs

__all__ = [
    "RunStageContext",
    "before_run",
    "skipped",
    "spec_for_descriptor",
    "stage_body",
    "stage_fingerprint",
]


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


# -- the stages a method declares but does not run itself ------------------------------------------------------------
def stage_body(method: Method, stage: str) -> Callable[..., Any]:
    """The body of ``stage`` for ``method``, a stage it declares but does not run itself (not in ``own_stages``):
    the paper's pipeline's (workbench/methods/whp_stages.py). It takes the run and returns the stage's result."""
    if stage in method.own_stages or stage not in whp_stages.STAGES:
        raise WorkbenchError(f"method {method.name!r}: no shared body for its {stage} stage")
    return whp_stages.STAGES[stage]


def stage_fingerprint(method: Method, run: Any, stage: str, target: tuple, reinforce: str) -> str:
    """The fingerprint of ``stage`` (score, labels or finetune) for ``method``: the method's own for a stage it
    runs itself, else the pipeline's. ``target``: the target blocks' key; ``reinforce``: the reinforce stage's."""
    if stage in method.own_stages:
        return method.fingerprint(run.method_context(), target, reinforce)
    return whp_stages.fingerprint(run, stage, reinforce)


def before_run(method: Method, run: Any, stages: tuple[str, ...]) -> None:
    """Checks of a whole run of ``stages`` before any stage trains (the labels stage's anchors)."""
    whp_stages.before_run(run, stages, method.stages)


def skipped(method: Method, run: Any, stage: str) -> bool:
    """Whether the config turns ``stage`` off (``scoring.enabled: false``)."""
    return stage not in method.own_stages and whp_stages.skipped(run, stage)
