"""Shared fixtures: a tiny random Llama-style model (unit tests) and the embedded SmolLM2 (slow tests)."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session")
def tiny():
    """A LoadedModel: random 2-layer Llama with the SmolLM2 tokenizer (or a trained byte-level BPE)."""
    from workbench.models import tiny_model

    return tiny_model(seed=0)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (converted once, then cached)."""
    from workbench.models import load_model

    return load_model("embedded")


@pytest.fixture(scope="session")
def evaldata_dir():
    path = os.path.abspath(os.path.join(SHARED, "evaldata"))
    if not os.path.isdir(path):
        pytest.skip(f"shared eval data not found at {path} (it lies beside the checkout as ../shared)")
    return path
