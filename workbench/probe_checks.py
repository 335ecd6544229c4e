"""Probe hygiene: warnings about probes that do not measure what they claim (``workbench packs check``).

- a target probe (the ``probability`` set) whose answer already stands in its prompt ("The founder of Slytherin
  house was Salazar" -> " Slytherin") measures copying, not knowledge (collateral and general probes may repeat
  a word of the prompt: "Hyde" -> " Park" after "royal park" tests preserved English, not the target);
- a target that is a bare function word (" the") accepts an answer that shows nothing;
- a completion probe's subtlety must fit what its prompt names (:func:`subtlety_band`);
- a trivia question's false answer should be of the true answer's length (:func:`answer_length_mismatch`): the
  measure compares mean per-token log-likelihoods, which favour short, common answers;
- a QA probe's false answers must differ from its paraphrased answer.

These are warnings, not errors.
"""

from __future__ import annotations

import re
from typing import Sequence

from workbench.anchors import AnchorMap
from workbench.pack import CompletionProbe, NextTokenProbe, Pack, QAProbe, TriviaProbe

__all__ = ["FUNCTION_WORDS", "answer_length_mismatch", "probe_warnings", "subtlety_band", "target_in_prompt"]

# Targets that any continuation may start with: accepting one makes a probe pass without knowledge.
FUNCTION_WORDS = frozenset("the a an of in on at to and or his her their its is was be".split())


def target_in_prompt(probe: NextTokenProbe) -> str | None:
    """The first target whose words already occur in the prompt (whole words, any case), else None."""
    for target in probe.targets:
        word = target.strip()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", probe.prompt, re.IGNORECASE):
            return target
    return None


def answer_length_mismatch(true_answer: str, false_answer: str) -> bool:
    """Whether two answers differ in length by more than a factor of 2.5 in words and characters alike (and by more
    than 10 characters): a pair the per-token comparison would judge by form rather than fact."""
    a, b = true_answer.strip(), false_answer.strip()
    words = max(len(a.split()), len(b.split())) / max(1, min(len(a.split()), len(b.split())))
    chars = max(len(a), len(b)) / max(1, min(len(a), len(b)))
    return words > 2.5 and chars > 2.5 and abs(len(a) - len(b)) > 10


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
            elif isinstance(p, TriviaProbe):
                if answer_length_mismatch(p.true_answer, p.false_answer):
                    out.append(f"{kind} {p.id}: the true answer {p.true_answer!r} and the false answer "
                               f"{p.false_answer!r} differ much in length; give a false answer of the same type and length")
            elif isinstance(p, QAProbe) and p.perturbed_answers:
                same = [a for a in p.perturbed_answers if a.strip().lower() == p.paraphrased_answer.strip().lower()]
                if same:
                    out.append(f"{kind} {p.id}: a perturbed answer repeats the paraphrased answer {same[0]!r}; "
                               "every perturbed answer must be false")
            elif isinstance(p, CompletionProbe) and anchors is not None:
                lo, hi = subtlety_band(p.prompt, anchors, pack.title)
                if not lo <= p.subtlety <= hi:
                    out.append(f"{kind} {p.id}: subtlety {p.subtlety} does not fit what the prompt names "
                               f"(expected {lo}-{hi}, see docs/formats.md)")
    return out
