"""Representation misdirection for unlearning (Li et al. 2024, 'The WMDP Benchmark', arXiv 2403.03218)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.methods.base import LossFn, StageContext, TrainedMethod, TrainingShape, TrainSetup, Tuning, settings_help
from workbench.methods.ga import GAConfig

__all__ = ["RMUConfig", "rmu", "rmu_layer", "RMU"]


@dataclass
class RMUConfig(GAConfig):
    """Representation misdirection for unlearning (Li et al. 2024, 'The WMDP Benchmark', arXiv 2403.03218)."""

    layer: int | None = field(
        default=None,
        metadata=settings_help(
            "decoder layer whose output is steered (0-based); null: the paper's layer 7 of 32, scaled to the model's depth"
        ),
    )
    steering_coeff: float | None = field(
        default=None,
        metadata=settings_help(
            "norm c of the random control vector; null: scale x the mean activation norm at that layer "
            "(adaptive RMU, Dang et al. 2024), which carries the paper's c=6.5 over to another model's scale"
        ),
    )
    steering_scale: float = field(default=5.0, metadata=settings_help("with steering_coeff null: c = this x mean norm"))
    retain_weight: float = field(
        default=1200.0, metadata=settings_help("alpha, weight of the retain MSE (paper: 1200 on zephyr-7b)")
    )
    seed: int = field(default=0, metadata=settings_help("seeds the random control vector"))
    full_rank: bool = field(
        default=True,
        metadata=settings_help(
            "train the full-rank MLP down-projections of layers l-2..l, as the authors do (their --layer_ids 5,6,7 "
            "--param_ids 6), whatever finetune.weights says; false: finetune.weights (LoRA or full) on every layer"
        ),
    )
    constant_lr: bool = field(
        default=True,
        metadata=settings_help(
            "a constant learning rate, as the authors' AdamW without a schedule (false: finetune's linear decay)"
        ),
    )


def rmu_layer(settings: RMUConfig, num_layers: int) -> int:
    """The steered layer: the configured one, or the paper's 7 of 32 scaled to ``num_layers``."""
    layer = settings.layer if settings.layer is not None else max(0, min(num_layers - 1, round(7 * num_layers / 32)))
    if not 0 <= layer < num_layers:
        raise WorkbenchError(
            f"methods.rmu.layer: {layer} is out of range; the model has {num_layers} decoder layers (0 to {num_layers - 1})"
        )
    return layer


def rmu(settings: RMUConfig, layer: int, control: Any) -> LossFn:
    """``mean ||h_l(target) - control||^2 + retain_weight * mean ||h_l(retain) - h_l^frozen(retain)||^2``."""
    import torch

    from workbench.methods import losses as L
    from workbench.methods.layers import layer_output

    def loss(model, inputs, frozen):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        h = layer_output(model, layer, ids, mask)
        f = L.rmu_target_loss(h, mask, control.to(h.device))
        parts = {"forget_mse": float(f.detach())}
        total = f
        if settings.retain_weight > 0 and "retain_ids" in inputs:
            r_ids, r_mask = inputs["retain_ids"], inputs["retain_mask"]
            hr = layer_output(model, layer, r_ids, r_mask)
            with frozen() as ref, torch.no_grad():
                hr0 = layer_output(ref, layer, r_ids, r_mask)
            r = L.rmu_retain_loss(hr, hr0, r_mask)
            parts["retain_mse"] = float(r.detach())
            total = total + settings.retain_weight * r
        return total, parts

    return loss


class RMU(TrainedMethod):
    name = "rmu"
    summary = "representation misdirection at one layer + retain"
    settings = RMUConfig
    tuning = Tuning({"finetune.learning_rate": [2e-3, 5e-3, 1e-2], "methods.rmu.steering_scale": [2.5, 5.0, 10.0]})

    def validate(self, settings: RMUConfig) -> None:
        super().validate(settings)
        if settings.layer is not None and settings.layer < 0:
            raise WorkbenchError(f"methods.rmu.layer: must be >= 0, got {settings.layer}")
        if settings.steering_coeff is not None and settings.steering_coeff <= 0:
            raise WorkbenchError(f"methods.rmu.steering_coeff: must be > 0, got {settings.steering_coeff}")

    def check(self, ctx: StageContext) -> None:
        rmu_layer(ctx.settings, ctx.num_layers())

    def setup(self, ctx: StageContext, base: Any, train_cfg: Any) -> TrainSetup:
        from workbench.methods.layers import rmu_coefficient, rmu_control_vector

        s = ctx.settings
        layer = rmu_layer(s, base.model.config.num_hidden_layers)
        target = [b.input_ids for b in ctx.blocks]
        coeff = s.steering_coeff or rmu_coefficient(
            base.model, layer, target, base.tokenizer.pad_token_id, s.steering_scale
        )
        control = rmu_control_vector(base.model.config.hidden_size, coeff, s.seed)
        layers = None
        if s.full_rank:  # the authors' parameters: full-rank down-projections of layers l-2..l
            layers = list(range(max(0, layer - 2), layer + 1))
            train_cfg = dataclasses.replace(train_cfg, weights="full")
        return TrainSetup(
            make_loss=lambda model: rmu(s, layer, control),
            train_cfg=train_cfg,
            trainable_layers=layers,
            constant_lr=s.constant_lr,
            extra={"layer": layer, "steering_coeff": round(coeff, 4)},
        )

    def training_shape(self, settings: RMUConfig, num_layers: int) -> TrainingShape:
        return TrainingShape(layers_run=rmu_layer(settings, num_layers) + 1)
