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
# # 04 · Finetuning: training on generic labels, with a live monitor
#
# The unlearning step finetunes the **baseline** on the original target text, but with the generic labels as
# next-token targets (only at labelled positions; positions inside an anchor have none). Settings that
# matter:
#
# - `finetune.alpha`: which α's labels to train on;
# - `finetune.target`: `hard` (cross-entropy to the argmax label, the paper) or `soft` (cross-entropy to the
#   softmax of the generic scores over the stored top-k, at `finetune.temperature`);
# - `finetune.retain_weight`: weight of a KL term to the baseline's predictions on retain text (neighbouring
#   domains and general text), which limits collateral forgetting;
# - the optimiser (`weights` lora/full, `lora_rank`, `learning_rate`, `epochs`, `batch_size`).
#
# The notebook's settings (by default the demo's tuned ones: soft targets at T = 1, retain weight 30,
# learning rate 2e-3, 2 epochs) trained the model `00_quickstart` made. Here we train a second one with the
# **other kind of target** (the paper's hard argmax labels when the settings are soft), next to the first:
# a finished stage is never redone with other settings; the new model goes to a variant directory, and
# `05_familiarity_probes` compares both with the baseline. On the way, a clean stop and a resume.

# %%
import copy

import pandas as pd
from IPython.display import display

from workbench import notebook
from workbench.widgets import TrainingMonitor, readable

nb = notebook.setup("04_finetuning")
nb.run().run(stages=("reinforce", "labels"));  # reused when an earlier notebook ran them

# %% [markdown]
# ## Settings
# A copy of the notebook config with the other target kind. Change anything else here too and rerun from this
# cell: when the run directory already holds a model finetuned with other settings, the new one goes to a
# **variant** (`variants/<name>/` in the run directory, reusing the reinforced model and the labels), and the
# notebook says which settings differ. The earlier models stay.

# %%
cfg = copy.deepcopy(nb.cfg)
cfg.finetune.target = "hard" if nb.cfg.finetune.target == "soft" else "soft"  # the other kind of target
# e.g. also: cfg.finetune.retain_weight = 10.0
readable(pd.DataFrame([{k: getattr(cfg.finetune, k) for k in ("target", "alpha", "temperature", "retain_weight", "epochs",
                                                               "learning_rate")}]))

# %% [markdown]
# ## Train, stop, resume
# The monitor trains off the kernel's main thread and reads the widget's messages meanwhile, so **stop** is seen
# at once: training stops after the current step, saves a checkpoint and keeps it. Here `stop_after=2` presses
# the button for you after two steps, so the notebook also demonstrates a stop when run unattended.
# (If a model finetuned with these settings already exists, the stage is skipped.)

# %%
monitor = TrainingMonitor("finetuning loss", stop_after=2)
run = nb.run(cfg=cfg)
print("already finetuned with these settings" if run.is_done("finetune") else "training")
display(monitor)
monitor.run(run.finetune)
if monitor.last_checkpoint is not None:
    print(f"checkpoint: {nb.relative(monitor.last_checkpoint)} (step {monitor.stopped_step})")

# %% [markdown]
# Running the stage again resumes from the checkpoint (the step counter continues where it stopped); the
# curve and the progress continue in the monitor above.

# %%
monitor.stop_after = None
unlearned = monitor.run(run.finetune)
if run.is_done("finetune") and (run.dir / "unlearned").is_dir():
    print("unlearned model:", nb.relative(run.dir / "unlearned"))
else:  # stopped again: nothing is lost, the next run of this cell resumes
    print(f"the finetune stage is unfinished ({monitor.status}); run this cell again to resume")

# %% [markdown]
# ## What the loss measures
# `target_loss`: cross-entropy to the generic targets on the target blocks; `retain_kl`: KL from the
# baseline on retain blocks (zero at the start, since the model *is* the baseline then). `loss` is
# `target_loss + retain_weight · retain_kl`. Notebook `05_familiarity_probes` measures what each model forgot.

# %%
readable(monitor.summary())
