"""Whole-corpus curation: the corpus index (counts, concordance, coverage, incremental updates) against slow
references, and the anchor editor's review workflow (suggestions, reject, status, notes, CSV, save warnings)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import SENTENCES

from workbench.anchors import AnchorMap
from workbench.corpus import Document, make_blocks
from workbench.curation import CorpusIndex, read_anchor_file, write_anchor_file
from workbench.errors import WorkbenchError
from workbench.widgets import AnchorEditor

ANCHORS = {
    "Harry": ["Jon"],
    "Potter": ["Miller"],
    "Hogwarts": ["Northbrook Academy"],
    "Hermione": ["Sarah"],
    "Ron Weasley": ["Mike Smith"],
    "Quidditch": ["skyball"],
    "Nimbus": ["broom"],
}
TEXT = " ".join(SENTENCES * 6) + " Then came Nearly Headless Nick. Harry saw Nearly Headless Nick again."


def _slow_counts(texts, keys):
    """Occurrences per key by a plain scan: at each word start, the longest key that matches there on word
    boundaries; then continue after it (the map's documented matching rule)."""
    counts = dict.fromkeys(keys, 0)
    ordered = sorted(keys, key=len, reverse=True)
    for text in texts:
        i = 0
        while i < len(text):
            if i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
                i += 1
                continue
            for k in ordered:
                j = i + len(k)
                if text.startswith(k, i) and (j == len(text) or not (text[j].isalnum() or text[j] == "_")):
                    counts[k] += 1
                    i = j
                    break
            else:
                i += 1
    return counts


def _slow_covered_tokens(blocks, amap):
    n = 0
    for b in blocks:
        spans = [(m.start, m.end) for m in amap.find(b.text)]
        for s, e in b.offsets.tolist():
            n += any(s < me and e > ms for ms, me in spans)
    return n


@pytest.fixture(scope="module")
def blocks(bpe_tokenizer):
    return make_blocks([Document("d.txt", TEXT)], bpe_tokenizer, 64, min_tokens=1)


def test_index_counts_coverage_and_incremental_updates_match_references(blocks):
    amap = AnchorMap.from_dict(ANCHORS)
    ix = CorpusIndex(blocks, amap)
    texts = [b.text for b in blocks]
    assert ix.counts == _slow_counts(texts, list(amap.entries))
    assert ix.covered_tokens == _slow_covered_tokens(blocks, amap)
    assert ix.n_tokens == sum(len(b) for b in blocks)
    assert ix.never_matching() == ["Nimbus"]
    assert "Nearly Headless Nick" in set(ix.uncovered()["name"])
    # edits: add a longer key that steals matches, remove one, change alternatives only
    for new in (
        amap.with_entry("Harry Potter", ["Jon Miller"]),
        amap.without("Hogwarts"),
        amap.with_entry("Harry", ["Tom", "Ben"]),
        amap.with_entry("Nearly Headless Nick", ["the ghost"]),
    ):
        n = ix.update(new)
        fresh = CorpusIndex(blocks, new)
        assert ix.counts == fresh.counts == _slow_counts(texts, list(new.entries))
        assert ix.covered_tokens == fresh.covered_tokens == _slow_covered_tokens(blocks, new)
        assert ix.uncovered().equals(fresh.uncovered())
        assert n < len(blocks) or new.entries.keys() == amap.entries.keys()
    assert ix.update(ix.anchors.with_entry("Harry", ["Sam"])) == 0  # alternatives never change a match
    # the concordance lists every occurrence with its context, in corpus order
    conc = ix.concordance("Hermione")
    assert len(conc) == ix.count("Hermione") and (conc["match"] == "Hermione").all()
    for r in conc.itertuples():
        assert texts[r.pos].count("Hermione") >= 1 and (r.left + r.match + r.right).replace("\n", " ") in texts[
            r.pos
        ].replace("\n", " ")


def test_editor_concordance_opens_the_block_of_an_occurrence(blocks):
    ed = AnchorEditor(ANCHORS, texts=blocks)
    ed.select("Hermione")
    ed.widget
    occ = ed.index.occurrences("Hermione")
    assert len(ed._w["concordance"].children) == len(occ) > 1
    ed._w["concordance"].children[-1].children[0].click()  # a click on the last line
    assert ed.block_pos == occ[-1].pos and "Hermione" in ed.block_text
    assert f"block {blocks[occ[-1].pos].index} " in ed._w["preview"].value


def test_editor_suggestions_reject_edit_accept_and_review(tmp_path, blocks):
    sugg = pd.DataFrame(
        {
            "word": ["Nearly Headless Nick", "This", "Hagrid", "Dumbledore"],
            "kind": ["phrase", "word", "word", "word"],
            "count": [2, 5, 3, 4],
            "mean_gain": [3.0, 0.2, 1.5, 2.0],
            "name_like": [True, False, True, True],
            "examples": ["…by. [Nearly Headless Nick] sang…", "[This] is", "[Hagrid] took", "[Dumbledore] told"],
        }
    )
    ed = AnchorEditor(ANCHORS, texts=blocks, suggestions=sugg, path=tmp_path / "m.json")
    ed.widget
    assert list(ed.suggestions["word"]) == ["Nearly Headless Nick", "This", "Hagrid", "Dumbledore"]
    assert "phrase" in ed._w["suggestions"].children[0].children[3].value
    # accept a phrase and a non-name: flagged placeholders, no person's name for "This"
    assert ed.accept_suggestion("Nearly Headless Nick") and ed.accept_suggestion("This")
    assert ed.anchors.entries["This"] == ["thing"]
    assert set(ed.accepted) == {"Nearly Headless Nick", "This"}
    assert ed.index.count("Nearly Headless Nick") == 2
    # reject a key and a suggestion: both remembered, neither suggested again
    assert ed.reject("This") and "This" not in ed.anchors.entries
    # the accepted phrase's row stays, marked; "This", rejected as a key, leaves the list
    assert list(ed.suggestions["word"]) == ["Nearly Headless Nick", "Hagrid", "Dumbledore"]
    ed._w["suggestions"].children[2].children[2].click()  # reject "Dumbledore" (after "Hagrid")
    assert set(ed.rejected) == {"This", "Dumbledore"} and list(ed.suggestions["word"]) == [
        "Nearly Headless Nick",
        "Hagrid",
    ]
    # edit a suggestion before accepting it, with a status and a note
    ed.edit_suggestion("Hagrid")
    assert ed.selected is None and ed.form_key == "Hagrid"
    ed.set_form(alternatives=["the groundskeeper"], status="accepted", note="the keeper of keys")
    assert ed.apply() and ed.review_status("Hagrid") == "accepted" and "Hagrid" not in ed.accepted
    assert list(ed.suggestions["added"]) == [True, True]
    # save warns about the remaining placeholder; the review survives a reload, JSON and CSV
    ed.save()
    assert "placeholder" in ed.status and any("Nearly Headless Nick" in w for w in ed.save_warnings)
    ed.export(tmp_path / "m.csv")
    for path in (tmp_path / "m.json", tmp_path / "m.csv"):
        back = AnchorEditor(path, texts=blocks, suggestions=sugg)
        assert back.anchors.entries == ed.anchors.entries, path
        assert back.anchors.review["Hagrid"] == {"status": "accepted", "note": "the keeper of keys"}
        assert set(back.rejected) == {"This", "Dumbledore"} and list(back.suggestions["word"]) == []
    assert json.loads((tmp_path / "m.json").read_text())["review"]["Nearly Headless Nick"]["placeholder"] is True


def test_csv_errors_name_the_line_and_keep_the_editor_map(tmp_path):
    bad = tmp_path / "dup.csv"
    bad.write_text("key,alternatives\nHarry,Jon\nHogwarts,a school\nHarry,Tom\n")
    with pytest.raises(WorkbenchError, match=r"line 4: key 'Harry' repeats line 2"):
        read_anchor_file(bad)
    empty_alts = tmp_path / "e.csv"
    empty_alts.write_text("key,alternatives\nHarry,Jon\nHogwarts,\n")
    with pytest.raises(WorkbenchError, match=r"line 3.*'Hogwarts'.*no alternatives"):
        read_anchor_file(empty_alts)
    ed = AnchorEditor(ANCHORS)
    assert ed.load(bad) is False and "repeats line 2" in ed.status and ed.anchors.entries == ANCHORS
    # a CSV written by hand with alternatives joined by " | " reads back
    ok = tmp_path / "ok.csv"
    write_anchor_file(AnchorMap.from_dict({"Diagon Alley": ["Market Street", "High Lane"]}), ok)
    assert read_anchor_file(ok).entries == {"Diagon Alley": ["Market Street", "High Lane"]}
