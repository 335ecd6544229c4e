"""Run configuration: one YAML file drives every stage. Unknown keys and wrong types are errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import WorkbenchError
from workbench.finetune import FinetuneConfig
from workbench.methods.config import MethodsConfig
from workbench.training import TrainConfig

__all__ = [
    "TargetConfig", "ReinforceConfig", "ScoringConfig", "LabelsConfig", "ReportConfig", "RunConfig",
    "load_config", "resolve_paths", "config_from_dict", "config_to_dict", "config_diff", "stable_hash",
]


@dataclass
class TargetConfig:
    """What to forget, and what to keep."""

    pack: str | None = "harry_potter"  # a bundled pack name or a pack folder; supplies the files below by default
    corpus: str | list[str] | None = None  # target .txt file(s) or folder; overrides the pack's corpus
    anchors: str | None = None  # anchor map JSON; overrides the pack's anchors.json
    retain: str | list[str] | None = None  # retain .txt file(s) or folder; overrides the pack's retain/
    block_size: int = 512  # tokens per target block
    max_blocks: int | None = None  # use only N blocks (quick runs): the first N, or N spread evenly
    spread_blocks: bool = False  # with max_blocks: take N evenly spaced blocks instead of the first N
    retain_block_size: int = 256  # tokens per retain block
    max_retain_blocks: int | None = None  # use only the first N retain blocks


@dataclass
class ReinforceConfig(TrainConfig):
    """Training of the reinforced model (optimiser fields as in TrainConfig)."""

    path: str | None = None  # an existing reinforced model (LoRA adapter or full model folder): skips training
    epochs: float = 3.0  # passes over the target blocks


@dataclass
class ScoringConfig:
    """Per-token scoring of the target (reinforced vs baseline)."""

    enabled: bool = True  # run the scoring stage
    max_blocks: int | None = None  # score only the first N blocks (None: all of them)
    batch_size: int = 4  # blocks per forward pass
    whole_corpus: bool = field(default=True, metadata={
        "help": "score every block of the target corpus (true) or only the run's blocks (target.max_blocks)"})
    min_count: int = field(default=2, metadata={"help": "suggest words and phrases seen at least this often"})


@dataclass
class LabelsConfig:
    """Generic label generation."""

    alphas: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 5.0, 10.0])  # alphas computed in one pass
    top_k: int = 32  # tokens of each model kept per position for inspection and recomputation
    batch_size: int = 4  # blocks per forward pass
    shard_blocks: int = 16  # blocks per shard file (the unit of resumption)
    inner_anchor: bool = False  # also label the positions between the words of multi-word anchors (translate.py rule 5; not in the paper)


@dataclass
class ReportConfig:
    """Before/after evaluation written to report.json at the end of a run."""

    enabled: bool = True  # run the report stage
    probe_sets: list[str] = field(default_factory=lambda: ["probability", "collateral", "general"])  # pack probe files
    split: str | None = "heldout"  # probe split to report ("dev", "heldout" or null for all)
    perplexity_text: str | None = None  # a text file for perplexity before/after, relative to the config file (null: the pack's retain text)
    max_perplexity_tokens: int = 8192  # tokens of that text to score


@dataclass
class RunConfig:
    """A whole unlearning run."""

    name: str = "run"  # a label for the run (default run directory: runs/<name>)
    model: str = "embedded"  # baseline model spec: 'embedded', 'tiny', a folder, a .gguf file or a hub id
    seed: int = 0  # seeds training, data order and the anchor alternatives drawn per block
    device: str | None = None  # 'cpu', 'cuda', 'cuda:1'; null picks CUDA when present
    dtype: str = "auto"  # 'float32', 'bfloat16', 'float16' or 'auto'
    target: TargetConfig = field(default_factory=TargetConfig)
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    method: str = field(default="whp", metadata={"help": "unlearning method: whp, whp_test_time, ga, graddiff, npo, "
                                                          "simnpo, rmu or prompt (docs/methods.md)"})
    methods: MethodsConfig = field(default_factory=MethodsConfig, metadata={"help": "per-method settings"})

    def validate(self) -> "RunConfig":
        _check_numbers(self)
        self.methods.validate(self.method)
        self.reinforce.validate("reinforce")
        self.finetune.validate("finetune")
        if any(a < 0 for a in self.labels.alphas):
            raise WorkbenchError(f"labels.alphas: every alpha must be >= 0, got {self.labels.alphas}")
        if not self.labels.alphas:
            raise WorkbenchError("labels.alphas: give at least one alpha")
        # soft targets need the exact labels too, at the rows where the stored top-k cannot vouch for them
        if float(self.finetune.alpha) not in [float(a) for a in self.labels.alphas]:
            raise WorkbenchError(
                f"finetune.alpha={self.finetune.alpha} is not among labels.alphas {self.labels.alphas}; add it there"
            )
        if self.target.block_size < 8:
            raise WorkbenchError(f"target.block_size: must be at least 8, got {self.target.block_size}")
        if self.labels.top_k < 1:
            raise WorkbenchError(f"labels.top_k: must be >= 1, got {self.labels.top_k}")
        if self.target.pack is None and (self.target.corpus is None or self.target.anchors is None):
            raise WorkbenchError("target: give a pack, or both target.corpus and target.anchors")
        return self


# counts that must be at least 1 when given (0 would silently do nothing, or divide by zero)
_COUNTS = ("target.max_blocks", "target.max_retain_blocks", "target.retain_block_size", "scoring.max_blocks",
           "scoring.batch_size", "labels.batch_size", "labels.shard_blocks", "report.max_perplexity_tokens",
           "reinforce.save_steps", "reinforce.logging_steps", "finetune.save_steps", "finetune.logging_steps")


def _check_numbers(cfg: "RunConfig") -> None:
    """Every number finite (no .inf / .nan), and every count at least 1."""
    def walk(obj, where):
        for f in dataclasses.fields(obj):
            value, path = getattr(obj, f.name), f"{where}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, path + ".")
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, float) and not math.isfinite(v):
                    raise WorkbenchError(f"{path}: {v} is not a finite number; give a real value")

    walk(cfg, "")
    for path in _COUNTS:
        section, key = path.split(".")
        value = getattr(getattr(cfg, section), key)
        if value is not None and value < 1:
            raise WorkbenchError(f"{path}: must be at least 1, got {value}" + (" (null for no limit)" if "max_" in key else ""))


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key]})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _build(cls: type, data: dict, where: str, source: str):
    if not isinstance(data, dict):
        raise WorkbenchError(f"{source}: {where or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise WorkbenchError(f"{source}: unknown key {path!r}; valid keys here: {', '.join(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, path, source)
            continue
        if not _type_ok(value, tp):
            raise WorkbenchError(f"{source}: key {path!r}: {value!r} is not a valid {_type_name(tp)}")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType) and float in typing.get_args(tp)):
            value = float(value) if isinstance(value, int) else value
        kwargs[key] = value
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def config_from_dict(data: dict, source: str = "config") -> RunConfig:
    return _build(RunConfig, data or {}, "", source).validate()


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a YAML run config; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"config {path} does not exist")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader) or {}
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"config {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise WorkbenchError(f"config {path}{where}: malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    return config_from_dict(resolve_paths(data, path.parent), str(path))


def resolve_paths(data: dict, base: str | os.PathLike) -> dict:
    """A copy of a config dict whose relative file paths are joined to ``base``, the folder of the file the config
    came from (a config's paths are relative to that file, never to the working directory): ``target.corpus``,
    ``anchors``, ``retain``, a ``pack`` given as a path (not a bundled pack's name), ``reinforce.path`` and
    ``report.perplexity_text``."""
    data = copy.deepcopy(data or {})
    base = Path(base)
    t = data.get("target")
    if isinstance(t, dict):
        for name in ("corpus", "anchors", "retain", "pack"):
            val = t.get(name)
            if name == "pack" and isinstance(val, str) and not (os.sep in val or val.startswith(".")):
                continue
            if isinstance(val, str) and not os.path.isabs(val):
                t[name] = str(base / val)
            elif isinstance(val, list):
                t[name] = [v if not isinstance(v, str) or os.path.isabs(v) else str(base / v) for v in val]
    r = data.get("reinforce")
    if isinstance(r, dict) and isinstance(r.get("path"), str) and not os.path.isabs(r["path"]):
        r["path"] = str(base / r["path"])
    rep = data.get("report")
    if isinstance(rep, dict) and isinstance(rep.get("perplexity_text"), str) and not os.path.isabs(rep["perplexity_text"]):
        rep["perplexity_text"] = os.path.normpath(base / rep["perplexity_text"])
    return data


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """``(key.path, old value, new value)`` for every setting that differs between two config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, path + ".")
        elif a != b:
            out.append((path, a, b))
    return out


def stable_hash(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (dataclasses are converted)."""
    norm = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    return hashlib.sha256(json.dumps(norm, sort_keys=True, default=str).encode()).hexdigest()[:16]
