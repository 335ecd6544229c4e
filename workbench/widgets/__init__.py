"""Notebook widgets of the workbench (ipywidgets + plotly), each usable without a browser.

Every view is a small class whose state is plain attributes and whose controls call plain methods, so code
and tests drive it exactly as clicks do; ``.widget`` is the ipywidgets container, and each view displays
itself when it is a cell's last expression. The token diff is also a plain function returning HTML.

- :class:`AnchorEditor`: curate the anchor map (table, form with inline validation, live translated preview,
  suggested anchors, undo, save/load).
- :func:`token_diff_html` / :class:`TokenDiff`: a block token by token, original vs generic label, coloured by
  reinforced − baseline, both models' top alternatives on hover.
- :class:`LabelInspector`: labels of any block at any alpha from the stored top-k, with statistics.
- :class:`ProbeComparer`: models' completions side by side (diff, grades) and probability probes, any number of models.
- :class:`TrainingMonitor`: live loss curve, progress and a stop button (within one step) for reinforcement
  or finetuning.
- :func:`readable`: a DataFrame with words instead of tokenizer pieces and readable numbers.
"""

from workbench.widgets._common import fmt_number, readable
from workbench.widgets.anchor_editor import AnchorEditor, preview_html, translate_preview
from workbench.widgets.label_inspector import LabelInspector
from workbench.widgets.probe_comparer import ProbeComparer, completion_diff_html
from workbench.widgets.token_diff import TokenCell, TokenDiff, token_diff_html
from workbench.widgets.training_monitor import TrainingMonitor

__all__ = [
    "AnchorEditor",
    "LabelInspector",
    "ProbeComparer",
    "TokenCell",
    "TokenDiff",
    "TrainingMonitor",
    "completion_diff_html",
    "fmt_number",
    "readable",
    "preview_html",
    "token_diff_html",
    "translate_preview",
]
