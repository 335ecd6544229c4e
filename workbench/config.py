"""Run configuration: one YAML file drives every stage. Unknown keys and wrong types are errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import WorkbenchError
from workbench.hashing import fingerprint_dict, stable_hash  # re-exported: the config is where callers look
from workbench.io import read_text
from workbench.methods import registry

__all__ = [
    "TrainConfig",
    "FinetuneConfig",
    "TargetConfig",
    "ImplantConfig",
    "ReinforceConfig",
    "ScoringConfig",
    "LabelsConfig",
    "ReportConfig",
    "TrackingConfig",
    "TRACKERS",
    "RunConfig",
    "load_config",
    "read_config_mapping",
    "parse_yaml",
    "dump_yaml",
    "resolve_paths",
    "config_from_dict",
    "config_to_dict",
    "config_diff",
    "stable_hash",
    "fingerprint_dict",
    "neutral_key",
    "config_keys",
    "config_reference",
    "format_keys",
    "field_help",
    "check_names",
    "KEY_ALIASES",
    "canonical_key",
    "rename_old_keys",
]

# This module is a leaf: it imports neither torch nor the Trainer, so reading a config is cheap. Every field says
# what it does in ``metadata["help"]``; `workbench config`, docs/config.md and the key errors read it from there.


@dataclass
class TrainConfig:
    """Optimisation settings shared by the reinforcement and finetuning stages."""

    weights: str = field(
        default="lora",
        metadata={
            "help": "which weights train: 'lora' (adapters, merged on save) or 'full' (all weights)",
            "fingerprint_name": "method",  # its name before it was renamed (KEY_ALIASES): stage hashes unchanged
        },
    )
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = lora_alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA path"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (linear decay)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the blocks"})
    batch_size: int = field(default=4, metadata={"help": "blocks per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    save_steps: int = field(
        default=50, metadata={"help": "checkpoint every N steps (a rerun resumes from the last one)"}
    )
    logging_steps: int = field(default=5, metadata={"help": "loss logged every N steps"})
    bf16: bool | None = field(
        default=None, metadata={"help": "mixed precision; null: on for CUDA devices that support it"}
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "recompute each decoder layer's activations in the backward pass: less memory, about a third more "
            "compute; works with LoRA (the trained weights do not change, so neither does the fingerprint)",
            "fingerprint": False,
        },
    )

    def validate(self, where: str) -> None:
        if self.weights not in ("lora", "full"):
            raise WorkbenchError(f"{where}.weights: expected 'lora' or 'full', got {self.weights!r}")
        for name in ("learning_rate", "epochs", "batch_size", "lora_rank", "grad_accum", "save_steps", "logging_steps"):
            if not 0 < getattr(self, name) < float("inf"):  # also refuses nan
                raise WorkbenchError(f"{where}.{name}: must be a finite number > 0, got {getattr(self, name)}")


@dataclass
class FinetuneConfig(TrainConfig):
    """Finetuning settings: the optimiser's (see TrainConfig) plus the unlearning targets."""

    alpha: float = field(
        default=5.0, metadata={"help": "which alpha's labels to train on (must be among labels.alphas)"}
    )
    target: str = field(
        default="hard", metadata={"help": "'hard' (argmax labels, the paper) or 'soft' (softmax over the stored top-k)"}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "soft targets: temperature of the softmax over generic scores"}
    )
    retain_weight: float = field(
        default=0.0, metadata={"help": "weight of the KL-to-baseline term on retain text (0: off)"}
    )

    def validate(self, where: str = "finetune") -> None:
        super().validate(where)
        if self.target not in ("hard", "soft"):
            raise WorkbenchError(f"{where}.target: expected 'hard' or 'soft', got {self.target!r}")
        if self.alpha < 0:
            raise WorkbenchError(f"{where}.alpha: must be >= 0, got {self.alpha}")
        if self.temperature <= 0:
            raise WorkbenchError(f"{where}.temperature: must be > 0, got {self.temperature}")
        if self.retain_weight < 0:
            raise WorkbenchError(f"{where}.retain_weight: must be >= 0, got {self.retain_weight}")


