"""The notebook widgets, driven without a browser: set values, call handlers, click buttons, assert on state and HTML."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import SENTENCES, tiny_config

from workbench.anchors import AnchorMap
from workbench.config import config_from_dict
from workbench.corpus import Document, make_blocks
from workbench.errors import WorkbenchError
from workbench.translate import translate_blocks
from workbench.widgets import (
    AnchorEditor,
    LabelInspector,
    ProbeComparer,
    TokenCell,
    TokenDiff,
    TrainingMonitor,
    completion_diff_html,
    preview_html,
    token_diff_html,
    translate_preview,
)

ANCHORS = {
    "Harry": ["Jon", "Tom"],
    "Potter": ["Miller"],
    "Hogwarts": ["Northbrook Academy", "Kingsmere College"],
    "Hermione": ["Sarah", "Emily"],
    "Granger": ["Jones"],
    "Ron": ["Mike"],
    "Weasley": ["Smith"],
    "Quidditch": ["skyball"],
    "Gryffindor": ["Red House"],
    "Dumbledore": ["the headmaster"],
}
TEXTS = [" ".join(SENTENCES[i % 5] for i in range(k, k + 4)) for k in range(3)]


def small_config(root: Path) -> dict:
    """The shared tiny-model config, on this file's anchors, checkpointing every step."""
    cfg = tiny_config(
        root,
        anchors=ANCHORS,
        name="w",
        target={"max_blocks": 6},
        reinforce={"save_steps": 1},
        finetune={"save_steps": 1},
    )
    return cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run (reinforce, score, labels) on small in-process inputs."""
    from workbench.run import Run

    root = tmp_path_factory.mktemp("widget_run")
    run = Run(config_from_dict(small_config(root / "inputs")), root / "run", progress=False, log=None)
    run.run(("reinforce", "score", "labels"))
    return run


@pytest.fixture
def amap():
    return AnchorMap.from_dict(ANCHORS)


# ---------------------------------------------------------------------------------------------------------------
# anchor editor
# ---------------------------------------------------------------------------------------------------------------


def test_editor_starts_on_the_most_frequent_key_of_the_first_block(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    counts = {}
    for m in amap.find(TEXTS[0]):
        counts[m.key] = counts.get(m.key, 0) + 1
    assert ed.selected == max(counts, key=lambda k: (counts[k], -ord(k[0])))
    assert ed.form_key == ed.selected
    assert ed.form_alternatives.splitlines() == amap.entries[ed.selected]


def test_editor_table_search_and_sort(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    t = ed.table
    assert list(t.columns) == [
        "key",
        "alternatives",
        "n_alternatives",
        "occurrences",
        "status",
        "note",
        "placeholder",
        "covered",
    ]
    assert t["occurrences"].is_monotonic_decreasing
    assert t.set_index("key").loc["Harry", "occurrences"] == sum(text.count("Harry") for text in TEXTS)
    ed.search = "academy"  # matches alternatives too, case-insensitively
    assert list(ed.table["key"]) == ["Hogwarts"]
    ed.search, ed.sort_by, ed.descending = "", "key", False
    assert list(ed.table["key"]) == sorted(ANCHORS)
    # through the widget
    w = ed.widget
    ed._w["search"].value = "ron"
    assert ed.search == "ron" and set(ed.table["key"]) == {"Ron"}
    assert "Ron" in ed._w["table"].value and "Hogwarts" not in ed._w["table"].value
    assert list(ed._w["picker"].options) == [ed.selected, "Ron"]  # the entry being edited stays listed
    assert w is ed.widget


@pytest.mark.parametrize(
    "key,alts,fragment",
    [
        ("", "x", "enter the anchored expression"),
        (" Harry", "Jon", "white space"),
        ("Snape", "", "no alternatives"),
        ("Snape", "Snape", "is the key itself"),
        ("Snape", "Clark\nClark", "listed twice"),
    ],
)
def test_editor_validation_errors_show_inline_and_block_apply(amap, key, alts, fragment):
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.widget
    ed._w["key"].value = key
    ed._w["alts"].value = alts
    assert fragment in ed.form_error
    assert fragment in ed._w["validation"].value and "wb-error" in ed._w["validation"].value
    assert ed._w["apply"].disabled
    before = dict(ed.anchors.entries)
    assert ed.apply() is False
    assert ed.anchors.entries == before and not ed._undo


def test_editor_apply_changes_map_and_preview(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.widget
    ed.select("Harry")
    old_preview = ed._w["preview"].value
    ed._w["alts"].value = "Zebediah\nQuincy"
    assert ed.form_error == "" and not ed._w["apply"].disabled
    ed._w["apply"].click()
    assert ed.anchors.entries["Harry"] == ["Zebediah", "Quincy"]
    chosen = ed.anchors.choose("Harry", 0, 0)
    assert chosen in ed.translated and "Harry" not in ed.translated
    assert ed._w["preview"].value != old_preview and chosen in ed._w["preview"].value
    assert "updated 'Harry'" in ed.status and ed.dirty
    assert "Zebediah; Quincy" in ed._w["table"].value


def test_editor_preview_matches_the_labels_stage_translation(tiny, amap):
    docs = [Document(f"d{i}", t) for i, t in enumerate(TEXTS)]
    blocks = make_blocks(docs, tiny.tokenizer, block_size=24, min_tokens=1)
    aligned = translate_blocks(blocks, amap, tiny.tokenizer, seed=3)
    ed = AnchorEditor(amap, texts=blocks, seed=3)
    for pos, ab in enumerate(aligned):
        ed.show_block(pos)
        assert ed.block_index == ab.block.index
        assert ed.translated == ab.trans_text
    trans, spans = translate_preview(amap, blocks[1].text, 3, blocks[1].index)
    for s in spans:
        assert blocks[1].text[s.orig_start : s.orig_end] == s.key and trans[s.trans_start : s.trans_end] == s.value


def test_editor_add_rename_delete_undo_redo(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.widget
    ed._w["new"].click()
    assert ed.selected is None and ed.form_key == "" and ed._w["key"].value == ""
    ed.set_form("Hagrid", ["the groundskeeper"])
    assert ed.form_warnings == []  # occurs in the text, is new
    assert ed.apply()
    assert ed.anchors.entries["Hagrid"] == ["the groundskeeper"] and "added" in ed.status
    # a key that never occurs gets a warning, not an error
    ed.new()
    ed.set_form("Hedwig", ["the owl"])
    assert ed.form_error == "" and any("does not occur" in w for w in ed.form_warnings)
    assert "wb-warning" in ed._w["validation"].value
    # rename: the selected entry changes its key, keeping its place
    ed.select("Ron")
    ed.set_form(key="Ronald")
    assert ed.apply()
    assert "Ron" not in ed.anchors.entries and ed.anchors.entries["Ronald"] == ["Mike"]
    assert "renamed" in ed.status
    # delete with the button
    ed.select("Quidditch")
    ed._w["delete"].click()
    assert "Quidditch" not in ed.anchors.entries and ed.selected is None
    # undo three times: back to the original map; redo once
    assert ed.undo() and "Quidditch" in ed.anchors.entries
    assert ed.undo() and "Ron" in ed.anchors.entries and "Ronald" not in ed.anchors.entries
    ed._w["undo"].click()
    assert "Hagrid" not in ed.anchors.entries and ed.anchors.entries == amap.entries
    assert ed.undo() is False and ed.status == "nothing to undo" and ed._w["undo"].disabled
    assert ed.redo() and "Hagrid" in ed.anchors.entries
    # a new edit clears the redo stack
    ed.select("Harry")
    ed.set_form(alternatives="Jon")
    ed.apply()
    assert ed.redo() is False


def test_editor_asks_before_applying_onto_an_existing_key(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.new()
    ed.set_form("Hermione", ["Lucy"], note="from the form")
    assert any("already a key" in w for w in ed.form_warnings)
    assert ed.apply() is False and ed.anchors is amap  # nothing changed yet: the editor asks
    assert ed.pending["key"] == "Hermione" and "merge" in ed.status and "cancel" in ed.status
    ed.widget
    labels = [b.description for b in ed._w["confirm"].children[1:]]
    assert labels == ["merge", "replace", "cancel"]
    ed._w["confirm"].children[3].click()  # cancel
    assert ed.anchors is amap and ed.pending is None and "cancelled" in ed.status
    assert ed._w["confirm"].children == ()
    # merge: the old alternatives first, the new one added once
    ed.set_form("Hermione", ["Lucy", "Sarah"])
    assert ed.apply() is False
    ed._w["confirm"].children[1].click()
    assert ed.anchors.entries["Hermione"] == ["Sarah", "Emily", "Lucy"] and ed.selected == "Hermione"
    assert ed.anchors.review["Hermione"]["note"] == "from the form"
    # replace, from code; undo walks back through both
    ed.new()
    ed.set_form("Hermione", ["Lucy"])
    assert ed.apply(on_conflict="replace") and ed.anchors.entries["Hermione"] == ["Lucy"]
    assert ed.undo() and ed.anchors.entries["Hermione"] == ["Sarah", "Emily", "Lucy"]
    assert ed.undo() and ed.anchors.entries == amap.entries
    # editing the selected key's own alternatives needs no question
    ed.select("Ron")
    ed.set_form(alternatives=["Pete"])
    assert ed.apply() and ed.pending is None and ed.anchors.entries["Ron"] == ["Pete"]


def test_editor_asks_before_renaming_onto_an_existing_key(amap):
    ed = AnchorEditor(amap.with_review("Granger", note="surname"), texts=TEXTS)
    start = ed.anchors
    ed.select("Weasley")
    ed.set_form(key="Granger")  # rename Weasley onto Granger
    assert ed.apply() is False and ed.anchors is start
    assert ed.pending == {"key": "Granger", "from": "Weasley", "alternatives": ["Smith"], "existing": ["Jones"]}
    assert "renaming 'Weasley' to 'Granger'" in ed.status
    assert ed.confirm("cancel") is False and ed.anchors is start
    # merge: Granger keeps its alternatives and note and gets Weasley's; Weasley is gone (undo brings it back)
    ed.select("Weasley")
    ed.set_form(key="Granger")
    ed.apply()
    assert ed.confirm("merge")
    assert ed.anchors.entries["Granger"] == ["Jones", "Smith"] and "Weasley" not in ed.anchors.entries
    assert ed.anchors.review["Granger"]["note"] == "surname"
    assert len(ed.anchors) == len(amap) - 1 and "merged 'Weasley' into 'Granger'" in ed.status
    assert ed.undo() and ed.anchors.entries == amap.entries
    # replace: Weasley's alternatives under the name Granger
    ed.select("Weasley")
    ed.set_form(key="Granger")
    assert ed.apply(on_conflict="replace")
    assert ed.anchors.entries["Granger"] == ["Smith"] and "Weasley" not in ed.anchors.entries
    assert ed.undo() and ed.anchors.entries == amap.entries
    with pytest.raises(WorkbenchError):
        ed.apply(on_conflict="overwrite")


def test_editor_keeps_and_saves_keys_a_run_drops(tmp_path):
    """Keys consolidation drops ("Harry Potter" when "Harry" and "Potter" are keys, a possessive) stay in the
    editor, marked with what covers them, and in the saved file; the preview translates as the run does, and
    the editor's counts are the run's, from the same function."""
    from workbench.anchors import corpus_key_counts, load_anchor_map

    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {
                "anchors": {
                    **ANCHORS,
                    "Harry Potter": ["Jon Miller"],
                    "Nimbus": ["broom"],
                    "Hogwarts's": ["the school's"],
                }
            }
        )
    )
    run_map = load_anchor_map(path)  # as a run loads it
    assert {k for k, _ in run_map.dropped} == {"Harry Potter", "Hogwarts's"}
    ed = AnchorEditor(run_map, texts=TEXTS)  # a consolidated map: the editor reads its file again, whole
    assert set(ed.anchors.entries) == set(ANCHORS) | {"Harry Potter", "Nimbus", "Hogwarts's"}
    assert ed.covered["Harry Potter"] == "covered by 'Harry' + 'Potter' (every word is itself a key)"
    row = ed.table.set_index("key").loc["Harry Potter"]
    assert row["covered"].startswith("covered by") and row["occurrences"] == 0
    # the preview translates as the labels stage: 'Harry Potter' through its two words
    text = TEXTS[0]
    assert ed.translated == run_map.translate(text, 0, 0) and "Jon Miller" not in ed.translated
    # the same counts as the run, from one function (over the same texts)
    expected = corpus_key_counts(run_map, TEXTS)
    assert ed.counts == expected and expected["keys"] == len(ANCHORS) + 3 and expected["covered"] == 2
    assert expected["never"] == ["Nimbus"] + [
        k for k in run_map.entries if k != "Nimbus" and not any(k in t for t in TEXTS)
    ]
    ed.widget
    assert expected["line"].replace("'", "&#x27;") in ed._w["coverage"].value
    # accepting a key that covers another one keeps the covered key, saved with its alternatives
    ed.accept_suggestion("Granger's", ["Jones's"])
    assert "Granger's" in ed.covered and "Granger's" in ed.anchors.entries
    out = ed.save(tmp_path / "saved.json")
    saved = json.loads(out.read_text())["anchors"]
    assert saved["Harry Potter"] == ["Jon Miller"] and saved["Hogwarts's"] == ["the school's"]
    assert set(saved) == set(ed.anchors.entries)
    assert ed.load(out) and set(ed.anchors.entries) == set(saved)


def test_editor_counts_are_the_runs_and_packs_checks_on_the_sherlock_pack(tmp_path, capsys):
    """On the Sherlock Holmes pack, the editor as notebook 02 builds it (blocks to preview, the run's documents to
    count), the run's log and ``packs check`` print the same counts line; also for a key a block boundary cuts in
    two (a phrase of the corpus whose words end one block and start the next), which a count over blocks misses."""
    from helpers import SHERLOCK_TINY

    from workbench.cli import main
    from workbench.run import Run

    logs: list[str] = []
    run = Run(config_from_dict(SHERLOCK_TINY), tmp_path / "run", progress=False, log=logs.append)
    run.anchors  # loading the map logs the counts line
    ed = AnchorEditor(run.anchors, texts=run.corpus_blocks, documents=run.documents)
    assert main(["packs", "check", "sherlock_holmes", "--no-model"]) == 0
    checked = [ln.split("anchor map: ", 1)[1] for ln in capsys.readouterr().out.splitlines() if ": anchor map: " in ln]
    run_lines = [m.split(": ", 1)[1] for m in logs if m.startswith("anchor map ")]
    assert checked == run_lines == [ed.counts["line"]], (checked, run_lines, ed.counts["line"])
    assert ed.counts["keys"] == len(json.loads(Path(run.pack.anchors_path).read_text())["anchors"])

    # a phrase cut by a block boundary: its last word ends block i, its first starts block i + 1, it is in the
    # corpus once and neither word is a key (an independent look at the texts, not the editor's index)
    docs = "\n".join(d.text for d in run.documents)
    blocks = run.corpus_blocks
    phrase = None
    for a, b in zip(blocks, blocks[1:]):
        left, right = re.search(r"([A-Za-z]+)\W*$", a.text), re.match(r"\W*([A-Za-z]+)", b.text)
        if not (left and right):
            continue
        candidate = f"{left.group(1)} {right.group(1)}"
        once = docs.count(candidate) == len(re.findall(rf"\b{re.escape(candidate)}\b", docs)) == 1
        if (
            once
            and not {left.group(1), right.group(1)} & set(run.anchors.entries)
            and not any(candidate in blk.text for blk in blocks)
        ):
            phrase = candidate
            break
    assert phrase is not None, "no block boundary cuts a phrase in two"
    entries = {**json.loads(Path(run.pack.anchors_path).read_text())["anchors"], phrase: ["something else"]}
    path = tmp_path / "cut.json"
    path.write_text(json.dumps({"anchors": entries}))
    logs.clear()
    cut_run = Run(
        config_from_dict({**SHERLOCK_TINY, "target": {**SHERLOCK_TINY["target"], "anchors": str(path)}}),
        tmp_path / "cut",
        progress=False,
        log=logs.append,
    )
    ed = AnchorEditor(cut_run.anchors, texts=cut_run.corpus_blocks, documents=cut_run.documents)
    assert ed.index.count(phrase) == 0  # no block holds it whole
    assert phrase not in ed.counts["never"] and ed.coverage[phrase] == 1
    assert [m.split(": ", 1)[1] for m in logs if m.startswith("anchor map ")] == [ed.counts["line"]]


def test_editor_concordance_focus_shows_the_clicked_occurrence(amap):
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.select("Hogwarts")
    conc = ed.concordance
    ed.widget
    rows = ed._w["concordance"].children
    assert len(rows) == len(conc) > 2
    rows[2].children[0].click()
    assert ed.block_pos == conc.loc[2, "pos"] and ed.focus == 2
    focus = ed._w["preview"].value.split('class="wb-focus"')[1].split("</div>")[0]
    assert f"occurrence 3 of {len(conc)}" in focus and ">Hogwarts</mark>" in focus
    value = amap.choose("Hogwarts", 0, ed.block_index)
    assert f">{value}</mark>" in focus
    assert "background:#fff8e1" in ed._w["concordance"].children[2].children[1].value


def test_editor_puts_a_clicked_occurrence_deep_in_a_block_in_view(amap):
    """An occurrence far down a long block: both panes start a few lines above it (the text above folded, not
    lost), with it marked; the original pane's text is the block's, the translated pane's the run's translation."""
    import html as _html

    filler = "\n".join(f"Line {i}: the train left the station at nine and nobody said a word." for i in range(60))
    text = filler + "\nThen Hogwarts appeared, and Harry saw it.\n" + filler
    ed = AnchorEditor(amap, texts=[text])
    ed.select("Hogwarts")
    ed.widget
    ed._w["concordance"].children[0].children[0].click()
    assert ed.focus == 0
    view = ed._w["preview"].value
    at = text.index("Hogwarts")

    def pane(cls: str) -> tuple[str, str]:  # (folded text, shown text) of one pane, as a reader sees them
        body = view.split(f'class="{cls}">')[1].split("</div></div>")[0]
        folded, shown = body.split("</details>")
        folded = re.sub(r"<summary.*?</summary>", "", folded)
        return tuple(_html.unescape(re.sub(r"<[^>]+>", "", x)) for x in (folded, shown))

    folded, shown = pane("wb-preview-orig")
    assert folded + shown == text and len(folded) > 2000  # nothing lost, most of the block folded
    assert 0 < shown.index("Hogwarts") <= 120 and len(folded) <= at
    orig_mark = re.findall(r'<mark class="wb-anchor wb-focused"[^>]*>([^<]*)</mark>', view)
    assert orig_mark == ["Hogwarts"]
    translated = amap.translate(text, 0, 0)
    folded, shown = pane("wb-preview-trans")
    value = amap.choose("Hogwarts", 0, 0)
    assert folded + shown == translated and shown.index(value) <= 120
    assert re.findall(r'<mark class="wb-generic wb-focused"[^>]*>([^<]*)</mark>', view) == [value]
    ed.show_block(0)  # the slider: the whole block again, nothing folded
    assert "wb-above" not in ed._w["preview"].value and "wb-focused" not in ed._w["preview"].value


def test_editor_deletes_the_last_entry_and_starts_from_an_empty_map(tmp_path):
    ed = AnchorEditor({"Harry": ["Jon"]}, texts=TEXTS)
    assert ed.delete("Nobody") is False
    assert ed.delete("Harry") and len(ed.anchors) == 0 and "empty" in ed.status
    ed.widget
    assert ed.index.coverage_share == 0 and "0.0%" in ed._w["coverage"].value
    path = ed.save(tmp_path / "empty.json")
    assert "the map is empty" in ed.status
    empty = AnchorEditor(None, texts=TEXTS, path=path)
    assert empty.selected is None and len(empty.anchors) == 0 and "Harry" in empty.index.uncovered()["name"].tolist()
    assert empty.load(path) and len(empty.anchors) == 0


def test_editor_suggestions_accept_with_one_click(amap):
    sugg = pd.DataFrame(
        {
            "word": ["Hagrid", "Harry", "Voldemort", "wand"],
            "count": [3, 9, 2, 2],
            "mean_gain": [1.5, 2.0, 1.0, 0.5],
            "score": [2.1, 4.6, 1.1, 0.5],
        }
    )
    ed = AnchorEditor(amap, texts=TEXTS, suggestions=sugg)
    assert list(ed.suggestions["word"]) == ["Hagrid", "Voldemort", "wand"]  # Harry is already a key
    ed.widget
    rows = ed._w["suggestions"].children
    assert len(rows) == 3
    rows[0].children[0].click()  # accept "Hagrid"
    assert "Hagrid" in ed.anchors.entries and ed.selected == "Hagrid"
    assert "Hagrid" in ed.accepted and "placeholder" in ed.status
    assert ed.anchors.entries["Hagrid"][0][0].isupper()  # a name for a capitalised word
    # the accepted row stays where it was, marked with what it became (the list does not shift under the pointer)
    assert list(ed.suggestions["word"]) == ["Hagrid", "Voldemort", "wand"]
    assert list(ed.suggestions["added"]) == [True, False, False] and len(ed._w["suggestions"].children) == 3
    assert "added" in ed._w["suggestions"].children[0].children[1].value
    assert not any(b.description == "accept" for b in ed._w["suggestions"].children[0].children[:1])
    assert "(placeholder)" in ed._w["table"].value
    assert ed.accept_suggestion("wand") and ed.anchors.entries["wand"] == ["thing"]
    assert ed.accept_suggestion("Voldemort", ["the dark lord"]) and "Voldemort" not in ed.accepted
    # refining a placeholder marks it reviewed
    ed.select("Hagrid")
    ed.set_form(alternatives="the groundskeeper")
    ed.apply()
    assert "Hagrid" not in ed.accepted
    ed.undo()
    ed.undo()
    ed.undo()
    ed.undo()
    assert ed.anchors.entries == amap.entries


def test_editor_save_and_load(tmp_path, amap):
    path = tmp_path / "curated.json"
    ed = AnchorEditor(amap, texts=TEXTS, path=path)
    ed.set_form("Hagrid", ["the groundskeeper"])
    ed.new()
    ed.set_form("Hagrid", ["the groundskeeper"])
    ed.apply()
    ed.widget
    ed._w["save"].click()
    assert path.is_file() and not ed.dirty and "saved" in ed.status
    saved = json.loads(path.read_text())
    assert saved["format"] == "whp-anchors/1" and saved["anchors"]["Hagrid"] == ["the groundskeeper"]
    # load another file through the path field; it can be undone
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"Hogwarts": ["a school"], "Harry": ["Jon"], "Harry's": ["Jon's"]}))
    ed._w["path"].value = str(other)
    ed._w["load"].click()
    # the possessive a run drops stays in the editor, marked with what covers it
    assert set(ed.anchors.entries) == {"Hogwarts", "Harry", "Harry's"} and "1 covered by other keys" in ed.status
    assert ed.covered == {"Harry's": "covered by 'Harry' (possessive of key 'Harry')"}
    assert "covered by &#x27;Harry&#x27;" in ed._w["table"].value
    assert ed.selected in ed.anchors.entries
    assert ed.undo() and "Hagrid" in ed.anchors.entries
    # a broken file: the error is shown, the map kept
    bad = tmp_path / "bad.json"
    bad.write_text('{"Harry": ["Jon"],}')
    assert ed.load(bad) is False
    assert ed.status.startswith("error") and "line 1" in ed.status and "Hagrid" in ed.anchors.entries
    assert "b31d28" in ed._w["status"].value
    # constructing from a path remembers it
    ed2 = AnchorEditor(path)
    assert ed2.path == str(path) and "Hagrid" in ed2.anchors.entries


def test_editor_listeners_and_block_slider(amap):
    seen = []
    ed = AnchorEditor(amap, texts=TEXTS)
    ed.observe(lambda m: seen.append(len(m)))
    ed.accept_suggestion("Hagrid", ["the groundskeeper"])
    ed.undo()
    assert seen == [len(amap) + 1, len(amap)]
    ed.widget
    ed._w["block"].value = 2
    assert ed.block_pos == 2 and "block 2 (3 of 3)" in ed._w["preview"].value
    ed.show_block(99)
    assert ed.block_pos == 2


def test_editor_escapes_html(tmp_path):
    ed = AnchorEditor({"<b>Harry</b>": ["<i>Jon</i>"], "Harry": ["Tom"]}, texts=["<b>Harry</b> & <script>x</script>"])
    html = ed.preview
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<i>Jon</i>" not in html and "&lt;i&gt;Jon&lt;/i&gt;" in html
    ed.widget
    assert "<b>Harry</b>" not in ed._w["table"].value
    assert "<b>Harry</b>" not in preview_html(ed.anchors, "<b>Harry</b>")


def test_editor_without_texts_still_edits(amap):
    ed = AnchorEditor(amap)
    assert ed.selected is None and "no text loaded" in ed.preview
    ed.set_form("Hagrid", "the groundskeeper")
    assert ed.apply() and "Hagrid" in ed.anchors.entries


# ---------------------------------------------------------------------------------------------------------------
# token diff
# ---------------------------------------------------------------------------------------------------------------


def test_token_diff_html_cells():
    cells = [
        TokenCell("Harry"),
        TokenCell(" went", " went", 0.1, base_top=[(" went", 3.0)], reinf_top=[(" went", 3.5)]),
        TokenCell(" to", " to", -0.5),
        TokenCell(
            " Hogwarts",
            " school",
            2.0,
            base_top=[(" school", 5.0), (" the", 4.0)],
            reinf_top=[(" Hogwarts", 9.0)],
            exact=False,
        ),
        TokenCell("<script>", "&", 0.0),
        TokenCell("\n"),
    ]
    html = token_diff_html(cells, title="demo <1>")
    assert len(re.findall(r'class="wb-tok[ "]', html)) == 6
    assert html.count("wb-changed") == 2 and html.count("wb-inexact") == 1
    assert "<script>" not in html and "&lt;script&gt;" in html and "demo &lt;1&gt;" in html
    assert "rgba(214,39,40" in html and "rgba(31,119,180" in html  # red for raised, blue for lowered
    assert "reinforced top (logit): ␣Hogwarts 9.00" in html and "baseline top (logit): ␣school 5.00, ␣the 4.00" in html
    assert "not exact" in html and "2 of 4 labels changed" in html
    assert "⏎" in html and html.count("<br>") >= 1
    no_labels = token_diff_html(cells, show_labels=False, legend=False)
    assert "wb-lab" not in no_labels and "wb-legend" not in no_labels
    td = TokenDiff(cells)
    assert td._repr_html_() == td.html and td.widget.value == td.html
    assert td.changed == [(3, " Hogwarts", " school"), (4, "<script>", "&")]


def test_token_diff_from_store(tiny_run):
    store = tiny_run.labels()
    block = int(store.blocks["block"].iloc[1])
    row = store.blocks[store.blocks["block"] == block].iloc[0]
    td = TokenDiff.from_store(store, tiny_run.tokenizer, block, alpha=5.0)
    assert len(td.cells) == len(row["input_ids"])
    pos = store.positions[store.positions["block"] == block]
    labelled = [i for i, c in enumerate(td.cells) if c.label is not None]
    assert labelled == [int(p) + 1 for p in pos["pos"]]
    expected = [tiny_run.tokenizer.decode([int(i)]) for i in pos["label_a5"]]
    assert [td.cells[i].label for i in labelled] == expected
    assert all(c.exact for c in td.cells)
    assert all(len(td.cells[i].base_top) == 5 and len(td.cells[i].reinf_top) == 5 for i in labelled)
    # an alpha that was not stored is recomputed from the top-k
    td3 = TokenDiff.from_store(store, tiny_run.tokenizer, block, alpha=3.0)
    rec = store.recompute(3.0, block)
    assert [td3.cells[i].label for i in labelled] == [tiny_run.tokenizer.decode([int(i)]) for i in rec["label"]]
    assert "alpha = 3" in td3.html
    with pytest.raises(KeyError):
        TokenDiff.from_store(store, tiny_run.tokenizer, 999)


def test_token_diff_from_scores_and_pair(tiny_run):
    from workbench.models import tiny_model
    from workbench.reinforce import load_pair

    scores = tiny_run.score()
    block = tiny_run.blocks[0]
    td = TokenDiff.from_scores(scores, tiny_run.tokenizer, block)
    assert len(td.cells) == len(block) and not td.show_labels
    assert td.cells[1].score == pytest.approx(
        float(scores[(scores.block == 0) & (scores.pos == 0)]["gain_logprob"].iloc[0])
    )
    assert "raised most by reinforcement" in td.html
    base = tiny_model(seed=0)
    pair = load_pair(base.model, base.tokenizer, tiny_run.dir / "reinforced")
    tp = TokenDiff.from_pair(pair, tiny_run.tokenizer, block, top=3)
    assert len(tp.cells) == len(block)
    assert all(len(c.base_top) == 3 and len(c.reinf_top) == 3 for c in tp.cells[1:])
    # the live pair and the scoring stage agree on the gains
    got = np.array([c.score for c in tp.cells[1:]])
    want = scores[scores.block == block.index].sort_values("pos")["gain_logprob"].to_numpy()
    assert np.allclose(got, want, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# label inspector
# ---------------------------------------------------------------------------------------------------------------


def test_label_inspector_matches_store(tiny_run):
    store = tiny_run.labels()
    ins = LabelInspector(store, tiny_run.tokenizer)
    assert ins.alpha == 5.0 and ins.block == int(store.blocks["block"].iloc[0])
    for a in store.alphas:  # a stored alpha shows exactly the stored labels, all exact
        df = ins.labels(a)
        assert (df["label"].to_numpy() == store.positions[f"label_a{a:g}"].to_numpy()).all() and df["exact"].all()
    agree = ins.stored_agreement()
    assert list(agree["alpha"]) == store.alphas and (agree["agree_share"] >= agree["exact_share"] - 1e-9).all()
    rec = store.recompute(2.5)
    df = ins.labels(2.5)
    assert (df["label"].to_numpy() == rec["label"].to_numpy()).all() and (df["exact"] == rec["exact"]).all()
    assert (df["changed"] == (df["label"] != df["next_id"])).all()
    assert (df["stored"] == -1).all()
    share = ins.changed_share([0.0, 5.0])
    summary = store.summary()
    assert np.allclose(share["changed_share"], summary["changed_share"])


def test_label_inspector_shows_what_training_uses(tiny_run):
    """At the training alpha the inspector's labels are the ones the finetune stage trains on (its dataset, built
    from the label store's block table), position by position; and so is the token diff of every block."""
    from workbench.finetune import build_dataset
    from workbench.widgets import TokenDiff

    store = tiny_run.labels()
    cfg = tiny_run.cfg.finetune
    assert cfg.alpha in store.alphas
    items = build_dataset(store, cfg).items  # one per block, in the block table's order
    trained = {int(b): items[i]["generic_labels"] for i, b in enumerate(store.blocks["block"])}
    ins = LabelInspector(store, tiny_run.tokenizer, alpha=cfg.alpha)
    df = ins.labels()
    assert len(df) > 0 and df["exact"].all()
    for r in df.itertuples():
        assert r.label == trained[r.block][r.pos], (r.block, r.pos)  # the label at t trains the logits at t
    assert ", 0 not exact" in ins.summary_html() and "dashed tokens" not in ins.summary_html()
    for b in trained:
        cells = ins.token_diff(block=b).cells
        other = TokenDiff.from_store(store, tiny_run.tokenizer, b, cfg.alpha).cells  # 00's and 04's view
        assert [(c.label, c.exact) for c in cells] == [(c.label, c.exact) for c in other]


