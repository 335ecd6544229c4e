"""Token diff view: a block token by token, original next token vs generic label, coloured by reinforced − baseline.

Each token of the block is drawn as a small box: the original token on top, the generic label the finetuning
would train on below it (green when it differs), the background coloured by how much the reinforced model
raised that token over the baseline (red: raised, blue: lowered). Hovering shows both models' top
alternatives. A label at position ``t`` replaces token ``t + 1``, so it is drawn under that token.

Use :func:`token_diff_html` on your own cells, or build a :class:`TokenDiff` from stored labels
(:meth:`TokenDiff.from_store`), from the scoring stage's table (:meth:`TokenDiff.from_scores`), or from a live
model pair (:meth:`TokenDiff.from_pair`). A ``TokenDiff`` renders itself in Jupyter; ``.html`` is the string,
``.widget`` an ``ipywidgets.HTML``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench.widgets._common import CHANGED_COLOR, esc, score_color, show_token, token_texts, top_list

__all__ = ["TokenCell", "TokenDiff", "label_cells", "token_diff_html"]


@dataclass
class TokenCell:
    """One token of a rendered block."""

    text: str  # the token as it appears in the text
    label: str | None = None  # the generic label that replaces it in training (None: not labelled)
    score: float | None = None  # reinforced − baseline for this token (colours the box)
    base_top: Sequence[tuple[str, float]] = field(default_factory=tuple)  # baseline's top alternatives (token, value)
    reinf_top: Sequence[tuple[str, float]] = field(default_factory=tuple)  # reinforced model's top alternatives
    exact: bool = True  # False: the label recomputed from the stored top-k may differ from the full-vocabulary one
    note: str = ""  # extra hover line

    @property
    def changed(self) -> bool:
        return self.label is not None and self.label != self.text


def _auto_scale(cells: Sequence[TokenCell]) -> float:
    vals = [abs(c.score) for c in cells if c.score is not None and math.isfinite(c.score)]
    if not vals:
        return 1.0
    # the 95th percentile keeps one outlier from washing out every other colour
    return float(np.percentile(vals, 95)) or max(vals) or 1.0


def _hover(c: TokenCell, i: int, value_name: str) -> str:
    lines = [f"token {i}: {show_token(c.text)}"]
    if c.label is not None:
        lines.append(f"generic label: {show_token(c.label)}" + (" (changed)" if c.changed else " (same)"))
    if c.score is not None:
        lines.append(f"reinforced − baseline: {c.score:+.3f}")
    if c.reinf_top:
        lines.append(f"reinforced top ({value_name}): {top_list(c.reinf_top)}")
    if c.base_top:
        lines.append(f"baseline top ({value_name}): {top_list(c.base_top)}")
    if not c.exact:
        lines.append("⚠ not exact: a token outside the stored top-k could win at this alpha")
    if c.note:
        lines.append(c.note)
    return "&#10;".join(esc(ln) for ln in lines)


def token_diff_html(
    cells: Sequence[TokenCell],
    title: str = "",
    scale: float | None = None,
    show_labels: bool = True,
    legend: bool = True,
    value_name: str = "logit",
    score_name: str = "reinforced − baseline",
) -> str:
    """The token diff of ``cells`` as an HTML string (everything escaped; inline styles only)."""
    scale = _auto_scale(cells) if scale is None else float(scale)
    parts = []
    if title:
        parts.append(f'<div class="wb-title" style="font-weight:600;margin-bottom:4px">{esc(title)}</div>')
    if legend:
        n_lab = sum(c.label is not None for c in cells)
        n_changed = sum(c.changed for c in cells)
        n_inexact = sum(not c.exact for c in cells)
        stats = f"{n_changed} of {n_lab} labels changed" if show_labels and n_lab else ""
        if n_inexact:
            stats += f"; {n_inexact} not exact (dashed)"
        parts.append(
            '<div class="wb-legend" style="font-size:11px;color:#555;margin-bottom:4px">'
            f"background: {esc(score_name)} "
            f'<span style="background:{score_color(scale, scale)};padding:0 4px">+{scale:.2g}</span> '
            f'<span style="background:{score_color(-scale, scale)};padding:0 4px">−{scale:.2g}</span>'
            + (
                f' · lower line: generic label (<span style="color:{CHANGED_COLOR};font-weight:600">changed</span>)'
                if show_labels
                else ""
            )
            + (f" · {esc(stats)}" if stats else "")
            + " · hover a token for both models' top alternatives</div>"
        )
    body = []
    for i, c in enumerate(cells):
        classes = ["wb-tok"]
        style = [
            f"background:{score_color(c.score, scale)}",
            "display:inline-block",
            "vertical-align:top",
            "margin:1px 0",
            "border-radius:2px",
        ]
        if c.changed:
            classes.append("wb-changed")
        if not c.exact:
            classes.append("wb-inexact")
            style.append("outline:1px dashed #e36209")
        shown = c.text.replace("\n", "⏎").replace("\t", "⇥") or "∅"
        inner = f'<span class="wb-orig" style="white-space:pre">{esc(shown)}</span>'
        if show_labels:
            if c.label is None:
                lab = '<span class="wb-lab" style="font-size:0.75em;color:#bbb">&nbsp;</span>'
            elif c.changed:
                lab = (
                    f'<span class="wb-lab" style="white-space:pre;font-size:0.75em;font-weight:600;'
                    f'color:{CHANGED_COLOR}">{esc(show_token(c.label))}</span>'
                )
            else:
                lab = '<span class="wb-lab" style="font-size:0.75em;color:#999">=</span>'
            inner += "<br>" + lab
        body.append(
            f'<span class="{" ".join(classes)}" title="{_hover(c, i, value_name)}" style="{";".join(style)}">'
            f"{inner}</span>"
        )
        if "\n" in c.text:
            body.append("<br>")
    parts.append(
        '<div class="wb-tokens" style="font-family:var(--jp-code-font-family, monospace);font-size:13px;'
        f'line-height:1.25">{"".join(body)}</div>'
    )
    return '<div class="wb-tokdiff">' + "".join(parts) + "</div>"


def _tops(tokenizer, ids: np.ndarray, vals: np.ndarray, top: int) -> list[tuple[str, float]]:
    order = np.argsort(-vals)[:top]
    texts = token_texts(tokenizer, ids[order])
    return [(t, float(vals[j])) for t, j in zip(texts, order)]


class TokenDiff:
    """A rendered token diff: ``cells``, ``html``, ``widget``; displays itself in Jupyter."""

    def __init__(
        self,
        cells: Sequence[TokenCell],
        title: str = "",
        scale: float | None = None,
        show_labels: bool = True,
        value_name: str = "logit",
        score_name: str = "reinforced − baseline",
    ):
        self.cells = list(cells)
        self.title = title
        self.scale = scale
        self.show_labels = show_labels
        self.value_name = value_name
        self.score_name = score_name
        self._widget = None

    @property
    def html(self) -> str:
        return token_diff_html(
            self.cells, self.title, self.scale, self.show_labels, True, self.value_name, self.score_name
        )

    def _repr_html_(self) -> str:
        return self.html

    @property
    def widget(self):
        import ipywidgets as W

        if self._widget is None:
            self._widget = W.HTML(self.html)
        return self._widget

    @property
    def changed(self) -> list[tuple[int, str, str]]:
        """(token index, original, label) of every changed label."""
        return [(i, c.text, c.label) for i, c in enumerate(self.cells) if c.changed]

    # -- builders -----------------------------------------------------------------------------------------
    @classmethod
    def from_store(
        cls, store, tokenizer, block: int, alpha: float | None = None, top: int = 5, title: str | None = None
    ) -> "TokenDiff":
        """From a :class:`~workbench.labels.LabelStore`: labels for ``alpha`` (default: the largest stored one).

        A stored alpha uses the stored labels (always exact); any other alpha is recomputed from the top-k,
        and positions where that is not provably exact are drawn dashed.
        """
        from workbench.labels import labels_at

        alpha = max(store.alphas) if alpha is None else float(alpha)
        row = store.blocks[store.blocks["block"] == block]
        if row.empty:
            raise KeyError(
                f"block {block} is not in the label store (blocks: {store.blocks['block'].min()}..{store.blocks['block'].max()})"
            )
        input_ids = np.asarray(row.iloc[0]["input_ids"], dtype=np.int64)
        pos_df = store.positions[store.positions["block"] == block]
        arr = store.topk_arrays(block)
        labels, exact, _ = labels_at(pos_df, arr, alpha)
        return cls(
            label_cells(
                tokenizer, input_ids, pos_df["pos"].to_numpy(), labels, exact, pos_df["gain_next"].to_numpy(), arr, top
            ),
            title if title is not None else f"block {block}, alpha = {alpha:g}",
        )

    @classmethod
    def from_scores(cls, scores, tokenizer, block, title: str | None = None) -> "TokenDiff":
        """From the scoring stage's table (``Run.score()``): colour = log-probability gain of each token.

        ``block`` is a :class:`~workbench.corpus.Block` (its ids are the rendered tokens). Hover shows both
        models' probabilities of the token and the tokens the reinforced model raised most there.
        """
        df = scores[scores["block"] == block.index]
        ids = np.asarray(block.input_ids)
        texts = token_texts(tokenizer, ids)
        cells = [TokenCell(texts[0], note="first token: nothing predicts it")]
        by_pos = {int(r.pos): r for r in df.itertuples()}
        for i in range(1, len(ids)):
            r = by_pos.get(i - 1)
            if r is None:
                cells.append(TokenCell(texts[i]))
                continue
            raised = [show_token(tokenizer.convert_tokens_to_string([t])) for t in list(r.raised)]
            cells.append(
                TokenCell(
                    texts[i],
                    None,
                    float(r.gain_logprob),
                    base_top=[(texts[i], float(r.p_base))],
                    reinf_top=[(texts[i], float(r.p_reinf))],
                    note="raised most by reinforcement here: " + ", ".join(raised),
                )
            )
        return cls(
            cells,
            title if title is not None else f"block {block.index}: log-probability gain",
            show_labels=False,
            value_name="probability of this token",
            score_name="log p(reinforced) − log p(baseline)",
        )

    @classmethod
    def from_pair(cls, pair, tokenizer, block, top: int = 5, title: str | None = None) -> "TokenDiff":
        """From a live :class:`~workbench.model_pair.ModelPair` on the *original* block (no translation, no labels).

        Colour: log-probability gain of each token; hover: both models' top next tokens with probabilities.
        """
        import torch

        ids = np.asarray(block.input_ids, dtype=np.int64)
        x = torch.as_tensor(ids[None], device=pair.device)
        mask = torch.ones_like(x)
        with torch.no_grad():
            lb = torch.log_softmax(pair.base_logits(x, mask)[0].float(), -1)
            lr = torch.log_softmax(pair.reinforced_logits(x, mask)[0].float(), -1)
        pb, b_ids = lb.exp().topk(top, -1)
        pr, r_ids = lr.exp().topk(top, -1)
        nxt = torch.as_tensor(ids[1:], device=lb.device)
        gain = (lr[:-1].gather(-1, nxt[:, None]) - lb[:-1].gather(-1, nxt[:, None]))[:, 0].cpu().numpy()
        texts = token_texts(tokenizer, ids)
        cells = [TokenCell(texts[0], note="first token: nothing predicts it")]
        for i in range(1, len(ids)):
            p = i - 1
            cells.append(
                TokenCell(
                    texts[i],
                    None,
                    float(gain[p]),
                    base_top=_tops(tokenizer, b_ids[p].cpu().numpy(), pb[p].cpu().numpy(), top),
                    reinf_top=_tops(tokenizer, r_ids[p].cpu().numpy(), pr[p].cpu().numpy(), top),
                )
            )
        return cls(
            cells,
            title if title is not None else f"block {block.index}: log-probability gain",
            show_labels=False,
            value_name="probability",
            score_name="log p(reinforced) − log p(baseline)",
        )


def label_cells(
    tokenizer,
    input_ids: np.ndarray,
    positions: np.ndarray,
    labels: np.ndarray,
    exact: np.ndarray,
    gains: np.ndarray,
    arr: dict,
    top: int,
) -> list[TokenCell]:
    texts = token_texts(tokenizer, input_ids)
    label_texts = token_texts(tokenizer, labels) if len(labels) else []
    at = {int(p): j for j, p in enumerate(positions)}
    cells = [TokenCell(texts[0], note="first token: nothing predicts it")]
    for i in range(1, len(input_ids)):
        j = at.get(i - 1)
        if j is None:
            cells.append(
                TokenCell(texts[i], note="no label here (inside an anchor, a repeated anchor, or the block's end)")
            )
            continue
        cells.append(
            TokenCell(
                texts[i],
                label_texts[j],
                float(gains[j]),
                base_top=_tops(tokenizer, arr["base_ids"][j], arr["base_vals"][j], top),
                reinf_top=_tops(tokenizer, arr["reinf_ids"][j], arr["reinf_vals"][j], top),
                exact=bool(exact[j]),
            )
        )
    return cells
