"""The ``workbench eval`` and ``workbench packs`` commands (registered by workbench/cli.py).

Each ``add_*_parser`` adds a subcommand to an argparse subparsers object and sets ``func`` to a callable
``func(args) -> int`` (the exit code). Bad input raises WorkbenchError, which the main CLI prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["add_eval_parser", "add_packs_parser", "config_from_args", "run_eval", "run_packs_check", "run_packs_list",
           "run_packs_import_completions", "run_packs_new"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _none_or_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all", "0") else int(text)


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``eval``: evaluate one or more models and write tables, a JSON summary and figures."""
    from workbench.eval.config import ALL_SECTIONS
    from workbench.eval.utility import BENCHMARKS

    p = subparsers.add_parser(
        "eval",
        help="evaluate models: familiarity, robustness, utility; tables, JSON and plotly figures",
        description="Evaluate one or more models (the first is the baseline) on familiarity probes, completion "
                    "familiarity, priming, paraphrases, collateral domains, multiple-choice benchmarks and "
                    "perplexity. Writes results.csv/.parquet, summary.json, report.md and figures/*.html to --out. "
                    "A rerun into the same --out resumes from finished parts.",
    )
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]SPEC",
                   help="model to evaluate (repeatable): 'embedded', 'tiny', a model folder, a .gguf file, a run "
                        "directory or a hub id; prefix 'LABEL=' to name it in the report")
    p.add_argument("--out", default=None, help="output folder (default runs/eval/<timestamp>)")
    p.add_argument("--pack", default="harry_potter", help="pack name or folder with the probes ('none' for no pack)")
    p.add_argument("--sections", type=_csv, default=None,
                   help=f"comma list of measures (default: all that the pack and data allow, without lm_eval): "
                        f"{','.join(ALL_SECTIONS)}")
    p.add_argument("--splits", type=_csv, default=("dev", "heldout"), help="probe splits (default dev,heldout)")
    p.add_argument("--probe-limit", type=_none_or_int, default=None, help="first N probes of each probe file (default all)")
    p.add_argument("--tasks", type=_csv, default=tuple(BENCHMARKS),
                   help="multiple-choice benchmarks: names in --evaldata or JSONL paths (default: the seven)")
    p.add_argument("--evaldata", default=None, help="benchmark folder (default $WORKBENCH_EVALDATA, else the subsets shipped in workbench/evaldata)")
    p.add_argument("--limit", type=_none_or_int, default=500, help="items per benchmark ('all' for every item; default 500)")
    p.add_argument("--ppl-text", default=None, help="text file for perplexity (default: WikiText-2 test in --evaldata)")
    p.add_argument("--ppl-max-tokens", type=_none_or_int, default=20000,
                   help="tokens of the text to score ('all'; default 20000)")
    p.add_argument("--ppl-max-length", type=int, default=1024, help="perplexity window in tokens")
    p.add_argument("--ppl-stride", type=int, default=512, help="new tokens per perplexity window")
    p.add_argument("--judge", choices=("keyword", "openai", "hf"), default="keyword", help="completion judge")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for --judge openai (e.g. http://127.0.0.1:8000/v1)")
    p.add_argument("--judge-model", default=None, help="model name at the endpoint, or a chat model spec for --judge hf")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the endpoint key")
    p.add_argument("--judge-rubric", default=None,
                   help="LLM judge instruction: 'workbench' (default; SCORE: n), 'authors' (the authors' grading "
                        "instruction; MODEL_FAMILIARITY: X/3) or a template file with {prompt} and {completion}")
    p.add_argument("--generation-preset", choices=("authors",), default=None,
                   help="named completion settings replacing the generation flags: 'authors' (20 new tokens, "
                        "temperature 1, top-k 5, 5 samples, no greedy)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens per completion")
    p.add_argument("--samples", type=int, default=2, help="sampled completions per prompt (besides the greedy one)")
    p.add_argument("--no-greedy", action="store_true", help="skip the greedy completion")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--top-p", type=float, default=0.95, help="sampling nucleus")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: no limit)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and the priming passage")
    p.add_argument("--priming-chars", type=int, default=600, help="longest priming passage in characters")
    p.add_argument("--priming-text", default=None, help="file with the priming passage (default: cut from the pack corpus)")
    p.add_argument("--lm-eval-tasks", type=_csv, default=(), help="lm-evaluation-harness tasks (adds section lm_eval)")
    p.add_argument("--lm-eval-include", default=None, help="folder of extra lm-eval task YAMLs")
    p.add_argument("--lm-eval-limit", type=_none_or_int, default=None, help="items per lm-eval task")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    p.add_argument("--max-batch-tokens", type=int, default=32768, help="rows x padded length per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    p.add_argument("--no-resume", action="store_true", help="recompute everything, ignoring finished parts in --out")
    p.add_argument("--formats", type=_csv, default=("csv", "parquet"), help="table formats: csv,parquet")
    p.add_argument("--no-figures", action="store_true", help="write no HTML figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)
    return p


def config_from_args(args: argparse.Namespace):
    """The EvalConfig that the parsed ``eval`` arguments describe."""
    from workbench.eval.config import EvalConfig

    sections = args.sections
    if args.lm_eval_tasks and sections is not None and "lm_eval" not in sections:
        sections = tuple(sections) + ("lm_eval",)
    priming_text = None
    if args.priming_text:
        path = Path(args.priming_text)
        if not path.is_file():
            raise WorkbenchError(f"--priming-text {path} does not exist")
        priming_text = path.read_text(encoding="utf-8")
    return EvalConfig(
        pack=None if args.pack.lower() == "none" else args.pack,
        sections=sections,
        splits=tuple(args.splits),
        probe_limit=args.probe_limit,
        tasks=tuple(args.tasks),
        evaldata_dir=args.evaldata,
        limit=args.limit,
        ppl_text=args.ppl_text,
        ppl_max_tokens=args.ppl_max_tokens,
        ppl_max_length=args.ppl_max_length,
        ppl_stride=args.ppl_stride,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        judge=args.judge,
        judge_url=args.judge_url,
        judge_model=args.judge_model,
        judge_api_key_env=args.judge_api_key_env,
        max_new_tokens=args.max_new_tokens,
        greedy=not args.no_greedy,
        samples=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        generation_preset=args.generation_preset,
        judge_rubric=args.judge_rubric,
        seed=args.seed,
        priming_chars=args.priming_chars,
        priming_text=priming_text,
        lm_eval_tasks=tuple(args.lm_eval_tasks),
        lm_eval_include=args.lm_eval_include,
        lm_eval_limit=args.lm_eval_limit,
        device=args.device,
        dtype=args.dtype,
        resume=not args.no_resume,
        formats=tuple(args.formats),
        figures=not args.no_figures,
        progress=not args.quiet,
    )


def run_eval(args: argparse.Namespace) -> int:
    """Run ``workbench eval``."""
    from workbench.eval.runner import evaluate_models

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
    p = subparsers.add_parser("packs", help="list bundled data packs, or check a pack's probes against a model",
                              description="Work with data packs (docs/formats.md).")
    sub = p.add_subparsers(dest="packs_command", metavar="{list,check,new,import-completions}")
    sub.required = True
    lst = sub.add_parser("list", help="list the bundled packs")
    lst.set_defaults(func=run_packs_list)
    chk = sub.add_parser("check", help="validate a pack and report each next-token probe's baseline probability and rank")
    chk.add_argument("name", help="bundled pack name or pack folder")
    chk.add_argument("--model", default="embedded", help="model spec to measure the baseline with (default embedded)")
    chk.add_argument("--kinds", type=_csv, default=None, help="probe kinds to check (default: every next-token kind)")
    chk.add_argument("--out", default=None, help="also write the per-probe table to this .csv or .parquet file")
    chk.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    chk.add_argument("--device", default=None, help="torch device")
    chk.set_defaults(func=run_packs_check)
    imp = sub.add_parser("import-completions",
                         help="convert the paper's authors' evaluation_prompts.json into a completion probe file",
                         description="Read the authors' completion prompts (a JSON list of {prompt: {prompt, "
                                     "references, subtlety}}) and write them as completion.jsonl probes.")
    imp.add_argument("source", help="the authors' evaluation_prompts.json")
    imp.add_argument("--out", required=True, help="the completion probe file to write (JSONL)")
    imp.add_argument("--split", choices=("dev", "heldout"), default="heldout", help="split of every probe (default heldout)")
    imp.add_argument("--id-prefix", default="authors", help="probe ids are PREFIX-001, PREFIX-002, ...")
    imp.add_argument("--force", action="store_true", help="replace --out if it exists")
    imp.set_defaults(func=run_packs_import_completions)
    new = sub.add_parser("new", help="write a pack skeleton for your own target (corpus, anchors, retain, draft probes)")
    new.add_argument("name", help="the new pack folder (its last part is the pack's name); must not exist")
    new.add_argument("--corpus", required=True, help="a .txt file or a folder of them: the text to forget")
    new.add_argument("--retain", default=None, help="a .txt file or folder of text to keep (default: bundled general prose)")
    new.add_argument("--anchors", default=None, help="an anchor map to start from (default: an empty map)")
    new.add_argument("--title", default=None, help="the target's name for people (default: from NAME)")
    new.set_defaults(func=run_packs_new)
    return p


def run_packs_import_completions(args: argparse.Namespace) -> int:
    """Run ``workbench packs import-completions SOURCE --out FILE``."""
    from workbench.eval.authors import convert_authors_prompts

    probes = convert_authors_prompts(args.source, args.out, split=args.split, id_prefix=args.id_prefix,
                                     overwrite=args.force)
    print(f"wrote {len(probes)} completion probes to {args.out}")
    return 0


def run_packs_new(args: argparse.Namespace) -> int:
    """Run ``workbench packs new NAME --corpus DIR``."""
    from workbench.pack_new import new_pack
    from workbench.packs import load_pack

    dest = new_pack(args.name, args.corpus, args.retain, args.anchors, args.title)
    shown = str(dest) if ("/" in args.name or "\\" in args.name) else f"./{dest}"
    pack = load_pack(dest)
    for kind in pack.probe_paths:
        print(f"{pack.name}: {kind}: {len(pack.probes(kind))} probes (drafts: review them)")
    print(f"wrote {shown}/ (pack.json, README.md, corpus/, anchors.json, retain/, probes/); next: "
          f"`workbench packs check {shown}` and a config with `target: {{pack: {shown}}}`")
    return 0


def run_packs_list(args: argparse.Namespace) -> int:
    """Run ``workbench packs list``."""
    from workbench.packs import list_packs, load_pack

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


def run_packs_check(args: argparse.Namespace) -> int:
    """Run ``workbench packs check NAME``: validate every probe and anchor file, then score the probes."""
    import pandas as pd

    from workbench.models import load_model
    from workbench.eval.probes import check_pack
    from workbench.packs import COMPLETION_KIND, load_pack

    pack = load_pack(args.name)
    # Validate everything first, so a bad line is reported before a model is loaded.
    for kind in pack.probe_paths:
        if pack.has_probes(kind):
            n = len(pack.probes(kind))
            print(f"{pack.name}: {kind}: {n} probes ok")
        else:
            print(f"{pack.name}: {kind}: file {pack.probe_paths[kind]} missing", file=sys.stderr)
    if not pack.anchors_path.is_file():
        raise WorkbenchError(f"pack {pack.name!r}: anchor map {pack.anchors_path} is missing; a pack needs one "
                             "(docs/formats.md)")
    from workbench.anchors import load_anchor_map
    from workbench.probe_checks import probe_warnings

    anchors = load_anchor_map(pack.anchors_path)
    if not anchors.entries:  # a new pack's map, not filled yet
        print(f"{pack.name}: anchors: empty so far (notebook 02_anchor_editing suggests terms to accept)")
    else:
        print(f"{pack.name}: anchors: {len(anchors.entries)} terms ok")
    print(f"{pack.name}: corpus: {len(pack.corpus_files())} files ok")  # names the missing folder otherwise
    for warning in probe_warnings(pack, anchors):
        print(f"warning: {pack.name}: {warning}", file=sys.stderr)
    kinds = args.kinds or tuple(k for k in pack.probe_paths if k != COMPLETION_KIND and pack.has_probes(k))
    if not kinds:
        raise WorkbenchError(f"pack {pack.name!r} has no next-token probe files to check")
    lm = load_model(args.model, device=args.device)
    df = check_pack(pack, lm, tuple(kinds), batch_size=args.batch_size)
    summ = df.assign(top5=df["rank"] <= 5).groupby(["kind", "split"]).agg(
        n=("id", "size"), mean_prob=("prob", "mean"), median_rank=("rank", "median"), top1_rate=("top1", "mean"),
        top5_rate=("top5", "mean")).reset_index()
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 50):
        print(df[["kind", "id", "split", "target", "prob", "rank"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print()
        print(summ.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, index=False)
        print(f"wrote {out}")
    return 0
