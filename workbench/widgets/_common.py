"""Small helpers shared by the widgets: escaping, token display, colours, HTML tables."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

import pandas as pd

__all__ = [
    "esc",
    "show_token",
    "token_texts",
    "score_color",
    "df_html",
    "figure_widget",
    "CHANGED_COLOR",
    "ANCHOR_COLOR",
    "GENERIC_COLOR",
    "fmt_number",
    "clean_token",
    "readable",
]

CHANGED_COLOR = "#1a7f37"  # generic labels that differ from the original token
ANCHOR_COLOR = "#fff3b0"  # anchored expressions in the original text
GENERIC_COLOR = "#c8f7c5"  # their generic replacements in the translated text


def esc(text: object) -> str:
    """HTML-escape anything (quotes too, so the result is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def show_token(text: str) -> str:
    """A token as a short visible string: a leading space as '␣', newlines as '⏎', tabs as '⇥'."""
    if text == "":
        return "∅"
    out = text.replace("\n", "⏎").replace("\t", "⇥")
    if out.startswith(" "):
        out = "␣" + out[1:]
    return out


def token_texts(tokenizer, ids: Iterable[int]) -> list[str]:
    """Each id decoded alone (the text it contributes); cached per tokenizer for speed."""
    cache = getattr(tokenizer, "_wb_piece_cache", None)
    if cache is None:
        cache = {}
        try:
            tokenizer._wb_piece_cache = cache
        except AttributeError:  # pragma: no cover - exotic tokenizers without a __dict__
            pass
    out = []
    for i in ids:
        i = int(i)
        if i not in cache:
            cache[i] = tokenizer.decode([i])
        out.append(cache[i])
    return out


def score_color(score: float | None, scale: float) -> str:
    """Diverging background: red where the reinforced model is higher, blue where lower, white at 0."""
    if score is None or scale <= 0 or not math.isfinite(score):
        return "transparent"
    a = min(1.0, abs(score) / scale) * 0.8
    if a < 0.02:
        return "transparent"
    r, g, b = (214, 39, 40) if score > 0 else (31, 119, 180)
    return f"rgba({r},{g},{b},{a:.2f})"


def fmt_number(v: float) -> str:
    """A number people can read: 3 decimals from 0.01 up, 2 significant digits below (0.00042, not 0.000)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def clean_token(tokenizer, piece) -> str:
    """A tokenizer piece ('ĠPotter', 'Ċ') as the text it stands for ('Potter', '⏎')."""
    if tokenizer is None or not isinstance(piece, str):
        return str(piece)
    text = tokenizer.convert_tokens_to_string([piece])
    return text.strip() or show_token(text)


_PIECE_COLUMNS = ("next_token", "raised")  # tokenizer pieces (scores.parquet)
_TEXT_COLUMNS = ("token", "original", "generic", "target", "word")  # decoded token text


def _word(text) -> str:
    return (text.strip() or show_token(text)) if isinstance(text, str) else text


def readable(df: pd.DataFrame, tokenizer=None):
    """A table for people (a pandas Styler): tokenizer pieces and token texts as words ('ĠPotter' → 'Potter',
    '\\n' → '⏎'), numbers in readable formats (0.00042, not 0.000), no index."""
    out = df.copy()
    for col in _PIECE_COLUMNS:
        if col in out and tokenizer is not None:
            out[col] = [
                clean_token(tokenizer, v) if isinstance(v, str) else ", ".join(clean_token(tokenizer, p) for p in v)
                for v in out[col]
            ]
    for col in _TEXT_COLUMNS:
        if col in out and out[col].dtype == object:
            out[col] = [_word(v) for v in out[col]]
    floats = [c for c in out.columns if pd.api.types.is_float_dtype(out[c])]
    return out.style.format(fmt_number, subset=floats).hide(axis="index")


def df_html(df: pd.DataFrame, max_rows: int = 50, float_format: str | None = None, classes: str = "wb-table") -> str:
    """A compact, escaped HTML table of a DataFrame (index dropped)."""
    style = "border-collapse:collapse;font-size:12px;margin:4px 0;font-family:var(--jp-ui-font-family, sans-serif)"
    cell = "border-bottom:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top"
    head = "".join(f'<th style="{cell};font-weight:600">{esc(c)}</th>' for c in df.columns)
    rows = []
    for _, r in df.head(max_rows).iterrows():
        tds = []
        for c in df.columns:
            v = r[c]
            if isinstance(v, float):
                v = "" if math.isnan(v) else (float_format.format(v) if float_format else fmt_number(v))
            tds.append(f'<td style="{cell}">{esc(v)}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    more = (
        f'<div style="font-size:11px;color:#666">… {len(df) - max_rows} more rows</div>' if len(df) > max_rows else ""
    )
    return f'<table class="{classes}" style="{style}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{more}'


def top_list(pairs: Sequence[tuple[str, float]], fmt: str = "{:.2f}") -> str:
    """'␣Harry 12.30, ␣the 11.02' for a hover text."""
    return ", ".join(f"{show_token(t)} {fmt.format(v)}" for t, v in pairs)


def figure_widget():
    """An empty plotly ``FigureWidget`` (plotly 6+ builds it on anywidget; say so when that is missing)."""
    import plotly.graph_objects as go

    try:
        return go.FigureWidget()
    except ImportError as exc:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(f"live plots need the anywidget package: `pip install anywidget` ({exc})") from exc


class WidgetView:
    """Mixin for the widgets: ``.widget`` builds the ipywidgets container on first use (``_build`` fills
    ``self._w`` with a ``"root"`` entry), and the object displays itself as a notebook cell's last expression."""

    _w: dict | None = None

    @property
    def widget(self):
        if self._w is None:
            self._build()
        return self._w["root"]

    def _build(self) -> None:  # pragma: no cover - every widget defines it
        raise NotImplementedError

    def _ipython_display_(self):  # pragma: no cover - only in a live notebook
        from IPython.display import display

        display(self.widget)