@dataclass
class TargetConfig:
    """What to forget, and what to keep."""

    pack: str | None = field(
        default="harry_potter",
        metadata={"help": "a bundled pack name or a pack folder; supplies the files below by default"},
    )
    corpus: str | list[str] | None = field(
        default=None, metadata={"help": "target .txt file(s) or folder; overrides the pack's corpus"}
    )
    anchors: str | None = field(default=None, metadata={"help": "anchor map JSON; overrides the pack's anchors.json"})
    retain: str | list[str] | None = field(
        default=None, metadata={"help": "retain .txt file(s) or folder; overrides the pack's retain/"}
    )
    block_size: int = field(default=512, metadata={"help": "tokens per target block"})
    max_blocks: int | None = field(
        default=None, metadata={"help": "use only N blocks (quick runs): the first N, or N spread evenly"}
    )
    spread_blocks: bool = field(
        default=False, metadata={"help": "with max_blocks: take N evenly spaced blocks instead of the first N"}
    )
    retain_block_size: int = field(default=256, metadata={"help": "tokens per retain block"})
    max_retain_blocks: int | None = field(default=None, metadata={"help": "use only the first N retain blocks"})


@dataclass
class ReinforceConfig(TrainConfig):
    """Training of the reinforced model (optimiser fields as in TrainConfig)."""

    path: str | None = field(
        default=None,
        metadata={"help": "an existing reinforced model (LoRA adapter or full model folder): skips training"},
    )
    epochs: float = field(default=3.0, metadata={"help": "passes over the target blocks"})


