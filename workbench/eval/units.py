"""The evaluation's units of work: one probe set, one benchmark, perplexity, ... per model. A unit knows what its
result depends on besides the model (for the resume fingerprint) and how to compute its metric rows
(:data:`TABLE_COLUMNS` less ``model``) and per-item rows. :func:`plan_units` turns an :class:`EvalConfig` and a
pack into the units to run; the run report (workbench/eval/run_report.py) builds its own from the same parts.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.eval.completion import (
    GRADES,
    HFChatJudge,
    KeywordJudge,
    OpenAIJudge,
    load_rubric,
    score_completions,
    summarize_completions,
)
from workbench.eval.config import ALL_SECTIONS, DEFAULT_SECTIONS, GROUND_TRUTH_SECTIONS, EvalConfig
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.probes import score_probes, summarize_probes
from workbench.eval.robustness import (
    PrimingConfig,
    paraphrase_summary,
    priming_passage,
    priming_summary,
    score_paraphrases,
    score_primed,
)
from workbench.eval.rows import PROBE_CI, PROBE_METRICS, Unit, file_stamp, metric_rows  # re-exported
from workbench.eval.utility import (
    PerplexityConfig,
    default_evaldata_dir,
    load_mc_task,
    perplexity,
    resolve_task,
    score_mc,
    summarize_mc,
)
from workbench.models import LoadedModel
from workbench.pack import Pack, load_anchor_terms

__all__ = [
    "PROBE_CI",
    "PROBE_METRICS",
    "TABLE_COLUMNS",
    "Unit",
    "file_stamp",
    "ground_truth_units",
    "make_judge",
    "metric_rows",
    "perplexity_unit",
    "plan_units",
    "probe_unit",
    "slug",
]

TABLE_COLUMNS = ["model", "section", "set", "split", "variant", "metric", "value", "ci_low", "ci_high", "n"]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def plan_units(config: EvalConfig, pack: Pack | None, explicit: bool, notes: list[str]) -> list[Unit]:
    sections = config.sections or (DEFAULT_SECTIONS + (("lm_eval",) if config.lm_eval_tasks else ()))
    unknown = [s for s in sections if s not in ALL_SECTIONS]
    if unknown:
        raise WorkbenchError(f"unknown eval section(s) {', '.join(unknown)}; choose from {', '.join(ALL_SECTIONS)}")
    units: list[Unit] = []
    splits = tuple(config.splits)

    def skip(section: str, why: str) -> None:
        if explicit:
            raise WorkbenchError(f"eval section '{section}' cannot run: {why}")
        notes.append(f"skipped {section}: {why}")

    def probes_of(kind: str):
        probes = [p for p in pack.probes(kind) if p.split in splits]
        return probes[: config.probe_limit] if config.probe_limit is not None else probes

    needs_pack = {"probes", "collateral", "paraphrase", "priming", "completion", *GROUND_TRUTH_SECTIONS}
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
            stamp = file_stamp(pack.probe_file("probability"))
            if not probes:
                for s in ("probes", "paraphrase", "priming"):
                    if s in sections:
                        skip(s, f"no probability probes in splits {', '.join(splits)}")
            else:
                if "probes" in sections:
                    units.append(probe_unit("probes.probability", "probes", probes, stamp, splits, config))
                if "paraphrase" in sections:
                    if any(p.paraphrases for p in probes):
                        units.append(_paraphrase_unit(probes, stamp, splits, config))
                    else:
                        skip("paraphrase", "no probability probe has paraphrases")
                if "priming" in sections:
                    try:
                        passage = priming_passage(
                            pack, PrimingConfig(chars=config.priming_chars, text=config.priming_text, seed=config.seed)
                        )
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
                units.append(
                    probe_unit(
                        f"probes.{kind}",
                        "collateral",
                        probes,
                        file_stamp(pack.probe_file(kind)),
                        splits,
                        config,
                        by_domain=True,
                    )
                )
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
    from workbench.eval.attacks import ATTACK_SECTIONS, attack_units

    units += ground_truth_units(
        [s for s in sections if s in GROUND_TRUTH_SECTIONS], config, pack, probes_of, skip, explicit=explicit
    )
    attack_sections = [s for s in sections if s in ATTACK_SECTIONS]
    if attack_sections:
        units += attack_units(attack_sections, config, pack, probes_of, skip)
    return units


def ground_truth_units(
    sections: Sequence[str], config: EvalConfig, pack: Pack | None, probes_of, skip, explicit: bool = False
) -> list[Unit]:
    """The units of the field's measures (workbench/eval/ground_truth.py) that the pack's files allow. Verbatim
    memorisation runs by default only for packs with target questions or passages (a ground-truth pack); named,
    always. A named section the pack has no file for is skipped with a note (an error with ``explicit``)."""
    from workbench.eval import ground_truth as gt

    units: list[Unit] = []
    if not sections or pack is None:
        return units
    splits = list(config.splits)

    def limited(kind: str):
        return {"probes": file_stamp(pack.probe_file(kind)), "splits": splits, "probe_limit": config.probe_limit}

    def qa_unit(kind: str) -> Unit:
        probes = probes_of(kind)

        def run(lm: LoadedModel, memo: dict):
            df = gt.score_qa(lm, probes, config.loglik(kind))
            rows = gt.summarize_qa(df, kind)
            if kind == "retain_qa":
                km = gt.score_knowmem(lm, probes, config.qa_max_new_tokens, config.gen_batch_size, config.progress)
                rows += gt.model_utility_rows(df, km)
                df = df.merge(km[["probe_id", "response", "rougeL_recall", "rougeL_f1"]], on="probe_id")
            return rows, df

        params = limited(kind) | ({"max_new_tokens": config.qa_max_new_tokens} if kind == "retain_qa" else {})
        return Unit(kind, kind, params, run, "qa_items")

    for kind, section in (("qa", "qa"), ("retain_qa", "retain_qa"), ("qa", "knowmem"), ("trivia", "trivia")):
        if section not in sections:
            continue
        if section == "knowmem" and pack.has_probes("knowmem"):
            kind = "knowmem"
        if not pack.has_probes(kind):
            if explicit:  # by default a pack without the file simply has no such measure
                skip(section, f"pack {pack.name!r} has no {kind} probe file")
            continue
        if not probes_of(kind):
            skip(section, f"no {kind} probes in splits {', '.join(splits)}")
            continue
        if section in ("qa", "retain_qa"):
            units.append(qa_unit(kind))
        elif section == "knowmem":
            km_kind = "knowmem" if pack.has_probes("knowmem") else "qa"  # MUSE's answer-only questions if given
            probes = probes_of(km_kind)

            def run_km(lm: LoadedModel, memo: dict, probes=probes):
                df = gt.score_knowmem(lm, probes, config.qa_max_new_tokens, config.gen_batch_size, config.progress)
                return gt.summarize_knowmem(df, "knowmem"), df

            units.append(
                Unit(
                    f"knowmem.{km_kind}",
                    "knowmem",
                    {**limited(km_kind), "max_new_tokens": config.qa_max_new_tokens},
                    run_km,
                    "knowmem_items",
                )
            )
        else:
            probes = probes_of("trivia")

            def run_trivia(lm: LoadedModel, memo: dict, probes=probes):
                df = gt.score_trivia(lm, probes, config.loglik("trivia"))
                return gt.summarize_trivia(df), df

            units.append(Unit("trivia", "trivia", limited("trivia"), run_trivia, "trivia_items"))
    ts = config.text_settings()
    corpus_stamp = [file_stamp(p) for p in pack.corpus_files()] if {"verbmem", "mia"} & set(sections) else []
    if "verbmem" in sections and (explicit or pack.has_probes("qa") or pack.has_probes("verbmem")):
        given = probes_of("verbmem") if pack.has_probes("verbmem") else None  # MUSE's passages if the pack has them
        corpus = pack.read_corpus() if given is None else []

        def run_verbmem(lm: LoadedModel, memo: dict):
            passages = (
                [(p.prompt, p.continuation) for p in given]
                if given is not None
                else gt.corpus_passages(lm.tokenizer, corpus, ts)
            )
            df = gt.score_verbmem(lm, passages, ts, config.gen_batch_size, config.progress)
            return gt.summarize_verbmem(df), df

        source = limited("verbmem") if given is not None else {"corpus": corpus_stamp, "limit": ts.verbmem_limit}
        params = {**source, "prompt_tokens": ts.prompt_tokens, "new_tokens": ts.new_tokens}
        units.append(Unit("verbmem", "verbmem", params, run_verbmem, "verbmem_items"))
    if "mia" in sections:
        if not pack.has_holdout():
            if explicit:
                skip("mia", f"pack {pack.name!r} has no holdout text (pack.json 'holdout')")
        else:
            holdout = pack.read_holdout()  # checked against the corpus first
            corpus = pack.read_corpus()

            def run_mia(lm: LoadedModel, memo: dict):
                df = gt.score_mia(lm, corpus, holdout, ts, config.loglik("membership"))
                return gt.summarize_mia(df), df

            params = {
                "corpus": corpus_stamp,
                "holdout": [file_stamp(p) for p in pack.holdout_files()],
                "tokens": ts.mia_tokens,
                "limit": ts.mia_limit,
                "k": ts.k,
            }
            units.append(Unit("mia", "mia", params, run_mia, "mia_items"))
    return units


def _plain_probes(lm: LoadedModel, memo: dict, name: str, probes, config: EvalConfig) -> pd.DataFrame:
    """The unprimed probe rows, scored once per model and shared by the probe, paraphrase and priming units."""
    if name not in memo:
        memo[name] = score_probes(lm, probes, config.loglik(name))
    return memo[name]


def probe_unit(
    name: str, section: str, probes, stamp: dict, splits, config: EvalConfig, by_domain: bool = False
) -> Unit:
    def run(lm: LoadedModel, memo: dict):
        df = _plain_probes(lm, memo, name, probes, config)
        summ = summarize_probes(df)
        rows = metric_rows(summ, section, PROBE_METRICS, ci=PROBE_CI)
        if by_domain and df["domain"].notna().any():
            dom = summarize_probes(df.assign(set=df["set"] + "/" + df["domain"].fillna("-")), by=("set", "variant"))
            rows += metric_rows(
                dom, section, ["mean_prob", "top1_rate"], split_col=None, split_value="all", ci=PROBE_CI
            )
        return rows, df

    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit}
    return Unit(name, section, params, run, "probes")


def _paraphrase_unit(probes, stamp: dict, splits, config: EvalConfig) -> Unit:
    def run(lm: LoadedModel, memo: dict):
        plain = _plain_probes(lm, memo, "probes.probability", probes, config)
        para = score_paraphrases(lm, probes, config.loglik("paraphrases"))
        rows = metric_rows(summarize_probes(para), "paraphrase", PROBE_METRICS, ci=PROBE_CI)
        ps = paraphrase_summary(plain, para)
        for split in ["all"] + sorted(ps["split"].unique()):
            g = ps if split == "all" else ps[ps["split"] == split]
            for metric, col in (
                ("mean_max_prob", "para_max_prob"),
                ("mean_leak", "leak"),
                ("original_mean_prob", "prob"),
            ):
                rows.append(
                    {
                        "section": "paraphrase",
                        "set": "probability",
                        "split": split,
                        "variant": "paraphrase",
                        "metric": metric,
                        "value": float(g[col].mean()),
                        "ci_low": math.nan,
                        "ci_high": math.nan,
                        "n": len(g),
                    }
                )
        return rows, para

    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit}
    return Unit("paraphrase.probability", "paraphrase", params, run, "probes")


def _priming_unit(probes, passage: str, stamp: dict, splits, config: EvalConfig) -> Unit:
    def run(lm: LoadedModel, memo: dict):
        plain = _plain_probes(lm, memo, "probes.probability", probes, config)
        primed = score_primed(lm, probes, passage, config.loglik("primed probes"))
        rows = metric_rows(summarize_probes(primed), "priming", PROBE_METRICS, ci=PROBE_CI)
        ps = priming_summary(plain, primed)
        rows += metric_rows(ps, "priming", ["delta", "newly_top1_rate"], variant_col=None, variant_value="primed")
        return rows, primed

    digest = hashlib.sha256(passage.encode()).hexdigest()[:16]
    params = {"probes": stamp, "splits": list(splits), "probe_limit": config.probe_limit, "passage": digest}
    return Unit("priming.probability", "priming", params, run, "probes")


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
        judge = OpenAIJudge(
            url=config.judge_url,
            model=config.judge_model or "gpt-4o",
            target=target,
            api_key_env=config.judge_api_key_env,
            rubric=rubric,
        )
        judge.check()
        return judge
    if config.judge == "hf":
        if not config.judge_model:
            raise WorkbenchError("judge 'hf' needs a chat model spec (--judge-model PATH_OR_HUB_ID)")
        # the single-message rubrics ask for a listing before the grade: give the answer room
        return HFChatJudge(
            model=config.judge_model,
            target=target,
            rubric=rubric,
            max_new_tokens=256 if "{completion}" in rubric else 64,
        )
    raise WorkbenchError(f"unknown judge {config.judge!r}: use 'keyword', 'openai' or 'hf'")


def _completion_unit(probes, pack: Pack, config: EvalConfig) -> Unit:
    judge = make_judge(config, pack)
    params = {
        "probes": file_stamp(pack.probe_file("completion")),
        "anchors": file_stamp(pack.anchors_path),
        "judge": [config.judge, config.judge_url, config.judge_model]
        + (
            [hashlib.sha256(load_rubric(config.judge_rubric).encode()).hexdigest()[:16]]
            if config.judge != "keyword" and config.judge_rubric
            else []
        ),
        "generation": asdict(config.generation()) | {"progress": None, "batch_size": None},
        "splits": list(config.splits),
        "probe_limit": config.probe_limit,
        "grading": 3,  # 2: the keyword judge counts a name and its plural once; the authors' score; 3: mention share
    }

    def run(lm: LoadedModel, memo: dict):
        df = score_completions(lm, probes, judge, config.generation())
        summ = summarize_completions(df)
        metrics = [f"share_{g}" for g in GRADES] + ["familiarity", "authors_score", "n_ungraded"]
        metrics += ["mention_share"] if "mention_share" in summ.columns else []  # share naming a target term
        rows = metric_rows(
            summ,
            "completion",
            metrics,
            variant_col="mode",
            ci={"familiarity": ("familiarity_ci_low", "familiarity_ci_high")},
        )
        return rows, df

    return Unit("completion", "completion", params, run, "completions")


def _mc_unit(task: str, path: Path, config: EvalConfig) -> Unit:
    name = Path(task).stem if task.endswith(".jsonl") else task

    def run(lm: LoadedModel, memo: dict):
        mc = load_mc_task(path, limit=config.limit, name=name)
        df = score_mc(lm, mc, config.loglik(name))
        summ = summarize_mc(df)
        rows = metric_rows(
            summ,
            "utility",
            ["acc", "acc_norm"],
            set_col="task",
            split_col=None,
            variant_col=None,
            ci={"acc": ("acc_ci_low", "acc_ci_high"), "acc_norm": ("acc_norm_ci_low", "acc_norm_ci_high")},
        )
        return rows, df

    return Unit(f"mc.{slug(name)}", "utility", {"task": file_stamp(path), "limit": config.limit}, run, "mc_items")


def _ppl_unit(text: Path, config: EvalConfig) -> Unit:
    pcfg = PerplexityConfig(
        max_length=config.ppl_max_length,
        stride=config.ppl_stride,
        max_tokens=config.ppl_max_tokens,
        batch_size=config.batch_size,
    )
    return perplexity_unit(text.stem, text, pcfg, config.loglik("perplexity"), {"text": file_stamp(text)})


def perplexity_unit(
    name: str, text: str | Path, pcfg: PerplexityConfig, loglik: LoglikelihoodConfig, params: dict
) -> Unit:
    """The perplexity of a text (a ``Path`` is read as a file) as one unit; ``params`` identify the text."""

    def run(lm: LoadedModel, memo: dict):
        res = perplexity(lm, text, pcfg, loglik)
        rows = [
            {
                "section": "perplexity",
                "set": name,
                "split": "-",
                "variant": "-",
                "metric": m,
                "value": float(res[m]),
                "ci_low": math.nan,
                "ci_high": math.nan,
                "n": res["tokens"],
            }
            for m in ("ppl", "word_perplexity", "byte_perplexity", "bits_per_byte", "tokens")
        ]
        return rows, None

    return Unit(f"ppl.{slug(name)}", "perplexity", {**params, **asdict(pcfg)}, run, None)


def _lm_eval_unit(config: EvalConfig) -> Unit:
    def run(lm: LoadedModel, memo: dict):
        from workbench.eval.lm_eval_bridge import run_lm_eval

        res = run_lm_eval(
            lm,
            list(config.lm_eval_tasks),
            limit=config.lm_eval_limit,
            include_path=config.lm_eval_include,
            batch_size=config.batch_size,
        )
        rows = []
        for r in res:
            half = 1.96 * r["stderr"] if math.isfinite(r["stderr"]) else math.nan
            rows.append(
                {
                    "section": "lm_eval",
                    "set": r["task"],
                    "split": "-",
                    "variant": "-",
                    "metric": r["metric"],
                    "value": r["value"],
                    "ci_low": r["value"] - half,
                    "ci_high": r["value"] + half,
                    "n": r.get("n", 0),
                }
            )
        return rows, None

    params = {"tasks": list(config.lm_eval_tasks), "limit": config.lm_eval_limit, "include": config.lm_eval_include}
    return Unit("lm_eval", "lm_eval", params, run, None)
