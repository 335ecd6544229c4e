"""Proposed alternatives for anchored terms: generic expressions a reader who never met the target would find
natural in the same contexts, of the same kind (a person's name for a person, a place for a place, a common
noun for a thing). Proposals are shown to a curator for approval (the anchor editor), never written silently.

A proposer is a callable ``(keys, contexts) -> {key: [alternatives]}``; ``contexts[key]`` lists (left, right)
texts around occurrences of the key in the corpus (:meth:`AnchorEditor.contexts
<workbench.widgets.AnchorEditor.contexts>`).

- :class:`OfflineProposer`: the baseline model itself, no endpoint. For each context it reads the text before
  the key (other anchors already translated to their generic alternatives), takes the model's likely next words
  there, keeps those of the key's kind (capitalised for a name, lower-case for a thing; never a word of the key or
  of another key), completes each to whole words, and ranks them by their mean log-probability over the contexts.
- :class:`EndpointProposer`: any OpenAI-compatible chat endpoint (the paper used GPT-4), batched over many keys
  per request like the authors' pipeline; it reuses the evaluation judge's HTTP client
  (:class:`workbench.eval.completion.OpenAIJudge`). Time-outs and answers that are not the requested JSON give
  one clear :class:`~workbench.errors.WorkbenchError`.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workbench.anchors import AnchorMap
from workbench.errors import WorkbenchError

__all__ = ["OfflineProposer", "EndpointProposer", "key_kind", "parse_proposals", "PROMPT"]

Contexts = Mapping[str, Sequence[tuple[str, str]]]

# capitalised words that are not names (sentence openers, pronouns, titles alone)
_NOT_NAMES = frozenset(
    "The A An And But Or If When While As At In On Of For From To With By After Before Then There Here This That "
    "These Those It Its He She His Her Him They Them Their We Our You Your I My Me Mr Mrs Ms Dr Sir Lady Lord "
    "Professor One Two Three What Who Why How Where Which Yes No Not So Also Some Any Every Each All However Now "
    "Another Since Although Because Meanwhile Later Soon Once Still Yet Even Just New".split()
)
_PARTICLES = frozenset({"of", "the", "de", "du", "la", "le", "von", "van", "der", "da", "di", "del"})
_STOP = frozenset(
    "the a an and but or if of for from to with by at in on as is was be been are were it its he she his her him "
    "they them their we our you your i my me this that these those not no so also some any every each all one "
    "what who why how where which there here then than very more most much many other such only own same".split()
)


def key_kind(key: str) -> str:
    """'name' when every word of the key is capitalised (particles aside), else 'thing'."""
    words = key.split()
    caps = [w for w in words if w not in _PARTICLES]
    return "name" if caps and all(w[:1].isupper() for w in caps) else "thing"


def _clean(key: str, alts, banned: set[str], n: int) -> list[str]:
    out: list[str] = []
    for a in alts if isinstance(alts, list) else [alts]:
        if not isinstance(a, str):
            continue
        a = " ".join(a.split()).strip(" .,;:\"'")
        if not a or a == key or a.lower() in banned or a in out or len(a) > 60:
            continue
        if any(w.lower() in banned for w in a.split() if w.lower() not in _PARTICLES):
            continue  # a word of the key or of another key ("Harry Potter" for "Pansy Parkinson")
        out.append(a)
    return out[:n]


# -- offline ------------------------------------------------------------------------------------------------------
@dataclass
class OfflineProposer:
    """Alternatives from the baseline model's own likely fillers at the key's place (see the module docstring).

    ``model``: a :class:`~workbench.models.LoadedModel` (the baseline; on CPU the embedded SmolLM2 takes about a
    second or two per key). ``anchors``: the current map (other keys are translated in the contexts, and no key
    or word of a key is proposed)."""

    model: object
    anchors: AnchorMap | None = None
    n: int = 4  # alternatives per key
    top_k: int = 40  # candidate first tokens read per key
    max_context_tokens: int = 64  # text before the key that the model reads
    max_contexts: int = 3
    name: str = "offline"

    def __call__(self, keys: Sequence[str], contexts: Contexts) -> dict[str, list[str]]:
        from tqdm.auto import tqdm

        out = {}
        for key in tqdm(list(keys), desc="proposing", unit="key", disable=len(keys) < 4):
            out[key] = self.propose_one(key, list(contexts.get(key, ()))[: self.max_contexts])
        return out

    def _banned(self, key: str) -> set[str]:
        banned = {key.lower(), *(w.lower() for w in key.split())}
        if self.anchors is not None:
            for k in self.anchors.entries:
                banned.add(k.lower())
                banned.update(w.lower() for w in k.split() if w not in _PARTICLES)
        return banned

    def _prompts(self, key: str, contexts: Sequence[tuple[str, str]]) -> list[str]:
        amap = self.anchors.without(key) if self.anchors is not None and key in self.anchors.entries else self.anchors
        prompts = []
        for left, _right in contexts:
            cut = left.rfind(key)
            if cut >= 0:  # an earlier mention would be copied: read only what follows it
                left = left[cut + len(key) :]
            if amap is not None:
                left = amap.translate(left)
            prompts.append(left)
        return prompts or [""]

    def propose_one(self, key: str, contexts: Sequence[tuple[str, str]]) -> list[str]:
        import torch

        tok, model = self.model.tokenizer, self.model.model
        kind, n_words = key_kind(key), len(key.split())
        banned = self._banned(key)
        prompts = self._prompts(key, contexts)
        spaced = [p.endswith((" ", "\t")) or not p for p in prompts]
        ids = [tok(p.rstrip(" \t"), add_special_tokens=False)["input_ids"][-self.max_context_tokens :] for p in prompts]
        ids = [x or [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id] for x in ids]
        device = next(model.parameters()).device

        def next_logprobs(seqs: list[list[int]]) -> torch.Tensor:
            width = max(len(s) for s in seqs)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            x = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)  # left padding
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(input_ids=x, attention_mask=mask, position_ids=pos).logits[:, -1].float()
            return torch.log_softmax(logits, -1)

        first = next_logprobs(ids)  # [contexts, vocab]
        mean = first.mean(0)
        cands: list[tuple[int, float]] = []
        for t in mean.topk(min(self.top_k * 4, mean.numel())).indices.tolist():
            piece = tok.decode([t])
            word = piece.strip()
            if len(word) < 2 or not word[0].isalpha() or (piece[:1] == " ") != spaced[0]:
                continue
            if (kind == "name") != word[0].isupper() or word in _NOT_NAMES or word.lower() in _STOP:
                continue
            cands.append((t, float(mean[t])))
            if len(cands) >= self.top_k:
                break
        if not cands:
            return []
        # complete each candidate to whole words in the first context (a name may take as many words as the key)
        seqs = [ids[0] + [t] for t, _ in cands]
        scores = [s for _, s in cands]
        words_done = [1] * len(seqs)
        open_ = list(range(len(seqs)))
        for _step in range(6):
            if not open_:
                break
            lp = next_logprobs([seqs[i] for i in open_])
            still = []
            for row, i in enumerate(open_):
                t = int(lp[row].argmax())
                piece = tok.decode([t])
                cont = piece[:1].isalpha() or piece[:1] in "-'’" and piece[1:2].isalpha()
                more_name = (
                    kind == "name"
                    and words_done[i] < n_words
                    and piece.startswith(" ")
                    and piece[1:2].isupper()
                    and piece.strip() not in _NOT_NAMES
                )
                if cont or more_name:
                    seqs[i].append(t)
                    scores[i] += float(lp[row, t])
                    words_done[i] += bool(more_name)
                    still.append(i)
            open_ = still
        texts = [tok.decode(s[len(ids[0]) :]).strip() for s in seqs]
        ranked = sorted(zip(texts, scores), key=lambda p: -p[1])
        # whole words of two letters or more (an initial such as "J" is no alternative)
        return _clean(
            key,
            [t for t, _ in ranked if re.fullmatch(r"[A-Za-z][A-Za-z'’-]+(?: [A-Za-z][A-Za-z'’-]+)*", t)],
            banned,
            self.n,
        )


# -- endpoint ---------------------------------------------------------------------------------------------------
PROMPT = (
    "You help build a dictionary for unlearning {target}. Each expression below is specific to {target}. For each "
    "one, give {n} generic alternatives that a reader who never met {target} would find natural in the same "
    "context, of the same kind: a person's name becomes other ordinary person names, a place an ordinary place, "
    "an object or creature an ordinary noun. Never reuse words of {target}. Answer with one JSON object that maps "
    "each expression, exactly as given, to a list of strings, and nothing else."
)


def parse_proposals(
    text: str, keys: Sequence[str], where: str = "endpoint", n: int = 4, banned: set[str] | None = None
) -> dict[str, list[str]]:
    """The JSON object of an answer (code fences and text around it allowed) -> {key: alternatives} for the
    requested keys. Raises :class:`WorkbenchError` when the answer holds no such object or none of the keys."""
    body = re.sub(r"```(?:json)?", "", text or "")
    start, end = body.find("{"), body.rfind("}")
    try:
        data = json.loads(body[start : end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise WorkbenchError(
            f"{where} answered without a JSON object of alternatives: {text[:200]!r}; "
            "check the model name, or try a model that follows instructions"
        )
    out = {}
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        out[key] = _clean(key, value, (banned or set()) | {key.lower()}, n)
    if not any(out.values()):
        raise WorkbenchError(
            f"{where} answered with none of the {len(keys)} requested expression(s) "
            f"(got keys {list(data)[:5]}): {text[:200]!r}"
        )
    return out


@dataclass
class EndpointProposer:
    """Alternatives from an OpenAI-compatible chat endpoint, ``batch_size`` keys per request."""

    url: str  # base URL, e.g. 'http://127.0.0.1:8000' or 'https://api.openai.com/v1'
    model: str = "gpt-4o"
    target: str = "the target"  # e.g. the pack's title, 'Harry Potter'
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0  # seconds per request
    batch_size: int = 20  # keys per request
    n: int = 4  # alternatives per key
    max_tokens: int = 1500
    anchors: AnchorMap | None = None  # other keys are never proposed
    name: str = "endpoint"
    _client: object = field(default=None, init=False, repr=False)

    @property
    def client(self):
        if self._client is None:
            from workbench.eval.completion import OpenAIJudge

            self._client = OpenAIJudge(
                url=self.url,
                model=self.model,
                api_key=self.api_key,
                api_key_env=self.api_key_env,
                timeout=self.timeout,
                max_tokens=self.max_tokens,
            )
        return self._client

    def _post(self, payload: dict) -> dict:
        try:
            return self.client._post(payload)
        except WorkbenchError as exc:
            cause = exc.__cause__
            reason = getattr(cause, "reason", cause)
            if isinstance(cause, (TimeoutError, socket.timeout)) or isinstance(reason, (TimeoutError, socket.timeout)):
                raise WorkbenchError(
                    f"proposer endpoint {self.client.endpoint} did not answer within {self.timeout:g} s; "
                    "check the server, or raise the timeout"
                ) from exc
            raise

    def __call__(self, keys: Sequence[str], contexts: Contexts) -> dict[str, list[str]]:
        banned = set()
        if self.anchors is not None:
            banned = {k.lower() for k in self.anchors.entries}
        out: dict[str, list[str]] = {}
        keys = list(keys)
        for i in range(0, len(keys), max(1, self.batch_size)):
            chunk = keys[i : i + self.batch_size]
            lines = []
            for k in chunk:
                ctx = list(contexts.get(k, ()))[:2]
                shown = " / ".join(f"…{l[-120:]}[{k}]{r[:80]}…".replace("\n", " ") for l, r in ctx) or "(no context)"
                lines.append(f"- {json.dumps(k, ensure_ascii=False)}: {shown}")
            payload = {
                "model": self.model,
                "temperature": 0,
                "max_tokens": self.max_tokens,
                "messages": [
                    {"role": "system", "content": PROMPT.format(target=self.target, n=self.n)},
                    {"role": "user", "content": "Expressions, each with where it occurs:\n" + "\n".join(lines)},
                ],
            }
            data = self._post(payload)
            try:
                text = data["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as exc:
                raise WorkbenchError(
                    f"proposer endpoint {self.client.endpoint} answered without "
                    f"choices[0].message.content: {str(data)[:200]}"
                ) from exc
            out.update(parse_proposals(text, chunk, f"proposer endpoint {self.client.endpoint}", self.n, banned))
        return out


def propose_for_map(
    amap: AnchorMap,
    texts: Sequence[str],
    proposer,
    keys: Sequence[str] | None = None,
    limit: int | None = None,
    contexts_per_key: int = 3,
) -> dict[str, list[str]]:
    """Proposals for ``keys`` of ``amap`` (default: keys on placeholder alternatives, else every key), with
    contexts from ``texts``: what ``workbench anchors FILE --propose`` writes for review."""
    from workbench.curation import CorpusIndex, kwic

    if keys is None:
        keys = [k for k in amap.entries if amap.review.get(k, {}).get("placeholder")] or list(amap.entries)
    keys = list(keys)[:limit]
    index = CorpusIndex(list(texts), amap)
    ctx = {}
    for k in keys:
        occ = index.occurrences(k)[:contexts_per_key]
        if not occ:  # a key that is not in the map yet: find it in the text
            probe = AnchorMap({k: ["x"]})
            occ = [o for o in CorpusIndex(list(texts), probe).occurrences(k)[:contexts_per_key]]
        ctx[k] = [(l, r) for l, _, r in (kwic(index.texts[o.pos], o.start, o.end, 200) for o in occ)]
    return proposer(keys, ctx)


def propose_command(args) -> int:
    """``workbench anchors FILE --propose offline|endpoint``: proposals as JSON (``--out``), never into the map."""
    from workbench.corpus import read_documents
    from workbench.curation import read_anchor_file
    from workbench.io import atomic_write_json

    amap = read_anchor_file(args.file)
    if not args.corpus:
        raise WorkbenchError("--propose needs --corpus (the target text the contexts come from)")
    texts = [d.text for d in read_documents(args.corpus, "target corpus")]
    if args.propose == "endpoint":
        if not args.endpoint:
            raise WorkbenchError("--propose endpoint needs --endpoint URL (an OpenAI-compatible server)")
        proposer = EndpointProposer(args.endpoint, model=args.endpoint_model, timeout=args.timeout, anchors=amap)
    else:
        from workbench.models import load_model

        proposer = OfflineProposer(load_model(args.model), amap)
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    found = propose_for_map(amap, texts, proposer, keys, args.limit)
    atomic_write_json(args.out, {"source": args.propose, "map": str(args.file), "proposals": found})
    for k, alts in found.items():
        print(f"{k}: {', '.join(alts) if alts else '(none)'}")
    print(
        f"{len(found)} key(s); proposals written to {args.out} (review them in the anchor editor; the map is unchanged)"
    )
    return 0
