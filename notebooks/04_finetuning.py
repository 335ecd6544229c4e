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
# - the optimiser (`method` lora/full, `lora_rank`, `learning_rate`, `epochs`, `batch_size`).
#
# This notebook trains with **soft** targets, and shows a clean stop and a resume.

# %%
import copy

from workbench import notebook
from workbench.widgets import TrainingMonitor

nb = notebook.setup("04_finetuning")
nb.run().run(stages=("reinforce", "labels"));  # reused when an earlier notebook ran them

# %% [markdown]
# ## Settings
# A copy of the notebook config with soft targets. Change anything here and rerun: only the finetuning
# stage (and what depends on it) is redone.

# %%
cfg = copy.deepcopy(nb.cfg)
cfg.finetune.target = "soft"
cfg.finetune.temperature = 1.0
cfg.finetune.alpha = 5.0
cfg.finetune.retain_weight = 1.0
{k: getattr(cfg.finetune, k) for k in ("target", "alpha", "temperature", "retain_weight", "epochs", "learning_rate")}

# %% [markdown]
# ## Train, stop, resume
# `monitor.start` trains in a background thread, so the kernel stays free and the **stop** button works while
# training runs: it stops after the current step, saves a checkpoint and keeps it. Here `stop_after=2` presses
# the button for you after two steps, so the notebook also demonstrates a stop when run unattended.
# (If this run directory already holds a finetuned model with these settings, the stage is skipped.)

# %%
monitor = TrainingMonitor("finetuning loss (soft targets)", stop_after=2)
run = nb.run(callbacks=monitor.callbacks, cfg=cfg)
print("already finetuned with these settings" if run.is_done("finetune") else "training")
monitor.start(run.finetune)
monitor

# %%
monitor.wait()
print(monitor.state, "·", monitor.status)
if monitor.last_checkpoint is not None:
    print("checkpoint:", monitor.last_checkpoint, sorted(p.name for p in monitor.last_checkpoint.iterdir())[:6])

# %% [markdown]
# Rerunning the stage resumes from the checkpoint (the step counter continues where it stopped), and the
# curve continues in the same plot.

# %%
monitor.stop_after = None
monitor.start(run.finetune)
monitor

# %%
unlearned = monitor.wait()
print(monitor.state, "·", monitor.status)
print("unlearned model:", run.dir / "unlearned")
monitor.history.tail()

# %% [markdown]
# ## What the loss measures
# `target_loss`: cross-entropy to the generic targets on the target blocks; `retain_kl`: KL from the
# baseline on retain blocks (zero at the start, since the model *is* the baseline then). `loss` is
# `target_loss + retain_weight · retain_kl`. Notebook `05_familiarity_probes` measures what was forgotten.

# %%
monitor.history.groupby("phase")[["loss"]].agg(["first", "last", "count"])
