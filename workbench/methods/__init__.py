"""Unlearning methods, each a :class:`Method` in a module of its own, listed in :mod:`workbench.methods.registry`.

| method | what it does | stages it runs | ``unlearned/`` |
|---|---|---|---|
| ``whp`` | the paper: reinforce, generic labels, finetune (workbench/run.py) | all | HF model |
| ``whp_test_time`` | logits mixed at inference, no finetuning | reinforce, finetune, report | descriptor |
| ``ga``, ``graddiff``, ``npo``, ``simnpo``, ``rmu`` | a training loss on target (and retain) text | finetune, report | HF model |
| ``prompt`` | a system instruction to not know the target | finetune, report | descriptor |

The ``finetune`` stage is where each method writes ``unlearned/``: :meth:`Method.run_stage` for every method but
``whp``, whose stages are still the run's own. The interface is :mod:`workbench.methods.base`; the run's side of
it (the :class:`StageContext` with the training services) is :mod:`workbench.methods.context`. This package's
import loads no torch: the config reads the registry. See docs/methods.md and docs/architecture.md.
"""

from __future__ import annotations

from workbench.methods.base import Method, StageContext, TrainedMethod
from workbench.methods.registry import METHODS, get, names, register

__all__ = ["Method", "TrainedMethod", "StageContext", "METHODS", "get", "names", "register"]