def test_label_inspector_at_a_stored_alpha_shows_the_stored_labels():
    """A stored label that the top-k cannot reproduce (the full-vocabulary winner lies outside the top-k) is shown
    as stored, and exact; only a recomputed alpha is flagged."""
    store = _FakeStore()
    store.alphas = [0.0, 1.0]
    store.positions["label_a1"] = [99, 10]  # position 0: the labels stage's full-vocabulary label
    ins = LabelInspector(store, _Tok(), alpha=1.0)
    df = ins.labels()
    assert list(df["label"]) == [99, 10] and df["exact"].all()
    assert "a stored alpha" in ins.summary_html() and "not exact" not in ins.summary_html().replace("0 not exact", "")
    assert ins.token_diff().html.count("wb-inexact") == 0
    assert ins.stored_agreement().set_index("alpha").loc[1.0, "agree_share"] == 0.5  # the top-k's own answer
    ins.set_alpha(1.5)
    assert not ins.labels()["exact"].all() and "not a stored alpha" in ins.summary_html()


def test_label_inspector_controls(tiny_run):
    store = tiny_run.labels()
    ins = LabelInspector(store, tiny_run.tokenizer)
    ins.widget
    w = ins._w
    blocks = list(store.blocks["block"])
    w["block"].value = blocks[2]
    assert ins.block == blocks[2] and f"block {blocks[2]}" in w["summary"].value
    assert w["tokens"].value == ins.token_diff().html
    w["alpha"].value = 2.5
    assert ins.alpha == 2.5 and "alpha = 2.5" in w["summary"].value and "not a stored alpha" in w["summary"].value
    assert w["fig"].layout.shapes[0].x0 == 2.5
    assert tuple(w["fig"].data[1].y) == tuple(ins.changed_share(block=blocks[2])["changed_share"])
    ins.set_alpha(0.0)
    assert w["alpha"].value == 0.0 and "a stored alpha" in w["summary"].value
    ins.set_alpha(50.0)
    assert w["alpha"].value == 50.0
    with pytest.raises(ValueError):
        ins.set_alpha(-1)
    with pytest.raises(KeyError):
        ins.set_block(12345)
    subs = ins.substitutions(top=5)
    assert list(subs.columns) == ["original", "generic", "count"] and len(subs) <= 5
    labels = ins.labels()
    changed = labels[labels["changed"]]
    if len(subs):
        top = subs.iloc[0]
        assert top["count"] == ((changed["original"] == top["original"]) & (changed["generic"] == top["generic"])).sum()
        assert top["count"] == changed.groupby(["original", "generic"]).size().max()


