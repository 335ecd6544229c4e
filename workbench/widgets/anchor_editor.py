"""Anchor map editor: curate the dictionary of anchored terms and their generic alternatives at corpus scale.

The paper built its dictionary with GPT-4; here a person curates one, fast, over the whole target corpus:

- the map as a searchable, sortable table: occurrences over the whole corpus (kept up to date incrementally,
  :class:`~workbench.curation.CorpusIndex`), review status, note, placeholder flag;
- for the selected key, a concordance: every occurrence in its context, one click from the translated preview
  of its block; a coverage line (share of tokens under anchors, keys that never match) and the frequent
  capitalised words and names no key covers;
- add, edit, rename and delete any entry (the map may become empty), with the validation error inline as you
  type; a review status (to review / accepted / rejected) and a note per key, saved in the map;
- a live preview of a block and its translation, exactly as the labels stage will translate it;
- suggested anchors from scoring (words and multi-word names), with gain, count and example contexts: accept
  (placeholder alternatives, flagged), edit before accepting, or reject (remembered in the saved map);
- proposed alternatives from any proposer (:mod:`workbench.proposer`: the baseline model offline, or an
  OpenAI-compatible endpoint), for the selected key or every key still on a placeholder, shown for approval;
- undo/redo; save (warns about placeholders), load, import and export JSON and CSV.

No entry is lost without the curator saying so: applying a new entry onto an existing key, or renaming a key
onto another, asks first (merge, replace or cancel: :attr:`AnchorEditor.pending`, :meth:`~AnchorEditor.confirm`);
keys a run drops on loading (consolidation: "Sherlock Holmes" when "Sherlock" and "Holmes" are keys) stay in the
editor and in the saved file, marked "covered by ...", and every change of the map can be undone. The editor's
counts are the run's: the same function (:func:`~workbench.anchors.corpus_key_counts`) over the same text, the
corpus documents (``documents=run.documents``), so a name a block boundary cuts in two is counted as the run counts it.

Every button calls a plain method (:meth:`AnchorEditor.apply`, :meth:`~AnchorEditor.delete`,
:meth:`~AnchorEditor.reject_suggestion`, :meth:`~AnchorEditor.propose`, :meth:`~AnchorEditor.save`, ...), so
code and tests drive the editor exactly like a click does. ``editor.widget`` is the ipywidgets container.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from workbench.anchor_families import prune_families
from workbench.anchors import REVIEW_STATUSES, AnchorMap, corpus_key_counts, covered_by
from workbench.curation import CorpusIndex, kwic, read_anchor_file, write_anchor_file
from workbench.errors import WorkbenchError
from workbench.translate import Occurrence, translate_text
from workbench.widgets._common import ANCHOR_COLOR, GENERIC_COLOR, WidgetView, df_html, esc

__all__ = ["AnchorEditor", "PreviewSpan", "translate_preview", "preview_html", "placeholder_alternatives"]

_PLACEHOLDER_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Robin", "Jamie", "Chris", "Pat")


def placeholder_alternatives(word: str, name_like: bool | None = None) -> list[str]:
    """A first generic alternative for an accepted suggestion, flagged as a placeholder until refined: a common
    name for a proper name (``name_like``; default: capitalised), ``'thing'`` otherwise. Deterministic."""
    if name_like if name_like is not None else word[:1].isupper():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
        return [_PLACEHOLDER_NAMES[h % len(_PLACEHOLDER_NAMES)]]
    return ["thing"]


PreviewSpan = Occurrence  # one replaced anchor, with its spans in the original and the translated text


def translate_preview(anchors: AnchorMap, text: str, seed: int = 0, block: int = 0) -> tuple[str, list[Occurrence]]:
    """The translation of ``text`` as the labels stage makes it (one seeded alternative per key and block),
    with the span of every replacement in both texts."""
    translated, spans, _ = translate_text(text, anchors, seed, block)
    return translated, spans


def _marked(
    text: str,
    spans: Sequence[tuple[int, int, str, str]],
    color: str,
    selected: str | None,
    cls: str,
    cut: int = 0,
    focus: int | None = None,
) -> str:
    """``text`` with its spans highlighted (the selected key outlined, the span starting at ``focus`` marked
    ``wb-focused``); with ``cut``, what comes before it is folded into a ``<details>`` the reader can open."""
    out, last = [], 0
    for start, end, key, hover in spans:
        if last < cut <= start:
            out.append(esc(text[last:cut]) + "</details>")
            last = cut
        out.append(esc(text[last:start]))
        border = ";outline:2px solid #d73a49" if selected is not None and key == selected else ""
        mine, bg = start == focus, color
        if mine:  # stronger than every other highlight
            border = ";outline:3px solid #d73a49;font-weight:700;box-shadow:0 0 0 5px rgba(215,58,73,.35)"
            bg = "#ffb74d" if cls == "wb-anchor" else "#7ed68f"
        out.append(
            f'<mark class="{cls}{" wb-focused" if mine else ""}" data-key="{esc(key)}" title="{esc(hover)}" '
            f'style="background:{bg};padding:0 1px;border-radius:2px{border}">{esc(text[start:end])}</mark>'
        )
        last = end
    if last < cut:
        out.append(esc(text[last:cut]) + "</details>")
        last = cut
    out.append(esc(text[last:]))
    if cut:
        out.insert(
            0,
            f'<details class="wb-above"><summary style="cursor:pointer;color:#666;font-size:11px;'
            f'font-family:var(--jp-ui-font-family, sans-serif)">… {cut:,} characters of the block above '
            "(open)</summary>",
        )
    return "".join(out)


def _focus_cuts(text: str, spans: Sequence[Occurrence], focus: int | None, context: int) -> tuple[int, int]:
    """Where the original and the translated panes start so the occurrence at ``focus`` (a character offset in
    ``text``) is in view: at a line or word break about ``context`` characters before it, never inside a
    replacement; (0, 0) without a focus."""
    if focus is None or not any(s.orig_start == focus for s in spans) or focus <= context:
        return 0, 0
    lo = focus - context
    nl = text.find("\n", lo, focus)
    cut = nl + 1 if nl >= 0 else next((i + 1 for i in range(lo, focus) if text[i].isspace()), focus)
    delta = 0
    for s in spans:  # the translation is longer or shorter by what the replacements before the cut changed
        if s.orig_start < cut < s.orig_end:
            cut = s.orig_start
        if s.orig_end <= cut:
            delta = s.trans_end - s.orig_end
    return cut, cut + delta


def preview_html(
    anchors: AnchorMap,
    text: str,
    seed: int = 0,
    block: int = 0,
    selected: str | None = None,
    title: str = "",
    focus: int | None = None,
    context: int = 120,
    height: str = "320px",
) -> str:
    """Original and translated text side by side; anchors (yellow) and their replacements (green) highlighted,
    the selected key outlined. Hover a highlight for ``key → value``. With ``focus`` (the character offset of an
    occurrence in ``text``), both panes start a few lines above that occurrence, marked (class ``wb-focused``),
    and fold the text above it (one click opens it), so it is in view whatever the block's length."""
    trans, spans = translate_preview(anchors, text, seed, block)
    cut_o, cut_t = _focus_cuts(text, spans, focus, context)
    focus_t = next((s.trans_start for s in spans if s.orig_start == focus), None)
    orig = _marked(
        text,
        [(s.orig_start, s.orig_end, s.key, f"{s.key} → {s.value}") for s in spans],
        ANCHOR_COLOR,
        selected,
        "wb-anchor",
        cut_o,
        focus,
    )
    new = _marked(
        trans,
        [(s.trans_start, s.trans_end, s.key, f"{s.key} → {s.value}") for s in spans],
        GENERIC_COLOR,
        selected,
        "wb-generic",
        cut_t,
        focus_t,
    )
    keys = sorted({s.key for s in spans})
    pane = (
        "flex:1;min-width:0;white-space:pre-wrap;overflow-wrap:anywhere;font-family:var(--jp-code-font-family, "
        f"monospace);font-size:12px;border:1px solid #ddd;padding:6px;max-height:{height};overflow-y:auto"
    )
    head = (
        f'<div style="font-size:12px;color:#444;margin-bottom:4px">{esc(title)} '
        f"{len(spans)} replacement(s) of {len(keys)} key(s)</div>"
    )
    return (
        f'<div class="wb-preview">{head}<div style="display:flex;gap:8px">'
        f'<div class="wb-preview-pane" style="{pane}"><div style="font-weight:600">original</div>'
        f'<div class="wb-preview-orig">{orig}</div></div>'
        f'<div class="wb-preview-pane" style="{pane}"><div style="font-weight:600">translated</div>'
        f'<div class="wb-preview-trans">{new}</div></div>'
        "</div></div>"
    )


