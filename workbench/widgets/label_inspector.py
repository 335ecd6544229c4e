"""Label inspector: generic labels of any block at any alpha, recomputed from the stored top-k, no model needed.

At a stored alpha (``labels.alphas``) the inspector shows exactly the labels the labels stage stored, the ones a
run trains on. For any other alpha it recomputes them: the labels stage stores, per labelled position, the
baseline's top-k tokens on the translated text with the reinforced logits at those tokens, and
``argmax(v_base - alpha * relu(v_reinf - v_base))`` over those k tokens is the label; it is provably the
full-vocabulary label when the winner's generic score is at least the k-th baseline logit, and the inspector
flags (dashes) the positions where that check fails.

Statistics: the share of labels that differ from the original next token as alpha grows (a plotly chart),
and the most frequent original → generic substitutions at the chosen alpha.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.labels import LabelStore, alpha_column, labels_at, labels_from_topk
from workbench.widgets._common import WidgetView, df_html, esc, figure_widget, show_token, token_texts
from workbench.widgets.token_diff import TokenDiff, label_cells

__all__ = ["LabelInspector"]


class LabelInspector(WidgetView):
    """Inspect the labels of a run.

    ``store``: a :class:`~workbench.labels.LabelStore` or a labels folder (``<run>/labels``); ``tokenizer``:
    the run's tokenizer (``run.tokenizer``). Set :attr:`alpha` / :attr:`block` with :meth:`set_alpha` /
    :meth:`set_block` (the slider and dropdown call them); read :meth:`labels`, :meth:`changed_share`,
    :meth:`substitutions`; ``.widget`` is the ipywidgets container.
    """

    def __init__(
        self,
        store: LabelStore | str | os.PathLike,
        tokenizer,
        block: int | None = None,
        alpha: float | None = None,
        alpha_grid: Sequence[float] | None = None,
        top: int = 5,
    ):
        # anything with the LabelStore read interface (alphas, blocks, positions, topk_arrays) will do
        self.store = store if hasattr(store, "topk_arrays") else LabelStore(store)
        self.tokenizer = tokenizer
        self.top = top
        pos = self.store.positions
        self._blocks_all = [int(b) for b in self.store.blocks["block"]]
        self._arr = self.store.topk_arrays()  # all positions, stacked once
        self._block_col = pos["block"].to_numpy()
        self._next = pos["next_id"].to_numpy()
        self._pos = pos["pos"].to_numpy()
        self._gain = pos["gain_next"].to_numpy()
        stored = self.store.alphas
        self.alpha = float(alpha if alpha is not None else max(stored))
        self.block = int(block if block is not None else self._blocks_all[0])
        hi = max(20.0, max(stored) * 2)
        self.alpha_grid = [
            float(a) for a in (alpha_grid if alpha_grid is not None else np.round(np.linspace(0, hi, 41), 3))
        ]
        self._w = None
        self._syncing = False

    # -- computations -------------------------------------------------------------------------------------
    def _labels_all(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Every position's label at ``alpha``: the stored ones at a stored alpha, else recomputed."""
        lab, exact, _ = labels_at(self.store.positions, self._arr, alpha)
        return lab, exact

    def labels(self, alpha: float | None = None, block: int | None = None) -> pd.DataFrame:
        """One row per labelled position: block, pos, next_id, label, exact, changed, stored (the label the
        labels stage stored for this alpha, -1 if it was not a stored alpha), original and generic tokens."""
        alpha = self.alpha if alpha is None else float(alpha)
        lab, exact = self._labels_all(alpha)
        col = alpha_column(alpha)
        stored = self.store.positions[col].to_numpy() if col in self.store.positions.columns else np.full(len(lab), -1)
        df = pd.DataFrame(
            {
                "block": self._block_col,
                "pos": self._pos,
                "next_id": self._next,
                "label": lab,
                "exact": exact,
                "changed": lab != self._next,
                "stored": stored,
                "gain": self._gain,
            }
        )
        if block is not None:
            df = df[df["block"] == block].reset_index(drop=True)
        df["original"] = [show_token(t) for t in token_texts(self.tokenizer, df["next_id"])]
        df["generic"] = [show_token(t) for t in token_texts(self.tokenizer, df["label"])]
        return df

    def changed_share(self, alphas: Sequence[float] | None = None, block: int | None = None) -> pd.DataFrame:
        """Per alpha: share of labels differing from the original next token, and share not provably exact."""
        sel = slice(None) if block is None else self._block_col == block
        rows = []
        for a in self.alpha_grid if alphas is None else alphas:
            lab, exact = self._labels_all(a)
            lab, exact, nxt = lab[sel], exact[sel], self._next[sel]
            n = len(lab)
            rows.append(
                {
                    "alpha": float(a),
                    "labelled": n,
                    "changed_share": float((lab != nxt).mean()) if n else np.nan,
                    "inexact_share": float((~exact).mean()) if n else np.nan,
                }
            )
        return pd.DataFrame(rows)

    def substitutions(self, alpha: float | None = None, block: int | None = None, top: int = 15) -> pd.DataFrame:
        """The most frequent original → generic substitutions (changed labels only): original, generic, count."""
        df = self.labels(alpha, block)
        df = df[df["changed"]]
        if df.empty:
            return pd.DataFrame(columns=["original", "generic", "count"])
        g = df.groupby(["original", "generic"]).size().reset_index(name="count")
        return g.sort_values(["count", "original"], ascending=[False, True]).head(top).reset_index(drop=True)

    def stored_agreement(self) -> pd.DataFrame:
        """For every stored alpha: share of positions where the top-k recomputation equals the stored label
        (1.0 where all are exact; stored labels fell back to the full vocabulary where they were not)."""
        rows = []
        a_ = self._arr
        for a in self.store.alphas:
            lab, exact = labels_from_topk(a_["base_ids"], a_["base_vals"], a_["reinf_at_base"], float(a))
            stored = self.store.positions[alpha_column(a)].to_numpy()
            rows.append(
                {
                    "alpha": a,
                    "agree_share": float((lab == stored).mean()) if len(lab) else np.nan,
                    "exact_share": float(exact.mean()) if len(lab) else np.nan,
                }
            )
        return pd.DataFrame(rows)

    def token_diff(self, alpha: float | None = None, block: int | None = None) -> TokenDiff:
        """The block as a token diff at ``alpha`` (inexact positions dashed)."""
        alpha = self.alpha if alpha is None else float(alpha)
        block = self.block if block is None else int(block)
        row = self.store.blocks[self.store.blocks["block"] == block]
        if row.empty:
            raise KeyError(f"block {block} is not in the label store")
        sel = self._block_col == block
        lab, exact = self._labels_all(alpha)
        arr = {k: v[sel] for k, v in self._arr.items()}
        cells = label_cells(
            self.tokenizer,
            np.asarray(row.iloc[0]["input_ids"]),
            self._pos[sel],
            lab[sel],
            exact[sel],
            self._gain[sel],
            arr,
            self.top,
        )
        return TokenDiff(cells, f"block {block}, alpha = {alpha:g}")

    # -- state changes (the controls call these) -------------------------------------------------------------
    def set_alpha(self, alpha: float) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self._refresh()

    def set_block(self, block: int) -> None:
        if int(block) not in self._blocks_all:
            raise KeyError(f"block {block} is not in the label store")
        self.block = int(block)
        self._refresh()

    # -- rendering ----------------------------------------------------------------------------------------------
    def summary_html(self) -> str:
        blk = self.labels(block=self.block)
        allp = self.labels()
        col = alpha_column(self.alpha)
        stored = col in self.store.positions.columns
        note = (
            "a stored alpha: the labels the labels stage stored (full vocabulary), the ones a run trains on"
            if stored
            else "not a stored alpha: recomputed from the stored top-k"
        )
        n_inexact_blk = int((~blk["exact"]).sum())
        parts = [
            f"<b>alpha = {self.alpha:g}</b> <span style='color:#666'>({esc(note)})</span>",
            f"block {self.block}: {len(blk)} labelled positions, {int(blk['changed'].sum())} changed "
            f"({100 * blk['changed'].mean() if len(blk) else 0:.1f}%), {n_inexact_blk} not exact",
            f"all {len(self._blocks_all)} blocks: {len(allp)} labelled positions, "
            f"{100 * allp['changed'].mean() if len(allp) else 0:.1f}% changed, {int((~allp['exact']).sum())} not exact",
        ]
        if n_inexact_blk:  # only a recomputed alpha can be inexact
            parts.append(
                "<span style='color:#e36209'>dashed tokens: a token outside the stored top-k could win at this "
                "alpha; store a larger labels.top_k or use a stored alpha "
                f"({esc(', '.join(f'{a:g}' for a in self.store.alphas))})</span>"
            )
        return '<div class="wb-label-summary" style="font-size:12px">' + "<br>".join(parts) + "</div>"

    def figure(self):
        """Changed share vs alpha (all blocks and the chosen block) as a plotly FigureWidget."""
        allc = self.changed_share()
        blk = self.changed_share(block=self.block)
        fig = figure_widget()
        fig.add_scatter(x=allc["alpha"], y=allc["changed_share"], mode="lines", name="all blocks")
        fig.add_scatter(
            x=blk["alpha"], y=blk["changed_share"], mode="lines", name=f"block {self.block}", line=dict(dash="dot")
        )
        fig.add_scatter(
            x=allc["alpha"],
            y=allc["inexact_share"],
            mode="lines",
            name="not exact (all)",
            line=dict(color="#e36209", width=1),
        )
        fig.add_vline(x=self.alpha, line=dict(color="#888", dash="dash"))
        fig.update_layout(
            height=260,
            margin=dict(l=40, r=10, t=30, b=30),
            title="share of labels that differ from the original token",
            xaxis_title="alpha",
            yaxis=dict(range=[0, 1.02]),
            legend=dict(orientation="h", y=-0.3),
        )
        return fig

    def _build(self) -> None:
        import ipywidgets as W

        stored = self.store.alphas
        hi = max(self.alpha_grid)
        w: dict = {}
        w["block"] = W.Dropdown(options=self._blocks_all, value=self.block, description="block")
        w["alpha"] = W.FloatSlider(
            value=self.alpha,
            min=0.0,
            max=hi,
            step=0.5,
            description="alpha",
            continuous_update=False,
            readout_format=".1f",
        )
        w["stored"] = W.HTML(
            f"<span style='font-size:11px;color:#666'>stored alphas: {esc(', '.join(f'{a:g}' for a in stored))}</span>"
        )
        w["summary"] = W.HTML()
        w["tokens"] = W.HTML()
        w["subs"] = W.HTML()
        w["fig"] = self.figure()
        for name in ("block", "alpha", "summary", "tokens", "subs"):
            w[name].add_class(f"wb-labels-{name}")
        w["block"].observe(lambda ch: None if self._syncing else self.set_block(ch["new"]), names="value")
        w["alpha"].observe(lambda ch: None if self._syncing else self.set_alpha(ch["new"]), names="value")
        right = W.VBox([W.HTML("<b>most frequent substitutions</b>"), w["subs"]], layout=W.Layout(width="35%"))
        w["root"] = W.VBox(
            [
                W.HBox([w["block"], w["alpha"], w["stored"]]),
                w["summary"],
                W.HBox([W.VBox([w["tokens"]], layout=W.Layout(width="65%")), right]),
                w["fig"],
            ]
        )
        w["root"].add_class("wb-label-inspector")
        self._w = w
        self._refresh()

    def _refresh(self) -> None:
        w = self._w
        if w is None:
            return
        self._syncing = True
        try:
            if w["block"].value != self.block:
                w["block"].value = self.block
            if self.alpha > w["alpha"].max:
                w["alpha"].max = self.alpha
            if abs(w["alpha"].value - self.alpha) > 1e-9:
                w["alpha"].value = self.alpha
        finally:
            self._syncing = False
        w["summary"].value = self.summary_html()
        w["tokens"].value = self.token_diff().html
        w["subs"].value = df_html(self.substitutions(), 15)
        blk = self.changed_share(block=self.block)
        fig = w["fig"]
        with fig.batch_update():
            fig.data[1].y = blk["changed_share"].tolist()
            fig.data[1].name = f"block {self.block}"
            fig.layout.shapes[0].x0 = self.alpha
            fig.layout.shapes[0].x1 = self.alpha
