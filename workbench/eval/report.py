"""Evaluate several models on every measure and write a report: a tidy table, a JSON summary, plotly figures.

The work is cut into *units* (one probe set, one benchmark, perplexity, ...) per model. Each finished unit is
written to ``<out>/partial/<model>/<unit>.json`` (and ``.parquet`` for its per-item rows) atomically, with a
fingerprint of the model and the unit's settings; a rerun into the same folder skips units whose fingerprint
matches, so an interrupted evaluation resumes where it stopped.

Outputs in ``<out>``:

- ``results.csv`` / ``results.parquet``: the tidy table, one row per (model, section, set, split, variant,
  metric) with ``value, ci_low, ci_high, n``;
- ``probes.*``, ``completions.*``, ``mc_items.*``: per-probe, per-completion and per-item rows;
- ``summary.json``: the config, the models, the headline numbers per model and the differences to the first
  model (the baseline) with 95% confidence intervals;
- ``report.md``: the headline table in markdown; ``figures/*.html``: the plotly figures (offline).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.io import atomic_write, atomic_write_text
from workbench.eval.completion import (
    GRADES,
    GenerationConfig,
    HFChatJudge,
    KeywordJudge,
    OpenAIJudge,
    generation_preset,
    load_rubric,
    score_completions,
    summarize_completions,
)
from workbench.eval.probes import score_probes, summarize_probes
from workbench.eval.robustness import (
    PrimingConfig,
    paraphrase_summary,
    priming_passage,
    priming_summary,
    score_paraphrases,
    score_primed,
)
from workbench.eval.scoring import ScoringConfig
from workbench.eval.utility import (
    BENCHMARKS,
    PerplexityConfig,
    default_evaldata_dir,
    load_mc_task,
    paired_bootstrap,
    perplexity,
    resolve_task,
    score_mc,
    summarize_mc,
)
from workbench.models import LoadedModel
from workbench.packs import Pack, load_anchor_terms, load_pack

__all__ = [
    "ALL_SECTIONS",
    "EvalConfig",
    "EvalReport",
    "TABLE_COLUMNS",
    "build_figures",
    "evaluate_models",
    "headline_table",
    "load_report",
    "parse_model_arg",
    "write_report",
]

ALL_SECTIONS = ("probes", "collateral", "paraphrase", "priming", "completion", "utility", "perplexity", "lm_eval")
DEFAULT_SECTIONS = ALL_SECTIONS[:-1]  # lm-eval needs the optional package and usually the internet
ALL_SECTIONS += ("adversarial", "relearn", "residual")  # attacks, on request (workbench/eval/attacks.py)
TABLE_COLUMNS = ["model", "section", "set", "split", "variant", "metric", "value", "ci_low", "ci_high", "n"]

ModelArg = Union[str, LoadedModel, tuple[str, Union[str, LoadedModel]]]


@dataclass
class EvalConfig:
    """What `evaluate_models` measures, and how."""

    pack: str | None = "harry_potter"  # pack name or folder with the probes (None: no familiarity measures)
    sections: tuple[str, ...] | None = None  # measures to run (None: all the pack and data allow; lm_eval if tasks given)
    splits: tuple[str, ...] = ("dev", "heldout")  # probe splits to evaluate
    probe_limit: int | None = None  # first N probes of each probe file (after the split filter; None: all)
    tasks: tuple[str, ...] = tuple(BENCHMARKS)  # multiple-choice benchmarks: names in evaldata_dir or JSONL paths
    evaldata_dir: str | None = None  # folder of the benchmark files (default: the shipped workbench/evaldata)
    limit: int | None = 500  # items per benchmark (None: all)
    ppl_text: str | None = None  # text file for perplexity (default: wikitext2_test_raw.txt in evaldata_dir)
    ppl_max_tokens: int | None = 20000  # tokens of the perplexity text to score (None: all)
    ppl_max_length: int = 1024  # perplexity window
    ppl_stride: int = 512  # perplexity stride
    batch_size: int = 16  # sequences per forward pass
    max_batch_tokens: int = 32768  # rows x padded length per forward pass
    padding_side: str = "left"  # padding of scoring batches
    judge: str = "keyword"  # completion judge: 'keyword', 'openai' or 'hf'
    judge_url: str | None = None  # OpenAI-compatible endpoint (judge 'openai')
    judge_model: str | None = None  # model name at the endpoint, or a model spec (judge 'hf')
    judge_api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the endpoint's key
    max_new_tokens: int = 48  # tokens per completion
    greedy: bool = True  # one greedy completion per prompt
    samples: int = 2  # sampled completions per prompt
    temperature: float = 1.0  # sampling temperature
    top_p: float = 0.95  # sampling nucleus
    seed: int = 0  # sampling seed
    gen_batch_size: int = 16  # prompts per generate() call
    priming_chars: int = 600  # longest priming passage
    priming_text: str | None = None  # priming passage (default: one cut from the pack's corpus)
    lm_eval_tasks: tuple[str, ...] = ()  # lm-evaluation-harness task names (section 'lm_eval')
    lm_eval_include: str | None = None  # folder of extra lm-eval task YAMLs
    lm_eval_limit: int | None = None  # items per lm-eval task
    device: str | None = None  # torch device for models given as specs
    dtype: str | None = None  # dtype for models given as specs
    resume: bool = True  # reuse finished units in <out>/partial
    formats: tuple[str, ...] = ("csv", "parquet")  # table formats written
    figures: bool = True  # write plotly HTML figures
    progress: bool = True  # tqdm bars
    top_k: int = field(default=0, metadata={"help": "sampling: only the k most likely tokens (0: no limit)"})
    generation_preset: str | None = field(default=None, metadata={
        "help": "named completion settings that replace max_new_tokens, greedy, samples, temperature, top_p and "
                "top_k: 'authors' (20 new tokens, temperature 1, top-k 5, 5 samples)"})
    judge_rubric: str | None = field(default=None, metadata={
        "help": "LLM judge instruction: 'workbench' (default, SCORE: n), 'authors' (the authors' grading "
                "instruction, MODEL_FAMILIARITY: X/3) or a template file with {prompt} and {completion}"})
    attacks: Any = None  # workbench.eval.attacks.AttackConfig for the attack sections (None: its defaults)

    def scoring(self, desc: str) -> ScoringConfig:
        return ScoringConfig(batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens,
                             padding_side=self.padding_side, progress=self.progress, desc=desc)

    def generation(self) -> GenerationConfig:
        if self.generation_preset:
            return generation_preset(self.generation_preset, batch_size=self.gen_batch_size, seed=self.seed,
                                     progress=self.progress)
        return GenerationConfig(max_new_tokens=self.max_new_tokens, batch_size=self.gen_batch_size, greedy=self.greedy,
                                samples=self.samples, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                                progress=self.progress, top_k=self.top_k)


@dataclass
class EvalReport:
    """What `evaluate_models` produced (also on disk in ``out_dir``)."""

    out_dir: Path  # where the files are
    table: pd.DataFrame  # the tidy table (TABLE_COLUMNS)
    details: dict[str, pd.DataFrame]  # 'probes', 'completions', 'mc_items': per-item rows with a 'model' column
    summary: dict[str, Any]  # the JSON summary
    figures: dict[str, Any] = field(default_factory=dict)  # name -> plotly Figure
    files: dict[str, Path] = field(default_factory=dict)  # name -> written file

    def headline(self) -> pd.DataFrame:
        """Headline metrics (rows) per model (columns)."""
        return headline_table(self.summary)

    def markdown(self) -> str:
        """The headline table as markdown."""
        return _markdown(self.headline())


# ----------------------------------------------------------------------------------------------- files


def _atomic_frame(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _clean(obj: Any) -> Any:
    """NaN and infinities become None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, default=_json_default, allow_nan=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


