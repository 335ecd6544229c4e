"""The ``workbench eval`` and ``workbench packs`` commands (registered by workbench/cli.py).

Each ``add_*_parser`` adds a subcommand to an argparse subparsers object and sets ``func`` to a callable
``func(args) -> int`` (the exit code). Bad input raises WorkbenchError, which the main CLI prints.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

__all__ = [
    "answer_probe_table",
    "add_config_flags",
    "add_eval_parser",
    "add_packs_parser",
    "config_from_args",
    "run_eval",
    "run_packs_check",
    "run_packs_import",
    "run_packs_list",
    "run_packs_import_completions",
    "run_packs_new",
]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _none_or_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all", "0") else int(text)


def _flag_type(tp: Any) -> Any:
    """The argparse ``type`` of a config field's type where HfArgumentParser has none of its own: a tuple is a
    comma list, an optional int also takes 'all'/'none'."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and (typing.get_origin(inner[0]) is tuple or inner[0] is int):
            return _none_or_int if inner[0] is int else _flag_type(inner[0])
        return tp
    if typing.get_origin(tp) is tuple:
        item = args[0] if args else str
        return (lambda text: tuple(int(v) for v in _csv(text))) if item is int else _csv
    return tp


def add_config_flags(
    parser: argparse.ArgumentParser, config_type: type, prefix: str = "", skip: tuple[str, ...] = ()
) -> list[str]:
    """One flag per field of a config dataclass (``--name`` and ``--name-with-hyphens``; ``prefix`` before both),
    mapped by transformers' HfArgumentParser from the field's type, default and ``metadata`` (help, choices,
    aliases). Returns the argparse destinations, one per field."""
    from transformers import HfArgumentParser

    hints = typing.get_type_hints(config_type)
    dests = []
    for f in dataclasses.fields(config_type):
        if not f.init or f.name in skip:
            continue
        flag = copy.copy(f)
        flag.name = prefix + f.name
        flag.type = _flag_type(hints[f.name])
        if prefix and "aliases" in flag.metadata:
            flag.metadata = {k: v for k, v in flag.metadata.items() if k != "aliases"}
        HfArgumentParser._parse_dataclass_field(parser, flag)
        dests.append(flag.name)
    return dests


