"""Every door reads input the same way: a config through one reader (a mapping at the top, YAML errors with file and
line), a text file through one reader (file, line and byte), a full disk as one message naming the file being
written, an unknown name in a list setting as an error listing the valid ones. Each case: exit 2, one line, no
traceback, nothing written."""

from __future__ import annotations

import errno
import logging
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SENTENCES, small_filesystem, tiny_config
from safetensors import SafetensorError
from safetensors.torch import save_file

from workbench.cli import main
from workbench.config import dump_yaml, load_config, parse_yaml
from workbench.errors import WorkbenchError
from workbench.file_checks import environment_error
from workbench.io import atomic_dir, atomic_write, exception_chain, read_text, read_text_file

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
LIST = "- name: a\n- model: tiny\n"
MALFORMED = "name: x\nmodel: [tiny\nseed: 0\n"


def exit2(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with one line on stderr and no traceback. Returns that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- 1. one config reader for every door --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, needle",
    [(LIST, "expected a mapping of keys at the top"), (MALFORMED, ", line 3: malformed YAML")],
    ids=["yaml list", "malformed yaml"],
)
@pytest.mark.parametrize("door", ["run", "reinforce", "compare", "tune"])
def test_every_cli_door_reads_a_bad_config_the_same_way(tmp_path, capsys, door, text, needle):
    cfg = tmp_path / "prompt.yaml"  # tune --only prompt reads <methods-dir>/prompt.yaml
    cfg.write_text(text)
    out = tmp_path / "out"
    argv = {
        "run": ["run", str(cfg), "--run-dir", str(out)],
        "reinforce": ["reinforce", str(cfg), "--run-dir", str(out)],
        "compare": ["compare", str(cfg), "--out", str(out)],
        "tune": ["tune", "--methods-dir", str(tmp_path), "--only", "prompt", "--out", str(out)],
    }[door]
    err = exit2(capsys, argv)
    assert f"config {cfg}" in err and needle in err
    assert [p.name for p in tmp_path.iterdir()] == ["prompt.yaml"], "nothing written"


