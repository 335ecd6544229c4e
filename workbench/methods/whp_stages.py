"""WHP's stage bodies (training layer): the reinforce, score, labels and finetune stages of the paper's pipeline
over workbench/reinforce.py, scoring.py, labels.py and finetune.py, and the fingerprints of score, labels and
finetune.

The declaration (workbench/methods/whp.py, config layer) does not import this module: the run asks
``workbench/methods/context.py`` for a stage's body (:func:`~workbench.methods.context.stage_body`), which
returns one of :data:`STAGES` for every stage a method declares but does not run itself (the reinforce stage is
shared with ``whp_test_time``, which reads the reinforced model). A body takes the run, through the public names
of :class:`WHPRun`, and returns the stage's result; the run keeps the lock, the claim, the process handling and
the model card (``Run.reinforce`` / ``score`` / ``labels`` / ``finetune`` are thin delegates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from workbench.corpus import corpus_fingerprint
from workbench.distribution import process_device
from workbench.errors import WorkbenchError
from workbench.hashing import stable_hash
from workbench.io import atomic_write, atomic_write_text
from workbench.rundir import drop_damaged_shards

__all__ = [
    "STAGES",
    "FINGERPRINTED",
    "WHPRun",
    "fingerprint",
    "finetune",
    "labels",
    "pair",
    "reinforce",
    "require_anchors",
    "score",
    "scores_fingerprint",
    "skipped",
]


class WHPRun(Protocol):
    """What WHP's stage bodies read and call of their run (a :class:`workbench.run.Run`; public names only)."""

    cfg: Any
    dir: Path
    paths: Any
    progress: bool
    callbacks: list
    log: Callable[[str], None]
    tokenizer: Any
    documents: list
    blocks: list
    retain_blocks: list
    retain_documents: list
    anchors: Any
    scored_blocks: list

    def load_baseline(self) -> Any: ...
    def stage_tracking(self, stage: str) -> Any: ...
    def stage_record(self, stage: str) -> dict | None: ...
    def is_done(self, stage: str) -> bool: ...
    def fingerprint(self, stage: str) -> str: ...
    def require(self, stage: str, before: str) -> None: ...
    def finish(self, stage: str, seconds: float, **extra) -> None: ...
    def aligned_blocks(self) -> Any: ...
    def pair(self) -> Any: ...


# -- checks -------------------------------------------------------------------------------------------------------
def require_anchors(run: WHPRun) -> None:
    """The labels stage needs at least one anchor (an empty map is a curation start)."""
    if not run.anchors.entries:
        where = run.anchors.source or "the anchor map"
        raise WorkbenchError(
            f"{where}: the map has no anchors, and the labels stage needs at least one; run the reinforce and "
            "score stages (`workbench run CONFIG --stages reinforce,score`), curate the map from "
            "suggested_anchors.csv (notebook 02_anchor_editing), then set target.anchors to the saved map"
        )


def before_run(run: WHPRun, stages: tuple[str, ...], needed: tuple[str, ...]) -> None:
    """Checks of a whole run before any stage trains: the labels stage's anchors."""
    if "labels" in stages and "labels" in needed and not run.is_done("labels"):
        require_anchors(run)  # fail before any training, not after


def skipped(run: WHPRun, stage: str) -> bool:
    """A stage the config turns off (``scoring.enabled: false``)."""
    return stage == "score" and not run.cfg.scoring.enabled


# -- fingerprints -------------------------------------------------------------------------------------------------
FINGERPRINTED = ("score", "labels", "finetune")


def scores_fingerprint(run: WHPRun, reinforce: str | None = None) -> str:
    """The per-token scores' fingerprint (the suggestions add the anchor map to it; see :func:`score`)."""
    c = run.cfg
    return stable_hash(
        "score",
        reinforce or run.fingerprint("reinforce"),
        c.scoring,
        corpus_fingerprint(run.documents) if c.scoring.whole_corpus else None,
    )


def fingerprint(run: WHPRun, stage: str, reinforce: str) -> str:
    """The fingerprint of WHP's ``score``, ``labels`` or ``finetune`` stage; ``reinforce``: the reinforce stage's."""
    c, t = run.cfg, run.cfg.target
    if stage == "score":  # the suggestions depend on the map; the per-token scores do not (see score())
        return stable_hash("suggest", scores_fingerprint(run, reinforce), run.anchors.fingerprint())
    from workbench.translate import ALIGNMENT_VERSION

    labels_fp = stable_hash(
        "labels",
        reinforce,
        run.anchors.fingerprint(),
        c.labels,
        corpus_fingerprint(run.retain_documents),  # rule 4 reads the retain text
        ALIGNMENT_VERSION,
    )
    if stage == "labels":
        return labels_fp
    retain = corpus_fingerprint(run.retain_documents) if c.finetune.retain_weight > 0 else None
    finetune_fp = stable_hash("finetune", labels_fp, c.finetune, retain, t.retain_block_size, t.max_retain_blocks)
    if stage == "finetune":
        return finetune_fp
    raise WorkbenchError(f"WHP fingerprints the stages {', '.join(FINGERPRINTED)}, not {stage!r}")


