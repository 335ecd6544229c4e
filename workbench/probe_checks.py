"""Probe hygiene: warnings about probes that do not measure what they claim (``workbench packs check``).

- a target probe (the ``probability`` set) whose answer already stands in its prompt ("The founder of Slytherin
  house was Salazar" -> " Slytherin") measures copying, not knowledge (collateral and general probes may repeat
  a word of the prompt: "Hyde" -> " Park" after "royal park" tests preserved English, not the target);
- a target that is a bare function word (" the") accepts an answer that shows nothing;
- a completion probe's subtlety must fit what its prompt names (:func:`subtlety_band`);
- a trivia question's false answer should be of the true answer's length (:func:`answer_length_mismatch`): the
  measure compares mean per-token log-likelihoods, which favour short, common answers;
- a QA probe's false answers must differ from its paraphrased answer.

These are warnings, not errors. One rule is an error: a target, collateral or general probe whose answer, with
the prompt's last words, stands in text a model trains on (the retain text, the relearning attack's text) measures
memorised training text, not knowledge (:func:`find_overlaps`, :func:`check_disjoint`); the pack's
``allow_overlap`` list, with a reason per probe, is the only way round it (docs/formats.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from workbench.anchors import AnchorMap
from workbench.errors import WorkbenchError
from workbench.pack import CompletionProbe, NextTokenProbe, Pack, QAProbe, TriviaProbe

__all__ = [
    "FUNCTION_WORDS",
    "OVERLAP_KINDS",
    "OVERLAP_WORDS",
    "Overlap",
    "answer_length_mismatch",
    "answer_phrases",
    "check_disjoint",
    "check_pack_disjoint",
    "disjoint_text",
    "find_overlaps",
    "overlap_probes",
    "probe_warnings",
    "subtlety_band",
    "target_in_prompt",
]

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
                    out.append(
                        f"{kind} {p.id}: target {hit!r} already stands in the prompt {p.prompt!r}; "
                        "rephrase the prompt or drop the probe"
                    )
                generic = [t for t in p.targets if t.strip().lower() in FUNCTION_WORDS]
                if generic:
                    out.append(f"{kind} {p.id}: target(s) {generic} accept a bare function word; drop them")
            elif isinstance(p, TriviaProbe):
                if answer_length_mismatch(p.true_answer, p.false_answer):
                    out.append(
                        f"{kind} {p.id}: the true answer {p.true_answer!r} and the false answer "
                        f"{p.false_answer!r} differ much in length; give a false answer of the same type and length"
                    )
            elif isinstance(p, QAProbe) and p.perturbed_answers:
                same = [a for a in p.perturbed_answers if a.strip().lower() == p.paraphrased_answer.strip().lower()]
                if same:
                    out.append(
                        f"{kind} {p.id}: a perturbed answer repeats the paraphrased answer {same[0]!r}; "
                        "every perturbed answer must be false"
                    )
            elif isinstance(p, CompletionProbe) and anchors is not None:
                lo, hi = subtlety_band(p.prompt, anchors, pack.title)
                if not lo <= p.subtlety <= hi:
                    out.append(
                        f"{kind} {p.id}: subtlety {p.subtlety} does not fit what the prompt names "
                        f"(expected {lo}-{hi}, see docs/formats.md)"
                    )
    return out


# -- disjointness of probes and training text ----------------------------------------------------------------------------
OVERLAP_WORDS = 2  # the prompt's last words that, with the answer, make the phrase looked for
OVERLAP_KINDS = ("probability", "collateral", "general")  # the probe sets whose answers training text must not state


@dataclass(frozen=True)
class Overlap:
    """A probe whose answer phrase stands in a training text."""

    kind: str  # probe set
    probe_id: str
    split: str
    phrase: str  # the normalised "last words + answer" found
    where: str  # the text it stands in ('retain text a.txt')

    def line(self) -> str:
        return f"{self.kind} {self.probe_id} ({self.split}): {self.phrase!r} stands in the {self.where}"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def answer_phrases(probe: NextTokenProbe, words: int = OVERLAP_WORDS) -> list[str]:
    """The probe's prompt's last ``words`` words followed by each of its targets, whitespace collapsed, lower case:
    what a text must not hold for the probe to measure knowledge rather than that text."""
    cue = " ".join(probe.prompt.split()[-words:])
    return list(dict.fromkeys(_norm(cue + t) for t in probe.targets))


def overlap_probes(pack: Pack, kinds: Sequence[str] = OVERLAP_KINDS) -> list[NextTokenProbe]:
    """Every probe of the pack's next-token files among ``kinds`` (what :func:`check_disjoint` checks)."""
    return [p for k in kinds if pack.has_probes(k) for p in pack.probes(k) if isinstance(p, NextTokenProbe)]