@pytest.mark.parametrize(
    "text, needle",
    [
        (LIST, "expected a mapping of keys at the top"),
        (MALFORMED, ", line 3: malformed YAML"),
        (None, "is a folder, not a file"),
    ],
    ids=["yaml list", "malformed", "folder"],
)
def test_the_notebooks_read_workbench_config_through_the_same_reader(tmp_path, monkeypatch, text, needle):
    from workbench.notebook import setup

    cfg = tmp_path / "c.yaml"
    cfg.mkdir() if text is None else cfg.write_text(text)
    for var in ("WORKBENCH_RUN", "WORKBENCH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORKBENCH_CONFIG", str(cfg))
    with pytest.raises(WorkbenchError, match=f"config {cfg}.*{needle}"):
        setup("00_quickstart", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("bad", ["base", "grid"])
def test_the_sweep_script_reads_configs_through_the_same_reader(tmp_path, bad):
    sys.path.insert(0, str(BENCH))
    try:
        import sweep
    finally:
        sys.path.remove(str(BENCH))
    base, grid = tmp_path / "base.yaml", tmp_path / "grid.yaml"
    base.write_text(LIST if bad == "base" else yaml.safe_dump(tiny_config(tmp_path / "in")))
    grid.write_text(MALFORMED if bad == "grid" else "- {name: a, set: {seed: 1}}\n")
    needle = f"config {base}: expected a mapping" if bad == "base" else f"sweep grid {grid}, line 3: malformed YAML"
    with pytest.raises(WorkbenchError, match=needle):
        sweep.main([str(base), str(grid), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_numbers_in_exponent_form_are_numbers_at_every_door(tmp_path):
    from workbench.compare import _parse_sweep as parse_sweep  # noqa: PLC2701 - the --sweep flag's own parser
    from workbench.compare import sweep_variants

    raw = tiny_config(tmp_path / "in")
    text = yaml.safe_dump(raw).replace("learning_rate: 0.001", "learning_rate: 1e-3")
    assert "learning_rate: 1e-3" in text
    (tmp_path / "c.yaml").write_text(text)
    assert yaml.safe_load(text)["finetune"]["learning_rate"] == "1e-3"  # what plain YAML 1.1 makes of it
    assert load_config(tmp_path / "c.yaml").finetune.learning_rate == 0.001
    assert sweep_variants(tmp_path / "c.yaml", None)[0][1]["finetune"]["learning_rate"] == 0.001
    assert parse_sweep(["finetune.learning_rate=1e-3,2E4,.5e-2"]) == {"finetune.learning_rate": [0.001, 20000.0, 0.005]}
    assert parse_yaml("a: 10\nb: 1_000\nc: 1.5\nd: 1e3x\n", "t") == {"a": 10, "b": 1000, "c": 1.5, "d": "1e3x"}
    written = {"name": "1e3", "lr": 1e-05, "n": 3}  # a run directory's config.yaml reads back the same
    assert parse_yaml(dump_yaml(written), "t") == written
    (tmp_path / "q.yaml").write_text(text.replace("learning_rate: 1e-3", "learning_rate: '1e-3'"))
    with pytest.raises(WorkbenchError, match=r"'1e-3' is not a valid float .*write the number without quotes"):
        load_config(tmp_path / "q.yaml")


# -- 2. one reader for text files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, line, byte, offset",
    [
        ("Caf\xe9 society met Harry at the station in the evening.\n".encode("latin-1"), 1, 0xE9, 3),
        (
            b"Harry Potter went to Hogwarts on the train.\n" + bytes(range(256)),
            3,
            0x80,
            44 + 128,
        ),  # byte 10 is a newline
    ],
    ids=["latin-1", "binary"],
)
def test_packs_new_on_a_corpus_that_is_not_utf8_names_file_line_and_byte(tmp_path, capsys, content, line, byte, offset):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_bytes(content)
    err = exit2(capsys, ["packs", "new", str(tmp_path / "mine"), "--corpus", str(tmp_path / "corpus")])
    assert f"{tmp_path / 'corpus' / 'a.txt'} line {line}: not UTF-8 text (byte 0x{byte:02x} at offset {offset})" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"], "nothing written"


def test_the_text_reader_names_a_folder_a_missing_file_and_a_bad_byte(tmp_path):
    with pytest.raises(WorkbenchError, match=r"^perplexity text .* is a folder, not a file"):
        read_text(tmp_path, "perplexity text")
    with pytest.raises(WorkbenchError, match=r"^rubric .*nope does not exist$"):
        read_text(tmp_path / "nope", "rubric")
    (tmp_path / "t.txt").write_bytes(b"one\ntwo\nthr\xffee\n")
    with pytest.raises(WorkbenchError, match=r"t.txt line 3: not UTF-8 text \(byte 0xff at offset 11\)"):
        read_text_file(tmp_path / "t.txt")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfkey,value\n")
    assert read_text(tmp_path / "bom.txt", encoding="utf-8-sig") == "key,value\n"


# -- 3. a full disk while a model or tensor file is written -------------------------------------------------------
def test_a_real_full_disk_during_a_safetensors_save_names_the_folder_being_written(tmp_path):
    with small_filesystem(tmp_path / "fs", "256k") as fs:
        if fs is None:
            pytest.skip(
                "cannot mount a tmpfs here (needs root and mount); "
                "test_a_simulated_safetensors_disk_full_is_the_same_message ran instead"
            )
        with pytest.raises(OSError) as info:
            with atomic_dir(fs / "model") as tmp:
                save_file({"w": torch.zeros(500_000)}, str(tmp / "model.safetensors"))  # 2 MB into 256 KB
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(fs / "model")
        raised_by = [type(e).__name__ for e in exception_chain(info.value)]
        assert raised_by[1:] == ["SafetensorError"], raised_by  # the library's own error beneath
        assert list(fs.iterdir()) == [], "the half-written folder is gone"
        assert environment_error(info.value).startswith(f"cannot write {fs / 'model'}: the disk is full")


def test_a_simulated_safetensors_disk_full_is_the_same_message(tmp_path):
    def full(tmp):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "w.safetensors", full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "w.safetensors")
    assert environment_error(info.value).startswith(f"cannot write {tmp_path / 'w.safetensors'}: the disk is full")
    assert list(tmp_path.iterdir()) == []
    # raised from anywhere else (a Trainer checkpoint), the CLI still prints one line
    assert environment_error(RuntimeError("write failed: No space left on device")).startswith(
        "cannot write a file: the disk is full"
    )
    assert environment_error(RuntimeError("some other failure")) is None


def test_packs_new_on_a_full_disk_names_the_destination(tmp_path, capsys):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text(" ".join(SENTENCES * 2000))  # ~700 KB
    with small_filesystem(tmp_path / "fs", "128k") as fs:
        if fs is None:
            pytest.skip(
                "cannot mount a tmpfs here (needs root and mount); "
                "test_a_simulated_safetensors_disk_full_is_the_same_message ran instead"
            )
        err = exit2(capsys, ["packs", "new", str(fs / "mine"), "--corpus", str(tmp_path / "corpus")])
        assert err.startswith(f"error: cannot write {fs / 'mine'}: the disk is full"), err
        assert list(fs.iterdir()) == [], "nothing half-written"


# -- 4. unknown names in list settings -----------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["probe_sets", "stages", "sections", "attacks", "tune methods", "method"])
def test_an_unknown_name_in_a_list_setting_exits_2_listing_the_valid_names(tmp_path, capsys, what):
    raw = tiny_config(tmp_path / "in")
    if what == "probe_sets":
        raw["report"] = {"enabled": True, "probe_sets": ["probability", "nonsense"]}
    if what == "method":
        raw["method"] = "nonsense"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    argv, valid = {
        "probe_sets": (["run", str(cfg), "--run-dir", str(out)], "probability, collateral, general"),
        "stages": (
            ["run", str(cfg), "--run-dir", str(out), "--stages", "reinforce,nonsense"],
            "reinforce, score, labels, finetune, report",
        ),
        "sections": (
            ["eval", "--model", "tiny", "--sections", "probes,nonsense", "--out", str(out)],
            "probes, collateral",
        ),
        "attacks": (
            ["compare", str(cfg), "--attacks", "priming,nonsense", "--out", str(out)],
            "priming, paraphrase, adversarial, relearn, residual",
        ),
        "tune methods": (["tune", "--only", "ga,nonsense", "--out", str(out)], "whp, whp_test_time, ga, graddiff"),
        "method": (["run", str(cfg), "--run-dir", str(out)], "whp, whp_test_time, ga"),
    }[what]
    err = exit2(capsys, argv)
    assert "'nonsense'" in err and valid in err
    assert not out.exists(), "nothing written"


# -- 5. messages that say what is true ------------------------------------------------------------------------------
def test_a_model_folder_with_a_broken_config_json_says_so_with_line_and_column(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "llama",\n "hidden_size": }\n')
    raw = tiny_config(tmp_path / "in", model=str(tmp_path / "m"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    err = exit2(capsys, ["run", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")])
    assert f"model folder {tmp_path / 'm'}: config.json line 2: invalid JSON (Expecting value at column 17)" in err
    assert "no local folder" not in err and not (tmp_path / "run" / "config.yaml").exists()


def test_an_anchor_map_that_is_a_folder_says_so(tmp_path, capsys):
    raw = tiny_config(tmp_path / "in")
    raw["target"]["anchors"] = str(tmp_path / "in")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    err = exit2(capsys, ["run", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")])
    assert f"anchor map {tmp_path / 'in'} is a folder, not a file" in err


def test_an_unreachable_hub_id_is_one_line_without_the_clients_retry_notices(capfd, monkeypatch):
    import transformers

    from workbench.models import load_tokenizer

    def unreachable(*args, **kwargs):  # what the hub client does without a network: retry notices, then OSError
        for i in range(1, 6):
            logging.getLogger("huggingface_hub.utils._http").warning(f"Retrying in {i}s [Retry {i}/5].")
        transformers.logging.get_logger("transformers.utils.hub").warning("falling back to the cache")
        warnings.warn("a library warning", UserWarning, stacklevel=2)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", unreachable)
    before = logging.getLogger("huggingface_hub").level
    with pytest.raises(WorkbenchError) as info:
        load_tokenizer("some-org/some-model")
    assert str(info.value) == (
        "could not load model 'some-org/some-model': We couldn't connect to 'https://huggingface.co' "
        "to load the files. (no local folder by that name, and the hub could not serve it)"
    )
    out, err = capfd.readouterr()
    assert "Retry" not in out + err and "falling back" not in out + err and "library warning" not in out + err
    assert logging.getLogger("huggingface_hub").level == before  # the level is restored afterwards


# -- 6. the fault matrix grades from what a command did ---------------------------------------------------------------
def test_the_fault_matrix_grades_from_the_observed_outcome(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import fault_matrix as fm
    finally:
        sys.path.remove(str(BENCH))

    def graded(**seen):
        return fm.grade(fm.Observation("c", "clear error", **seen))[0]

    one = {"exit_code": 2, "first_line": "error: config c.yaml, line 3: malformed YAML", "stderr_lines": 1}
    assert graded(**one) == "clear error"
    assert graded(**one, says=r"c\.yaml, line 3") == "clear error"
    assert graded(**one, says=r"line 4") == "silent"  # the message does not say what is true
    assert graded(**{**one, "stderr_lines": 23}) == "silent"  # retry noise before the error
    assert graded(**one, traceback=True) == "silent"
    assert graded(**one, temporary=["run/.unlearned.x1.tmp/model.safetensors"]) == "silent"
    assert graded(**one, changed=["run/labels/manifest.json (deleted)"]) == "silent"
    assert graded(**one, timed_out=True) == "stuck"
    assert (
        graded(exit_code=1, first_line="Traceback (most recent call last):", stderr_lines=20, traceback=True)
        == "silent"
    )
    assert graded(exit_code=0) == "silent"  # exit 0 on bad input
    assert graded(exit_code=0, identical=True) == "recovered"
    assert graded(exit_code=0, identical=False) == "silent"
    # a written file is whole only when it opens
    whole = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(1000.0)}, str(whole))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[:-100])
    (tmp_path / "r.json").write_text('{"a": ')
    assert fm.opens(whole) and not fm.opens(cut) and not fm.opens(tmp_path / "r.json")
