"""The benchmark suite in quick mode (structure of its JSON, README section), the GPU check's CPU smoke run,
and the speed changes the benchmarks led to (batched label math, direct tokenizer calls) against the references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
FIGURE_KEYS = {"key", "name", "value", "unit", "target", "op", "pass", "note", "benchmark"}
EXPECTED = {
    "translate.tokens_per_s",
    "load.cached_s",
    "load.first_conversion_s",
    "labels.ratio_to_bound",
    "labels.tokens_per_s",
    "training.reinforce_overhead",
    "training.finetune_overhead",
    "storage.bytes_per_token",
    "storage.share_of_full_logits",
    "demo.peak_rss_gib",
    "demo.wall_s",
    "curation.search_ms",
    "curation.select_ms",
    "curation.preview_ms",
    "curation.edit_s",
}


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _import_bench(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.integration
def test_run_all_quick_writes_every_figure(tmp_path):
    out, readme = tmp_path / "latest.json", tmp_path / "README.md"
    readme.write_text("# Title\n\n## Performance\n\n<!-- perf:start -->\nold\n<!-- perf:end -->\n\n## After\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--out", str(out), "--readme", str(readme)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["schema"] == "whp-bench/1" and res["quick"] is True and res["model"] == "tiny"
    assert set(res["benchmarks"]) == {"translate", "curation", "load", "labels", "training", "demo_memory", "storage"}
    assert not any(b["error"] for b in res["benchmarks"].values())
    keys = {f["key"] for f in res["figures"]}
    assert EXPECTED <= keys, EXPECTED - keys
    for f in res["figures"]:
        assert FIGURE_KEYS <= set(f), f
        assert f["value"] is not None and np.isfinite(f["value"]), f
        if f["target"] is not None:
            assert f["op"] in (">=", "<=") and isinstance(f["pass"], bool)
    fig = {f["key"]: f for f in res["figures"]}
    assert fig["demo.peak_rss_gib"]["value"] > 0.1  # a real process tree was sampled
    assert fig["storage.share_of_full_logits"]["pass"]  # top-k records only, never full logits
    assert any(k.startswith("demo.stage.") for k in keys)
    assert res["summary"]["with_target"] >= 7 and res["total_seconds"] > 0
    assert "figure" in proc.stdout and "targets met" in proc.stdout  # the printed table
    text = readme.read_text()
    assert "old" not in text and text.count("<!-- perf:start -->") == 1 and text.endswith("## After\n")
    assert "generic-label throughput / two-raw-forward bound" in text and "| figure | value |" in text
    assert not list(out.parent.glob("*.tmp"))


def test_readme_section_is_appended_when_markers_are_missing(tmp_path):
    run_all = _import_bench("run_all")
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    run_all.update_readme(readme, "table one")
    run_all.update_readme(readme, "table two")
    text = readme.read_text()
    assert text.startswith("# Project\n") and "table two" in text and "table one" not in text
    assert text.count("## Performance") == 1


def test_demo_sampler_measures_a_child_process(tmp_path):
    bench = _import_bench("bench_demo_memory")
    child = (
        "import time\nprint('[reinforce] running', flush=True)\nx = bytearray(300 * 2**20)\n"
        "for i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(0.6)\nprint('[labels] running', flush=True)\n"
        "del x\ntime.sleep(0.4)\n"
    )
    res = bench.run_and_sample([sys.executable, "-c", child], _env(), tmp_path / "err.log", interval=0.05)
    assert res["returncode"] == 0
    assert res["peak_rss_kernel_gib"] > 0.29  # the kernel's high-water mark saw the 300 MiB
    assert set(res["stages"]) == {"reinforce", "labels"}
    assert res["stages"]["reinforce"]["peak_rss_sampled_gib"] > 0.25


@pytest.mark.integration
def test_gpu_check_cpu_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--cpu-smoke", "--out", str(tmp_path)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["cpu_smoke"] is True and res["device"] == "cpu" and res["dtype"] == "bfloat16"
    assert res["labels"]["path"] == "workbench.labels.generate_labels"
    assert res["labels"]["tokens_per_s"] > 0 and res["labels"]["mfu"] > 0 and res["labels"]["ratio_to_bound"] > 0
    for method in ("lora", "full"):
        ft = res["finetune"]["by_method"][method]
        assert ft["tokens_per_s"] > 0 and ft["steps"] == 2 and "UnlearningTrainer" in ft["path"]
    assert res["finetune"]["method"] == "full"
    pr = res["projection"]
    assert (
        pr["model"] == "Llama-2-7b" and pr["total_s"] > 0 and pr["total_hours"] == pytest.approx(pr["total_s"] / 3600)
    )
    assert set(res["pass"]) == {"labels_mfu", "finetune_mfu"}
    assert "projected Llama-2-7b" in proc.stdout


def test_batched_label_math_equals_the_per_block_reference(tiny):
    """generate_labels computes a whole padded batch at once; each block must get exactly its own labels."""
    import torch

    from workbench.anchors import load_anchor_map
    from workbench.corpus import Document, make_blocks
    from workbench.labels import compute_batch_labels, compute_block_labels
    from workbench.model_pair import ModelPair, pad_batch
    from workbench.models import tiny_model
    from workbench.pack import load_pack
    from workbench.translate import translate_blocks

    pack = load_pack("harry_potter")
    text = (pack.corpus_dir / "b_plot_1_philosophers_stone.txt").read_text()
    blocks = make_blocks([Document("d", text)], tiny.tokenizer, block_size=80)
    aligned = translate_blocks([blocks[0], blocks[3], blocks[-1]], load_anchor_map(pack.anchors_path), tiny.tokenizer)
    assert len({len(ab.trans_ids) for ab in aligned}) > 1 and all(ab.suppress for ab in aligned[:2])  # padding + rule 4
    pair = ModelPair.from_models(tiny.model, tiny_model(seed=1).model)
    ids, mask = pad_batch([ab.block.input_ids for ab in aligned], 0, pair.device)
    t_ids, t_mask = pad_batch([ab.trans_ids for ab in aligned], 0, pair.device)
    v_r, v_b = pair.reinforced_logits(ids, mask), pair.base_logits(t_ids, t_mask)
    before = (v_r.clone(), v_b.clone())
    alphas = [0.0, 2.0, 50.0]  # alpha 50 with top-4 forces the full-vocabulary fallback on some rows
    batch = compute_batch_labels(aligned, v_r, v_b, alphas, top_k=4)
    assert torch.equal(v_r, before[0]) and torch.equal(v_b, before[1])  # inputs untouched
    for j, ab in enumerate(aligned):
        n, m = len(ab.block), len(ab.trans_ids)
        one = compute_block_labels(ab, v_r[j, :n], v_b[j, :m], alphas, top_k=4)
        for name in (
            "positions",
            "trans_positions",
            "next_ids",
            "base_ids",
            "base_vals",
            "reinf_at_base",
            "reinf_ids",
            "reinf_vals",
            "base_at_reinf",
            "gain_next",
        ):
            assert np.array_equal(getattr(one, name), getattr(batch[j], name)), name
        for a in alphas:
            assert np.array_equal(one.labels[a], batch[j].labels[a])
        # and the reference written out: suppression on a copy of the rows, argmax of the generic scores
        vb = v_b[j, :m].clone()
        for start, token in ab.suppress:
            vb[start:, token] = v_b[j, start:m].mean(-1)
        tpos = torch.as_tensor(ab.orig_to_trans[ab.label_positions])
        g = vb[tpos] - 2.0 * torch.relu(v_r[j, torch.as_tensor(ab.label_positions)] - vb[tpos])
        assert np.array_equal(batch[j].labels[2.0], g.argmax(-1).numpy())


@pytest.mark.parametrize("which", ["bpe_tokenizer", "sp_tokenizer"])
def test_direct_tokenizer_call_matches_the_wrapper(request, which):
    from workbench.translate import _encode

    tok = request.getfixturevalue(which)
    texts = [
        "Harry Potter went to Northbrook Academy.",
        "  two  spaces, caf\u00e9 and \u2019quotes\u2019\n\nnew lines",
        "",
    ]
    fast = _encode(texts, tok)
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    for (ids, offs), ref_ids, ref_offs in zip(fast, enc["input_ids"], enc["offset_mapping"]):
        assert ids.tolist() == list(ref_ids)
        assert offs.tolist() == [list(o) for o in ref_offs]


def test_readme_summary_includes_a_gpu_run(tmp_path):
    run_all = _import_bench("run_all")
    result = {
        "quick": False,
        "model": "embedded",
        "created": "now",
        "total_seconds": 1.0,
        "benchmarks": {},
        "machine": {"cpu": "x", "cpu_count": 2, "torch_threads": 2, "torch": "2"},
        "figures": [
            {
                "key": "a",
                "name": "thing",
                "value": 0.9,
                "unit": "ratio",
                "target": 0.85,
                "op": ">=",
                "pass": True,
                "note": "a|b",
            }
        ],
    }
    assert "GPU check" not in run_all.markdown(result, tmp_path)
    (tmp_path / "gpu_check.json").write_text(
        json.dumps(
            {
                "cpu_smoke": False,
                "device": "NVIDIA H100 80GB HBM3",
                "created": "t",
                "labels": {"mfu": 0.5},
                "finetune": {"mfu": 0.4, "method": "full"},
                "projection": {"total_hours": 0.15, "finetune_method": "lora"},
            }
        )
    )
    text = run_all.markdown(result, tmp_path)
    assert "| thing | 0.900 ratio | >= 0.850 | PASS | a/b |" in text
    assert "label generation 50% MFU" in text and "full finetuning 40% MFU" in text and "0.15 h" in text


@pytest.mark.integration
def test_sweep_runs_each_variant_with_its_overrides_and_reuses_finished_runs(tmp_path):
    import yaml

    from workbench.errors import WorkbenchError

    sweep = _import_bench("sweep")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump([{"name": "plain"}, {"name": "inner", "set": {"labels.inner_anchor": True}}]))
    base = REPO / "workbench" / "configs" / "tiny.yaml"
    out = tmp_path / "sweep"
    table = sweep.main([str(base), str(grid), "--out", str(out), "--set", "target.max_blocks=3", "--no-progress"])
    assert list(table["variant"]) == ["plain", "inner"]
    saved = [yaml.safe_load((out / v / "config.yaml").read_text()) for v in ("plain", "inner")]
    assert [c["labels"]["inner_anchor"] for c in saved] == [False, True]
    assert all(c["target"]["max_blocks"] == 3 and c["report"]["split"] == "dev" for c in saved)
    from workbench.labels import LabelStore

    inner_rows = (LabelStore(out / "inner" / "labels").positions["trans_pos"] == -1).sum()
    assert inner_rows > 0 and (LabelStore(out / "plain" / "labels").positions["trans_pos"] == -1).sum() == 0
    stamp = (out / "inner" / "labels" / "manifest.json").stat().st_mtime_ns
    again = sweep.main([str(base), str(grid), "--out", str(out), "--set", "target.max_blocks=3", "--only", "inner"])
    assert list(again["variant"]) == ["inner"]
    assert (out / "inner" / "labels" / "manifest.json").stat().st_mtime_ns == stamp  # finished stages are reused
    import pandas as pd

    assert sorted(pd.read_csv(out / "sweep.csv")["variant"]) == ["inner", "plain"]  # the earlier row is kept
    grid.write_text(yaml.safe_dump({"name": "not a list"}))
    with pytest.raises(WorkbenchError, match="list of"):
        sweep.main([str(base), str(grid), "--out", str(out)])


def test_notebook_walk_names_the_stages_each_notebook_ran(tmp_path):
    """The walk's record of what a notebook computed: stage records written or rewritten, by variant; and a
    folder that is not a run directory is refused with exit 2 before any notebook starts."""
    walk = _import_bench("notebook_walk")
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "stages" / "labels.json").write_text("{}")
    before = walk._stage_records(run)
    assert before == {"labels": (run / "stages" / "labels.json").stat().st_mtime}
    (run / "variants" / "target=hard" / "stages").mkdir(parents=True)
    (run / "variants" / "target=hard" / "stages" / "finetune.json").write_text("{}")
    # a variant's copy of the run's own record (a reused stage) ran nothing; a record of its own did
    (run / "variants" / "target=hard" / "stages" / "labels.json").write_text("{}")
    (run / "variants" / "whole" / "stages").mkdir(parents=True)
    (run / "variants" / "whole" / "stages" / "labels.json").write_text('{"blocks": 93}')
    after = walk._stage_records(run)
    assert sorted(k for k, v in after.items() if before.get(k) != v) == [
        "variants/target=hard: finetune",
        "variants/whole: labels",
    ]
    assert walk.main(["--run", str(tmp_path / "nothing")]) == 2
    assert walk.main(["--config", str(tmp_path / "missing.yaml")]) == 2


def test_notebook_walk_reads_a_process_peak_memory():
    """The walk's per-notebook memory figure: a live process's peak resident set from /proc, which agrees with
    what the kernel reports through getrusage for this process."""
    import os
    import resource
    import sys

    walk = _import_bench("notebook_walk")
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    peak = walk._peak_rss_mib(os.getpid())
    assert peak is not None and abs(peak - resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024) < 16
    assert walk._peak_rss_mib(None) is None and walk._peak_rss_mib(2**22 + 12345) is None
