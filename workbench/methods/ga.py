"""Gradient ascent on the target text (Jang et al. 2023, 'Knowledge Unlearning'; the TOFU baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.methods.base import LossFn, TrainedMethod, Tuning, settings_help

__all__ = ["GAConfig", "ga", "GA"]

# the learning rates `workbench tune` tries for every method that trains with finetune's optimiser


@dataclass
class GAConfig:
    """Gradient ascent on the target text (Jang et al. 2023, 'Knowledge Unlearning'; the TOFU baseline)."""

    learning_rate: float | None = field(
        default=None, metadata=settings_help("overrides finetune.learning_rate for this method (null: finetune's)")
    )
    epochs: float | None = field(default=None, metadata=settings_help("overrides finetune.epochs (null: finetune's)"))


def ga(settings: GAConfig | None) -> LossFn:
    """The mean token NLL of the target, negated."""
    from workbench.methods import losses as L

    def loss(model, inputs, frozen):
        f = L.ga_loss(*L.model_logprobs(model, inputs["input_ids"], inputs["attention_mask"]))
        return f, {"forget_nll": -float(f.detach())}

    return loss


class GA(TrainedMethod):
    name = "ga"
    summary = "gradient ascent on the target"
    settings = GAConfig
    tuning = Tuning({"finetune.learning_rate": [2e-5, 6e-5, 2e-4], "finetune.epochs": [1.0, 2.0, 3.0]})

    def loss(self, settings: GAConfig) -> LossFn:
        return ga(settings)
