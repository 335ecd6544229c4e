"""Unlearning methods beside the paper's WHP, in the same run framework (``method:`` in the run config).

| method | what it does | stages it runs | ``unlearned/`` |
|---|---|---|---|
| ``whp`` | the paper: reinforce, generic labels, finetune (workbench/run.py) | all | HF model |
| ``whp_test_time`` | logits mixed at inference, no finetuning | reinforce, finetune, report | descriptor |
| ``ga``, ``graddiff``, ``npo``, ``simnpo``, ``rmu`` | a training loss on target (and retain) text | finetune, report | HF model |
| ``prompt`` | a system instruction to not know the target | finetune, report | descriptor |

The ``finetune`` stage is where each method writes ``unlearned/``; :func:`unlearn` is that stage for every
method but ``whp``. See docs/methods.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.errors import WorkbenchError
from workbench.methods.config import METHOD_NAMES, MethodsConfig, check_method_name

__all__ = [
    "METHODS",
    "MethodSpec",
    "MethodsConfig",
    "METHOD_NAMES",
    "method_stages",
    "check_method",
    "fingerprint",
    "unlearn",
    "rmu_layer",
    "MethodRun",
]

METHOD_VERSION = 2  # bump when a method's training changes, so finished runs retrain


class MethodRun(Protocol):
    """What a method reads and calls of its run (a :class:`workbench.run.Run`; the methods sit below the run)."""

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
    def is_done(self, stage: str) -> bool: ...
    def stage_tracking(self, stage: str) -> Any: ...
    def _finish(self, stage: str, seconds: float, **extra) -> None: ...
    def _require(self, stage: str, before: str) -> None: ...


@dataclass(frozen=True)
class MethodSpec:
    name: str
    stages: tuple[str, ...]  # the run stages it needs, in order
    trains: bool  # finetunes weights (else writes a descriptor)
    uses_reinforced: bool = False
    summary: str = ""


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("whp", ("reinforce", "score", "labels", "finetune", "report"), True, True, "the paper's method"),
        MethodSpec("whp_test_time", ("reinforce", "finetune", "report"), False, True, "WHP's logit mix at inference"),
        MethodSpec("ga", ("finetune", "report"), True, summary="gradient ascent on the target"),
        MethodSpec("graddiff", ("finetune", "report"), True, summary="ascent on target, descent on retain"),
        MethodSpec("npo", ("finetune", "report"), True, summary="negative preference optimisation + retain"),
        MethodSpec("simnpo", ("finetune", "report"), True, summary="reference-free NPO + retain"),
        MethodSpec("rmu", ("finetune", "report"), True, summary="representation misdirection at one layer + retain"),
        MethodSpec("prompt", ("finetune", "report"), False, summary="a system instruction to not know the target"),
    )
}
assert tuple(METHODS) == METHOD_NAMES


def method_stages(name: str) -> tuple[str, ...]:
    check_method_name(name)
    return METHODS[name].stages


def _num_layers(run: "MethodRun") -> int:
    from transformers import AutoConfig

    from workbench.models import EMBEDDED_NAMES, embedded_model_dir

    spec = run.cfg.model
    if spec == "tiny":
        from workbench.models import tiny_model

        return tiny_model().model.config.num_hidden_layers  # built in-process; a few milliseconds
    source = str(embedded_model_dir()) if spec in EMBEDDED_NAMES else spec
    try:
        return int(AutoConfig.from_pretrained(source).num_hidden_layers)
    except (OSError, ValueError, AttributeError):
        return int(run.load_baseline().model.config.num_hidden_layers)


def rmu_layer(cfg: MethodsConfig, num_layers: int) -> int:
    """The steered layer: the configured one, or the paper's 7 of 32 scaled to ``num_layers``."""
    layer = cfg.rmu.layer if cfg.rmu.layer is not None else max(0, min(num_layers - 1, round(7 * num_layers / 32)))
    if not 0 <= layer < num_layers:
        raise WorkbenchError(
            f"methods.rmu.layer: {layer} is out of range; the model has {num_layers} decoder layers (0 to {num_layers - 1})"
        )
    return layer


def check_method(run: "MethodRun") -> None:
    """Settings that need the model or the inputs: checked before any stage runs."""
    c = run.cfg
    if c.method == "rmu":
        rmu_layer(c.methods, _num_layers(run))
    if c.method == "npo" and c.methods.npo.reference != "baseline":
        from workbench.models import resolve_spec

        resolve_spec(c.methods.npo.reference)  # names the spec if it does not exist
    if c.method == "graddiff" and c.methods.graddiff.retain_weight > 0 and not run.retain_blocks:
        raise WorkbenchError(
            "methods.graddiff.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
        )


def fingerprint(run: "MethodRun", target: tuple, reinforce: str) -> str:
    """The fingerprint of the ``finetune`` stage (where the method writes ``unlearned/``) of a non-WHP method."""
    from workbench.config import stable_hash
    from workbench.corpus import corpus_fingerprint

    c, t = run.cfg, run.cfg.target
    section = getattr(c.methods, c.method)
    if c.method == "prompt":
        return stable_hash("method", c.method, c.model, section, run.pack.title if run.pack else None, METHOD_VERSION)
    if c.method == "whp_test_time":
        return stable_hash("method", c.method, reinforce, section, METHOD_VERSION)
    retain = (corpus_fingerprint(run.retain_documents), t.retain_block_size, t.max_retain_blocks)
    return stable_hash("method", c.method, target, section, c.finetune, retain, METHOD_VERSION)


def unlearn(run: "MethodRun"):
    """The ``finetune`` stage of a non-WHP method: train (or describe) the unlearned model into ``unlearned/``."""
    from workbench.distribution import process_device
    from workbench.models import load_model

    c = run.cfg
    out = run.dir / "unlearned"
    if run.is_done("finetune") and out.is_dir():
        return load_model(str(out), device=process_device(c.device), dtype=c.dtype).model
    t0 = time.perf_counter()
    spec = METHODS[c.method]
    if spec.trains:
        from workbench.methods.runner import train_for_run

        model, extra = train_for_run(run)
    else:
        from workbench.methods.runner import describe_for_run

        model, extra = describe_for_run(run)
    run._finish("finetune", time.perf_counter() - t0, method=c.method, **extra)
    return model