# ----------------------------------------------------------------------------------------------- models


def parse_model_arg(arg: str) -> tuple[str, str]:
    """``'label=spec'`` or a plain spec -> (label, spec). The label defaults to the spec's last path part."""
    if "=" in arg and not Path(arg).exists():
        label, spec = arg.split("=", 1)
        if re.fullmatch(r"[A-Za-z0-9_.+-]+", label) and spec:
            return label, spec
    name = Path(arg.rstrip("/")).name or arg
    if name == "unlearned" and Path(arg).parent.name:  # a run's model folder: name it after the run
        name = Path(arg.rstrip("/")).parent.name
    return name, arg


def _normalize_models(models: Sequence[ModelArg]) -> list[tuple[str, str | LoadedModel]]:
    out: list[tuple[str, str | LoadedModel]] = []
    for m in models:
        if isinstance(m, tuple):
            label, spec = m
        elif isinstance(m, LoadedModel):
            label, spec = _slug(Path(m.spec).name or m.spec), m
        else:
            label, spec = parse_model_arg(m)
        out.append((label, spec))
    if not out:
        raise WorkbenchError("no model to evaluate: give at least one --model")
    labels = [lab for lab, _ in out]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        # Two models with one label would share partial results; make them distinct.
        seen: dict[str, int] = {}
        fixed = []
        for lab, spec in out:
            if lab in dupes:
                seen[lab] = seen.get(lab, 0) + 1
                lab = f"{lab}-{seen[lab]}"
            fixed.append((lab, spec))
        out = fixed
    return out


def _check_spec(spec: str | LoadedModel) -> None:
    """Fail before any work when a model path does not exist (hub ids are checked when loaded)."""
    if isinstance(spec, LoadedModel):
        return
    from workbench.models import EMBEDDED_NAMES

    if spec in EMBEDDED_NAMES or spec == "tiny":
        return
    path = Path(spec).expanduser()
    looks_local = (spec.startswith((".", "/", "~")) or path.suffix == ".gguf" or spec.count("/") > 1
                   or (os.sep != "/" and os.sep in spec))
    if looks_local and not path.exists():
        raise WorkbenchError(f"model path {spec} does not exist: give a model folder, a .gguf file, a run directory, "
                             "a hub id or 'embedded'")


def _model_identity(spec: str | LoadedModel, dtype: str | None = None) -> dict:
    """What identifies a model's weights for the resume fingerprint (a spec is loaded in ``dtype``)."""
    if isinstance(spec, LoadedModel):
        source = spec.source
        name = spec.spec
    else:
        source = spec
        name = spec
    ident: dict[str, Any] = {"spec": name}
    if dtype is not None and not isinstance(spec, LoadedModel):
        ident["dtype"] = dtype
    path = Path(source)
    if path.exists():
        if (path / "unlearned").is_dir():
            path = path / "unlearned"
        files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
        ident["path"] = str(path.resolve())
        ident["mtime"] = max((p.stat().st_mtime for p in files), default=0.0)
    elif name == "tiny":
        ident["note"] = "in-process tiny model"
    return ident


def _load(spec: str | LoadedModel, config: EvalConfig) -> LoadedModel:
    if isinstance(spec, LoadedModel):
        return spec
    from workbench.models import load_model

    return load_model(spec, device=config.device, dtype=config.dtype)


# ----------------------------------------------------------------------------------------------- units


@dataclass
class _Unit:
    name: str  # file-safe unit name, e.g. 'mc.piqa'
    section: str  # one of ALL_SECTIONS
    params: dict  # what the result depends on besides the model (for the fingerprint)
    run: Callable[[LoadedModel, dict], tuple[list[dict], pd.DataFrame | None]]  # (model, memo) -> (metric rows, detail rows)
    detail: str | None  # which details frame its rows go to
    models: tuple[str, ...] | None = None  # the model labels it runs for (None: every model)


