"""The baseline and the reinforced model, behind one interface.

With a LoRA reinforced model there is one set of base weights in memory: the baseline is the same model with the
adapter disabled. A fully finetuned reinforced model is a second model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workbench.errors import WorkbenchError
from workbench.tensors import pad_batch  # re-exported: the pair is where callers look

__all__ = ["ModelPair", "pad_batch", "check_same_tokenizer", "generic_scores"]


def generic_scores(v_base, v_reinf, alpha: float):
    """``v_base - alpha * relu(v_reinf - v_base)``, the one home of the formula; torch tensors or numpy arrays of
    any matching shapes, e.g. [pos, vocab] logits or [n, k] stored top-k values."""
    if isinstance(v_base, torch.Tensor):
        return v_base - alpha * torch.relu(v_reinf - v_base)
    return v_base - alpha * np.maximum(v_reinf - v_base, 0.0)


def check_same_tokenizer(
    a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase, what: str = "reinforced model"
) -> None:
    """Raise unless the two tokenizers have the same vocabulary (logits must index the same tokens)."""
    if len(a) != len(b) or a.get_vocab() != b.get_vocab():
        raise WorkbenchError(
            f"the {what}'s tokenizer differs from the baseline's ({len(b)} vs {len(a)} tokens): "
            "generic labels need both models to share one vocabulary; train the reinforced model from the baseline"
        )


class ModelPair:
    """Logits of the baseline and of the reinforced model.

    Build with :meth:`from_peft` (LoRA adapter toggled on one model) or :meth:`from_models` (two models).
    """

    def __init__(self, base: PreTrainedModel, reinforced: PreTrainedModel | None = None):
        self._base = base
        self._reinforced = reinforced
        self.is_peft = reinforced is None

    @classmethod
    def from_peft(cls, peft_model) -> "ModelPair":
        return cls(peft_model, None)

    @classmethod
    def from_models(cls, base: PreTrainedModel, reinforced: PreTrainedModel) -> "ModelPair":
        if base.config.vocab_size != reinforced.config.vocab_size:
            raise WorkbenchError(
                f"the reinforced model's vocabulary ({reinforced.config.vocab_size}) differs from the baseline's "
                f"({base.config.vocab_size}); use a reinforced model trained from the baseline"
            )
        return cls(base, reinforced)

    @property
    def device(self) -> torch.device:
        return next(self._base.parameters()).device

    @property
    def vocab_size(self) -> int:
        return (
            int(self._base.config.vocab_size)
            if not self.is_peft
            else int(self._base.get_base_model().config.vocab_size)
        )

    @contextlib.contextmanager
    def _baseline(self) -> Iterator[PreTrainedModel]:
        if self.is_peft:
            with self._base.disable_adapter():
                yield self._base
        else:
            yield self._base

    @torch.inference_mode()
    def base_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """logits: [batch, pos, vocab] float32 of the baseline."""
        with self._baseline() as m:
            return m(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    @torch.inference_mode()
    def reinforced_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """logits: [batch, pos, vocab] float32 of the reinforced model."""
        m = self._base if self.is_peft else self._reinforced
        return m(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def eval(self) -> "ModelPair":
        self._base.eval()
        if self._reinforced is not None:
            self._reinforced.eval()
        return self
