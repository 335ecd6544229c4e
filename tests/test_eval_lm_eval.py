"""The optional lm-evaluation-harness bridge, offline, on a local JSON task."""

from __future__ import annotations

import sys

import pytest
from helpers import MC_ITEMS, write_jsonl

from workbench.errors import WorkbenchError
from workbench.eval.lm_eval_bridge import require_lm_eval, run_lm_eval, write_local_task
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.utility import load_mc_task, score_mc


def test_missing_lm_eval_gives_clear_error(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` fail
    with pytest.raises(WorkbenchError, match="lm-evaluation-harness is not installed: run `pip install"):
        require_lm_eval()
    with pytest.raises(WorkbenchError, match="not installed"):
        run_lm_eval(tiny, ["piqa"])


def test_write_local_task_validates(tmp_path):
    bad = write_jsonl(tmp_path / "w.jsonl", [{"contexts": ["a", "b"], "continuation": " c", "label": 0}])
    with pytest.raises(WorkbenchError, match="needs fields 'context', 'choices' and 'label'"):
        write_local_task(bad, tmp_path / "tasks")
    with pytest.raises(WorkbenchError, match="does not exist"):
        write_local_task(tmp_path / "none.jsonl", tmp_path / "tasks")


def test_lm_eval_local_task_matches_our_scoring(tiny, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    data = write_jsonl(tmp_path / "toy.jsonl", MC_ITEMS)
    name = write_local_task(data, tmp_path / "tasks")
    assert name == "workbench_toy" and (tmp_path / "tasks" / "workbench_toy.yaml").is_file()
    rows = run_lm_eval(tiny, [name], include_path=tmp_path / "tasks", batch_size=4, include_defaults=False)
    got = {r["metric"]: r for r in rows}
    assert set(got) == {"acc", "acc_norm"} and got["acc"]["n"] == len(MC_ITEMS)
    ours = score_mc(tiny, load_mc_task(data), LoglikelihoodConfig(progress=False))
    # lm-eval scores the same log-likelihoods, so the accuracies agree.
    assert got["acc"]["value"] == pytest.approx(ours["correct"].mean())
    assert got["acc_norm"]["value"] == pytest.approx(ours["correct_norm"].mean())
    with pytest.raises(WorkbenchError, match="lm-eval could not run"):
        run_lm_eval(tiny, ["no_such_task_xyz"], include_path=tmp_path / "tasks", include_defaults=False)
