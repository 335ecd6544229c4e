"""Integration tests on the embedded SmolLM2-135M-Instruct (slow: a model load and a short real run)."""

import json

import pytest
import torch
from helpers import MARKERS

from workbench.labels import LabelStore
from workbench.rundir import RunDir

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


def test_quickstart_runs_on_the_embedded_model(embedded_quickstart):
    # helpers.EMBEDDED_MINI: the demo's method on 6 blocks of 256 tokens; the run the test below reads
    text = embedded_quickstart.text
    assert "model 'embedded'" in text
    # the report stage runs in this config: the headline table (split named) instead of the tiny config's notice
    for marker in [m for m in MARKERS["00_quickstart"] if m != "report.enabled"] + [
        "Before and after: heldout probes ("
    ]:
        assert marker in text, f"00_quickstart: expected {marker!r} in the outputs"
    print(f"00_quickstart on the embedded model: {embedded_quickstart.seconds:.0f} s")


def test_short_real_run_lowers_target_familiarity(embedded_quickstart):
    """The run notebook 00 made on the embedded model (helpers.EMBEDDED_MINI): the labels change the targets and
    the heldout target probes fall."""
    run_dir = embedded_quickstart.run_dir
    report = json.loads(RunDir(run_dir).report_json.read_text())
    store = LabelStore(RunDir(run_dir).labels)
    assert store.summary().set_index("alpha").loc[5.0, "changed_share"] > 0.2
    probes = report["probes"]["probability"]
    assert probes["n"] > 20
    assert probes["unlearned_mean_prob"] < probes["baseline_mean_prob"]
    assert report["perplexity"]["unlearned"] > 0
