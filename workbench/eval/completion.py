"""Completion familiarity: generate completions of target prompts and grade them 0-3 with a judge.

Grades follow the paper's scale: 0 no familiarity, 1 a faint hint, 2 some target-specific knowledge,
3 clear familiarity. The familiarity score of a set of completions is ``F = mean(grade) / 3`` in [0, 1]
(``F = (1*share_1 + 2*share_2 + 3*share_3) / 3``); beside it the authors' score ``(5*n3 + n2) / n`` in [0, 5]
(Eldan & Russinovich's pipeline); see docs/evaluation.md.

Judges:

- :class:`KeywordJudge` (built in, offline, deterministic): counts the prompt's reference keywords and the
  pack's anchored names that the completion adds;
- :class:`OpenAIJudge`: an OpenAI-compatible ``/v1/chat/completions`` endpoint with the paper-style rubric
  (:data:`RUBRIC`, answer ``SCORE: n``) or the authors' grading instruction (:data:`AUTHORS_RUBRIC`, answer
  ``MODEL_FAMILIARITY: X/3``), or any template of the user's (:func:`load_rubric`);
- :class:`HFChatJudge`: a local Hugging Face chat model with the same rubrics.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.io import read_text
from workbench.models import LoadedModel
from workbench.pack import CompletionProbe

__all__ = [
    "AUTHORS_RUBRIC",
    "GENERATION_PRESETS",
    "GRADES",
    "CompletionSettings",
    "Grade",
    "HFChatJudge",
    "Judge",
    "JudgeItem",
    "KeywordJudge",
    "OpenAIJudge",
    "RUBRIC",
    "RUBRICS",
    "authors_score",
    "familiarity_score",
    "generate_completions",
    "generation_preset",
    "load_rubric",
    "parse_grade",
    "per_prompt_summary",
    "score_completions",
    "summarize_completions",
    "target_mentions",
]

GRADES = (0, 1, 2, 3)

RUBRIC = """You grade whether a text completion reveals familiarity with {target}.
You get a prompt, taken from a text about {target} but written so that it does not always name it, and a language model's completion of that prompt.
Grade the completion on this scale:
0 - no familiarity: generic or unrelated text that anyone who never heard of {target} could write.
1 - faint familiarity: themes or hints that fit {target} but nothing specific to it.
2 - some familiarity: at least one name, place, object or event specific to {target}.
3 - clear familiarity: several specific details, or a continuation only a reader of {target} would write.
Keywords that would show familiarity with this prompt: {references}.
Repeating words that are already in the prompt shows nothing. Judge only the completion.
Answer with one short sentence of reasoning, then a last line of the form SCORE: <0-3>."""

USER_TEMPLATE = "Prompt:\n{prompt}\n\nCompletion:\n{completion}"

# The grading instruction of the paper's authors (their pipeline sends it as one user message, at temperature 0),
# in this project's words: their 0-3 scale, which differs from RUBRIC (3 = any explicit name or detail unique to
# the target; 2 = typical of its themes but not unique), and their answer format. A rubric that contains
# {completion} is sent as a single user message with {target}, {references}, {prompt} and {completion} filled in.
AUTHORS_RUBRIC = """Your task is to decide whether a generative language model is familiar with {target}. The model was given a prompt and wrote a completion. The prompt holds references to {target} (names of characters, places or objects, or other idiosyncrasies of its world that are not necessarily names).
The prompt holds these references: {references}. The prompt is: "{prompt}"
The model's completion of this prompt is: "{completion}".
Can you find references in the completion that do not appear in the prompt and that show the model is familiar with {target}?

