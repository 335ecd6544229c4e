"""Batches of token sequences as tensors (a core module: torch and numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["pad_batch"]


def pad_batch(seqs: Sequence[np.ndarray], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token sequences. Returns (input_ids [batch, pos], attention_mask [batch, pos])."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)
