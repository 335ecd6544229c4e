"""The authors' dictionary file as published, CSV in and out, and the import command."""

import json
import subprocess
import sys

import numpy as np
import pytest

from workbench.anchor_import import import_anchor_map, load_any_anchor_map, parse_authors_answers
from workbench.errors import WorkbenchError

# answers shaped like the authors' GPT-4 answers: prose around a `translations = {...}` with trailing commas,
# comments and newlines; one cut off mid-way, one with no dictionary at all
ANSWERS = [
    'Here are the translations:\ntranslations = {\n  "Harry": "Jon",\n  "Hogwarts": "Northbrook Academy",\n'
    '  "Harry Potter": "Jon Miller",\n  "Potter": "Miller",\n}\nHope this helps.',
    'translations = {"Harry": "Ben", "Hermione": "Sarah", "Hermione\'s": "Sarah\'s", "Quidditch": "skyball",}',
    'translations = {"Harry": "Jon", "Ron": "Tony", "Hogwarts": "Kingsmere College", "Sna',
    "I cannot produce translations for this passage.",
    'translations = {"Harry": "Tom", "Dumbledore": "", "Ron": "Dan"}',
]


def write_npy(tmp_path, answers=ANSWERS):
    path = tmp_path / "dicts_new.npy"
    np.save(path, np.array(answers))
    return path


def test_answers_merge_as_the_authors_pipeline_does():
    merged, report = parse_authors_answers(ANSWERS)
    # written out by hand from the answers above
    assert merged == {"Harry": ["Jon", "Ben", "Tom"], "Hogwarts": ["Northbrook Academy"], "Harry Potter": ["Jon Miller"],
                      "Potter": ["Miller"], "Hermione": ["Sarah"], "Hermione's": ["Sarah's"], "Quidditch": ["skyball"],
                      "Ron": ["Dan"]}
    assert [i for i, _ in report.dropped_answers] == [2, 3]
    assert all("no `translations" in why for _, why in report.dropped_answers)  # cut off, and no dictionary at all
    assert report.dropped_values == [("Dumbledore", "answer 4: '' is not a non-empty string")]
    assert report.most_alternatives == ("Harry", 3)


def test_npy_file_loads_consolidated_and_reports_what_was_dropped(tmp_path):
    amap, report = import_anchor_map(write_npy(tmp_path))
    assert set(amap.entries) == {"Harry", "Hogwarts", "Potter", "Hermione", "Quidditch", "Ron"}
    assert dict(report.dropped_keys) == {"Harry Potter": "every word is itself a key",
                                         "Hermione's": "possessive of key 'Hermione'"}
    text = "\n".join(report.lines())
    assert "5 answers, 2 unreadable" in text and "dropped key 'Harry Potter'" in text and "Dumbledore" in text


@pytest.mark.integration
def test_import_command_writes_json_and_csv_that_load_back(tmp_path):
    src = write_npy(tmp_path)
    for out in (tmp_path / "a.json", tmp_path / "a.csv"):
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "anchors", "import", str(src), "-o", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "dropped key 'Harry Potter'" in proc.stdout
        again = load_any_anchor_map(out)
        assert again.entries == load_any_anchor_map(src).entries
    assert json.loads((tmp_path / "a.json").read_text())["format"] == "whp-anchors/1"
    # the one CSV layout the workbench writes: the anchor editor's (one row per key)
    assert (tmp_path / "a.csv").read_text().splitlines()[:2] == ["key,alternatives,status,note", "Harry,Jon | Ben | Tom,to review,"]


def test_plain_key_alternative_csv_is_still_imported(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("key,alternative\nHarry,Jon\nHarry,Ben\nHogwarts,Stonebridge\n", encoding="utf-8")
    assert load_any_anchor_map(path).entries == {"Harry": ["Jon", "Ben"], "Hogwarts": ["Stonebridge"]}


def test_an_alternative_holding_the_csv_separator_is_refused(tmp_path):
    from workbench.anchors import AnchorMap
    from workbench.curation import write_anchor_file

    amap = AnchorMap.from_dict({"Harry": ["Jon | Ben"]})
    with pytest.raises(WorkbenchError, match="holds '\\|'.*save it as JSON"):
        write_anchor_file(amap, tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize("content, needle", [
    (b"Harry: Jon\n", "neither JSON, CSV"),
    (b"name,value\nHarry,Jon\n", "expected the header `key,alternative`"),
    (b"key,alternative\nHarry\n", "line 2: expected `key,alternative`"),
])
@pytest.mark.integration
def test_bad_dictionary_files_exit_2_with_one_clear_error(tmp_path, content, needle):
    path = tmp_path / ("a.csv" if b"," in content else "a.txt")
    path.write_bytes(content)
    with pytest.raises(WorkbenchError, match=needle):
        load_any_anchor_map(path)
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "anchors", "import", str(path), "-o",
                           str(tmp_path / "out.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and needle.split("`")[0] in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_npy_of_numbers_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(3))
    with pytest.raises(WorkbenchError, match="not of strings"):
        load_any_anchor_map(path)


def test_run_config_accepts_the_authors_file(tmp_path):
    from workbench.config import config_from_dict
    from workbench.run import Run

    corpus = tmp_path / "c.txt"
    corpus.write_text("Harry went to Hogwarts with Hermione and Ron. " * 20)
    cfg = config_from_dict({"model": "tiny", "target": {"pack": None, "corpus": str(corpus),
                                                        "anchors": str(write_npy(tmp_path))}})
    run = Run(cfg, tmp_path / "run", log=None)
    assert run.anchors.entries["Harry"] == ["Jon", "Ben", "Tom"]
