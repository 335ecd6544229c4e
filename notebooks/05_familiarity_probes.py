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
import pandas as pd
import plotly.express as px
from IPython.display import display

from workbench import notebook
from workbench.eval.probes import score_probes, summarize_probes
from workbench.eval.run_report import answer_kind, generic_prompts
from workbench.models import load_model
from workbench.widgets import ProbeComparer, readable

nb = notebook.setup("05_familiarity_probes")
run = nb.run()

# %% [markdown]
# ## The headline
# The run's report table, as `report.html` and the README give it: the mean probability of the correct next
# token on the report's split (`report.split`, heldout by default), split by what the answer is, with 95%
# paired-bootstrap intervals and the generic reference. The rest of this notebook looks closer, on the **dev**
# split (the heldout split stays for the report); each view says how many probes it shows.

# %%
nb.report_table(run)

# %% [markdown]
# ## The models
# The baseline, and every unlearned model in the run directory: the one `04_finetuning` trained and any variants
# with other settings (`variants/<name>/unlearned`). They are plain Hugging Face folders, so any tool can load
# them. This notebook trains nothing: with no unlearned model yet, it says so (run `04_finetuning` first).

# %%
found = nb.variants()
if not found:
    raise RuntimeError(f"no unlearned model in {nb.relative(nb.run_dir)} yet: run 04_finetuning (or `workbench run`) first")
models = {"baseline": load_model(nb.cfg.model)}
models.update({name: load_model(str(path)) for name, path in found.items()})
readable(pd.DataFrame({"model": list(models), "source": [nb.relative(lm.source) if name != "baseline" else lm.source
                                                           for name, lm in models.items()]}))

# %% [markdown]
# ## Generate, grade, score
# Completion probes are generated greedily by every model and graded; next-token probes of three sets are
# scored (the `dev` split: the `heldout` split is kept for reports).

# %%
limit = 8 if nb.is_tiny else 24
next_token = (nb.probes("probability", split="dev", limit=limit) + nb.probes("collateral", split="dev", limit=limit)
              + nb.probes("general", split="dev", limit=limit))
completion = nb.probes("completion", limit=limit)
print(f"{len(completion)} completion prompts; dev split: " + ", ".join(
    f"{sum(p.kind == k for p in next_token)} {k}" for k in dict.fromkeys(p.kind for p in next_token)) + " probes")
compare = ProbeComparer.from_models(models, completion, next_token, anchor_terms=list(run.anchors.entries))

# %% [markdown]
# ## Side by side
# **completions**: pick a prompt (and, with several unlearned models, which one to show beside the baseline);
# the completions are diffed token by token (red struck: only the baseline wrote it; green: only the other
# model) with each judge grade (hover it for the matched terms). **probability probes**: per probe, the correct
# token's probability under each model, per probe set.

# %%
compare

# %% [markdown]
# ## Summaries
# Familiarity per model, and the mean probability of the correct next token per probe set with its relative
# change. Target probes should drop; collateral and general ones should stay close to the baseline.

# %%
display(readable(compare.grade_summary()))
readable(compare.probability_summary())

# %%
readable(summarize_probes(compare.probabilities, by=("set", "variant"))[["set", "variant", "n", "mean_prob",
                                                                         "median_rank", "top1_rate", "top5_rate"]])

# %% [markdown]
# ## How far should the target probes fall? The generic reference
# The generic labels imitate the *baseline reading generic names*. Scoring the baseline on the target prompts
# with every anchored term replaced shows how much of each probe's probability the method aims to remove: an
# answer still likely there ("…shaped like a lightning" → " bolt") follows from ordinary English, not from
# knowing the target. Compare the unlearned models with this reference rather than with zero, per answer kind:
# an answer that starts an anchored term, one that completes an anchored term begun in the prompt, and the rest.

# %%
target = nb.probes("probability", split="dev", limit=limit)
frames = [score_probes(lm, target, variant=name) for name, lm in models.items()]
frames.append(score_probes(models["baseline"], generic_prompts(run.anchors, target, nb.cfg.seed), variant="generic reference"))
rows = pd.concat(frames)
kinds = {p.id: answer_kind(run.anchors, p.prompt, p.targets[0], p.answer_kind) for p in target}
rows["answer_kind"] = rows["probe_id"].map(kinds)
by_kind = rows.groupby(["answer_kind", "variant"], sort=False)["prob"].agg(["mean", "size"]).reset_index()
order = list(models) + ["generic reference"]
fig = px.bar(by_kind, x="answer_kind", y="mean", color="variant", barmode="group", height=340,
             category_orders={"variant": order}, hover_data={"size": True},
             labels={"mean": "mean P(correct next token)", "answer_kind": "answer kind", "variant": ""},
             title=f"{len(target)} target probes (dev) by answer kind: baseline, unlearned, generic reference")
fig.show()
table = rows.pivot_table(index="answer_kind", columns="variant", values="prob", aggfunc="mean")[order].reset_index()
readable(table)

# %% [markdown]
# ## The report, in one file
# One call writes the run's report as a self-contained HTML file to share or archive: settings, stage times,
# labels, the before/after table on the config's report split with a chart, every probe, and the variants.
# (It runs the report stage first when the run has none yet.)

# %%
nb.export_report();