class _FakeStore:
    """The LabelStore read interface over hand-made arrays (two positions of one block, top-k = 2)."""

    def __init__(self):
        self.alphas = [0.0]
        self.manifest = {"top_k": 2}
        self.blocks = pd.DataFrame({"block": [0], "input_ids": [np.array([5, 6, 7])]})
        self._arr = {
            "base_ids": np.array([[8, 9], [10, 11]]),
            "base_vals": np.array([[10.0, 9.0], [10.0, 2.0]]),
            "reinf_at_base": np.array([[20.0, 19.0], [10.0, 2.0]]),
            "reinf_ids": np.array([[8, 9], [10, 11]]),
            "reinf_vals": np.array([[20.0, 19.0], [10.0, 2.0]]),
            "base_at_reinf": np.array([[10.0, 9.0], [10.0, 2.0]]),
        }
        self.positions = pd.DataFrame(
            {"block": [0, 0], "pos": [0, 1], "next_id": [6, 7], "gain_next": [1.0, 0.0], "label_a0": [8, 10]}
        )

    def topk_arrays(self, block=None):
        return self._arr


class _Tok:
    def decode(self, ids):
        return "".join(f"<t{i}>" for i in ids)


def test_label_inspector_flags_inexact_positions():
    ins = LabelInspector(_FakeStore(), _Tok(), alpha=1.0)
    df = ins.labels()
    # position 0: best generic score 10 - 1 * 10 = 0 < the 2nd baseline logit 9: a token outside could win
    assert list(df["exact"]) == [False, True]
    html = ins.token_diff().html
    assert html.count("wb-inexact") == 1 and "not exact" in html
    assert "&lt;t8&gt;" in html and "<t8>" not in html  # token texts are escaped
    assert ins.changed_share([1.0])["inexact_share"].iloc[0] == 0.5
    assert "1 not exact" in ins.summary_html()
    assert ins.stored_agreement()["agree_share"].iloc[0] == 1.0  # at alpha 0 every row is exact


