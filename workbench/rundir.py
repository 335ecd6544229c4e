"""The run directory: every path and file name a run writes, in one place (:class:`RunDir`).

Layout of ``<run>/``::

    config.yaml             the config the run was made with (written once the inputs pass their checks)
    .lock                   held by the process running in it (its PID inside); a second process is refused
    stages/<stage>.json     written last by each finished stage: its fingerprint and timings
    implanted/              implant stage (implant.enabled): the baseline taught the target, which the method unlearns
    reinforced/             reinforce stage: the reinforced model (LoRA adapter, or a full model)
    scores.parquet          score stage: per-token scores
    suggested_anchors.csv   score stage: anchors suggested for the current map
    labels/                 labels stage: manifest.json and the blocks-/positions-NNNNN.parquet shards
    unlearned/              finetune stage: the unlearned model in Hugging Face format with its card (README.md),
                            or for a method that changes no weights, a descriptor (workbench_method.json)
    report.json             report stage: stage timings and before/after probe results
    report/                 report stage: its resumable evaluation; probes.csv, one row per probe and model
    <model>_ckpt/           a training stage's checkpoints while it runs (implanted_ckpt/, reinforced_ckpt/,
                            unlearned_ckpt/); removed once the model is saved
    tracking/<stage>/       the trackers' logs of a training stage (``tracking`` in the config); tracking/ the run's
    anchors.curated.json    the curated anchor map the notebooks save (02_anchor_editing)
    variants/<name>/        the notebooks' variants: run directories of their own, linking the parent's shared stages
    report.html             the run's page (``workbench.report_html.export_report``, ``nb.export_report()``)

:data:`STAGE_ARTIFACTS` says which of these each stage leaves (the first is the one a later stage reads), and
:meth:`RunDir.artifact_problem` whether a finished stage's files are still whole (sizes, headers and footers
only, with the checks of :mod:`workbench.file_checks`). The names never change: run directories made earlier load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.file_checks import parquet_problem, read_record, safetensors_problem
from workbench.io import atomic_write_json

__all__ = [
    "RunDir",
    "STAGE_ARTIFACTS",
    "MODEL_STAGES",
    "CONFIG",
    "LOCK",
    "IMPLANTED",
    "REINFORCED",
    "UNLEARNED",
    "LABELS",
    "SCORES",
    "SUGGESTED_ANCHORS",
    "REPORT_JSON",
    "REPORT_DIR",
    "REPORT_PROBES",
    "DESCRIPTOR",
    "CARD",
    "LABELS_MANIFEST",
    "checkpoints_of",
    "trained_stage",
    "label_shard",
    "model_folder_problem",
    "drop_damaged_shards",
]

CONFIG = "config.yaml"
LOCK = ".lock"
STAGES_DIR = "stages"
IMPLANTED = "implanted"
REINFORCED = "reinforced"
UNLEARNED = "unlearned"
SCORES = "scores.parquet"
SUGGESTED_ANCHORS = "suggested_anchors.csv"
LABELS = "labels"
REPORT_JSON = "report.json"
REPORT_DIR = "report"
REPORT_PROBES = "probes.csv"  # in report/
REPORT_HTML = "report.html"
TRACKING = "tracking"
CURATED_ANCHORS = "anchors.curated.json"
VARIANTS = "variants"
CHECKPOINT_SUFFIX = "_ckpt"  # a model folder's checkpoints: <model>_ckpt/ beside it
DESCRIPTOR = "workbench_method.json"  # in a model folder: a test-time or prompt method's model (methods/wrappers.py)
CARD = "README.md"  # in a model folder: its model card
LABELS_MANIFEST = "manifest.json"  # in labels/
LABEL_SHARD_KINDS = ("blocks", "positions")  # labels/<kind>-NNNNN.parquet

# what each stage leaves in the run directory, the one a later stage reads first (a notebook variant links these)
STAGE_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "implant": (IMPLANTED,),
    "reinforce": (REINFORCED,),
    "score": (SCORES, SUGGESTED_ANCHORS),
    "labels": (LABELS,),
    "finetune": (UNLEARNED,),
    "report": (REPORT_JSON, REPORT_DIR),
}

# the model folders and the stage that trains each
MODEL_STAGES: dict[str, str] = {IMPLANTED: "implant", REINFORCED: "reinforce", UNLEARNED: "finetune"}


def checkpoints_of(model_dir: str | os.PathLike) -> Path:
    """Where a training stage that saves ``model_dir`` keeps its checkpoints: ``<model_dir>_ckpt`` beside it."""
    model_dir = Path(model_dir)
    return model_dir.with_name(model_dir.name + CHECKPOINT_SUFFIX)


def trained_stage(folder: str | os.PathLike) -> str | None:
    """The stage that trains into ``folder`` (a model folder or its checkpoints folder), or None."""
    return MODEL_STAGES.get(Path(folder).name.removesuffix(CHECKPOINT_SUFFIX))


def label_shard(labels_dir: str | os.PathLike, kind: str, shard: int) -> Path:
    """One file of a labels shard: ``<labels>/<kind>-NNNNN.parquet`` (``kind``: blocks or positions)."""
    return Path(labels_dir) / f"{kind}-{shard:05d}.parquet"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (see the module docstring for its layout). Computes paths only: nothing
    is read or written until a caller does."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def default(cls, name: str) -> RunDir:
        """Where a run named ``name`` goes when no run directory is given: ``runs/<name>``."""
        return cls(Path("runs") / name)

    # -- the run's own files --------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def stages(self) -> Path:
        return self.path / STAGES_DIR

    def stage_record(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    # -- the stages' artifacts ------------------------------------------------------------------------------
    @property
    def implanted(self) -> Path:
        return self.path / IMPLANTED

    @property
    def reinforced(self) -> Path:
        return self.path / REINFORCED

    @property
    def scores(self) -> Path:
        return self.path / SCORES

    @property
    def suggested_anchors(self) -> Path:
        return self.path / SUGGESTED_ANCHORS

    @property
    def labels(self) -> Path:
        return self.path / LABELS

    @property
    def unlearned(self) -> Path:
        return self.path / UNLEARNED

    @property
    def card(self) -> Path:
        """The unlearned model's card."""
        return self.unlearned / CARD

    @property
    def descriptor(self) -> Path:
        """The unlearned model's descriptor, for a method that changes no weights."""
        return self.unlearned / DESCRIPTOR

    @property
    def report_json(self) -> Path:
        return self.path / REPORT_JSON

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    @property
    def report_probes(self) -> Path:
        return self.report_dir / REPORT_PROBES

    def artifacts(self, stage: str) -> tuple[Path, ...]:
        """The files and folders ``stage`` leaves (:data:`STAGE_ARTIFACTS`); () for a stage that leaves none."""
        return tuple(self.path / name for name in STAGE_ARTIFACTS.get(stage, ()))

    def checkpoints(self, model: str) -> Path:
        """The checkpoints folder of the model folder ``model`` (implanted, reinforced, unlearned)."""
        return checkpoints_of(self.path / model)

    # -- around the run -------------------------------------------------------------------------------------
    def tracking(self, stage: str | None = None) -> Path:
        """The trackers' folder of a training stage, or (no stage) of the whole run."""
        return self.path / TRACKING / stage if stage else self.path / TRACKING

    @property
    def curated_anchors(self) -> Path:
        return self.path / CURATED_ANCHORS

    @property
    def variants(self) -> Path:
        return self.path / VARIANTS

    def variant(self, name: str) -> RunDir:
        return RunDir(self.variants / name)

    @property
    def report_html(self) -> Path:
        return self.path / REPORT_HTML

    # -- checks -----------------------------------------------------------------------------------------------
    def artifact_problem(self, stage: str, external_reinforced: bool = False) -> str | None:
        """What is wrong with the files a finished ``stage`` left, or None when they look whole. Reads sizes,
        headers and footers only, so a run with every stage done stays instant. ``external_reinforced``: the
        reinforced model is ``reinforce.path``, not a folder of the run."""
        if stage in ("implant", "reinforce", "finetune"):
            if stage == "reinforce" and external_reinforced:
                return None
            return model_folder_problem(self.artifacts(stage)[0])
        if stage == "score":
            if not self.suggested_anchors.is_file():
                return f"{self.suggested_anchors} is missing"
            return parquet_problem(self.scores)
        if stage == "labels":
            return _labels_problem(self.labels)
        if stage == "report":
            report, bad = read_record(self.report_json)
            return bad or (None if report is not None else f"{self.report_json} is missing")
        return None


