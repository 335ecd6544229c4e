# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Label inspection: generic labels at any α, without a model
#
# At each position *t* of an original block, with `v_b` the baseline's logits on the **translated** block
# (at the aligned position) and `v_r` the reinforced model's logits on the **original**:
#
# `label(t) = argmax( v_b − α · ReLU(v_r − v_b) )`
#
# α = 0 is the baseline's prediction on the translated text (anchors removed); a larger α also pushes down
# every token the reinforced model likes more than the baseline does. The labels stage stores, per position,
# the baseline's top-k tokens with both models' logits at them, so the labels for **any** α can be recomputed
# here in milliseconds. The recomputation is exact whenever the winner's generic score is at least the k-th
# baseline logit (no token outside the top-k can then win); positions where that check fails are flagged.

# %%
import plotly.express as px

from workbench import notebook
from workbench.widgets import LabelInspector, readable

nb = notebook.setup("03_label_inspection")
run = nb.run()
run.run(stages=("reinforce", "labels"));  # reused when an earlier notebook ran them
store = run.labels()
readable(store.summary())

# %% [markdown]
# ## The inspector
# Pick a block and move the α slider: the token view (original on top, generic label below, green where it
# changed, dashed where the top-k result is not provably exact), the substitution table and the chart
# follow. It opens at the finetuning α. At a stored α (`labels.alphas`) it shows exactly the labels the labels
# stage stored over the full vocabulary, the ones finetuning trains on; any other α is recomputed from the
# stored top-k, and only there can a label be "not exact".

# %%
inspector = LabelInspector(store, run.tokenizer, alpha=nb.cfg.finetune.alpha)
inspector

# %% [markdown]
# ## How many labels change as α grows
# The share of labelled positions whose generic label differs from the original next token, over all
# blocks, and the share of recomputed labels that are not provably exact.

# %%
curve = inspector.changed_share(alphas=[0, 0.5, 1, 2, 3, 5, 10, 20])
fig = px.line(curve, x="alpha", y=["changed_share", "inexact_share"], markers=True, height=320,
              labels={"alpha": "α", "value": "share of labelled positions", "variable": ""},
              title="labels that differ from the original next token, as α grows")
fig.add_vline(x=nb.cfg.finetune.alpha, line_dash="dot", annotation_text=f"finetuning α = {nb.cfg.finetune.alpha:g}")
fig.show()
readable(curve)

# %% [markdown]
# ## The most frequent substitutions
# Original next token → generic label, counted over all blocks at the finetuning α. Names of the target
# turning into generic names is what the method is after; many changed function words would mean α is too
# large or the reinforced model overfit.

# %%
inspector.set_alpha(nb.cfg.finetune.alpha)
readable(inspector.substitutions(top=15))

# %% [markdown]
# ## Exactness check
# For every stored α, the share of positions where the top-k recomputation equals the stored full-vocabulary
# label. It is 1.0 wherever the exactness check passes; a stored `labels.top_k` too small for the α values you
# explore shows up here first.

# %%
readable(inspector.stored_agreement())

# %% [markdown]
# ## One position in detail
# The rows behind the view: original and generic token per position of the chosen block, whether the label
# changed, whether it is exact, and the reinforced − baseline logit gain of the original token.

# %%
inspector.set_block(run.blocks[0].index)
readable(inspector.labels(block=inspector.block)[["pos", "original", "generic", "changed", "exact", "gain"]].head(12))
