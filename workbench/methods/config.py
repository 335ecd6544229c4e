"""Settings of the unlearning methods beside WHP: one dataclass per method, gathered in :class:`MethodsConfig`.

The run config picks a method with ``method:`` and tunes it under ``methods.<name>``; the optimiser settings
(LoRA or full, learning rate, epochs, batch size) come from the ``finetune:`` section, shared by every method that
trains. Defaults follow each method's paper, scaled to the embedded 135M model (docs/methods.md gives the
papers' own values beside ours).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.errors import WorkbenchError

__all__ = [
    "METHOD_NAMES",
    "GAConfig",
    "GradDiffConfig",
    "NPOConfig",
    "SimNPOConfig",
    "RMUConfig",
    "TestTimeConfig",
    "PromptConfig",
    "MethodsConfig",
    "check_method_name",
]

# whp: the paper's engine (reinforce, labels, finetune); the others live in workbench/methods/
METHOD_NAMES = ("whp", "whp_test_time", "ga", "graddiff", "npo", "simnpo", "rmu", "prompt")

DEFAULT_SYSTEM_PROMPT = (
    "You have never read, seen or heard of {title} or anything in it. If a text mentions it, you do not know the "
    "names, places, events or facts it contains; continue the text as someone who has never heard of {title} would."
)


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class GAConfig:
    """Gradient ascent on the target text (Jang et al. 2023, 'Knowledge Unlearning'; the TOFU baseline)."""

    learning_rate: float | None = field(
        default=None, metadata=_help("overrides finetune.learning_rate for this method (null: finetune's)")
    )
    epochs: float | None = field(default=None, metadata=_help("overrides finetune.epochs (null: finetune's)"))


@dataclass
class GradDiffConfig(GAConfig):
    """Gradient difference: ascent on the target, descent on retain text (Liu et al. 2022; TOFU's 'Grad. Diff.')."""

    forget_weight: float = field(default=1.0, metadata=_help("weight of the ascent term on the target (TOFU: 1)"))
    retain_weight: float = field(default=1.0, metadata=_help("weight of the NLL term on retain text (TOFU: 1)"))


@dataclass
class NPOConfig(GAConfig):
    """Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), with its retain term (NPO-RT)."""

    beta: float = field(default=0.1, metadata=_help("inverse temperature of the log-ratio (paper: 0.1)"))
    forget_weight: float = field(
        default=1.0, metadata=_help("weight of the NPO term (the authors' npo_coeff: 1 on TOFU)")
    )
    retain_weight: float = field(
        default=1.0, metadata=_help("weight of the NLL term on retain text (the authors' grad_diff_coeff, NPO-RT: 1)")
    )
    reference: str | None = field(
        default="baseline",
        metadata=_help(
            "reference model: 'baseline' (the run's model, frozen) or a model spec; NPO cannot run without one"
        ),
    )


@dataclass
class SimNPOConfig(GAConfig):
    """SimNPO: NPO without a reference model, length-normalised (Fan et al. 2024, arXiv 2410.07163)."""

    beta: float = field(default=2.5, metadata=_help("inverse temperature (the authors' TOFU forget05: 2.5)"))
    gamma: float = field(
        default=0.0, metadata=_help("reward margin, subtracted from the mean NLL inside beta (the authors' TOFU: 0)")
    )
    forget_weight: float = field(
        default=0.1375,
        metadata=_help(
            "weight of the SimNPO term (the authors' npo_coeff: 0.1375 on TOFU forget05, 0.125 on forget10)"
        ),
    )
    retain_weight: float = field(
        default=1.0, metadata=_help("weight of the NLL term on retain text (the authors' grad_diff_coeff: 1)")
    )


@dataclass
class RMUConfig(GAConfig):
    """Representation misdirection for unlearning (Li et al. 2024, 'The WMDP Benchmark', arXiv 2403.03218)."""

    layer: int | None = field(
        default=None,
        metadata=_help(
            "decoder layer whose output is steered (0-based); null: the paper's layer 7 of 32, scaled to the model's depth"
        ),
    )
    steering_coeff: float | None = field(
        default=None,
        metadata=_help(
            "norm c of the random control vector; null: scale x the mean activation norm at that layer "
            "(adaptive RMU, Dang et al. 2024), which carries the paper's c=6.5 over to another model's scale"
        ),
    )
    steering_scale: float = field(default=5.0, metadata=_help("with steering_coeff null: c = this x mean norm"))
    retain_weight: float = field(
        default=1200.0, metadata=_help("alpha, weight of the retain MSE (paper: 1200 on zephyr-7b)")
    )
    seed: int = field(default=0, metadata=_help("seeds the random control vector"))
    full_rank: bool = field(
        default=True,
        metadata=_help(
            "train the full-rank MLP down-projections of layers l-2..l, as the authors do (their --layer_ids 5,6,7 "
            "--param_ids 6), whatever finetune.method says; false: finetune.method (LoRA or full) on every layer"
        ),
    )
    constant_lr: bool = field(
        default=True,
        metadata=_help(
            "a constant learning rate, as the authors' AdamW without a schedule (false: finetune's linear decay)"
        ),
    )


@dataclass
class TestTimeConfig:
    """WHP at inference: logits v_base - alpha * relu(v_reinf - v_base) on the same input (MUSE's test-time WHP)."""

    alpha: float = field(default=5.0, metadata=_help("strength alpha of the mixing (the demo's generic-label alpha)"))


@dataclass
class PromptConfig:
    """A system instruction to not know the target: the baseline every reviewer asks for."""

    system: str = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata=_help("the instruction; {title} becomes the pack's title (or 'the target text')"),
    )


