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
# and four **attacks** beside priming: adversarial prompts (an expert persona, role-play), **relearning** (a few
# finetuning steps on target text the method never saw, which states none of the probes' answers),
# **quantization** (the weights rounded to 8 and 4 bits) and **residual knowledge** (a linear probe on the
# hidden states: is the knowledge gone, or only hidden from the output?). docs/methods.md has the losses,
# the settings and where their defaults come from.

# %%
from IPython.display import Markdown, display

from workbench import notebook
from workbench.compare import CompareConfig, attack_figures, compare_figure, compare_runs
from workbench.config import config_to_dict
from workbench.methods import registry

nb = notebook.setup("06_compare_methods")

# %% [markdown]
# ## The settings: tuned on the dev probes, the same number of trials for each method
# A comparison is only as fair as its tuning. `workbench tune` gives every method three trials of its strength
# knob on the **dev** probes (the learning rate for the trained methods, alpha for the test-time mix, the retain
# weight for WHP; `prompt` has no knob) and picks each method's trial by one rule fixed in advance: the largest
# target drop with collateral and general drops of at most 5% and a perplexity rise of at most 10%. The configs in
# `workbench/configs/methods/` carry the chosen settings. On your own target, set `TUNE = True` (about 80 minutes
# on 2 CPU cores for the embedded model; finished trials are reused), then copy the chosen values into your configs.

# %%
from pathlib import Path

import workbench
from workbench.tuning import tune_methods

TUNE = False
tuning_dir = nb.run_dir.parent / "methods_dev"
if TUNE:
    tune_methods(tuning_dir, progress=False)
if (tuning_dir / "trials.md").is_file():
    display(Markdown((tuning_dir / "trials.md").read_text()))
else:
    print(f"no tuning in {tuning_dir} yet: the configs' settings come from `workbench tune` on the embedded model "
          "(docs/methods.md lists every trial)")

# %% [markdown]
# ## The runs, on the heldout probes
# On the embedded model each method runs its config from `workbench/configs/methods/` (the demo's data: 32 blocks
# of 512 tokens of the Harry Potter pack): a few minutes of training per method on a laptop CPU, and a few more
# for the evaluation and the attacks. The comparison resumes, so a finished
# `workbench compare workbench/configs/methods/*.yaml --split heldout --out runs/compare_methods` is reused here as
# it is. The settings were chosen on the dev probes, so the **heldout** probes report them. On the tiny model the
# same runs take seconds.

# %%
METHODS = list(registry.METHODS)  # every registered method, in the registry's order (workbench/methods/registry.py)
if nb.is_tiny:
    base = config_to_dict(nb.cfg)
    configs = [{**base, "name": f"tiny-{m}", "method": m} for m in METHODS]
    out = nb.run_dir / "compare"  # beside the shared tiny run
    cc = CompareConfig(
        split="heldout", relearn_steps=(1, 2), bootstrap=200, probe_limit=12, ppl_max_tokens=1024, progress=False
    )
else:
    folder = Path(workbench.__file__).parent / "configs" / "methods"
    configs = [folder / f"{m}.yaml" for m in METHODS if (folder / f"{m}.yaml").is_file()]  # the tuned configs
    out = nb.run_dir.parent / "compare_methods"
    cc = CompareConfig(split="heldout", progress=False)
table = compare_runs(configs, out, cc, log=print)

# %% [markdown]
# ## One table
# Each row is one unlearned model against the same baseline, on the **heldout** probes. The drops are
# `1 − mean(unlearned) / mean(baseline)` of the probability of the correct next token, with 95% bootstrap
# intervals over the probes:
#
# - **target drop**: higher is more forgetting;
# - **collateral drop** (neighbouring domains: other fantasy, British schools) and **general drop**: lower is
#   better; so is the **perplexity rise** on text to keep.
#
# Then the attacks, each as the mean probability of the correct target answers it brings back (the first row is
# the baseline under the same attacks): **primed** (a passage of the books before each question), **paraphrase**
# (the best of each question's rewordings), **adversarial** (the worst of three wrappers: an expert persona,
# role-play, an instruction to ignore forgetting), the **relearning** curve (0 steps, then after each number of
# finetuning steps), the model with its weights **rounded** to 8 and 4 bits, and the **residual** probe's accuracy
# at the layer chosen on the dev probes, with its control (the same probe on shuffled labels) in brackets: chance
# is 0.5, and only accuracy above the control counts. A run whose target probes rose is never on the Pareto front,
# and a harm below zero counts as zero.

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
# A linear probe per layer tries to tell "prompt + correct answer" from "prompt + a wrong answer of the same type"
# (a name for a name, a year for a year) using the hidden states alone. The thin dashed line under each curve is
# its control: the same probe on shuffled labels, the noise floor. If an unlearned model's curve sits on the
# baseline's while its output probabilities fell, the knowledge is still in the representations, only no longer
# said. The test-time and prompt methods leave every hidden state of the baseline as it was, by construction.

# %%
figs["residual"].show()

# %% [markdown]
# ## Reading it, and what it does not show
# - Methods that only act on the output (`prompt`, `whp_test_time`) keep the baseline's residual accuracy: the
#   knowledge is hidden, not removed. A system instruction that names the target can even *raise* familiarity:
#   naming it primes the model.
# - Ascent-style losses (`ga`, `graddiff`) move the target probes fastest but pay in collateral damage and
#   perplexity unless the retain term holds them; `npo` and `simnpo` slow the ascent down as the model leaves
#   the baseline. Held to the same limits on collateral, general and perplexity damage, most of them can only
#   forget a little.
# - Compare the residual column and the end of each relearning curve with the drop: on the embedded model every
#   trained method keeps the answers linearly readable, and a few dozen steps of finetuning bring much of the
#   familiarity back. Forgetting the output is not forgetting the knowledge.
# - Three trials per method on one target with one seed is a fair start, not a verdict: the intervals are wide
#   and another target may order the methods differently. Tune on your target's dev probes, report its heldout.

# %%
print(f"{len(table)} runs compared on the {cc.split} probes; outputs in {out}")
print(table[["run", "method", "target_drop", "collateral_drop", "general_drop", "ppl_rise", "pareto"]].round(3).to_string(index=False))
