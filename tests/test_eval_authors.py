"""The authors' completion prompts (evaluation_prompts.json) converted into a completion probe file."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.eval.authors import convert_authors_prompts, read_authors_prompts
from workbench.pack import load_probes

# Shaped like the authors' file: a list of {"prompt": {...}} entries, key order as found there (both orders occur).
ENTRIES = [
    {
        "prompt": {
            "references": ["Ron", "Hermione", "wand"],
            "prompt": "Ron and Hermione were practicing their spells when Ron accidentally cast a spell that caused",
            "subtlety": 8,
        }
    },
    {
        "prompt": {
            "subtlety": 2,
            "references": ["Dementors", "Patronus"],
            "prompt": "The chilling presence of the Dementors could only be repelled by casting a powerful Patronus, which took the form of a",
        }
    },
    {"prompt": "He glanced at the scar on the boy's forehead.", "references": ["scar"], "subtlety": 9},  # flat
]


def _write(path, entries):
    path.write_text(json.dumps(entries, indent=4), encoding="utf-8")
    return path


def test_convert_authors_prompts_round_trips_through_the_probe_loader(tmp_path):
    src = _write(tmp_path / "evaluation_prompts.json", ENTRIES)
    out = tmp_path / "probes" / "completion.jsonl"
    written = convert_authors_prompts(src, out, split="heldout", id_prefix="msr")
    probes = load_probes(out, "completion")
    fields = lambda ps: [(p.id, p.prompt, p.references, p.subtlety, p.split) for p in ps]  # noqa: E731
    assert fields(probes) == fields(written)
    assert [p.id for p in probes] == ["msr-001", "msr-002", "msr-003"]
    for probe, entry in zip(probes, ENTRIES):
        inner = entry["prompt"] if isinstance(entry["prompt"], dict) else entry
        assert probe.prompt == inner["prompt"] and list(probe.references) == inner["references"]
        assert probe.subtlety == inner["subtlety"] and probe.split == "heldout"
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    dev = read_authors_prompts(src, split="dev")
    assert {p.split for p in dev} == {"dev"} and dev[0].id == "authors-001"


def test_convert_authors_prompts_errors_name_the_entry_and_keep_existing_files(tmp_path):
    src = _write(tmp_path / "p.json", ENTRIES)
    out = tmp_path / "completion.jsonl"
    out.write_text("curated\n", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="already exists"):
        convert_authors_prompts(src, out)
    assert out.read_text(encoding="utf-8") == "curated\n"
    convert_authors_prompts(src, out, overwrite=True)
    assert len(load_probes(out, "completion")) == 3
    bad = _write(tmp_path / "bad.json", ENTRIES[:1] + [{"prompt": {"prompt": "x", "references": ["y"]}}])
    with pytest.raises(WorkbenchError, match=r"bad.json entry 2: missing field 'subtlety'"):
        read_authors_prompts(bad)
    bad = _write(tmp_path / "bad2.json", [{"prompt": {"prompt": "x", "references": [], "subtlety": 3}}])
    with pytest.raises(WorkbenchError, match=r"entry 1: field 'references'"):
        read_authors_prompts(bad)
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="invalid JSON"):
        read_authors_prompts(tmp_path / "broken.json")
    with pytest.raises(WorkbenchError, match="non-empty JSON list"):
        read_authors_prompts(_write(tmp_path / "empty.json", []))


def test_cli_import_completions(tmp_path, capsys):
    src = _write(tmp_path / "evaluation_prompts.json", ENTRIES)
    out = tmp_path / "c.jsonl"
    assert main(["packs", "import-completions", str(src), "--out", str(out), "--split", "dev"]) == 0
    assert "wrote 3 completion probes" in capsys.readouterr().out
    assert {p.split for p in load_probes(out, "completion")} == {"dev"}
    assert main(["packs", "import-completions", str(src), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["packs", "import-completions", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.jsonl")]) == 2