def find_overlaps(
    probes: Iterable[NextTokenProbe], texts: Mapping[str, str], words: int = OVERLAP_WORDS
) -> list[Overlap]:
    """Every (probe, text) where one of the probe's :func:`answer_phrases` is a substring of the text (whitespace
    collapsed, any case). ``texts``: a label ('retain text a.txt') -> the text."""
    normed = {label: _norm(text) for label, text in texts.items()}
    out = []
    for p in probes:
        for phrase in answer_phrases(p, words):
            for label, text in normed.items():
                if phrase in text:
                    out.append(Overlap(p.kind, p.id, p.split, phrase, label))
    return out


def check_disjoint(
    probes: Sequence[NextTokenProbe],
    texts: Mapping[str, str],
    allow: Mapping[str, str],
    what: str,
    words: int = OVERLAP_WORDS,
) -> list[Overlap]:
    """Raise one error listing every overlap of a probe not in ``allow`` (probe id -> reason); return the allowed
    ones. ``what`` names the texts and the setting that chose them, for the message."""
    known = {p.id for p in probes}
    stale = [pid for pid in allow if pid not in known]
    if stale:
        raise WorkbenchError(
            f"allow_overlap names {', '.join(sorted(stale))}, which no target, collateral or general "
            "probe file holds; remove the entries from pack.json"
        )
    found = find_overlaps(probes, texts, words)
    bad = [o for o in found if o.probe_id not in allow]
    if bad:
        shown = "\n  ".join(o.line() for o in bad[:40]) + (f"\n  ... and {len(bad) - 40} more" if len(bad) > 40 else "")
        n = len({(o.kind, o.probe_id) for o in bad})
        raise WorkbenchError(
            f"{what}: {n} probe(s) have their answer, after the prompt's last {words} words, in text a model trains on, "
            f"so they would measure that text, not knowledge:\n  {shown}\nrewrite those sentences of the text (or the "
            "probes' prompts), or list each probe in pack.json's allow_overlap with a reason (docs/formats.md)"
        )
    return [o for o in found if o.probe_id in allow]


def check_pack_disjoint(pack: Pack, texts: Mapping[str, str], what: str) -> list[Overlap]:
    """:func:`check_disjoint` with the pack's target, collateral and general probes and its ``allow_overlap``."""
    return check_disjoint(overlap_probes(pack), texts, pack.allow_overlap, what)


_SENTENCE_END = re.compile(r"((?<=[.!?])\s+|\n\s*\n)")


def disjoint_text(text: str, probes: Sequence[NextTokenProbe], words: int = OVERLAP_WORDS) -> tuple[str, int]:
    """``text`` without every sentence that holds (part of) a probe's answer phrase, and how many sentences it
    lost; the rest is kept character for character. Sentences are dropped until no phrase is left, so the result
    passes :func:`find_overlaps`."""
    phrases = sorted({ph for p in probes for ph in answer_phrases(p, words)})
    parts = _SENTENCE_END.split(text)  # sentence, separator, sentence, ...
    units = [[parts[k], parts[k + 1] if k + 1 < len(parts) else ""] for k in range(0, len(parts), 2)]
    dropped = 0
    while True:
        normed = [_norm(u[0]) for u in units]
        starts, pos = [], 0
        for s in normed:
            starts.append(pos)
            pos += len(s) + 1 if s else 0
        joined = " ".join(s for s in normed if s)
        kill: set[int] = set()
        for ph in phrases:
            i = joined.find(ph)
            while i >= 0:
                end = i + len(ph)
                kill |= {k for k, st in enumerate(starts) if normed[k] and st < end and st + len(normed[k]) > i}
                i = joined.find(ph, i + 1)
        if not kill:
            return "".join(a + b for a, b in units), dropped
        dropped += len(kill)
        units = [u for k, u in enumerate(units) if k not in kill]
