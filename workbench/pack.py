"""Data packs: a folder with a target corpus, an anchor map, retain text and probe files (see docs/formats.md).

Bundled packs live in ``workbench/packs/<name>/``; any folder of your own with a ``pack.json`` works too.
The loaders here validate strictly and name the file, line and field of every problem, because packs are
written by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.anchors import load_anchor_map
from workbench.config import NEXT_TOKEN_KINDS  # the report's probe_sets are validated in the config
from workbench.errors import WorkbenchError
from workbench.io import iter_jsonl, read_json_file, read_text, read_text_file, require_file

__all__ = [
    "BUNDLED_DIR",
    "COMPLETION_KIND",
    "CompletionProbe",
    "DEFAULT_PROBES",
    "NEXT_TOKEN_KINDS",
    "NextTokenProbe",
    "Pack",
    "Probe",
    "QAProbe",
    "KNOWMEM_KIND",
    "QA_KINDS",
    "TRIVIA_KIND",
    "VERBMEM_KIND",
    "VerbatimProbe",
    "check_holdout_overlap",
    "parse_probe",
    "TriviaProbe",
    "list_packs",
    "load_anchor_terms",
    "load_pack",
    "load_probes",
    "question_context",
]

BUNDLED_DIR = Path(__file__).resolve().parent / "packs"
COMPLETION_KIND = "completion"
DEFAULT_PROBES = {
    "probability": "probes/probability.jsonl",
    "completion": "probes/completion.jsonl",
    "collateral": "probes/collateral.jsonl",
    "general": "probes/general.jsonl",
}
SPLITS = ("dev", "heldout")
QA_KINDS = ("qa", "retain_qa")  # question/answer probes in TOFU's layout: the target's facts, and facts to keep
KNOWMEM_KIND = "knowmem"  # questions with a gold answer only (MUSE's knowledge memorisation)
TRIVIA_KIND = "trivia"  # a question with one true and one false answer
VERBMEM_KIND = "verbmem"  # a passage's opening with its true continuation (MUSE's verbatim memorisation)
MIN_PERTURBED = 3  # false answers a QA probe needs for the truth ratio
HOLDOUT_OVERLAP_WORDS = 8  # a holdout sentence this long that also stands in the corpus makes the holdout invalid
TAGGED_ANSWER_KINDS = ("collocation",)  # answer kinds a probe file may state (the others come from the anchor map)


@dataclass(frozen=True)
class NextTokenProbe:
    """A prompt and its correct continuations (probability, collateral and general probe files)."""

    id: str  # unique within its file
    prompt: str  # text the model continues, ending just before the answer
    targets: tuple[str, ...]  # correct continuations, the first is canonical; each starts with its space
    split: str = "heldout"  # 'dev' (may be tuned on) or 'heldout' (reported only)
    domain: str | None = None  # topic of collateral/general probes
    paraphrases: tuple[str, ...] = ()  # other prompts with the same answer
    kind: str = "probability"  # the probe set it came from
    source: str = ""  # 'file line N', for messages
    fact: str | None = field(
        default=None,
        metadata={
            "help": "the fact the probe tests; probes of one fact share a split, so dev tuning never sees a heldout fact"
        },
    )
    answer_kind: str | None = field(
        default=None,
        metadata={
            "help": "'collocation': the answer follows from the prompt's last words alone (lightning -> bolt); "
            "otherwise the report derives the kind from the anchor map"
        },
    )


@dataclass(frozen=True)
class CompletionProbe:
    """A completion prompt graded 0-3 for familiarity with the target (completion.jsonl)."""

    id: str  # unique within its file
    prompt: str  # text the model completes
    references: tuple[str, ...]  # keywords whose appearance shows familiarity
    subtlety: int  # 1 (names the target) .. 10 (only a familiar reader continues it so)
    split: str = "heldout"  # 'dev' or 'heldout'
    kind: str = COMPLETION_KIND  # the probe set it came from
    source: str = ""  # 'file line N', for messages
    fact: str | None = field(
        default=None,
        metadata={
            "help": "the fact or topic the prompt draws on; prompts of one fact share a split, as next-token probes do"
        },
    )


@dataclass(frozen=True)
class QAProbe:
    """A question about one fact with its answer, a paraphrase of the answer and false answers (qa.jsonl,
    retain_qa.jsonl; TOFU's layout)."""

    id: str  # unique within its file
    question: str  # the question, without a prompt template (see question_context)
    answer: str  # the gold answer
    paraphrased_answer: str  # the gold answer in other words
    perturbed_answers: tuple[str, ...]  # at least three false answers in the paraphrase's style (none for 'knowmem')
    split: str = "heldout"  # 'dev' or 'heldout'
    kind: str = "qa"  # 'qa' (the target's facts), 'retain_qa' (facts to keep) or 'knowmem' (answer only)
    source: str = ""  # 'file line N', for messages
    fact: str | None = None  # the fact asked about; the questions of one fact share a split


@dataclass(frozen=True)
class TriviaProbe:
    """A question with one true and one false answer of the same type (trivia.jsonl)."""

    id: str  # unique within its file
    question: str  # the question, without a prompt template (see question_context)
    true_answer: str  # the right answer
    false_answer: str  # a wrong answer of the same type and about the same length
    split: str = "heldout"  # 'dev' or 'heldout'
    kind: str = TRIVIA_KIND
    source: str = ""  # 'file line N', for messages
    fact: str | None = None  # the fact asked about; the questions of one fact share a split


@dataclass(frozen=True)
class VerbatimProbe:
    """The opening of a target passage and its true continuation (verbmem.jsonl; MUSE's verbmem layout)."""

    id: str  # unique within its file
    prompt: str  # the opening the model continues
    continuation: str  # the passage's true continuation
    split: str = "heldout"  # 'dev' or 'heldout'
    kind: str = VERBMEM_KIND
    source: str = ""  # 'file line N', for messages
    fact: str | None = None  # the passage or fact; the probes of one fact share a split


Probe = NextTokenProbe | CompletionProbe | QAProbe | TriviaProbe | VerbatimProbe


def question_context(question: str) -> str:
    """The prompt a question is asked with (as MUSE's knowledge-memorisation prompts): the answer follows it
    after a space."""
    return f"Question: {question.strip()}\nAnswer:"


@dataclass
class Pack:
    """A loaded pack manifest with resolved paths (files are read on demand)."""

    name: str  # short name, e.g. 'harry_potter'
    root: Path  # the pack folder
    title: str  # human-readable target name, e.g. 'Harry Potter'
    description: str  # what the pack holds
    version: int  # manifest version
    corpus_dir: Path  # folder of target documents (*.txt)
    anchors_path: Path  # anchors.json
    retain_dir: Path  # folder of retain documents (*.txt)
    holdout_dir: Path | None = None  # folder of non-member text in the corpus's style (*.txt), for membership inference
    probe_paths: dict[str, Path] = field(default_factory=dict)  # probe kind -> JSONL file
    manifest: dict[str, Any] = field(default_factory=dict)  # pack.json as read
    allow_overlap: dict[str, str] = field(default_factory=dict)  # probe id -> why its answer may stand in training text

    def _txt_files(self, folder: Path, what: str) -> list[Path]:
        if not folder.is_dir():
            raise WorkbenchError(
                f"pack {self.name!r}: {what} folder {folder} does not exist; create it with *.txt files"
            )
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise WorkbenchError(f"pack {self.name!r}: {what} folder {folder} holds no *.txt files")
        return files

    def corpus_files(self) -> list[Path]:
        """The target documents, sorted by name."""
        return self._txt_files(self.corpus_dir, "corpus")

    def retain_files(self) -> list[Path]:
        """The retain documents, sorted by name."""
        return self._txt_files(self.retain_dir, "retain")

    def read_corpus(self) -> list[str]:
        """The text of every corpus document."""
        return [read_text(p, "corpus file") for p in self.corpus_files()]

    def holdout_files(self) -> list[Path]:
        """The holdout documents, sorted by name; an error if the pack declares none."""
        if self.holdout_dir is None:
            raise WorkbenchError(
                f'pack {self.name!r} declares no holdout text; add "holdout": "holdout" to its '
                "pack.json and a folder of *.txt files the corpus does not contain (docs/formats.md)"
            )
        return self._txt_files(self.holdout_dir, "holdout")

    def has_holdout(self) -> bool:
        """Whether the manifest declares a holdout folder and it exists."""
        return self.holdout_dir is not None and self.holdout_dir.is_dir()

    def read_holdout(self) -> list[str]:
        """The text of every holdout document, after checking that none shares a sentence of
        :data:`HOLDOUT_OVERLAP_WORDS` or more words with the corpus (a member text cannot stand for a non-member)."""
        files = self.holdout_files()
        texts = [read_text_file(p, f"pack {self.name!r}: {self._rel(p)}") for p in files]
        check_holdout_overlap(self.corpus_files(), files, self.name, self._rel)
        return texts

    def has_probes(self, kind: str) -> bool:
        """Whether the manifest declares probes of this kind and the file exists."""
        return kind in self.probe_paths and self.probe_paths[kind].is_file()

    def probe_file(self, kind: str) -> Path:
        """Path of the probe file of one kind; an error names what is missing."""
        if kind not in self.probe_paths:
            raise WorkbenchError(
                f"pack {self.name!r}: pack.json declares no '{kind}' probes (known: {', '.join(self.probe_paths) or 'none'})"
            )
        path = self.probe_paths[kind]
        if not path.is_file():
            raise WorkbenchError(f"pack {self.name!r}: probe file {self._rel(path)} is missing (expected at {path})")
        return path

    def probes(self, kind: str) -> list[Probe]:
        """The validated probes of one kind (see :func:`load_probes`)."""
        path = self.probe_file(kind)
        return load_probes(path, kind, display=f"pack {self.name!r}: {self._rel(path)}")

    def anchor_terms(self) -> list[str]:
        """The anchored expressions (keys of anchors.json)."""
        return load_anchor_terms(self)

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def list_packs() -> list[str]:
    """Names of the bundled packs (folders under ``workbench/packs`` that hold a pack.json)."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "pack.json").is_file())


def load_pack(name_or_path: str | Path | Pack) -> Pack:
    """A bundled pack by name, or a pack folder by path (a folder holding pack.json)."""
    if isinstance(name_or_path, Pack):
        return name_or_path
    raw = str(name_or_path)
    path = Path(raw).expanduser()
    if path.name == "pack.json" and path.is_file():
        path = path.parent
    if not path.is_dir():
        bundled = BUNDLED_DIR / raw
        if "/" not in raw and "\\" not in raw and bundled.is_dir():
            path = bundled
        else:
            available = ", ".join(list_packs()) or "none"
            raise WorkbenchError(
                f"unknown pack {raw!r}: no such folder, and no bundled pack by that name (bundled: {available})"
            )
    manifest_path = path / "pack.json"
    if not manifest_path.is_file():
        raise WorkbenchError(f"pack folder {path} has no pack.json; write one as described in docs/formats.md")
    manifest = read_json_file(manifest_path)
    if not isinstance(manifest, dict):
        raise WorkbenchError(f"{manifest_path}: expected a JSON object")

    def text_field(key: str, default: str) -> str:
        value = manifest.get(key, default)
        if not isinstance(value, str):
            raise WorkbenchError(f"{manifest_path}: field '{key}' must be a string, got {type(value).__name__}")
        return value

    probes = manifest.get("probes", DEFAULT_PROBES)
    if not isinstance(probes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in probes.items()):
        raise WorkbenchError(f"{manifest_path}: field 'probes' must map probe kinds to file paths (strings)")
    version = manifest.get("version", 1)
    if not isinstance(version, int):
        raise WorkbenchError(f"{manifest_path}: field 'version' must be an integer")
    name = text_field("name", path.name)
    allow = _allow_overlap(manifest.get("allow_overlap", []), manifest_path)
    return Pack(
        name=name,
        root=path.resolve(),
        title=text_field("title", name.replace("_", " ").title()),
        description=text_field("description", ""),
        version=version,
        corpus_dir=path.resolve() / text_field("corpus", "corpus"),
        anchors_path=path.resolve() / text_field("anchors", "anchors.json"),
        retain_dir=path.resolve() / text_field("retain", "retain"),
        holdout_dir=path.resolve() / text_field("holdout", "") if manifest.get("holdout") else None,
        probe_paths={kind: path.resolve() / rel for kind, rel in probes.items()},
        manifest=manifest,
        allow_overlap=allow,
    )


def _allow_overlap(value: Any, manifest_path: Path) -> dict[str, str]:
    """pack.json's ``allow_overlap``: a list of {"id": probe id, "reason": why} -> {id: reason}."""
    where = f"{manifest_path}: field 'allow_overlap'"
    if not isinstance(value, list):
        raise WorkbenchError(f'{where} must be a list of {{"id": ..., "reason": ...}} objects')
    out: dict[str, str] = {}
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"id", "reason"}:
            raise WorkbenchError(f"{where}: entry {i + 1} must be an object with exactly the keys 'id' and 'reason'")
        pid, reason = entry["id"], entry["reason"]
        if not isinstance(pid, str) or not pid.strip() or not isinstance(reason, str) or not reason.strip():
            raise WorkbenchError(
                f"{where}: entry {i + 1} needs a non-empty probe 'id' and a non-empty 'reason' "
                "(why the probe still measures knowledge)"
            )
        if pid in out:
            raise WorkbenchError(f"{where}: probe {pid!r} is listed twice")
        out[pid] = reason
    return out


