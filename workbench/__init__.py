"""whp-workbench: approximate unlearning in language models (reinforced model, anchored terms, generic labels).

The public API, one module per concept::

    from workbench import load_model, load_anchor_map, make_blocks, translate_blocks, LabelStore, Run

Names are imported on first use, so ``import workbench.config`` (reading a YAML file) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_HOME = {
    "AnchorMap": "anchors",
    "AnchorMatch": "anchors",
    "load_anchor_map": "anchors",
    "RunConfig": "config",
    "config_from_dict": "config",
    "load_config": "config",
    "FinetuneConfig": "config",
    "TrainConfig": "config",
    "Block": "corpus",
    "Document": "corpus",
    "make_blocks": "corpus",
    "read_documents": "corpus",
    "WorkbenchError": "errors",
    "LabelStore": "labels",
    "generate_labels": "labels",
    "generic_labels_full": "labels",
    "labels_from_topk": "labels",
    "LoadedModel": "models",
    "load_model": "models",
    "load_tokenizer": "models",
    "tiny_model": "models",
    "ModelPair": "model_pair",
    "STAGES": "run",
    "Run": "run",
    "RunDir": "rundir",
    "score_blocks": "scoring",
    "suggest_anchors": "scoring",
    "token_summary": "scoring",
    "LossHistory": "training",
    "StopController": "training",
    "AlignedBlock": "translate",
    "translate_blocks": "translate",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"workbench.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from workbench.anchors import AnchorMap, AnchorMatch, load_anchor_map
    from workbench.config import FinetuneConfig, RunConfig, TrainConfig, config_from_dict, load_config
    from workbench.corpus import Block, Document, make_blocks, read_documents
    from workbench.errors import WorkbenchError
    from workbench.labels import LabelStore, generate_labels, generic_labels_full, labels_from_topk
    from workbench.model_pair import ModelPair
    from workbench.models import LoadedModel, load_model, load_tokenizer, tiny_model
    from workbench.run import STAGES, Run
    from workbench.scoring import score_blocks, suggest_anchors, token_summary
    from workbench.training import LossHistory, StopController
    from workbench.translate import AlignedBlock, translate_blocks