ATTACK_PREFIX = "attack_"


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``eval``: evaluate one or more models and write tables, a JSON summary and figures. Its flags are the
    fields of :class:`workbench.eval.config.EvalConfig` (and of the attack sections' AttackConfig, as
    ``--attack-FIELD``), besides --model, --out and --quiet."""
    from workbench.eval.attacks import AttackConfig
    from workbench.eval.config import EvalConfig

    p = subparsers.add_parser(
        "eval",
        help="evaluate models: familiarity, robustness, utility; tables, JSON and plotly figures",
        description="Evaluate one or more models (the first is the baseline) on familiarity probes, completion "
        "familiarity, priming, paraphrases, collateral domains, multiple-choice benchmarks and "
        "perplexity. Writes results.csv/.parquet, summary.json, report.md and figures/*.html to --out. "
        "A rerun into the same --out resumes from finished parts. Lists are comma-separated.",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="[LABEL=]SPEC",
        help="model to evaluate (repeatable): 'embedded', 'tiny', a model folder, a .gguf file, a run "
        "directory or a hub id; prefix 'LABEL=' to name it in the report",
    )
    p.add_argument("--out", default=None, help="output folder (default runs/eval/<timestamp>)")
    add_config_flags(p, EvalConfig, skip=("attacks",))
    p.add_argument("--quiet", action="store_false", dest="progress", help="no progress bars (as --no-progress)")
    add_config_flags(
        p.add_argument_group("attack sections (adversarial, relearn, residual)"), AttackConfig, prefix=ATTACK_PREFIX
    )
    p.set_defaults(func=run_eval)
    return p


def config_from_args(args: argparse.Namespace):
    """The EvalConfig that the parsed ``eval`` arguments describe."""
    from workbench.eval.attacks import AttackConfig
    from workbench.eval.config import EvalConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig) if f.init and f.name != "attacks"}
    if isinstance(values["pack"], str) and values["pack"].lower() == "none":
        values["pack"] = None
    if values["sections"] is not None:
        from workbench.config import check_names
        from workbench.eval.config import ALL_SECTIONS

        check_names("--sections", values["sections"], ALL_SECTIONS)  # before any model loads
    if values["lm_eval_tasks"] and values["sections"] is not None and "lm_eval" not in values["sections"]:
        values["sections"] = tuple(values["sections"]) + ("lm_eval",)
    if values["priming_text"]:
        from workbench.io import read_text

        values["priming_text"] = read_text(values["priming_text"], "--priming-text")
    attacks = AttackConfig(**{f.name: getattr(args, ATTACK_PREFIX + f.name) for f in dataclasses.fields(AttackConfig)})
    values["attacks"] = attacks if attacks != AttackConfig() else None  # None: the defaults, as in the API
    return EvalConfig(**values)


def run_eval(args: argparse.Namespace) -> int:
    """Run ``workbench eval``."""
    from workbench.eval.evaluate import evaluate_models

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise WorkbenchError(f"eval --out {args.out} is a file; give a folder (it is created if missing)")
    cfg = config_from_args(args)
    report = evaluate_models(list(args.model), cfg, args.out)
    print(report.markdown())
    for note in report.summary.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"\nwrote {len(report.files)} files to {report.out_dir}")
    return 0


def add_packs_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``packs list``, ``packs check NAME`` and ``packs new NAME --corpus DIR``."""
    p = subparsers.add_parser(
        "packs",
        help="list bundled data packs, or check a pack's probes against a model",
        description="Work with data packs (docs/formats.md).",
    )
    sub = p.add_subparsers(dest="packs_command", metavar="{list,check,new,import,import-completions}")
    sub.required = True
    lst = sub.add_parser("list", help="list the bundled packs")
    lst.set_defaults(func=run_packs_list)
    chk = sub.add_parser(
        "check", help="validate a pack and report each next-token probe's baseline probability and rank"
    )
    chk.add_argument("name", help="bundled pack name or pack folder")
    chk.add_argument("--model", default="embedded", help="model spec to measure the baseline with (default embedded)")
    chk.add_argument("--kinds", type=_csv, default=None, help="probe kinds to check (default: every next-token kind)")
    chk.add_argument("--out", default=None, help="also write the per-probe table to this .csv or .parquet file")
    chk.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    chk.add_argument("--device", default=None, help="torch device")
    chk.add_argument(
        "--relearn-text",
        default=None,
        help="a .txt file or folder meant for the relearning attack: checked against the probes like the "
        "retain text (default: the pack corpus, less the sentences that state a probe's answer)",
    )
    chk.add_argument("--no-model", action="store_true", help="validate the files and the overlap only; score nothing")
    chk.set_defaults(func=run_packs_check)
    imp = sub.add_parser(
        "import-completions",
        help="convert the paper's authors' evaluation_prompts.json into a completion probe file",
        description="Read the authors' completion prompts (a JSON list of {prompt: {prompt, "
        "references, subtlety}}) and write them as completion.jsonl probes.",
    )
    imp.add_argument("source", help="the authors' evaluation_prompts.json")
    imp.add_argument("--out", required=True, help="the completion probe file to write (JSONL)")
    imp.add_argument(
        "--split", choices=("dev", "heldout"), default="heldout", help="split of every probe (default heldout)"
    )
    imp.add_argument("--id-prefix", default="authors", help="probe ids are PREFIX-001, PREFIX-002, ...")
    imp.add_argument("--force", action="store_true", help="replace --out if it exists")
    imp.set_defaults(func=run_packs_import_completions)
    from workbench.probe_import import FORMATS

    gen = sub.add_parser(
        "import",
        help="convert TOFU, MUSE or two-answer trivia files to this project's probe files",
        description="Convert a question or text file in a published layout to a probe file (or, for "
        "muse-privleak, a folder of .txt files); prints what was read and dropped. "
        "Formats: " + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    gen.add_argument("format", choices=tuple(FORMATS), help="the source's layout")
    gen.add_argument("source", help="the file to convert")
    gen.add_argument("--out", required=True, help="the probe file (JSONL) or, for muse-privleak, the folder to write")
    gen.add_argument(
        "--split",
        choices=("dev", "heldout"),
        default="heldout",
        help="split of every entry that names none (default heldout)",
    )
    gen.add_argument(
        "--kind", choices=("qa", "retain_qa"), default=None, help="tofu: the probe kind written (default qa)"
    )
    gen.add_argument("--id-prefix", default=None, help="ids are PREFIX-0001, ... (default: the source's name)")
    gen.add_argument("--force", action="store_true", help="replace --out if it exists")
    gen.set_defaults(func=run_packs_import)
    new = sub.add_parser(
        "new", help="write a pack skeleton for your own target (corpus, anchors, retain, draft probes)"
    )
    new.add_argument("name", help="the new pack folder (its last part is the pack's name); must not exist")
    new.add_argument("--corpus", required=True, help="a .txt file or a folder of them: the text to forget")
    new.add_argument(
        "--retain", default=None, help="a .txt file or folder of text to keep (default: bundled general prose)"
    )
    new.add_argument("--anchors", default=None, help="an anchor map to start from (default: an empty map)")
    new.add_argument("--title", default=None, help="the target's name for people (default: from NAME)")
    new.set_defaults(func=run_packs_new)
    return p


def run_packs_import(args: argparse.Namespace) -> int:
    """Run ``workbench packs import FORMAT SOURCE --out OUT``."""
    from workbench.probe_import import import_probes

    report = import_probes(
        args.format,
        args.source,
        args.out,
        split=args.split,
        kind=args.kind,
        id_prefix=args.id_prefix,
        overwrite=args.force,
    )
    print(report.summary())
    return 0


def run_packs_import_completions(args: argparse.Namespace) -> int:
    """Run ``workbench packs import-completions SOURCE --out FILE``."""
    from workbench.eval.authors import convert_authors_prompts

    probes = convert_authors_prompts(
        args.source, args.out, split=args.split, id_prefix=args.id_prefix, overwrite=args.force
    )
    print(f"wrote {len(probes)} completion probes to {args.out}")
    return 0


def run_packs_new(args: argparse.Namespace) -> int:
    """Run ``workbench packs new NAME --corpus DIR``."""
    from workbench.pack import load_pack
    from workbench.pack_new import new_pack

    dest = new_pack(args.name, args.corpus, args.retain, args.anchors, args.title)
    shown = str(dest) if ("/" in args.name or "\\" in args.name) else f"./{dest}"
    pack = load_pack(dest)
    for kind in pack.probe_paths:
        print(f"{pack.name}: {kind}: {len(pack.probes(kind))} probes (drafts: review them)")
    print(
        f"wrote {shown}/ (pack.json, README.md, corpus/, anchors.json, retain/, probes/); next: "
        f"`workbench packs check {shown}` and a config with `target: {{pack: {shown}}}`"
    )
    return 0


def run_packs_list(args: argparse.Namespace) -> int:
    """Run ``workbench packs list``."""
    from workbench.pack import list_packs, load_pack

    names = list_packs()
    if not names:
        print("no bundled packs")
        return 0
    for name in names:
        try:
            pack = load_pack(name)
            kinds = [k for k in pack.probe_paths if pack.has_probes(k)]
            print(f"{name}\t{pack.title}\tprobes: {', '.join(kinds) or 'none yet'}")
        except WorkbenchError as exc:
            print(f"{name}\t(invalid: {exc})")
    return 0


def _check_overlap(pack, relearn_text: str | None) -> None:
    """Print the overlap check of the retain text and the relearning text; one error (exit 2) lists every probe
    whose answer phrase stands in either, unless pack.json's allow_overlap lists it."""
    from workbench.corpus import read_documents
    from workbench.probe_checks import OVERLAP_WORDS, check_pack_disjoint, disjoint_text, overlap_probes

    probes = overlap_probes(pack)
    texts = (
        {f"retain text {d.name}": d.text for d in read_documents(pack.retain_dir, "retain text")}
        if pack.retain_dir.is_dir()
        else {}
    )
    if relearn_text:
        texts.update({f"relearning text {d.name}": d.text for d in read_documents(relearn_text, "relearning text")})
    allowed = check_pack_disjoint(pack, texts, f"pack {pack.name!r}")
    what = "retain text" + (f" and relearning text {relearn_text}" if relearn_text else "")
    print(
        f"{pack.name}: overlap: no target, collateral or general probe's answer stands in the {what} after its "
        f"prompt's last {OVERLAP_WORDS} words ({len(probes)} probes; {len(allowed)} allowed by allow_overlap)"
    )
    for o in allowed:
        print(f"{pack.name}: overlap allowed: {o.line()}: {pack.allow_overlap[o.probe_id]}")
    if not relearn_text:
        docs = read_documents(pack.corpus_dir, "pack corpus")
        lost = sum(disjoint_text(d.text, probes)[1] for d in docs)
        print(
            f"{pack.name}: relearning text (default): the pack corpus less {lost} sentences that state a probe's answer"
        )


def answer_probe_table(pack, lm, kinds, batch_size: int = 16):
    """Per answer probe kind and split: trivia accuracy with its 95% interval and p-value against chance; for QA
    files the mean truth ratio, its aggregate and the answer probability (a model that never saw the facts sits
    near chance: accuracy 0.5, truth ratio about 1)."""
    import pandas as pd

    from workbench.eval import ground_truth as gt
    from workbench.eval.loglikelihood import LoglikelihoodConfig

    loglik = LoglikelihoodConfig(batch_size=batch_size, desc="check")
    rows = []
    for kind in kinds:
        probes = pack.probes(kind)
        if kind == "trivia":
            got = {(r["split"], r["metric"]): r for r in gt.summarize_trivia(gt.score_trivia(lm, probes, loglik))}
            for split in sorted({s for s, _ in got}):
                acc = got[(split, "accuracy")]
                rows.append(
                    {
                        "kind": kind,
                        "split": split,
                        "n": acc["n"],
                        "measure": "accuracy (chance 0.5)",
                        "value": acc["value"],
                        "ci_low": acc["ci_low"],
                        "ci_high": acc["ci_high"],
                        "p_vs_chance": got[(split, "p_vs_chance")]["value"],
                    }
                )
        else:
            got = gt.summarize_qa(gt.score_qa(lm, probes, loglik), kind)
            for r in got:
                if r["metric"] in ("truth_ratio_mean", "truth_ratio_forget", "answer_prob"):
                    rows.append(
                        {
                            "kind": kind,
                            "split": r["split"],
                            "n": r["n"],
                            "measure": r["metric"],
                            "value": r["value"],
                            "ci_low": None,
                            "ci_high": None,
                            "p_vs_chance": None,
                        }
                    )
    return pd.DataFrame(rows)


def run_packs_check(args: argparse.Namespace) -> int:
    """Run ``workbench packs check NAME``: validate every probe and anchor file, then score the probes."""
    import pandas as pd

    from workbench.eval.probes import ANSWER_PROBE_KINDS, check_pack
    from workbench.models import load_model
    from workbench.pack import COMPLETION_KIND, QA_KINDS, TRIVIA_KIND, load_pack

    pack = load_pack(args.name)
    # Validate everything first, so a bad line is reported before a model is loaded.
    for kind in pack.probe_paths:
        if pack.has_probes(kind):
            n = len(pack.probes(kind))
            print(f"{pack.name}: {kind}: {n} probes ok")
        else:
            print(f"{pack.name}: {kind}: file {pack.probe_paths[kind]} missing", file=sys.stderr)
    if not pack.anchors_path.is_file():
        raise WorkbenchError(
            f"pack {pack.name!r}: anchor map {pack.anchors_path} is missing; a pack needs one (docs/formats.md)"
        )
    from workbench.anchors import corpus_key_counts, load_anchor_map
    from workbench.corpus import read_documents
    from workbench.probe_checks import probe_warnings

    anchors = load_anchor_map(pack.anchors_path)
    files = pack.corpus_files()  # names the missing folder otherwise
    docs = read_documents(files, f"pack {pack.name!r}: corpus")  # read as a run reads it
    counts = corpus_key_counts(anchors, docs)  # the run's and the anchor editor's counts
    never, unmarked = counts["never"], counts["unmarked"]
    if unmarked:
        shown = ", ".join(repr(k) for k in unmarked[:30]) + (" ..." if len(unmarked) > 30 else "")
        raise WorkbenchError(
            f"pack {pack.name!r}: anchor map {pack.anchors_path}: {len(unmarked)} of {len(anchors)} keys never match "
            f"the corpus ({shown}); give each the spelling the corpus uses, remove it, or mark it as intended with "
            '"review": {"KEY": {"keep_unmatched": true}} (docs/formats.md)'
        )
    if not anchors.entries:  # a new pack's map, not filled yet
        print(f"{pack.name}: anchors: empty so far (notebook 02_anchor_editing suggests terms to accept)")
    else:
        kept = f" ({len(never)} marked keep_unmatched)" if never else ""
        print(f"{pack.name}: anchors: {len(anchors.entries)} terms ok, each matches the corpus{kept}")
    print(f"{pack.name}: anchor map: {counts['line']}")
    print(f"{pack.name}: corpus: {len(files)} files ok")
    for warning in probe_warnings(pack, anchors):
        print(f"warning: {pack.name}: {warning}", file=sys.stderr)
    if pack.has_holdout():
        print(f"{pack.name}: holdout: {len(pack.read_holdout())} files ok (no sentence shared with the corpus)")
    _check_overlap(pack, args.relearn_text)
    if args.no_model:
        return 0
    kinds = args.kinds or tuple(k for k in pack.probe_paths if k != COMPLETION_KIND and pack.has_probes(k))
    if not kinds:
        raise WorkbenchError(f"pack {pack.name!r} has no next-token probe files to check")
    answer_kinds = ANSWER_PROBE_KINDS
    kinds = args.kinds or tuple(
        k for k in pack.probe_paths if k != COMPLETION_KIND and k not in answer_kinds and pack.has_probes(k)
    )
    answers = [k for k in (*QA_KINDS, TRIVIA_KIND) if pack.has_probes(k) and (args.kinds is None or k in args.kinds)]
    kinds = tuple(k for k in kinds if k not in answer_kinds)
    if not kinds and not answers:
        raise WorkbenchError(f"pack {pack.name!r} has no next-token, QA or trivia probe files to check")
    lm = load_model(args.model, device=args.device)
    df = pd.DataFrame()
    if kinds:
        df = check_pack(pack, lm, tuple(kinds), batch_size=args.batch_size)
        summ = (
            df.assign(top5=df["rank"] <= 5)
            .groupby(["kind", "split"])
            .agg(
                n=("id", "size"),
                mean_prob=("prob", "mean"),
                median_rank=("rank", "median"),
                top1_rate=("top1", "mean"),
                top5_rate=("top5", "mean"),
            )
            .reset_index()
        )
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 50):
            print(
                df[["kind", "id", "split", "target", "prob", "rank"]].to_string(
                    index=False, float_format=lambda v: f"{v:.4g}"
                )
            )
            print()
            print(summ.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if answers:
        print()
        print(
            answer_probe_table(pack, lm, answers, args.batch_size).to_string(
                index=False, float_format=lambda v: f"{v:.3f}"
            )
        )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if df.empty:
            raise WorkbenchError("--out writes the next-token probe table, and this check scored no next-token probes")
        if out.suffix == ".parquet":
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, index=False)
        print(f"wrote {out}")
    return 0
