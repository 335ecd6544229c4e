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
# # 06 · Comparing unlearning methods, and attacking them
#
# The paper answers one question: can a model be made to forget a body of text? A researcher asks two more.
# **How does WHP compare with the methods people use today**, and **does the forgetting survive someone trying
# to get the knowledge back?** This notebook puts the methods side by side on one target, with one evaluation:
#
# | method | idea |
# |---|---|
# | `whp` | the paper: finetune towards generic labels (reinforced model + anchored terms) |
# | `whp_test_time` | the same formula, `v_base − α·relu(v_reinf − v_base)`, applied to the logits at inference: no finetuning |
# | `ga` | gradient ascent: make the target text unlikely |
# | `graddiff` | ascent on the target, descent on text to keep |
# | `npo` | negative preference optimisation: ascent that slows down as the model leaves the baseline |
# | `simnpo` | NPO without a reference model |
# | `rmu` | scramble one layer's activations on the target, keep them on text to keep |
# | `prompt` | a system instruction not to know the target: the baseline every reviewer asks for |
#
# and three **attacks** beside priming: adversarial prompts (an expert persona, role-play), **relearning** (a few
# finetuning steps on target text the method never saw), and **residual knowledge** (a linear probe on the
# hidden states: is the knowledge gone, or only hidden from the output?). docs/methods.md has the losses,
# the settings and where their defaults come from.

# %%
from IPython.display import Markdown, display

from workbench import notebook
from workbench.compare import CompareConfig, attack_figures, compare_figure, compare_runs
from workbench.config import config_to_dict

nb = notebook.setup("06_compare_methods")

# %% [markdown]
# ## The runs
# On the embedded model, each method uses its config from `workbench/configs/methods/` (the demo's data: 32
# blocks of 512 tokens of the Harry Potter pack), one trial each at the settings documented there: several
# minutes of training per method on a laptop CPU, and a few more for the evaluation and the attacks. The
# comparison resumes, so a finished `workbench compare workbench/configs/methods/*.yaml --out
# runs/compare_methods` is reused here as it is. On the tiny model the same runs take seconds.

# %%
from pathlib import Path

import workbench

METHODS = ["whp", "whp_test_time", "ga", "graddiff", "npo", "simnpo", "rmu", "prompt"]
if nb.is_tiny:
    base = config_to_dict(nb.cfg)
    configs = [{**base, "name": f"tiny-{m}", "method": m} for m in METHODS]
    out = nb.run_dir / "compare"  # beside the shared tiny run
    cc = CompareConfig(relearn_steps=(1, 2), bootstrap=200, progress=False)
else:
    folder = Path(workbench.__file__).parent / "configs" / "methods"
    configs = [folder / f"{m}.yaml" for m in METHODS]
    out = nb.run_dir.parent / "compare_methods"
    cc = CompareConfig(progress=False)
table = compare_runs(configs, out, cc, log=print)

# %% [markdown]
# ## One table
# Each row is one unlearned model against the same baseline, on the **dev** probes (methods are tuned on dev;
# the heldout split is for the final report). The drops are `1 − mean(unlearned) / mean(baseline)` of the
# probability of the correct next token, with 95% bootstrap intervals over the probes:
#
# - **target drop**: higher is more forgetting;
# - **collateral drop** (neighbouring domains: other fantasy, British schools) and **general drop**: lower is
#   better; so is the **perplexity rise** on text to keep.

# %%
display(Markdown((out / "compare.md").read_text()))

# %% [markdown]
# ## The frontier
# Every method trades forgetting against damage. One point per run; the dashed line is the **Pareto front**:
# the runs no other run beats on both axes. Hover a point to see what the attacks brought back.

# %%
compare_figure(table, cc).show()

# %% [markdown]
# ## Does the forgetting survive relearning?
# Each model (the baseline too) is finetuned for a few steps on target text none of the runs trained on, and the
# probes are scored again. A method that only hid the knowledge climbs back to the baseline in a few steps; a
# model that never knew it would climb as slowly as the baseline learns new facts.

# %%
figs = attack_figures(out, cc.split)
figs["relearn"].show()

# %% [markdown]
# ## Is the knowledge still inside?
# A linear probe per layer tries to tell "prompt + correct answer" from "prompt + a wrong answer" using the
# hidden states alone. If an unlearned model's curve sits on the baseline's while its output probabilities
# fell, the knowledge is still in the representations, only no longer said. The test-time and prompt methods
# leave every hidden state of the baseline as it was, by construction.

# %%
figs["residual"].show()

# %% [markdown]
# ## Reading it, and what it does not show
# - Methods that only act on the output (`prompt`, `whp_test_time`) keep the baseline's residual accuracy: the
#   knowledge is hidden, not removed. Compare the adversarial-prompt column: a wrapper that talks the model out
#   of its instruction undoes `prompt`.
# - Ascent-style losses (`ga`, `graddiff`) move the target probes fastest but pay in collateral damage and
#   perplexity unless the retain term holds them; `npo` and `simnpo` slow the ascent down as the model leaves
#   the baseline.
# - One trial per method, at settings scaled from each paper (docs/methods.md), is a fair start, not a verdict:
#   sweep each method's strength on the dev probes with the same number of trials for each
#   (`workbench compare CONFIG --sweep finetune.learning_rate=1e-4,5e-4`), then report the chosen settings once
#   on the heldout split (`--split heldout`).

# %%
print(f"{len(table)} runs compared, one trial per method, {cc.split} probes; outputs in {out}")
print(table[["run", "method", "target_drop", "collateral_drop", "general_drop", "ppl_rise", "pareto"]].round(3).to_string(index=False))
