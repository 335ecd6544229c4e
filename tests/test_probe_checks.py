"""Probe hygiene: fact groups never span splits, tagged answer kinds, and the warnings of `packs check`."""

from __future__ import annotations

import argparse

import pytest

from helpers import COMPLETION, PROBABILITY, make_pack, write_jsonl
from workbench.anchors import AnchorMap, load_anchor_map
from workbench.errors import WorkbenchError
from workbench.eval.cli import add_packs_parser
from workbench.eval.run_report import answer_kind
from workbench.pack import NextTokenProbe, list_packs, load_pack, load_probes
from workbench.probe_checks import probe_warnings, subtlety_band, target_in_prompt

MAP = AnchorMap({"Harry Potter": ["Jon Miller"], "Hogwarts": ["Northbrook"], "Half-Blood Prince": ["Mixed Heir"]})


def test_a_fact_never_spans_both_splits(tmp_path):
    rows = [{"id": "a", "prompt": "The houses are Gryffindor, Hufflepuff, Ravenclaw and", "targets": [" Slytherin"],
             "split": "dev", "fact": "houses"},
            {"id": "b", "prompt": "Harry's owl is", "targets": [" Hedwig"], "split": "heldout"},
            {"id": "c", "prompt": "The houses are Gryffindor, Slytherin, Ravenclaw and", "targets": [" Hufflepuff"],
             "split": "heldout", "fact": "houses"}]
    path = write_jsonl(tmp_path / "probability.jsonl", rows)
    with pytest.raises(WorkbenchError, match=r"fact 'houses' spans both splits: a \(.*line 1\) is dev, c \(.*line 3\) is heldout"):
        load_probes(path, "probability")
    rows[2]["split"] = "dev"
    probes = load_probes(write_jsonl(path, rows), "probability")
    assert [p.fact for p in probes] == ["houses", None, "houses"]
    rows[1]["answer_kind"] = "anchor"  # only 'collocation' may be stated; the others come from the anchor map
    with pytest.raises(WorkbenchError, match="line 2: field 'answer_kind' must be one of collocation"):
        load_probes(write_jsonl(path, rows), "probability")


def test_a_completion_fact_never_spans_both_splits(tmp_path):
    rows = [{"id": "a", "prompt": "In Harry Potter, the headmaster is", "references": ["Dumbledore"], "subtlety": 1,
             "split": "dev", "fact": "headmaster"},
            {"id": "b", "prompt": "The headmaster of Hogwarts is Professor", "references": ["Dumbledore"], "subtlety": 3,
             "split": "heldout", "fact": "headmaster"}]
    path = write_jsonl(tmp_path / "completion.jsonl", rows)
    with pytest.raises(WorkbenchError, match=r"fact 'headmaster' spans both splits: a \(.*line 1\) is dev, b \(.*line 2\) is heldout"):
        load_probes(path, "completion")
    rows[1]["split"] = "dev"
    assert [p.fact for p in load_probes(write_jsonl(path, rows), "completion")] == ["headmaster", "headmaster"]
    rows[1]["fact"] = ""
    with pytest.raises(WorkbenchError, match="line 2: field 'fact' must be a non-empty string"):
        load_probes(write_jsonl(path, rows), "completion")


def test_a_tagged_collocation_is_its_own_answer_kind():
    assert answer_kind(MAP, "Harry's scar is shaped like a lightning", " bolt", "collocation") == "collocation"
    assert answer_kind(MAP, "Harry's scar is shaped like a lightning", " bolt") == "other"
    # the anchor map decides first: a tag cannot turn an anchored answer into a collocation
    assert answer_kind(MAP, "Snape was the Half-Blood", " Prince", "collocation") == "in_anchor"
    assert answer_kind(MAP, "He studied at", " Hogwarts", "collocation") == "anchor"


