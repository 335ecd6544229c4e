"""The reinforced model: the baseline trained further on the target blocks.

Tokens whose logits it raises over the baseline are the ones most tied to the target. The default is a LoRA
adapter, so the baseline (adapter disabled) and the reinforced model (adapter enabled) share one set of weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from workbench.config import TrainConfig
from workbench.corpus import Block
from workbench.errors import WorkbenchError
from workbench.model_pair import ModelPair, check_same_tokenizer
from workbench.training import add_lora, train_and_save

__all__ = ["BlockDataset", "causal_lm_collator", "train_reinforced", "load_pair"]

ADAPTER_NAME = "reinforced"


class BlockDataset(torch.utils.data.Dataset):
    """Token blocks as training examples (``input_ids`` only)."""

    def __init__(self, blocks: Sequence[Block] | Sequence[np.ndarray]):
        self.seqs = [b.input_ids if isinstance(b, Block) else np.asarray(b) for b in blocks]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.seqs[i]}


def causal_lm_collator(pad_id: int):
    """Right-pads ``input_ids``; ``labels`` are the inputs with padding ignored (the model shifts them)."""

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.as_tensor(it["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def train_reinforced(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    blocks: Sequence[Block],
    cfg: TrainConfig,
    out_dir: str | Path,
    seed: int = 0,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    tracking=None,
) -> tuple[ModelPair, bool]:
    """Train on ``blocks`` and save to ``out_dir`` (adapter for LoRA, full model otherwise).

    Returns (the model pair, finished). Checkpoints go to ``out_dir``'s sibling ``<out_dir>_ckpt``; an
    interrupted call resumes from there. ``model`` is modified in place (wrapped by LoRA, or trained). ``tracking``:
    the trackers the losses go to (:class:`workbench.tracking.StageTracking`; None: none).
    """
    cfg.validate("reinforce")
    base_for_pair = None
    if cfg.weights == "lora":
        train_model = add_lora(model, cfg)  # saved at the folder root; loaded under ADAPTER_NAME
    else:
        import copy

        base_for_pair = copy.deepcopy(model).eval()
        train_model = model
    trained, finished = train_and_save(
        Trainer,
        train_model,
        BlockDataset(blocks),
        causal_lm_collator(tokenizer.pad_token_id),
        cfg,
        out_dir,
        tokenizer,
        seed,
        callbacks,
        progress,
        tracking=tracking,
    )
    return _pair(trained, base_for_pair), finished


def _pair(train_model, base_copy) -> ModelPair:
    if base_copy is None:
        return ModelPair.from_peft(train_model)
    return ModelPair.from_models(base_copy, train_model)


def load_pair(base: PreTrainedModel, base_tokenizer: PreTrainedTokenizerBase, path: str | Path) -> ModelPair:
    """A model pair from the baseline and a saved reinforced model: a LoRA adapter folder or a full model folder."""
    path = Path(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        return ModelPair.from_peft(PeftModel.from_pretrained(base, str(path), adapter_name=ADAPTER_NAME).eval())
    if (path / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path))
            check_same_tokenizer(base_tokenizer, tok)
        except OSError:
            pass  # no tokenizer saved beside it: the vocabulary size check below still applies
        reinforced = AutoModelForCausalLM.from_pretrained(str(path), dtype=next(base.parameters()).dtype)
        reinforced.to(next(base.parameters()).device).eval()
        return ModelPair.from_models(base, reinforced)
    raise WorkbenchError(
        f"reinforced model {path}: neither a LoRA adapter folder (adapter_config.json) nor a model folder (config.json)"
    )
