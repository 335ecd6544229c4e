"""Forget quality over training steps: a Trainer callback that measures, every few optimiser steps, the truth
ratios of the model being trained on the target's questions and their KS p-value against a reference model's
(TOFU's forget quality, workbench/eval/ground_truth.py).

Pass :class:`ForgetQualityCurve` in a run's ``callbacks`` and it records a row at the start of every training
stage and every ``every`` steps: during the implant stage forget quality falls from 1.0 as the model learns the
target; during unlearning it should climb back. Each measurement scores every question with its paraphrased and
perturbed answers (a few forward passes of short texts), so on a large model keep ``every`` high. Stages that are
already finished do not train, so a resumed run records nothing for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from workbench.eval.ground_truth import forget_quality, score_qa
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.models import LoadedModel
from workbench.pack import QAProbe
from workbench.rundir import CHECKPOINT_SUFFIX, trained_stage

__all__ = ["ForgetQualityCurve", "curve_figure"]


class ForgetQualityCurve(TrainerCallback):
    """Records ``stage, step, forget_quality, truth_ratio`` (mean of min(R, 1/R)) while a model trains.

    ``probes``: the target's QA probes; ``reference_truth_ratios``: the reference model's truth ratios on the same
    probes (``score_qa(reference, probes, ...)["truth_ratio"]``); ``stages``: the training stages to measure
    (named as in the run: implant, reinforce, finetune)."""

    def __init__(
        self,
        tokenizer,
        probes: Sequence[QAProbe],
        reference_truth_ratios: Sequence[float],
        every: int = 5,
        stages: Sequence[str] = ("implant", "finetune"),
        batch_size: int = 16,
    ):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.tokenizer, self.probes, self.every, self.stages = tokenizer, list(probes), every, tuple(stages)
        self.reference = np.asarray(reference_truth_ratios, dtype=float)
        self.loglik = LoglikelihoodConfig(batch_size=batch_size, progress=False)
        self.rows: list[dict] = []
        self._stage: str | None = None

    @classmethod
    def against(
        cls,
        reference: str,
        probes: Sequence[QAProbe],
        every: int = 5,
        stages: Sequence[str] = ("implant", "finetune"),
        device: str | None = None,
        dtype: str | None = None,
    ) -> "ForgetQualityCurve":
        """A curve against the model ``reference`` (a spec: for an implanted run, ``run.reference_spec``), whose
        truth ratios on ``probes`` are computed now."""
        from workbench.models import load_model

        ref = load_model(reference, device=device, dtype=dtype)
        ratios = score_qa(ref, probes, LoglikelihoodConfig(batch_size=16, progress=False))["truth_ratio"].to_numpy()
        return cls(ref.tokenizer, probes, ratios, every, stages)

    def _measure(self, model, step: int) -> None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                df = score_qa(LoadedModel(model, self.tokenizer, "training", "training", 0.0), self.probes, self.loglik)
        finally:
            if was_training:
                model.train()
        r = df["truth_ratio"].to_numpy()
        self.rows.append(
            {
                "stage": self._stage,
                "step": step,
                "forget_quality": forget_quality(r, self.reference),
                "truth_ratio": float(np.minimum(r, 1 / r).mean()),
            }
        )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        name = Path(args.output_dir).name
        self._stage = trained_stage(name) or name.removesuffix(CHECKPOINT_SUFFIX)
        if self._stage in self.stages and model is not None:
            self._measure(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self._stage not in self.stages or model is None:
            return
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._measure(model, state.global_step)

    def frame(self) -> pd.DataFrame:
        """The recorded rows (one per measurement)."""
        return pd.DataFrame(self.rows, columns=["stage", "step", "forget_quality", "truth_ratio"])


def curve_figure(frame: pd.DataFrame, title: str = "Forget quality over training steps"):
    """Forget quality (log scale) against the step, one panel per stage; the 0.05 line marks where the KS test
    stops telling the model from the reference."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    stages = list(dict.fromkeys(frame["stage"]))
    fig = make_subplots(rows=1, cols=max(len(stages), 1), subplot_titles=stages, shared_yaxes=True)
    for i, stage in enumerate(stages, 1):
        g = frame[frame["stage"] == stage]
        fig.add_trace(
            go.Scatter(
                x=g["step"],
                y=g["forget_quality"].clip(lower=1e-300),
                mode="lines+markers",
                name=stage,
                hovertemplate="step %{x}<br>forget quality %{y:.3g}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        fig.add_hline(y=0.05, line_dash="dot", line_color="grey", row=1, col=i)
        fig.update_xaxes(title_text="optimiser step", row=1, col=i)
    fig.update_yaxes(type="log", title_text="forget quality (KS p-value vs reference)", row=1, col=1)
    fig.update_layout(title=title, showlegend=False, height=380)
    return fig