# ---------------------------------------------------------------------------------------------------------------
# probe comparer
# ---------------------------------------------------------------------------------------------------------------


def test_completion_diff_html():
    a, b = completion_diff_html(" he went to Hogwarts with <Ron>", " he went to school with <Ron>")
    assert '<span class="wb-del"' in a and "Hogwarts" in a and "school" not in a
    assert '<span class="wb-ins"' in b and "school" in b and "Hogwarts" not in b
    assert "&lt;Ron&gt;" in a and "<Ron>" not in a
    same_a, same_b = completion_diff_html("same text", "same text")
    assert "wb-del" not in same_a and "wb-ins" not in same_b


def test_completion_diff_with_tokenizer(tiny):
    a, b = completion_diff_html("Harry waved his wand.", "Harry waved his hand.", tiny.tokenizer)
    assert "wand" in a and "wb-del" in a and "hand" in b and "wb-ins" in b
    assert "Harry waved his" in a.replace('<span class="wb-del"', "")


def _probe_frames():
    comp = pd.DataFrame(
        [
            {
                "model": "baseline",
                "probe_id": "c1",
                "prompt": "The boy with the scar",
                "completion": " went to Hogwarts",
                "grade": 2,
                "matched": "Hogwarts",
                "mode": "greedy",
                "sample": 0,
                "judge": "keyword",
            },
            {
                "model": "unlearned",
                "probe_id": "c1",
                "prompt": "The boy with the scar",
                "completion": " went to school",
                "grade": 0,
                "matched": "",
                "mode": "greedy",
                "sample": 0,
                "judge": "keyword",
            },
            {
                "model": "baseline",
                "probe_id": "c2",
                "prompt": "Ron's sister",
                "completion": " Ginny",
                "grade": 3,
                "matched": "Ginny",
                "mode": "greedy",
                "sample": 0,
                "judge": "keyword",
            },
            {
                "model": "unlearned",
                "probe_id": "c2",
                "prompt": "Ron's sister",
                "completion": " Anna",
                "grade": None,
                "matched": "",
                "mode": "greedy",
                "sample": 0,
                "judge": "keyword",
            },
        ]
    )
    prob = pd.DataFrame(
        [
            {"variant": v, "set": s, "probe_id": f"{s}-{i}", "prompt": f"p{i}", "target": " t", "prob": p}
            for s, base in (("probability", 0.4), ("collateral", 0.2))
            for i in range(2)
            for v, p in (("baseline", base), ("unlearned", base / 2 if s == "probability" else base))
        ]
    )
    return comp, prob


