"""Probe comparer: models' completions side by side, and probability probes before/after.

Any number of models (the baseline first, then one or more unlearned variants): the completions view shows the
first model beside the one picked in "compare with"; tables and charts show every model.

- completion probes: each prompt's completion by both models, with a token-level diff (what one model wrote
  that the other did not) and the judge's 0-3 familiarity grade and matched terms;
- probability probes: the probability of the correct next token under each model, as a plotly bar chart per
  probe (filtered by probe set) and a table of means.

Build one from data you already have (``score_completions`` / ``score_probes`` frames with a ``model`` /
``variant`` column), or let :meth:`ProbeComparer.from_models` generate, grade and score.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from workbench.widgets._common import WidgetView, df_html, esc, figure_widget

__all__ = ["ProbeComparer", "diff_tokens", "completion_diff_html", "grade_badge"]

_PIECE = re.compile(r"\s+|\w+|[^\w\s]")
_GRADE_COLORS = {0: "#1a7f37", 1: "#9a6700", 2: "#d1242f", 3: "#82071e"}


def diff_tokens(text: str, tokenizer=None) -> list[str]:
    """The pieces a diff compares: the tokenizer's tokens (as text) when given, else words, spaces, punctuation."""
    if tokenizer is None:
        return _PIECE.findall(text)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pieces, last = [], 0
    for _, end in enc["offset_mapping"]:
        if end > last:  # each piece runs from the previous token's end, so the pieces join to the text
            pieces.append(text[last:end])
            last = end
    if last < len(text):
        pieces.append(text[last:])
    return pieces


def completion_diff_html(a: str, b: str, tokenizer=None) -> tuple[str, str]:
    """(html of a, html of b): pieces only in ``a`` marked red (struck), only in ``b`` marked green."""
    ta, tb = diff_tokens(a, tokenizer), diff_tokens(b, tokenizer)
    sm = difflib.SequenceMatcher(a=ta, b=tb, autojunk=False)
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        sa, sb = esc("".join(ta[i1:i2])), esc("".join(tb[j1:j2]))
        if op == "equal":
            out_a.append(sa)
            out_b.append(sb)
            continue
        if i2 > i1:
            out_a.append(f'<span class="wb-del" style="background:#ffd7d5;text-decoration:line-through">{sa}</span>')
        if j2 > j1:
            out_b.append(f'<span class="wb-ins" style="background:#ccffd8">{sb}</span>')
    return "".join(out_a), "".join(out_b)


def grade_badge(grade, matched: str = "", judge: str = "") -> str:
    """A coloured 'grade 2/3' badge with the matched terms on hover."""
    if grade is None or (isinstance(grade, float) and grade != grade):
        return '<span class="wb-grade" style="color:#888">ungraded</span>'
    g = int(grade)
    hover = f"{judge} judge; matched: {matched or 'nothing'}"
    return (
        f'<span class="wb-grade" title="{esc(hover)}" style="color:white;background:{_GRADE_COLORS.get(g, "#555")};'
        f'padding:0 6px;border-radius:8px;font-size:11px">grade {g}/3</span>'
        + (f' <span style="font-size:11px;color:#666">{esc(matched)}</span>' if matched else "")
    )


