"""The paper's method (Eldan and Russinovich 2023, "Who's Harry Potter?"): reinforce a model on the target, score
its tokens, make generic labels through the anchor map, and finetune the baseline on them.

Its settings are the run config's own sections (reinforce, scoring, labels, finetune), not a ``methods.whp``
section, and its stage bodies live in the training layer, in workbench/methods/whp_stages.py (over
workbench/reinforce.py, scoring.py, labels.py and finetune.py), which this declaration does not import: the run
reaches them through workbench/methods/context.py (``stage_body``, ``stage_fingerprint``), so ``own_stages`` is
empty. Moving them behind :meth:`Method.run_stage` is the remaining step (docs/architecture.md, "What is left").
"""

from __future__ import annotations

from workbench.methods.base import Method, Tuning

__all__ = ["WHP"]


class WHP(Method):
    name = "whp"
    summary = "the paper's method"
    settings = None
    stages = ("reinforce", "score", "labels", "finetune", "report")
    own_stages = ()
    trains = True
    uses_reinforced = True
    tuning = Tuning({"finetune.learning_rate": [6e-4, 2e-3, 6e-3], "finetune.retain_weight": [3.0, 10.0, 30.0]})