def _metric_rows(frame: pd.DataFrame, section: str, metrics: Sequence[str], set_col: str = "set",
                 split_col: str | None = "split", variant_col: str | None = "variant", n_col: str = "n",
                 ci: dict[str, tuple[str, str]] | None = None, set_value: str | None = None,
                 split_value: str = "-", variant_value: str = "-") -> list[dict]:
    rows = []
    ci = ci or {}
    for _, r in frame.iterrows():
        for metric in metrics:
            if metric not in r:
                continue
            lo, hi = ci.get(metric, (None, None))
            rows.append({
                "section": section,
                "set": str(set_value if set_value is not None else r[set_col]),
                "split": str(r[split_col]) if split_col else split_value,
                "variant": str(r[variant_col]) if variant_col else variant_value,
                "metric": metric,
                "value": float(r[metric]) if r[metric] is not None else math.nan,
                "ci_low": float(r[lo]) if lo else math.nan,
                "ci_high": float(r[hi]) if hi else math.nan,
                "n": int(r[n_col]) if n_col in r else 0,
            })
    return rows


PROBE_METRICS = ["mean_prob", "median_prob", "mean_logprob", "median_rank", "top1_rate", "top5_rate", "mean_seq_logprob"]
PROBE_CI = {"mean_prob": ("mean_prob_ci_low", "mean_prob_ci_high")}


def _file_stamp(path: Path) -> dict:
    return {"file": str(path), "mtime": path.stat().st_mtime if path.exists() else None}


def _plan_units(config: EvalConfig, pack: Pack | None, explicit: bool, notes: list[str]) -> list[_Unit]:
    sections = config.sections or (DEFAULT_SECTIONS + (("lm_eval",) if config.lm_eval_tasks else ()))
    unknown = [s for s in sections if s not in ALL_SECTIONS]
    if unknown:
        raise WorkbenchError(f"unknown eval section(s) {', '.join(unknown)}; choose from {', '.join(ALL_SECTIONS)}")
    units: list[_Unit] = []
    splits = tuple(config.splits)

    def skip(section: str, why: str) -> None:
        if explicit:
            raise WorkbenchError(f"eval section '{section}' cannot run: {why}")
        notes.append(f"skipped {section}: {why}")

    def probes_of(kind: str):
        probes = [p for p in pack.probes(kind) if p.split in splits]
        return probes[: config.probe_limit] if config.probe_limit is not None else probes

    needs_pack = {"probes", "collateral", "paraphrase", "priming", "completion"}
    if pack is None:
        for s in sections:
            if s in needs_pack:
                skip(s, "no pack given")
        sections = [s for s in sections if s not in needs_pack]

    if "probes" in sections or "paraphrase" in sections or "priming" in sections:
        if not pack.has_probes("probability"):
            for s in ("probes", "paraphrase", "priming"):
                if s in sections:
                    skip(s, f"pack {pack.name!r} has no probability probes file")
        else:
            probes = probes_of("probability")
            stamp = _file_stamp(pack.probe_file("probability"))
            if not probes:
                for s in ("probes", "paraphrase", "priming"):
                    if s in sections:
                        skip(s, f"no probability probes in splits {', '.join(splits)}")
            else:
                if "probes" in sections:
                    units.append(_probe_unit("probes.probability", "probes", probes, stamp, splits, config))
                if "paraphrase" in sections:
                    if any(p.paraphrases for p in probes):
                        units.append(_paraphrase_unit(probes, stamp, splits, config))
                    else:
                        skip("paraphrase", "no probability probe has paraphrases")
                if "priming" in sections:
                    try:
                        passage = priming_passage(pack, PrimingConfig(chars=config.priming_chars, text=config.priming_text,
                                                                      seed=config.seed))
                    except WorkbenchError as exc:
                        skip("priming", str(exc))
                    else:
                        units.append(_priming_unit(probes, passage, stamp, splits, config))
    if "collateral" in sections:
        kinds = [k for k in ("collateral", "general") if pack.has_probes(k)]
        if not kinds:
            skip("collateral", f"pack {pack.name!r} has neither collateral nor general probe files")
        for kind in kinds:
            probes = probes_of(kind)
            if probes:
                units.append(_probe_unit(f"probes.{kind}", "collateral", probes, _file_stamp(pack.probe_file(kind)),
                                         splits, config, by_domain=True))
    if "completion" in sections:
        if not pack.has_probes("completion"):
            skip("completion", f"pack {pack.name!r} has no completion probes file")
        else:
            probes = probes_of("completion")
            if probes:
                units.append(_completion_unit(probes, pack, config))
            else:
                skip("completion", f"no completion probes in splits {', '.join(splits)}")
    if "utility" in sections:
        for task in config.tasks:
            try:
                path = resolve_task(task, config.evaldata_dir)
            except WorkbenchError as exc:
                if Path(task).suffix == ".jsonl":  # a file named outright must exist
                    raise
                skip("utility", str(exc))
                continue
            units.append(_mc_unit(str(task), path, config))
    if "perplexity" in sections:
        default_text = Path(config.evaldata_dir or default_evaldata_dir()) / "wikitext2_test_raw.txt"
        text = Path(config.ppl_text) if config.ppl_text else default_text
        if config.ppl_text and not text.is_file():  # a named text must exist: no silent switch to another
            raise WorkbenchError(f"perplexity text {text} does not exist (--ppl-text / EvalConfig.ppl_text)")
        if not text.is_file():
            skip("perplexity", f"text file {text} does not exist")
        else:
            units.append(_ppl_unit(text, config))
    if "lm_eval" in sections:
        if not config.lm_eval_tasks:
            skip("lm_eval", "no lm-eval tasks given (--lm-eval-tasks)")
        else:
            units.append(_lm_eval_unit(config))
    attack_sections = [s for s in sections if s in ("adversarial", "relearn", "residual")]
    if attack_sections:
        from workbench.eval.attacks import attack_units

        units += attack_units(attack_sections, config, pack, probes_of, skip)
    return units


def _plain_probes(lm: LoadedModel, memo: dict, name: str, probes, config: EvalConfig) -> pd.DataFrame:
    """The unprimed probe rows, scored once per model and shared by the probe, paraphrase and priming units."""
    if name not in memo:
        memo[name] = score_probes(lm, probes, config.scoring(name))
    return memo[name]


