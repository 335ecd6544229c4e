"""Anchor map editor: curate the dictionary of anchored terms and their generic alternatives by hand.

The paper built its dictionary with GPT-4; here a person curates one, fast:

- the map as a searchable, sortable table (with how often each key occurs in the loaded text);
- add, edit, rename and delete entries and their alternatives (one alternative per line), with the validation
  error shown inline as you type;
- a live preview of a text block and its translation, anchors and their replacements highlighted, exactly as
  the labels stage will translate it (same seeded choice of alternative per block);
- suggested anchors mined by the scoring step (words the reinforced model boosts most that the map does not
  cover), each accepted with one click;
- undo/redo, and saving/loading the JSON file (docs/formats.md).

Every button calls a plain method (:meth:`AnchorEditor.apply`, :meth:`~AnchorEditor.delete`,
:meth:`~AnchorEditor.undo`, :meth:`~AnchorEditor.accept_suggestion`, :meth:`~AnchorEditor.save`, ...), so code and
tests drive the editor exactly like a click does. ``editor.widget`` is the ipywidgets container.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from workbench.anchor_families import prune_families
from workbench.anchors import AnchorMap, consolidate, load_anchor_map
from workbench.errors import WorkbenchError
from workbench.translate import Occurrence, translate_text
from workbench.widgets._common import ANCHOR_COLOR, GENERIC_COLOR, df_html, esc, WidgetView

__all__ = ["AnchorEditor", "PreviewSpan", "translate_preview", "preview_html", "placeholder_alternatives"]

_PLACEHOLDER_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Robin", "Jamie", "Chris", "Pat")


def placeholder_alternatives(word: str) -> list[str]:
    """A first generic alternative for an accepted suggestion (to be refined): a common name for a capitalised
    word, ``'thing'`` otherwise. Deterministic, so the same word always gets the same placeholder."""
    if word[:1].isupper():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
        return [_PLACEHOLDER_NAMES[h % len(_PLACEHOLDER_NAMES)]]
    return ["thing"]


PreviewSpan = Occurrence  # one replaced anchor, with its spans in the original and the translated text


def translate_preview(anchors: AnchorMap, text: str, seed: int = 0, block: int = 0) -> tuple[str, list[Occurrence]]:
    """The translation of ``text`` as the labels stage makes it (one seeded alternative per key and block),
    with the span of every replacement in both texts."""
    translated, spans, _ = translate_text(text, anchors, seed, block)
    return translated, spans


def _marked(text: str, spans: Sequence[tuple[int, int, str, str]], color: str, selected: str | None, cls: str) -> str:
    out, last = [], 0
    for start, end, key, hover in spans:
        out.append(esc(text[last:start]))
        border = ";outline:2px solid #d73a49" if selected is not None and key == selected else ""
        out.append(f'<mark class="{cls}" data-key="{esc(key)}" title="{esc(hover)}" '
                   f'style="background:{color};padding:0 1px;border-radius:2px{border}">{esc(text[start:end])}</mark>')
        last = end
    out.append(esc(text[last:]))
    return "".join(out)


def preview_html(anchors: AnchorMap, text: str, seed: int = 0, block: int = 0, selected: str | None = None,
                 title: str = "") -> str:
    """Original and translated text side by side; anchors (yellow) and their replacements (green) highlighted,
    the selected key outlined. Hover a highlight for ``key → value``."""
    trans, spans = translate_preview(anchors, text, seed, block)
    orig = _marked(text, [(s.orig_start, s.orig_end, s.key, f"{s.key} → {s.value}") for s in spans],
                   ANCHOR_COLOR, selected, "wb-anchor")
    new = _marked(trans, [(s.trans_start, s.trans_end, s.key, f"{s.key} → {s.value}") for s in spans],
                  GENERIC_COLOR, selected, "wb-generic")
    keys = sorted({s.key for s in spans})
    pane = ("flex:1;min-width:0;white-space:pre-wrap;font-family:var(--jp-code-font-family, monospace);"
            "font-size:12px;border:1px solid #ddd;padding:6px;max-height:320px;overflow:auto")
    head = (f'<div style="font-size:12px;color:#444;margin-bottom:4px">{esc(title)} '
            f'{len(spans)} replacement(s) of {len(keys)} key(s)</div>')
    return (f'<div class="wb-preview">{head}<div style="display:flex;gap:8px">'
            f'<div style="{pane}"><div style="font-weight:600">original</div><div class="wb-preview-orig">{orig}</div></div>'
            f'<div style="{pane}"><div style="font-weight:600">translated</div><div class="wb-preview-trans">{new}</div></div>'
            "</div></div>")


def _parse_alternatives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _clean_error(exc: Exception) -> str:
    msg = str(exc)
    i = msg.find(": key ")  # drop the file name the core validator puts first
    return msg[i + 2:] if i >= 0 else msg


class AnchorEditor(WidgetView):
    """Edit an anchor map; see the module docstring.

    Parameters
    ----------
    anchors: an :class:`AnchorMap`, a mapping in the anchors JSON format, or a path to an anchors JSON file.
    texts: what to preview and count coverage on: :class:`~workbench.corpus.Block` objects (their ``index``
        seeds the alternative, as in the labels stage) or plain strings.
    suggestions: the scoring step's suggested anchors (``suggest_anchors`` or ``suggested_anchors.csv``):
        a DataFrame with a ``word`` column (``count``, ``mean_gain``, ``score`` are shown when present).
    path: where :meth:`save` writes (and :meth:`load` reads) by default.
    seed: the run's seed (the alternative drawn per key and block depends on it).
    alternatives_for: the alternatives an accepted suggestion starts with (default: a placeholder to refine).
    """

    def __init__(
        self,
        anchors: AnchorMap | Mapping | str | os.PathLike,
        texts: Sequence | None = None,
        suggestions: pd.DataFrame | None = None,
        path: str | os.PathLike | None = None,
        seed: int = 0,
        alternatives_for: Callable[[str], list[str]] = placeholder_alternatives,
        max_rows: int = 40,
        max_suggestions: int = 12,
    ):
        if isinstance(anchors, (str, os.PathLike)):
            path = path or anchors
            anchors = load_anchor_map(anchors)
        elif not isinstance(anchors, AnchorMap):
            anchors = AnchorMap.from_dict(anchors)
        self.anchors: AnchorMap = anchors
        self.seed = seed
        self.path = str(path) if path is not None else (anchors.source or "anchors.json")
        self.alternatives_for = alternatives_for
        self.max_rows = max_rows
        self.max_suggestions = max_suggestions
        self._texts: list[tuple[int, str]] = []
        for i, t in enumerate(texts or []):
            if isinstance(t, str):
                self._texts.append((i, t))
            else:
                self._texts.append((int(getattr(t, "index", i)), t.text))
        self._suggestions = suggestions.copy() if suggestions is not None else pd.DataFrame(columns=["word"])
        self._undo: list[AnchorMap] = []
        self._redo: list[AnchorMap] = []
        self._listeners: list[Callable[[AnchorMap], None]] = []
        self.accepted: list[str] = []  # keys added from suggestions (their alternatives are placeholders)
        self.selected: str | None = None
        self.search = ""
        self.sort_by = "occurrences"
        self.descending = True
        self.block_pos = 0  # which of the texts the preview shows
        self.form_key = ""
        self.form_alternatives = ""
        self.status = ""
        self.dirty = False
        self._coverage: dict[str, int] | None = None
        self._w = None
        self._syncing = False
        # start on the most frequent key of the first block, so the preview shows something to edit
        first = self.keys_in_block()
        if first:
            self.select(first[0])

    # -- listeners ------------------------------------------------------------------------------------------
    def observe(self, fn: Callable[[AnchorMap], None]) -> None:
        """Call ``fn(new_map)`` after every change of the map (apply, delete, accept, undo, redo, load)."""
        self._listeners.append(fn)

    # -- derived state ---------------------------------------------------------------------------------------
    @property
    def coverage(self) -> dict[str, int]:
        """Occurrences of each key in the loaded texts."""
        if self._coverage is None:
            self._coverage = self.anchors.coverage(t for _, t in self._texts)
        return self._coverage

    @property
    def table(self) -> pd.DataFrame:
        """The map as shown: rows matching :attr:`search`, sorted by :attr:`sort_by`."""
        cov = self.coverage
        rows = [{"key": k, "alternatives": "; ".join(v), "n_alternatives": len(v), "occurrences": cov.get(k, 0)}
                for k, v in self.anchors.entries.items()]
        df = pd.DataFrame(rows, columns=["key", "alternatives", "n_alternatives", "occurrences"])
        q = self.search.strip().lower()
        if q:
            df = df[df["key"].str.lower().str.contains(q, regex=False) | df["alternatives"].str.lower().str.contains(q, regex=False)]
        by = self.sort_by if self.sort_by in df.columns else "key"
        keys = [by] if by == "key" else [by, "key"]
        asc = [not self.descending] if by == "key" else [not self.descending, True]
        return df.sort_values(keys, ascending=asc, kind="stable").reset_index(drop=True)

    @property
    def suggestions(self) -> pd.DataFrame:
        """Suggested anchors the map does not cover yet (covered ones disappear as you accept or add them)."""
        df = self._suggestions
        if df.empty or "word" not in df.columns:
            return pd.DataFrame(columns=["word"])
        keep = []
        for w in df["word"].astype(str):
            matches = self.anchors.find(w)
            keep.append(w not in self.anchors.entries and not any(m.start == 0 and m.end == len(w) for m in matches))
        return df[keep].reset_index(drop=True)

    @property
    def block_text(self) -> str:
        return self._texts[self.block_pos][1] if self._texts else ""

    @property
    def block_index(self) -> int:
        return self._texts[self.block_pos][0] if self._texts else 0

    def keys_in_block(self) -> list[str]:
        """Keys occurring in the preview block, most frequent first."""
        counts: dict[str, int] = {}
        for m in self.anchors.find(self.block_text):
            counts[m.key] = counts.get(m.key, 0) + 1
        return sorted(counts, key=lambda k: (-counts[k], k))

    @property
    def translated(self) -> str:
        """The preview block's translation under the current map."""
        return translate_preview(self.anchors, self.block_text, self.seed, self.block_index)[0]

    @property
    def preview(self) -> str:
        """The preview HTML of the current block."""
        if not self._texts:
            return '<div class="wb-preview" style="color:#666">no text loaded: pass texts=run.blocks to preview</div>'
        return preview_html(self.anchors, self.block_text, self.seed, self.block_index, self.selected,
                            f"block {self.block_index} ({self.block_pos + 1} of {len(self._texts)}):")

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
            out.append(f"{key!r} does not occur in the loaded text (matching is case-sensitive, on word boundaries)")
        if key in self.anchors.entries and key != self.selected:
            out.append(f"{key!r} is already a key: applying replaces its alternatives")
        _, dropped = consolidate({**self.anchors.entries, key: ["x"]})
        for k, why in dropped:
            if k == key:
                out.append(f"a run would drop this key on loading ({why})")
        return out

    # -- editing ----------------------------------------------------------------------------------------------
    def _commit(self, new: AnchorMap, status: str) -> None:
        self._undo.append(self.anchors)
        self._redo.clear()
        self._set_map(new, status)

    def _set_map(self, new: AnchorMap, status: str) -> None:
        self.anchors = new
        self._coverage = None
        self.dirty = True
        self.status = status
        for fn in self._listeners:
            fn(new)
        self._refresh()

    def select(self, key: str | None) -> None:
        """Load an entry into the form (None: an empty form for a new entry)."""
        self.selected = key if key in self.anchors.entries else None
        if self.selected is None:
            self.form_key, self.form_alternatives = "", ""
        else:
            self.form_key = self.selected
            self.form_alternatives = "\n".join(self.anchors.entries[self.selected])
        self._refresh()

    def new(self) -> None:
        """Clear the form to add a new entry."""
        self.select(None)

    def set_form(self, key: str | None = None, alternatives: str | Sequence[str] | None = None) -> None:
        """Fill the form (as typing does); alternatives as a list or as text with one per line."""
        if key is not None:
            self.form_key = key
        if alternatives is not None:
            self.form_alternatives = alternatives if isinstance(alternatives, str) else "\n".join(alternatives)
        self._refresh(form_only=True)

    def apply(self) -> bool:
        """Add or update the entry in the form; renaming the selected key replaces it. False on a form error."""
        err = self.form_error
        if err:
            self.status = ""
            self._refresh()
            return False
        key, alts = self.form_key, _parse_alternatives(self.form_alternatives)
        base = self.anchors
        renamed = self.selected is not None and self.selected != key and self.selected in base.entries
        if renamed:
            entries = {(key if k == self.selected else k): (alts if k == self.selected else v)
                       for k, v in base.entries.items() if not (k == key and k != self.selected)}
            rename = {self.selected: key}  # the key's family membership and review record follow it
            families = prune_families({n: [rename.get(k, k) for k in ks] for n, ks in base.families.items()}, entries)
            review = {rename.get(k, k): v for k, v in base.review.items()}
            new = AnchorMap(entries=entries, description=base.description, source=base.source, review=review,
                            families=families)
            status = f"renamed {self.selected!r} to {key!r}"
        else:
            new = base.with_entry(key, alts)
            status = f"{'updated' if key in base.entries else 'added'} {key!r} → {', '.join(alts)}"
        if key in self.accepted and key in base.entries:
            self.accepted.remove(key)  # reviewed
        self.selected = key
        self._commit(new, status)
        return True

    def delete(self, key: str | None = None) -> bool:
        """Delete ``key`` (default: the selected entry)."""
        key = key if key is not None else self.selected
        if key is None or key not in self.anchors.entries:
            self.status = "select an entry to delete"
            self._refresh()
            return False
        if len(self.anchors) == 1:
            self.status = "the map needs at least one anchor; add another before deleting the last"
            self._refresh()
            return False
        self.selected = None
        self.form_key, self.form_alternatives = "", ""
        self._commit(self.anchors.without(key), f"deleted {key!r}")
        return True

    def accept_suggestion(self, word: str, alternatives: Sequence[str] | None = None) -> bool:
        """Add a suggested word as a key (one click), with placeholder alternatives to refine in the form."""
        word = str(word).strip()
        alts = list(alternatives) if alternatives is not None else self.alternatives_for(word)
        try:
            new = self.anchors.with_entry(word, alts)
        except WorkbenchError as exc:
            self.status = f"cannot accept {word!r}: {_clean_error(exc)}"
            self._refresh()
            return False
        if alternatives is None:
            self.accepted.append(word)
        self.selected = word
        self.form_key, self.form_alternatives = word, "\n".join(alts)
        self._commit(new, f"accepted suggestion {word!r} → {', '.join(alts)}"
                     + (" (a placeholder: edit the alternatives and apply)" if alternatives is None else ""))
        return True

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
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the map as JSON (atomically) to ``path`` or :attr:`path`."""
        target = Path(path if path is not None else self.path)
        self.path = str(target)
        self.anchors.save(target)
        self.dirty = False
        self.status = f"saved {len(self.anchors)} anchors to {target}"
        self._refresh()
        return target

    def load(self, path: str | os.PathLike | None = None) -> bool:
        """Replace the map by a JSON file (undoable); errors (bad JSON, bad entries) show in the status line."""
        target = Path(path if path is not None else self.path)
        try:
            new = load_anchor_map(target)
        except WorkbenchError as exc:
            self.status = f"error: {exc}"
            self._refresh()
            return False
        self.path = str(target)
        dropped = f" ({len(new.dropped)} redundant keys dropped)" if new.dropped else ""
        self._commit(new, f"loaded {len(new)} anchors from {target}{dropped}")
        self.dirty = False
        first = self.keys_in_block()
        self.select(first[0] if first else None)
        return True

    # -- preview --------------------------------------------------------------------------------------------
    def show_block(self, pos: int) -> None:
        """Preview the ``pos``-th loaded text (clamped to range)."""
        if self._texts:
            self.block_pos = max(0, min(int(pos), len(self._texts) - 1))
        self._refresh()

    # -- the widget -----------------------------------------------------------------------------------------
    def _table_html(self) -> str:
        df = self.table
        shown = df.head(self.max_rows).copy()
        if self.accepted:
            shown["key"] = [k + (" (placeholder)" if k in self.accepted else "") for k in shown["key"]]
        note = (f'<div style="font-size:11px;color:#666">{len(df)} of {len(self.anchors)} entries match'
                + (f"; showing {self.max_rows}, refine the search" if len(df) > self.max_rows else "") + "</div>")
        return '<div class="wb-anchor-table" style="max-height:300px;overflow:auto">' + note + df_html(
            shown[["key", "alternatives", "occurrences"]], self.max_rows) + "</div>"

    def _error_html(self) -> str:
        err = self.form_error if (self.form_key or self.form_alternatives) else ""
        parts = []
        if err:
            parts.append(f'<div class="wb-error" style="color:#b31d28">⚠ {esc(err)}</div>')
        for w in self.form_warnings:
            parts.append(f'<div class="wb-warning" style="color:#8a6d00">ⓘ {esc(w)}</div>')
        return '<div class="wb-validation" style="font-size:12px">' + "".join(parts) + "</div>"

    def _status_html(self) -> str:
        flag = " · unsaved changes" if self.dirty else ""
        color = "#b31d28" if self.status.startswith(("error", "cannot")) else "#333"
        return (f'<div class="wb-status" style="font-size:12px;color:{color}">{esc(self.status)}'
                f'<span style="color:#888">{esc(flag)}</span></div>')

    def _suggestion_rows(self):
        import ipywidgets as W

        df = self.suggestions.head(self.max_suggestions)
        rows = []
        for r in df.itertuples():
            word = str(r.word)
            btn = W.Button(description="accept", tooltip=f"add {word!r} to the map", layout=W.Layout(width="70px"))
            btn.add_class("wb-accept")
            btn.on_click(lambda _b, w=word: self.accept_suggestion(w))
            info = [f"{getattr(r, c):.3g}" if isinstance(getattr(r, c), float) else str(getattr(r, c))
                    for c in ("count", "mean_gain", "score") if hasattr(r, c)]
            label = esc(word) + (f' <span style="color:#888;font-size:11px">{esc(" · ".join(info))}</span>' if info else "")
            rows.append(W.HBox([btn, W.HTML(label)]))
        if not rows:
            rows.append(W.HTML('<span style="color:#888;font-size:12px">no uncovered suggestions</span>'))
        return rows

    def _build(self) -> None:
        import ipywidgets as W

        w: dict = {}
        w["search"] = W.Text(value=self.search, placeholder="search keys and alternatives", description="search")
        w["sort_by"] = W.Dropdown(options=[("occurrences", "occurrences"), ("key", "key"),
                                           ("number of alternatives", "n_alternatives")], value=self.sort_by,
                                  description="sort by")
        w["descending"] = W.Checkbox(value=self.descending, description="descending", indent=False)
        w["table"] = W.HTML()
        w["picker"] = W.Select(options=[], rows=8, description="edit", layout=W.Layout(width="98%"))
        w["key"] = W.Text(description="key", placeholder="anchored expression, e.g. Hogwarts")
        w["alts"] = W.Textarea(description="alternatives", placeholder="one generic alternative per line",
                               layout=W.Layout(width="98%", height="90px"))
        w["validation"] = W.HTML()
        w["apply"] = W.Button(description="apply", button_style="primary", icon="check")
        w["new"] = W.Button(description="new", icon="plus")
        w["delete"] = W.Button(description="delete", button_style="danger", icon="trash")
        w["undo"] = W.Button(description="undo", icon="undo")
        w["redo"] = W.Button(description="redo", icon="repeat")
        w["block"] = W.IntSlider(value=self.block_pos, min=0, max=max(0, len(self._texts) - 1), description="block",
                                 continuous_update=False)
        w["preview"] = W.HTML()
        w["path"] = W.Text(value=self.path, description="file", layout=W.Layout(width="60%"))
        w["save"] = W.Button(description="save", icon="save")
        w["load"] = W.Button(description="load", icon="folder-open")
        w["status"] = W.HTML()
        w["suggestions"] = W.VBox()
        for name in ("search", "sort_by", "table", "picker", "key", "alts", "validation", "apply", "new", "delete",
                     "undo", "redo", "block", "preview", "path", "save", "load", "status", "suggestions"):
            w[name].add_class(f"wb-anchor-{name}")

        def on(name, fn):
            w[name].observe(lambda ch: None if self._syncing else fn(ch["new"]), names="value")

        on("search", lambda v: (setattr(self, "search", v), self._refresh()))
        on("sort_by", lambda v: (setattr(self, "sort_by", v), self._refresh()))
        on("descending", lambda v: (setattr(self, "descending", v), self._refresh()))
        on("picker", lambda v: self.select(v))
        on("key", lambda v: self.set_form(key=v))
        on("alts", lambda v: self.set_form(alternatives=v))
        on("block", lambda v: self.show_block(v))
        on("path", lambda v: setattr(self, "path", v))
        w["apply"].on_click(lambda _b: self.apply())
        w["new"].on_click(lambda _b: self.new())
        w["delete"].on_click(lambda _b: self.delete())
        w["undo"].on_click(lambda _b: self.undo())
        w["redo"].on_click(lambda _b: self.redo())
        w["save"].on_click(lambda _b: self.save())
        w["load"].on_click(lambda _b: self.load())

        left = W.VBox([W.HBox([w["search"], w["sort_by"], w["descending"]]), w["table"], w["picker"]],
                      layout=W.Layout(width="50%"))
        form = W.VBox([W.HTML("<b>entry</b>"), w["key"], w["alts"], w["validation"],
                       W.HBox([w["apply"], w["new"], w["delete"], w["undo"], w["redo"]]),
                       W.HTML("<b>suggested anchors</b> <span style='font-size:11px;color:#666'>(boosted by the "
                              "reinforced model, not covered by the map)</span>"), w["suggestions"]],
                      layout=W.Layout(width="50%"))
        files = W.HBox([w["path"], w["save"], w["load"]])
        w["root"] = W.VBox([W.HBox([left, form]), W.HTML("<b>preview</b>"), w["block"], w["preview"], files, w["status"]])
        w["root"].add_class("wb-anchor-editor")
        self._w = w
        self._refresh()

    def _sync_form(self, w: dict) -> None:
        """The entry form and its validation (the only part that changes while the user types)."""
        if w["key"].value != self.form_key:
            w["key"].value = self.form_key
        if w["alts"].value != self.form_alternatives:
            w["alts"].value = self.form_alternatives
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
            w["table"].value = self._table_html()
            keys = list(self.table["key"].head(500))
            if self.selected is not None and self.selected not in keys:
                keys.insert(0, self.selected)
            if list(w["picker"].options) != keys:
                w["picker"].options = keys
            w["picker"].value = self.selected if self.selected in keys else None
            self._sync_form(w)
            w["delete"].disabled = self.selected is None
            w["undo"].disabled = not self._undo
            w["redo"].disabled = not self._redo
            w["block"].max = max(0, len(self._texts) - 1)
            w["block"].value = self.block_pos
            w["preview"].value = self.preview
            w["path"].value = self.path
            w["status"].value = self._status_html()
            w["suggestions"].children = self._suggestion_rows()
        finally:
            self._syncing = False
