"""Pack loading and validation, and `check_pack`."""

from __future__ import annotations

import json

import pytest
from helpers import PROBABILITY, make_pack, write_jsonl

from workbench.errors import WorkbenchError
from workbench.eval.probes import check_pack
from workbench.pack import (
    BUNDLED_DIR,
    CompletionProbe,
    NextTokenProbe,
    list_packs,
    load_anchor_terms,
    load_pack,
    load_probes,
)


def test_load_pack_from_path(tmp_path):
    pack = load_pack(make_pack(tmp_path))
    assert pack.name == "testpack" and pack.title == "Harry Potter" and pack.version == 1
    assert [p.name for p in pack.corpus_files()] == ["a.txt"]
    assert [p.name for p in pack.retain_files()] == ["r.txt"]
    assert "Hogwarts" in pack.read_corpus()[0]
    probes = pack.probes("probability")
    assert all(isinstance(p, NextTokenProbe) for p in probes)
    assert probes[0].targets == (" Hermione", " Hermione Granger") and probes[0].split == "heldout"
    assert len(probes[0].paraphrases) == 2 and probes[0].kind == "probability"
    comp = pack.probes("completion")
    assert (
        isinstance(comp[0], CompletionProbe) and comp[0].references == ("wizard", "Hogwarts") and comp[0].subtlety == 3
    )
    assert comp[0].split == "heldout" and comp[1].split == "dev"
    assert pack.probes("collateral")[1].domain == "british_schools"
    # A path to pack.json works too.
    assert load_pack(pack.root / "pack.json").root == pack.root


def test_list_packs_and_bundled_lookup(tmp_path):
    names = list_packs()
    assert all((BUNDLED_DIR / n / "pack.json").is_file() for n in names)
    for name in names:
        assert load_pack(name).root == (BUNDLED_DIR / name).resolve()
    with pytest.raises(WorkbenchError, match="unknown pack 'no_such_pack'"):
        load_pack("no_such_pack")


def test_missing_manifest_and_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="has no pack.json"):
        load_pack(tmp_path / "empty")
    root = make_pack(tmp_path, completion=False)
    pack = load_pack(root)
    assert not pack.has_probes("completion")
    with pytest.raises(WorkbenchError, match=r"probes/completion.jsonl is missing"):
        pack.probes("completion")
    with pytest.raises(WorkbenchError, match="declares no 'custom' probes"):
        pack.probe_file("custom")
    (root / "pack.json").write_text('{"name": "x",\n "version": }')
    with pytest.raises(WorkbenchError, match=r"pack.json line 2: invalid JSON"):
        load_pack(root)


def test_empty_corpus_folder(tmp_path):
    root = make_pack(tmp_path)
    (root / "corpus" / "a.txt").unlink()
    with pytest.raises(WorkbenchError, match="corpus folder .* holds no"):
        load_pack(root).corpus_files()


@pytest.mark.parametrize(
    "kind,line,message",
    [
        ("probability", {"id": "x", "prompt": "Hello", "split": "dev"}, "line 2: missing field 'targets'"),
        ("probability", {"id": "x", "prompt": "Hello", "targets": [" a"]}, "line 2: missing field 'split'"),
        (
            "probability",
            {"id": "x", "prompt": "Hello", "targets": [], "split": "dev"},
            "field 'targets' must be a non-empty list",
        ),
        (
            "probability",
            {"id": "x", "prompt": "Hello", "targets": [" a"], "split": "test"},
            "field 'split' must be 'dev' or 'heldout'",
        ),
        ("probability", {"id": "x", "prompt": "Hello ", "targets": ["a"], "split": "dev"}, "ends with whitespace"),
        (
            "probability",
            {"id": "p1", "prompt": "Hello", "targets": [" a"], "split": "dev"},
            "duplicate id 'p1' \\(first used on line 1\\)",
        ),
        ("collateral", {"id": "x", "prompt": "Hello", "targets": [" a"]}, "line 2: missing field 'domain'"),
        ("completion", {"id": "x", "prompt": "Hello", "references": ["a"]}, "line 2: missing field 'subtlety'"),
        (
            "completion",
            {"id": "x", "prompt": "Hello", "references": ["a"], "subtlety": 11},
            "'subtlety' must be an integer from 1 to 10",
        ),
        (
            "completion",
            {"id": "x", "prompt": "Hello", "references": "", "subtlety": 2},
            "'references' must be a non-empty list",
        ),
    ],
)
def test_probe_validation_names_file_line_field(tmp_path, kind, line, message):
    first = {
        "id": "p1",
        "prompt": "Hi",
        "targets": [" there"],
        "split": "dev",
        "domain": "general",
        "references": ["x"],
        "subtlety": 2,
    }
    path = write_jsonl(tmp_path / "probes" / f"{kind}.jsonl", [first, line])
    with pytest.raises(WorkbenchError, match=message) as err:
        load_probes(path, kind)
    assert f"{kind}.jsonl line 2" in str(err.value)


def test_probe_validation_through_pack_uses_relative_path(tmp_path):
    root = make_pack(tmp_path)
    rows = PROBABILITY[:1] + [{"id": "bad", "prompt": "x", "split": "dev"}]
    write_jsonl(root / "probes" / "probability.jsonl", rows)
    with pytest.raises(WorkbenchError) as err:
        load_pack(root).probes("probability")
    assert "probes/probability.jsonl line 2: missing field 'targets'" in str(err.value)