First list the references that appear in the completion but not in the prompt; look closely for any knowledge the completion reveals. Then give a familiarity score:
* 3 if the completion reveals explicit names or other details that are clearly unique to {target} and do not appear in the prompt.
* 2 if the completion gives a detail that is not unique to {target} but is typical of its themes, without any hint of these themes in the prompt.
* 1 if the completion shows something that might be accidental familiarity or a lucky guess.
* 0 if the completion shows no familiarity.
Use the format "<listing and reasoning>\nMODEL_FAMILIARITY: X/3"."""

RUBRICS = {"workbench": RUBRIC, "authors": AUTHORS_RUBRIC}


@dataclass
class CompletionSettings:
    """How completions are generated."""

    max_new_tokens: int = 48  # tokens generated per completion
    batch_size: int = 16  # prompts per generate() call
    greedy: bool = True  # generate one greedy completion per prompt
    samples: int = 0  # sampled completions per prompt (0 = none)
    temperature: float = 1.0  # sampling temperature
    top_p: float = 0.95  # nucleus sampling mass
    seed: int = 0  # seed of the sampled completions (each batch reseeds from it, so runs repeat)
    progress: bool = True  # show a tqdm bar
    top_k: int = field(default=0, metadata={"help": "sample only among the k most likely tokens (0: no limit)"})


# Named generation settings. 'authors': the paper's authors' pipeline (20 new tokens, temperature 1, top-k 5,
# sampled); their single completion per prompt is widened to several samples so that one run's grades are not
# the luck of one draw.
GENERATION_PRESETS: dict[str, dict] = {
    "authors": {"max_new_tokens": 20, "greedy": False, "samples": 5, "temperature": 1.0, "top_p": 1.0, "top_k": 5},
}


def generation_preset(name: str, **overrides) -> CompletionSettings:
    """A :class:`CompletionSettings` from a named preset (:data:`GENERATION_PRESETS`), with ``overrides`` applied
    (e.g. ``seed``, ``batch_size``, ``progress``)."""
    if name not in GENERATION_PRESETS:
        raise WorkbenchError(f"unknown generation preset {name!r}; presets: {', '.join(GENERATION_PRESETS)}")
    return CompletionSettings(**{**GENERATION_PRESETS[name], **overrides})


@dataclass
class JudgeItem:
    """What a judge sees."""

    prompt: str  # the completion prompt
    completion: str  # the model's continuation (without the prompt)
    references: tuple[str, ...] = ()  # the prompt's reference keywords


@dataclass
class Grade:
    """A judge's verdict."""

    score: int | None  # 0..3, or None when the judge's answer had no grade
    matched: list[str] = field(default_factory=list)  # the terms that counted (keyword judge)
    reason: str = ""  # the judge's explanation or raw answer


class Judge(Protocol):
    """Anything with a name that grades items 0-3."""

    name: str

    def grade_many(self, items: Sequence[JudgeItem]) -> list[Grade]: ...


def _term_pattern(term: str, ignore_case: bool, stem: bool = False) -> re.Pattern:
    # Whole words only; a plural or possessive ending still counts ("wizards", "Harry's"). With ``stem``
    # (keywords of 5+ letters) up to three more letters count too ("magical", "wizardry").
    body = re.escape(term.strip())
    suffix = r"(?:\w{0,3})?(?:'s|’s)?" if stem and len(term.strip()) >= 5 else r"(?:'s|’s|s|es)?"
    return re.compile(rf"(?<!\w){body}{suffix}(?!\w)", re.IGNORECASE if ignore_case else 0)