# -- stages -------------------------------------------------------------------------------------------------------
def reinforce(run: WHPRun):
    """Train (or load) the reinforced model. Returns a ModelPair."""
    from workbench.reinforce import load_pair, train_reinforced

    base = run.load_baseline()
    out = run.paths.reinforced
    if run.cfg.reinforce.path:
        pair = load_pair(base.model, base.tokenizer, run.cfg.reinforce.path)
        run.finish("reinforce", 0.0, source=run.cfg.reinforce.path)
        return pair
    if run.is_done("reinforce") and out.is_dir():
        return load_pair(base.model, base.tokenizer, out)
    run.log(f"[reinforce] training on {len(run.blocks)} blocks ({sum(len(b) for b in run.blocks)} tokens)")
    t0 = time.perf_counter()
    pair, finished = train_reinforced(
        base.model,
        base.tokenizer,
        run.blocks,
        run.cfg.reinforce,
        out,
        run.cfg.seed,
        run.callbacks,
        run.progress,
        tracking=run.stage_tracking("reinforce"),
    )
    if not finished:
        raise KeyboardInterrupt("reinforcement stopped; rerun to resume from the last checkpoint")
    run.finish("reinforce", time.perf_counter() - t0)
    return pair


def pair(run: WHPRun):
    """The baseline and the finished reinforced model (the score and labels stages read them)."""
    from workbench.reinforce import load_pair

    run.require("reinforce", "labels")
    base = run.load_baseline()
    return load_pair(base.model, base.tokenizer, run.cfg.reinforce.path or run.paths.reinforced)


def score(run: WHPRun):
    """Per-token scores (``scored_blocks``) and suggested anchors for the current map. Returns the scores.

    The scores are kept when only the anchor map changed: then just ``suggested_anchors.csv`` is redone."""
    import pandas as pd

    from workbench.scoring import score_blocks, suggest_anchors

    path = run.paths.scores
    if run.is_done("score") and path.is_file():
        return pd.read_parquet(path)
    t0 = time.perf_counter()
    blocks, scores_fp = run.scored_blocks, scores_fingerprint(run)
    recorded = (run.stage_record("score") or {}).get("scores_fingerprint")
    if recorded == scores_fp and not run.paths.artifact_problem("score"):  # the scores file is there and opens
        scores = pd.read_parquet(path)
    else:
        run.log(f"[score] {len(blocks)} blocks ({sum(len(b) for b in blocks)} tokens)")
        scores = score_blocks(run.pair(), blocks, run.tokenizer, run.cfg.scoring.batch_size, progress=run.progress)
        atomic_write(path, scores.to_parquet)
    suggestions = suggest_anchors(scores, blocks, run.anchors, top=None, min_count=run.cfg.scoring.min_count)
    atomic_write_text(run.paths.suggested_anchors, suggestions.to_csv(index=False))
    run.finish("score", time.perf_counter() - t0, positions=len(scores), scores_fingerprint=scores_fp)
    return scores


def labels(run: WHPRun, on_shard: Callable[[int], None] | None = None):
    """Generic labels for every block. Returns a LabelStore."""
    from workbench.labels import LabelStore, generate_labels

    out = run.paths.labels
    if run.is_done("labels"):
        return LabelStore(out)
    for note in drop_damaged_shards(out):
        run.log(f"[labels] {note}")
    require_anchors(run)
    t0 = time.perf_counter()
    aligned = run.aligned_blocks()
    t_align = time.perf_counter() - t0
    lc = run.cfg.labels
    store = generate_labels(
        run.pair(),
        aligned,
        out,
        lc.alphas,
        lc.top_k,
        lc.batch_size,
        lc.shard_blocks,
        run.tokenizer.pad_token_id,
        run.fingerprint("labels"),
        run.progress,
        on_shard,
    )
    summary = store.summary()
    run.finish(
        "labels",
        time.perf_counter() - t0,
        align_seconds=round(t_align, 3),
        summary=summary.to_dict(orient="records"),
    )
    return store


def finetune(run: WHPRun) -> tuple[Any, bool]:
    """Finetune the baseline on the generic labels; saves ``unlearned/``. Returns (the unlearned model, whether it
    trained now: False when a finished ``unlearned/`` was loaded)."""
    from workbench.finetune import build_dataset
    from workbench.finetune import finetune as train_finetune
    from workbench.labels import LabelStore
    from workbench.models import load_model

    run.require("labels", "finetune")
    out = run.paths.unlearned
    if run.is_done("finetune") and out.is_dir():
        return load_model(str(out), device=process_device(run.cfg.device), dtype=run.cfg.dtype).model, False
    t0 = time.perf_counter()
    fc = run.cfg.finetune
    retain = [b.input_ids for b in run.retain_blocks] if fc.retain_weight > 0 else None
    if fc.retain_weight > 0 and not retain:
        raise WorkbenchError(
            "finetune.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
        )
    dataset = build_dataset(LabelStore(run.paths.labels), fc, retain)
    base = run.load_baseline()
    run.log(f"[finetune] {len(dataset)} blocks, target={fc.target}, alpha={fc.alpha}, retain_weight={fc.retain_weight}")
    model, finished = train_finetune(
        base.model,
        base.tokenizer,
        dataset,
        fc,
        out,
        run.cfg.seed,
        run.callbacks,
        run.progress,
        tracking=run.stage_tracking("finetune"),
    )
    if not finished:
        raise KeyboardInterrupt("finetuning stopped; rerun to resume from the last checkpoint")
    run.finish("finetune", time.perf_counter() - t0)
    return model, True


STAGES: dict[str, Callable[..., Any]] = {"reinforce": reinforce, "score": score, "labels": labels, "finetune": finetune}