class ProbeComparer(WidgetView):
    """Compare models (two or more; the first is the reference) on completion and probability probes.

    ``completions``: rows of :func:`~workbench.eval.completion.score_completions` with a ``model`` column.
    ``probabilities``: rows of :func:`~workbench.eval.probes.score_probes` whose ``variant`` is the model name.
    ``names``: the model names, the reference first (default: their order in the data).
    """

    def __init__(
        self,
        completions: pd.DataFrame | None = None,
        probabilities: pd.DataFrame | None = None,
        names: Sequence[str] | None = None,
        tokenizer=None,
    ):
        self.completions = (
            completions
            if completions is not None
            else pd.DataFrame(
                columns=["model", "probe_id", "prompt", "completion", "grade", "matched", "mode", "sample"]
            )
        )
        self.probabilities = (
            probabilities
            if probabilities is not None
            else pd.DataFrame(columns=["variant", "set", "probe_id", "prompt", "target", "prob"])
        )
        seen = list(
            dict.fromkeys(list(self.completions.get("model", [])) + list(self.probabilities.get("variant", [])))
        )
        self.names = list(names) if names is not None else seen
        if len(self.names) < 2:
            raise ValueError(f"give at least two models to compare, found {self.names}")
        self.right = self.names[1]  # the model shown beside the reference in the completions view
        self.tokenizer = tokenizer
        ids = list(dict.fromkeys(self.completions["probe_id"])) if len(self.completions) else []
        self.probe_ids = ids
        self.selected = ids[0] if ids else None
        sets = list(dict.fromkeys(self.probabilities["set"])) if len(self.probabilities) else []
        self.sets = sets
        self.prob_set = sets[0] if sets else None
        self.log_scale = False
        self._w = None

    # -- building from models -----------------------------------------------------------------------------
    @classmethod
    def from_models(
        cls,
        models: Mapping,
        completion_probes: Sequence = (),
        probability_probes: Sequence = (),
        judge=None,
        generation=None,
        anchor_terms: Sequence[str] = (),
    ) -> "ProbeComparer":
        """Generate, grade and score with loaded models (``{'baseline': lm, 'unlearned': lm2, ...}``).

        ``judge`` defaults to the offline :class:`~workbench.eval.completion.KeywordJudge` with ``anchor_terms``.
        """
        from workbench.eval.completion import CompletionSettings, KeywordJudge, score_completions
        from workbench.eval.probes import score_probes

        if len(models) < 2:
            raise ValueError(f"give at least two models, got {list(models)}")
        judge = judge or KeywordJudge(anchor_terms=list(anchor_terms))
        generation = generation or CompletionSettings(max_new_tokens=24)
        comp, prob = [], []
        for name, lm in models.items():
            if completion_probes:
                comp.append(score_completions(lm, list(completion_probes), judge, generation).assign(model=name))
            if probability_probes:
                prob.append(score_probes(lm, list(probability_probes), variant=name))
        tok = next(iter(models.values())).tokenizer
        return cls(
            pd.concat(comp, ignore_index=True) if comp else None,
            pd.concat(prob, ignore_index=True) if prob else None,
            list(models),
            tok,
        )

    # -- data views -----------------------------------------------------------------------------------------
    def _completion(self, model: str, probe_id: str) -> pd.Series | None:
        df = self.completions
        df = df[(df["model"] == model) & (df["probe_id"] == probe_id)]
        if "mode" in df.columns and (df["mode"] == "greedy").any():
            df = df[df["mode"] == "greedy"]
        return df.iloc[0] if len(df) else None

    def comparison_html(self, probe_id: str | None = None) -> str:
        """The selected prompt and both completions side by side, diffed, with grades."""
        probe_id = self.selected if probe_id is None else probe_id
        if probe_id is None:
            return '<div class="wb-compare" style="color:#666">no completion probes</div>'
        a, b = (self._completion(n, probe_id) for n in (self.names[0], self.right))
        if a is None and b is None:
            return f'<div class="wb-compare" style="color:#666">no completions for probe {esc(probe_id)}</div>'
        prompt = (a if a is not None else b)["prompt"]
        ha, hb = completion_diff_html(
            "" if a is None else str(a["completion"]), "" if b is None else str(b["completion"]), self.tokenizer
        )
        pane = (
            "flex:1;min-width:0;border:1px solid #ddd;padding:6px;white-space:pre-wrap;"
            "font-family:var(--jp-code-font-family, monospace);font-size:12px"
        )

        def side(name, row, body):
            badge = grade_badge(
                None if row is None else row.get("grade"),
                "" if row is None else str(row.get("matched") or ""),
                "" if row is None else str(row.get("judge", "")),
            )
            return (
                f'<div class="wb-side" style="{pane}"><div style="font-family:sans-serif;margin-bottom:4px">'
                f"<b>{esc(name)}</b> {badge}</div><span style='color:#888'>{esc(prompt)}</span>{body}</div>"
            )

        return (
            f'<div class="wb-compare"><div style="font-size:12px;color:#444;margin-bottom:4px">probe '
            f"<b>{esc(probe_id)}</b>: red struck = only on the left, green = only on the right</div>"
            f'<div style="display:flex;gap:8px">{side(self.names[0], a, ha)}{side(self.right, b, hb)}</div></div>'
        )

    def grade_summary(self) -> pd.DataFrame:
        """Per model: completions, mean grade, familiarity (mean grade / 3) and the share of each grade."""
        df = self.completions
        rows = []
        for name in self.names:
            g = pd.to_numeric(df[df["model"] == name]["grade"], errors="coerce").dropna()
            row = {
                "model": name,
                "n": int((df["model"] == name).sum()),
                "mean_grade": float(g.mean()) if len(g) else float("nan"),
                "familiarity": float(g.mean() / 3) if len(g) else float("nan"),
            }
            for k in range(4):
                row[f"share_{k}"] = float((g == k).mean()) if len(g) else float("nan")
            rows.append(row)
        return pd.DataFrame(rows)

    def probability_table(self, probe_set: str | None = None) -> pd.DataFrame:
        """One row per probe: prompt, target and each model's probability of the correct next token."""
        df = self.probabilities
        if df.empty:
            return pd.DataFrame(columns=["set", "probe_id", "prompt", "target", *self.names])
        if probe_set is not None:
            df = df[df["set"] == probe_set]
        wide = df.pivot_table(index=["set", "probe_id"], columns="variant", values="prob", aggfunc="first")
        info = df.drop_duplicates(["set", "probe_id"]).set_index(["set", "probe_id"])[["prompt", "target"]]
        out = info.join(wide).reset_index()
        cols = ["set", "probe_id", "prompt", "target"] + [n for n in self.names if n in out.columns]
        return out[cols]

    def probability_summary(self) -> pd.DataFrame:
        """Per probe set: mean probability under each model and its relative change from the first model
        (column ``change`` with two models, ``change <name>`` per model with more)."""
        t = self.probability_table()
        if t.empty:
            return pd.DataFrame(columns=["set", "n", *self.names, "change"])
        ref, others = self.names[0], [n for n in self.names[1:] if n in t]
        g = t.groupby("set", sort=False).agg(n=("probe_id", "size"), **{n: (n, "mean") for n in [ref, *others]})
        g = g.reset_index()
        for n in others:
            col = "change" if len(self.names) == 2 else f"change {n}"
            g[col] = [f"{100 * (y / x - 1):+.1f}%" if x else "" for x, y in zip(g[ref], g[n])]
        return g

    def figure(self):
        """Grouped bars: the correct token's probability per probe of the selected set, one colour per model."""
        fig = figure_widget()
        t = self.probability_table(self.prob_set)
        for name in self.names:
            fig.add_bar(
                x=t["probe_id"].tolist() if len(t) else [],
                y=t[name].tolist() if name in t else [],
                name=name,
                hovertext=[f"{p} → {tg}" for p, tg in zip(t["prompt"], t["target"])] if len(t) else [],
            )
        fig.update_layout(
            barmode="group",
            height=320,
            margin=dict(l=50, r=10, t=40, b=80),
            title=f"P(correct next token): {self.prob_set or 'no probes'}",
            yaxis_title="probability",
            yaxis_type="log" if self.log_scale else "linear",
            legend=dict(orientation="h", y=1.1),
        )
        return fig

    # -- state changes ------------------------------------------------------------------------------------------
    def select(self, probe_id: str) -> None:
        if probe_id not in self.probe_ids:
            raise KeyError(f"unknown completion probe {probe_id!r}")
        self.selected = probe_id
        self._refresh()

    def set_right(self, name: str) -> None:
        """The model shown beside the reference in the completions view."""
        if name not in self.names[1:]:
            raise KeyError(f"unknown model {name!r}; models: {self.names[1:]}")
        self.right = name
        self._refresh()

    def set_probe_set(self, probe_set: str) -> None:
        if probe_set not in self.sets:
            raise KeyError(f"unknown probe set {probe_set!r}; sets: {self.sets}")
        self.prob_set = probe_set
        self._refresh()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = bool(on)
        self._refresh()

    # -- widget -----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        import ipywidgets as W

        prompts = {}
        if len(self.completions):
            prompts = dict(zip(self.completions["probe_id"], self.completions["prompt"]))
        w: dict = {}
        w["probe"] = W.Dropdown(
            options=[(f"{i}: {str(prompts.get(i, ''))[:60]}", i) for i in self.probe_ids],
            value=self.selected,
            description="prompt",
            layout=W.Layout(width="90%"),
        )
        w["right"] = W.Dropdown(
            options=self.names[1:],
            value=self.right,
            description="compare with",
            layout=W.Layout(display="" if len(self.names) > 2 else "none"),
        )
        w["right"].observe(lambda ch: ch["new"] is not None and self.set_right(ch["new"]), names="value")
        w["compare"] = W.HTML()
        w["grades"] = W.HTML()
        w["set"] = W.Dropdown(options=self.sets, value=self.prob_set, description="probe set")
        w["log"] = W.Checkbox(value=self.log_scale, description="log scale", indent=False)
        w["probsum"] = W.HTML()
        w["fig"] = self.figure()
        for name in ("probe", "compare", "grades", "set", "probsum"):
            w[name].add_class(f"wb-probes-{name}")
        w["probe"].observe(lambda ch: ch["new"] is not None and self.select(ch["new"]), names="value")
        w["set"].observe(lambda ch: ch["new"] is not None and self.set_probe_set(ch["new"]), names="value")
        w["log"].observe(lambda ch: self.set_log_scale(ch["new"]), names="value")
        tabs = []
        titles = []
        if self.probe_ids:
            tabs.append(W.VBox([W.HBox([w["probe"], w["right"]]), w["compare"], W.HTML("<b>grades</b>"), w["grades"]]))
            titles.append("completions")
        if self.sets:
            tabs.append(W.VBox([W.HBox([w["set"], w["log"]]), w["fig"], w["probsum"]]))
            titles.append("probability probes")
        root = W.Tab(children=tabs)
        for i, t in enumerate(titles):
            root.set_title(i, t)
        root.add_class("wb-probe-comparer")
        w["root"] = root
        self._w = w
        self._refresh()

    def _refresh(self) -> None:
        w = self._w
        if w is None:
            return
        if self.selected is not None and w["probe"].value != self.selected:
            w["probe"].value = self.selected
        w["compare"].value = self.comparison_html()
        w["grades"].value = df_html(self.grade_summary()) if self.probe_ids else ""
        w["probsum"].value = df_html(self.probability_summary()) if self.sets else ""
        if self.sets:
            t = self.probability_table(self.prob_set)
            fig = w["fig"]
            with fig.batch_update():
                for trace, name in zip(fig.data, self.names):
                    trace.x = t["probe_id"].tolist()
                    trace.y = t[name].tolist() if name in t else []
                    trace.hovertext = [f"{p} → {tg}" for p, tg in zip(t["prompt"], t["target"])]
                fig.layout.title.text = f"P(correct next token): {self.prob_set}"
                fig.layout.yaxis.type = "log" if self.log_scale else "linear"
