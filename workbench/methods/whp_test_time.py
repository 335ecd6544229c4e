"""WHP at inference: logits ``v_base - alpha * relu(v_reinf - v_base)`` on the same input, from the baseline and
the run's reinforced model (MUSE's test-time WHP); no weights change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.hashing import stable_hash
from workbench.methods.base import METHOD_VERSION, Method, StageContext, Tuning, settings_help

__all__ = ["TestTimeConfig", "WHPTestTime"]


@dataclass
class TestTimeConfig:
    """WHP at inference: logits v_base - alpha * relu(v_reinf - v_base) on the same input (MUSE's test-time WHP)."""

    alpha: float = field(
        default=5.0, metadata=settings_help("strength alpha of the mixing (the demo's generic-label alpha)")
    )


class WHPTestTime(Method):
    name = "whp_test_time"
    summary = "WHP's logit mix at inference"
    settings = TestTimeConfig
    stages = ("reinforce", "finetune", "report")
    trains = False
    uses_reinforced = True
    tuning = Tuning({"methods.whp_test_time.alpha": [0.5, 1.0, 2.0], "reinforce.learning_rate": [2e-4, 5e-4, 1e-3]})

    def fingerprint(self, ctx: StageContext, target: tuple, reinforce: str) -> str:
        return stable_hash("method", self.name, reinforce, ctx.settings, METHOD_VERSION)

    def run_stage(self, stage: str, ctx: StageContext) -> tuple[Any, dict]:
        if stage != "finetune":
            return super().run_stage(stage, ctx)
        ctx.require("reinforce", "finetune")
        reinforced = ctx.cfg.reinforce.path or "../reinforced"  # relative to unlearned/: the run directory can move
        return ctx.describe({"reinforced": str(reinforced), "alpha": ctx.settings.alpha}), {}
