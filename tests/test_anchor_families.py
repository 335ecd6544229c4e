"""Families of anchors: one coherent index per family and block; bad families fail with one clear error."""

import json
import re
import subprocess
import sys

import pytest

from workbench.anchors import AnchorMap, load_anchor_map
from workbench.errors import WorkbenchError
from workbench.pack import load_pack

POTTERS = {
    "Harry": ["Jon", "Mark", "Ben"],
    "Potter": ["Miller", "Parker", "Harris"],
    "James Potter": ["Michael Miller", "David Parker", "Richard Harris"],
    "Lily Potter": ["Claire Miller", "Rachel Parker", "Jane Harris"],
    "Harry James Potter": ["Jon Michael Miller", "Mark David Parker", "Ben Richard Harris"],
    "Hogwarts": ["Northbrook", "Kingsmere", "Ravenhill", "Ashdown"],
}
TEXT = "Harry James Potter, son of James Potter and Lily Potter. Harry Potter went to Hogwarts."


def test_a_family_translates_coherently_in_every_block():
    amap = AnchorMap.from_dict(
        {
            "format": "whp-anchors/1",
            "anchors": POTTERS,
            "families": {"Potter": ["Harry", "Potter", "James Potter", "Lily Potter", "Harry James Potter"]},
        }
    )
    seen = set()
    for block in range(40):
        out = amap.translate(TEXT, seed=0, block=block)
        # written out: the i-th alternatives of the family's keys, all with one i
        ok = [
            f"{POTTERS['Harry James Potter'][i]}, son of {POTTERS['James Potter'][i]} and "
            f"{POTTERS['Lily Potter'][i]}. {POTTERS['Harry'][i]} {POTTERS['Potter'][i]} went to "
            for i in range(3)
        ]
        assert any(out.startswith(o) for o in ok), out
        seen.add(out.split(",")[0])
    assert len(seen) == 3  # every index is drawn somewhere
    # without the family the keys draw independently and some block mixes two families' names
    loose = AnchorMap.from_dict(POTTERS)
    mixed = [loose.translate(TEXT, seed=0, block=b) for b in range(40)]
    assert any(not any(m.startswith(o) for o in ok) for m in mixed)


def test_the_full_name_key_wins_over_the_shorter_key_inside_it():
    amap = AnchorMap.from_dict(POTTERS)
    assert [m.key for m in amap.find(TEXT)][:2] == ["Harry James Potter", "James Potter"]


def test_families_roundtrip_and_change_the_fingerprint(tmp_path):
    data = {"format": "whp-anchors/1", "anchors": POTTERS, "families": {"Potter": ["Harry", "Potter"]}}
    amap = AnchorMap.from_dict(data)
    path = tmp_path / "a.json"
    amap.save(path)
    again = load_anchor_map(path)
    assert again.families == {"Potter": ["Harry", "Potter"]}
    assert again.fingerprint() == amap.fingerprint() != AnchorMap.from_dict(POTTERS).fingerprint()
    assert AnchorMap.from_dict({"anchors": POTTERS}).fingerprint() == AnchorMap.from_dict(POTTERS).fingerprint()


def test_consolidation_and_edits_keep_families_valid():
    data = {
        "anchors": {**POTTERS, "Harry Potter": ["Jon Miller", "Mark Parker", "Ben Harris"]},
        "families": {"Potter": ["Harry", "Potter", "Harry Potter"]},
    }
    amap = AnchorMap.from_dict(data)
    assert amap.families == {"Potter": ["Harry", "Potter"]}  # "Harry Potter" went in consolidation
    assert amap.without("Potter").families == {"Potter": ["Harry"]}
    with pytest.raises(WorkbenchError, match="'Harry' is in family 'Potter'.*3 alternatives"):
        amap.with_entry("Harry", ["Jon", "Mark"])
    assert amap.with_entry("Harry", ["Jon", "Mark", "Tom"]).families == amap.families


@pytest.mark.parametrize(
    "families, needle",
    [
        ({"Potter": ["Harry", "Hogwarts"]}, r"family 'Potter'.*different numbers of alternatives.*'Hogwarts': 4"),
        ({"Potter": ["Harry", "Dumbledore"]}, r"family 'Potter': 'Dumbledore' is not a key"),
        ({"A": ["Harry"], "B": ["Harry", "Potter"]}, r"'Harry' is in two families"),
        (["Harry", "Potter"], r'"families" must be an object'),
        ({"Potter": []}, r"family 'Potter': expected a non-empty list"),
    ],
)
def test_bad_families_name_the_family_and_the_problem(families, needle):
    with pytest.raises(WorkbenchError, match=needle):
        AnchorMap.from_dict({"anchors": POTTERS, "families": families}, source="a.json")


@pytest.mark.integration
def test_bad_family_on_the_command_line_exits_2(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"anchors": POTTERS, "families": {"Potter": ["Harry", "Hogwarts"]}}))
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "anchors", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert re.search(r"family 'Potter'.*different numbers", proc.stderr)


def test_the_harry_potter_pack_ties_its_name_families():
    amap = load_anchor_map(load_pack("harry_potter").anchors_path)
    fam = next(keys for keys in amap.families.values() if "James Potter" in keys)
    assert {"Harry", "Potter", "James Potter", "Lily Potter", "Harry James Potter"} <= set(fam)
    for block in range(10):
        out = amap.translate("Harry James Potter, son of James Potter and Lily Potter", 0, block)
        words = out.replace(",", "").split()
        assert words[2] == words[6] == words[9]  # one surname for the whole family