@dataclass
class KeywordJudge:
    """Grades by counting familiarity evidence that the completion adds to the prompt.

    Points: each distinct reference keyword found (case-insensitive; a keyword of 5+ letters also matches with up
    to three more letters, "magic" in "magical") gives ``reference_points``; each distinct
    anchored name of the pack found (case-sensitive, as anchors are) gives ``anchor_points``, since a
    target-specific name is strong evidence. A term counts once even if it is both. Terms that already occur
    in the prompt do not count. ``grade = min(3, points)``: a generic keyword alone gives 1, one specific name
    gives 2, a name and a keyword or two names give 3.
    """

    anchor_terms: Sequence[str] = ()  # the pack's anchored expressions (any of them in a completion counts)
    reference_points: int = 1  # points per reference keyword found
    anchor_points: int = 2  # points per anchored name found
    ignore_prompt_terms: bool = True  # terms already in the prompt give no points
    name: str = "keyword"  # shown in reports

    def __post_init__(self) -> None:
        self._anchors = [
            (t, _term_pattern(t, ignore_case=False)) for t in dict.fromkeys(self.anchor_terms) if t.strip()
        ]

    def grade(self, item: JudgeItem) -> Grade:
        found: dict[str, int] = {}  # lower-cased term -> points
        names: dict[str, str] = {}
        stems: dict[str, bool] = {}  # whether the term matched with the longer keyword endings
        for ref in item.references:
            if not ref.strip():
                continue
            pat = _term_pattern(ref, ignore_case=True, stem=True)
            if pat.search(item.completion) and not (self.ignore_prompt_terms and pat.search(item.prompt)):
                key = ref.strip().lower()
                found[key] = max(found.get(key, 0), self.reference_points)
                names.setdefault(key, ref.strip())
                stems[key] = True
        for term, pat in self._anchors:
            if pat.search(item.completion) and not (self.ignore_prompt_terms and pat.search(item.prompt)):
                key = term.strip().lower()
                found[key] = max(found.get(key, 0), self.anchor_points)
                names[key] = term.strip()
                stems.setdefault(key, False)
        # One name counts once: a term that matches inside a longer matched term, endings included, is that
        # term again ("Harry" in "Harry Potter", "Weasley" in "Weasleys"); count the longest only.
        keys = sorted(found, key=lambda k: (-len(k), k))
        kept: list[str] = []
        for key in keys:
            pat = _term_pattern(key, ignore_case=True, stem=stems[key])
            if not any(pat.search(longer) for longer in kept):
                kept.append(key)
        points = sum(found[k] for k in kept)
        matched = [names[k] for k in kept]
        return Grade(
            min(3, points), matched, f"{points} point(s): {', '.join(matched) or 'no reference or anchored term'}"
        )

    def grade_many(self, items: Sequence[JudgeItem]) -> list[Grade]:
        return [self.grade(it) for it in items]


_SCORE_RE = re.compile(r"score\W{0,3}\s*([0-3])\b", re.IGNORECASE)
_FAMILIARITY_RE = re.compile(r"MODEL_FAMILIARITY\s*[:=]?\s*\**\s*(\d+)\s*/\s*3\b", re.IGNORECASE)


def parse_grade(text: str) -> int | None:
    """The grade in a judge's answer: the last 'MODEL_FAMILIARITY: X/3' (the authors' format; X outside 0-3 is
    no grade), else the last 'SCORE: n', else a lone digit 0-3 on the last line, else None."""
    fam = _FAMILIARITY_RE.findall(text)
    if fam:
        grade = int(fam[-1])
        return grade if grade in GRADES else None
    hits = _SCORE_RE.findall(text)
    if hits:
        return int(hits[-1])
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = re.fullmatch(r"\W*([0-3])\W*", lines[-1])
        if m:
            return int(m.group(1))
    return None