def test_invalid_json_and_empty_files(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prompt": "x", "targets": [" y"], "split": "dev"}\n{"id": \n')
    with pytest.raises(WorkbenchError, match=r"p.jsonl line 2: invalid JSON"):
        load_probes(path, "probability")
    path.write_text("\n\n")
    with pytest.raises(WorkbenchError, match="has no probes"):
        load_probes(path, "probability")
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_probes(tmp_path / "nope.jsonl", "probability")
    path.write_text("[1, 2]\n")
    with pytest.raises(WorkbenchError, match="line 1: expected a JSON object"):
        load_probes(path, "general")


def test_anchor_terms_both_formats(tmp_path):
    root = make_pack(tmp_path)
    terms = load_anchor_terms(load_pack(root))
    assert terms[:3] == ["Hogwarts", "Harry Potter", "Harry"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"Quidditch": "skyball", "Hedwig": ["an owl"]}))
    assert load_anchor_terms(bare) == ["Quidditch", "Hedwig"]
    assert load_anchor_terms(str(root)) == terms
    (root / "anchors.json").unlink()
    with pytest.raises(WorkbenchError, match="anchor map .* does not exist"):
        load_anchor_terms(load_pack(root))


def test_check_pack_on_tiny(tiny, tmp_path):
    from workbench.eval.probes import score_probes

    pack = load_pack(make_pack(tmp_path))
    df = check_pack(pack, tiny)
    assert list(df.columns) == [
        "kind",
        "id",
        "split",
        "domain",
        "prompt",
        "target",
        "prob",
        "rank",
        "top1",
        "seq_logprob",
    ]
    assert set(df["kind"]) == {"probability", "collateral", "general"}
    assert len(df) == 8 and ((df["prob"] > 0) & (df["prob"] <= 1)).all() and (df["rank"] >= 1).all()
    direct = score_probes(tiny, pack.probes("probability"))
    assert df[df["kind"] == "probability"]["prob"].tolist() == pytest.approx(direct["prob"].tolist())


def test_json_and_jsonl_errors_name_the_file_and_line_in_every_reader(tmp_path):
    from workbench.anchors import load_anchor_map
    from workbench.eval.authors import read_authors_prompts
    from workbench.eval.utility import load_mc_task
    from workbench.io import iter_jsonl, read_json_file, read_jsonl

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n\n  \n{"a": 2}\n{"a": \n', encoding="utf-8")
    assert [row for _, row in zip(range(2), iter_jsonl(rows))] == [
        (1, {"a": 1}),
        (4, {"a": 2}),
    ]  # lazy, blank lines skipped
    with pytest.raises(WorkbenchError, match=r"rows.jsonl line 5: invalid JSON \(Expecting value at column \d+\)"):
        read_jsonl(rows)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{\n"caf\xe9": 1}')
    with pytest.raises(WorkbenchError, match=r"latin.json line 2: not UTF-8 text \(byte 0xe9 at offset 6\)"):
        read_json_file(latin)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "x": [1,\n', encoding="utf-8")
    # the same message from each reader, under the name each gives the file
    for read, shown in (
        (read_json_file, "broken.json"),
        (load_anchor_map, "anchor map .*broken.json"),
        (read_authors_prompts, "broken.json"),
    ):
        with pytest.raises(WorkbenchError, match=shown + r" line 3: invalid JSON"):
            read(broken)
    mc = tmp_path / "mc.jsonl"
    mc.write_text("\n{oops}\n", encoding="utf-8")
    with pytest.raises(WorkbenchError, match=r"mc.jsonl line 2: invalid JSON"):
        load_mc_task(mc)


def test_packs_check_fails_on_a_never_matching_anchor_unless_marked(tmp_path, capsys):
    from workbench.cli import main

    pack = make_pack(tmp_path)
    data = json.loads((pack / "anchors.json").read_text())
    data["anchors"]["Gringots"] = ["the bank"]  # misspelt: the corpus never holds it
    (pack / "anchors.json").write_text(json.dumps(data))
    assert main(["packs", "check", str(pack), "--model", "tiny", "--kinds", "probability"]) == 2
    err = capsys.readouterr().err
    assert "1 of 8 keys never match the corpus ('Gringots')" in err and "keep_unmatched" in err
    assert "'Harry'" not in err  # marked keep_unmatched by the helper's map
    data["review"]["Gringots"] = {"keep_unmatched": True}
    (pack / "anchors.json").write_text(json.dumps(data))
    assert main(["packs", "check", str(pack), "--model", "tiny", "--kinds", "probability"]) == 0
    assert "anchors: 8 terms ok, each matches the corpus (2 marked keep_unmatched)" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["harry_potter", "sherlock_holmes"])
def test_every_anchor_of_the_bundled_packs_matches_its_corpus(name):
    from workbench.anchors import load_anchor_map
    from workbench.corpus import read_documents

    pack = load_pack(name)
    amap = load_anchor_map(pack.anchors_path)
    texts = [d.text for d in read_documents(pack.corpus_dir)]  # as a run reads them
    assert amap.never_matching(amap.coverage(texts)) == []
    assert amap.kept_unmatched == set()  # nothing is left unmatched on purpose either


def test_the_anchor_editor_and_the_run_count_never_matching_keys_alike(tiny):
    from workbench.anchors import AnchorMap
    from workbench.corpus import make_blocks, read_documents
    from workbench.curation import CorpusIndex

    pack = load_pack("sherlock_holmes")
    docs = read_documents(pack.corpus_dir)
    amap = AnchorMap.from_dict(
        {"Sherlock Holmes": ["Tom"], "Watson": ["Ed"], "Dr. Watson": ["Dr. Ed"], "Gringotts": ["bank"]}
    )
    blocks = make_blocks(docs, tiny.tokenizer, block_size=512)  # what the editor indexes: the run's corpus blocks
    editor = CorpusIndex(blocks, amap).never_matching()
    run = amap.never_matching(amap.coverage(d.text for d in docs))
    assert editor == run == ["Dr. Watson", "Gringotts"]
