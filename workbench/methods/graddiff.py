"""Gradient difference: ascent on the target, descent on retain text (Liu et al. 2022; TOFU's 'Grad. Diff.')."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.errors import WorkbenchError
from workbench.methods.base import LossFn, StageContext, TrainedMethod, Tuning, settings_help
from workbench.methods.ga import GAConfig

__all__ = ["GradDiffConfig", "graddiff", "GradDiff"]


@dataclass
class GradDiffConfig(GAConfig):
    """Gradient difference: ascent on the target, descent on retain text (Liu et al. 2022; TOFU's 'Grad. Diff.')."""

    target_weight: float = field(
        default=1.0,
        # its name before the rename (config.KEY_ALIASES): the fingerprints are unchanged
        metadata=settings_help("weight of the ascent term on the target (TOFU: 1)")
        | {"fingerprint_name": "forget_weight"},
    )
    retain_weight: float = field(default=1.0, metadata=settings_help("weight of the NLL term on retain text (TOFU: 1)"))


def graddiff(settings: GradDiffConfig) -> LossFn:
    """``target_weight * (-NLL(target)) + retain_weight * NLL(retain)``."""
    from workbench.methods import losses as L

    def loss(model, inputs, frozen):
        t_logp, t_mask = L.model_logprobs(model, inputs["input_ids"], inputs["attention_mask"])
        if settings.retain_weight > 0 and "retain_ids" in inputs:
            r_logp, r_mask = L.model_logprobs(model, inputs["retain_ids"], inputs["retain_mask"])
        else:  # no retain term: an empty mask makes its NLL 0
            r_logp, r_mask = t_logp[:, :0], t_mask[:, :0]
        total = L.graddiff_loss(t_logp, t_mask, r_logp, r_mask, settings.target_weight, settings.retain_weight)
        parts = {"forget_nll": float(L.mean_nll(t_logp, t_mask).detach())}  # the logged name stays
        if r_mask.numel():
            parts["retain_nll"] = float(L.mean_nll(r_logp, r_mask).detach())
        return total, parts

    return loss


class GradDiff(TrainedMethod):
    name = "graddiff"
    summary = "ascent on target, descent on retain"
    settings = GradDiffConfig
    tuning = Tuning({"finetune.learning_rate": [6e-5, 2e-4, 6e-4], "methods.graddiff.retain_weight": [1.0, 3.0, 10.0]})

    def check(self, ctx: StageContext) -> None:
        if ctx.settings.retain_weight > 0 and not ctx.retain_blocks:
            raise WorkbenchError(
                "methods.graddiff.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
            )

    def loss(self, settings: GradDiffConfig) -> LossFn:
        return graddiff(settings)
