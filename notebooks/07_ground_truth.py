# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Forgetting with ground truth: what does "forgotten" mean?
#
# Every other notebook measures forgetting as a **drop**: how far a probe's probability fell from the baseline.
# Nothing there says where "forgotten" is. The field answers with a **reference model that never learned the
# target**: an unlearned model has forgotten when it cannot be told apart from that reference.
#
# For Harry Potter no such model exists (every pretrained model has read about it). So this notebook invents a
# world instead: the bundled pack `ystrevane` (five novels about beacon keepers on seven islands, written for this
# project; no model has seen it). Then:
#
# 1. **implant**: finetune the baseline on the Ystrevane corpus and its question-answer pairs (as TOFU does) →
#    the *target model*, which knows the world;
# 2. **unlearn** the target model with WHP (reinforce, score, labels, finetune) → the *unlearned model*;
# 3. **measure** all three against the **reference**, the untouched baseline: exactly the model that never
#    saw Ystrevane.
#
# By default this runs `workbench/configs/ystrevane.yaml` on SmolLM2-135M (the README's table; about 20 minutes on
# 2 CPU cores from nothing, seconds when `python benchmarks/ground_truth_table.py` has already made
# `runs/ystrevane`); `WORKBENCH_MODEL=tiny` runs `ystrevane_tiny.yaml` on a random model in seconds (the numbers
# then mean nothing).

# %%
import pandas as pd
from IPython.display import display

from workbench import notebook
from workbench.eval.forget_curve import ForgetQualityCurve, curve_figure
from workbench.report import ground_truth_table, implant_table
from workbench.widgets import readable

nb = notebook.setup("07_ground_truth")
if not nb.cfg.implant.enabled:
    raise RuntimeError("this notebook needs a run config with implant.enabled: true and a pack with qa.jsonl (it reads "
                       "workbench/configs/ystrevane.yaml unless WORKBENCH_CONFIG or WORKBENCH_RUN name another)")

# %% [markdown]
# ## 1 · The fictional world and its questions
# Each fact of the world has a question with its answer, a **paraphrased** answer and three **perturbed**
# (false) answers, TOFU's layout. The implant trains on the answers; the measures use the paraphrase and the
# false answers, so a model cannot score well by repeating its training text.

# %%
pack = nb.pack()
split = nb.cfg.report.split or "all"
qa = [p for p in pack.probes("qa") if split == "all" or p.split == split][: nb.cfg.report.probe_limit]
example = qa[0]
print(f"pack {pack.name}: {len(pack.probes('qa'))} questions ({len(qa)} in the {split} split the report uses)")
readable(pd.DataFrame([{"kind": "question", "text": example.question},
                       {"kind": "answer (trained on)", "text": example.answer},
                       {"kind": "paraphrased answer", "text": example.paraphrased_answer}]
                      + [{"kind": "perturbed (false) answer", "text": a} for a in example.perturbed_answers]))

# %% [markdown]
# ## 2 · Implant, unlearn, measure
# One call runs every stage: implant, then WHP's reinforce, score, labels and finetune on the implanted model,
# then the report, which measures the target model, the unlearned model and the reference. Stages already
# finished in the run directory are reused.
#
# To watch forgetting happen, a callback measures **forget quality** (below) on the report's questions every
# few optimiser steps of the implant and of the unlearning finetune. It needs the stages to train here: a stage
# reused from an earlier run records no points.

# %%
run = nb.run()
curve = None
if not (run.is_done("implant") and run.is_done("finetune")):  # something trains here: record the curve
    curve = ForgetQualityCurve.against(run.reference_spec, qa, every=8 if nb.is_tiny else 10, device=nb.cfg.device)
    run.callbacks.append(curve)
report = run.run()

# %% [markdown]
# ## 3 · How well the implant took
# The implant stage's own check, on every question: how often the trained answer is likelier than all three
# perturbed answers, and the mean loss per token on target blocks, before (the reference) and after (the target
# model). The baseline scores above chance before implanting because the trained answers are worded differently
# from the perturbed ones, which share the paraphrase's wording: it prefers a wording, not a fact. The truth ratio
# below compares the paraphrase with the perturbed answers in the same wording, which is the fair test.

# %%
readable(implant_table(report))

# %% [markdown]
# ## 4 · Every measure, three models
# - **forget quality** (TOFU): the p-value of a two-sample Kolmogorov–Smirnov test between the model's truth
#   ratios and the reference's. 1.0 for the reference itself; below 0.05 the test tells the model from the
#   reference; the target model should be far below 0.01.
# - **truth ratio**: per question, how much likelier the false answers are than the paraphrased true one
#   (reported as the mean of min(R, 1/R): 1 = cannot tell true from false, as a model that never saw the facts).
# - **knowledge memorisation** (MUSE): ROUGE-L recall of the model's own greedy answer against the true one.
# - **verbatim memorisation** (MUSE): ROUGE-L of the model's continuation of corpus passages.
# - **membership inference** (Min-K%, k = 40%): the AUC of telling corpus text from holdout text of the same world
#   that nobody trained on; **PrivLeak** is its distance from the reference's, in percent: about 0 for a model as
#   ignorant as the reference, above 0 if the text is still recognised, below 0 for *over-unlearning*.
# - **model utility** (retain questions on other topics) and **perplexity**: what unlearning should not cost.
#
# The last column says what a model that never learned the target shows. Published evaluations of WHP (MUSE;
# Lynch et al. 2024) found that it removes verbatim text and familiarity but leaves much of the knowledge
# answerable; read the rows with that in mind.

# %%
readable(ground_truth_table(report))

# %% [markdown]
# The report's other rows: the next-token probes of the world, before (the target model) and after unlearning.

# %%
nb.report_table(run)

# %% [markdown]
# ## 5 · Forget quality over training steps
# The implant drives forget quality from 1.0 (the baseline is the reference) towards 0; the unlearning finetune
# should lift it back. One point per measurement; the dotted line is 0.05.

# %%
if curve is None or curve.frame().empty:
    print(f"no curve: every training stage was already finished in {nb.relative(run.dir)}, so none trained here. "
          "Run this notebook with a fresh WORKBENCH_RUNS folder (or delete the run directory) to record it; the "
          "table above is the finished run's.")
else:
    display(curve_figure(curve.frame()))
    display(readable(curve.frame()))

# %% [markdown]
# ## What to take away
# A drop in probability says the model changed; only the reference says whether it changed *enough*, and
# whether it went too far. An unlearned model can lose the verbatim text (verbatim memorisation near the
# reference) and still answer questions (knowledge memorisation and truth ratio far from it), or be pushed past
# the reference (PrivLeak below 0: the corpus now looks *less* familiar than unseen text, itself a signal an
# attacker can read). `workbench compare CONFIG ...` puts other methods' rows beside WHP's on the same measures.