def _probe_unit(name: str, section: str, probes, stamp: dict, splits, config: EvalConfig, by_domain: bool = False) -> _Unit:
    def run(lm: LoadedModel, memo: dict):
        df = _plain_probes(lm, memo, name, probes, config)
        summ = summarize_probes(df)
        rows = _metric_rows(summ, section, PROBE_METRICS, ci=PROBE_CI)
        if by_domain and df["domain"].notna().any():
            dom = summarize_probes(df.assign(set=df["set"] + "/" + df["domain"].fillna("-")), by=("set", "variant"))
            rows += _metric_rows(dom, section, ["mean_prob", "top1_rate"], split_col=None, split_value="all", ci=PROBE_CI)
        return rows, df

    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit}
    return _Unit(name, section, params, run, "probes")


def _paraphrase_unit(probes, stamp: dict, splits, config: EvalConfig) -> _Unit:
    def run(lm: LoadedModel, memo: dict):
        plain = _plain_probes(lm, memo, "probes.probability", probes, config)
        para = score_paraphrases(lm, probes, config.scoring("paraphrases"))
        rows = _metric_rows(summarize_probes(para), "paraphrase", PROBE_METRICS, ci=PROBE_CI)
        ps = paraphrase_summary(plain, para)
        for split in ["all"] + sorted(ps["split"].unique()):
            g = ps if split == "all" else ps[ps["split"] == split]
            for metric, col in (("mean_max_prob", "para_max_prob"), ("mean_leak", "leak"), ("original_mean_prob", "prob")):
                rows.append({"section": "paraphrase", "set": "probability", "split": split, "variant": "paraphrase",
                             "metric": metric, "value": float(g[col].mean()), "ci_low": math.nan, "ci_high": math.nan,
                             "n": len(g)})
        return rows, para

    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit}
    return _Unit("paraphrase.probability", "paraphrase", params, run, "probes")


def _priming_unit(probes, passage: str, stamp: dict, splits, config: EvalConfig) -> _Unit:
    def run(lm: LoadedModel, memo: dict):
        plain = _plain_probes(lm, memo, "probes.probability", probes, config)
        primed = score_primed(lm, probes, passage, config.scoring("primed probes"))
        rows = _metric_rows(summarize_probes(primed), "priming", PROBE_METRICS, ci=PROBE_CI)
        ps = priming_summary(plain, primed)
        rows += _metric_rows(ps, "priming", ["delta", "newly_top1_rate"], variant_col=None, variant_value="primed")
        return rows, primed

    digest = hashlib.sha256(passage.encode()).hexdigest()[:16]
    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit, "passage": digest}
    return _Unit("priming.probability", "priming", params, run, "probes")


def make_judge(config: EvalConfig, pack: Pack | None):
    """The completion judge a config names."""
    target = pack.title if pack else "the target"
    if config.judge == "keyword":
        terms = load_anchor_terms(pack) if pack and pack.anchors_path.is_file() else []
        return KeywordJudge(anchor_terms=terms)
    rubric = load_rubric(config.judge_rubric)
    if config.judge == "openai":
        if not config.judge_url:
            raise WorkbenchError("judge 'openai' needs an endpoint URL (--judge-url http://host:port/v1)")
        judge = OpenAIJudge(url=config.judge_url, model=config.judge_model or "gpt-4o", target=target,
                            api_key_env=config.judge_api_key_env, rubric=rubric)
        judge.check()
        return judge
    if config.judge == "hf":
        if not config.judge_model:
            raise WorkbenchError("judge 'hf' needs a chat model spec (--judge-model PATH_OR_HUB_ID)")
        # the single-message rubrics ask for a listing before the grade: give the answer room
        return HFChatJudge(model=config.judge_model, target=target, rubric=rubric,
                           max_new_tokens=256 if "{completion}" in rubric else 64)
    raise WorkbenchError(f"unknown judge {config.judge!r}: use 'keyword', 'openai' or 'hf'")


def _completion_unit(probes, pack: Pack, config: EvalConfig) -> _Unit:
    judge = make_judge(config, pack)
    params = {
        "probes": _file_stamp(pack.probe_file("completion")),
        "anchors": _file_stamp(pack.anchors_path),
        "judge": [config.judge, config.judge_url, config.judge_model]
                 + ([hashlib.sha256(load_rubric(config.judge_rubric).encode()).hexdigest()[:16]]
                    if config.judge != "keyword" and config.judge_rubric else []),
        "generation": asdict(config.generation()) | {"progress": None, "batch_size": None},
        "splits": list(config.splits),
        "probe_limit": config.probe_limit,
        "grading": 2,  # 2: the keyword judge counts a name and its plural once; the authors' score
    }

    def run(lm: LoadedModel, memo: dict):
        df = score_completions(lm, probes, judge, config.generation())
        summ = summarize_completions(df)
        metrics = [f"share_{g}" for g in GRADES] + ["familiarity", "authors_score", "n_ungraded"]
        rows = _metric_rows(summ, "completion", metrics, variant_col="mode",
                            ci={"familiarity": ("familiarity_ci_low", "familiarity_ci_high")})
        return rows, df

    return _Unit("completion", "completion", params, run, "completions")


def _mc_unit(task: str, path: Path, config: EvalConfig) -> _Unit:
    name = Path(task).stem if task.endswith(".jsonl") else task

    def run(lm: LoadedModel, memo: dict):
        mc = load_mc_task(path, limit=config.limit, name=name)
        df = score_mc(lm, mc, config.scoring(name))
        summ = summarize_mc(df)
        rows = _metric_rows(summ, "utility", ["acc", "acc_norm"], set_col="task", split_col=None, variant_col=None,
                            ci={"acc": ("acc_ci_low", "acc_ci_high"), "acc_norm": ("acc_norm_ci_low", "acc_norm_ci_high")})
        return rows, df

    return _Unit(f"mc.{_slug(name)}", "utility", {"task": _file_stamp(path), "limit": config.limit}, run, "mc_items")