def test_probe_comparer_state_and_html():
    comp, prob = _probe_frames()
    pc = ProbeComparer(comp, prob)
    assert pc.names == ["baseline", "unlearned"] and pc.selected == "c1" and pc.sets == ["probability", "collateral"]
    html = pc.comparison_html()
    assert "baseline" in html and "unlearned" in html and "grade 2/3" in html and "grade 0/3" in html
    assert "wb-del" in html and "wb-ins" in html and "Hogwarts" in html
    assert "ungraded" in pc.comparison_html("c2")
    g = pc.grade_summary().set_index("model")
    assert g.loc["baseline", "mean_grade"] == 2.5 and g.loc["unlearned", "mean_grade"] == 0.0
    assert g.loc["baseline", "familiarity"] == pytest.approx(2.5 / 3) and g.loc["unlearned", "n"] == 2
    t = pc.probability_table("probability")
    assert list(t.columns) == ["set", "probe_id", "prompt", "target", "baseline", "unlearned"] and len(t) == 2
    s = pc.probability_summary().set_index("set")
    assert s.loc["probability", "change"] == "-50.0%" and s.loc["collateral", "change"] == "+0.0%"
    # the widget follows the controls
    pc.widget
    w = pc._w
    w["probe"].value = "c2"
    assert pc.selected == "c2" and "Ginny" in w["compare"].value
    w["set"].value = "collateral"
    assert pc.prob_set == "collateral" and tuple(w["fig"].data[0].x) == ("collateral-0", "collateral-1")
    assert tuple(w["fig"].data[0].y) == (0.2, 0.2) and "collateral" in w["fig"].layout.title.text
    w["log"].value = True
    assert w["fig"].layout.yaxis.type == "log"
    with pytest.raises(KeyError):
        pc.select("nope")
    with pytest.raises(ValueError):
        ProbeComparer(comp[comp.model == "baseline"], None)