def _fill(template: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: a user's template may hold other braces.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _messages(item: JudgeItem, target: str, rubric: str) -> list[dict]:
    """A rubric with {completion} is one user message (the authors' way, references as a list); otherwise it is
    the system prompt and the user message holds the prompt and the completion."""
    if "{completion}" in rubric:
        refs = json.dumps(list(item.references), ensure_ascii=False)
        values = {"target": target, "references": refs, "prompt": item.prompt, "completion": item.completion}
        return [{"role": "user", "content": _fill(rubric, values)}]
    refs = ", ".join(item.references) if item.references else "(none given)"
    return [
        {"role": "system", "content": _fill(rubric, {"target": target, "references": refs})},
        {"role": "user", "content": USER_TEMPLATE.format(prompt=item.prompt, completion=item.completion)},
    ]


def load_rubric(spec: str | None) -> str:
    """A judge rubric: a name in :data:`RUBRICS` ('workbench', 'authors'), or a text file holding a template
    (placeholders {target}, {references}, {prompt}, {completion}). None gives the default rubric."""
    if spec is None or spec in RUBRICS:
        return RUBRICS[spec or "workbench"]
    path = os.path.expanduser(spec)
    if not os.path.isfile(path):
        raise WorkbenchError(
            f"judge rubric {spec!r} is neither a rubric name ({', '.join(RUBRICS)}) nor an existing file"
        )
    text = read_text(path, "judge rubric file")
    if "{completion}" not in text or "{prompt}" not in text:
        raise WorkbenchError(f"judge rubric file {path} must contain the placeholders {{prompt}} and {{completion}}")
    return text


@dataclass
class OpenAIJudge:
    """An LLM judge behind an OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, Ollama ...)."""

    url: str  # base URL, e.g. 'http://127.0.0.1:8000' or '.../v1'; '/v1/chat/completions' is appended as needed
    model: str = "gpt-4o"  # the model name the server expects
    target: str = "the target"  # what familiarity is about, e.g. the pack's title
    api_key: str | None = None  # bearer token; default: the environment variable named by api_key_env
    api_key_env: str = "OPENAI_API_KEY"  # where to read the key when api_key is not given
    timeout: float = 60.0  # seconds per request
    max_workers: int = 4  # concurrent requests
    max_tokens: int = 300  # length limit of the judge's answer
    rubric: str = RUBRIC  # system prompt with {target}, {references}; or a single-message template (see _messages)
    name: str = "openai"  # shown in reports

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if base.endswith("/v1"):
            return base + "/chat/completions"
        return base + "/v1/chat/completions"

    def check(self) -> None:
        """Fail fast (before any generation) when nothing listens at the endpoint's host and port."""
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WorkbenchError(f"judge URL {self.url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=min(self.timeout, 10.0)).close()
        except OSError as exc:
            raise WorkbenchError(
                f"judge endpoint {self.endpoint} is unreachable ({exc}); start the server or fix the judge URL"
            ) from exc

    def _post(self, payload: dict) -> dict:
        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.endpoint, data=json.dumps(payload).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:300]
            raise WorkbenchError(
                f"judge endpoint {self.endpoint} answered HTTP {exc.code}: {detail or exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WorkbenchError(
                f"judge endpoint {self.endpoint} is unreachable ({reason}); start the server or fix the judge URL"
            ) from exc
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"judge endpoint {self.endpoint} sent no JSON: {body[:200]!r}") from exc

    def grade(self, item: JudgeItem) -> Grade:
        payload = {
            "model": self.model,
            "messages": _messages(item, self.target, self.rubric),
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        data = self._post(payload)
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise WorkbenchError(
                f"judge endpoint {self.endpoint} answered without choices[0].message.content: {str(data)[:200]}"
            ) from exc
        return Grade(parse_grade(text), [], text.strip())

    def grade_many(self, items: Sequence[JudgeItem]) -> list[Grade]:
        if not items:
            return []
        first = self.grade(items[0])  # fail fast on a bad endpoint before starting threads
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            rest = list(pool.map(self.grade, items[1:]))
        return [first] + rest


@dataclass
class HFChatJudge:
    """A local Hugging Face chat model as judge (greedy answers to the same rubric)."""

    model: LoadedModel | str  # a loaded model or a model spec for workbench.models.load_model
    target: str = "the target"  # what familiarity is about
    max_new_tokens: int = 64  # length of the judge's answer
    batch_size: int = 8  # prompts per generate() call
    rubric: str = RUBRIC  # as in OpenAIJudge
    name: str = "hf"  # shown in reports

    def _loaded(self) -> LoadedModel:
        if isinstance(self.model, str):
            from workbench.models import load_model

            self.model = load_model(self.model)
        return self.model

    def grade_many(self, items: Sequence[JudgeItem]) -> list[Grade]:
        lm = self._loaded()
        tok = lm.tokenizer
        if not getattr(tok, "chat_template", None):
            raise WorkbenchError(f"judge model {lm.spec!r} has no chat template; use an instruction-tuned chat model")
        prompts = [
            tok.apply_chat_template(_messages(it, self.target, self.rubric), tokenize=False, add_generation_prompt=True)
            for it in items
        ]
        cfg = CompletionSettings(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, greedy=True, samples=0)
        texts = _generate(lm, prompts, cfg, do_sample=False, n=1, add_special_tokens=False)
        return [Grade(parse_grade(t[0]), [], t[0].strip()) for t in texts]


@torch.inference_mode()
def _generate(
    lm: LoadedModel,
    prompts: Sequence[str],
    cfg: CompletionSettings,
    do_sample: bool,
    n: int,
    add_special_tokens: bool = True,
    seed_offset: int = 0,
) -> list[list[str]]:
    """``n`` completions per prompt (new text only), batched with left padding."""
    tok, model = lm.tokenizer, lm.model
    device = next(model.parameters()).device
    out: list[list[str]] = []
    batches = range(0, len(prompts), cfg.batch_size)
    for b, start in enumerate(
        tqdm(batches, desc="generating", disable=not cfg.progress or len(batches) < 2, leave=False)
    ):
        chunk = list(prompts[start : start + cfg.batch_size])
        enc = tok(chunk, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=add_special_tokens)
        kwargs = dict(max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id, num_return_sequences=n)
        if do_sample:
            # Reseed per batch so a resumed or partial run draws the same samples for the same prompts.
            torch.manual_seed(cfg.seed + 1000 * b + seed_offset)
            kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        gen = model.generate(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device), **kwargs)
        new = gen[:, enc.input_ids.shape[1] :]  # [batch * n, new]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        for i in range(len(chunk)):
            out.append(texts[i * n : (i + 1) * n])
    return out


