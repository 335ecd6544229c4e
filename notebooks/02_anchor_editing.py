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
# # 02 · Anchor editing: curating the dictionary over the whole corpus
#
# The generic labels depend on the **anchor map**: each idiosyncratic expression of the target ("Hogwarts",
# "Quidditch", "Hermione") mapped to generic alternatives of the same kind ("Northbrook Academy", "skyball",
# "Sarah"). The baseline reads the translated text and predicts what a reader of a *generic* story would;
# those predictions become the labels. The paper had GPT-4 write its dictionary (1,599 entries after
# consolidation). Here a person curates one over the **whole** target corpus: every count, concordance and
# coverage figure below covers all of it, suggestions come from scoring every block, and proposers (the
# baseline model offline, or any OpenAI-compatible endpoint) draft alternatives for approval.

# %%
import os

import pandas as pd

from workbench import notebook
from workbench.anchors import AnchorMap
from workbench.proposer import EndpointProposer, OfflineProposer
from workbench.widgets import AnchorEditor, readable

nb = notebook.setup("02_anchor_editing")
# Parameters (also settable from the environment):
PACK = os.environ.get("WORKBENCH_PACK") or nb.cfg.target.pack  # 'harry_potter' or 'sherlock_holmes'
START = os.environ.get("WORKBENCH_ANCHORS_START", "pack")  # 'empty': curate a new map from nothing
ENDPOINT = os.environ.get("WORKBENCH_PROPOSER_URL")  # an OpenAI-compatible server for proposals (optional)
ENDPOINT_MODEL = os.environ.get("WORKBENCH_PROPOSER_MODEL", "gpt-4o")

cfg = nb.cfg
if PACK != cfg.target.pack:
    cfg.name, nb.run_dir = f"{cfg.name}-{PACK}", nb.run_dir.with_name(f"{nb.run_dir.name}-{PACK}")
    cfg.target.pack, cfg.target.anchors = PACK, None
if START == "empty" and not nb.curated_anchors_path.is_file():
    empty = nb.run_dir / "anchors.empty.json"
    nb.run_dir.mkdir(parents=True, exist_ok=True)
    AnchorMap({}, description=f"new map for {PACK}").save(empty)
    cfg.target.anchors = str(empty)
cfg.scoring.whole_corpus = True  # suggestions from every block of the corpus (batched; reused after map edits)
cfg.scoring.max_blocks = 48 if nb.is_tiny else None  # the tiny model's dry run: the first 48 blocks
run = nb.run(cfg=cfg)
print(f"{len(run.corpus_blocks)} blocks, {sum(len(b) for b in run.corpus_blocks):,} tokens in the whole corpus")

# %% [markdown]
# ## Suggestions from scoring
# The scoring stage (notebook `01_scoring`) measures, at every token of the corpus, how much the reinforced
# model raised it over the baseline. Words **and multi-word names** ("Nearly Headless Nick", "Order of the
# Phoenix": runs of capitalised words whose later words reinforcement bound to the first) that no key covers
# are suggested with their mean gain, count and example contexts. A map edit only redoes the suggestions.

# %%
run.run(stages=("reinforce", "score"))  # reused when 01_scoring already ran them
suggestions = pd.read_csv(run.dir / "suggested_anchors.csv")
readable(suggestions.head(10))

# %% [markdown]
# ## The editor
# - **table**: the whole corpus's counts; search keys, alternatives and notes; sort by occurrences, key, status;
#   above it, the coverage: the share of corpus tokens under an anchor, keys that never match, and the frequent
#   capitalised words and names no key covers;
# - **edit**: pick a key; its **occurrences** list every place it occurs (click one to preview its block);
#   change the alternatives (one per line), the review **status** and a **note**, press **apply**. **new**
#   clears the form, **delete** removes any key (the map may become empty), **reject** removes it and
#   remembers not to suggest it again. Errors show in red as you type and keep **apply** disabled;
# - **proposed alternatives**: ask a proposer for the selected key, or for every key still on a placeholder;
#   proposals are only shown until you press **use**;
# - **suggested anchors**: **accept** adds one with a flagged placeholder (a name only for a proper name),
#   **edit** puts it in the form first, **reject** dismisses it for good (kept in the saved map);
# - **preview**: the block, original and translated exactly as the labels stage will translate it;
# - **undo / redo**; **save** / **load** JSON, or CSV for a `.csv` file name (the saved map keeps the statuses,
#   notes and rejections; saving warns about placeholders). By default the map goes to
#   `anchors.curated.json` in the run directory, which the later notebooks pick up.

# %%
proposers = {"offline": OfflineProposer(run.load_baseline(), run.anchors)}
if ENDPOINT:
    proposers["endpoint"] = EndpointProposer(ENDPOINT, model=ENDPOINT_MODEL, target=run.pack.title if run.pack else
                                             "the target", anchors=run.anchors)
editor = AnchorEditor(run.anchors, texts=run.corpus_blocks, documents=run.documents, suggestions=suggestions,
                      path=nb.curated_anchors_path, seed=nb.cfg.seed, proposers=proposers)
editor

# %% [markdown]
# ## The same edits from code
# Every button calls a method, so an edit can also be scripted (and tested). Here: give the selected key new
# alternatives (as many as it has: the keys of a family, such as Harry / Potter / Harry James Potter, keep
# index-aligned lists), look at the translated block, and undo; then the whole-corpus coverage.

# %%
key = editor.selected
if key is not None:
    print("selected:", key, "→", run.anchors.entries.get(key), f"({editor.index.count(key)} occurrences)")
    n_alternatives = len(run.anchors.entries.get(key, [])) or 1
    editor.set_form(alternatives=[f"Zebediah Quux {i + 1}" for i in range(n_alternatives)])
    editor.apply()
    print(editor.status)
    print("translated:", editor.translated[:300], "…")
    editor.undo()
    print(editor.status, "→", editor.anchors.entries.get(key))
print(editor.counts["line"])
s = editor.index.summary()
print(f"{s['coverage_share']:.1%} of {s['tokens']:,} corpus tokens in {s['texts']:,} blocks under an anchor")
readable(editor.index.uncovered(top=10))

# %% [markdown]
# ## Save the curated map and relabel
# Saving writes the map as it is in the editor now (run this cell again after curating above). The labels
# depend on the map (its fingerprint is part of the labels stage's), so a changed map relabels; an unchanged
# one reuses the stored labels. The later notebooks use the saved map (`notebook.setup` says so when it does).
# An empty map cannot be labelled: accept a few suggestions first.

# %%
path = editor.save()
if editor.anchors.entries:
    cfg.target.anchors = str(path)
    store = nb.run(cfg=cfg).labels()
    diff = {"added": sorted(set(editor.anchors.entries) - set(run.anchors.entries)),
            "removed": sorted(set(run.anchors.entries) - set(editor.anchors.entries)),
            "changed": sorted(k for k in editor.anchors.entries
                              if k in run.anchors.entries and editor.anchors.entries[k] != run.anchors.entries[k])}
    for what, keys in diff.items():
        print(f"{what}: {len(keys)}" + (f" ({', '.join(keys[:10])}{' …' if len(keys) > 10 else ''})" if keys else ""))
    summary = readable(store.summary())
else:
    summary = "the map is empty: accept suggestions in the editor, then run this cell again"
summary
