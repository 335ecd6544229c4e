"""Anchor maps: validation errors, consolidation, matching, seeded choices."""

import json
import warnings

import pytest

from workbench.anchors import AnchorMap, AnchorWarning, consolidate, load_anchor_map
from workbench.errors import WorkbenchError


def amap(d):
    return AnchorMap.from_dict(d)


def test_full_format_and_bare_mapping_are_equivalent():
    full = AnchorMap.from_dict({"format": "whp-anchors/1", "description": "d", "anchors": {"Hogwarts": ["X", "Y"]}})
    bare = AnchorMap.from_dict({"Hogwarts": ["X", "Y"]})
    assert full.entries == bare.entries == {"Hogwarts": ["X", "Y"]}
    assert full.description == "d"


def test_single_string_alternative_becomes_a_list():
    assert amap({"Quidditch": "skyball"}).entries == {"Quidditch": ["skyball"]}


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"Hogwarts": []}, "has no alternatives"),
        ({"Hogwarts": [""]}, "non-empty string"),
        ({"Hogwarts": 3}, "must be a list"),
        ({" Hogwarts": ["x"]}, "white space"),
        ({"anchors": {"a": ["b"]}, "review": {"a": {"status": "done"}}}, "status 'done' is not one of"),
        ({"anchors": {"a": ["b"]}, "review": {"a": {"state": "accepted"}}}, "unknown field"),
        ({"format": "other/2", "anchors": {"a": ["b"]}}, "unknown format"),
    ],
)
def test_bad_entries_name_the_key_and_problem(data, needle):
    with pytest.raises(WorkbenchError, match=needle):
        AnchorMap.from_dict(data, source="anchors.json")


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "anchors.json"
    path.write_text('{\n  "anchors": {\n    "Hogwarts": ["x",]\n  }\n}\n')
    with pytest.raises(WorkbenchError) as exc:
        load_anchor_map(path)
    assert str(path) in str(exc.value) and "line 3" in str(exc.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_anchor_map(tmp_path / "nope.json")
    bad = tmp_path / "latin.json"
    bad.write_bytes('{"Caf\xe9": ["x"]}'.encode("latin-1"))
    with pytest.raises(WorkbenchError, match="not UTF-8"):
        load_anchor_map(bad)


def test_consolidation_drops_redundant_keys_like_the_paper():
    kept, dropped = consolidate(
        {
            "Harry": ["a"],
            "Potter": ["b"],
            "Harry Potter": ["c"],
            "Harry's": ["d"],
            "Diagon Alley": ["e"],
            "Albus Dumbledore": ["f"],
            "Albus": ["g"],
        }
    )
    assert "Harry Potter" not in kept and "Harry's" not in kept
    assert "Diagon Alley" in kept  # 'Alley' is not a key
    assert "Albus Dumbledore" in kept  # 'Dumbledore' is not a key
    assert {k for k, _ in dropped} == {"Harry Potter", "Harry's"}


def test_matching_word_boundaries_longest_first_possessive_punctuation():
    m = amap({"Ron": ["Mike"], "Ron Weasley": ["Mike Smith"], "Hogwarts": ["Northbrook"], "Ho": ["Z"]})
    text = "Ron Weasley's owl flew to Hogwarts, not Hogwartsy; Ron! (Ho) Ronald HoHo"
    found = [(x.key, text[x.start : x.end]) for x in m.find(text)]
    assert found == [("Ron Weasley", "Ron Weasley"), ("Hogwarts", "Hogwarts"), ("Ron", "Ron"), ("Ho", "Ho")]


def test_choice_is_seeded_consistent_in_a_block_and_varies_across_blocks():
    m = amap({"Harry": ["Jon", "Tom", "Sam", "Ben"]})
    text = "Harry met Harry's friend. Harry left."
    out = m.translate(text, seed=1, block=0)
    assert len({w for w in out.replace("'s", "").replace(".", "").split() if w in {"Jon", "Tom", "Sam", "Ben"}}) == 1
    assert out == m.translate(text, seed=1, block=0)
    assert len({m.choose("Harry", 1, b) for b in range(40)}) > 1
    assert m.choose("Harry", 1, 5) == amap({"Harry": ["Jon", "Tom", "Sam", "Ben"], "Other": ["x"]}).choose(
        "Harry", 1, 5
    )


def test_unmatched_anchors_warn_with_count():
    m = amap({"Harry": ["Jon"], "Gringotts": ["bank"], "Quaffle": ["ball"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unmatched = m.warn_unmatched(["Harry went home."])
    assert unmatched == ["Gringotts", "Quaffle"]
    assert any(issubclass(w.category, AnchorWarning) and "2 of 3" in str(w.message) for w in caught)


def test_keys_marked_keep_unmatched_are_not_warned_about_and_round_trip(tmp_path):
    data = {
        "format": "whp-anchors/1",
        "anchors": {"Harry": ["Jon"], "Gringotts": ["bank"], "Quaffle": ["ball"]},
        "review": {"Quaffle": {"keep_unmatched": True}},
    }
    m = AnchorMap.from_dict(data)
    assert m.kept_unmatched == {"Quaffle"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert m.warn_unmatched(["Harry went home."]) == ["Gringotts", "Quaffle"]  # every key that never occurs
    (w,) = [w for w in caught if issubclass(w.category, AnchorWarning)]
    assert "2 of 3 anchors never match the corpus (1 marked keep_unmatched): 'Gringotts';" in str(w.message)
    with warnings.catch_warnings(record=True) as caught:  # only marked keys missing: no warning
        warnings.simplefilter("always")
        assert m.warn_unmatched(["Harry went to Gringotts."]) == ["Quaffle"]
    assert not [w for w in caught if issubclass(w.category, AnchorWarning)]
    m.save(tmp_path / "a.json")
    again = load_anchor_map(tmp_path / "a.json")
    assert again.kept_unmatched == {"Quaffle"} and again.review["Quaffle"] == {
        "status": "to review",
        "keep_unmatched": True,
    }
    # an edit through the curation methods keeps the mark
    assert again.with_review("Quaffle", status="accepted").kept_unmatched == {"Quaffle"}
    with pytest.raises(WorkbenchError, match="keep_unmatched must be true or false"):
        AnchorMap.from_dict({**data, "review": {"Quaffle": {"keep_unmatched": "yes"}}})
    # a map without review records, as written before the field existed, loads as it did
    assert AnchorMap.from_dict({"anchors": {"Harry": ["Jon"]}}).kept_unmatched == set()


def test_save_roundtrip_is_atomic_json(tmp_path):
    m = amap({"Hogwarts": ["Northbrook Academy", "Kingsmere College"]})
    path = tmp_path / "a.json"
    m.save(path)
    assert json.loads(path.read_text())["format"] == "whp-anchors/1"
    assert load_anchor_map(path).entries == m.entries
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_many_keys_match_fast():
    """3000 keys: the trie-factored pattern finds exactly the keys in the text, at least twice as fast as a flat
    alternation of the same keys (the obvious implementation), timed side by side (best of 5 each)."""
    import re
    import time

    keys = {f"Name{i}x": [f"Alt{i}"] for i in range(3000)}
    m = amap(keys)
    words = []
    for i in range(0, 3000, 7):  # keys among near misses: no suffix, a longer word, another prefix
        words += [f"Name{i}x", "said", f"Name{i}", f"Name{i}xy", f"Nam{i}x", "hello"]
    text = " ".join(words)
    expected = [w for w in words if w in keys]
    flat = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)) + r")(?!\w)")
    assert [o.key for o in m.find(text)] == expected  # also compiles the trie pattern before timing
    assert [x.group() for x in flat.finditer(text)] == expected

    def best(fn) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_trie, t_flat = best(lambda: m.find(text)), best(lambda: list(flat.finditer(text)))
    assert t_trie * 2 < t_flat, f"trie {t_trie * 1e3:.2f} ms vs flat alternation {t_flat * 1e3:.2f} ms"


def test_empty_map_and_review_records_round_trip(tmp_path):
    empty = AnchorMap.from_dict({"format": "whp-anchors/1", "anchors": {}})
    assert len(empty) == 0 and empty.find("Harry went home") == [] and empty.translate("Harry") == "Harry"
    m = AnchorMap.from_dict({"Harry": ["Jon"], "Hogwarts": ["Northbrook"]})
    m = m.with_review("Harry", status="accepted", note="checked in ch. 1").with_review("This", status="rejected")
    m = m.with_review("Hogwarts", placeholder=True)
    path = tmp_path / "a.json"
    m.save(path)
    back = load_anchor_map(path)
    assert back.review == {
        "Harry": {"status": "accepted", "note": "checked in ch. 1"},
        "This": {"status": "rejected"},
        "Hogwarts": {"status": "to review", "placeholder": True},
    }
    assert back.fingerprint() == AnchorMap.from_dict({"Harry": ["Jon"], "Hogwarts": ["Northbrook"]}).fingerprint()
    assert back.with_review("Hogwarts", placeholder=None).review.get("Hogwarts") is None  # back to the default
    assert back.without("Harry").review["Harry"]["status"] == "accepted"  # the verdict outlives the entry
