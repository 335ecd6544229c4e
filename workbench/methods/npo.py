"""Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), with its retain term (NPO-RT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.methods.base import LossFn, StageContext, TrainedMethod, TrainingShape, TrainSetup, Tuning, settings_help
from workbench.methods.ga import GAConfig

__all__ = ["NPOConfig", "npo", "NPO"]


@dataclass
class NPOConfig(GAConfig):
    """Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), with its retain term (NPO-RT)."""

    beta: float = field(default=0.1, metadata=settings_help("inverse temperature of the log-ratio (paper: 0.1)"))
    target_weight: float = field(
        default=1.0,
        metadata=settings_help("weight of the NPO term (the authors' npo_coeff: 1 on TOFU)")
        | {"fingerprint_name": "forget_weight"},  # its name before the rename (config.KEY_ALIASES)
    )
    retain_weight: float = field(
        default=1.0,
        metadata=settings_help("weight of the NLL term on retain text (the authors' grad_diff_coeff, NPO-RT: 1)"),
    )
    reference: str | None = field(
        default="baseline",
        metadata=settings_help(
            "reference model: 'baseline' (the run's model, frozen) or a model spec; NPO cannot run without one"
        ),
    )


def npo(settings: NPOConfig) -> LossFn:
    """NPO's term on the target against the frozen reference, weighted, plus the retain NLL."""
    import torch

    from workbench.methods import losses as L

    def loss(model, inputs, frozen):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        seq, _ = L.sequence_logprobs(*L.model_logprobs(model, ids, mask))
        with frozen() as ref, torch.no_grad():
            ref_seq, _ = L.sequence_logprobs(*L.model_logprobs(ref, ids, mask))
        f = L.npo_loss(seq, ref_seq, settings.beta)
        parts = {"forget_loss": float(f.detach()), "log_ratio": float((seq - ref_seq).mean().detach())}
        return settings.target_weight * f + L.retain_nll(model, inputs, settings.retain_weight, parts), parts

    return loss


class NPO(TrainedMethod):
    name = "npo"
    summary = "negative preference optimisation + retain"
    settings = NPOConfig
    tuning = Tuning({"finetune.learning_rate": [2e-4, 6e-4, 2e-3], "methods.npo.beta": [0.003, 0.01, 0.03]})

    def validate(self, settings: NPOConfig) -> None:
        super().validate(settings)
        if not settings.reference:
            raise WorkbenchError(
                "methods.npo.reference: NPO needs a reference model (log-ratio against it); set it to 'baseline' "
                "or a model spec, or use method: simnpo, the reference-free variant"
            )

    def check(self, ctx: StageContext) -> None:
        if ctx.settings.reference != "baseline":
            ctx.check_model_spec(ctx.settings.reference)  # names the spec if it does not exist

    def setup(self, ctx: StageContext, base: Any, train_cfg: Any) -> TrainSetup:
        s = super().setup(ctx, base, train_cfg)
        if ctx.settings.reference != "baseline":
            s.reference = ctx.load_model(ctx.settings.reference).requires_grad_(False)
        return s

    def loss(self, settings: NPOConfig) -> LossFn:
        return npo(settings)

    def training_shape(self, settings: NPOConfig, num_layers: int) -> TrainingShape:
        return TrainingShape(extra_reference=settings.reference != "baseline", reference_logits=True)