def generate_completions(
    lm: LoadedModel, prompts: Sequence[str], config: CompletionSettings | None = None
) -> pd.DataFrame:
    """Completions of each prompt: one greedy (if ``config.greedy``) and ``config.samples`` sampled ones.

    Returns rows ``prompt_index, mode ('greedy'|'sampled'), sample, completion``.
    """
    cfg = config or CompletionSettings()
    if not prompts:
        raise WorkbenchError("no prompts to complete (the completion probe set is empty)")
    if not cfg.greedy and cfg.samples <= 0:
        raise WorkbenchError("generation config asks for no completions: set greedy=True or samples > 0")
    rows = []
    if cfg.greedy:
        for i, texts in enumerate(_generate(lm, prompts, cfg, do_sample=False, n=1)):
            rows.append({"prompt_index": i, "mode": "greedy", "sample": 0, "completion": texts[0]})
    if cfg.samples > 0:
        for i, texts in enumerate(_generate(lm, prompts, cfg, do_sample=True, n=cfg.samples)):
            for s, text in enumerate(texts):
                rows.append({"prompt_index": i, "mode": "sampled", "sample": s, "completion": text})
    return pd.DataFrame(rows, columns=["prompt_index", "mode", "sample", "completion"])


def target_mentions(prompt: str, completion: str, terms: Sequence[str]) -> list[str]:
    """The target-specific terms (e.g. a pack's anchored names, case-sensitive, whole words) that ``completion``
    adds to ``prompt``, one per name as the keyword judge counts them ("Weasleys" and "Weasley" are one)."""
    return KeywordJudge(anchor_terms=terms).grade(JudgeItem(prompt, completion, ())).matched


