"""Faults injected into runs on the tiny model, then the rerun's outcome: identical results, or exit 2 with a named
message and nothing half-written. One test per fault; tests/fault_matrix.py tallies them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from workbench.cli import main
from workbench.config import config_from_dict
from workbench.labels import LabelStore
from workbench.run import Run
from workbench.training import StopController

from helpers import tiny_config


class StopAt(StopController):
    """Stops training after ``step`` steps, as the notebook's stop button or a kill between saves would."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            self.stop()
        return super().on_step_end(args, state, control, **kwargs)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def labels_of(run_dir: Path) -> list:
    store = LabelStore(run_dir / "labels")
    return [list(x) for c in ("label_a0", "label_a5") for x in store.blocks[c]]


def cli_run(cfg: Path, run_dir: Path, *extra: str) -> int:
    return main(["run", str(cfg), "--run-dir", str(run_dir), "--no-progress", *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run (report off) and its config; tests copy it before damaging it."""
    root = tmp_path_factory.mktemp("finished")
    cfg = write_config(root / "c.yaml", tiny_config(root / "in"))
    assert cli_run(cfg, root / "run") == 0
    return cfg, root / "run"


def _copy(finished, tmp_path) -> tuple[Path, Path]:
    cfg, run = finished
    shutil.copytree(run, tmp_path / "run")
    return cfg, tmp_path / "run"


# -- 1, 2: training checkpoints --------------------------------------------------------------------------------
def _labelled(tmp_path) -> tuple[dict, Path, Path]:
    """A run with labels done in ``a``, and a copy ``b`` for the clean reference."""
    raw = tiny_config(tmp_path / "in")
    Run(config_from_dict(raw), tmp_path / "a", progress=False, log=None).run(("reinforce", "labels"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    return raw, tmp_path / "a", tmp_path / "b"


def _with(raw: dict, **finetune) -> dict:
    return {**raw, "finetune": {**raw["finetune"], **finetune}}


@pytest.mark.parametrize("change", [{"alpha": 0.0}, {"lora_rank": 4}])
def test_update_does_not_resume_a_checkpoint_made_with_other_settings(tmp_path, change):
    raw, a, b = _labelled(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        Run(config_from_dict(raw), a, progress=False, log=None, callbacks=[StopAt(2)]).finetune()
    assert (a / "unlearned_ckpt" / "checkpoint-2").is_dir()
    logs: list[str] = []
    new = _with(raw, **change)
    Run(config_from_dict(new), a, progress=False, update=True, log=logs.append).finetune()
    Run(config_from_dict(new), b, progress=False, update=True, log=None).finetune()
    assert same_weights(a / "unlearned", b / "unlearned")
    assert list((a / "unlearned_ckpt.set_aside").iterdir()), "the old checkpoint is kept aside, not lost"


def test_unchanged_settings_resume_the_checkpoint(tmp_path):
    raw, a, b = _labelled(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        Run(config_from_dict(raw), a, progress=False, log=None, callbacks=[StopAt(2)]).finetune()
    resumed = StopAt(10**6)  # never stops; records where training started
    starts = []
    resumed.on_train_begin = lambda args, state, control, **kw: starts.append(state.global_step)
    Run(config_from_dict(raw), a, progress=False, log=None, callbacks=[resumed]).finetune()
    Run(config_from_dict(raw), b, progress=False, log=None).finetune()
    assert same_weights(a / "unlearned", b / "unlearned")
    assert starts == [2] and not (a / "unlearned_ckpt.set_aside").exists()


@pytest.mark.parametrize("damage", ["empty folder", "truncated optimizer", "no trainer state"])
def test_a_kill_during_a_checkpoint_save_resumes_from_the_newest_complete_one(tmp_path, damage, capsys):
    raw = _with(tiny_config(tmp_path / "in"), epochs=2.0)
    Run(config_from_dict(raw), tmp_path / "a", progress=False, log=None).run(("reinforce", "labels"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        Run(config_from_dict(raw), a, progress=False, log=None, callbacks=[StopAt(4)]).finetune()
    ck = a / "unlearned_ckpt"
    shutil.copytree(ck / "checkpoint-4", ck / "checkpoint-2")  # an older complete checkpoint
    bad = ck / "checkpoint-6"  # the save the kill interrupted
    if damage == "empty folder":
        bad.mkdir()
    else:
        shutil.copytree(ck / "checkpoint-4", bad)
        if damage == "truncated optimizer":
            data = (bad / "optimizer.pt").read_bytes()
            (bad / "optimizer.pt").write_bytes(data[: len(data) // 2])
        else:
            (bad / "trainer_state.json").unlink()
    Run(config_from_dict(raw), a, progress=False, log=None).finetune()
    Run(config_from_dict(raw), b, progress=False, log=None).finetune()
    assert same_weights(a / "unlearned", b / "unlearned")
    err = capsys.readouterr().err
    assert "checkpoint-6 is incomplete" in err and "set aside" in err


def test_killed_finetune_rerun_with_update_matches_a_clean_run(tmp_path):
    """kill -9 of a CLI run during finetuning at alpha 5, rerun with alpha 0 and --update."""
    raw = tiny_config(tmp_path / "in", target={"max_blocks": 24}, finetune={"save_steps": 1})
    cfg = write_config(tmp_path / "c.yaml", raw)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "workbench", "run", str(cfg), "--no-progress", "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "run" / "unlearned_ckpt"
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline and not list(ckpt.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "unlearned").exists(), "killed before finetuning finished"
    cfg0 = write_config(tmp_path / "c0.yaml", _with(raw, alpha=0.0))
    assert cli_run(cfg0, tmp_path / "run", "--update") == 0
    assert cli_run(cfg0, tmp_path / "ref") == 0
    assert same_weights(tmp_path / "run" / "unlearned", tmp_path / "ref" / "unlearned")


# -- 3: one process per run directory ---------------------------------------------------------------------------
HOLD = """
import sys, time
from workbench.runlock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_on_the_run_directory_is_refused_with_the_holders_pid(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in")
    cfg = write_config(tmp_path / "c.yaml", raw)
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli_run(cfg, run) == 2
        err = capsys.readouterr().err
        assert f"in use by process {holder.pid}" in err
        assert sorted(p.name for p in run.iterdir()) == [".lock"], "nothing written by the refused run"
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a killed holder releases the lock
        holder.wait()
    assert cli_run(cfg, run, "--stages", "reinforce") == 0


# -- 4: stage records checked against the files ----------------------------------------------------------------
def test_deleted_labels_folder_is_regenerated(finished, tmp_path, capsys):
    cfg, run = _copy(finished, tmp_path)
    before = labels_of(run)
    unlearned = weights(run / "unlearned")
    shutil.rmtree(run / "labels")
    assert cli_run(cfg, run) == 0
    assert "[labels] recorded as finished, but" in capsys.readouterr().out
    assert labels_of(run) == before
    after = weights(run / "unlearned")
    assert all(torch.equal(unlearned[k], after[k]) for k in unlearned)


def test_truncated_label_shard_is_computed_again(finished, tmp_path, capsys):
    cfg, run = _copy(finished, tmp_path)
    before = labels_of(run)
    shard = run / "labels" / "blocks-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    assert cli_run(cfg, run) == 0
    out = capsys.readouterr().out
    assert "blocks-00001.parquet is damaged" in out and "shard 1 is computed again" in out
    assert labels_of(run) == before


def test_damaged_labels_manifest_restarts_the_labels(finished, tmp_path):
    cfg, run = _copy(finished, tmp_path)
    before = labels_of(run)
    (run / "labels" / "manifest.json").write_text('{"fingerprint": "')
    assert cli_run(cfg, run) == 0
    assert labels_of(run) == before


@pytest.mark.parametrize("artifact", ["unlearned/model.safetensors", "reinforced/adapter_model.safetensors",
                                      "scores.parquet"])
def test_truncated_model_or_scores_are_made_again(finished, tmp_path, artifact):
    cfg, run = _copy(finished, tmp_path)
    ref = {p.name: p.read_bytes() for p in (run / "unlearned", run / "reinforced") for p in p.glob("*.safetensors")}
    path = run / artifact
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cli_run(cfg, run) == 0
    now = {p.name: p.read_bytes() for p in (run / "unlearned", run / "reinforced") for p in p.glob("*.safetensors")}
    assert now == ref
    assert (run / "scores.parquet").stat().st_size > 0


def test_damaged_stage_record_reruns_the_stage(finished, tmp_path):
    cfg, run = _copy(finished, tmp_path)
    before = labels_of(run)
    (run / "stages" / "labels.json").write_text("{not json")
    assert cli_run(cfg, run) == 0
    assert json.loads((run / "stages" / "labels.json").read_text())["stage"] == "labels"
    assert labels_of(run) == before


def test_damaged_config_yaml_exits_2_naming_it(finished, tmp_path, capsys):
    cfg, run = _copy(finished, tmp_path)
    (run / "config.yaml").write_text("name: [unclosed\n")
    stages = {p.name: p.read_text() for p in (run / "stages").iterdir()}
    assert cli_run(cfg, run) == 2
    err = capsys.readouterr().err
    assert "config.yaml is damaged" in err and "Traceback" not in err
    assert {p.name: p.read_text() for p in (run / "stages").iterdir()} == stages
