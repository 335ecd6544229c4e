"""Integration tests on the embedded SmolLM2-135M-Instruct (slow: a model load and a short real run)."""

import pytest
import torch

from workbench.config import config_from_dict
from workbench.labels import LabelStore
from workbench.run import Run

pytestmark = pytest.mark.slow


def test_embedded_model_knows_some_harry_potter(embedded):
    tok, model = embedded.tokenizer, embedded.model
    ids = tok("Harry Potter's two best friends are Ron Weasley and", return_tensors="pt").input_ids
    with torch.inference_mode():
        probs = model(ids).logits[0, -1].softmax(-1)
    herm = tok(" Herm", add_special_tokens=False).input_ids[0]
    assert probs[herm] > 0.03


def test_cached_embedded_model_reloads_fast():
    import time

    from workbench.models import load_model

    load_model("embedded")  # converts once if needed
    t0 = time.perf_counter()
    load_model("embedded")
    assert time.perf_counter() - t0 < 10  # generous: the benchmark holds the real 3 s target


def test_short_real_run_lowers_target_familiarity(tmp_path):
    cfg = config_from_dict(
        {
            "name": "embedded-mini",
            "model": "embedded",
            "seed": 0,
            "target": {
                "pack": "harry_potter",
                "block_size": 256,
                "max_blocks": 6,
                "spread_blocks": True,
                "retain_block_size": 128,
                "max_retain_blocks": 6,
            },
            "reinforce": {"epochs": 1, "batch_size": 2, "learning_rate": 5e-4},
            "scoring": {"max_blocks": 1},
            "labels": {"alphas": [0.0, 5.0], "batch_size": 2},
            "finetune": {"epochs": 3, "batch_size": 2, "learning_rate": 1e-3, "target": "soft", "retain_weight": 1.0},
            "report": {"probe_sets": ["probability"], "split": "dev", "max_perplexity_tokens": 512},
        }
    )
    report = Run(cfg, tmp_path / "run", progress=False, log=None).run()
    store = LabelStore(tmp_path / "run" / "labels")
    assert store.summary().set_index("alpha").loc[5.0, "changed_share"] > 0.2
    probes = report["probes"]["probability"]
    assert probes["n"] > 20
    assert probes["unlearned_mean_prob"] < probes["baseline_mean_prob"]
    assert report["perplexity"]["unlearned"] > 0