def model_folder_problem(path: Path) -> str | None:
    """A saved model folder: a LoRA adapter (adapter_config.json) or a full model (config.json), weights intact;
    or a descriptor (:data:`DESCRIPTOR`) that reads."""
    if not path.is_dir():
        return f"{path} is missing"
    descriptor = path / DESCRIPTOR
    if descriptor.is_file():
        return read_record(descriptor)[1]
    if (path / "adapter_config.json").is_file():
        weights = sorted(path.glob("adapter_model*.safetensors"))
    elif (path / "config.json").is_file():
        weights = sorted(path.glob("model*.safetensors"))
    else:
        return f"{path} holds neither adapter_config.json nor config.json"
    if not weights:
        if list(path.glob("*.bin")):
            return None  # an older pickle format: exists, not checked further
        return f"{path} holds no weights (*.safetensors)"
    for w in weights:
        problem = safetensors_problem(w)
        if problem:
            return problem
    return None


def _labels_problem(path: Path) -> str | None:
    manifest, bad = read_record(path / LABELS_MANIFEST)
    if bad:
        return bad
    if manifest is None:
        return f"{path / LABELS_MANIFEST} is missing"
    if not manifest.get("complete"):
        return f"{path} is not complete"
    for shard in manifest.get("shards", []):
        for kind in LABEL_SHARD_KINDS:
            problem = parquet_problem(label_shard(path, kind, shard))
            if problem:
                return problem
    return None


def drop_damaged_shards(labels_dir: Path) -> list[str]:
    """Before the labels stage resumes: forget shards whose files are damaged, so they are computed again.

    A damaged ``manifest.json`` is set aside (``manifest.json.damaged``), which restarts the stage. Returns
    messages saying what was done.
    """
    mf = labels_dir / LABELS_MANIFEST
    aside = LABELS_MANIFEST + ".damaged"
    manifest, bad = read_record(mf)
    if bad:
        os.replace(mf, mf.with_name(aside))
        return [f"{bad}; set aside as {aside}, labels start over"]
    if manifest is None:
        return []
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        os.replace(mf, mf.with_name(aside))
        return [f"{mf} lists no shards; set aside as {aside}, labels start over"]
    notes, keep = [], []
    for shard in shards:
        problems = [
            p for p in (parquet_problem(label_shard(labels_dir, kind, shard)) for kind in LABEL_SHARD_KINDS) if p
        ]
        if problems:
            notes.append(f"{problems[0]}; shard {shard} is computed again")
        else:
            keep.append(shard)
    if notes:
        atomic_write_json(mf, {**manifest, "shards": keep, "complete": False})
    return notes
