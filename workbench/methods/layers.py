"""Activations at one decoder layer, and the parameters of a layer (a core module: torch only).

RMU steers one layer's output; these find the decoder layers of any causal LM, read a layer's output without
running the layers above it, and name the MLP down-projections the WMDP authors train.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.tensors import pad_batch

__all__ = [
    "decoder_layers",
    "layer_output",
    "down_projections",
    "DOWN_PROJ_NAMES",
    "rmu_control_vector",
    "rmu_coefficient",
]

# the MLP's output projection in the decoder-layer layouts of Llama/Mistral/Qwen (down_proj), GPT-2 (c_proj),
# GPT-NeoX (dense_4h_to_h) and OPT/Falcon-style layers (fc2)
DOWN_PROJ_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc2")


class _Stop(Exception):
    pass


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder layers (the first ModuleList as long as ``config.num_hidden_layers``)."""
    inner = getattr(model, "module", model)  # under DDP, the wrapped model holds the config
    n = getattr(getattr(inner, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise WorkbenchError(f"cannot find the decoder layers of {type(model).__name__} (config.num_hidden_layers={n})")


def layer_output(
    model: torch.nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The output ``[batch, pos, hidden]`` of decoder layer ``layer``; the layers above it are not run."""
    got: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        got.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got[0]


def down_projections(model: torch.nn.Module, layers: list[int]) -> list[torch.nn.Module]:
    """The MLP down-projection of each of ``layers`` (what the WMDP authors' RMU trains: ``--param_ids 6``)."""
    stack = decoder_layers(model)
    found = []
    for i in layers:
        mlp = getattr(stack[i], "mlp", None)
        proj = next((getattr(mlp, n) for n in DOWN_PROJ_NAMES if mlp is not None and hasattr(mlp, n)), None)
        if proj is None:
            raise WorkbenchError(
                f"RMU: decoder layer {i} of {type(model).__name__} has no MLP down-projection "
                f"({' / '.join(DOWN_PROJ_NAMES)}); set methods.rmu.full_rank: false to train with finetune.weights"
            )
        found.append(proj)
    return found


def rmu_control_vector(hidden: int, coeff: float, seed: int) -> torch.Tensor:
    """``c * u``: u uniform in [0, 1)^hidden, normalised to unit length (as the WMDP authors draw it)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden, generator=g)
    return u / u.norm() * coeff


@torch.no_grad()
def rmu_coefficient(
    model: torch.nn.Module, layer: int, blocks: list[np.ndarray], pad_id: int, scale: float, n: int = 4
) -> float:
    """Adaptive RMU's c: ``scale`` x the mean norm of the layer's activations on the first ``n`` target blocks."""
    device = next(model.parameters()).device
    ids, mask = pad_batch(blocks[:n], pad_id, device)
    h = layer_output(model, layer, ids, mask)
    return float(scale * h[mask.bool()].float().norm(dim=-1).mean())
