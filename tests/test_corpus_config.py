"""Corpus reading and blocks; config validation."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench
from workbench.config import config_from_dict, load_config
from workbench.corpus import Document, make_blocks, read_documents
from workbench.errors import WorkbenchError


def test_blocks_keep_the_last_partial_block(bpe_tokenizer):
    text = "word " * 103
    blocks = make_blocks([Document("a", text.strip())], bpe_tokenizer, block_size=10)
    n = len(bpe_tokenizer(text.strip(), add_special_tokens=False).input_ids)
    assert sum(len(b) for b in blocks) == n
    assert len(blocks[-1]) == n % 10 or n % 10 == 0
    assert [b.index for b in blocks] == list(range(len(blocks)))
    for b in blocks:  # offsets index the block's own text
        assert b.offsets[-1, 1] == len(b.text)
        assert np.array_equal(bpe_tokenizer(b.text, add_special_tokens=False).input_ids[-3:], b.input_ids[-3:])


def test_read_documents_errors(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        read_documents(tmp_path / "missing")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(WorkbenchError, match="holds no .txt files"):
        read_documents(empty_dir)
    (empty_dir / "a.txt").write_text("  \n")
    with pytest.raises(WorkbenchError, match="every file is empty"):
        read_documents(empty_dir)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"line one\nline two caf\xe9\n")
    with pytest.raises(WorkbenchError, match=r"bad.txt line 2: not UTF-8"):
        read_documents(bad)


def test_corpus_shorter_than_one_block(bpe_tokenizer):
    with pytest.raises(WorkbenchError, match="shorter than one block"):
        make_blocks([Document("a", "only a few words")], bpe_tokenizer, block_size=512)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(WorkbenchError, match="unknown key 'finetune.learnin_rate'"):
        config_from_dict({"finetune": {"learnin_rate": 1e-4}})
    with pytest.raises(WorkbenchError, match="'labels.top_k'"):
        config_from_dict({"labels": {"top_k": "many"}})
    with pytest.raises(WorkbenchError, match="labels.alphas"):
        config_from_dict({"labels": {"alphas": [-1.0, 5.0]}})
    with pytest.raises(WorkbenchError, match="finetune.alpha"):
        config_from_dict({"finetune": {"alpha": -2.0}})
    with pytest.raises(WorkbenchError, match="not among labels.alphas"):
        config_from_dict({"finetune": {"alpha": 3.0}, "labels": {"alphas": [5.0]}})
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntarget: [unclosed\n")
    with pytest.raises(WorkbenchError, match=r"c.yaml, line \d+: malformed YAML"):
        load_config(path)


def test_config_relative_paths_resolve_against_the_file(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text(
        "target:\n  pack: null\n  corpus: data/corpus\n  anchors: data/a.json\n"
        "report:\n  perplexity_text: ../texts/ppl.txt\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory plays no part
    cfg = load_config(path)
    assert cfg.target.corpus == str(path.parent / "data/corpus")
    assert cfg.target.anchors == str(path.parent / "data/a.json")
    assert cfg.finetune.alpha == 5.0 and isinstance(cfg.labels.alphas[0], float)
    assert cfg.report.perplexity_text == str(tmp_path / "texts" / "ppl.txt")
    absolute = tmp_path / "abs.txt"
    path.write_text(f"report:\n  perplexity_text: {absolute}\n")
    assert load_config(path).report.perplexity_text == str(absolute)


def test_demo_config_measures_perplexity_on_the_shipped_wikitext():
    from workbench.cli import CONFIGS
    from workbench.eval.utility import default_evaldata_dir

    cfg = load_config(CONFIGS / "demo.yaml")
    text = Path(cfg.report.perplexity_text)
    assert text.resolve() == (Path(workbench.__file__).parent / "evaldata" / "wikitext2_test_raw.txt").resolve()
    assert text.read_text(encoding="utf-8").splitlines()[1] == " = Robert Boulter = "
    if "WORKBENCH_EVALDATA" not in os.environ:
        assert default_evaldata_dir().resolve() == text.parent.resolve()


def test_shipped_evaldata_passes_its_checker_and_has_a_notice():
    folder = Path(workbench.__file__).parent / "evaldata"
    result = subprocess.run([sys.executable, str(folder / "check.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    notice = (folder / "NOTICE").read_text(encoding="utf-8")
    for name in ("piqa", "hellaswag", "arc_easy", "arc_challenge", "winogrande", "boolq", "openbookqa"):
        assert f"{name}.jsonl" in notice and (folder / f"{name}.jsonl").is_file()
    for licence in ("AFL-3.0", "MIT", "CC BY-SA 4.0", "CC-BY", "CC BY-SA 3.0", "NOT STATED"):
        assert licence in notice


def test_sweep_and_compare_resolve_a_config_files_paths_against_the_file(tmp_path, monkeypatch):
    """A variant made from a config file reads the same files as `workbench run FILE`, from any working folder."""
    import yaml

    from workbench.compare import sweep_variants
    from workbench.config import load_config

    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "ppl.txt").write_text("some text\n")
    cfg_file = folder / "c.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "name": "c",
                "model": "tiny",
                "target": {"pack": "harry_potter", "corpus": "corpus.txt"},
                "reinforce": {"path": "../adapters/r"},
                "report": {"perplexity_text": "ppl.txt"},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    want = load_config(cfg_file)
    ((_, data),) = sweep_variants(cfg_file, None)
    for got in (data["target"]["corpus"], data["reinforce"]["path"], data["report"]["perplexity_text"]):
        assert Path(got).is_absolute()
    assert Path(data["report"]["perplexity_text"]) == (folder / "ppl.txt").resolve()
    assert Path(data["target"]["corpus"]).resolve() == Path(want.target.corpus).resolve()
    assert Path(data["reinforce"]["path"]).resolve() == Path(want.reinforce.path).resolve()
