"""A run: every stage of the method from one config into one run directory.

The layout of ``<run>/`` (config.yaml, stages/<stage>.json, implanted/, reinforced/, scores.parquet, labels/,
unlearned/, report.json, ...) is :class:`workbench.rundir.RunDir`'s, which ``Run.paths`` gives.

A stage is skipped when its fingerprint (the config parts and inputs it depends on) matches the stored one and its
files still open (``RunDir.artifact_problem``); an interrupted stage resumes (training from its newest complete
checkpoint made with the same settings, labels from their last finished shard).

Under ``accelerate launch`` (several processes), every process trains in the reinforce and finetune stages; only
the main process writes config.yaml and the stage records and runs the score, labels and report stages, while
the others wait for it and then read its result.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import yaml

from workbench.anchors import AnchorMap, key_counts
from workbench.config import (
    RunConfig,
    config_diff,
    config_to_dict,
    dump_yaml,
    load_config,
    neutral_key,
    rename_old_keys,
    stable_hash,
)
from workbench.corpus import (
    Block,
    Document,
    corpus_fingerprint,
    make_blocks,
    read_documents,
    retain_blocks,
    target_blocks,
)
from workbench.distribution import is_main_process, process_device, world_size
from workbench.errors import WorkbenchError
from workbench.file_checks import check_report_inputs, read_record
from workbench.io import atomic_dir, atomic_write_json, atomic_write_text, read_json
from workbench.methods import registry
from workbench.models import LoadedModel, load_model, load_tokenizer
from workbench.rundir import CARD, RunDir
from workbench.runlock import check_run_dir, run_lock

__all__ = ["Run", "STAGES", "export_run"]

STAGES = ("implant", "reinforce", "score", "labels", "finetune", "report")
REPORT_VERSION = 4  # bump when the report's content changes, so finished runs recompute it


def _main_process_only(stage_method):
    """With several processes, the stage runs on the main one; the others wait, then load its finished result."""

    @functools.wraps(stage_method)
    def wrapper(self, *args, **kwargs):
        if world_size() <= 1:
            return stage_method(self, *args, **kwargs)
        from accelerate import PartialState

        result = stage_method(self, *args, **kwargs) if is_main_process() else None
        PartialState().wait_for_everyone()
        return result if is_main_process() else stage_method(self)  # now up to date: reads the stored result

    return wrapper


def _guarded(stage_method):
    """A stage (or the whole run) holds the run directory's lock; the first entry checks the inputs and only then
    records config.yaml, so a failed first run leaves nothing that refuses the corrected config."""

    @functools.wraps(stage_method)
    def wrapper(self, *args, **kwargs):
        if not is_main_process():
            return stage_method(self, *args, **kwargs)
        with run_lock(self.dir):
            if self._depth == 0:  # each outermost call checks again (a notebook may have changed a file)
                self.check_inputs()
                self._claim()
            self._depth += 1
            try:
                return stage_method(self, *args, **kwargs)
            finally:
                self._depth -= 1

    return wrapper


class Run:
    """One run directory and its config. Call :meth:`run` for every stage, or a stage method alone."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | os.PathLike | None = None,
        update: bool = False,
        progress: bool = True,
        callbacks: list | None = None,
        log: Callable[[str], None] | None = print,
    ):
        self.cfg = cfg.validate()
        self.dir = Path(run_dir or RunDir.default(cfg.name).path)
        self.progress = progress
        self.callbacks = list(callbacks or [])
        self.log = (log or (lambda s: None)) if is_main_process() else (lambda s: None)
        self.update = update
        self._depth = 0  # nesting of guarded calls (run -> stage)
        self._noted: set[str] = set()  # artifact problems already reported
        self._check_dir(update)

    # -- the run directory --------------------------------------------------------------------------------
    @property
    def paths(self) -> RunDir:
        """Every path of the run directory (workbench/rundir.py)."""
        return RunDir(self.dir)

    def _check_dir(self, update: bool) -> None:
        """Refuse a run directory made with another config (unless ``update``); writes nothing yet."""
        check_run_dir(self.dir)
        stored = self.paths.config
        if not stored.is_file():
            return
        try:
            old = yaml.safe_load(stored.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            old = exc
        if not isinstance(old, dict):
            raise WorkbenchError(
                f"run directory {self.dir}: {stored} is damaged ({type(old).__name__}); delete that file to rerun "
                "with this config (finished stages whose inputs are unchanged are kept), or choose another run directory"
            )
        old = rename_old_keys(old, source=str(stored))  # keys renamed since the run was made (config.KEY_ALIASES)
        old = _with_defaults(old, config_to_dict(RunConfig()))  # keys added since the run was made
        # tracking and gradient checkpointing change no stage's output: no --update needed for them
        diff = [d for d in config_diff(old, config_to_dict(self.cfg)) if not neutral_key(d[0])]
        if diff and not update:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diff[:6])
            raise WorkbenchError(
                f"run directory {self.dir} was made with a different config ({shown}); "
                "choose a new run directory, or pass --update to redo only the stages those changes affect"
            )

    def _claim(self) -> None:
        """Once the inputs passed: record the config the run directory is now made with."""
        self._check_dir(self.update)  # again, under the lock: another process may have written it meanwhile
        atomic_write_text(self.paths.config, dump_yaml(config_to_dict(self.cfg)))

    def stage_record(self, stage: str) -> dict | None:
        rec, bad = read_record(self.paths.stage_record(stage))
        if bad:
            self._note(f"[{stage}] {bad}; the stage runs again")
        return rec

    def is_done(self, stage: str) -> bool:
        """Finished with the current config, and its files are still there and open (else it runs again)."""
        rec = self.stage_record(stage)
        if rec is None or rec.get("fingerprint") != self.fingerprint(stage):
            return False
        problem = self.paths.artifact_problem(stage, external_reinforced=bool(self.cfg.reinforce.path))
        if problem:
            self._note(f"[{stage}] recorded as finished, but {problem}; the stage runs again")
            return False
        return True

    def _note(self, message: str) -> None:
        if message not in self._noted:
            self._noted.add(message)
            self.log(message)

    def finish(self, stage: str, seconds: float, **extra) -> None:
        """Record ``stage`` as finished (``stages/<stage>.json``: its fingerprint, its seconds and ``extra``)."""
        if not is_main_process():
            return
        atomic_write_json(
            self.paths.stage_record(stage),
            {
                "stage": stage,
                "fingerprint": self.fingerprint(stage),
                "seconds": round(seconds, 3),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **extra,
            },
        )

    def require(self, stage: str, before: str) -> None:
        """Raise WorkbenchError unless ``stage`` is finished with the current config (``before`` needs it)."""
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
        from workbench.pack import load_pack

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
        counts = key_counts(amap, amap.coverage(d.text for d in self.documents))  # the anchor editor's counts too
        if len(amap) and len(counts["never"]) == len(amap):  # an empty map is a curation start (labels refuse it)
            raise WorkbenchError(
                f"anchor map {path}: none of its {len(amap)} keys occurs in the target corpus, so no label would "
                "change; check that the map belongs to this corpus (matching is case-sensitive, on whole words)"
            )
        self.log(("warning: " if counts["unmarked"] else "") + f"anchor map {path}: {counts['line']}")
        return amap

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.cfg.model)

    @cached_property
    def blocks(self) -> list[Block]:
        return target_blocks(self.documents, self.tokenizer, self.cfg.target)

    @cached_property
    def retain_blocks(self) -> list[Block]:
        return retain_blocks(self.retain_documents, self.tokenizer, self.cfg.target)

    def check_inputs(self) -> None:
        """Read and validate every input before any stage runs, so bad input fails fast and leaves nothing."""
        self.blocks, self.anchors
        check_report_inputs(self)  # probe files parse now, not after an hour of training
        registry.get(self.cfg.method).check(self.method_context())
        if self.pack is not None and self.retain_documents:
            from workbench.probe_checks import check_pack_disjoint

            source = (
                f"target.retain {self.cfg.target.retain}"
                if self.cfg.target.retain is not None
                else f"pack {self.pack.name!r} retain text"
            )
            check_pack_disjoint(self.pack, {f"retain text {d.name}": d.text for d in self.retain_documents}, source)
        if self.cfg.finetune.retain_weight > 0 and not self.retain_blocks:
            raise WorkbenchError(
                "finetune.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
            )
        if self.cfg.reinforce.path:
            from transformers import AutoTokenizer

            from workbench.model_pair import check_same_tokenizer

            path = Path(self.cfg.reinforce.path)
            if not path.exists():
                raise WorkbenchError(f"reinforce.path {path} does not exist")
            if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
                check_same_tokenizer(self.tokenizer, AutoTokenizer.from_pretrained(str(path)))
        from workbench.tracking import resolve_trackers

        resolve_trackers(self.cfg.tracking)  # a tracker whose package is missing fails now, not after training
        if self.cfg.report.enabled and self.cfg.report.perplexity_text:
            from workbench.report import perplexity_text

            perplexity_text(self, self.cfg.report)  # a named text that is missing fails now, not after training

    @property
    def baseline_spec(self) -> str:
        """The model the method unlearns: ``implanted/`` when the implant stage is on, else ``cfg.model``."""
        return str(self.paths.implanted) if self.cfg.implant.enabled else self.cfg.model

    @property
    def reference_spec(self) -> str | None:
        """A model that never saw the target (the untouched baseline) when the implant stage is on, else None:
        for a pretrained target no such model exists."""
        return self.cfg.model if self.cfg.implant.enabled else None

    def stage_tracking(self, stage: str):
        """Where a training stage reports its losses (``tracking`` in the config; workbench/tracking.py)."""
        from workbench.tracking import stage_tracking

        return stage_tracking(self.cfg.tracking, self.dir, self.cfg.name, stage)

    def load_baseline(self) -> LoadedModel:
        """The model the method unlearns (see :attr:`baseline_spec`); with the implant stage on, it must be done."""
        if self.cfg.implant.enabled:
            self.require("implant", "reinforce")
        return load_model(self.baseline_spec, device=process_device(self.cfg.device), dtype=self.cfg.dtype)

    @cached_property
    def qa_items(self) -> list:
        """The pack's QA items (``probes.qa`` in pack.json), or [] when it declares none."""
        if self.pack is None or not self.pack.has_probes("qa"):
            return []
        from workbench.implant import read_qa

        path = self.pack.probe_file("qa")
        return read_qa(path, display=f"pack {self.pack.name!r}: {path.name}")

    # -- fingerprints ---------------------------------------------------------------------------------------
    def fingerprint(self, stage: str) -> str:
        c, t = self.cfg, self.cfg.target
        implant = self._implant_fingerprint() if c.implant.enabled else None
        if stage == "implant":
            return implant or stable_hash("implant", None)
        target = (
            c.model,
            c.seed,
            c.dtype,
            corpus_fingerprint(self.documents),
            t.block_size,
            t.max_blocks,
            t.spread_blocks,
        )
        if implant:  # unchanged when the stage is off, so runs made before it existed keep their records
            target = (*target, implant)
        reinforce = stable_hash("reinforce", target, c.reinforce)
        if stage == "reinforce":
            return reinforce
        if stage not in STAGES:
            raise WorkbenchError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        from workbench.methods.context import stage_fingerprint

        own = stage_fingerprint(
            registry.get(c.method), self, "finetune" if stage == "report" else stage, target, reinforce
        )
        return stable_hash("report", own, c.report, REPORT_VERSION) if stage == "report" else own

    def _implant_fingerprint(self) -> str:
        c = self.cfg
        qa = [(q.question, q.answer) for q in self.qa_items] if c.implant.qa else None
        return stable_hash(
            "implant", c.model, c.seed, c.dtype, corpus_fingerprint(self.documents), c.target.block_size, c.implant, qa
        )

    @cached_property
    def corpus_blocks(self) -> list[Block]:
        """Every block of the target corpus (``target.max_blocks`` ignored): what the anchor editor and the
        whole-corpus scoring cover."""
        if not self.cfg.target.max_blocks:
            return self.blocks
        return make_blocks(self.documents, self.tokenizer, self.cfg.target.block_size)

    @property
    def scored_blocks(self) -> list[Block]:
        """The blocks the score stage scores (``scoring.whole_corpus``, ``scoring.max_blocks``)."""
        sc = self.cfg.scoring
        blocks = self.corpus_blocks if sc.whole_corpus else self.blocks
        return blocks[: sc.max_blocks] if sc.max_blocks else blocks

    # -- stages -----------------------------------------------------------------------------------------------
    @_guarded
    def implant(self):
        """Teach the baseline the whole target corpus (and the pack's QA): saves ``implanted/``, the model the
        method then unlearns. Records how well it took (workbench/implant.py). Returns the implanted model."""
        from workbench.implant import implant_blocks, implant_check, train_implant

        if not self.cfg.implant.enabled:
            raise WorkbenchError(
                "the implant stage is off: set implant.enabled: true (for a target the baseline "
                "has never seen, such as the bundled ystrevane pack)"
            )
        out = self.paths.implanted
        device = process_device(self.cfg.device)
        if self.is_done("implant") and out.is_dir():
            return load_model(str(out), device=device, dtype=self.cfg.dtype).model
        ic = self.cfg.implant
        qa = self.qa_items if ic.qa else []
        blocks = implant_blocks(
            self.documents, qa, self.tokenizer, self.cfg.target.block_size, ic.qa_repeat, ic.max_blocks
        )
        base = load_model(self.cfg.model, device=device, dtype=self.cfg.dtype)
        check_blocks = self.blocks[:8]
        before = implant_check(base.model, base.tokenizer, self.qa_items, check_blocks)
        self.log(
            f"[implant] training on {len(blocks)} blocks ({sum(len(b) for b in blocks)} tokens, {len(qa)} QA items)"
        )
        t0 = time.perf_counter()
        model, finished = train_implant(
            base.model,
            base.tokenizer,
            blocks,
            ic,
            out,
            self.cfg.seed,
            self.callbacks,
            self.progress,
            tracking=self.stage_tracking("implant"),
        )
        if not finished:
            raise KeyboardInterrupt("implanting stopped; rerun to resume from the last checkpoint")
        seconds = time.perf_counter() - t0
        after = implant_check(model, base.tokenizer, self.qa_items, check_blocks)
        self.log(
            f"[implant] QA accuracy {before.get('qa_accuracy', float('nan')):.2f} -> "
            f"{after.get('qa_accuracy', float('nan')):.2f} (chance {after.get('qa_chance', float('nan')):.2f}); "
            f"corpus loss {before['corpus_loss']:.3f} -> {after['corpus_loss']:.3f}"
        )
        self.finish("implant", seconds, tokens=int(sum(len(b) for b in blocks)), before=before, after=after)
        return model

    @_guarded
    def reinforce(self):
        """Train (or load) the reinforced model. Returns a ModelPair."""
        return self.stage("reinforce")

    def pair(self):
        """The baseline and the finished reinforced model (a ModelPair; the score and labels stages read it)."""
        from workbench.methods.whp_stages import pair

        return pair(self)

    @_guarded
    @_main_process_only
    def score(self):
        """Per-token scores (``scored_blocks``) and suggested anchors for the current map. Returns the scores.

        The scores are kept when only the anchor map changed: then just ``suggested_anchors.csv`` is redone."""
        return self.stage("score")

    def aligned_blocks(self):
        from workbench.translate import translate_blocks

        # rule 4's common words come from the retain text (the target blocks' own text where there is none)
        reference = [d.text for d in self.retain_documents] or None
        return translate_blocks(
            self.blocks, self.anchors, self.tokenizer, self.cfg.seed, self.cfg.labels.inner_anchor, reference
        )

    @_guarded
    @_main_process_only
    def labels(self, on_shard: Callable[[int], None] | None = None):
        """Generic labels for every block. Returns a LabelStore."""
        return self.stage("labels", on_shard=on_shard)

    def method_context(self):
        """The :class:`~workbench.methods.base.StageContext` the run's method reads (workbench/methods/context.py)."""
        from workbench.methods.context import RunStageContext

        return RunStageContext(self, require=self.require, out=self.paths.unlearned)

    def stage(self, stage: str, **kwargs):
        """Run ``stage`` of the run's method (no lock, no claim: the public stage methods hold them): the
        method's own body for a stage in its ``own_stages``, else the body the training layer gives
        (workbench/methods/context.py). Returns the stage's result."""
        method = registry.get(self.cfg.method)
        if stage in method.own_stages:
            return self._own_stage(method, stage)
        from workbench.methods.context import stage_body

        return stage_body(method, stage)(self, **kwargs)

    def _own_stage(self, method, stage: str):
        """A stage the method runs itself (``finetune``): ``unlearned/``, reused when finished."""
        ctx = self.method_context()
        if self.is_done(stage) and ctx.out.is_dir():
            return load_model(str(ctx.out), device=process_device(self.cfg.device), dtype=self.cfg.dtype).model
        t0 = time.perf_counter()
        model, extra = method.run_stage(stage, ctx)
        self.finish(stage, time.perf_counter() - t0, method=method.name, **extra)
        return model

    @_guarded
    def finetune(self):
        """The method's finetune stage: saves ``unlearned/`` (trained weights, or a descriptor the workbench
        loads) and its model card. Returns the unlearned model."""
        if "finetune" in registry.get(self.cfg.method).own_stages:
            model, trained = self.stage("finetune"), False
        else:
            model, trained = self.stage("finetune")
        self._write_card(only_missing=not trained)
        return model

    def _write_card(self, only_missing: bool = False) -> None:
        """The unlearned model's card (``unlearned/README.md``, workbench/model_card.py), from what the run holds now."""
        if not is_main_process() or not self.paths.unlearned.is_dir():
            return
        if only_missing and self.paths.card.is_file():
            return
        from workbench.model_card import write_card

        write_card(self)

    @_guarded
    @_main_process_only
    def report(self) -> dict:
        """Before/after evaluation on the pack's probes; writes report.json. Returns its content."""
        from workbench.report import make_report

        self.require("finetune", "report")
        path = self.paths.report_json
        if self.is_done("report") and path.is_file():
            return read_json(path)
        t0 = time.perf_counter()
        rc = self.cfg.report
        result = make_report(self, rc, progress=self.progress) if rc.enabled else {}
        self.finish("report", time.perf_counter() - t0)
        report = self._compose_report(result)
        atomic_write_json(path, report)
        self._write_card()  # now with the before/after table
        from workbench.tracking import log_run

        try:
            log_run(self.cfg.tracking, self.dir, self.cfg.name, report)
        except Exception as exc:  # a tracker's server or login: the report is saved, the run is not lost for it
            self.log(f"[report] warning: the trackers did not take the report ({type(exc).__name__}: {exc})")
        return report

    def _compose_report(self, result: dict) -> dict:
        timings = {
            s: (self.stage_record(s) or {}).get("seconds") for s in STAGES if s != "implant" or self.cfg.implant.enabled
        }
        return {
            "run_dir": str(self.dir),
            "config": config_to_dict(self.cfg),
            "stage_seconds": timings,
            "labels": (self.stage_record("labels") or {}).get("summary"),
            **result,
        }

    @_guarded
    def run(self, stages: tuple[str, ...] = STAGES) -> dict:
        """Run the given stages in order (finished ones are skipped). Returns the report (or {})."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise WorkbenchError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        from workbench.methods.context import before_run, skipped

        method = registry.get(self.cfg.method)
        before_run(method, self, stages)
        report: dict = {}
        needed = (*method.stages, "implant") if self.cfg.implant.enabled else method.stages
        for stage in STAGES:
            if stage not in stages or stage not in needed or skipped(method, self, stage):
                continue
            done = self.is_done(stage)
            self.log(f"[{stage}] {'up to date' if done else 'running'}")
            result = getattr(self, stage)()
            if stage == "reinforce":
                del result  # free the pair before the next stage loads its own
            if stage == "report":
                report = result
        return report


def _with_defaults(old: dict, defaults: dict) -> dict:
    """``old`` with every key it lacks taken from ``defaults`` (recursively)."""
    out = dict(old)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _with_defaults(out[key], value)
    return out


def export_run(run_dir: str | Path, to: str | Path) -> Path:
    """Copy a finished run's unlearned model (weights, tokenizer), a fresh card and the run config into ``to``
    (a new folder, written in one rename). Raises WorkbenchError when ``to`` exists or the model is not there."""
    from workbench.model_card import CONFIG_NAME, card_text

    run_dir, to = Path(run_dir), Path(to)
    paths = RunDir(run_dir)
    if to.exists():
        raise WorkbenchError(f"export: {to} already exists; give a new folder (nothing was written)")
    stored = paths.config
    if not stored.is_file():
        raise WorkbenchError(f"export: {run_dir} is not a run directory (no config.yaml); give the folder a run wrote")
    run = Run(load_config(stored), run_dir, log=None)
    if not registry.get(run.cfg.method).trains:
        raise WorkbenchError(
            f"export: method {run.cfg.method!r} changes no weights, so there is no model to upload "
            f"(its {paths.unlearned} is a descriptor the workbench loads)"
        )
    if not run.is_done("finetune"):
        raise WorkbenchError(
            f"export: {run_dir} has no finished unlearned model with its config; run "
            f"`workbench run {stored} --run-dir {run_dir}` first"
        )
    src = paths.unlearned
    with atomic_dir(to) as tmp:
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name != CARD:
                shutil.copy2(f, tmp / f.name)
        (tmp / CARD).write_text(card_text(run), encoding="utf-8")
        shutil.copy2(stored, tmp / CONFIG_NAME)
        if paths.report_json.is_file():
            shutil.copy2(paths.report_json, tmp / "workbench_report.json")
    return to
