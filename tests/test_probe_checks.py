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
    rows = [
        {
            "id": "a",
            "prompt": "The houses are Gryffindor, Hufflepuff, Ravenclaw and",
            "targets": [" Slytherin"],
            "split": "dev",
            "fact": "houses",
        },
        {"id": "b", "prompt": "Harry's owl is", "targets": [" Hedwig"], "split": "heldout"},
        {
            "id": "c",
            "prompt": "The houses are Gryffindor, Slytherin, Ravenclaw and",
            "targets": [" Hufflepuff"],
            "split": "heldout",
            "fact": "houses",
        },
    ]
    path = write_jsonl(tmp_path / "probability.jsonl", rows)
    with pytest.raises(
        WorkbenchError, match=r"fact 'houses' spans both splits: a \(.*line 1\) is dev, c \(.*line 3\) is heldout"
    ):
        load_probes(path, "probability")
    rows[2]["split"] = "dev"
    probes = load_probes(write_jsonl(path, rows), "probability")
    assert [p.fact for p in probes] == ["houses", None, "houses"]
    rows[1]["answer_kind"] = "anchor"  # only 'collocation' may be stated; the others come from the anchor map
    with pytest.raises(WorkbenchError, match="line 2: field 'answer_kind' must be one of collocation"):
        load_probes(write_jsonl(path, rows), "probability")


def test_a_completion_fact_never_spans_both_splits(tmp_path):
    rows = [
        {
            "id": "a",
            "prompt": "In Harry Potter, the headmaster is",
            "references": ["Dumbledore"],
            "subtlety": 1,
            "split": "dev",
            "fact": "headmaster",
        },
        {
            "id": "b",
            "prompt": "The headmaster of Hogwarts is Professor",
            "references": ["Dumbledore"],
            "subtlety": 3,
            "split": "heldout",
            "fact": "headmaster",
        },
    ]
    path = write_jsonl(tmp_path / "completion.jsonl", rows)
    with pytest.raises(
        WorkbenchError, match=r"fact 'headmaster' spans both splits: a \(.*line 1\) is dev, b \(.*line 2\) is heldout"
    ):
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
    assert (
        target_in_prompt(probe("Dumbledore's full name is Albus Percival Wulfric Brian", " Dumbledore"))
        == " Dumbledore"
    )
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
    write_jsonl(
        pack / "probes" / "probability.jsonl",
        PROBABILITY
        + [
            {
                "id": "p5",
                "prompt": "The founder of Slytherin house was Salazar",
                "targets": [" Slytherin"],
                "split": "dev",
            },
            {"id": "p6", "prompt": "Hermione Granger is a very clever", "targets": [" witch", " the"], "split": "dev"},
        ],
    )
    write_jsonl(
        pack / "probes" / "completion.jsonl",
        COMPLETION
        + [{"id": "c4", "prompt": "Harry Potter raised his wand and", "references": ["spell"], "subtlety": 7}],
    )
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


# -- disjointness of probes and training text ----------------------------------------------------------------------------
def _phrase_hits(pack, texts, words=2):
    """An independent reference: a plain loop over every probe, target and text."""
    import json
    import re

    norm = lambda s: re.sub(r"\s+", " ", s).strip().lower()  # noqa: E731
    hits = set()
    for kind in ("probability", "collateral", "general"):
        path = pack.root / "probes" / f"{kind}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                for t in row["targets"]:
                    if norm(" ".join(row["prompt"].split()[-words:]) + t) in norm(" ".join(texts)):
                        hits.add(row["id"])
    return hits


def test_overlap_is_the_answer_after_the_prompts_last_two_words():
    from workbench.probe_checks import answer_phrases, find_overlaps

    p = NextTokenProbe(
        id="k1",
        prompt="The author of The Lord of the Rings is J. R. R.",
        targets=(" Tolkien", " Tolkein"),
        kind="collateral",
    )
    assert answer_phrases(p) == ["r. r. tolkien", "r. r. tolkein"]
    got = find_overlaps([p], {"a": "He was J. R.\n R.   TOLKIEN, a professor.", "b": "Tolkien was a professor."})
    assert [(o.probe_id, o.phrase, o.where) for o in got] == [("k1", "r. r. tolkien", "a")]
    assert find_overlaps([p], {"b": "R. Tolkien, and J. R. R. Martin"}) == []  # the cue must come right before


def test_check_disjoint_lists_every_overlap_unless_allowed():
    from workbench.probe_checks import check_disjoint

    probes = [
        NextTokenProbe(id="g1", prompt="The sun sets in the", targets=(" west",), kind="general"),
        NextTokenProbe(id="g2", prompt="The capital of France is", targets=(" Paris",), kind="general"),
        NextTokenProbe(id="p1", prompt="Harry's owl is named", targets=(" Hedwig",)),
    ]
    texts = {"retain text a.txt": "Terraces in the West End. The capital of France is Paris.", "retain text b.txt": "x"}
    with pytest.raises(WorkbenchError) as err:
        check_disjoint(probes, texts, {}, "pack 't' retain text")
    msg = str(err.value)
    assert "pack 't' retain text: 2 probe(s)" in msg and "general g1 (heldout): 'in the west'" in msg
    assert "general g2 (heldout): 'france is paris' stands in the retain text a.txt" in msg and "allow_overlap" in msg
    allowed = check_disjoint(probes, texts, {"g1": "a street name", "g2": "tests the fact itself"}, "x")
    assert sorted(o.probe_id for o in allowed) == ["g1", "g2"]
    with pytest.raises(WorkbenchError, match="allow_overlap names nope"):
        check_disjoint(probes, texts, {"nope": "stale"}, "x")


