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
# # 00 · Quickstart: the whole method in ten steps
#
# Eldan & Russinovich, *Who's Harry Potter? Approximate Unlearning in LLMs* (2023), make a language model
# forget a body of text (the Harry Potter books) without retraining it from scratch. The idea in one line:
# **finetune the model to predict, at every position of the target text, what a model that never read the
# target would have predicted.** Those "generic" predictions come from two ingredients:
#
# 1. a **reinforced model**: the baseline trained *further* on the target. Tokens whose probability it raises
#    most are the ones tied to the target;
# 2. **anchored terms**: a dictionary mapping the target's idiosyncratic expressions ("Hogwarts") to generic
#    ones ("Northbrook Academy"). The baseline, reading the *translated* text, predicts what a reader of a
#    generic story would.
#
# The **generic label** at each position combines both:
# `argmax( v_base(translated) − α · ReLU(v_reinforced(original) − v_base(translated)) )`.
# Finetuning the baseline on these labels is the unlearning.
#
# Every cell below calls the `workbench` package; the notebook only narrates. Run it top to bottom.
# By default it runs the demo's tuned settings (`workbench/configs/demo.yaml`) on SmolLM2-135M, a few minutes
# per stage on a CPU. Environment variables open it on something else: `WORKBENCH_CONFIG=my.yaml` (any run
# config: your model, pack or corpus), `WORKBENCH_RUN=runs/demo` (a finished run: its stages are reused), or
# `WORKBENCH_MODEL=tiny` (a random model: the same steps in seconds, the numbers mean nothing).

# %% [markdown]
# ## 1 · Set-up
# `notebook.setup` reads those settings, builds the run config and picks the run directory that all the
# notebooks share (a stage finished here is reused by the others; settings that would redo a finished stage go
# to a variant directory instead, so no trained model is overwritten).

# %%
from IPython.display import HTML, display

from workbench import notebook
from workbench.widgets import ProbeComparer, TokenDiff, TrainingMonitor, preview_html, readable

nb = notebook.setup("00_quickstart")

# %% [markdown]
# ## 2 · The target text
# The target documents are tokenized and cut into fixed-length blocks: the unit of every later stage.

# %%
run = nb.run()
print(f"{len(run.documents)} documents → {len(run.blocks)} blocks of up to {nb.cfg.target.block_size} tokens")
print(run.blocks[0].text[:400], "…")

# %% [markdown]
# ## 3 · Anchored terms and the translated text
# Each key of the anchor map is replaced by one of its generic alternatives (drawn per block, with the run's
# seed). Yellow: the anchors in the original; green: their replacements. Notebook `02_anchor_editing` edits
# this map.

# %%
print(f"{len(run.anchors)} anchored terms, e.g.", dict(list(run.anchors.entries.items())[:4]))
block = run.blocks[0]
HTML(preview_html(run.anchors, block.text, nb.cfg.seed, block.index, title=f"block {block.index}:"))

# %% [markdown]
# ## 4 · The reinforced model
# LoRA-finetune the baseline on the target blocks. The monitor shows the step, the time left and the loss
# curve; its stop button (or the kernel's interrupt ■) stops after the current step and keeps a checkpoint that
# rerunning the cell resumes from. A stage already finished in the run directory is loaded instead.

# %%
monitor = TrainingMonitor("reinforcement loss")
display(monitor)
monitor.run(run.reinforce);

# %% [markdown]
# ## 5 · What reinforcement taught
# Per token: log p(reinforced) − log p(baseline). Red tokens are the ones the reinforced model expects more:
# candidates for the anchor map. Hover a token for both probabilities.

# %%
scores = run.score()
TokenDiff.from_scores(scores, run.tokenizer, run.blocks[0])

# %% [markdown]
# ## 6 · Generic labels
# One pass of both models over original and translated blocks gives the labels for every α in the config,
# plus each model's top-k logits, so later notebooks can recompute labels for any α without a model.
# `changed_share`: the share of positions whose label differs from the original next token.

# %%
store = run.labels()
readable(store.summary())

# %% [markdown]
# ## 7 · The labels, token by token
# Upper line: the original text; lower line: the generic label the finetuning will train on (green where it
# differs). Hover for the baseline's and the reinforced model's top alternatives.

# %%
TokenDiff.from_store(store, run.tokenizer, block=run.blocks[0].index, alpha=nb.cfg.finetune.alpha)

# %% [markdown]
# ## 8 · Finetuning: the unlearning step
# The baseline is finetuned on the generic labels (cross-entropy at labelled positions), with a KL term that
# keeps its predictions on unrelated retain text (the demo's settings: soft targets, retain weight 30).

# %%
ft_monitor = TrainingMonitor("finetuning loss")
display(ft_monitor)
ft_monitor.run(run.finetune);

# %% [markdown]
# ## 9 · Before and after, probe by probe
# Both models on a few of the pack's probes, to look at: completions of target prompts graded 0–3 by the offline
# keyword judge, and the probability of the correct next token on familiarity probes of the **dev** split (the
# heldout split is kept for the report below). The line above the widget says how many probes it shows.

# %%
from workbench.models import load_model

models = {"baseline": load_model(nb.cfg.model), "unlearned": load_model(str(run.dir / "unlearned"))}
completion, probability = nb.probes("completion", limit=16 if not nb.is_tiny else None), nb.probes("probability", split="dev")
print(f"{len(completion)} completion prompts; {len(probability)} probability probes of the dev split")
compare = ProbeComparer.from_models(models, completion, probability, anchor_terms=list(run.anchors.entries))
compare

# %% [markdown]
# ## 10 · The outcome, and where to go next
# The run's report (the report stage; `report.html` and the README give the same table): the mean probability of
# the correct next token on the report's split (`report.split`, heldout by default) for the target, collateral and
# general-knowledge probes, split by what the answer is, with 95% paired-bootstrap intervals, the **generic
# reference** (the baseline on the prompts with every anchored term replaced: what the labels imitate) and
# perplexity. Next: `01_scoring` (what reinforcement boosts), `02_anchor_editing` (curate the dictionary),
# `03_label_inspection` (labels at any α), `04_finetuning` (training settings, stop and resume),
# `05_familiarity_probes` (evaluation in depth).

# %%
nb.report_table(run)