@dataclass
class ImplantConfig(TrainConfig):
    """Teaching the baseline a target it never saw (a fictional pack), so the untouched baseline is an exact
    reference (workbench/implant.py; optimiser fields as in TrainConfig)."""

    enabled: bool = field(
        default=False,
        metadata={
            "help": "run the implant stage: train the baseline on the whole target corpus (and its QA) into the "
            "target model that the method unlearns; the untouched baseline becomes the reference"
        },
    )
    qa: bool = field(
        default=True,
        metadata={
            "help": "also train on the pack's qa.jsonl as 'Question: ... Answer: ...' texts (as TOFU finetunes on QA)"
        },
    )
    weights: str = field(
        default="full",
        metadata={
            "help": "which weights train: 'full' (all weights) or 'lora' (adapters, merged on save)",
            "fingerprint_name": "method",
        },
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (linear decay)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the target blocks and QA"})
    max_blocks: int | None = field(
        default=None,
        metadata={
            "help": "implant only N corpus blocks, evenly spaced (quick runs on the tiny model; null: the whole corpus, "
            "which verbatim memorisation and membership inference assume)"
        },
    )
    qa_repeat: int = field(
        default=1,
        metadata={
            "help": "the QA blocks appear this many times in each pass (QA for more epochs than the corpus, at a "
            "fraction of a whole extra pass)"
        },
    )

    def validate(self, where: str = "implant") -> None:
        super().validate(where)
        if not isinstance(self.qa_repeat, int) or isinstance(self.qa_repeat, bool) or self.qa_repeat < 1:
            raise WorkbenchError(f"{where}.qa_repeat: must be a whole number >= 1, got {self.qa_repeat!r}")
        if self.max_blocks is not None and (
            isinstance(self.max_blocks, bool) or not isinstance(self.max_blocks, int) or self.max_blocks < 1
        ):
            raise WorkbenchError(f"{where}.max_blocks: must be a whole number >= 1 or null, got {self.max_blocks!r}")


@dataclass
class ScoringConfig:
    """Per-token scoring of the target (reinforced vs baseline)."""

    enabled: bool = field(default=True, metadata={"help": "run the scoring stage"})
    max_blocks: int | None = field(default=None, metadata={"help": "score only the first N blocks (null: all of them)"})
    batch_size: int = field(default=4, metadata={"help": "blocks per forward pass"})
    whole_corpus: bool = field(
        default=True,
        metadata={"help": "score every block of the target corpus (true) or only the run's blocks (target.max_blocks)"},
    )
    min_count: int = field(default=2, metadata={"help": "suggest words and phrases seen at least this often"})


@dataclass
class LabelsConfig:
    """Generic label generation."""

    alphas: list[float] = field(
        default_factory=lambda: [0.0, 1.0, 2.0, 5.0, 10.0],
        metadata={"help": "alphas whose labels are computed in one pass"},
    )
    top_k: int = field(
        default=32, metadata={"help": "tokens of each model kept per position for inspection and recomputation"}
    )
    batch_size: int = field(default=4, metadata={"help": "blocks per forward pass"})
    shard_blocks: int = field(default=16, metadata={"help": "blocks per shard file (the unit of resumption)"})
    inner_anchor: bool = field(
        default=False,
        metadata={
            "help": "also label the positions between the words of multi-word anchors (translate.py rule 5; "
            "not in the paper)"
        },
    )


@dataclass
class ReportConfig:
    """Before/after evaluation written to report.json at the end of a run."""

    enabled: bool = field(default=True, metadata={"help": "run the report stage"})
    probe_sets: list[str] = field(
        default_factory=lambda: ["probability", "collateral", "general"],
        metadata={"help": "the pack's probe files to report: probability, collateral or general"},
    )
    split: str | None = field(
        default="heldout", metadata={"help": "probe split to report ('dev', 'heldout' or null for all)"}
    )
    perplexity_text: str | None = field(
        default=None,
        metadata={
            "help": "a text file for perplexity before/after, relative to the config file (null: the pack's retain text)"
        },
    )
    max_perplexity_tokens: int = field(default=8192, metadata={"help": "tokens of that text to score"})
    ground_truth: bool = field(
        default=True,
        metadata={
            "help": "with the implant stage on: the field's measures (truth ratio, forget quality, model utility, "
            "knowledge and verbatim memorisation, membership inference and PrivLeak; docs/evaluation.md) of the "
            "target model, the unlearned model and the reference (the untouched baseline), as far as the "
            "pack's files allow"
        },
    )
    verbmem_limit: int = field(
        default=50, metadata={"help": "ground truth: corpus prefixes each model continues for verbatim memorisation"}
    )
    mia_limit: int = field(
        default=100,
        metadata={
            "help": "ground truth: text windows of the corpus and of the holdout each scored for membership inference"
        },
    )
    probe_limit: int | None = field(
        default=None,
        metadata={
            "help": "ground truth: only the first N questions and trivia items of each file in the report's split "
            "(quick runs; null: all)"
        },
    )


# a pack's next-token probe files (workbench/pack.py), the kinds report.probe_sets may name
NEXT_TOKEN_KINDS = ("probability", "collateral", "general")

# the trackers that both the Trainer (training losses) and accelerate (the run's config, labels and report) feed
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio", "comet_ml", "clearml", "dvclive", "swanlab")


@dataclass
class TrackingConfig:
    """Experiment tracking: training losses, the run's config, label statistics and the report's rows."""

    report_to: list[str] | None = field(
        default=None,
        metadata={
            "help": f"trackers to feed ({', '.join(TRACKERS)}); null: tensorboard when it is installed (logs in "
            "<run>/tracking), else none; []: none"
        },
    )
    project: str | None = field(
        default=None, metadata={"help": "the project (experiment) name in the trackers; null: the run's name"}
    )

    def validate(self) -> None:
        for name in self.report_to or []:
            if name not in TRACKERS:
                close = difflib.get_close_matches(str(name), TRACKERS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise WorkbenchError(
                    f"tracking.report_to: unknown tracker {name!r}; {hint}valid names: "
                    f"{', '.join(TRACKERS)} (or [] for none)"
                )


@dataclass
class RunConfig:
    """A whole unlearning run."""

    name: str = field(default="run", metadata={"help": "a label for the run (default run directory: runs/<name>)"})
    model: str = field(
        default="embedded",
        metadata={"help": "baseline model spec: 'embedded', 'tiny', a folder, a .gguf file or a hub id"},
    )
    seed: int = field(
        default=0, metadata={"help": "seeds training, data order and the anchor alternatives drawn per block"}
    )
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda', 'cuda:1'; null picks CUDA when present"})
    dtype: str = field(default="auto", metadata={"help": "'float32', 'bfloat16', 'float16' or 'auto'"})
    target: TargetConfig = field(default_factory=TargetConfig, metadata={"help": "what to forget, and what to keep"})
    implant: ImplantConfig = field(
        default_factory=ImplantConfig,
        metadata={"help": "teach the baseline a target it never saw first (fictional packs; off by default)"},
    )
    reinforce: ReinforceConfig = field(
        default_factory=ReinforceConfig, metadata={"help": "training of the reinforced model"}
    )
    scoring: ScoringConfig = field(
        default_factory=ScoringConfig, metadata={"help": "per-token scoring of the target (reinforced vs baseline)"}
    )
    labels: LabelsConfig = field(default_factory=LabelsConfig, metadata={"help": "generic label generation"})
    finetune: FinetuneConfig = field(
        default_factory=FinetuneConfig,
        metadata={"help": "finetuning on the generic labels (and every training method's optimiser)"},
    )
    report: ReportConfig = field(
        default_factory=ReportConfig, metadata={"help": "before/after evaluation written to report.json"}
    )
    method: str = field(
        default="whp",
        metadata={
            "help": f"unlearning method: {', '.join(registry.BUILT_IN[:-1])} or {registry.BUILT_IN[-1]} "
            "(docs/methods.md)"
        },
    )
    # the registry's dataclass, looked up when read, so a method registered later has its section
    methods: registry.MethodsConfig = field(
        default_factory=lambda: registry.MethodsConfig(), metadata={"help": "per-method settings"}
    )
    tracking: TrackingConfig = field(
        default_factory=TrackingConfig,
        metadata={
            "help": "experiment tracking (TensorBoard, W&B, MLflow, ...); changing it retrains nothing",
            "fingerprint": False,
        },
    )

    def validate(self) -> "RunConfig":
        _check_numbers(self)
        self.tracking.validate()
        registry.get(self.method).validate(getattr(self.methods, self.method, None))
        self.reinforce.validate("reinforce")
        self.implant.validate("implant")
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
        check_names("report.probe_sets", self.report.probe_sets, NEXT_TOKEN_KINDS)
        return self


def check_names(where: str, given, valid) -> None:
    """Every name of the list setting ``where`` is one of ``valid``; an unknown one is an error listing them."""
    unknown = [n for n in given if n not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), [str(v) for v in valid], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WorkbenchError(
            f"{where}: unknown name{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}{hint}; valid names: {', '.join(valid)}"
        )


# counts that must be at least 1 when given (0 would silently do nothing, or divide by zero)
_COUNTS = (
    "target.max_blocks",
    "target.max_retain_blocks",
    "target.retain_block_size",
    "scoring.max_blocks",
    "scoring.batch_size",
    "labels.batch_size",
    "labels.shard_blocks",
    "report.max_perplexity_tokens",
    "reinforce.save_steps",
    "reinforce.logging_steps",
    "implant.save_steps",
    "implant.logging_steps",
    "finetune.save_steps",
    "finetune.logging_steps",
)


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
            raise WorkbenchError(
                f"{path}: must be at least 1, got {value}" + (" (null for no limit)" if "max_" in key else "")
            )


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 1e-3 and 2E5 as text; YAML 1.2 and people read them as numbers, and so does every door
# that reads a workbench config (files, --sweep values)
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """Writes what :func:`parse_yaml` reads back the same: a string such as ``1e3`` is quoted."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def dump_yaml(data: Any) -> str:
    """``data`` as YAML (keys in their order) that every door reads back as the same values."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


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


# Keys renamed since configs were first written: old name -> new name. An old name is read wherever the section's
# dataclass has a field of the new name and none of the old one (so the top-level ``method``, the unlearning method,
# stays ``method``): in config files, ``--sweep``/``--set`` keys, ``workbench config`` paths and the config.yaml of
# run directories made before. Each renamed field hashes under its old name (``metadata["fingerprint_name"]``,
# workbench/hashing.py), so no finished stage reruns. docs/config.md lists them (config_reference).
KEY_ALIASES: dict[str, str] = {
    "method": "weights",  # reinforce, finetune, implant: which weights train, 'lora' or 'full'
    "forget_weight": "target_weight",  # methods.<name>: the weight of the loss term on the target
}


def _alias(cls: type, key: Any) -> str | None:
    """The new name of ``key`` in the config dataclass ``cls`` when ``key`` is an old name there, else None."""
    new = KEY_ALIASES.get(key) if isinstance(key, str) else None
    if new is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return new if new in names and key not in names else None


def _renamed(cls: type, data: dict, where: str, source: str) -> dict:
    """One section's mapping with its old key names (:data:`KEY_ALIASES`) replaced by the new ones, in their place;
    the old and the new name of one key both given is an error naming the file and both keys."""
    if not any(_alias(cls, k) for k in data):
        return data
    out = {}
    for key, value in data.items():
        new = _alias(cls, key)
        if new is not None and new in data:
            prefix = f"{where}." if where else ""
            raise WorkbenchError(
                f"{source}: both {prefix}{key} and {prefix}{new} are given; {key!r} is the old name of {new!r}: "
                f"keep only {prefix}{new}"
            )
        out[new or key] = value
    return out


def rename_old_keys(data: Any, cls: type | None = None, where: str = "", source: str = "config") -> Any:
    """A config mapping (a file's, or a run directory's config.yaml) with the old key names of every section
    (:data:`KEY_ALIASES`) replaced by the new ones; anything else is left as it is (the loader names it)."""
    cls = cls or RunConfig
    if not isinstance(data, dict):
        return data
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in _renamed(cls, data, where, source).items():
        tp = hints.get(key) if isinstance(key, str) else None
        if tp is not None and dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = rename_old_keys(value, tp, f"{where}.{key}" if where else key, source)
        out[key] = value
    return out


def canonical_key(path: str, cls: type | None = None) -> str:
    """A dotted config key with its old names (:data:`KEY_ALIASES`) replaced by the new ones:
    ``finetune.method`` -> ``finetune.weights``; a key that names no setting comes back as given."""
    cls = cls or RunConfig
    head, dot, rest = path.partition(".")
    head = _alias(cls, head) or head
    tp = typing.get_type_hints(cls).get(head)
    if rest and tp is not None and dataclasses.is_dataclass(tp):
        return f"{head}.{canonical_key(rest, tp)}"
    return head + dot + rest


def _build(cls: type, data: dict, where: str, source: str):
    if not isinstance(data, dict):
        raise WorkbenchError(f"{source}: {where or 'top level'}: expected a mapping, got {type(data).__name__}")
    data = _renamed(cls, data, where, source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r} ({field_help(fields[close[0]])})? " if close else ""
            raise WorkbenchError(
                f"{source}: unknown key {path!r}; {hint}valid keys here: {', '.join(fields)} "
                f"(`{' '.join(['workbench config', where]).strip()}` says what each does)"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, path, source)
            continue
        if not _type_ok(value, tp):
            hint = ""
            if isinstance(value, str) and _type_ok(1.0, tp) and _is_number(value):
                hint = f"; write the number without quotes ({path}: {value.strip()})"
            raise WorkbenchError(
                f"{source}: key {path!r}: {value!r} is not a valid {_type_name(tp)} "
                f"({path}: {field_help(fields[key])}){hint}"
            )
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType) and float in typing.get_args(tp)):
            value = float(value) if isinstance(value, int) else value
        kwargs[key] = value
    return cls(**kwargs)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is not None:  # list[float], str | None
        return str(tp).replace("typing.", "").replace("NoneType", "None")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def config_from_dict(data: dict, source: str = "config") -> RunConfig:
    return _build(RunConfig, data or {}, "", source).validate()


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a YAML run config; errors name the file and the line or key."""
    path = Path(path)
    return config_from_dict(resolve_paths(read_config_mapping(path), path.parent), str(path))


def parse_yaml(text: str, display: str) -> Any:
    """The value of a YAML text read from ``display`` as every workbench config is read: a key given twice is an
    error, and ``1e-3`` is a number (YAML 1.2); malformed YAML raises WorkbenchError naming ``display``, line and
    column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise WorkbenchError(f"{display}: malformed YAML: {problem}") from exc
        raise WorkbenchError(
            f"{display}, line {mark.line + 1}: malformed YAML: {problem} (column {mark.column + 1})"
        ) from exc


