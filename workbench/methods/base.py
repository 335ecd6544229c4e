"""The method interface: what an unlearning method declares, and the one object it receives from the run.

A method is a :class:`Method` subclass in one module (``workbench/methods/ga.py`` and the others), listed in
``workbench/methods/registry.py``. It declares its name, summary, settings dataclass (the ``methods.<name>``
section of the run config), the run stages it needs and whether it trains weights or reads the reinforced model;
it checks its settings (:meth:`Method.validate`, when the config is read; :meth:`Method.check`, before any stage
runs), fingerprints its output, and runs the stages in ``own_stages`` (:meth:`Method.run_stage`).

A method sits below the config (the config builds ``methods:`` from the registry), so it imports only the core
(errors, hashing, losses, layers) and never the run, the Trainer or the model loader: everything else comes
through the :class:`StageContext` the run builds, whose training services (``train``, ``load_model``,
``describe``, ...) are implemented in ``workbench/methods/context.py``. docs/architecture.md ("Adding a method")
walks through a whole example.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workbench.errors import WorkbenchError
from workbench.hashing import corpus_fingerprint, stable_hash

__all__ = [
    "METHOD_VERSION",
    "LossFn",
    "Method",
    "TrainedMethod",
    "TrainSetup",
    "TrainingShape",
    "Tuning",
    "TRIALS",
    "RunInputs",
    "StageContext",
    "settings_help",
    "with_overrides",
]

METHOD_VERSION = 2  # bump when a method's training changes, so finished runs retrain

# loss(model, inputs, frozen) -> (loss, parts): ``inputs`` holds input_ids / attention_mask of target blocks and,
# with a retain term, retain_ids / retain_mask; ``frozen()`` is a context manager giving the frozen starting model
LossFn = Callable[[Any, dict, Callable], tuple[Any, dict]]


def settings_help(text: str) -> dict:
    """A settings field's metadata: its one-line help, which `workbench config` and docs/config.md show."""
    return {"help": text}


class RunInputs(Protocol):
    """What a run offers every method: its config, directory, pack, tokenizer, blocks, retain documents, progress
    flag, Trainer callbacks and log, the baseline and a stage's tracking (a :class:`workbench.run.Run`)."""

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


class StageContext(RunInputs, Protocol):
    """What a method reads and calls of its run (public names only; the run builds it, the method never sees it).

    Inputs: the run config ``cfg``, the method's ``settings`` section (``cfg.methods.<name>``; None for a method
    without settings), the run directory ``dir`` and ``out``, the folder the stage writes (``unlearned/``), the
    pack, tokenizer, target and retain blocks, retain documents, the progress flag, Trainer callbacks and ``log``.
    Services: :meth:`train` (the shared Trainer path), :meth:`load_model`, :meth:`describe` (write a descriptor
    model), :meth:`num_layers` and :meth:`check_model_spec`.
    """

    settings: Any
    out: Path

    def require(self, stage: str, before: str) -> None: ...

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
        """Train ``model`` with the loss ``make_loss(model)`` on the target blocks (and ``retain``), through the
        Trainer path WHP's finetuning takes (checkpoints, accelerate, tracking); save it to ``out``; return it."""
        ...

    def load_model(self, spec: str) -> Any:
        """A model spec loaded on the run's device and dtype (the module, not its tokenizer)."""
        ...

    def describe(self, data: dict) -> Any:
        """Write ``out`` as a descriptor (``data`` with the base model's spec, and the tokenizer) and load it."""
        ...

    def num_layers(self) -> int:
        """The number of decoder layers of the run's model (read from its config, not loaded when avoidable)."""
        ...

    def check_model_spec(self, spec: str) -> None:
        """Raise WorkbenchError naming ``spec`` unless it names a model."""
        ...


@dataclass(frozen=True)
class TrainingShape:
    """What a training method adds to the memory of plain finetuning (``workbench plan`` reads it)."""

    extra_reference: bool = False  # a second frozen model beside the trained one
    reference_logits: bool = False  # the frozen model's logits on the target batch (no graph)
    layers_run: int | None = None  # only the first n decoder layers run (no logits); None: the whole model


TRIALS = 9  # every method's dev budget in ``workbench tune``: two knobs of three values each


@dataclass(frozen=True)
class Tuning:
    """How ``workbench tune`` tunes a method, written down before any trial runs: its knobs (config keys, each with
    its values, in order of importance) and the trials they make, every combination of the values (two knobs of
    three values: the 3 x 3 = :data:`TRIALS` every method gets). A method with one setting that matters (``prompt``)
    has one knob, and fewer trials."""

    knobs: dict[str, list]

    def trials(self) -> list[dict[str, Any]]:
        """The settings of every trial, ``{key: value}``, the first knob's values outermost."""
        keys = list(self.knobs)
        return [dict(zip(keys, combo)) for combo in itertools.product(*self.knobs.values())]