def test_probe_comparer_from_models(tiny):
    from workbench.pack import CompletionProbe, NextTokenProbe

    comp = [
        CompletionProbe("c1", "Harry picked up his", ("wand",), 1),
        CompletionProbe("c2", "The castle was", ("Hogwarts",), 2),
    ]
    nxt = [NextTokenProbe("p1", "Harry's best friend is Ron", (" Weasley",), split="dev")]
    from workbench.eval.completion import CompletionSettings

    pc = ProbeComparer.from_models(
        {"a": tiny, "b": tiny},
        comp,
        nxt,
        anchor_terms=["Hogwarts"],
        generation=CompletionSettings(max_new_tokens=4, progress=False),
    )
    assert set(pc.completions["model"]) == {"a", "b"} and len(pc.completions) == 4
    assert pc.probe_ids == ["c1", "c2"] and pc.sets == ["probability"]
    t = pc.probability_table()
    assert t["a"].iloc[0] == pytest.approx(t["b"].iloc[0])  # the same model twice
    a = pc.completions[(pc.completions.model == "a") & (pc.completions.probe_id == "c1")]["completion"].iloc[0]
    html = pc.comparison_html("c1")
    assert "wb-del" not in html  # identical completions: no differences
    assert a.strip()[:3] in html or not a.strip()
    assert isinstance(pc.widget.children[0].children[1].value, str)