@dataclass
class MethodsConfig:
    """Per-method settings; only the section of the chosen ``method`` is read."""

    ga: GAConfig = field(default_factory=GAConfig, metadata=_help("gradient ascent"))
    graddiff: GradDiffConfig = field(default_factory=GradDiffConfig, metadata=_help("gradient difference"))
    npo: NPOConfig = field(default_factory=NPOConfig, metadata=_help("negative preference optimisation"))
    simnpo: SimNPOConfig = field(default_factory=SimNPOConfig, metadata=_help("reference-free NPO"))
    rmu: RMUConfig = field(default_factory=RMUConfig, metadata=_help("representation misdirection"))
    whp_test_time: TestTimeConfig = field(default_factory=TestTimeConfig, metadata=_help("WHP at inference"))
    prompt: PromptConfig = field(default_factory=PromptConfig, metadata=_help("system instruction"))

    def validate(self, method: str) -> None:
        check_method_name(method)
        sec = getattr(self, method, None)
        where = f"methods.{method}"
        for name in ("learning_rate", "epochs"):
            v = getattr(sec, name, None)
            if v is not None and v <= 0:
                raise WorkbenchError(f"{where}.{name}: must be > 0, got {v}")
        for name in ("beta", "steering_scale"):
            v = getattr(sec, name, None)
            if v is not None and v <= 0:
                raise WorkbenchError(f"{where}.{name}: must be > 0, got {v}")
        for name in ("retain_weight", "forget_weight", "alpha"):
            v = getattr(sec, name, None)
            if v is not None and v < 0:
                raise WorkbenchError(f"{where}.{name}: must be >= 0, got {v}")
        if method == "npo" and not self.npo.reference:
            raise WorkbenchError(
                "methods.npo.reference: NPO needs a reference model (log-ratio against it); set it to 'baseline' "
                "or a model spec, or use method: simnpo, the reference-free variant"
            )
        if method == "rmu":
            if self.rmu.layer is not None and self.rmu.layer < 0:
                raise WorkbenchError(f"methods.rmu.layer: must be >= 0, got {self.rmu.layer}")
            if self.rmu.steering_coeff is not None and self.rmu.steering_coeff <= 0:
                raise WorkbenchError(f"methods.rmu.steering_coeff: must be > 0, got {self.rmu.steering_coeff}")


def check_method_name(method: str) -> None:
    if method not in METHOD_NAMES:
        raise WorkbenchError(f"method: unknown method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