class Method:
    """One unlearning method. Subclasses set the class attributes and override the hooks they need."""

    name: str = ""
    summary: str = ""  # one line, for the model card, `workbench config` and the docs
    settings: type | None = None  # its @dataclass of settings (methods.<name>); None: no section
    stages: tuple[str, ...] = ("finetune", "report")  # the run stages it needs, in order
    own_stages: tuple[str, ...] = ("finetune",)  # of those, the ones run_stage runs (the rest are the run's)
    trains: bool = True  # finetunes weights (else unlearned/ is a descriptor the workbench loads)
    uses_reinforced: bool = False  # reads the reinforced model
    tuning: Tuning | None = None

    # ranges every method's fields of these names share (methods.<name>.<field>)
    POSITIVE = ("learning_rate", "epochs", "beta", "steering_scale")
    NON_NEGATIVE = ("retain_weight", "target_weight", "alpha")

    def validate(self, settings: Any) -> None:
        """Checks of the settings alone, when the config is read (a WorkbenchError names methods.<name>.<key>)."""
        for key in self.POSITIVE:
            v = getattr(settings, key, None)
            if v is not None and v <= 0:
                raise WorkbenchError(f"methods.{self.name}.{key}: must be > 0, got {v}")
        for key in self.NON_NEGATIVE:
            v = getattr(settings, key, None)
            if v is not None and v < 0:
                raise WorkbenchError(f"methods.{self.name}.{key}: must be >= 0, got {v}")

    def check(self, ctx: StageContext) -> None:
        """Checks that need the model or the inputs, before any stage runs."""

    def fingerprint(self, ctx: StageContext, target: tuple, reinforce: str) -> str:
        """The fingerprint of the ``finetune`` stage: what decides whether a finished ``unlearned/`` is reused.
        ``target``: the target blocks' key; ``reinforce``: the reinforce stage's fingerprint. The default (for a
        training method): the target, the settings, the optimiser settings and the retain text."""
        c, t = ctx.cfg, ctx.cfg.target
        retain = (corpus_fingerprint(ctx.retain_documents), t.retain_block_size, t.max_retain_blocks)
        return stable_hash("method", self.name, target, ctx.settings, c.finetune, retain, METHOD_VERSION)

    def run_stage(self, stage: str, ctx: StageContext) -> tuple[Any, dict]:
        """Run one of ``own_stages``: for ``finetune``, write ``ctx.out`` and return (the unlearned model, extra
        fields for the stage record)."""
        raise WorkbenchError(f"method {self.name!r} does not run the {stage} stage itself")

    def training_shape(self, settings: Any, num_layers: int) -> TrainingShape:
        """What its training keeps in memory beyond plain finetuning (``workbench plan``)."""
        return TrainingShape()


@dataclass
class TrainSetup:
    """How a :class:`TrainedMethod` trains: the loss, the optimiser settings and what the stage record adds."""

    make_loss: Callable[[Any], LossFn]
    train_cfg: Any
    reference: Any = None  # a frozen reference model; None: the starting model (adapter off, or a frozen copy)
    trainable_layers: list[int] | None = None  # full training: only these layers' MLP down-projections
    constant_lr: bool = False
    extra: dict = field(default_factory=dict)


class TrainedMethod(Method):
    """A method that trains the baseline with a loss on target (and retain) blocks: override :meth:`loss`, and
    :meth:`setup` when it needs more than the loss (a reference model, a layer, a schedule)."""

    def loss(self, settings: Any) -> LossFn:
        raise NotImplementedError(f"method {self.name!r} defines no loss")

    def setup(self, ctx: StageContext, base: Any, train_cfg: Any) -> TrainSetup:
        """``base``: the loaded baseline (``.model``, ``.tokenizer``); ``train_cfg``: finetune's settings with the
        method's learning_rate / epochs overrides."""
        settings = ctx.settings
        return TrainSetup(make_loss=lambda model: self.loss(settings), train_cfg=train_cfg)

    def run_stage(self, stage: str, ctx: StageContext) -> tuple[Any, dict]:
        if stage != "finetune":
            return super().run_stage(stage, ctx)
        train_cfg = with_overrides(ctx.cfg.finetune, ctx.settings)
        base = ctx.load_baseline()
        weight = getattr(ctx.settings, "retain_weight", 0.0)
        retain = [b.input_ids for b in ctx.retain_blocks] if weight > 0 else None
        if weight > 0 and not retain:
            raise WorkbenchError(
                f"methods.{self.name}.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
            )
        s = self.setup(ctx, base, train_cfg)
        ctx.log(
            f"[finetune] method {self.name}: {len(ctx.blocks)} target blocks, {len(retain or [])} retain blocks, "
            f"lr {s.train_cfg.learning_rate}, {s.train_cfg.epochs} epochs ({s.train_cfg.weights})"
        )
        model = ctx.train(
            base.model,
            s.make_loss,
            s.train_cfg,
            retain,
            reference=s.reference,
            trainable_layers=s.trainable_layers,
            constant_lr=s.constant_lr,
        )
        return model, s.extra


def with_overrides(train_cfg: Any, section: Any) -> Any:
    """The finetune section's optimiser settings with a method's ``learning_rate`` / ``epochs`` overrides."""
    over = {k: getattr(section, k) for k in ("learning_rate", "epochs") if getattr(section, k, None) is not None}
    return dataclasses.replace(train_cfg, **over)