def _string_list(value: Any, where: str, key: str, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkbenchError(f"{where}: field '{key}' must be a list of strings")
    if not allow_empty and (not value or not all(v.strip() for v in value)):
        raise WorkbenchError(f"{where}: field '{key}' must be a non-empty list of non-empty strings")
    return tuple(value)


def _text(obj: dict, key: str, where: str) -> str:
    if key not in obj:
        raise WorkbenchError(f"{where}: missing field '{key}'")
    if not isinstance(obj[key], str) or not obj[key].strip():
        raise WorkbenchError(f"{where}: field '{key}' must be a non-empty string")
    return obj[key]


def _split_and_fact(obj: dict, where: str) -> tuple[str, str | None]:
    split = obj.get("split", "heldout")
    if split not in SPLITS:
        raise WorkbenchError(f"{where}: field 'split' must be 'dev' or 'heldout', got {split!r}")
    fact = obj.get("fact")
    if fact is not None and (not isinstance(fact, str) or not fact.strip()):
        raise WorkbenchError(f"{where}: field 'fact' must be a non-empty string")
    return split, fact


def _parse_answer_probe(obj: Any, kind: str, where: str) -> QAProbe | TriviaProbe | VerbatimProbe:
    """A QA (TOFU's layout), knowmem, trivia or verbmem probe; see docs/formats.md."""
    if not isinstance(obj, dict):
        raise WorkbenchError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if kind == VERBMEM_KIND:
        split, fact = _split_and_fact(obj, where)
        return VerbatimProbe(
            id=_text(obj, "id", where),
            prompt=_text(obj, "prompt", where),
            continuation=_text(obj, "continuation", where),
            split=split,
            source=where,
            fact=fact,
        )
    ident, question = _text(obj, "id", where), _text(obj, "question", where)
    if kind == KNOWMEM_KIND:
        split, fact = _split_and_fact(obj, where)
        return QAProbe(
            id=ident,
            question=question,
            answer=_text(obj, "answer", where),
            paraphrased_answer="",
            perturbed_answers=(),
            split=split,
            kind=kind,
            source=where,
            fact=fact,
        )
    if kind == "qa" or kind == TRIVIA_KIND:
        _text(obj, "split", where)  # the target's questions name their split: tuning must not see a heldout fact
    split, fact = _split_and_fact(obj, where)
    if kind == TRIVIA_KIND:
        true, false = _text(obj, "true_answer", where), _text(obj, "false_answer", where)
        if true.strip().lower() == false.strip().lower():
            raise WorkbenchError(f"{where}: 'true_answer' and 'false_answer' are the same; give a wrong answer")
        return TriviaProbe(
            id=ident,
            question=question,
            true_answer=true,
            false_answer=false,
            split=split,
            kind=kind,
            source=where,
            fact=fact,
        )
    answer, para = _text(obj, "answer", where), _text(obj, "paraphrased_answer", where)
    perturbed = obj.get("perturbed_answer")
    if perturbed is None:
        raise WorkbenchError(
            f"{where}: missing field 'perturbed_answer': a QA probe needs a list of at least "
            f"{MIN_PERTURBED} false answers (the truth ratio compares them with the paraphrased answer)"
        )
    if isinstance(perturbed, str):
        perturbed = [perturbed]
    if not isinstance(perturbed, list) or not all(isinstance(v, str) and v.strip() for v in perturbed):
        raise WorkbenchError(f"{where}: field 'perturbed_answer' must be a list of non-empty strings")
    if len(perturbed) < MIN_PERTURBED:
        raise WorkbenchError(
            f"{where}: field 'perturbed_answer' has {len(perturbed)} false answer(s); give at least "
            f"{MIN_PERTURBED} (the truth ratio compares them with the paraphrased answer)"
        )
    return QAProbe(
        id=ident,
        question=question,
        answer=answer,
        paraphrased_answer=para,
        perturbed_answers=tuple(perturbed),
        split=split,
        kind=kind,
        source=where,
        fact=fact,
    )


def parse_probe(obj: Any, kind: str, where: str) -> Probe:
    """One probe of a probe file of ``kind``, validated (``where`` names the file and line in messages)."""
    return _parse_probe(obj, kind, where)


def _parse_probe(obj: Any, kind: str, where: str) -> Probe:
    if kind in QA_KINDS or kind in (TRIVIA_KIND, KNOWMEM_KIND, VERBMEM_KIND):
        return _parse_answer_probe(obj, kind, where)
    if not isinstance(obj, dict):
        raise WorkbenchError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    completion = kind == COMPLETION_KIND
    required = ["id", "prompt"] + (["references", "subtlety"] if completion else ["targets"])
    if kind == "probability":
        required.append("split")
    if kind in ("collateral", "general"):
        required.append("domain")
    for key in required:
        if key not in obj:
            raise WorkbenchError(f"{where}: missing field '{key}'")
    for key in ("id", "prompt"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise WorkbenchError(f"{where}: field '{key}' must be a non-empty string")
    prompt = obj["prompt"]
    split, fact = _split_and_fact(obj, where)
    if completion:
        subtlety = obj["subtlety"]
        if isinstance(subtlety, bool) or not isinstance(subtlety, int) or not 1 <= subtlety <= 10:
            raise WorkbenchError(f"{where}: field 'subtlety' must be an integer from 1 to 10, got {subtlety!r}")
        return CompletionProbe(
            id=obj["id"],
            prompt=prompt,
            references=_string_list(obj["references"], where, "references"),
            subtlety=subtlety,
            split=split,
            kind=kind,
            source=where,
            fact=fact,
        )
    if prompt != prompt.rstrip():
        # A trailing space would be tokenized into the prompt and make every target token unlikely.
        raise WorkbenchError(
            f"{where}: field 'prompt' ends with whitespace; move the space into the targets (\" Hermione\")"
        )
    domain = obj.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain):
        raise WorkbenchError(f"{where}: field 'domain' must be a non-empty string")
    paraphrases = _string_list(obj.get("paraphrases", []), where, "paraphrases", allow_empty=True)
    for para in paraphrases:
        if not para.strip() or para != para.rstrip():
            raise WorkbenchError(f"{where}: every paraphrase must be non-empty and end without whitespace")
    tagged = obj.get("answer_kind")
    if tagged is not None and tagged not in TAGGED_ANSWER_KINDS:
        raise WorkbenchError(
            f"{where}: field 'answer_kind' must be one of {', '.join(TAGGED_ANSWER_KINDS)}, got {tagged!r}"
        )
    return NextTokenProbe(
        id=obj["id"],
        prompt=prompt,
        targets=_string_list(obj["targets"], where, "targets"),
        split=split,
        domain=domain,
        paraphrases=paraphrases,
        kind=kind,
        source=where,
        fact=fact,
        answer_kind=tagged,
    )


def load_probes(path: str | Path, kind: str, display: str | None = None) -> list[Probe]:
    """Read and validate a probe JSONL file.

    ``kind``: ``'completion'`` for the completion schema; ``'qa'`` and ``'retain_qa'`` for TOFU's question
    layout, ``'trivia'`` for two-answer questions; any other kind (``probability``, ``collateral``,
    ``general`` or a custom name) uses the next-token schema. ``split`` is required for ``probability``, and
    ``domain`` for ``collateral`` and ``general``. Blank lines are skipped. Errors name file, line and field.
    """
    path = Path(path)
    shown = display or str(path)
    require_file(path, f"probe file {shown}")
    probes: list[Probe] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path, shown):
        where = f"{shown} line {lineno}"
        probe = _parse_probe(obj, kind, where)
        if probe.id in seen:
            raise WorkbenchError(f"{where}: duplicate id {probe.id!r} (first used on line {seen[probe.id]})")
        seen[probe.id] = lineno
        probes.append(probe)
    if not probes:
        raise WorkbenchError(f"probe file {shown} has no probes; write one JSON object per line (docs/formats.md)")
    _check_fact_splits(probes, shown)
    return probes