def _parse_alternatives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _clean_error(exc: Exception) -> str:
    msg = str(exc)
    i = msg.find(": key ")  # drop the file name the core validator puts first
    return msg[i + 2 :] if i >= 0 else msg


_STATUS_ICON = {"to review": "·", "accepted": "✓", "rejected": "✗"}
CONFLICT_CHOICES = ("merge", "replace", "cancel")  # what to do when an edit lands on an existing key
PREVIEW_HEIGHT = "130px"  # each preview pane's height in the editor: the editor fits a 1366x768 JupyterLab
# a list box is as wide as its longest line (a concordance line is ~100 characters) unless told otherwise: it would
# widen its column past a 1366 px page with JupyterLab's file browser open
# and an HTML widget's lines are as high as a button (28 px) unless told otherwise: the editor would not fit 768 px
_CSS = (
    "<style>.wb-anchor-editor select{min-width:0;width:100%}"
    ".wb-anchor-editor .widget-html-content{line-height:1.35}</style>"
)


class AnchorEditor(WidgetView):
    """Edit an anchor map; see the module docstring.

    Parameters
    ----------
    anchors: an :class:`AnchorMap`, a mapping in the anchors JSON format, a path to an anchors JSON or CSV file,
        or None for an empty map (a new target).
    texts: what to preview, count and search: :class:`~workbench.corpus.Block` objects (their ``index`` seeds the
        alternative, as in the labels stage; pass ``run.corpus_blocks`` for the whole corpus) or plain strings.
    suggestions: the scoring step's suggested anchors (``suggest_anchors`` or ``suggested_anchors.csv``):
        a DataFrame with a ``word`` column (``kind``, ``count``, ``mean_gain``, ``score``, ``name_like``,
        ``examples`` are used when present).
    path: where :meth:`save` writes (and :meth:`load` reads) by default.
    seed: the run's seed (the alternative drawn per key and block depends on it).
    alternatives_for: the alternatives an accepted suggestion starts with (default: a flagged placeholder).
    proposers: named proposers of alternatives, e.g. ``{"offline": OfflineProposer(...), "endpoint":
        EndpointProposer(...)}``: callables ``(keys, contexts) -> {key: [alternatives]}`` (:mod:`workbench.proposer`).
    documents: the target corpus's documents (``run.documents``), what the counts line and the table's occurrences
        count over, as the run's log and ``packs check`` do; default: ``texts``.
    """

    def __init__(
        self,
        anchors: AnchorMap | Mapping | str | os.PathLike | None,
        texts: Sequence | None = None,
        suggestions: pd.DataFrame | None = None,
        path: str | os.PathLike | None = None,
        seed: int = 0,
        alternatives_for: Callable[..., list[str]] = placeholder_alternatives,
        proposers: Mapping[str, Callable] | None = None,
        max_rows: int = 40,
        max_suggestions: int = 12,
        documents: Sequence | None = None,
    ):
        if anchors is None:
            anchors = AnchorMap({}, source=str(path) if path is not None else None)
        elif isinstance(anchors, (str, os.PathLike)):
            path = path or anchors
            anchors = read_anchor_file(anchors, consolidate=False)
        elif not isinstance(anchors, AnchorMap):
            anchors = AnchorMap.from_dict(anchors, do_consolidate=False)
        elif (
            anchors.dropped
            and anchors.source
            and Path(anchors.source).suffix.lower() in (".json", ".csv")
            and Path(anchors.source).is_file()
        ):
            anchors = read_anchor_file(anchors.source, consolidate=False)  # a run's map: its dropped keys back
        self.anchors: AnchorMap = anchors
        self._effective: tuple[AnchorMap, AnchorMap] | None = None
        self.seed = seed
        self.path = str(path) if path is not None else (anchors.source or "anchors.json")
        self.alternatives_for = alternatives_for
        self.proposers: dict[str, Callable] = dict(proposers or {})
        self.proposals: dict[str, dict[str, list[str]]] = {}  # key -> {proposer name: alternatives}
        self.max_rows = max_rows
        self.max_suggestions = max_suggestions
        self._texts: list[tuple[int, str]] = []
        for i, t in enumerate(texts or []):
            if isinstance(t, str):
                self._texts.append((i, t))
            else:
                self._texts.append((int(getattr(t, "index", i)), t.text))
        self.index = CorpusIndex(list(texts or []), self.effective)
        # what the counts count over: the documents, each whole, as the run does (blocks cut names in two)
        self._documents: list[str] = [
            d if isinstance(d, str) else d.text for d in (documents if documents is not None else texts or [])
        ]
        self._counts: tuple[AnchorMap, dict] | None = None
        self._suggestions = suggestions.copy() if suggestions is not None else pd.DataFrame(columns=["word"])
        self._undo: list[AnchorMap] = []
        self._redo: list[AnchorMap] = []
        self._listeners: list[Callable[[AnchorMap], None]] = []
        self.selected: str | None = None
        self.search = ""
        self.sort_by = "occurrences"
        self.descending = True
        self.block_pos = 0  # which of the texts the preview shows
        self.form_key = ""
        self.form_alternatives = ""
        self.form_status = "to review"
        self.form_note = ""
        self.status = ""
        # an edit that lands on an existing key, waiting for merge / replace / cancel (see confirm)
        self.pending: dict | None = None
        self.added_suggestions: list[str] = []  # suggestions accepted here: their rows stay, marked
        self._editing_suggestion: str | None = None
        self.focus: int | None = None  # the concordance line shown in the preview
        self.save_warnings: list[str] = []
        self.dirty = False
        self._w = None
        self._syncing = False
        # start on the most frequent key of the first block, so the preview shows something to edit
        first = self.keys_in_block()
        if first:
            self.select(first[0])
        if anchors.dropped:  # a map consolidated elsewhere whose dropped keys cannot be read back: say so
            self.status = (
                f"{len(anchors.dropped)} redundant key(s) were dropped before the editor got the map: "
                + ", ".join(f"{k!r} ({why})" for k, why in anchors.dropped[:5])
            )

    # -- listeners ------------------------------------------------------------------------------------------
    def observe(self, fn: Callable[[AnchorMap], None]) -> None:
        """Call ``fn(new_map)`` after every change of the map (apply, delete, accept, undo, redo, load)."""
        self._listeners.append(fn)

    # -- derived state ---------------------------------------------------------------------------------------
    @property
    def effective(self) -> AnchorMap:
        """The map as a run matches it (consolidated); the editor keeps and saves every key of :attr:`anchors`."""
        if self._effective is None or self._effective[0] is not self.anchors:
            self._effective = (self.anchors, self.anchors.consolidated())
        return self._effective[1]

    @property
    def covered(self) -> dict[str, str]:
        """Keys a run drops on loading, each with what covers it ("covered by 'Sherlock' + 'Holmes' (...)")."""
        return {k: covered_by(k, why) for k, why in self.effective.dropped}

    @property
    def counts(self) -> dict:
        """The key counts a run logs, from the same function over the same documents
        (:func:`~workbench.anchors.corpus_key_counts`); recounted when the map changes."""
        if self._counts is None or self._counts[0] is not self.effective:
            self._counts = (self.effective, corpus_key_counts(self.effective, self._documents))
        return self._counts[1]

    @property
    def coverage(self) -> dict[str, int]:
        """Occurrences of each key in the whole corpus (its documents, as :attr:`counts`; 0 for a covered key)."""
        return self.counts["occurrences"]

    @property
    def accepted(self) -> list[str]:
        """Keys whose alternatives are still placeholders (from an accepted suggestion), to refine."""
        return [k for k in self.anchors.entries if self.anchors.review.get(k, {}).get("placeholder")]

    def review_status(self, key: str) -> str:
        return self.anchors.review.get(key, {}).get("status", "to review")

    @property
    def rejected(self) -> list[str]:
        """Dismissed suggestions and rejected keys (remembered in the saved map)."""
        return [
            k for k, r in self.anchors.review.items() if r.get("status") == "rejected" and k not in self.anchors.entries
        ]

    @property
    def table(self) -> pd.DataFrame:
        """The map as shown: rows matching :attr:`search`, sorted by :attr:`sort_by`."""
        cov, review, covered = self.coverage, self.anchors.review, self.covered
        rows = [
            {
                "key": k,
                "alternatives": "; ".join(v),
                "n_alternatives": len(v),
                "occurrences": cov.get(k, 0),
                "status": review.get(k, {}).get("status", "to review"),
                "note": review.get(k, {}).get("note", ""),
                "placeholder": bool(review.get(k, {}).get("placeholder")),
                "covered": covered.get(k, ""),
            }
            for k, v in self.anchors.entries.items()
        ]
        df = pd.DataFrame(
            rows,
            columns=[
                "key",
                "alternatives",
                "n_alternatives",
                "occurrences",
                "status",
                "note",
                "placeholder",
                "covered",
            ],
        )
        q = self.search.strip().lower()
        if q:
            hay = df["key"].str.lower() + "\0" + df["alternatives"].str.lower() + "\0" + df["note"].str.lower()
            df = df[hay.str.contains(q, regex=False)]
        by = self.sort_by if self.sort_by in df.columns else "key"
        keys = [by] if by == "key" else [by, "key"]
        asc = [not self.descending] if by == "key" else [not self.descending, True]
        return df.sort_values(keys, ascending=asc, kind="stable").reset_index(drop=True)

    @property
    def suggestions(self) -> pd.DataFrame:
        """Suggested anchors the map does not cover yet and nobody rejected, and those accepted here (column
        ``added``: their rows stay in place, marked, so the list does not shift under the pointer)."""
        df = self._suggestions
        if df.empty or "word" not in df.columns:
            return pd.DataFrame(columns=["word", "added"])
        rejected, added = set(self.rejected), set(self.added_suggestions)
        keep, flags = [], []
        for w in df["word"].astype(str):
            is_added = w in added and w in self.anchors.entries
            matches = self.effective.find(w)
            keep.append(
                is_added
                or (
                    w not in self.anchors.entries
                    and w not in rejected
                    and not any(m.start == 0 and m.end == len(w) for m in matches)
                )
            )
            flags.append(is_added)
        out = df[keep].copy()
        out["added"] = [f for f, k in zip(flags, keep) if k]
        return out.reset_index(drop=True)

    @property
    def concordance(self) -> pd.DataFrame:
        """Every occurrence of the selected key over the corpus: pos (the preview position), block, left, match, right."""
        return self.index.concordance(self.selected or "", width=60)

    @property
    def block_text(self) -> str:
        return self._texts[self.block_pos][1] if self._texts else ""

    @property
    def block_index(self) -> int:
        return self._texts[self.block_pos][0] if self._texts else 0

    def keys_in_block(self) -> list[str]:
        """Keys occurring in the preview block, most frequent first."""
        counts: dict[str, int] = {}
        for m in self.effective.find(self.block_text):
            counts[m.key] = counts.get(m.key, 0) + 1
        return sorted(counts, key=lambda k: (-counts[k], k))

    @property
    def translated(self) -> str:
        """The preview block's translation under the current map."""
        return translate_preview(self.effective, self.block_text, self.seed, self.block_index)[0]

    @property
    def preview(self) -> str:
        """The preview HTML of the current block."""
        if not self._texts:
            return '<div class="wb-preview" style="color:#666">no text loaded: pass texts=run.corpus_blocks to preview</div>'
        head, at = "", None
        occ = self.index.occurrences(self.selected or "") if self.focus is not None else []
        if self.focus is not None and 0 <= self.focus < len(occ) and occ[self.focus].pos == self.block_pos:
            o = occ[self.focus]  # the clicked occurrence: named above the block, outlined and in view in both panes
            at = o.start
            value = self.effective.choose(self.selected, self.seed, self.block_index)
            head = (
                f'<div class="wb-focus" style="font-size:12px;background:#fff8e1;border-left:3px solid #d73a49;'
                f'padding:0 6px;margin-bottom:2px;white-space:normal;overflow-wrap:anywhere">occurrence '
                f'{self.focus + 1} of {len(occ)}: <mark style="background:{ANCHOR_COLOR}">'
                f'{esc(self.block_text[o.start : o.end])}</mark> → <mark style="background:{GENERIC_COLOR}">'
                f"{esc(value)}</mark>, outlined in red below (the text above it folded)</div>"
            )
        return head + preview_html(
            self.effective,
            self.block_text,
            self.seed,
            self.block_index,
            self.selected,
            f"block {self.block_index} ({self.block_pos + 1} of {len(self._texts)}):",
            focus=at,
            height=PREVIEW_HEIGHT,
        )

    @property
    def form_error(self) -> str:
        """The validation error of the form ('' when it can be applied)."""
        key = self.form_key
        alts = _parse_alternatives(self.form_alternatives)
        if not key.strip():
            return "enter the anchored expression (the key), exactly as it appears in the text"
        try:
            self.anchors.with_entry(key, alts)
        except WorkbenchError as exc:
            return _clean_error(exc)
        dup = sorted({a for a in alts if alts.count(a) > 1})
        if dup:
            return f"alternative {dup[0]!r} is listed twice"
        return ""

    @property
    def form_warnings(self) -> list[str]:
        """Advice that does not block applying the form."""
        key = self.form_key.strip()
        out = []
        if not key or self.form_error:
            return out
        probe = AnchorMap({key: ["x"]})
        if self._texts and not any(probe.regex.search(t) for _, t in self._texts):
            out.append(f"{key!r} does not occur in the corpus (matching is case-sensitive, on word boundaries)")
        if key in self.anchors.entries and key != self.selected:
            out.append(
                f"{key!r} is already a key ({', '.join(self.anchors.entries[key])}): applying asks whether to "
                "merge the alternatives or replace them"
            )
        for k, why in AnchorMap({**self.anchors.entries, key: ["x"]}).consolidated().dropped:
            if k == key:
                out.append(f"a run matches this key through other keys: {covered_by(k, why)}; it is kept and saved")
        if (
            key == self.selected
            and key in self.accepted
            and _parse_alternatives(self.form_alternatives) == self.anchors.entries.get(key)
        ):
            out.append("the alternatives are a placeholder: replace them (or use a proposal)")
        return out

    # -- editing ----------------------------------------------------------------------------------------------
    def _commit(self, new: AnchorMap, status: str) -> None:
        self._undo.append(self.anchors)
        self._redo.clear()
        self._set_map(new, status)

    def _set_map(self, new: AnchorMap, status: str) -> None:
        self.anchors = new
        self.pending = None
        self.index.update(self.effective)
        self.dirty = True
        self.status = status
        for fn in self._listeners:
            fn(new)
        self._refresh()

    def select(self, key: str | None) -> None:
        """Load an entry into the form (None: an empty form for a new entry)."""
        self.selected = key if key in self.anchors.entries else None
        self.pending, self.focus = None, None
        if self.selected is None:
            self.form_key, self.form_alternatives, self.form_status, self.form_note = "", "", "to review", ""
        else:
            rec = self.anchors.review.get(self.selected, {})
            self.form_key = self.selected
            self.form_alternatives = "\n".join(self.anchors.entries[self.selected])
            self.form_status, self.form_note = rec.get("status", "to review"), rec.get("note", "")
        self._refresh()

    def new(self) -> None:
        """Clear the form to add a new entry."""
        self.select(None)

    def set_form(
        self,
        key: str | None = None,
        alternatives: str | Sequence[str] | None = None,
        status: str | None = None,
        note: str | None = None,
    ) -> None:
        """Fill the form (as typing does); alternatives as a list or as text with one per line."""
        if key is not None:
            self.form_key = key
        if alternatives is not None:
            self.form_alternatives = alternatives if isinstance(alternatives, str) else "\n".join(alternatives)
        if status is not None:
            if status not in REVIEW_STATUSES:
                raise WorkbenchError(f"status {status!r} is not one of {list(REVIEW_STATUSES)}")
            self.form_status = status
        if note is not None:
            self.form_note = note
        self._refresh(form_only=True)

    def apply(self, on_conflict: str | None = None) -> bool:
        """Add or update the entry in the form (alternatives, status, note); a changed key renames the selected
        entry. Changed alternatives are no longer a placeholder. False on a form error.

        When the key in the form is already another entry (a new entry, or a rename onto it), nothing changes
        until the curator chooses: without ``on_conflict`` the editor asks (:attr:`pending`, answered by
        :meth:`confirm`); ``"merge"`` adds the form's alternatives to the existing ones (a rename removes the old
        key), ``"replace"`` puts the form's alternatives in their place, ``"cancel"`` keeps the map as it is."""
        err = self.form_error
        if err:
            self.status = ""
            self._refresh()
            return False
        if on_conflict is not None and on_conflict not in CONFLICT_CHOICES:
            raise WorkbenchError(f"on_conflict {on_conflict!r} is not one of {list(CONFLICT_CHOICES)}")
        key, alts = self.form_key, _parse_alternatives(self.form_alternatives)
        base = self.anchors
        renamed = self.selected is not None and self.selected != key and self.selected in base.entries
        clash = key in base.entries and key != self.selected
        if clash and on_conflict is None:
            what = f"renaming {self.selected!r} to {key!r}" if renamed else f"adding {key!r}"
            self.pending = {
                "key": key,
                "from": self.selected if renamed else None,
                "alternatives": alts,
                "existing": list(base.entries[key]),
            }
            self.status = (
                f"{what}: {key!r} is already a key ({', '.join(base.entries[key])}): merge the "
                f"alternatives, replace them by {', '.join(alts)}, or cancel?"
            )
            self._refresh()
            return False
        if clash and on_conflict == "cancel":
            self.pending = None
            self.status = f"cancelled: {key!r} keeps {', '.join(base.entries[key])}" + (
                f"; {self.selected!r} is unchanged" if renamed else ""
            )
            self._refresh()
            return False
        merge = clash and on_conflict == "merge"
        if merge:
            alts = list(base.entries[key]) + [a for a in alts if a not in base.entries[key]]
        old_key = self.selected if renamed else key
        old_rec = base.review.get(old_key, {})
        try:
            if renamed:
                entries = {
                    (key if k == self.selected else k): (alts if k == self.selected else v)
                    for k, v in base.entries.items()
                    if k != key
                }
                rename = {self.selected: key}  # the key's family membership and review record follow it
                families = prune_families(
                    {n: list(dict.fromkeys(rename.get(k, k) for k in ks)) for n, ks in base.families.items()}, entries
                )
                review = {rename.get(k, k): v for k, v in base.review.items() if not (clash and k == key)}
                new = AnchorMap(
                    entries=entries, description=base.description, source=base.source, review=review, families=families
                ).with_entry(key, alts)
                status = (
                    f"merged {self.selected!r} into {key!r} → {', '.join(alts)}"
                    if merge
                    else f"renamed {self.selected!r} to {key!r}"
                    + (f" (its alternatives replace {key!r}'s)" if clash else "")
                )
            else:
                new = base.with_entry(key, alts)
                status = (
                    f"merged into {key!r} → {', '.join(alts)}"
                    if merge
                    else f"{'updated' if key in base.entries else 'added'} {key!r} → {', '.join(alts)}"
                )
        except WorkbenchError as exc:
            self.pending = None
            self.status = f"cannot apply: {_clean_error(exc)}"
            self._refresh()
            return False
        placeholder = old_rec.get("placeholder") and base.entries.get(old_key) == alts or None
        note = self.form_note.strip() or None
        if merge:  # the notes of both entries are kept
            note = "; ".join(dict.fromkeys(n for n in (base.review.get(key, {}).get("note"), note) if n)) or None
        new = new.with_review(key, status=self.form_status, note=note, placeholder=placeholder)
        if key == self._editing_suggestion and key not in self.added_suggestions:
            self.added_suggestions.append(key)
        self.selected = key
        self._commit(new, status + (" (undo restores it)" if clash else ""))
        if self.selected in self.anchors.entries:
            self.form_alternatives = "\n".join(self.anchors.entries[self.selected])
            self._refresh()
        return True

    def confirm(self, choice: str) -> bool:
        """Answer the pending question (:attr:`pending`): ``"merge"``, ``"replace"`` or ``"cancel"``."""
        if self.pending is None:
            self.status = "nothing to confirm"
            self._refresh()
            return False
        p = self.pending
        self.pending = None
        self.form_key, self.form_alternatives = p["key"], "\n".join(p["alternatives"])
        self.selected = p["from"] if p["from"] in self.anchors.entries else None
        return self.apply(on_conflict=choice)

    def set_status(self, status: str, key: str | None = None) -> bool:
        """Set the review status of ``key`` (default: the selected one); 'rejected' removes the key (see reject)."""
        key = key if key is not None else self.selected
        if key is None or key not in self.anchors.entries:
            self.status = "select an entry first"
            self._refresh()
            return False
        if status == "rejected":
            return self.reject(key)
        self.form_status = status
        self._commit(self.anchors.with_review(key, status=status), f"{key!r}: {status}")
        return True

    def delete(self, key: str | None = None) -> bool:
        """Delete ``key`` (default: the selected entry); any key, the last one too (the map may be empty)."""
        key = key if key is not None else self.selected
        if key is None or key not in self.anchors.entries:
            self.status = "select an entry to delete"
            self._refresh()
            return False
        self.selected = None
        self.form_key, self.form_alternatives = "", ""
        new = self.anchors.without(key).with_review(key, status=None, note=None, placeholder=None)
        self._commit(new, f"deleted {key!r}" + ("; the map is empty now" if not new.entries else ""))
        return True

    def reject(self, key: str | None = None, note: str | None = None) -> bool:
        """Remove ``key`` from the map and remember it as rejected (it is not suggested again)."""
        key = key if key is not None else self.selected
        if key is None or key not in self.anchors.entries:
            self.status = "select an entry to reject"
            self._refresh()
            return False
        self.selected = None
        self.form_key, self.form_alternatives = "", ""
        new = self.anchors.without(key).with_review(key, status="rejected", placeholder=None, note=note)
        self._commit(new, f"rejected {key!r} (removed from the map, not suggested again)")
        return True

    def _name_like(self, word: str) -> bool:
        df = self._suggestions
        if "name_like" in df.columns and "word" in df.columns:
            hit = df.loc[df["word"].astype(str) == word, "name_like"]
            if len(hit):
                return bool(hit.iloc[0]) if str(hit.iloc[0]).lower() not in ("false", "0") else False
        return word[:1].isupper() and word in self.index._names_total or word[:1].isupper() and not self._texts

    def accept_suggestion(self, word: str, alternatives: Sequence[str] | None = None) -> bool:
        """Add a suggested word or phrase as a key (one click). Without ``alternatives`` it starts on a
        placeholder (a name only for a proper name), flagged until refined or replaced by a proposal."""
        word = str(word).strip()
        if alternatives is not None:
            alts = list(alternatives)
        else:
            try:
                alts = self.alternatives_for(word, self._name_like(word))
            except TypeError:  # a one-argument alternatives_for
                alts = self.alternatives_for(word)
        try:
            new = self.anchors.with_entry(word, alts)
        except WorkbenchError as exc:
            self.status = f"cannot accept {word!r}: {_clean_error(exc)}"
            self._refresh()
            return False
        new = new.with_review(word, status="to review", placeholder=True if alternatives is None else None)
        if word not in self.added_suggestions:
            self.added_suggestions.append(word)
        self.selected = word
        self.form_key, self.form_alternatives = word, "\n".join(alts)
        self.form_status, self.form_note = "to review", ""
        self._commit(
            new,
            f"accepted suggestion {word!r} → {', '.join(alts)}"
            + (" (a placeholder: edit the alternatives and apply, or propose)" if alternatives is None else ""),
        )
        return True

    def edit_suggestion(self, word: str) -> None:
        """Put a suggestion (or any word) into the form for a new entry, to edit before applying."""
        self.selected = None
        alts = self.proposals.get(str(word), {})
        first = next(iter(alts.values()), [])
        self.form_key, self.form_alternatives = str(word), "\n".join(first)
        self.form_status, self.form_note = "to review", ""
        self._editing_suggestion = str(word)
        self.status = f"editing suggestion {word!r}: give its alternatives, then apply"
        self._refresh()

    def reject_suggestion(self, word: str, note: str | None = None) -> bool:
        """Dismiss a suggestion; remembered in the saved map so it never comes back."""
        word = str(word).strip()
        if word in self.anchors.entries:
            return self.reject(word, note)
        self._commit(self.anchors.with_review(word, status="rejected", note=note), f"rejected suggestion {word!r}")
        return True

    def restore(self, word: str) -> bool:
        """Forget that ``word`` was rejected (it may be suggested again)."""
        if word not in self.rejected:
            return False
        self._commit(self.anchors.with_review(word, status=None, note=None, placeholder=None), f"restored {word!r}")
        return True

    # -- proposals --------------------------------------------------------------------------------------------
    def contexts(self, key: str, limit: int = 3, width: int = 200) -> list[tuple[str, str]]:
        """Up to ``limit`` contexts of ``key`` in the corpus as (left, right) text around the occurrence."""
        out = []
        for o in self.index.occurrences(key)[:limit]:
            left, _, right = kwic(self._texts[o.pos][1], o.start, o.end, width)
            out.append((left, right))
        return out

    def lacking(self) -> list[str]:
        """Keys still on placeholder alternatives."""
        return self.accepted

    def propose(self, keys: Sequence[str] | str | None = None, source: str | None = None) -> bool:
        """Ask a proposer (``source``: a name in :attr:`proposers`; default the first) for alternatives of
        ``keys`` (default: the selected key). The proposals are stored in :attr:`proposals` and shown for
        approval (:meth:`use_proposal`); nothing is written to the map. Errors show in the status line."""
        if not self.proposers:
            self.status = "error: no proposer configured (pass proposers= to the editor)"
            self._refresh()
            return False
        source = source or next(iter(self.proposers))
        if source not in self.proposers:
            self.status = f"error: unknown proposer {source!r}; configured: {', '.join(self.proposers)}"
            self._refresh()
            return False
        if keys is None:
            keys = [self.selected] if self.selected else []
        keys = [keys] if isinstance(keys, str) else [k for k in keys if k]
        if not keys:
            self.status = "select a key (or accept a suggestion) to propose alternatives for"
            self._refresh()
            return False
        proposer = self.proposers[source]
        if getattr(proposer, "anchors", None) is not None:  # keys accepted since it was made are not proposed either
            proposer.anchors = self.anchors
        try:
            found = proposer(keys, {k: self.contexts(k) for k in keys})
        except WorkbenchError as exc:
            self.status = f"error: {source} proposer: {exc}"
            self._refresh()
            return False
        for k, alts in found.items():
            if alts:
                self.proposals.setdefault(k, {})[source] = list(alts)
        missing = [k for k in keys if not found.get(k)]
        self.status = (
            f"{source}: proposals for {len(keys) - len(missing)} of {len(keys)} key(s); review and use them"
            + (f"; none for {', '.join(repr(k) for k in missing[:5])}" if missing else "")
        )
        self._refresh()
        return True

    def propose_lacking(self, source: str | None = None) -> bool:
        """Propose for every key still on placeholder alternatives (one batch)."""
        keys = self.lacking()
        if not keys:
            self.status = "no key lacks alternatives"
            self._refresh()
            return False
        return self.propose(keys, source)

    def use_proposal(
        self, key: str | None = None, source: str | None = None, alternatives: Sequence[str] | None = None
    ) -> bool:
        """Approve a proposal: ``key`` gets the proposed alternatives (or the chosen subset ``alternatives``)."""
        key = key if key is not None else self.selected
        props = self.proposals.get(key or "", {})
        if not props:
            self.status = f"no proposal for {key!r}"
            self._refresh()
            return False
        alts = (
            list(alternatives)
            if alternatives is not None
            else props.get(source)
            if source
            else next(iter(props.values()))
        )
        if not alts:
            self.status = f"no proposal from {source!r} for {key!r}"
            self._refresh()
            return False
        if key not in self.anchors.entries:
            self.select(None)
        else:
            self.select(key)
        self.set_form(key=key, alternatives=alts)
        ok = self.apply()
        if ok:
            self.status = f"used the proposal for {key!r} → {', '.join(alts)}"
            self._refresh()
        return ok

    def undo(self) -> bool:
        return self._travel(self._undo, self._redo, "undo", "undone")

    def redo(self) -> bool:
        return self._travel(self._redo, self._undo, "redo", "redone")

    def _travel(self, source: list, target: list, verb: str, done: str) -> bool:
        """Move one step through the edit history: the current map goes on ``target``, the last of ``source`` returns."""
        if not source:
            self.status = f"nothing to {verb}"
            self._refresh()
            return False
        target.append(self.anchors)
        self._set_map(source.pop(), done)
        self._reselect()
        return True

    def _reselect(self) -> None:
        if self.selected not in self.anchors.entries:
            self.selected = None
        self.select(self.selected)

    # -- files ----------------------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """What to look at before using the map in a run: placeholders, keys that never match, an empty map."""
        out = []
        if not self.anchors.entries:
            out.append("the map is empty: the labels stage needs at least one anchor")
        ph = self.accepted
        if ph:
            out.append(
                f"{len(ph)} key(s) still have placeholder alternatives: "
                + ", ".join(repr(k) for k in ph[:6])
                + (" …" if len(ph) > 6 else "")
            )
        if self._texts and self.counts["never"]:
            out.append(self.counts["line"])
        return out

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the map (atomically) to ``path`` or :attr:`path`: JSON, or CSV for a ``.csv`` path. Placeholders
        and other problems are saved as they are and listed in :attr:`save_warnings` and the status line."""
        target = Path(path if path is not None else self.path)
        try:
            write_anchor_file(self.anchors, target)
        except (OSError, WorkbenchError) as exc:
            self.status = f"error: cannot save to {target}: {exc}"
            self._refresh()
            raise WorkbenchError(self.status[7:]) from exc
        self.path = str(target)
        self.dirty = False
        self.save_warnings = self.check()
        self.status = f"saved {len(self.anchors)} anchors to {target}" + (
            "; warning: " + "; ".join(self.save_warnings) if self.save_warnings else ""
        )
        self._refresh()
        return target

    def export(self, path: str | os.PathLike) -> Path:
        """Write a copy (JSON, or CSV for a ``.csv`` path) without changing where :meth:`save` writes."""
        keep = self.path, self.dirty
        target = self.save(path)
        self.path, self.dirty = keep
        self.status = self.status.replace("saved", "exported", 1)
        self._refresh()
        return target

    def load(self, path: str | os.PathLike | None = None) -> bool:
        """Replace the map by a JSON or CSV file (undoable); errors (bad JSON, a repeated key, bad entries) show
        in the status line and the map in the editor is kept."""
        target = Path(path if path is not None else self.path)
        try:
            new = read_anchor_file(target, consolidate=False)  # every key: the covered ones are shown, marked
        except WorkbenchError as exc:
            self.status = f"error: {exc}"
            self._refresh()
            return False
        self.path = str(target)
        covered = len(new.consolidated().dropped)
        self._commit(
            new,
            f"loaded {len(new)} anchors from {target}"
            + (f" ({covered} covered by other keys: kept, marked in the table)" if covered else ""),
        )
        self.dirty = False
        first = self.keys_in_block()
        self.select(first[0] if first else None)
        return True

    # -- preview --------------------------------------------------------------------------------------------
    def show_block(self, pos: int) -> None:
        """Preview the ``pos``-th loaded text (clamped to range)."""
        self.focus = None
        if self._texts:
            self.block_pos = max(0, min(int(pos), len(self._texts) - 1))
        self._refresh()

    def show_occurrence(self, i: int) -> None:
        """Preview the block of the ``i``-th occurrence of the selected key (a concordance line); the occurrence
        itself, original and translated, heads the preview."""
        occ = self.index.occurrences(self.selected or "")
        if 0 <= i < len(occ):
            self.focus = i
            if self._texts:
                self.block_pos = occ[i].pos
            self._refresh()

    # -- the widget -----------------------------------------------------------------------------------------
    def _table_html(self) -> str:
        df = self.table
        shown = df.head(self.max_rows).copy()
        shown["key"] = [
            f"{_STATUS_ICON.get(s, '·')} {k}" + (" (placeholder)" if p else "") + (" ✎" if n else "")
            for k, s, p, n in zip(shown["key"], shown["status"], shown["placeholder"], shown["note"])
        ]
        shown["occurrences"] = [c if c else f"{n:,}" for n, c in zip(shown["occurrences"], shown["covered"])]
        note = (
            f'<div style="font-size:11px;color:#666">{len(df)} of {len(self.anchors)} entries match'
            + (f"; showing {self.max_rows}, refine the search" if len(df) > self.max_rows else "")
            + " · ✓ accepted · ✎ has a note</div>"
        )
        return (
            '<div class="wb-anchor-table" style="max-height:96px;overflow:auto">'
            + note
            + df_html(shown[["key", "alternatives", "occurrences"]], self.max_rows)
            + "</div>"
        )

    def _coverage_html(self) -> str:
        ix = self.index
        if not self._texts:
            return ""
        unc = ix.uncovered(top=12)
        names = ", ".join(f"{esc(r.name)} ({r.count})" for r in unc.itertuples()) or "none"
        counts = self.counts
        # the names on one line (all of them when hovered), so the map table keeps its room
        return (
            f'<div class="wb-anchor-coverage" style="font-size:11px;line-height:1.35;overflow-wrap:anywhere">'
            f"<b>{ix.coverage_share:.1%}</b> of {ix.n_tokens:,} corpus tokens under an anchor; "
            f'<span class="wb-anchor-counts">{esc(counts["line"])}</span>'
            f'<div class="wb-anchor-uncovered" title="{names}" style="white-space:nowrap;overflow:hidden;'
            f'text-overflow:ellipsis;width:0;min-width:100%"><span style="color:#444">not covered by any key, '
            f"most frequent first:</span> {names}</div></div>"
        )

    def _error_html(self) -> str:
        err = self.form_error if (self.form_key or self.form_alternatives) else ""
        parts = []
        if err:
            parts.append(f'<div class="wb-error" style="color:#b31d28">⚠ {esc(err)}</div>')
        for w in self.form_warnings:
            parts.append(f'<div class="wb-warning" style="color:#8a6d00"><b>note:</b> {esc(w)}</div>')
        return '<div class="wb-validation" style="font-size:12px">' + "".join(parts) + "</div>"

    def _status_html(self) -> str:
        flag = " · unsaved changes" if self.dirty else ""
        color = (
            "#b31d28"
            if self.status.startswith(("error", "cannot"))
            else "#8a6d00"
            if "warning:" in self.status or self.pending
            else "#333"
        )
        return (
            f'<div class="wb-status" style="font-size:12px;color:{color};overflow-wrap:anywhere">'
            f'{esc(self.status)}<span style="color:#888">{esc(flag)}</span></div>'
        )

    @staticmethod
    def _small_button(label: str, tip: str, cls: str, fn, width: str = "62px"):
        import ipywidgets as W

        b = W.Button(description=label, tooltip=tip, layout=W.Layout(width=width, min_width=width, padding="0"))
        b.add_class(cls)
        b.on_click(lambda _b: fn())
        return b

    def _concordance_line(self, i: int, r) -> str:
        current = i == self.focus
        return (
            f'<div class="wb-concordance-line" style="font-size:11px;line-height:1.3;white-space:normal;'
            f'overflow-wrap:anywhere{";background:#fff8e1" if current else ""}">block {r.block}: …'
            f'{esc(r.left[-60:])}<b style="background:{ANCHOR_COLOR}">{esc(r.match)}</b>{esc(r.right[:60])}…</div>'
        )

    def _concordance_rows(self, conc: pd.DataFrame):
        import ipywidgets as W

        rows = []
        for i, r in enumerate(conc.itertuples()):
            rows.append(
                W.HBox(
                    [
                        self._small_button(
                            f"{i + 1}",
                            "preview this occurrence",
                            "wb-occurrence",
                            lambda i=i: self.show_occurrence(i),
                            "36px",
                        ),
                        W.HTML(self._concordance_line(i, r), layout=W.Layout(flex="1 1 auto", min_width="0")),
                    ],
                    layout=W.Layout(width="100%", align_items="flex-start"),
                )
            )
        return rows

    def _confirm_row(self):
        import ipywidgets as W

        if self.pending is None:
            return ()
        p = self.pending
        tips = {
            "merge": f"{p['key']!r} keeps its alternatives and gets the new ones",
            "replace": f"the form's alternatives replace those of {p['key']!r}",
            "cancel": "leave the map as it is",
        }
        return (
            W.HTML(f'<span style="font-size:12px;color:#8a6d00"><b>{esc(p["key"])}</b> is already a key:</span>'),
            *[
                self._small_button(c, tips[c], f"wb-confirm-{c}", lambda c=c: self.confirm(c), "66px")
                for c in CONFLICT_CHOICES
            ],
        )

    def _suggestion_rows(self):
        import ipywidgets as W

        df = self.suggestions.head(self.max_suggestions)
        rows = []
        for r in df.to_dict("records"):
            word = str(r["word"])
            info = [
                f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r[c]) for c in ("count", "mean_gain") if c in r
            ]
            kind = "phrase" if r.get("kind") == "phrase" else ""
            examples = str(r.get("examples") or "")
            ex = esc(examples.split(" | ")[0][:110]) if examples and examples != "nan" else ""
            label = (
                f'<span class="wb-suggestion" title="{esc(examples)}">{esc(word)}</span>'
                + (f' <span style="background:#e8eefc;font-size:10px;padding:0 3px">{kind}</span>' if kind else "")
                + (f' <span style="color:#888;font-size:11px">{esc(" · ".join(info))}</span>' if info else "")
                # width 0 / min-width 100%: the example line takes the row's width and never widens it
                + (
                    f'<div style="color:#777;font-size:11px;white-space:nowrap;overflow:hidden;'
                    f'text-overflow:ellipsis;width:0;min-width:100%">{ex}</div>'
                    if ex
                    else ""
                )
            )
            if r.get("added"):  # accepted here: the row stays, marked, with what it became
                label = (
                    f'<span class="wb-suggestion wb-added" style="color:#1a7f37">{esc(word)}</span>'
                    f' <span style="font-size:11px;color:#1a7f37">✓ added → '
                    f"{esc(', '.join(self.anchors.entries.get(word, [])))}</span>"
                )
                rows.append(
                    W.HBox(
                        [
                            self._small_button(
                                "edit",
                                f"select {word!r} in the form",
                                "wb-select-added",
                                lambda w=word: self.select(w),
                                "48px",
                            ),
                            W.HTML(label, layout=W.Layout(flex="1 1 auto", min_width="0")),
                        ],
                        layout=W.Layout(width="100%", align_items="flex-start"),
                    )
                )
                continue
            html = W.HTML(label, layout=W.Layout(flex="1 1 auto", min_width="0"))
            rows.append(
                W.HBox(
                    [
                        self._small_button(
                            "accept", f"add {word!r} to the map", "wb-accept", lambda w=word: self.accept_suggestion(w)
                        ),
                        self._small_button(
                            "edit",
                            f"edit {word!r} before adding it",
                            "wb-edit-suggestion",
                            lambda w=word: self.edit_suggestion(w),
                            "48px",
                        ),
                        self._small_button(
                            "reject",
                            f"never suggest {word!r} again",
                            "wb-reject-suggestion",
                            lambda w=word: self.reject_suggestion(w),
                        ),
                        html,
                    ],
                    layout=W.Layout(width="100%", align_items="flex-start"),
                )
            )
        if not rows:
            rows.append(W.HTML('<span style="color:#888;font-size:12px">no uncovered suggestions</span>'))
        return rows

    def _proposal_rows(self):
        import ipywidgets as W

        rows = []
        for name in self.proposers:
            rows.append(
                W.HBox(
                    [
                        self._small_button(
                            f"propose: {name}",
                            f"ask the {name} proposer for the selected key",
                            "wb-propose",
                            lambda n=name: self.propose(source=n),
                            "150px",
                        ),
                        self._small_button(
                            "all placeholders",
                            f"ask the {name} proposer for every key on a placeholder",
                            "wb-propose-lacking",
                            lambda n=name: self.propose_lacking(n),
                            "130px",
                        ),
                    ],
                    layout=W.Layout(flex_flow="row wrap"),
                )
            )
        props = self.proposals.get(self.selected or self.form_key, {})
        for name, alts in props.items():
            rows.append(
                W.HBox(
                    [
                        self._small_button(
                            "use",
                            f"give {self.selected!r} these alternatives",
                            "wb-use-proposal",
                            lambda n=name: self.use_proposal(self.selected or self.form_key, n),
                            "48px",
                        ),
                        W.HTML(
                            f'<span class="wb-proposal" style="font-size:12px"><i>{esc(name)}</i>: {esc(", ".join(alts))}</span>',
                            layout=W.Layout(flex="1 1 auto", min_width="0"),
                        ),
                    ],
                    layout=W.Layout(width="100%"),
                )
            )
        if not self.proposers:
            rows.append(W.HTML('<span style="color:#888;font-size:12px">no proposer configured</span>'))
        return rows

    def _build(self) -> None:
        import ipywidgets as W

        full = W.Layout(width="calc(100% - 4px)")  # a widget's 2 px margins each side would widen its column
        narrow = {"description_width": "96px"}  # "alternatives" whole in JupyterLab's 13 px font
        w: dict = {}
        w["search"] = W.Text(
            value=self.search,
            placeholder="search keys, alternatives, notes",
            layout=W.Layout(flex="1 1 160px", min_width="0", width="auto"),
        )
        w["sort_by"] = W.Dropdown(
            options=[
                ("occurrences", "occurrences"),
                ("key", "key"),
                ("status", "status"),
                ("alternatives", "n_alternatives"),
            ],
            value=self.sort_by,
            layout=W.Layout(width="120px"),
        )
        w["descending"] = W.Checkbox(
            value=self.descending, description="desc.", indent=False, layout=W.Layout(width="64px")
        )
        w["coverage"] = W.HTML()
        w["table"] = W.HTML()
        w["picker"] = W.Select(options=[], rows=4, layout=full)
        w["concordance_title"] = W.HTML()
        # one wrapped line per occurrence, each with a button (a list box would cut the lines or scroll sideways)
        w["concordance"] = W.VBox(
            layout=W.Layout(width="calc(100% - 4px)", max_height="84px", overflow="auto", display="block")
        )
        w["key"] = W.Text(
            description="key", placeholder="anchored expression, e.g. Hogwarts", layout=full, style=narrow
        )
        w["alts"] = W.Textarea(
            description="alternatives",
            placeholder="one generic alternative per line",
            layout=W.Layout(width="calc(100% - 4px)", height="52px"),
            style=narrow,
        )
        w["review"] = W.Dropdown(
            options=list(REVIEW_STATUSES[:2]),
            value="to review",
            description="status",
            layout=W.Layout(width="190px"),
            style=narrow,
        )
        w["note"] = W.Text(
            description="note",
            placeholder="why, doubts…",
            layout=W.Layout(flex="1 1 120px", width="auto"),
            style={"description_width": "40px"},
        )
        w["validation"] = W.HTML()
        btn = W.Layout(width="72px", min_width="72px", padding="0")
        w["apply"] = W.Button(description="apply", button_style="primary", icon="check", layout=btn)
        w["new"] = W.Button(description="new", icon="plus", layout=btn)
        w["delete"] = W.Button(description="delete", button_style="danger", icon="trash", layout=btn)
        w["reject"] = W.Button(description="reject", icon="ban", layout=btn, tooltip="remove and never suggest again")
        w["undo"] = W.Button(description="undo", icon="undo", layout=btn)
        w["redo"] = W.Button(description="redo", icon="repeat", layout=btn)
        w["confirm"] = W.HBox(layout=W.Layout(flex_flow="row wrap", width="100%"))  # merge / replace / cancel
        w["proposals"] = W.VBox(layout=full)
        w["suggestions"] = W.VBox(layout=full)
        w["block"] = W.IntSlider(
            value=self.block_pos,
            min=0,
            max=max(0, len(self._texts) - 1),
            description="block",
            continuous_update=False,
            layout=W.Layout(width="50%", min_width="200px"),
            style={"description_width": "40px"},
        )
        w["preview"] = W.HTML(layout=full)
        w["path"] = W.Text(
            value=self.path,
            description="file",
            layout=W.Layout(flex="1 1 200px", width="auto"),
            style={"description_width": "34px"},
        )
        w["save"] = W.Button(description="save", icon="save", layout=btn, tooltip="JSON, or CSV for a .csv name")
        w["load"] = W.Button(description="load", icon="folder-open", layout=btn, tooltip="JSON or CSV")
        w["status"] = W.HTML()
        for name in (
            "search",
            "sort_by",
            "coverage",
            "table",
            "picker",
            "concordance_title",
            "concordance",
            "key",
            "alts",
            "review",
            "note",
            "validation",
            "apply",
            "new",
            "delete",
            "reject",
            "undo",
            "redo",
            "confirm",
            "proposals",
            "block",
            "preview",
            "path",
            "save",
            "load",
            "status",
            "suggestions",
        ):
            w[name].add_class(f"wb-anchor-{name}")

        def on(name, fn):
            w[name].observe(lambda ch: None if self._syncing else fn(ch["new"]), names="value")

        on("search", lambda v: (setattr(self, "search", v), self._refresh()))
        on("sort_by", lambda v: (setattr(self, "sort_by", v), self._refresh()))
        on("descending", lambda v: (setattr(self, "descending", v), self._refresh()))
        on("picker", lambda v: self.select(v))
        on("key", lambda v: self.set_form(key=v))
        on("alts", lambda v: self.set_form(alternatives=v))
        on("review", lambda v: self.set_form(status=v))
        on("note", lambda v: self.set_form(note=v))
        on("block", lambda v: self.show_block(v))
        on("path", lambda v: setattr(self, "path", v))
        w["apply"].on_click(lambda _b: self.apply())
        w["new"].on_click(lambda _b: self.new())
        w["delete"].on_click(lambda _b: self.delete())
        w["reject"].on_click(lambda _b: self.reject())
        w["undo"].on_click(lambda _b: self.undo())
        w["redo"].on_click(lambda _b: self.redo())
        w["save"].on_click(lambda _b: self._safe(self.save))
        w["load"].on_click(lambda _b: self.load())

        col = W.Layout(flex="1 1 420px", min_width="0", padding="0 4px")
        wrap = W.Layout(flex_flow="row wrap", width="100%")
        hint = "<span style='font-size:11px;color:#666'>"
        left = W.VBox(
            [
                W.HBox([w["search"], w["sort_by"], w["descending"]], layout=W.Layout(width="100%")),
                w["coverage"],
                w["table"],
                W.HTML(f"{_CSS}<b>edit</b> {hint}(pick a key)</span>"),
                w["picker"],
                w["concordance_title"],
                w["concordance"],
            ],
            layout=col,
        )
        files = W.HBox([w["path"], w["save"], w["load"]], layout=wrap)
        # proposals and suggestions scroll in one box, so the editor keeps to a 768 px high screen
        lists = W.VBox(
            [
                W.HTML(f"<b>proposed alternatives</b> {hint}(shown for approval)</span>"),
                w["proposals"],
                W.HTML(
                    f"<b>suggested anchors</b> {hint}(boosted by the reinforced model, not covered by the "
                    "map; hover for contexts)</span>"
                ),
                w["suggestions"],
            ],
            layout=W.Layout(width="calc(100% - 4px)", max_height="150px", overflow="auto", display="block"),
        )
        lists.add_class("wb-anchor-lists")
        # the status line and the merge / replace / cancel question sit right under the buttons that caused them
        form = W.VBox(
            [
                w["key"],
                w["alts"],
                W.HBox([w["review"], w["note"]], layout=wrap),
                w["validation"],
                W.HBox([w["apply"], w["new"], w["delete"], w["reject"], w["undo"], w["redo"]], layout=wrap),
                w["status"],
                w["confirm"],
                files,
                lists,
            ],
            layout=col,
        )
        preview_head = W.HBox(
            [W.HTML("<b>preview</b>", layout=W.Layout(width="64px")), w["block"]],
            layout=W.Layout(width="100%", align_items="center"),
        )
        w["root"] = W.VBox(
            [W.HBox([left, form], layout=wrap), preview_head, w["preview"]],
            layout=W.Layout(width="100%", max_width="100%", overflow="hidden"),
        )
        w["root"].add_class("wb-anchor-editor")
        self._w = w
        self._refresh()

    def _safe(self, fn) -> None:
        try:
            fn()
        except WorkbenchError:
            pass  # the status line says what went wrong

    def _sync_form(self, w: dict) -> None:
        """The entry form and its validation (the only part that changes while the user types)."""
        if w["key"].value != self.form_key:
            w["key"].value = self.form_key
        if w["alts"].value != self.form_alternatives:
            w["alts"].value = self.form_alternatives
        if w["review"].value != self.form_status:
            w["review"].value = self.form_status if self.form_status in w["review"].options else "to review"
        if w["note"].value != self.form_note:
            w["note"].value = self.form_note
        w["validation"].value = self._error_html()
        w["apply"].disabled = bool(self.form_error)

    def _refresh(self, form_only: bool = False) -> None:
        """Push the state into the widgets (no-op before the widget is built)."""
        w = self._w
        if w is None:
            return
        self._syncing = True
        try:
            if form_only:  # typing in the form: only the form and its validation change
                self._sync_form(w)
                return
            w["search"].value = self.search
            w["sort_by"].value = self.sort_by
            w["descending"].value = self.descending
            w["coverage"].value = self._coverage_html()
            w["table"].value = self._table_html()
            keys = list(self.table["key"].head(500))
            if self.selected is not None and self.selected not in keys:
                keys.insert(0, self.selected)
            if list(w["picker"].options) != keys:
                w["picker"].options = keys
            w["picker"].value = self.selected if self.selected in keys else None
            conc = self.concordance if self.selected else None
            covered = self.covered.get(self.selected or "")
            if conc is not None and len(conc):
                shown = min(len(conc), 60)
                w["concordance_title"].value = (
                    f"<b>occurrences of {esc(self.selected)}</b> <span style='font-size:11px;"
                    f"color:#666'>({len(conc)} in the corpus"
                    + (f", the first {shown} listed" if shown < len(conc) else "")
                    + "; show one to preview its block)</span>"
                )
                key = (self.selected, id(self.index.anchors))
                if getattr(self, "_concordance_key", None) != key:  # rebuilt only when it changes
                    self._concordance_key = key
                    w["concordance"].children = self._concordance_rows(conc.head(shown))
                else:  # a click marks its line in place: the list keeps its scroll position, the line stays in view
                    for i, (row, r) in enumerate(zip(w["concordance"].children, conc.head(shown).itertuples())):
                        line = self._concordance_line(i, r)
                        if row.children[1].value != line:
                            row.children[1].value = line
            else:
                w["concordance_title"].value = (
                    "<b>occurrences</b> <span style='font-size:11px;color:#666'>"
                    + (
                        f"(none on its own: {esc(covered)})"
                        if covered
                        else "(none in the corpus)"
                        if self.selected
                        else "(select a key)"
                    )
                    + "</span>"
                )
                w["concordance"].children = ()
                self._concordance_key = None
            self._sync_form(w)
            w["confirm"].children = self._confirm_row()
            w["delete"].disabled = w["reject"].disabled = self.selected is None
            w["undo"].disabled = not self._undo
            w["redo"].disabled = not self._redo
            w["block"].max = max(0, len(self._texts) - 1)
            w["block"].value = self.block_pos
            w["preview"].value = self.preview
            w["path"].value = self.path
            w["status"].value = self._status_html()
            w["proposals"].children = self._proposal_rows()
            w["suggestions"].children = self._suggestion_rows()
        finally:
            self._syncing = False