def test_disjoint_text_drops_only_the_sentences_that_state_an_answer():
    from workbench.probe_checks import disjoint_text, find_overlaps

    probes = [
        NextTokenProbe(id="p1", prompt="Harry's best friends are Ron Weasley and Hermione", targets=(" Granger",)),
        NextTokenProbe(id="p2", prompt="The sport played on broomsticks is", targets=(" Quidditch",)),
    ]
    text = (
        "Harry Potter Encyclopedia\n\nHis friends are Ron Weasley and Hermione\nGranger, who is clever. He flies. "
        "The sport played on broomsticks is Quidditch! It has seven players.\n\nThe end."
    )
    out, lost = disjoint_text(text, probes)
    assert lost == 2
    assert out == "Harry Potter Encyclopedia\n\nHe flies. It has seven players.\n\nThe end."
    assert find_overlaps(probes, {"t": out}) == [] and find_overlaps(probes, {"t": text}) != []
    assert disjoint_text("Nothing here.", probes) == ("Nothing here.", 0)


@pytest.mark.parametrize("name", list_packs())
def test_bundled_packs_state_no_probe_answer_in_their_retain_text(name):
    from workbench.probe_checks import find_overlaps, overlap_probes

    pack = load_pack(name)
    texts = {p.name: p.read_text(encoding="utf-8") for p in pack.retain_files()}
    assert _phrase_hits(pack, list(texts.values())) == set()
    assert find_overlaps(overlap_probes(pack), texts) == []
    assert pack.allow_overlap == {}


def test_packs_check_and_run_refuse_retain_text_that_states_an_answer(tmp_path, capsys):
    import json

    from workbench.cli import main

    pack = make_pack(tmp_path)
    assert main(["packs", "check", str(pack), "--no-model"]) == 0
    assert "overlap: no target, collateral or general probe's answer" in capsys.readouterr().out
    (pack / "retain" / "r.txt").write_text(
        "Paris is lovely. The capital of France is Paris, and water is made of hydrogen and oxygen.\n", encoding="utf-8"
    )
    assert main(["packs", "check", str(pack), "--no-model"]) == 2
    err = capsys.readouterr().err
    assert "2 probe(s)" in err and "general g1 (heldout): 'france is paris'" in err and "general g2" in err
    # a run refuses it before any stage
    from helpers import tiny_config

    from workbench.config import config_from_dict
    from workbench.run import Run

    cfg = tiny_config(tmp_path)
    cfg["target"] = {"pack": str(pack), "block_size": 32, "max_blocks": 2}
    run = Run(config_from_dict(cfg), tmp_path / "run", progress=False, log=None)
    with pytest.raises(WorkbenchError, match="pack 'testpack' retain text: 2 probe"):
        run.check_inputs()
    assert not (tmp_path / "run").exists()
    # an allow_overlap entry with a reason is the way round it; one without a reason is refused
    manifest = json.loads((pack / "pack.json").read_text())
    manifest["allow_overlap"] = [
        {"id": "g1", "reason": "the retain text must name the capital"},
        {"id": "g2", "reason": "a definition the retain text needs"},
    ]
    (pack / "pack.json").write_text(json.dumps(manifest))
    assert main(["packs", "check", str(pack), "--no-model"]) == 0
    assert (
        "overlap allowed: general g1 (heldout): 'france is paris' stands in the retain text r.txt: the retain"
        in capsys.readouterr().out
    )
    manifest["allow_overlap"][0]["reason"] = " "
    (pack / "pack.json").write_text(json.dumps(manifest))
    with pytest.raises(
        WorkbenchError, match="allow_overlap': entry 1 needs a non-empty probe 'id' and a non-empty 'reason'"
    ):
        load_pack(pack)
    # a relearning text is checked the same way
    manifest["allow_overlap"] = []
    (pack / "pack.json").write_text(json.dumps(manifest))
    (pack / "retain" / "r.txt").write_text("The quick brown fox.\n", encoding="utf-8")
    (tmp_path / "relearn.txt").write_text("Harry's owl is named Hedwig.\n", encoding="utf-8")
    assert main(["packs", "check", str(pack), "--no-model", "--relearn-text", str(tmp_path / "relearn.txt")]) == 2
    assert (
        "probability p4 (dev): 'is named hedwig' stands in the relearning text relearn.txt" in capsys.readouterr().err
    )


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
    write_jsonl(
        root / "probes" / "trivia.jsonl",
        [
            {
                "id": "t1",
                "question": "Q?",
                "true_answer": "Fang",
                "false_answer": "an enormous three-headed dog",
                "split": "dev",
            },
            {"id": "t2", "question": "Q?", "true_answer": "Fang", "false_answer": "Fluffy", "split": "dev"},
        ],
    )
    write_jsonl(
        root / "probes" / "qa.jsonl",
        [
            {
                "id": "q1",
                "question": "Q?",
                "answer": "A",
                "paraphrased_answer": "It is A.",
                "split": "dev",
                "perturbed_answer": ["It is B.", "it is a.", "It is C."],
            }
        ],
    )
    warnings = [w for w in probe_warnings(load_pack(root)) if w.startswith(("trivia", "qa"))]
    assert len(warnings) == 2
    assert warnings[0].startswith("trivia t1:") and "differ much in length" in warnings[0]
    assert warnings[1].startswith("qa q1:") and "repeats the paraphrased answer" in warnings[1]