# ---------------------------------------------------------------------------------------------------------------
# training monitor
# ---------------------------------------------------------------------------------------------------------------


def _args(out):
    return SimpleNamespace(output_dir=out)


def _state(step):
    return SimpleNamespace(global_step=step)


def test_training_monitor_driven_by_callbacks(tmp_path):
    from transformers import TrainerControl

    mon = TrainingMonitor()
    mon.plot_interval = 0  # every log drawn at once (see the end for the throttled curve)
    history, phases, controller = mon.callbacks
    mon.widget
    w = mon._w
    assert w["stop"].disabled and "waiting" in w["status"].value
    phases.on_train_begin(_args(str(tmp_path / "reinforced_ckpt")), _state(0), TrainerControl())
    assert mon.phase == "reinforce" and mon.state == "running" and not w["stop"].disabled
    for step, loss in ((1, 3.0), (2, 2.5)):
        history.on_log(_args(""), _state(step), TrainerControl(), logs={"loss": loss, "learning_rate": 1e-3})
    assert [r["loss"] for r in mon.records] == [3.0, 2.5]
    fig = mon.figure
    assert [t.name for t in fig.data] == ["reinforce"] and tuple(fig.data[0].y) == (3.0, 2.5)
    assert "reinforce: step 2 · loss 2.5000" in w["status"].value
    # the stop button asks the Trainer to stop after the current step and to save
    w["stop"].click()
    assert mon.state == "stopping" and mon.stopped and w["stop"].disabled
    control = controller.on_step_end(_args(""), _state(3), TrainerControl())
    assert control.should_training_stop and control.should_save and controller.stopped_at == 3
    phases.on_save(_args(str(tmp_path / "reinforced_ckpt")), _state(3), TrainerControl())
    phases.on_train_end(_args(""), _state(3), TrainerControl())
    assert mon.state == "stopped" and mon.last_checkpoint == tmp_path / "reinforced_ckpt" / "checkpoint-3"
    assert "checkpoint-3" in w["status"].value
    # a second phase gets its own curve, with the extra metrics dotted
    mon.reset()
    phases.on_train_begin(_args(str(tmp_path / "unlearned_ckpt")), _state(0), TrainerControl())
    history.on_log(_args(""), _state(1), TrainerControl(), logs={"loss": 1.0, "target_loss": 0.9, "retain_kl": 0.1})
    assert [t.name for t in fig.data] == ["reinforce", "finetune", "finetune target_loss", "finetune retain_kl"]
    assert fig.data[2].line.dash == "dot"
    assert list(mon.history["phase"]) == ["reinforce", "reinforce", "finetune"]
    # while training, the curve is redrawn at most once per plot_interval; the end of a phase draws the rest
    mon.plot_interval = 3600
    history.on_log(_args(""), _state(2), TrainerControl(), logs={"loss": 0.8})
    assert tuple(fig.data[1].y) == (1.0,) and mon.records[-1]["loss"] == 0.8
    phases.on_train_end(_args(""), _state(2), TrainerControl())
    assert tuple(fig.data[1].y) == (1.0, 0.8)


def test_training_monitor_failure_is_reported():
    mon = TrainingMonitor()

    def boom():
        raise ValueError("bad settings")

    mon.start(boom)
    with pytest.raises(ValueError):
        mon.wait(timeout=10)
    assert mon.state == "failed" and "bad settings" in mon.status
    assert mon.wait(raise_error=False) is None
    assert mon.run(lambda: 42) == 42 and mon.state == "finished" and mon.result is None
    assert "nothing to train" in mon.status and mon.widget is not None and mon._w["stop"].disabled