def test_target_in_prompt_and_subtlety_band():
    probe = lambda prompt, *targets: NextTokenProbe("x", prompt, targets, "dev")  # noqa: E731
    assert target_in_prompt(probe("The founder of Slytherin house was Salazar", " Slytherin")) == " Slytherin"
    assert target_in_prompt(probe("Dumbledore's full name is Albus Percival Wulfric Brian", " Dumbledore")) == " Dumbledore"
    assert target_in_prompt(probe("One of the four founders of Hogwarts was Salazar", " Slytherin")) is None
    assert target_in_prompt(probe("A snowy owlet is a young", " owl")) is None  # whole words only
    assert subtlety_band("In the Harry Potter books, the headmaster is", MAP, "Harry Potter") == (1, 2)
    assert subtlety_band("The castle of Hogwarts rose above the lake and", MAP, "Harry Potter") == (2, 4)
    assert subtlety_band("The boy with the lightning-shaped scar", MAP, "Harry Potter") == (3, 10)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="workbench")
    add_packs_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_packs_check_warns_about_probes_that_measure_nothing(tmp_path, capsys):
    pack = make_pack(tmp_path)
    assert probe_warnings(load_pack(pack), load_anchor_map(pack / "anchors.json")) == []
    write_jsonl(pack / "probes" / "probability.jsonl", PROBABILITY + [
        {"id": "p5", "prompt": "The founder of Slytherin house was Salazar", "targets": [" Slytherin"], "split": "dev"},
        {"id": "p6", "prompt": "Hermione Granger is a very clever", "targets": [" witch", " the"], "split": "dev"}])
    write_jsonl(pack / "probes" / "completion.jsonl", COMPLETION + [
        {"id": "c4", "prompt": "Harry Potter raised his wand and", "references": ["spell"], "subtlety": 7}])
    assert _cli(["packs", "check", str(pack), "--model", "tiny", "--kinds", "probability"]) == 0
    err = capsys.readouterr().err
    assert "probability p5: target ' Slytherin' already stands in the prompt" in err
    assert "probability p6: target(s) [' the'] accept a bare function word" in err
    assert "completion c4: subtlety 7 does not fit what the prompt names (expected 1-2" in err
    assert err.count("warning:") == 3  # nothing else: p1-p4, c1-c3 and the collateral probes are clean


@pytest.mark.parametrize("name", list_packs())
def test_bundled_packs_are_clean(name):
    pack = load_pack(name)
    for kind in pack.probe_paths:
        pack.probes(kind)  # every fact group sits in one split
    assert probe_warnings(pack, load_anchor_map(pack.anchors_path)) == []


def test_completion_selection_splits_by_fact():
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, bench)
    try:
        from completion_probe_selection import fact_splits
    finally:
        sys.path.remove(bench)
    facts = ["school"] * 9 + ["villain"] * 5 + ["friends"] * 4 + ["train"] * 3 + ["titles"] * 2 + ["owl"]
    splits = fact_splits(facts)
    assert set(splits) == set(facts) and set(splits.values()) <= {"dev", "heldout"}
    n_dev = sum(splits[f] == "dev" for f in facts)
    assert 0 < n_dev <= len(facts) / 3
    assert splits == fact_splits(list(reversed(facts)))  # the order of the prompts does not matter
    # the shipped set: every completion prompt names its fact, and dev holds at most a third of them
    comp = load_pack("harry_potter").probes("completion")
    assert all(p.fact for p in comp)
    assert 0 < sum(p.split == "dev" for p in comp) <= len(comp) / 3


def test_trivia_and_qa_hygiene_warnings(tmp_path):
    import json

    from helpers import make_pack, write_jsonl
    from workbench.pack import load_pack
    from workbench.probe_checks import answer_length_mismatch, probe_warnings

    assert answer_length_mismatch("a", "the Department of Magical Games and Sports")
    assert not answer_length_mismatch("a snowy owl", "a barn owl")
    root = make_pack(tmp_path)
    manifest = json.loads((root / "pack.json").read_text())
    manifest["probes"].update({"trivia": "probes/trivia.jsonl", "qa": "probes/qa.jsonl"})
    (root / "pack.json").write_text(json.dumps(manifest))
    write_jsonl(root / "probes" / "trivia.jsonl", [
        {"id": "t1", "question": "Q?", "true_answer": "Fang", "false_answer": "an enormous three-headed dog", "split": "dev"},
        {"id": "t2", "question": "Q?", "true_answer": "Fang", "false_answer": "Fluffy", "split": "dev"}])
    write_jsonl(root / "probes" / "qa.jsonl", [
        {"id": "q1", "question": "Q?", "answer": "A", "paraphrased_answer": "It is A.", "split": "dev",
         "perturbed_answer": ["It is B.", "it is a.", "It is C."]}])
    warnings = [w for w in probe_warnings(load_pack(root)) if w.startswith(("trivia", "qa"))]
    assert len(warnings) == 2
    assert warnings[0].startswith("trivia t1:") and "differ much in length" in warnings[0]
    assert warnings[1].startswith("qa q1:") and "repeats the paraphrased answer" in warnings[1]
