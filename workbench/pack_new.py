"""``workbench packs new NAME --corpus DIR``: a pack skeleton for your own target, ready to curate.

The skeleton holds everything ``workbench packs check``, ``workbench run`` and the notebooks read:

- ``corpus/``: a copy of your ``.txt`` files;
- ``anchors.json``: your map (``--anchors``), or an empty one to fill in notebook ``02_anchor_editing`` from
  the words reinforcement boosts (the run works with an empty map up to scoring);
- ``retain/``: your retain text (``--retain``), else the bundled general-knowledge prose (target-independent;
  add text from neighbouring domains, which is what the retain term should protect), less the sentences that
  state a probe's answer after its prompt's last words (the collateral drafts are cut from them);
- ``probes/``: drafts to review: next-token probes cut from your corpus before a capitalised word
  (``probability.jsonl``, alternately dev and heldout), completion prompts from the same sentences
  (``completion.jsonl``), collateral probes cut the same way from the retain text, and the bundled
  general-knowledge probes (``general.jsonl``);
- ``README.md``: what each file and field means, and what to check before trusting the numbers.

Nothing is overwritten: an existing folder is an error.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.io import disk_full, disk_full_error, read_text

__all__ = ["new_pack", "draft_next_token_probes"]

_BUNDLED = Path(__file__).resolve().parent / "packs"
_GENERAL_RETAIN = (
    "general_cooking_and_technology.txt",
    "general_history_and_geography.txt",
    "general_science_and_nature.txt",
)
_SENTENCE = re.compile(r"[^.!?\n]{20,300}[.!?]")
_CAPITALISED = re.compile(r"(?<=\S) ([A-Z][a-z]{2,})\b")
MAX_PROBES = 40


def _txt_files(src: Path, what: str) -> list[Path]:
    if src.is_file() and src.suffix == ".txt":
        return [src]
    if src.is_dir():
        files = sorted(p for p in src.rglob("*.txt") if p.is_file())
        if files:
            return files
        raise WorkbenchError(f"{what} {src} holds no .txt files")
    raise WorkbenchError(f"{what} {src} does not exist; give a .txt file or a folder of them")


def draft_next_token_probes(
    texts: dict[str, str], prefix: str, limit: int = MAX_PROBES, splits: bool = True
) -> list[dict]:
    """Next-token probes cut from sentences just before a capitalised word that is not the sentence's first:
    ``{"prompt": "... lived at 221B", "targets": [" Baker"]}``, at most one per sentence, spread over the files."""
    per_file = []
    for name, text in texts.items():
        found = []
        for sent in _SENTENCE.findall(text):
            sent = " ".join(sent.split())
            m = next((m for m in _CAPITALISED.finditer(sent) if m.start() >= 25), None)
            if m:
                found.append((name, sent[: m.start()].rstrip(), " " + m.group(1), sent))
        per_file.append(found)
    picked, i = [], 0
    while len(picked) < limit and any(i < len(f) for f in per_file):  # round robin over the files
        picked += [f[i] for f in per_file if i < len(f)][: limit - len(picked)]
        i += 1
    seen, out = set(), []
    for name, prompt, target, sent in picked:
        if prompt in seen:
            continue
        seen.add(prompt)
        row = {"id": f"{prefix}-{len(out) + 1:03d}", "prompt": prompt, "targets": [target], "_sentence": sent}
        if splits:
            row["split"] = "dev" if len(out) % 2 == 0 else "heldout"
        else:
            row["domain"] = Path(name).stem
            row["split"] = "dev" if len(out) % 2 == 0 else "heldout"
        out.append(row)
    return out


def _completion_drafts(probes: list[dict], prefix: str) -> list[dict]:
    rows = []
    for p in probes[:20]:
        words = [w.strip(".,;:!?\"'()") for w in p["_sentence"][len(p["prompt"]) :].split()]
        refs = list(dict.fromkeys([p["targets"][0].strip()] + [w for w in words if w[:1].isupper() and len(w) > 2]))
        rows.append(
            {"id": f"{prefix}-{len(rows) + 1:03d}", "prompt": p["prompt"], "references": refs[:6], "subtlety": 3}
        )
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _disjoint_retain(retain_texts: dict[str, str], prob: list[dict], coll: list[dict]) -> tuple[dict[str, str], int]:
    """The retain text without the sentences that state a draft's or a bundled general probe's answer after its
    prompt's last words (the collateral drafts are cut from the retain text itself), so that the new pack passes
    the overlap check of ``packs check`` (workbench/probe_checks.py); and how many sentences it lost."""
    from workbench.pack import NextTokenProbe, load_probes
    from workbench.probe_checks import disjoint_text

    probes = [NextTokenProbe(id=r["id"], prompt=r["prompt"], targets=tuple(r["targets"])) for r in prob + coll]
    probes += load_probes(_BUNDLED / "harry_potter" / "probes" / "general.jsonl", "general")
    out, lost = {}, 0
    for name, text in retain_texts.items():
        out[name], n = disjoint_text(text, probes)
        lost += n
    return out, lost


def new_pack(
    dest: str | Path,
    corpus: str | Path,
    retain: str | Path | None = None,
    anchors: str | Path | None = None,
    title: str | None = None,
) -> Path:
    """Write a pack skeleton at ``dest`` (its last part is the pack's name). Returns the folder."""
    dest = Path(dest)
    name = dest.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise WorkbenchError(f"pack name {name!r}: use letters, digits, '_', '-' or '.'")
    if dest.exists():
        raise WorkbenchError(f"{dest} already exists; choose another name or remove it (nothing was written)")
    corpus_files = _txt_files(Path(corpus), "--corpus")
    retain_files = (
        _txt_files(Path(retain), "--retain")
        if retain
        else [_BUNDLED / "harry_potter" / "retain" / f for f in _GENERAL_RETAIN]
    )
    amap = {
        "format": "whp-anchors/1",
        "description": f"{title or name}: anchored terms and generic alternatives",
        "anchors": {},
    }
    if anchors:
        from workbench.anchors import load_anchor_map

        loaded = load_anchor_map(anchors)  # validated before anything is written
        amap["anchors"] = dict(loaded.entries)
    texts = {p.name: read_text(p, "--corpus file") for p in corpus_files}
    retain_texts = {p.name: read_text(p, "--retain file") for p in retain_files}
    prefix = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pack"
    prob = draft_next_token_probes(texts, f"{prefix}-prob")
    if not prob:
        raise WorkbenchError(f"--corpus {corpus}: found no sentence to cut a probe from; give running English text")
    comp = _completion_drafts(prob, f"{prefix}-comp")
    coll = draft_next_token_probes(retain_texts, f"{prefix}-coll", splits=False) if retain else []
    retain_texts, n_left_out = _disjoint_retain(retain_texts, prob, coll)

    tmp = dest.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "corpus").mkdir(parents=True)
        (tmp / "retain").mkdir()
        (tmp / "probes").mkdir()
        for p in corpus_files:
            shutil.copy2(p, tmp / "corpus" / p.name)
        for fname, text in retain_texts.items():
            (tmp / "retain" / fname).write_text(text, encoding="utf-8")
        (tmp / "anchors.json").write_text(json.dumps(amap, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        probes = {
            "probability": "probes/probability.jsonl",
            "completion": "probes/completion.jsonl",
            "general": "probes/general.jsonl",
        }
        _write_jsonl(tmp / "probes" / "probability.jsonl", prob)
        _write_jsonl(tmp / "probes" / "completion.jsonl", comp)
        shutil.copy2(_BUNDLED / "harry_potter" / "probes" / "general.jsonl", tmp / "probes" / "general.jsonl")
        if coll:
            probes["collateral"] = "probes/collateral.jsonl"
            _write_jsonl(tmp / "probes" / "collateral.jsonl", coll)
        manifest = {
            "name": name,
            "title": title or name.replace("_", " ").title(),
            "description": f"Your own target: {len(corpus_files)} corpus file(s); probes are drafts to review.",
            "version": 1,
            "corpus": "corpus",
            "anchors": "anchors.json",
            "retain": "retain",
            "probes": probes,
        }
        (tmp / "pack.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(
            _readme(manifest, len(amap["anchors"]), len(prob), len(comp), len(coll), bool(retain), n_left_out),
            encoding="utf-8",
        )
        tmp.rename(dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(exc):  # the destination, not the file being copied from
            raise disk_full_error(dest) from exc
        raise
    return dest


def _readme(
    m: dict, n_anchors: int, n_prob: int, n_comp: int, n_coll: int, own_retain: bool, n_left_out: int = 0
) -> str:
    name = m["name"]
    return f"""# {m["title"]}

A pack written by `workbench packs new` (format: docs/formats.md). Review every file before trusting numbers.

| file | what it holds | what to do |
|---|---|---|
| `corpus/*.txt` | the text to forget, one document per file | add or remove documents |
| `anchors.json` | the anchor map: each idiosyncratic term of the target → generic alternatives of the same kind ({n_anchors} now) | {"fill it: notebook `02_anchor_editing` lists the words reinforcement boosts most, to accept one by one" if not n_anchors else "review it in notebook `02_anchor_editing`"} |
| `retain/*.txt` | text whose knowledge must be kept (the KL retain term, perplexity){f", less the {n_left_out} sentence(s) that state a probe answer (the collateral drafts were cut from them; `packs check` refuses a retain text that states a probe answer, docs/formats.md)" if n_left_out else ""} | {"your retain text" if own_retain else "bundled general prose for now: add text from neighbouring domains (the same genre, places, era), which is what the retain term should protect"} |
| `probes/probability.jsonl` | {n_prob} next-token probes cut from the corpus just before a capitalised word | keep the ones whose answer only a reader of the target would know; delete the rest; add your own |
| `probes/completion.jsonl` | {n_comp} completion prompts; `references` are the words that show familiarity | fix the references; rate `subtlety` 1 (names the target) to 10 (subtle) |
| `probes/collateral.jsonl` | {f"{n_coll} next-token probes cut from the retain text" if n_coll else "not written (no --retain given)"} | neighbouring-domain facts that must NOT be forgotten |
| `probes/general.jsonl` | the bundled general-knowledge probes | keep |

Fields of a next-token probe: `id` (unique in the file), `prompt` (the text before the answer, no trailing space),
`targets` (correct continuations, each starting with its space: `" Holmes"`; the first is the canonical one),
`split` (`dev`: for tuning and demos; `heldout`: reported only, never tuned on), `domain` (collateral and
general probes: which neighbouring domain), optional `paraphrases`. Completion prompts: `id`, `prompt`,
`references`, `subtlety`.

Next:

```bash
workbench packs check {name}/ --model embedded    # validates every file and prints the baseline numbers
```

then a run config with `target: {{pack: path/to/{name}}}`, and `WORKBENCH_CONFIG=that.yaml make lab` opens the
notebooks on it.
"""
