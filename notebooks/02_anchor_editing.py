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
# # 02 · Anchor editing: curating the dictionary by hand
#
# The generic labels depend on the **anchor map**: each idiosyncratic expression of the target ("Hogwarts",
# "Quidditch", "Hermione") mapped to generic alternatives of the same kind ("Northbrook Academy", "skyball",
# "Sarah"). The baseline reads the translated text and predicts what a reader of a *generic* story would;
# those predictions become the labels. The paper had GPT-4 write its dictionary (about 1,500 entries). Here a
# person curates one: the editor below shows the map, checks every edit as you type, previews exactly how a
# block will be translated, and offers the words the reinforced model boosts most as one-click suggestions.

# %%
import pandas as pd

from workbench import notebook
from workbench.scoring import suggest_anchors
from workbench.widgets import AnchorEditor

nb = notebook.setup("02_anchor_editing")
run = nb.run()

# %% [markdown]
# ## The map and its coverage
# How often each key occurs in the target blocks. Keys that never occur do no harm (but check their spelling:
# matching is case-sensitive, on word boundaries, longest key first). Consolidation, as in the paper, drops
# multi-word keys whose every word is a key, and possessives of keys.

# %%
coverage = pd.Series(run.anchors.coverage(b.text for b in run.blocks), name="occurrences")
print(f"{len(run.anchors)} keys; {int((coverage > 0).sum())} occur in the {len(run.blocks)} blocks; "
      f"{len(run.anchors.dropped)} dropped by consolidation, e.g. {run.anchors.dropped[:2]}")
coverage.sort_values(ascending=False).head(10).to_frame()

# %% [markdown]
# ## Suggestions from scoring
# The scoring stage (notebook `01_scoring`) ranks words by how much the reinforced model boosts them.
# Those the map does not cover yet appear in the editor with an **accept** button.

# %%
run.run(stages=("reinforce", "score"))  # reused when 01_scoring already ran them
scores = run.score()
suggestions = suggest_anchors(scores, run.blocks[: nb.cfg.scoring.max_blocks], run.anchors, top=30,
                              min_count=1 if nb.is_tiny else 2)
suggestions.head(10)

# %% [markdown]
# ## The editor
# - **table**: search keys and alternatives, sort by occurrences, key or number of alternatives;
# - **edit**: pick a key in the list, change its alternatives (one per line), press **apply**. Renaming the key
#   renames the entry; **new** clears the form for a new entry; **delete** removes the selected entry.
#   Errors (an empty key, white space around it, no alternative, an alternative equal to its key) show in red
#   under the form as you type, and **apply** stays disabled until they are fixed;
# - **preview**: the chosen block, original and translated, anchors in yellow and their replacements in green
#   (the selected key outlined). It changes as soon as an edit is applied;
# - **suggested anchors**: **accept** adds the word with a placeholder alternative, ready to refine;
# - **undo / redo** every change; **save** / **load** the JSON file (by default `anchors.curated.json` in the
#   run directory, which the later notebooks pick up).

# %%
editor = AnchorEditor(run.anchors, texts=run.blocks, suggestions=suggestions, path=nb.curated_anchors_path,
                      seed=nb.cfg.seed)
editor

# %% [markdown]
# ## The same edits from code
# Every button calls a method, so an edit can also be scripted (and tested). Here: give the selected key a
# new alternative, look at the translated block, and undo.

# %%
key = editor.selected
print("selected:", key, "→", run.anchors.entries.get(key))
editor.set_form(alternatives=["Zebediah Quux"])
editor.apply()
print(editor.status)
print("translated:", editor.translated[:300], "…")
editor.undo()
print(editor.status, "→", editor.anchors.entries.get(key))

# %% [markdown]
# ## Save the curated map and relabel
# Saving writes the map as it is in the editor now. The labels depend on the map (its fingerprint is part of
# the labels stage's), so a changed map relabels; an unchanged one reuses the stored labels. The later
# notebooks use the saved map (`notebook.setup` says so when it does).

# %%
path = editor.save()
cfg = nb.cfg
cfg.target.anchors = str(path)
store = nb.run(cfg=cfg).labels()
diff = {"added": sorted(set(editor.anchors.entries) - set(run.anchors.entries)),
        "removed": sorted(set(run.anchors.entries) - set(editor.anchors.entries)),
        "changed": sorted(k for k in editor.anchors.entries
                          if k in run.anchors.entries and editor.anchors.entries[k] != run.anchors.entries[k])}
print({k: v[:10] for k, v in diff.items()})
store.summary()
