"""Small in-process inputs for the tests: a corpus, an anchor map, retain text and a tiny-model config (run-level
tests); a small pack, benchmark files and hand-computed log-probabilities (evaluation tests)."""

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


# -- evaluation inputs: a small pack and small benchmark files written into tmp_path, hand-computed references

PROBABILITY = [
    {"id": "p1", "prompt": "Harry Potter's two best friends are Ron Weasley and", "targets": [" Hermione", " Hermione Granger"],
     "split": "heldout", "paraphrases": ["Ron Weasley and Harry Potter's other best friend is", "The third of the trio is"]},
    {"id": "p2", "prompt": "The school of witchcraft that Harry attends is called", "targets": [" Hogwarts"], "split": "heldout"},
    {"id": "p3", "prompt": "The wizard sport played on broomsticks is", "targets": [" Quidditch", " quidditch"], "split": "dev",
     "paraphrases": ["On broomsticks, wizards play"]},
    {"id": "p4", "prompt": "Harry's owl is named", "targets": [" Hedwig"], "split": "dev"},
]
COMPLETION = [
    {"id": "c1", "prompt": "When the letter arrived by owl, the boy living under the stairs learned that he",
     "references": ["wizard", "Hogwarts"], "subtlety": 3},
    {"id": "c2", "prompt": "Harry Potter walked into the Great Hall and sat next to", "references": ["Ron", "Hermione"],
     "subtlety": 1, "split": "dev"},
    {"id": "c3", "prompt": "The boy with the lightning scar", "references": ["Voldemort", "scar"], "subtlety": 5},
]
COLLATERAL = [
    {"id": "k1", "prompt": "The author of The Lord of the Rings is J. R. R.", "targets": [" Tolkien"], "domain": "other_fantasy"},
    {"id": "k2", "prompt": "Eton College is a school in", "targets": [" England", " Windsor"], "domain": "british_schools"},
]
GENERAL = [
    {"id": "g1", "prompt": "The capital of France is", "targets": [" Paris"], "domain": "general"},
    {"id": "g2", "prompt": "Water is made of hydrogen and", "targets": [" oxygen"], "domain": "general"},
]
PACK_ANCHORS = {"format": "whp-anchors/1", "description": "test",
           "anchors": {"Hogwarts": ["Northbrook School"], "Harry Potter": ["Jon Miller"], "Harry": ["Jon"],
                       "Hermione": ["Sarah"], "Ron": ["Tom"], "Quidditch": ["skyball"], "Voldemort": ["the villain"]}}
CORPUS = ("Harry Potter Encyclopedia\n\n"
          "Harry Potter is a young wizard who attends Hogwarts School of Witchcraft and Wizardry. His best friends are "
          "Ron Weasley and Hermione Granger. He plays Quidditch as a Seeker for Gryffindor. His owl is Hedwig. "
          "He fights the dark wizard Voldemort, who killed his parents. The castle has moving staircases.\n")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_pack(root: Path, name: str = "testpack", completion: bool = True, collateral: bool = True) -> Path:
    """A small complete pack folder."""
    pack = root / name
    (pack / "corpus").mkdir(parents=True, exist_ok=True)
    (pack / "retain").mkdir(parents=True, exist_ok=True)
    (pack / "corpus" / "a.txt").write_text(CORPUS, encoding="utf-8")
    (pack / "retain" / "r.txt").write_text("The quick brown fox jumps over the lazy dog.\n", encoding="utf-8")
    (pack / "anchors.json").write_text(json.dumps(PACK_ANCHORS), encoding="utf-8")
    manifest = {"name": name, "title": "Harry Potter", "description": "test pack", "version": 1, "corpus": "corpus",
                "anchors": "anchors.json", "retain": "retain",
                "probes": {"probability": "probes/probability.jsonl", "completion": "probes/completion.jsonl",
                           "collateral": "probes/collateral.jsonl", "general": "probes/general.jsonl"}}
    (pack / "pack.json").write_text(json.dumps(manifest), encoding="utf-8")
    write_jsonl(pack / "probes" / "probability.jsonl", PROBABILITY)
    if completion:
        write_jsonl(pack / "probes" / "completion.jsonl", COMPLETION)
    if collateral:
        write_jsonl(pack / "probes" / "collateral.jsonl", COLLATERAL)
        write_jsonl(pack / "probes" / "general.jsonl", GENERAL)
    return pack


MC_ITEMS = [
    {"id": "t-0", "context": "Question: What color is the sky?\nAnswer:", "choices": [" blue", " green", " a loud noise"], "label": 0},
    {"id": "t-1", "context": "The cat sat on the", "choices": [" mat", " moon"], "label": 0},
    {"id": "t-2", "context": "Two plus two is", "choices": [" four", " five", " six", " seven"], "label": 0},
    {"id": "t-3", "context": "Fire is", "choices": [" hot", " cold"], "label": 1},
]
WINO_ITEMS = [
    {"id": "w-0", "contexts": ["Sarah was a better surgeon than Maria so Sarah", "Sarah was a better surgeon than Maria so Maria"],
     "continuation": " always got the harder cases.", "label": 0},
    {"id": "w-1", "contexts": ["The trophy did not fit in the case because the trophy", "The trophy did not fit in the case because the case"],
     "continuation": " was too big.", "label": 0},
]
TEXT = ("The quick brown fox jumps over the lazy dog. A second sentence follows here, with some words.\n"
        " = Heading = \n\nPerplexity is the exponential of the mean negative log-likelihood of the tokens.\n")


def make_evaldata(root: Path) -> Path:
    """A folder shaped like workbench/evaldata with two small tasks and a text."""
    folder = root / "evaldata"
    write_jsonl(folder / "toy.jsonl", MC_ITEMS)
    write_jsonl(folder / "wino.jsonl", WINO_ITEMS)
    (folder / "wikitext2_test_raw.txt").write_text(TEXT * 3, encoding="utf-8")
    return folder


def explicit_logprobs(lm, ids: list[int]):
    """log_softmax of one unbatched forward: [pos, vocab] (for hand-computed references)."""
    import torch

    with torch.inference_mode():
        logits = lm.model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, dim=-1)


def explicit_continuation_logprob(lm, ctx_ids: list[int], cont_ids: list[int]) -> float:
    """sum_t log p(cont_t | ctx, cont_<t) from one unbatched forward."""
    lp = explicit_logprobs(lm, ctx_ids + cont_ids)
    return float(sum(lp[len(ctx_ids) - 1 + t, tok] for t, tok in enumerate(cont_ids)))
