"""Which process this is under ``accelerate launch`` / torchrun, and the device it loads models onto.

Every stage and method chooses its device with :func:`process_device`, so a configured ``device`` wins, and
N processes on GPUs each load onto their own GPU instead of all onto GPU 0 first. What is left unset falls to
:func:`pick_device`, the one default (CUDA when present, else CPU), which the model loader and the Trainer share.
"""

from __future__ import annotations

import os

__all__ = ["world_size", "is_main_process", "process_device", "pick_device"]


def world_size() -> int:
    """How many processes train together (env ``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True unless this is a second, third... process of ``accelerate launch`` / torchrun (env ``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


def process_device(configured: str | None = None) -> str | None:
    """The device to load a model onto: ``configured`` (the run config's ``device``) when set; under
    ``accelerate launch`` on GPUs, this process's own GPU (``LOCAL_RANK``); otherwise None (the loader's
    default, :func:`pick_device`)."""
    if configured:
        return configured
    if world_size() > 1 and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return None


def pick_device(device: str | None = None):
    """``device`` as given, else CUDA when present, else CPU (a ``torch.device``)."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