def _ppl_unit(text: Path, config: EvalConfig) -> _Unit:
    pcfg = PerplexityConfig(max_length=config.ppl_max_length, stride=config.ppl_stride, max_tokens=config.ppl_max_tokens,
                            batch_size=config.batch_size)
    return perplexity_unit(text.stem, text, pcfg, config.scoring("perplexity"), {"text": _file_stamp(text)})


def perplexity_unit(name: str, text: str | Path, pcfg: PerplexityConfig, scoring: ScoringConfig, params: dict) -> _Unit:
    """The perplexity of a text (a ``Path`` is read as a file) as one unit; ``params`` identify the text."""
    def run(lm: LoadedModel, memo: dict):
        res = perplexity(lm, text, pcfg, scoring)
        rows = [{"section": "perplexity", "set": name, "split": "-", "variant": "-", "metric": m, "value": float(res[m]),
                 "ci_low": math.nan, "ci_high": math.nan, "n": res["tokens"]}
                for m in ("ppl", "word_perplexity", "byte_perplexity", "bits_per_byte", "tokens")]
        return rows, None

    return _Unit(f"ppl.{_slug(name)}", "perplexity", {**params, **asdict(pcfg)}, run, None)


def _lm_eval_unit(config: EvalConfig) -> _Unit:
    def run(lm: LoadedModel, memo: dict):
        from workbench.eval.lm_eval_bridge import run_lm_eval

        res = run_lm_eval(lm, list(config.lm_eval_tasks), limit=config.lm_eval_limit, include_path=config.lm_eval_include,
                          batch_size=config.batch_size)
        rows = []
        for r in res:
            half = 1.96 * r["stderr"] if math.isfinite(r["stderr"]) else math.nan
            rows.append({"section": "lm_eval", "set": r["task"], "split": "-", "variant": "-", "metric": r["metric"],
                         "value": r["value"], "ci_low": r["value"] - half, "ci_high": r["value"] + half, "n": r.get("n", 0)})
        return rows, None

    params = {"tasks": list(config.lm_eval_tasks), "limit": config.lm_eval_limit, "include": config.lm_eval_include}
    return _Unit("lm_eval", "lm_eval", params, run, None)


# ----------------------------------------------------------------------------------------------- running


