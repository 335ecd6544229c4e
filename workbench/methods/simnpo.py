"""SimNPO: NPO without a reference model, length-normalised (Fan et al. 2024, arXiv 2410.07163)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.methods.base import LossFn, TrainedMethod, Tuning, settings_help
from workbench.methods.ga import GAConfig

__all__ = ["SimNPOConfig", "simnpo", "SimNPO"]


@dataclass
class SimNPOConfig(GAConfig):
    """SimNPO: NPO without a reference model, length-normalised (Fan et al. 2024, arXiv 2410.07163)."""

    beta: float = field(default=2.5, metadata=settings_help("inverse temperature (the authors' TOFU forget05: 2.5)"))
    gamma: float = field(
        default=0.0,
        metadata=settings_help("reward margin, subtracted from the mean NLL inside beta (the authors' TOFU: 0)"),
    )
    target_weight: float = field(
        default=0.1375,
        metadata=settings_help(
            "weight of the SimNPO term (the authors' npo_coeff: 0.1375 on TOFU forget05, 0.125 on forget10)"
        )
        | {"fingerprint_name": "forget_weight"},  # its name before the rename (config.KEY_ALIASES)
    )
    retain_weight: float = field(
        default=1.0, metadata=settings_help("weight of the NLL term on retain text (the authors' grad_diff_coeff: 1)")
    )


def simnpo(settings: SimNPOConfig) -> LossFn:
    """SimNPO's length-normalised term on the target, weighted, plus the retain NLL."""
    from workbench.methods import losses as L

    def loss(model, inputs, frozen):
        seq, n = L.sequence_logprobs(*L.model_logprobs(model, inputs["input_ids"], inputs["attention_mask"]))
        f = L.simnpo_loss(seq, n, settings.beta, settings.gamma)
        parts = {"forget_loss": float(f.detach())}
        return settings.target_weight * f + L.retain_nll(model, inputs, settings.retain_weight, parts), parts

    return loss


class SimNPO(TrainedMethod):
    name = "simnpo"
    summary = "reference-free NPO + retain"
    settings = SimNPOConfig
    tuning = Tuning({"finetune.learning_rate": [6e-5, 2e-4, 6e-4], "methods.simnpo.beta": [0.1, 0.3, 1.0]})

    def loss(self, settings: SimNPOConfig) -> LossFn:
        return simnpo(settings)