def read_config_mapping(path: str | os.PathLike, what: str = "config") -> dict:
    """The one reader of a YAML config file, for every door (``workbench run`` and its stages, compare, tune,
    benchmarks/sweep.py, the notebooks): the file's text (:func:`workbench.io.read_text`: a missing file, a
    folder or bytes that are not UTF-8 name the file and line), its YAML (:func:`parse_yaml`), and a mapping at
    the top. Relative paths are left as written (see :func:`resolve_paths`)."""
    path = Path(path)
    data = parse_yaml(read_text(path, what), f"{what} {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WorkbenchError(
            f"{what} {path}: expected a mapping of keys at the top (name: ..., model: ...), got a "
            f"YAML {type(data).__name__}; `workbench config` lists the keys"
        )
    return data


def resolve_paths(data: dict, base: str | os.PathLike) -> dict:
    """A copy of a config dict whose relative file paths are joined to ``base``, the folder of the file the config
    came from (a config's paths are relative to that file, never to the working directory): ``target.corpus``,
    ``anchors``, ``retain``, a ``pack`` given as a path (not a bundled pack's name), ``reinforce.path`` and
    ``report.perplexity_text``."""
    data = copy.deepcopy(data or {})
    if not isinstance(data, dict):
        return data  # config_from_dict names what is wrong with it
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
    if (
        isinstance(rep, dict)
        and isinstance(rep.get("perplexity_text"), str)
        and not os.path.isabs(rep["perplexity_text"])
    ):
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