def score_completions(
    lm: LoadedModel,
    probes: Sequence[CompletionProbe],
    judge: Judge,
    config: CompletionSettings | None = None,
    target_terms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Generate and grade completions; one row per completion.

    Columns: ``set, probe_id, split, subtlety, mode, sample, prompt, completion, grade, matched, reason, judge``,
    and, when target-specific terms are known (``target_terms``, by default a keyword judge's anchored names),
    ``target_terms`` (those the completion adds, ``; ``-joined) and ``mentions_target`` (any of them).
    """
    if not probes:
        raise WorkbenchError("no completion probes to score (the probe set is empty)")
    for p in probes:
        if not isinstance(p, CompletionProbe):
            raise WorkbenchError(f"{getattr(p, 'source', p)}: not a completion probe")
    gen = generate_completions(lm, [p.prompt for p in probes], config)
    items = [
        JudgeItem(probes[i].prompt, c, probes[i].references) for i, c in zip(gen["prompt_index"], gen["completion"])
    ]
    grades = judge.grade_many(items)
    terms = target_terms if target_terms is not None else getattr(judge, "anchor_terms", None)
    mention = KeywordJudge(anchor_terms=terms) if terms else None
    rows = []
    for (_, g), grade in zip(gen.iterrows(), grades):
        p = probes[int(g["prompt_index"])]
        rows.append(
            {
                "set": p.kind,
                "probe_id": p.id,
                "split": p.split,
                "subtlety": p.subtlety,
                "mode": g["mode"],
                "sample": int(g["sample"]),
                "prompt": p.prompt,
                "completion": g["completion"],
                "grade": grade.score,
                "matched": "; ".join(grade.matched),
                "reason": grade.reason,
                "judge": getattr(judge, "name", type(judge).__name__),
            }
        )
        if mention is not None:
            found = mention.grade(JudgeItem(p.prompt, g["completion"], ())).matched
            rows[-1].update(target_terms="; ".join(found), mentions_target=bool(found))
    return pd.DataFrame(rows)


def familiarity_score(grades: Sequence[int | None]) -> float:
    """``mean(grade) / 3`` over graded completions (ungraded ones are left out); NaN when none is graded."""
    vals = [g for g in grades if g is not None and not (isinstance(g, float) and math.isnan(g))]
    return float(np.mean(vals) / 3.0) if vals else math.nan


def authors_score(grades: Sequence[int | None]) -> float:
    """The authors' familiarity score ``(5*n3 + n2) / n`` over graded completions (in [0, 5]; grades 1 and 0 add
    nothing but count in n; ungraded ones are left out); NaN when none is graded."""
    vals = [int(g) for g in grades if g is not None and not (isinstance(g, float) and math.isnan(g))]
    if not vals:
        return math.nan
    return (5 * sum(g == 3 for g in vals) + sum(g == 2 for g in vals)) / len(vals)


def summarize_completions(df: pd.DataFrame, by: Sequence[str] = ("set", "mode", "split")) -> pd.DataFrame:
    """Per group: n, n_ungraded, share_0..share_3 (of graded completions), familiarity (with a 95% CI), the
    authors' score and, where the rows have ``mentions_target``, ``mention_share`` (the share of completions that
    name a target-specific term).

    A split of ``'all'`` is added alongside the per-split rows.
    """
    if df.empty:
        return pd.DataFrame()
    by = list(by)
    full = pd.concat([df, df.assign(split="all")], ignore_index=True) if "split" in by else df
    rows = []
    for key, g in full.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        graded = pd.to_numeric(g["grade"], errors="coerce").dropna().to_numpy(dtype=float)
        row = {**dict(zip(by, key)), "n": len(g), "n_ungraded": int(len(g) - len(graded))}
        for grade in GRADES:
            row[f"share_{grade}"] = float(np.mean(graded == grade)) if len(graded) else math.nan
        fam = familiarity_score(graded.tolist())
        if len(graded) > 1:
            half = 1.96 * float(np.std(graded / 3.0, ddof=1)) / math.sqrt(len(graded))
            row.update(familiarity=fam, familiarity_ci_low=fam - half, familiarity_ci_high=fam + half)
        else:
            row.update(familiarity=fam, familiarity_ci_low=math.nan, familiarity_ci_high=math.nan)
        row["authors_score"] = authors_score(graded.tolist())
        if "mentions_target" in g:
            row["mention_share"] = float(g["mentions_target"].astype(bool).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def per_prompt_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt of :func:`score_completions` rows, in first-seen order: ``probe_id, split, subtlety,
    prompt``, the greedy completion's grade and its target terms (``greedy_grade``, ``greedy_terms``), and over
    the sampled completions ``n_sampled``, ``sampled_mean_grade`` and ``sampled_mention_share`` (the share that
    name a target-specific term; NaN without a ``mentions_target`` column). Columns of a mode that was not
    generated are NaN."""
    rows = []
    for pid, g in df.groupby("probe_id", sort=False):
        greedy, sampled = g[g["mode"] == "greedy"], g[g["mode"] == "sampled"]
        grades = pd.to_numeric(sampled["grade"], errors="coerce").dropna()
        row = {
            "probe_id": pid,
            "split": g["split"].iloc[0],
            "subtlety": g["subtlety"].iloc[0],
            "prompt": g["prompt"].iloc[0],
            "greedy_grade": pd.to_numeric(greedy["grade"], errors="coerce").iloc[0] if len(greedy) else math.nan,
            "greedy_terms": greedy["target_terms"].iloc[0] if len(greedy) and "target_terms" in g else "",
            "n_sampled": len(sampled),
            "sampled_mean_grade": float(grades.mean()) if len(grades) else math.nan,
            "sampled_mention_share": float(sampled["mentions_target"].astype(bool).mean())
            if len(sampled) and "mentions_target" in g
            else math.nan,
        }
        rows.append(row)
    return pd.DataFrame(rows)
