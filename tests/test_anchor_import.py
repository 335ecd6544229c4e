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
    assert merged == {
        "Harry": ["Jon", "Ben", "Tom"],
        "Hogwarts": ["Northbrook Academy"],
        "Harry Potter": ["Jon Miller"],
        "Potter": ["Miller"],
        "Hermione": ["Sarah"],
        "Hermione's": ["Sarah's"],
        "Quidditch": ["skyball"],
        "Ron": ["Dan"],
    }
    assert [i for i, _ in report.dropped_answers] == [2, 3]
    assert all("no `translations" in why for _, why in report.dropped_answers)  # cut off, and no dictionary at all
    assert report.dropped_values == [("Dumbledore", "answer 4: '' is not a non-empty string")]
    assert report.most_alternatives == ("Harry", 3)


def test_npy_file_loads_consolidated_and_reports_what_was_dropped(tmp_path):
    amap, report = import_anchor_map(write_npy(tmp_path))
    assert set(amap.entries) == {"Harry", "Hogwarts", "Potter", "Hermione", "Quidditch", "Ron"}
    assert dict(report.dropped_keys) == {
        "Dumbledore": "left with no alternative",  # its one alternative was ''
        "Harry Potter": "every word is itself a key",
        "Hermione's": "possessive of key 'Hermione'",
    }
    text = "\n".join(report.lines())
    assert "5 answers, 2 unreadable" in text and "dropped key 'Harry Potter'" in text and "Dumbledore" in text


def published(answers: list[dict | str]) -> np.ndarray:
    """An array in the layout of the published dicts_new.npy: one dimension, numpy unicode strings (``<U...``),
    each answer ``translations = {`` then one ``"key": "value",`` line per entry indented by four spaces, ``}``;
    a str item is an answer given as is (the published file holds answers cut off before the closing brace)."""
    texts = []
    for a in answers:
        if isinstance(a, str):
            texts.append(a)
        else:
            body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in a.items())
            texts.append("translations = {\n" + body + "\n}")
    arr = np.array(texts)
    assert arr.ndim == 1 and arr.dtype.kind == "U"
    return arr


PUBLISHED = [
    {
        "Harry": "Jon",
        "Ron": "Tom",
        "CHAPTER TWENTY-THREE": "CHAPTER TWENTY-THREE",
        "Harry Potter": "Jon Huggins",
        "Potter": "Huggins",
    },
    {"Harry": "Harry", "Hermione": "Emily", "Hermione's": "Emily's", "": "nobody", "Dobby": " Dobby "},
    {"Ron": "Rob", "Dobby": "Blinky", "Snape": "", "CHAPTER TWO - THE SCAR": "CHAPTER TWO - THE MARK"},
    'translations = {\n    "Harry": "Jon",\n    "Quidditch": "Skyb',  # cut off, as five of the published answers
]


def test_published_layout_imports_with_every_drop_reported(tmp_path):
    path = tmp_path / "dicts_new.npy"
    np.save(path, published(PUBLISHED))
    amap, report = import_anchor_map(path)
    # worked out by hand: 4 answers, the last cut off; 11 distinct keys read in the other three (the empty one
    # included); dropped: the self-mappings 'CHAPTER TWENTY-THREE' (its key left empty), 'Harry' -> 'Harry' (Harry
    # keeps Jon) and 'Dobby' -> ' Dobby ' (the same after trimming; Dobby keeps Blinky), the empty key, and
    # 'Snape' -> '' (Snape left empty): 8 keys merged; consolidation drops 'Harry Potter' (both words are keys)
    # and "Hermione's" (possessive of a key): 6 kept
    assert (report.answers, report.keys_read, report.keys_merged, report.kept_keys) == (4, 11, 8, 6)
    assert [i for i, _ in report.dropped_answers] == [3]
    assert amap.entries == {
        "Harry": ["Jon"],
        "Ron": ["Tom", "Rob"],
        "Potter": ["Huggins"],
        "Hermione": ["Emily"],
        "Dobby": ["Blinky"],
        "CHAPTER TWO - THE SCAR": ["CHAPTER TWO - THE MARK"],
    }
    assert sorted(k for k, _ in report.dropped_values) == ["CHAPTER TWENTY-THREE", "Dobby", "Harry", "Snape"]
    assert dict(report.dropped_keys) == {
        "CHAPTER TWENTY-THREE": "left with no alternative",
        "": "empty key",
        "Snape": "left with no alternative",
        "Harry Potter": "every word is itself a key",
        "Hermione's": "possessive of key 'Hermione'",
    }
    text = "\n".join(report.lines())
    assert text.startswith(f"{path}: 6 anchors after consolidation")
    (dropped,) = [line for line in text.splitlines() if line.startswith("  dropped: ")]
    assert sorted(dropped[len("  dropped: ") :].split("; ")) == [
        "1 alternatives that are empty or not strings",
        "1 empty keys",
        "2 keys dropped by consolidation",
        "2 keys left with no alternative",
        "3 alternatives that are the key itself",
    ]


@pytest.mark.integration
def test_import_command_writes_json_and_csv_that_load_back(tmp_path):
    src = write_npy(tmp_path)
    for out in (tmp_path / "a.json", tmp_path / "a.csv"):
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "anchors", "import", str(src), "-o", str(out)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        assert "dropped key 'Harry Potter'" in proc.stdout
        again = load_any_anchor_map(out)
        assert again.entries == load_any_anchor_map(src).entries
    assert json.loads((tmp_path / "a.json").read_text())["format"] == "whp-anchors/1"
    # the one CSV layout the workbench writes: the anchor editor's (one row per key)
    assert (tmp_path / "a.csv").read_text().splitlines()[:2] == [
        "key,alternatives,status,note",
        "Harry,Jon | Ben | Tom,to review,",
    ]


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


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"Harry: Jon\n", "neither JSON, CSV"),
        (b"name,value\nHarry,Jon\n", "expected the header `key,alternative`"),
        (b"key,alternative\nHarry\n", "line 2: expected `key,alternative`"),
    ],
)
@pytest.mark.integration
def test_bad_dictionary_files_exit_2_with_one_clear_error(tmp_path, content, needle):
    path = tmp_path / ("a.csv" if b"," in content else "a.txt")
    path.write_bytes(content)
    with pytest.raises(WorkbenchError, match=needle):
        load_any_anchor_map(path)
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "anchors", "import", str(path), "-o", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
    )
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
    cfg = config_from_dict(
        {"model": "tiny", "target": {"pack": None, "corpus": str(corpus), "anchors": str(write_npy(tmp_path))}}
    )
    run = Run(cfg, tmp_path / "run", log=None)
    assert run.anchors.entries["Harry"] == ["Jon", "Ben", "Tom"]
