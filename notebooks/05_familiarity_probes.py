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
# # 05 · Familiarity probes: what did the model forget, and what did it keep?
#
# The paper measures forgetting two ways, and so does the workbench:
#
# - **completion familiarity**: the model completes prompts from the target's world ("When the letter arrived
#   by owl, the boy living under the stairs learned that he …"); a judge grades each completion 0 (no
#   familiarity) to 3 (clear familiarity). Familiarity = mean grade / 3. The offline `KeywordJudge` counts the
#   prompt's reference keywords and the anchored names a completion adds; `OpenAIJudge` and `HFChatJudge`
#   (in `workbench.eval.completion`) grade with an LLM and the paper-style rubric;
# - **probability probes**: the probability of the correct next token after a target prompt ("Harry's two
#   best friends are Ron and" → " Hermione"). Unlearning should lower it on the target, and leave
#   **collateral** probes (neighbouring domains: other fantasy, British schools) and **general** ones alone.

# %%
from IPython.display import display

from workbench import notebook
from workbench.eval.probes import summarize_probes
from workbench.models import load_model
from workbench.widgets import ProbeComparer

nb = notebook.setup("05_familiarity_probes")
run = nb.run()
run.run(stages=("reinforce", "labels", "finetune"));  # reused when an earlier notebook ran them

# %% [markdown]
# ## Two models
# The baseline, and the unlearned model the finetuning stage saved (plain Hugging Face format, so any tool
# can load it).

# %%
baseline = load_model(nb.cfg.model)
unlearned = load_model(str(run.dir / "unlearned"))
models = {"baseline": baseline, "unlearned": unlearned}
print({name: lm.source for name, lm in models.items()})

# %% [markdown]
# ## Generate, grade, score
# Completion probes are generated greedily by both models and graded; next-token probes of three sets are
# scored (the `dev` split: the `heldout` split is kept for reports).

# %%
limit = 8 if nb.is_tiny else 24
next_token = (nb.probes("probability", split="dev", limit=limit) + nb.probes("collateral", split="dev", limit=limit)
              + nb.probes("general", split="dev", limit=limit))
compare = ProbeComparer.from_models(models, nb.probes("completion", limit=limit), next_token,
                                    anchor_terms=list(run.anchors.entries))

# %% [markdown]
# ## Side by side
# **completions**: pick a prompt; the two completions are diffed token by token (red struck: only the
# baseline wrote it; green: only the unlearned model) with each judge grade (hover it for the matched terms).
# **probability probes**: per probe, the correct token's probability before and after, per probe set.

# %%
compare

# %% [markdown]
# ## Summaries
# Familiarity per model, and the mean probability of the correct next token per probe set with its relative
# change. Target probes should drop; collateral and general ones should stay close to the baseline.

# %%
display(compare.grade_summary())
compare.probability_summary()

# %%
summarize_probes(compare.probabilities, by=("set", "variant"))[["set", "variant", "n", "mean_prob", "median_rank",
                                                                 "top1_rate", "top5_rate"]]

# %% [markdown]
# ## How far should the target probes fall? The generic reference
# The generic labels imitate the *baseline reading generic names*. Scoring the baseline on the target prompts
# with every anchored term replaced shows how much of each probe's probability the method aims to remove: an
# answer still likely there ("…shaped like a lightning" → " bolt") follows from ordinary English, not from
# knowing the books. Compare the unlearned model with this reference rather than with zero.

# %%
import pandas as pd

from workbench.eval.probes import score_probes
from workbench.outcome import answer_kind, generic_prompts

target = nb.probes("probability", split="dev", limit=limit)
rows = pd.concat([score_probes(baseline, target, variant="baseline"),
                  score_probes(unlearned, target, variant="unlearned"),
                  score_probes(baseline, generic_prompts(run.anchors, target, nb.cfg.seed), variant="generic")])
kinds = {p.id: answer_kind(run.anchors, p.prompt, p.targets[0], p.answer_kind) for p in target}
rows["answer_kind"] = rows["probe_id"].map(kinds)
rows.pivot_table(index="answer_kind", columns="variant", values="prob", aggfunc="mean")[["baseline", "unlearned", "generic"]]
