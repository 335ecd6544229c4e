"""whp-workbench: approximate unlearning in language models (reinforced model, anchored terms, generic labels).

The public API, one module per concept::

    from workbench import load_model, load_anchor_map, make_blocks, translate_blocks, LabelStore, Run
"""

from workbench.anchors import AnchorMap, AnchorMatch, load_anchor_map
from workbench.config import RunConfig, config_from_dict, load_config
from workbench.corpus import Block, Document, make_blocks, read_documents
from workbench.errors import WorkbenchError
from workbench.finetune import FinetuneConfig
from workbench.labels import LabelStore, generate_labels, generic_labels_full, labels_from_topk
from workbench.models import LoadedModel, load_model, load_tokenizer, tiny_model
from workbench.pair import ModelPair
from workbench.run import STAGES, Run
from workbench.scoring import score_blocks, suggest_anchors, token_summary
from workbench.training import LossHistory, StopController, TrainConfig
from workbench.translate import AlignedBlock, translate_blocks

__version__ = "0.1.0"

__all__ = [
    "AlignedBlock", "AnchorMap", "AnchorMatch", "Block", "Document", "FinetuneConfig", "LabelStore", "LoadedModel",
    "LossHistory", "ModelPair", "Run", "RunConfig", "STAGES", "StopController", "TrainConfig", "WorkbenchError",
    "config_from_dict", "generate_labels", "generic_labels_full", "labels_from_topk", "load_anchor_map", "load_config",
    "load_model", "load_tokenizer", "make_blocks", "read_documents", "score_blocks", "suggest_anchors", "tiny_model",
    "token_summary", "translate_blocks",
]
