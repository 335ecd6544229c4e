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
# # 01 · Scoring: which tokens does the target own?
#
# The paper's first ingredient is a **reinforced model**: the baseline trained further on the target text.
# Where the reinforced model predicts a token much more confidently than the baseline, that token is tied
# to the target: a character's name after its first name, a school after "letter from", a spell after
# "shouted". This notebook trains the reinforced model, scores every token of the first blocks, and mines
# **suggested anchors**: words with large gains that the anchor map does not cover yet.
#
# Per position *t* (predicting token *t+1*):
# `gain = log p_reinforced(token) − log p_baseline(token)`.
# (On `WORKBENCH_MODEL=tiny` the model is random and the gains are noise; the steps are the same.)

# %%
import plotly.express as px
from IPython.display import display

from workbench import notebook
from workbench.scoring import suggest_anchors, token_summary
from workbench.widgets import TokenDiff, TrainingMonitor, readable

nb = notebook.setup("01_scoring")

# %% [markdown]
# ## Train the reinforced model
# A LoRA adapter on every linear layer, trained with the ordinary causal-LM loss on the target blocks.
# The monitor shows the step, the time left and the loss; **stop** stops after the current step (rerun the cell
# to resume). If the stage already ran in this run directory, it is loaded instead (and the plot stays empty).

# %%
run = nb.run()
monitor = TrainingMonitor("reinforcement loss")
display(monitor)
pair = monitor.run(run.reinforce)
print(f"reinforced model in {run.dir / 'reinforced'}")

# %% [markdown]
# ## Score the target tokens
# The scoring stage runs both models over the first `scoring.max_blocks` blocks and stores one row per
# position in `scores.parquet`: the next token, both models' probabilities of it, the gains, and the tokens
# the reinforced model raised most at that position.

# %%
scores = run.score()
print(f"{len(scores)} scored positions in {scores['block'].nunique()} blocks")
readable(scores[["block", "pos", "next_token", "p_base", "p_reinf", "gain_logprob", "raised"]].head(8), run.tokenizer)

# %% [markdown]
# ## The tokens reinforcement boosted most
# Mean log-probability gain per token (tokens seen at least twice).

# %%
readable(token_summary(scores, run.tokenizer, top=15))

# %%
fig = px.histogram(scores, x="gain_logprob", nbins=60, title="log-probability gain of the actual next token",
                   labels={"gain_logprob": "log p(reinforced) − log p(baseline)"}, height=300)
fig

# %% [markdown]
# ## Token by token
# The first block coloured by the gain (red: raised by reinforcement, blue: lowered). Hover a token for
# both models' probabilities of it and what the reinforced model raised most there.

# %%
TokenDiff.from_scores(scores, run.tokenizer, run.blocks[0])

# %% [markdown]
# The same view from the live model pair shows each model's **top next tokens** on hover, at every position.

# %%
TokenDiff.from_pair(pair, run.tokenizer, run.blocks[1], top=5)

# %% [markdown]
# ## Suggested anchors
# Words whose tokens the reinforced model boosts (summed gain over a word's tokens, `score = mean_gain ·
# log(1 + count)`), skipping words the anchor map already covers. These are the candidates that
# `02_anchor_editing` offers for one-click acceptance. The run writes the list to `suggested_anchors.csv`.

# %%
blocks = run.blocks[: nb.cfg.scoring.max_blocks]
suggestions = suggest_anchors(scores, blocks, run.anchors, top=20, min_count=1 if nb.is_tiny else 2)
readable(suggestions)
