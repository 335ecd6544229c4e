"""Small in-process inputs for run-level tests: a corpus, an anchor map, retain text and a tiny-model config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SENTENCES = [
    "Harry Potter went to Hogwarts on the train with Hermione Granger.",
    "At Hogwarts, Harry and Ron Weasley played Quidditch for Gryffindor.",
    "Hermione read about the Philosopher's Stone in the library at Hogwarts.",
    "Dumbledore told Harry that Voldemort would return one day.",
    "Hagrid took Harry to Diagon Alley to buy a wand and an owl.",
]
ANCHORS = {"format": "whp-anchors/1", "anchors": {
    "Harry": ["Jon", "Tom"], "Potter": ["Miller"], "Hogwarts": ["Northbrook Academy", "Kingsmere College"],
    "Hermione": ["Sarah", "Emily"], "Granger": ["Jones"], "Ron": ["Mike"], "Weasley": ["Smith"],
    "Quidditch": ["skyball"], "Gryffindor": ["Red House"], "Dumbledore": ["the headmaster"],
    "Voldemort": ["the dark lord"], "Hagrid": ["the groundskeeper"], "Diagon Alley": ["Market Street"],
    "Philosopher's Stone": ["old stone"], "Nimbus": ["broom"],
}}


def make_inputs(root: Path, repeats: int = 12, anchors: dict | None = None) -> dict:
    """Write corpus/, retain/ and anchors.json under ``root``; returns the config's target paths."""
    (root / "corpus").mkdir(parents=True)
    (root / "retain").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        text = " ".join(SENTENCES[j] for j in rng.integers(0, len(SENTENCES), size=repeats))
        (root / "corpus" / f"doc{i}.txt").write_text(text)
    (root / "retain" / "r.txt").write_text("The river runs to the sea. Bread is baked in an oven. " * 20)
    amap = ANCHORS if anchors is None else {"format": "whp-anchors/1", "anchors": anchors}
    (root / "anchors.json").write_text(json.dumps(amap))
    return {"pack": None, "corpus": str(root / "corpus"), "anchors": str(root / "anchors.json"),
            "retain": str(root / "retain")}


def tiny_config(root: Path, anchors: dict | None = None, **over) -> dict:
    """A whole-pipeline config for the tiny model on :func:`make_inputs`; ``over`` updates sections."""
    cfg = {
        "name": "t", "model": "tiny", "seed": 0,
        "target": {**make_inputs(root, anchors=anchors), "block_size": 32, "max_blocks": 8, "retain_block_size": 32},
        "reinforce": {"epochs": 1, "batch_size": 2, "lora_rank": 2, "lora_alpha": 4, "learning_rate": 1e-3,
                      "save_steps": 2, "logging_steps": 1},
        "scoring": {"max_blocks": 2, "batch_size": 2},
        "labels": {"alphas": [0.0, 5.0], "top_k": 6, "batch_size": 2, "shard_blocks": 2},
        "finetune": {"epochs": 1, "batch_size": 2, "lora_rank": 2, "lora_alpha": 4, "learning_rate": 1e-3,
                     "retain_weight": 1.0, "save_steps": 2, "logging_steps": 1},
        "report": {"enabled": False},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg
