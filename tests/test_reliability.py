"""Faults injected into runs on the tiny model, then the rerun's outcome: identical results, or exit 2 with a named
message and nothing half-written. One test per fault; benchmarks/fault_matrix.py injects these faults (and more)
from outside and grades each from what the command printed and left on disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import kill_at_line, start_run_child, tiny_config
from safetensors.torch import load_file

from workbench.cli import main
from workbench.config import config_from_dict
from workbench.labels import LabelStore
from workbench.run import Run
from workbench.training import StopController


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


@pytest.mark.parametrize("change", [{"alpha": 0.0}, {"lora_rank": 4}], ids=["alpha 5 to 0", "lora_rank 2 to 4"])
@pytest.mark.integration
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


@pytest.mark.integration
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
@pytest.mark.integration
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


@pytest.mark.integration
def test_killed_finetune_rerun_with_update_matches_a_clean_run(tmp_path):
    """kill -9 of a run during finetuning at alpha 5, rerun by the CLI with alpha 0 and --update."""
    raw = tiny_config(tmp_path / "in", target={"max_blocks": 24}, finetune={"save_steps": 1})
    cfg = write_config(tmp_path / "c.yaml", raw)
    # killed right after the first finetuning checkpoint is complete (the child says so)
    line = kill_at_line(start_run_child(cfg, tmp_path / "run", "saved"), lambda line: "unlearned_ckpt" in line)
    assert line.startswith("saved ") and (tmp_path / "run" / "unlearned_ckpt").is_dir()
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


@pytest.mark.integration
def test_a_second_process_on_the_run_directory_is_refused_with_the_holders_pid(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in")
    cfg = write_config(tmp_path / "c.yaml", raw)
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
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


@pytest.mark.parametrize(
    "artifact", ["unlearned/model.safetensors", "reinforced/adapter_model.safetensors", "scores.parquet"]
)
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


# -- 6: bad values and paths: exit 2, one message, nothing written -------------------------------------------------
def _exit2(
    tmp_path,
    capsys,
    raw: dict | None = None,
    run_dir: Path | None = None,
    text: str | None = None,
    argv: list[str] | None = None,
) -> str:
    cfg = tmp_path / "bad.yaml"
    if text is not None:
        cfg.write_text(text)
    elif raw is not None:
        write_config(cfg, raw)
    run_dir = run_dir or tmp_path / "run"
    code = main(argv or ["run", str(cfg), "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    if run_dir.is_dir():
        assert not (run_dir / "config.yaml").exists() and not (run_dir / "stages").exists(), "nothing half-written"
    return err


@pytest.mark.parametrize(
    "section, key, value, needle",
    [
        ("reinforce", "epochs", float("inf"), "reinforce.epochs: inf is not a finite number"),
        ("finetune", "learning_rate", float("nan"), "finetune.learning_rate: nan is not a finite number"),
        ("target", "max_blocks", 0, "target.max_blocks: must be at least 1"),
        ("labels", "shard_blocks", 0, "labels.shard_blocks: must be at least 1"),
        ("labels", "batch_size", 0, "labels.batch_size: must be at least 1"),
        ("finetune", "save_steps", 0, "finetune.save_steps: must be at least 1"),
        ("labels", "alphas", [0.0, float("inf")], "labels.alphas: inf is not a finite number"),
    ],
    ids=["epochs inf", "lr nan", "max_blocks 0", "shard_blocks 0", "labels batch_size 0", "save_steps 0", "alpha inf"],
)
def test_non_finite_or_zero_values_exit_2(tmp_path, capsys, section, key, value, needle):
    raw = tiny_config(tmp_path / "in", **{section: {key: value}})
    assert needle in _exit2(tmp_path, capsys, raw)


def test_duplicate_yaml_key_exits_2_naming_both_lines(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in")
    text = yaml.safe_dump(raw).replace("seed: 0\n", "seed: 0\nseed: 1\n")
    err = _exit2(tmp_path, capsys, text=text)
    assert "key 'seed' appears twice" in err and "bad.yaml, line" in err


@pytest.mark.parametrize("where", ["is a file", "under a file"])
def test_run_directory_that_is_or_lies_under_a_file_exits_2(tmp_path, capsys, where):
    raw = tiny_config(tmp_path / "in")
    (tmp_path / "f").write_text("x")
    run_dir = tmp_path / "f" if where == "is a file" else tmp_path / "f" / "run"
    needle = "is a file;" if where == "is a file" else f"lies under {tmp_path / 'f'}, which is a file"
    assert f"run directory {run_dir} {needle}" in _exit2(tmp_path, capsys, raw, run_dir=run_dir)
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_run_directory_exits_2(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        assert "is not writable" in _exit2(tmp_path, capsys, raw, run_dir=tmp_path / "ro" / "run")
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_full_disk_exits_2_and_keeps_finished_work(finished, tmp_path, capsys, monkeypatch):
    import errno

    import workbench.run as run_module

    cfg, run = _copy(finished, tmp_path)
    before = labels_of(run)
    shutil.rmtree(run / "unlearned")

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run_module, "atomic_write_json", full)  # the finetune stage's record cannot be written
    code = cli_run(cfg, run)
    err = capsys.readouterr().err
    assert code == 2 and "the disk is full" in err and "Traceback" not in err
    monkeypatch.undo()
    assert labels_of(run) == before
    assert cli_run(cfg, run) == 0 and (run / "unlearned" / "model.safetensors").is_file()


def test_safetensors_disk_full_during_the_model_save_exits_2_naming_the_folder(finished, tmp_path, capsys, monkeypatch):
    import transformers.modeling_utils as modeling_utils
    from safetensors import SafetensorError

    cfg, run = _copy(finished, tmp_path)
    shutil.rmtree(run / "unlearned")

    def full(*args, **kwargs):  # what safetensors raises when the disk fills during save_pretrained
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(modeling_utils, "safe_save_file", full)
    code = cli_run(cfg, run)
    err = capsys.readouterr().err
    assert code == 2 and f"error: cannot write {run / 'unlearned'}: the disk is full" in err and "Traceback" not in err
    assert not [p.name for p in run.iterdir() if p.name.startswith(".unlearned")], "no half-written folder"
    monkeypatch.undo()
    assert cli_run(cfg, run) == 0 and same_weights(run / "unlearned", finished[1] / "unlearned")


@pytest.mark.integration
def test_a_real_full_disk_in_the_finetune_stage_exits_2_then_recovers_identically(finished, tmp_path, capsys):
    from helpers import resize_filesystem, small_filesystem

    cfg, done = finished
    used = sum(p.stat().st_size for p in done.rglob("*") if p.is_file() and "unlearned" not in p.parts)
    with small_filesystem(tmp_path / "fs", f"{used // 1024 + 1024}k") as fs:
        if fs is None:
            pytest.skip(
                "cannot mount a tmpfs here (needs root and mount); "
                "test_safetensors_disk_full_during_the_model_save_exits_2_naming_the_folder ran instead"
            )
        run = fs / "run"
        shutil.copytree(done, run, ignore=shutil.ignore_patterns("unlearned"))
        records = {p.name: p.read_text() for p in (run / "stages").iterdir()}
        code = cli_run(cfg, run)
        err = capsys.readouterr().err
        assert code == 2 and "the disk is full" in err and "Traceback" not in err, err
        assert err.startswith(f"error: cannot write {run / 'unlearned'}"), err  # the model or its checkpoint folder
        assert not (run / "unlearned").exists() and not [p for p in run.iterdir() if p.name.startswith(".unlearned")]
        assert {p.name: p.read_text() for p in (run / "stages").iterdir()} == records, "no stage record written"
        resize_filesystem(fs, "1g")  # space freed
        assert cli_run(cfg, run) == 0 and same_weights(run / "unlearned", done / "unlearned")


def test_text_file_given_as_gguf_exits_2(tmp_path, capsys):
    (tmp_path / "m.gguf").write_text("not a model")
    raw = tiny_config(tmp_path / "in", model=str(tmp_path / "m.gguf"))
    assert "is not a GGUF file" in _exit2(tmp_path, capsys, raw)


def test_eval_out_naming_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "out").write_text("keep")
    err = _exit2(tmp_path, capsys, argv=["eval", "--model", "tiny", "--out", str(tmp_path / "out")])
    assert "is a file" in err and (tmp_path / "out").read_text() == "keep"


# -- 5: anchor maps -------------------------------------------------------------------------------------------------
def _anchors_exit2(tmp_path, capsys, text: str) -> str:
    raw = tiny_config(tmp_path / "in")
    (tmp_path / "in" / "anchors.json").write_text(text, encoding="utf-8")
    return _exit2(tmp_path, capsys, raw)


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            '{"format": "whp-anchors/1", "description": "d", "anchors": [{"Harry": ["Jon"]}]}',
            '"anchors" must be an object',
        ),
        (
            '{"anchors": {"Harry": ["Jon"],\n "Hogwarts": ["Northbrook"],\n "Harry": ["Tom"]}}',
            "line 3: key 'Harry' is given twice",
        ),
        ('{"anchors": {"Harry": ["Jon", "Harry"]}}', "alternative 'Harry' is the key itself"),
        ('{"anchors": {"Zzyzx": ["Jon"], "Qwerty": ["Tom"]}}', "none of its 2 keys occurs in the target corpus"),
        ('{"anchors": {"' + "Harry " * 100 + 'Potter": ["Jon"]}}', "606 characters"),
    ],
    ids=["list under anchors", "duplicate key", "key equals value", "no key in corpus", "606-character key"],
)
def test_misread_anchor_maps_exit_2(tmp_path, capsys, text, needle):
    assert needle in _anchors_exit2(tmp_path, capsys, text)


def test_nfd_and_cjk_keys_match_nfc_text():
    import unicodedata

    from workbench.anchors import AnchorMap

    amap = AnchorMap.from_dict(
        {"anchors": {unicodedata.normalize("NFD", "Beauxbâtons"): ["Lakeside"], "霍格沃茨": ["学校"]}}
    )
    text = "在霍格沃茨学习 and at Beauxbâtons."
    assert [m.key for m in amap.find(text)] == ["霍格沃茨", "Beauxbâtons"]
    assert amap.translate(text) == "在学校学习 and at Lakeside."
    assert amap.find("Beauxbâtonsx") == []  # still whole words in spaced scripts


def test_nfd_corpus_text_matches_nfc_key(tmp_path):
    import unicodedata

    from workbench.anchors import AnchorMap
    from workbench.corpus import read_documents

    (tmp_path / "a.txt").write_text(unicodedata.normalize("NFD", "She went to Beauxbâtons."), encoding="utf-8")
    (doc,) = read_documents(tmp_path / "a.txt")
    assert AnchorMap.from_dict({"Beauxbâtons": ["Lakeside"]}).translate(doc.text) == "She went to Lakeside."


# -- 7: smaller ------------------------------------------------------------------------------------------------------
def test_failed_first_run_does_not_refuse_the_corrected_config(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in", labels={"shard_blocks": 0})
    _exit2(tmp_path, capsys, raw)
    raw["labels"]["shard_blocks"] = 2
    assert cli_run(write_config(tmp_path / "good.yaml", raw), tmp_path / "run", "--stages", "reinforce") == 0


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupt(self):
        raise KeyboardInterrupt  # what Ctrl-C raises: no message of its own

    monkeypatch.setattr(Run, "check_inputs", interrupt)
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "in"))
    assert cli_run(cfg, tmp_path / "run") == 130
    assert "interrupted: rerun the same command to resume" in capsys.readouterr().err


def _pack(tmp_path: Path, probes: bytes | None = None, anchors: bool = True, corpus: bool = True) -> Path:
    """A small pack folder (docs/formats.md) made from the test inputs."""
    from helpers import make_inputs

    make_inputs(tmp_path / "src")
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.json").write_text(json.dumps({"name": "p", "probes": {"probability": "probes/probability.jsonl"}}))
    if corpus:
        shutil.copytree(tmp_path / "src" / "corpus", pack / "corpus")
    shutil.copytree(tmp_path / "src" / "retain", pack / "retain")
    if anchors:
        shutil.copy(tmp_path / "src" / "anchors.json", pack / "anchors.json")
    (pack / "probes").mkdir()
    lines = [
        {"id": f"p{i}", "prompt": "Harry went to", "targets": [" Hogwarts"], "split": s}
        for i, s in enumerate(["dev", "heldout"])
    ]
    (pack / "probes" / "probability.jsonl").write_bytes(
        probes if probes is not None else "\n".join(json.dumps(x) for x in lines).encode()
    )
    return pack


@pytest.mark.parametrize(
    "probes, needle",
    [
        (
            b'{"id": "a", "prompt": "Harry went to", "targets": [" Hogwarts"], "split": "dev"}\n{"id": "b", "prompt"',
            "probability.jsonl line 2: invalid JSON",
        ),
        (
            '{"id": "a", "prompt": "Caf\u00e9 at", "targets": [" Hogwarts"], "split": "dev"}'.encode("latin-1"),
            "probability.jsonl line 1: not UTF-8 text",
        ),
    ],
    ids=["bad JSON line", "latin-1"],
)
def test_bad_probe_file_is_reported_before_any_stage(tmp_path, capsys, probes, needle):
    pack = _pack(tmp_path, probes)
    raw = tiny_config(
        tmp_path / "in",
        target={"pack": str(pack), "corpus": None, "anchors": None, "retain": None},
        report={"enabled": True, "probe_sets": ["probability"]},
    )
    assert needle in _exit2(tmp_path, capsys, raw)


def test_report_split_that_selects_no_probes_exits_2(tmp_path, capsys):
    pack = _pack(tmp_path)
    raw = tiny_config(
        tmp_path / "in",
        target={"pack": str(pack), "corpus": None, "anchors": None, "retain": None},
        report={"enabled": True, "probe_sets": ["probability"], "split": "test"},
    )
    assert "report.split 'test': no probe" in _exit2(tmp_path, capsys, raw)


@pytest.mark.parametrize("missing, needle", [("anchors", "anchors.json is missing"), ("corpus", "corpus folder")])
def test_packs_check_on_an_incomplete_pack_exits_2(tmp_path, capsys, missing, needle):
    pack = _pack(tmp_path, anchors=missing != "anchors", corpus=missing != "corpus")
    err = _exit2(tmp_path, capsys, argv=["packs", "check", str(pack), "--model", "tiny"])
    assert needle in err
