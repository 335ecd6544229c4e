"""Probe hygiene: warnings about probes that do not measure what they claim (``workbench packs check``).

- a target probe (the ``probability`` set) whose answer already stands in its prompt ("The founder of Slytherin
  house was Salazar" -> " Slytherin") measures copying, not knowledge (collateral and general probes may repeat
  a word of the prompt: "Hyde" -> " Park" after "royal park" tests preserved English, not the target);
- a target that is a bare function word (" the") accepts an answer that shows nothing;
- a completion probe's subtlety must fit what its prompt names (:func:`subtlety_band`).

These are warnings, not errors.
"""

from __future__ import annotations

import re
from typing import Sequence

from workbench.anchors import AnchorMap
from workbench.pack import CompletionProbe, NextTokenProbe, Pack

__all__ = ["FUNCTION_WORDS", "probe_warnings", "subtlety_band", "target_in_prompt"]

# Targets that any continuation may start with: accepting one makes a probe pass without knowledge.
FUNCTION_WORDS = frozenset("the a an of in on at to and or his her their its is was be".split())


def target_in_prompt(probe: NextTokenProbe) -> str | None:
    """The first target whose words already occur in the prompt (whole words, any case), else None."""
    for target in probe.targets:
        word = target.strip()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", probe.prompt, re.IGNORECASE):
            return target
    return None


def subtlety_band(prompt: str, anchors: AnchorMap, title: str) -> tuple[int, int]:
    """The subtlety range (1 = names the target .. 10 = only a familiar reader continues it so) that fits what
    ``prompt`` names: the target's title (``Harry Potter``) -> 1-2; another anchored term -> 2-4; none -> 3-10
    (3-4 for a description that gives the target away without a name, higher the less it gives away)."""
    if title and re.search(rf"(?<!\w){re.escape(title)}(?!\w)", prompt, re.IGNORECASE):
        return 1, 2
    if anchors.find(prompt):
        return 2, 4
    return 3, 10


def probe_warnings(pack: Pack, anchors: AnchorMap | None = None) -> list[str]:
    """Every hygiene warning for a pack's probe files, one line each (file, probe id, what to do)."""
    out: list[str] = []
    for kind in pack.probe_paths:
        if not pack.has_probes(kind):
            continue
        probes: Sequence = pack.probes(kind)
        for p in probes:
            if isinstance(p, NextTokenProbe):
                hit = target_in_prompt(p) if kind == "probability" else None
                if hit is not None:
                    out.append(f"{kind} {p.id}: target {hit!r} already stands in the prompt {p.prompt!r}; "
                               "rephrase the prompt or drop the probe")
                generic = [t for t in p.targets if t.strip().lower() in FUNCTION_WORDS]
                if generic:
                    out.append(f"{kind} {p.id}: target(s) {generic} accept a bare function word; drop them")
            elif isinstance(p, CompletionProbe) and anchors is not None:
                lo, hi = subtlety_band(p.prompt, anchors, pack.title)
                if not lo <= p.subtlety <= hi:
                    out.append(f"{kind} {p.id}: subtlety {p.subtlety} does not fit what the prompt names "
                               f"(expected {lo}-{hi}, see docs/formats.md)")
    return out