def _fingerprint(identity: dict, unit: _Unit) -> str:
    blob = json.dumps({"model": identity, "unit": unit.name, "params": unit.params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_partial(folder: Path, unit: _Unit, fingerprint: str) -> tuple[list[dict], pd.DataFrame | None] | None:
    meta_path = folder / f"{unit.name}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    details = None
    if meta.get("details"):
        dpath = folder / meta["details"]
        if not dpath.is_file():
            return None
        details = pd.read_parquet(dpath)
    rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in meta["metrics"]]
    return rows, details


def _write_partial(folder: Path, unit: _Unit, fingerprint: str, rows: list[dict], details: pd.DataFrame | None,
                   seconds: float) -> None:
    meta = {"unit": unit.name, "section": unit.section, "fingerprint": fingerprint, "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "metrics": rows, "details": None}
    if details is not None:
        meta["details"] = f"{unit.name}.parquet"
        _atomic_frame(details, folder / meta["details"])
    # The JSON is written last: its presence marks the unit as finished.
    atomic_write_text(folder / f"{unit.name}.json", _dumps(meta))


def run_units(pairs: Sequence[tuple[str, str | LoadedModel]], units: Sequence[_Unit], config: EvalConfig,
              out: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[dict]]:
    """Run every unit for every (label, model) pair, resuming finished units from ``<out>/partial``.

    Returns the tidy table (:data:`TABLE_COLUMNS`), the details frames (with a leading ``model`` column) and
    per model what was computed or resumed. Models given as specs are loaded one at a time, when first needed.
    """
    all_rows: list[dict] = []
    details: dict[str, list[pd.DataFrame]] = {}
    model_info = []
    for label, spec in pairs:
        identity = _model_identity(spec, config.dtype)
        folder = out / "partial" / _slug(label)
        lm: LoadedModel | None = None
        memo: dict = {}
        info = {"label": label, "spec": spec.spec if isinstance(spec, LoadedModel) else spec, "units": {}}
        mine = [u for u in units if u.models is None or label in u.models]
        for unit in tqdm(mine, desc=f"eval {label}", disable=not config.progress, leave=False):
            fp = _fingerprint(identity, unit)
            cached = _read_partial(folder, unit, fp) if config.resume else None
            if cached is not None:
                rows, det = cached
                info["units"][unit.name] = "resumed"
            else:
                if lm is None:
                    lm = _load(spec, config)
                    info["source"] = lm.source
                t0 = time.perf_counter()
                rows, det = unit.run(lm, memo)
                _write_partial(folder, unit, fp, rows, det, time.perf_counter() - t0)
                info["units"][unit.name] = "computed"
            all_rows += [{"model": label, **r} for r in rows]
            if det is not None and unit.detail:
                details.setdefault(unit.detail, []).append(det.assign(model=label))
        model_info.append(info)
        if lm is not None and not isinstance(spec, LoadedModel):
            del lm  # free the weights before the next model

    table = pd.DataFrame(all_rows, columns=TABLE_COLUMNS)
    frames = {k: pd.concat(v, ignore_index=True) for k, v in details.items()}
    for k, df in frames.items():
        frames[k] = df[["model"] + [c for c in df.columns if c != "model"]]
    return table, frames, model_info


def evaluate_models(
    models: Sequence[ModelArg],
    config: EvalConfig | None = None,
    out_dir: str | Path | None = None,
) -> EvalReport:
    """Evaluate each model on every unit of ``config``; the first model is the baseline of the comparisons.

    ``models``: model specs (``'embedded'``, paths, run dirs, hub ids, optionally ``'label=spec'``), loaded
    models, or ``(label, spec_or_model)`` pairs. Models given as specs are loaded one at a time, and only when
    one of their units is not already finished in ``out_dir``. A model on disk is recognised for resuming by its
    path and file times; a model passed in memory only by its label, spec and source, so evaluate a changed
    in-memory model into a new ``out_dir`` (or with ``config.resume = False``).
    """
    config = config or EvalConfig()
    out = Path(out_dir) if out_dir else Path("runs") / "eval" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    pairs = _normalize_models(models)
    for _, spec in pairs:
        _check_spec(spec)
    explicit = config.sections is not None
    pack_sections = {"probes", "collateral", "paraphrase", "priming", "completion", "adversarial", "relearn", "residual"}
    wants_pack = config.sections is None or bool(pack_sections & set(config.sections))
    pack = load_pack(config.pack) if config.pack and wants_pack else None
    notes: list[str] = []
    units = _plan_units(config, pack, explicit, notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if not units:
        raise WorkbenchError("nothing to evaluate: every section was skipped (" + "; ".join(notes) + ")")

    table, frames, model_info = run_units(pairs, units, config, out)
    summary = _summary(table, frames, config, model_info, notes)
    return write_report(table, frames, summary, out, config)


# ----------------------------------------------------------------------------------------------- summary


def _pick(table: pd.DataFrame, model: str, section: str, set_: str, metric: str, split: str | None = None,
          variant: str | None = None) -> tuple[float, float, float, int] | None:
    t = table[(table["model"] == model) & (table["section"] == section) & (table["set"] == set_) & (table["metric"] == metric)]
    if split is not None:
        t = t[t["split"] == split]
    if variant is not None:
        t = t[t["variant"] == variant]
    if t.empty:
        return None
    r = t.iloc[0]
    return float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n"])


def _headline_split(table: pd.DataFrame) -> str:
    splits = set(table.loc[table["section"].isin(["probes", "priming", "paraphrase", "completion"]), "split"])
    return "heldout" if "heldout" in splits else "all"


def _headlines(table: pd.DataFrame, model: str) -> dict[str, float]:
    """The numbers a reader looks at first, per model."""
    split = _headline_split(table)
    out: dict[str, float] = {}

    def put(key: str, got) -> None:
        if got is not None:
            out[key] = got[0]

    put("familiarity_prob", _pick(table, model, "probes", "probability", "mean_prob", split, "original"))
    put("familiarity_top1", _pick(table, model, "probes", "probability", "top1_rate", split, "original"))
    put("familiarity_seq_logprob", _pick(table, model, "probes", "probability", "mean_seq_logprob", split, "original"))
    put("completion_familiarity_greedy", _pick(table, model, "completion", "completion", "familiarity", split, "greedy"))
    put("completion_familiarity_sampled", _pick(table, model, "completion", "completion", "familiarity", split, "sampled"))
    put("completion_share_3_greedy", _pick(table, model, "completion", "completion", "share_3", split, "greedy"))
    put("completion_authors_score_greedy", _pick(table, model, "completion", "completion", "authors_score", split, "greedy"))
    put("completion_authors_score_sampled", _pick(table, model, "completion", "completion", "authors_score", split, "sampled"))
    put("primed_prob", _pick(table, model, "priming", "probability", "mean_prob", split, "primed"))
    put("priming_delta", _pick(table, model, "priming", "probability", "delta", split, "primed"))
    put("paraphrase_prob", _pick(table, model, "paraphrase", "probability", "mean_prob", split, "paraphrase"))
    put("paraphrase_max_prob", _pick(table, model, "paraphrase", "probability", "mean_max_prob", split, "paraphrase"))
    put("collateral_prob", _pick(table, model, "collateral", "collateral", "mean_prob", "all", "original"))
    put("general_prob", _pick(table, model, "collateral", "general", "mean_prob", "all", "original"))
    util = table[(table["model"] == model) & (table["section"] == "utility")]
    accs = []
    for task in sorted(util["set"].unique()):
        metric = BENCHMARKS.get(task, "acc")
        got = _pick(table, model, "utility", task, metric)
        if got is not None:
            out[f"{task}_{metric}"] = got[0]
            accs.append(got[0])
    if accs:
        out["utility_mean"] = float(np.mean(accs))
    ppl = table[(table["model"] == model) & (table["section"] == "perplexity") & (table["metric"] == "ppl")]
    for _, r in ppl.iterrows():
        out[f"ppl_{r['set']}"] = float(r["value"])
    lme = table[(table["model"] == model) & (table["section"] == "lm_eval")]
    for _, r in lme.iterrows():
        out[f"lm_eval_{r['set']}_{r['metric']}"] = float(r["value"])
    return out


def _comparisons(table: pd.DataFrame, frames: dict[str, pd.DataFrame], base: str, other: str) -> dict[str, dict]:
    """Paired differences ``other - baseline`` with 95% bootstrap intervals over items/probes."""
    out: dict[str, dict] = {}
    mc = frames.get("mc_items")
    if mc is not None and not mc.empty:
        for task in sorted(mc["task"].unique()):
            a = mc[(mc["model"] == base) & (mc["task"] == task)].set_index("item_id")
            b = mc[(mc["model"] == other) & (mc["task"] == task)].set_index("item_id")
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            metric = BENCHMARKS.get(task, "acc")
            col = "correct_norm" if metric == "acc_norm" else "correct"
            d, lo, hi = paired_bootstrap(a.loc[common, col].astype(float), b.loc[common, col].astype(float))
            out[f"{task}_{metric}"] = {"diff": d, "ci_low": lo, "ci_high": hi, "n": len(common)}
    pr = frames.get("probes")
    if pr is not None and not pr.empty:
        split = _headline_split(table)
        for (set_, variant), g in pr.groupby(["set", "variant"]):
            if split != "all":
                g = g[g["split"] == split]
            key_cols = ["probe_id"] + (["paraphrase"] if "paraphrase" in g.columns and variant == "paraphrase" else [])
            a = g[g["model"] == base].set_index(key_cols)["prob"]
            b = g[g["model"] == other].set_index(key_cols)["prob"]
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            d, lo, hi = paired_bootstrap(a.loc[common], b.loc[common])
            out[f"{set_}_{variant}_prob"] = {"diff": d, "ci_low": lo, "ci_high": hi, "n": len(common)}
    return out


FORMULAS = {
    "prob": "probability of the answer's first token, summed over the distinct first tokens of the targets",
    "familiarity_prob": "mean over probes of prob (probability probes, headline split)",
    "top1_rate": "share of probes whose answer's first token is the model's top choice",
    "completion_familiarity": "F = mean(grade)/3 = (1*share_1 + 2*share_2 + 3*share_3)/3 over graded completions",
    "completion_authors_score": "(5*n3 + n2)/n over graded completions (the authors' score, 0-5)",
    "keyword_grade": "min(3, 1 point per new reference keyword + 2 points per new anchored name)",
    "priming_delta": "mean over probes of prob(passage + prompt) - prob(prompt)",
    "paraphrase_max_prob": "mean over probes of the max prob over the probe's paraphrases",
    "acc": "argmax of summed log P(choice | context)",
    "acc_norm": "argmax of summed log P(choice | context) / len(choice in characters)",
    "ppl": "exp(total NLL / tokens), sliding window",
}


def _summary(table: pd.DataFrame, frames: dict[str, pd.DataFrame], config: EvalConfig, model_info: list[dict],
             notes: list[str]) -> dict:
    labels = [m["label"] for m in model_info]
    summary = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": asdict(config),
        "models": model_info,
        "baseline": labels[0],
        "headline_split": _headline_split(table) if not table.empty else "all",
        "headlines": {lab: _headlines(table, lab) for lab in labels},
        "comparisons": {lab: _comparisons(table, frames, labels[0], lab) for lab in labels[1:]},
        "formulas": FORMULAS,
        "notes": notes,
    }
    return summary


def headline_table(summary: dict) -> pd.DataFrame:
    """Headline metrics (rows) per model (columns), plus ``diff`` columns against the baseline."""
    heads = summary["headlines"]
    labels = list(heads)
    keys: list[str] = []
    for lab in labels:
        keys += [k for k in heads[lab] if k not in keys]
    df = pd.DataFrame({lab: [heads[lab].get(k, math.nan) for k in keys] for lab in labels}, index=keys)
    df.index.name = "metric"
    return df


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    return str(v)


def _markdown(df: pd.DataFrame) -> str:
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for key, row in df.iterrows():
        lines.append("| " + " | ".join([str(key)] + [_fmt(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- writing


def write_report(table: pd.DataFrame, details: dict[str, pd.DataFrame], summary: dict, out_dir: str | Path,
                 config: EvalConfig | None = None) -> EvalReport:
    """Write the table, details, summary, markdown and figures to ``out_dir`` (atomically) and return them."""
    config = config or EvalConfig()
    out = Path(out_dir)
    files: dict[str, Path] = {}
    formats = tuple(config.formats)
    bad = [f for f in formats if f not in ("csv", "parquet")]
    if bad:
        raise WorkbenchError(f"unknown table format(s) {', '.join(bad)}: use csv and/or parquet")
    names = {"results": table, "probes": details.get("probes"), "completions": details.get("completions"),
             "mc_items": details.get("mc_items")}
    for name, df in names.items():
        if df is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            _atomic_frame(df, path)
            files[f"{name}.{fmt}"] = path
    atomic_write_text(out / "summary.json", _dumps(summary))
    files["summary.json"] = out / "summary.json"
    report = EvalReport(out, table, details, summary, {}, files)
    atomic_write_text(out / "report.md", "# Evaluation report\n\n" + report.markdown() + "\n")
    files["report.md"] = out / "report.md"
    if config.figures:
        report.figures = build_figures(table, details, summary)
        fig_dir = out / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in report.figures.items():
            path = fig_dir / f"{name}.html"
            # 'directory' writes plotly.min.js once beside the figures: offline, and each HTML stays small.
            tmp = fig_dir / f".{name}.html.tmp"
            fig.write_html(str(tmp), include_plotlyjs="directory", full_html=True)
            os.replace(tmp, path)
            files[f"figures/{name}.html"] = path
    return report


def load_report(out_dir: str | Path) -> EvalReport:
    """Read a written report back (table, details, summary; figures are rebuilt)."""
    out = Path(out_dir)
    if not (out / "summary.json").is_file():
        raise WorkbenchError(f"{out} holds no summary.json; run `workbench eval --out {out}` first")

    def read(name: str) -> pd.DataFrame | None:
        for fmt in ("parquet", "csv"):
            p = out / f"{name}.{fmt}"
            if p.is_file():
                return pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
        return None

    table = read("results")
    if table is None:
        raise WorkbenchError(f"{out} holds no results.parquet or results.csv")
    details = {k: v for k in ("probes", "completions", "mc_items") if (v := read(k)) is not None}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return EvalReport(out, table, details, summary, build_figures(table, details, summary), {})


# ----------------------------------------------------------------------------------------------- figures


def _err(values: pd.Series, lo: pd.Series, hi: pd.Series) -> dict:
    plus = (hi - values).where(hi.notna(), None)
    minus = (values - lo).where(lo.notna(), None)
    return dict(type="data", array=plus.tolist(), arrayminus=minus.tolist(), visible=True)


def build_figures(table: pd.DataFrame, details: dict[str, pd.DataFrame], summary: dict) -> dict[str, Any]:
    """Plotly figures: 'familiarity', 'utility', 'probe_scatter', 'completion_grades' (those the data allow)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs: dict[str, Any] = {}
    models = [m["label"] for m in summary.get("models", [])] or sorted(table["model"].unique())
    split = summary.get("headline_split", "all")
    palette = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]
    color = {m: palette[i % len(palette)] for i, m in enumerate(models)}

    # Familiarity per probe set, before/after.
    fam = table[(table["metric"] == "mean_prob") & table["section"].isin(["probes", "priming", "paraphrase", "collateral"])
                & ~table["set"].str.contains("/", regex=False)]
    fam = fam[(fam["split"] == split) | (fam["section"] == "collateral") & (fam["split"] == "all")]
    comp = table[(table["section"] == "completion") & (table["metric"] == "familiarity") & (table["split"] == split)]
    if not fam.empty or not comp.empty:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], subplot_titles=(
            f"Answer probability per probe set (mean, 95% CI, split {split})", "Completion familiarity (mean grade / 3)"))
        for m in models:
            f = fam[fam["model"] == m]
            if not f.empty:
                x = [s if v in ("original", "-") else f"{s} ({v})" for s, v in zip(f["set"], f["variant"])]
                fig.add_trace(go.Bar(name=m, x=x, y=f["value"], marker_color=color[m], legendgroup=m,
                                     error_y=_err(f["value"], f["ci_low"], f["ci_high"])), row=1, col=1)
            c = comp[comp["model"] == m]
            if not c.empty:
                fig.add_trace(go.Bar(name=m, x=c["variant"], y=c["value"], marker_color=color[m], legendgroup=m,
                                     showlegend=f.empty, error_y=_err(c["value"], c["ci_low"], c["ci_high"])), row=1, col=2)
        fig.update_layout(barmode="group", title="Familiarity with the target, per model", template="plotly_white")
        fig.update_yaxes(title_text="mean probability", row=1, col=1)
        fig.update_yaxes(title_text="familiarity (0-1)", range=[0, 1], row=1, col=2)
        figs["familiarity"] = fig

    # Utility per task with confidence intervals, and paired differences to the baseline.
    util = table[table["section"] == "utility"]
    util = util[[BENCHMARKS.get(t, "acc") == m for t, m in zip(util["set"], util["metric"])]]
    ppl = table[(table["section"] == "perplexity") & (table["metric"] == "ppl")]
    if not util.empty or not ppl.empty:
        comps = summary.get("comparisons", {})
        titles = ["Accuracy per task (95% Wilson CI)", "Difference to the baseline (95% paired bootstrap CI)", "Perplexity"]
        fig = make_subplots(rows=1, cols=3, column_widths=[0.45, 0.35, 0.2], subplot_titles=titles)
        for m in models:
            u = util[util["model"] == m]
            if not u.empty:
                fig.add_trace(go.Bar(name=m, x=[f"{s} ({k})" for s, k in zip(u["set"], u["metric"])], y=u["value"],
                                     marker_color=color[m], legendgroup=m,
                                     error_y=_err(u["value"], u["ci_low"], u["ci_high"])), row=1, col=1)
            diffs = comps.get(m, {})
            keys = [k for k in diffs if k.endswith(("_acc", "_acc_norm"))]  # the multiple-choice comparisons
            if keys:
                d = pd.DataFrame([diffs[k] | {"key": k} for k in keys])
                fig.add_trace(go.Bar(name=f"{m} − {models[0]}", x=d["key"], y=d["diff"], marker_color=color[m],
                                     legendgroup=m, showlegend=False,
                                     error_y=_err(d["diff"], d["ci_low"], d["ci_high"])), row=1, col=2)
            p = ppl[ppl["model"] == m]
            if not p.empty:
                fig.add_trace(go.Bar(name=m, x=p["set"], y=p["value"], marker_color=color[m], legendgroup=m,
                                     showlegend=False), row=1, col=3)
        fig.update_layout(barmode="group", title="Utility per task, per model", template="plotly_white")
        fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=1)
        fig.update_yaxes(title_text="accuracy difference", row=1, col=2)
        fig.update_yaxes(title_text="perplexity", row=1, col=3)
        figs["utility"] = fig

    # Per-probe scatter: baseline probability against each other model's.
    pr = details.get("probes")
    if pr is not None and not pr.empty and len(models) >= 2:
        fig = go.Figure()
        base = pr[pr["model"] == models[0]]
        for m in models[1:]:
            other = pr[pr["model"] == m]
            keys = ["set", "variant", "probe_id"] + (["paraphrase"] if "paraphrase" in pr.columns else [])
            merged = base.merge(other, on=keys, suffixes=("_base", "_other"))
            for (set_, variant), g in merged.groupby(["set", "variant"]):
                label = set_ if variant == "original" else f"{set_} ({variant})"
                fig.add_trace(go.Scatter(
                    x=g["prob_base"].clip(lower=1e-8), y=g["prob_other"].clip(lower=1e-8), mode="markers",
                    name=f"{m}: {label}", text=g["probe_id"] + ": " + g["prompt_base"].str.slice(-80),
                    hovertemplate="%{text}<br>baseline %{x:.3g}<br>model %{y:.3g}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[1e-8, 1], y=[1e-8, 1], mode="lines", name="no change",
                                 line=dict(dash="dash", color="grey")))
        fig.update_layout(title=f"Per-probe answer probability: {models[0]} (x) vs other models (y)",
                          xaxis=dict(type="log", title=f"{models[0]} probability"),
                          yaxis=dict(type="log", title="model probability"), template="plotly_white")
        figs["probe_scatter"] = fig

    # Share of completions at each grade.
    shares = table[(table["section"] == "completion") & table["metric"].str.startswith("share_") & (table["split"] == split)]
    if not shares.empty:
        fig = go.Figure()
        for g in GRADES:
            s = shares[shares["metric"] == f"share_{g}"]
            fig.add_trace(go.Bar(name=f"grade {g}", x=[f"{m} ({v})" for m, v in zip(s["model"], s["variant"])], y=s["value"]))
        fig.update_layout(barmode="stack", title="Completions at each familiarity grade", yaxis_title="share",
                          template="plotly_white")
        figs["completion_grades"] = fig
    return figs