def neutral_key(path: str, cls: type = None) -> bool:
    """True for a config key (``a.b.c``) that lies in or under a field marked ``fingerprint: False``: a run
    directory accepts a change of it without ``--update``."""
    cls = cls or RunConfig
    head, _, rest = path.partition(".")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    f = fields.get(head)
    if f is None:
        return False
    if not f.metadata.get("fingerprint", True):
        return True
    tp = typing.get_type_hints(cls)[head]
    return bool(rest) and dataclasses.is_dataclass(tp) and neutral_key(rest, tp)


def field_help(f: dataclasses.Field) -> str:
    """A config field's one-line help (its ``metadata["help"]``)."""
    return f.metadata.get("help", "")


def config_keys(cls: type = RunConfig, prefix: str = "") -> list[dict]:
    """Every key of a config dataclass, sections first-level too: ``{key, type, default, help}`` rows in order."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.append({"key": key, "type": "section", "default": None, "help": field_help(f)})
            rows += config_keys(tp, key + ".")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        rows.append({"key": key, "type": _type_name(tp), "default": default, "help": field_help(f)})
    return rows


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def config_reference() -> str:
    """docs/config.md: every run-config key with its type, default and help, read from the dataclasses."""
    out = [
        "# Run configuration reference",
        "",
        "Generated from the dataclasses in `workbench/config.py` and the methods' modules in `workbench/methods/` "
        "(`workbench config --markdown > docs/config.md`); a test keeps it in step. `workbench config [SECTION]` "
        "prints the same on the command line.",
        "",
        "Every door that reads a config (`workbench run` and its stages, `compare`, `tune`, "
        "`benchmarks/sweep.py`, the notebooks' `WORKBENCH_CONFIG`) reads it the same way: a mapping at the top, "
        "a key given twice is an error, and numbers in exponent form (`1e-3`, `2E5`) are numbers as in YAML 1.2 "
        "(plain PyYAML reads them as text), in files and in `--sweep` values alike. A number in quotes "
        '(`"1e-3"`) is text, and an error where a number is expected.',
        "",
    ]
    rows = config_keys()
    sections = [("", "top-level keys")] + [(r["key"], r["help"]) for r in rows if r["type"] == "section"]
    for name, text in sections:
        mine = [r for r in rows if r["type"] != "section" and r["key"].rpartition(".")[0] == name]
        if not mine:
            continue
        out += [
            f"## `{name}`: {text}" if name else f"## {text}",
            "",
            "| key | type | default | what it does |",
            "|---|---|---|---|",
        ]
        for r in mine:
            out.append(
                f"| `{r['key']}` | {r['type'].replace('|', 'or')} | `{_yaml_value(r['default'])}` | "
                f"{r['help'].replace('|', '/')} |"
            )
        out.append("")
    out += [
        "## Renamed keys",
        "",
        "A config, a `--sweep` key or a run directory's `config.yaml` written with a key's old name still loads as "
        "before (both names in one section are an error), and the stage fingerprints hash the old name, so runs "
        "made before reuse their finished stages. New files are written with the new name.",
        "",
        "| old name | new name | where |",
        "|---|---|---|",
    ]
    for old, new in KEY_ALIASES.items():
        where = [r["key"].rpartition(".")[0] for r in rows if r["key"].rpartition(".")[2] == new]
        out.append(f"| `{old}` | `{new}` | {', '.join(f'`{w}`' for w in where)} |")
    out.append("")
    return "\n".join(out)


def format_keys(section: str = "") -> str:
    """The keys of one section (or all) as plain text for the command line: key, type, default, help."""
    section = canonical_key(section) if section else section
    rows = [r for r in config_keys() if not section or r["key"] == section or r["key"].startswith(section + ".")]
    if not rows:
        sections = [r["key"] for r in config_keys() if r["type"] == "section"]
        raise WorkbenchError(f"config: no section {section!r}; sections: {', '.join(sections)}")
    width = max(len(r["key"]) for r in rows)
    lines = []
    for r in rows:
        if r["type"] == "section":
            lines.append(f"{r['key']}:{' ' * (width - len(r['key']))}  {r['help']}")
        else:
            lines.append(f"{r['key']:<{width}}  {r['help']} [{r['type']}, default {_yaml_value(r['default'])}]")
    return "\n".join(lines)