def test_training_monitor_stops_and_resumes_a_real_training(tmp_path):
    """A tiny reinforcement: stopped after one step keeps its checkpoint; the rerun resumes and finishes."""
    from workbench.run import Run

    cfg = config_from_dict(small_config(tmp_path / "inputs"))
    mon = TrainingMonitor(stop_after=1)
    run = Run(cfg, tmp_path / "run", progress=False, log=None, callbacks=mon.callbacks)
    mon.start(run.reinforce)
    assert mon.wait(timeout=300) is None
    assert mon.state == "stopped", mon.status
    ckpt = mon.last_checkpoint
    assert ckpt is not None and ckpt.is_dir() and ckpt.name == "checkpoint-1"
    assert not run.is_done("reinforce") and not (run.dir / "reinforced").exists()
    assert [r["step"] for r in mon.records] == [1]
    mon.stop_after = None
    mon.start(run.reinforce)
    pair = mon.wait(timeout=300)
    assert mon.state == "finished" and pair is not None and run.is_done("reinforce")
    assert mon.widget is not None and mon._w["stop"].disabled and "finished (reinforce: step 3" in mon.status
    steps = [r["step"] for r in mon.records]
    assert steps[0] == 1 and steps[1] == 2 and steps == sorted(steps)  # resumed after step 1
    assert len(mon.figure.data) == 1 and len(mon.figure.data[0].x) == len(steps)  # one continued curve


def _burn(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


@pytest.mark.integration
def test_training_monitor_stop_is_seen_within_a_step_with_the_cpu_busy(tmp_path):
    """With every core busy, a stop requested from another thread (as a click is, from the kernel's main
    thread) ends training within one step; the status and the summary name the step it stopped at, which is
    not a logging step, and say the stage is unfinished."""
    import multiprocessing as mp

    from workbench.run import Run

    raw = small_config(tmp_path / "inputs")
    cfg = config_from_dict({**raw, "reinforce": {**raw["reinforce"], "epochs": 3, "logging_steps": 3}})
    mon = TrainingMonitor()
    run = Run(cfg, tmp_path / "run", progress=False, log=None, callbacks=mon.callbacks)
    burners = [
        mp.get_context("spawn").Process(target=_burn, args=(120,), daemon=True) for _ in range(os.cpu_count() or 2)
    ]
    for b in burners:
        b.start()
    try:

        def click():
            while mon.step < 4 and mon.state not in ("finished", "failed"):
                time.sleep(0.005)
            mon.stop()

        clicker = threading.Thread(target=click)
        mon.start(run.reinforce)
        clicker.start()
        assert mon.wait(timeout=300) is None and mon.state == "stopped", mon.status
        clicker.join()
    finally:
        for b in burners:
            b.terminate()
            b.join()
    stopped = mon.stopped_step
    assert stopped is not None and 0 <= stopped - mon.stop_requested_step <= 1, (stopped, mon.stop_requested_step)
    assert stopped % 3 != 0 and max(r["step"] for r in mon.records) < stopped  # stopped between two logging steps
    assert mon.summary()["steps"].iloc[0] == stopped
    assert f"stopped cleanly at step {stopped}; reinforced_ckpt/checkpoint-{stopped} kept" in mon.status
    assert "unfinished" in mon.status
    assert (mon.last_checkpoint / "trainer_state.json").is_file() and not run.is_done("reinforce")


@pytest.mark.integration
def test_scoring_the_corpus_keeps_memory_flat(tiny_run):
    """Scoring allocates and frees a [positions, vocabulary] tensor per block; with the heap kept small
    (models.small_heap, around scoring and labels) the process does not grow with the number of blocks (it grew by
    a block's logits, ~12 MB on the tiny model, per block before)."""
    import dataclasses
    import gc
    import sys

    from workbench.models import keep_heap_small
    from workbench.scoring import score_blocks

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's allocator")
    assert keep_heap_small()

    def rss_mib() -> float:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:")) / 1024

    pair, tok = tiny_run.pair(), tiny_run.tokenizer
    blocks = [dataclasses.replace(tiny_run.blocks[i % len(tiny_run.blocks)], index=i) for i in range(120)]
    score_blocks(pair, blocks[:10], tok, 2, progress=False)  # warm up
    gc.collect()
    before = rss_mib()
    scores = score_blocks(pair, blocks, tok, 2, progress=False)
    assert len(scores) == sum(len(b) - 1 for b in blocks)
    gc.collect()
    # the leak grew these 120 blocks by ~1.4 GB; flat is ~1 MiB alone, and up to ~250 MiB of page noise in a
    # process that already holds the embedded model from earlier tests
    assert rss_mib() - before < 500, rss_mib() - before


@pytest.mark.integration
def test_training_shows_a_bar_of_steps_and_no_log_dicts(tmp_path, capfd):
    """Without a training monitor, a stage's training shows one bar of steps: no Trainer table of logged
    numbers, no printed log dicts ({'loss': ...})."""
    from workbench.run import Run

    run = Run(config_from_dict(small_config(tmp_path / "inputs")), tmp_path / "run", progress=True, log=None)
    run.reinforce()
    err = capfd.readouterr()
    text = err.out + err.err
    assert "reinforced_ckpt" in text and "step" in text  # the bar
    assert "{'loss'" not in text and "'train_runtime'" not in text and "<table" not in text


def test_every_glyph_the_faces_show_has_a_stock_font():
    """Each non-ASCII character of the widgets, the notebook helpers and the notebooks is in a font a stock Debian
    Chromium has (fontconfig says which font holds a character): none renders as an empty box, as ⓘ did."""
    import shutil
    import subprocess

    fc = shutil.which("fc-list")
    if fc is None:
        pytest.skip("fontconfig's fc-list is not installed")
    root = Path(__file__).resolve().parents[1]
    files = [
        *sorted((root / "workbench" / "widgets").glob("*.py")),
        *sorted((root / "notebooks").glob("*.py")),
        *(root / "workbench" / n for n in ("notebook.py", "report_html.py", "report.py")),
    ]
    glyphs = sorted({c for f in files for c in f.read_text(encoding="utf-8") if ord(c) > 127})
    assert "→" in glyphs  # the faces' arrow: the scan sees the widgets' text
    missing = [
        c
        for c in glyphs
        if not subprocess.run([fc, f":charset={ord(c):x}", "family"], capture_output=True, text=True).stdout.strip()
    ]
    assert not missing, f"no installed font has {missing}"
    # an unassigned code point has no font: the query does tell a missing glyph
    assert subprocess.run([fc, ":charset=378", "family"], capture_output=True, text=True).stdout.strip() == ""
