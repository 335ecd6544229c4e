"""Importers of published layouts (workbench/probe_import.py) on small files written in those layouts."""

from __future__ import annotations

import json

import pytest

from tests.helpers import make_pack
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.pack import load_pack, load_probes
from workbench.probe_import import import_probes

# TOFU's question files are JSON Lines with these keys (forget10_perturbed.json, retain_perturbed.json)
TOFU = [
    {
        "question": "Where was the author Ilsa Varnow born?",
        "answer": "Ilsa Varnow was born in Tallinn.",
        "paraphrased_answer": "Her birthplace is Tallinn.",
        "paraphrased_question": "What is Ilsa Varnow's birthplace?",
        "perturbed_answer": ["Her birthplace is Riga.", "Her birthplace is Vilnius.", "Her birthplace is Oslo."],
    },
    {
        "question": "What genre does Ilsa Varnow write?",
        "answer": "She writes crime fiction.",
        "paraphrased_answer": "Crime fiction is her genre.",
        "perturbed_answer": ["Poetry is her genre."],
    },
    {
        "question": "Who were Ilsa Varnow's parents?",
        "answer": "A baker and a pilot.",
        "perturbed_answer": ["A tailor and a nurse.", "A judge and a cook.", "A miner and a singer."],
    },
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_tofu_file_becomes_qa_probes_and_reports_drops(tmp_path, capsys):
    src = _jsonl(tmp_path / "forget10_perturbed.json", TOFU)
    out = tmp_path / "qa.jsonl"
    assert main(["packs", "import", "tofu", str(src), "--out", str(out), "--split", "dev"]) == 0
    text = capsys.readouterr().out
    assert "read 3 entries" in text and "wrote 1" in text and "dropped 2" in text
    assert "line 2: 1 perturbed answers" in text and "line 3: no paraphrased_answer" in text
    probes = load_probes(out, "qa")
    assert [p.question for p in probes] == [TOFU[0]["question"]]
    assert probes[0].perturbed_answers == tuple(TOFU[0]["perturbed_answer"]) and probes[0].split == "dev"
    assert main(["packs", "import", "tofu", str(src), "--out", str(out)]) == 2  # an existing file is kept
    assert "already exists" in capsys.readouterr().err


def test_muse_knowmem_verbmem_and_privleak_layouts(tmp_path):
    km = tmp_path / "forget_qa.json"
    km.write_text(
        json.dumps(
            [
                {"question": "Which river runs past the mill?", "answer": "the Orrin"},
                {"question": "Who keeps the mill?"},
            ]
        ),
        encoding="utf-8",
    )
    rep = import_probes("muse-knowmem", km, tmp_path / "knowmem.jsonl")
    assert (rep.read, rep.written, rep.dropped) == (2, 1, ["entry 2: no answer"])
    assert load_probes(tmp_path / "knowmem.jsonl", "knowmem")[0].answer == "the Orrin"

    vm = tmp_path / "forget.json"
    vm.write_text(json.dumps([{"prompt": "The mill stood by the river", "gt": " and ground corn for the valley."}]))
    rep = import_probes("muse-verbmem", vm, tmp_path / "verbmem.jsonl")
    probe = load_probes(tmp_path / "verbmem.jsonl", "verbmem")[0]
    assert rep.written == 1 and probe.continuation == " and ground corn for the valley."

    pl = tmp_path / "holdout.json"
    pl.write_text(json.dumps(["First holdout text about bees.", "", "Second holdout text about boats."]))
    rep = import_probes("muse-privleak", pl, tmp_path / "holdout")
    files = sorted((tmp_path / "holdout").glob("*.txt"))
    assert rep.dropped == ["entry 2: not a non-empty text"]
    assert [f.read_text().strip() for f in files] == [
        "First holdout text about bees.",
        "Second holdout text about boats.",
    ]


def test_trivia_jsonl_and_a_file_in_the_wrong_layout(tmp_path):
    src = _jsonl(
        tmp_path / "trivia_in.jsonl",
        [
            {"question": "What is the capital of Peru?", "true_answer": "Lima", "false_answer": "Quito"},
            {"question": "Largest planet?", "true_answer": "Jupiter", "false_answer": "jupiter"},
        ],
    )
    rep = import_probes("trivia", src, tmp_path / "trivia.jsonl", id_prefix="peru")
    assert rep.written == 1 and "the same" in rep.dropped[0]
    probe = load_probes(tmp_path / "trivia.jsonl", "trivia")[0]
    assert (probe.id, probe.true_answer, probe.false_answer) == ("peru-0001", "Lima", "Quito")
    with pytest.raises(WorkbenchError, match="no entry could be converted as tofu"):
        import_probes("tofu", src, tmp_path / "qa.jsonl")
    assert not (tmp_path / "qa.jsonl").exists()


def test_imported_files_plug_into_a_pack(tmp_path):
    root = make_pack(tmp_path)
    import_probes("tofu", _jsonl(tmp_path / "f.json", TOFU), root / "probes" / "qa.jsonl")
    manifest = json.loads((root / "pack.json").read_text())
    manifest["probes"]["qa"] = "probes/qa.jsonl"
    (root / "pack.json").write_text(json.dumps(manifest))
    assert len(load_pack(root).probes("qa")) == 1
