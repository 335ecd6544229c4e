"""A run: every stage of the method from one config into one run directory.

Layout of ``<run>/``::

    config.yaml            the config the run was made with
    stages/<stage>.json    written last by each finished stage: its fingerprint and timings
    reinforced/            the reinforced model (LoRA adapter, or a full model)
    scores.parquet         per-token scores; suggested_anchors.csv
    labels/                generic labels and top-k inspection records, in resumable shards
    unlearned/             the unlearned model, plain Hugging Face format
    report.json            stage timings and before/after probe results

A stage is skipped when its fingerprint (the config parts and inputs it depends on) matches the stored one;
an interrupted stage resumes (training from its last checkpoint, labels from their last finished shard).

Under ``accelerate launch`` (several processes), every process trains in the reinforce and finetune stages; only
the main process writes config.yaml and the stage records and runs the score, labels and report stages, while
the others wait for it and then read its result.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import warnings
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from workbench.anchors import AnchorMap
from workbench.config import RunConfig, config_to_dict, stable_hash
from workbench.corpus import Block, Document, corpus_fingerprint, make_blocks, read_documents
from workbench.errors import WorkbenchError
from workbench.io import atomic_write, atomic_write_json, atomic_write_text, read_json
from workbench.models import LoadedModel, load_model, load_tokenizer

__all__ = ["Run", "STAGES"]

STAGES = ("reinforce", "score", "labels", "finetune", "report")
REPORT_VERSION = 3  # bump when the report's content changes, so finished runs recompute it


def _is_main_process() -> bool:
    """True unless this is a second, third... process of ``accelerate launch`` / torchrun (env ``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


def _process_device() -> str | None:
    """Under ``accelerate launch`` on GPUs, this process's own GPU (``LOCAL_RANK``), so that N processes do not
    all load the model onto GPU 0 first; otherwise None (the default: CUDA when present, else CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return None


def _main_process_only(stage_method):
    """With several processes, the stage runs on the main one; the others wait, then load its finished result."""

    @functools.wraps(stage_method)
    def wrapper(self, *args, **kwargs):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return stage_method(self, *args, **kwargs)
        from accelerate import PartialState

        result = stage_method(self, *args, **kwargs) if _is_main_process() else None
        PartialState().wait_for_everyone()
        return result if _is_main_process() else stage_method(self)  # now up to date: reads the stored result

    return wrapper


class Run:
    """One run directory and its config. Call :meth:`run` for every stage, or a stage method alone."""

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike | None = None, update: bool = False,
                 progress: bool = True, callbacks: list | None = None, log: Callable[[str], None] | None = print):
        self.cfg = cfg.validate()
        self.dir = Path(run_dir or Path("runs") / cfg.name)
        self.progress = progress
        self.callbacks = list(callbacks or [])
        self.log = (log or (lambda s: None)) if _is_main_process() else (lambda s: None)
        self._check_dir(update)

    # -- the run directory --------------------------------------------------------------------------------
    def _check_dir(self, update: bool) -> None:
        stored = self.dir / "config.yaml"
        mine = config_to_dict(self.cfg)
        if stored.is_file():
            old = yaml.safe_load(stored.read_text(encoding="utf-8")) or {}
            diff = _diff(old, mine)
            if diff and not update:
                shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diff[:6])
                raise WorkbenchError(
                    f"run directory {self.dir} was made with a different config ({shown}); "
                    "choose a new run directory, or pass --update to redo only the stages those changes affect"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        if _is_main_process():
            atomic_write_text(stored, yaml.safe_dump(mine, sort_keys=False))

    def stage_record(self, stage: str) -> dict | None:
        path = self.dir / "stages" / f"{stage}.json"
        return read_json(path) if path.is_file() else None

    def is_done(self, stage: str) -> bool:
        rec = self.stage_record(stage)
        return rec is not None and rec.get("fingerprint") == self.fingerprint(stage)

    def _finish(self, stage: str, seconds: float, **extra) -> None:
        if not _is_main_process():
            return
        atomic_write_json(self.dir / "stages" / f"{stage}.json",
                          {"stage": stage, "fingerprint": self.fingerprint(stage), "seconds": round(seconds, 3),
                           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})

    def _require(self, stage: str, before: str) -> None:
        if not self.is_done(stage):
            raise WorkbenchError(
                f"stage {before!r} needs stage {stage!r} finished with the current config in {self.dir}; "
                f"run `workbench {stage} CONFIG --run-dir {self.dir}` or `workbench run CONFIG`"
            )

    # -- inputs ---------------------------------------------------------------------------------------------
    @cached_property
    def pack(self):
        if self.cfg.target.pack is None:
            return None
        from workbench.packs import load_pack

        return load_pack(self.cfg.target.pack)

    @cached_property
    def documents(self) -> list[Document]:
        t = self.cfg.target
        src = t.corpus if t.corpus is not None else self.pack.corpus_dir
        return read_documents(src, "target corpus")

    @cached_property
    def retain_documents(self) -> list[Document]:
        t = self.cfg.target
        if t.retain is not None:
            return read_documents(t.retain, "retain text")
        if self.pack is not None and self.pack.retain_dir.is_dir():
            return read_documents(self.pack.retain_dir, "retain text")
        return []

    @cached_property
    def anchors(self) -> AnchorMap:
        path = self.cfg.target.anchors if self.cfg.target.anchors is not None else self.pack.anchors_path
        from workbench.anchor_import import load_any_anchor_map  # JSON, CSV or the authors' dictionary

        amap = load_any_anchor_map(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            amap.warn_unmatched(d.text for d in self.documents)
        for w in caught:
            self.log(f"warning: {w.message}")
        return amap

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.cfg.model)

    @cached_property
    def blocks(self) -> list[Block]:
        t = self.cfg.target
        blocks = make_blocks(self.documents, self.tokenizer, t.block_size, None if t.spread_blocks else t.max_blocks)
        if t.spread_blocks and t.max_blocks and t.max_blocks < len(blocks):
            # evenly spaced blocks cover the whole corpus (every document type) in a short run
            keep = np.linspace(0, len(blocks) - 1, t.max_blocks).round().astype(int)
            blocks = [blocks[i] for i in sorted(set(keep.tolist()))]
        return blocks

    @cached_property
    def retain_blocks(self) -> list[Block]:
        t = self.cfg.target
        if not self.retain_documents:
            return []
        return make_blocks(self.retain_documents, self.tokenizer, t.retain_block_size, t.max_retain_blocks, min_tokens=1)

    def check_inputs(self) -> None:
        """Read and validate every input before any stage runs, so bad input fails fast and leaves nothing."""
        self.blocks, self.anchors
        if self.cfg.finetune.retain_weight > 0 and not self.retain_blocks:
            raise WorkbenchError("finetune.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/")
        if self.cfg.reinforce.path:
            from transformers import AutoTokenizer

            from workbench.pair import check_same_tokenizer

            path = Path(self.cfg.reinforce.path)
            if not path.exists():
                raise WorkbenchError(f"reinforce.path {path} does not exist")
            if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
                check_same_tokenizer(self.tokenizer, AutoTokenizer.from_pretrained(str(path)))

    def load_baseline(self) -> LoadedModel:
        return load_model(self.cfg.model, device=self.cfg.device or _process_device(), dtype=self.cfg.dtype)

    # -- fingerprints ---------------------------------------------------------------------------------------
    def fingerprint(self, stage: str) -> str:
        c, t = self.cfg, self.cfg.target
        target = (c.model, c.seed, c.dtype, corpus_fingerprint(self.documents), t.block_size, t.max_blocks, t.spread_blocks)
        reinforce = stable_hash("reinforce", target, c.reinforce)
        if stage == "reinforce":
            return reinforce
        if stage == "score":
            return stable_hash("score", reinforce, c.scoring)
        labels = stable_hash("labels", reinforce, self.anchors.fingerprint(), c.labels,
                             corpus_fingerprint(self.retain_documents))  # rule 4 reads the retain text
        if stage == "labels":
            return labels
        retain = corpus_fingerprint(self.retain_documents) if c.finetune.retain_weight > 0 else None
        finetune = stable_hash("finetune", labels, c.finetune, retain, t.retain_block_size, t.max_retain_blocks)
        if stage == "finetune":
            return finetune
        if stage == "report":
            return stable_hash("report", finetune, c.report, REPORT_VERSION)
        raise WorkbenchError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")

    # -- stages -----------------------------------------------------------------------------------------------
    def reinforce(self):
        """Train (or load) the reinforced model. Returns a ModelPair."""
        from workbench.reinforce import load_pair, train_reinforced

        base = self.load_baseline()
        out = self.dir / "reinforced"
        if self.cfg.reinforce.path:
            pair = load_pair(base.model, base.tokenizer, self.cfg.reinforce.path)
            self._finish("reinforce", 0.0, source=self.cfg.reinforce.path)
            return pair
        if self.is_done("reinforce") and out.is_dir():
            return load_pair(base.model, base.tokenizer, out)
        self.log(f"[reinforce] training on {len(self.blocks)} blocks ({sum(len(b) for b in self.blocks)} tokens)")
        t0 = time.perf_counter()
        pair, finished = train_reinforced(base.model, base.tokenizer, self.blocks, self.cfg.reinforce, out,
                                          self.cfg.seed, self.callbacks, self.progress)
        if not finished:
            raise KeyboardInterrupt("reinforcement stopped; rerun to resume from the last checkpoint")
        self._finish("reinforce", time.perf_counter() - t0)
        return pair

    def _pair(self):
        from workbench.reinforce import load_pair

        self._require("reinforce", "labels")
        base = self.load_baseline()
        return load_pair(base.model, base.tokenizer, self.cfg.reinforce.path or self.dir / "reinforced")

    @_main_process_only
    def score(self):
        """Per-token scores of the first blocks, and suggested anchors. Returns the scores DataFrame."""
        import pandas as pd

        from workbench.scoring import score_blocks, suggest_anchors

        path = self.dir / "scores.parquet"
        if self.is_done("score") and path.is_file():
            return pd.read_parquet(path)
        t0 = time.perf_counter()
        blocks = self.blocks[: self.cfg.scoring.max_blocks] if self.cfg.scoring.max_blocks else self.blocks
        scores = score_blocks(self._pair(), blocks, self.tokenizer, self.cfg.scoring.batch_size, progress=self.progress)
        atomic_write(path, scores.to_parquet)
        atomic_write_text(self.dir / "suggested_anchors.csv", suggest_anchors(scores, blocks, self.anchors).to_csv(index=False))
        self._finish("score", time.perf_counter() - t0, positions=len(scores))
        return scores

    def aligned_blocks(self):
        from workbench.translate import translate_blocks

        # rule 4's common words come from the retain text (the target blocks' own text where there is none)
        reference = [d.text for d in self.retain_documents] or None
        return translate_blocks(self.blocks, self.anchors, self.tokenizer, self.cfg.seed, self.cfg.labels.inner_anchor,
                                reference)

    @_main_process_only
    def labels(self, on_shard: Callable[[int], None] | None = None):
        """Generic labels for every block. Returns a LabelStore."""
        from workbench.labels import LabelStore, generate_labels

        out = self.dir / "labels"
        if self.is_done("labels"):
            return LabelStore(out)
        t0 = time.perf_counter()
        aligned = self.aligned_blocks()
        t_align = time.perf_counter() - t0
        lc = self.cfg.labels
        store = generate_labels(self._pair(), aligned, out, lc.alphas, lc.top_k, lc.batch_size, lc.shard_blocks,
                                self.tokenizer.pad_token_id, self.fingerprint("labels"), self.progress, on_shard)
        summary = store.summary()
        self._finish("labels", time.perf_counter() - t0, align_seconds=round(t_align, 3),
                     summary=summary.to_dict(orient="records"))
        return store

    def finetune(self):
        """Finetune the baseline on the generic labels; saves ``unlearned/``. Returns the unlearned model."""
        from workbench.finetune import build_dataset, finetune
        from workbench.labels import LabelStore

        self._require("labels", "finetune")
        out = self.dir / "unlearned"
        if self.is_done("finetune") and out.is_dir():
            return load_model(str(out), device=self.cfg.device or _process_device(), dtype=self.cfg.dtype).model
        t0 = time.perf_counter()
        fc = self.cfg.finetune
        retain = [b.input_ids for b in self.retain_blocks] if fc.retain_weight > 0 else None
        if fc.retain_weight > 0 and not retain:
            raise WorkbenchError("finetune.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/")
        dataset = build_dataset(LabelStore(self.dir / "labels"), fc, retain)
        base = self.load_baseline()
        self.log(f"[finetune] {len(dataset)} blocks, target={fc.target}, alpha={fc.alpha}, retain_weight={fc.retain_weight}")
        model, finished = finetune(base.model, base.tokenizer, dataset, fc, out, self.cfg.seed, self.callbacks, self.progress)
        if not finished:
            raise KeyboardInterrupt("finetuning stopped; rerun to resume from the last checkpoint")
        self._finish("finetune", time.perf_counter() - t0)
        return model

    @_main_process_only
    def report(self) -> dict:
        """Before/after evaluation on the pack's probes; writes report.json. Returns its content."""
        from workbench.outcome import before_after

        self._require("finetune", "report")
        path = self.dir / "report.json"
        if self.is_done("report") and path.is_file():
            return read_json(path)
        t0 = time.perf_counter()
        rc = self.cfg.report
        result = before_after(self, rc, progress=self.progress) if rc.enabled else {}
        self._finish("report", time.perf_counter() - t0)
        report = self._compose_report(result)
        atomic_write_json(path, report)
        return report

    def _compose_report(self, result: dict) -> dict:
        timings = {s: (self.stage_record(s) or {}).get("seconds") for s in STAGES}
        return {"run_dir": str(self.dir), "config": config_to_dict(self.cfg), "stage_seconds": timings,
                "labels": (self.stage_record("labels") or {}).get("summary"), **result}

    def run(self, stages: tuple[str, ...] = STAGES) -> dict:
        """Run the given stages in order (finished ones are skipped). Returns the report (or {})."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise WorkbenchError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        self.check_inputs()
        report: dict = {}
        for stage in STAGES:
            if stage not in stages:
                continue
            if stage == "score" and not self.cfg.scoring.enabled:
                continue
            done = self.is_done(stage)
            self.log(f"[{stage}] {'up to date' if done else 'running'}")
            result = getattr(self, stage)()
            if stage == "reinforce":
                del result  # free the pair before the next stage loads its own
            if stage == "report":
                report = result
        return report


def _diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, path + ".")
        elif a != b:
            out.append((path, a, b))
    return out