def _check_fact_splits(probes: list[Probe], shown: str) -> None:
    """A fact's probes must all sit in one split: tuning on dev must not see a heldout fact."""
    first: dict[str, Probe] = {}
    for p in probes:
        fact = getattr(p, "fact", None)
        if fact is None:
            continue
        other = first.setdefault(fact, p)
        if other.split != p.split:
            raise WorkbenchError(
                f"{shown}: fact {fact!r} spans both splits: {other.id} ({other.source}) is {other.split}, {p.id} "
                f"({p.source}) is {p.split}; put every probe of a fact in one split"
            )


_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def _sentences(text: str) -> list[tuple[int, tuple[str, ...]]]:
    """(line number, lowercased words) of each sentence of a text."""
    out = []
    pos = 0
    for piece in _SENTENCE.split(text):
        start = text.find(piece, pos) if piece else pos
        pos = start + len(piece)
        words = tuple(w.lower() for w in _WORD.findall(piece))
        if words:
            out.append((text.count("\n", 0, max(start, 0)) + 1, words))
    return out


def check_holdout_overlap(
    corpus_files: list[Path], holdout_files: list[Path], pack_name: str = "", shown=lambda p: str(p)
) -> None:
    """An error if a holdout sentence of :data:`HOLDOUT_OVERLAP_WORDS` or more words also stands in the corpus
    (compared in lowercase, word by word): membership inference needs text the target never contained."""
    seen: dict[tuple[str, ...], Path] = {}
    for path in corpus_files:
        for _, words in _sentences(read_text_file(path)):
            if len(words) >= HOLDOUT_OVERLAP_WORDS:
                seen.setdefault(words, path)
    for path in holdout_files:
        for line, words in _sentences(read_text_file(path)):
            if len(words) >= HOLDOUT_OVERLAP_WORDS and words in seen:
                where = f"pack {pack_name!r}: " if pack_name else ""
                raise WorkbenchError(
                    f'{where}holdout file {shown(path)} line {line}: the sentence "{" ".join(words[:12])}..." also '
                    f"stands in the corpus ({shown(seen[words])}); holdout text must be text the corpus does not "
                    "contain: rewrite or remove it"
                )


def load_anchor_terms(pack: Pack | str | Path) -> list[str]:
    """The anchored expressions (keys) of a pack's anchors.json, or of an anchors.json path, in file order
    (read and validated by :func:`workbench.anchors.load_anchor_map`, unconsolidated: every key counts)."""
    if isinstance(pack, Pack):
        path = pack.anchors_path
    else:
        path = Path(pack)
        if path.is_dir() or path.name == "pack.json" or not path.suffix:
            path = load_pack(pack).anchors_path
    return list(load_anchor_map(path, do_consolidate=False).entries)
