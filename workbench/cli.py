"""The ``workbench`` command line. Bad input prints one clear message and exits with code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.file_checks import environment_error

__all__ = ["main", "build_parser"]

CONFIGS = Path(__file__).parent / "configs"


def _run_from_args(args):
    from workbench.config import load_config
    from workbench.run import Run

    cfg = load_config(args.config)
    _quiet_progress(args.no_progress)
    return Run(cfg, args.run_dir, update=args.update, progress=not args.no_progress)


def _quiet_progress(quiet: bool) -> None:
    """--no-progress: no bars from the libraries either (transformers' loading and saving, the hub's downloads)."""
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _cmd_run(args) -> int:
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else None
    if stages:
        from workbench.config import check_names
        from workbench.run import STAGES

        check_names("--stages", stages, STAGES)  # before the model loads
    run = _run_from_args(args)
    report = run.run(stages) if stages else run.run()
    _print_report(report)
    print(f"run directory: {run.dir}")
    return 0


def _cmd_stage(args) -> int:
    run = _run_from_args(args)
    result = getattr(run, args.command)()
    if args.command == "report":
        _print_report(result)
    print(f"[{args.command}] done: {run.dir}")
    return 0


def _print_report(report: dict) -> None:
    if not report:
        return
    from workbench.report import report_table

    table = report_table(report)
    if not table.empty:
        print("\nBefore/after (mean over the probes of P(correct next token)):")
        shown = table.astype(object).where(table.notna(), "")
        formatters = {c: _fmt for c in ("baseline", "unlearned", "generic")}
        formatters["n"] = lambda v: str(int(v)) if isinstance(v, (int, float)) else str(v)
        print(shown.to_string(index=False, formatters=formatters))
        if "generic" in table and table["generic"].notna().any():
            print("generic: the baseline on the prompts with anchored terms replaced, the reference the labels imitate")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def _cmd_demo(args) -> int:
    from workbench.config import load_config
    from workbench.run import Run

    name = "demo_quick.yaml" if args.quick else "demo.yaml"
    cfg = load_config(args.config or CONFIGS / name)
    _quiet_progress(args.no_progress)
    run = Run(cfg, args.run_dir, update=True, progress=not args.no_progress)  # default: runs/<name>
    report = run.run()
    _print_report(report)
    secs = report.get("stage_seconds", {})
    print("\nstage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items() if v is not None))
    paths = run.paths
    print(f"run directory: {run.dir} ({paths.report_json.name}, {paths.labels.name}/, {paths.unlearned.name}/)")
    return 0


def _cmd_anchors(args) -> int:
    if args.propose:
        from workbench.proposer import propose_command

        return propose_command(args)
    from workbench.anchor_import import cli_import, load_any_anchor_map

    if args.file == "import" and args.source:  # workbench anchors import FILE -o OUT
        return cli_import(args.source, args.output)
    amap = load_any_anchor_map(args.file)
    print(f"{args.file}: {len(amap)} anchors after consolidation ({len(amap.dropped)} dropped)")
    for key, why in amap.dropped[:20]:
        print(f"  dropped {key!r}: {why}")
    if args.corpus:
        from workbench.corpus import read_documents

        docs = read_documents(args.corpus)
        unmatched, unmarked = amap.unintended_unmatched(d.text for d in docs)
        print(
            f"{len(unmatched)} anchors never match the corpus"
            + (f": {', '.join(unmatched[:20])}" if unmatched else "")
            + (f" ({len(unmatched) - len(unmarked)} marked keep_unmatched)" if len(unmarked) < len(unmatched) else "")
        )
    return 0


def _cmd_config(args) -> int:
    from workbench.config import config_reference, format_keys

    sys.stdout.write(config_reference() if args.markdown else format_keys(args.section or "") + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench", description="Approximate unlearning workbench (Who's Harry Potter method)."
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add_run_args(sp):
        sp.add_argument("config", help="YAML run config")
        sp.add_argument("--run-dir", default=None, help="run directory (default runs/<name>)")
        sp.add_argument("--update", action="store_true", help="accept config changes; redo only the affected stages")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")

    sp = sub.add_parser(
        "run",
        help="run every stage of a config",
        epilog="`workbench config` lists every key of the YAML file with what it does.",
    )
    add_run_args(sp)
    sp.add_argument(
        "--stages", default=None, help="comma-separated subset: implant,reinforce,score,labels,finetune,report"
    )
    sp.set_defaults(func=_cmd_run)
    for stage, text in (
        ("implant", "teach the baseline a target it never saw (implant.enabled: true)"),
        ("reinforce", "train the reinforced model"),
        ("score", "score target tokens"),
        ("labels", "generate generic labels"),
        ("finetune", "finetune on generic labels"),
        ("report", "before/after probes of the unlearned model"),
    ):
        sp = sub.add_parser(stage, help=text)
        add_run_args(sp)
        sp.set_defaults(func=_cmd_stage)

    sp = sub.add_parser(
        "config",
        help="list the run-config keys: what each does, its type and default",
        description="Every key of a run config (YAML) with its help, type and default.",
    )
    sp.add_argument("section", nargs="?", default=None, help="one section only, e.g. finetune or methods.npo")
    sp.add_argument("--markdown", action="store_true", help="the whole reference as Markdown (docs/config.md)")
    sp.set_defaults(func=_cmd_config)

    sp = sub.add_parser("demo", help="the whole method on the embedded model and the Harry Potter pack")
    sp.add_argument(
        "--quick", action="store_true", help="a smaller demo: configs/demo_quick.yaml, under 3 minutes on 2 CPU cores"
    )
    sp.add_argument("--config", default=None, help="another demo config")
    sp.add_argument("--run-dir", default=None)
    sp.add_argument("--no-progress", action="store_true")
    sp.set_defaults(func=_cmd_demo)

    sp = sub.add_parser("anchors", help="validate an anchor map (and its coverage of a corpus)")
    sp.add_argument("file", help="anchor map (JSON, CSV or the authors' .npy dictionary), or `import`")
    sp.add_argument("source", nargs="?", help="with `import`: the file to convert")
    sp.add_argument("-o", "--output", default=None, help="with `import`: anchors.json or anchors.csv to write")
    sp.add_argument("--corpus", default=None, help="a .txt file or folder to check coverage against")
    sp.add_argument(
        "--propose",
        choices=["offline", "endpoint"],
        default=None,
        help="propose alternatives (baseline model, or an OpenAI-compatible endpoint) into --out",
    )
    sp.add_argument("--endpoint", default=None, help="with --propose endpoint: the server's base URL")
    sp.add_argument("--endpoint-model", default="gpt-4o", help="with --propose endpoint: the model name")
    sp.add_argument("--timeout", type=float, default=60.0, help="with --propose endpoint: seconds per request")
    sp.add_argument("--model", default="embedded", help="with --propose offline: the baseline model")
    sp.add_argument("--keys", default=None, help="comma-separated keys (default: those on placeholders, else all)")
    sp.add_argument("--limit", type=int, default=None, help="at most this many keys")
    sp.add_argument("--out", default="proposals.json", help="where the proposals go")
    sp.set_defaults(func=_cmd_anchors)

    from workbench.compare import add_compare_parser
    from workbench.eval.cli import add_eval_parser, add_packs_parser
    from workbench.plan import add_plan_parser
    from workbench.tuning import add_tune_parser

    add_plan_parser(sub)
    add_export_parser(sub)
    add_compare_parser(sub)
    add_tune_parser(sub)
    add_eval_parser(sub)
    add_packs_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted: {str(exc) or 'rerun the same command to resume'}", file=sys.stderr)
        return 130
    except Exception as exc:  # a full disk, a read-only folder ...: one line; anything else keeps its traceback
        message = environment_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def add_export_parser(sub) -> None:
    sp = sub.add_parser(
        "export",
        help="a folder ready to upload to the Hub: weights, tokenizer, model card, run config",
        description="Copy a run's unlearned model with a fresh model card (README.md) and the run "
        "config into a new folder; nothing goes over the network.",
    )
    sp.add_argument("run", help="the run directory")
    sp.add_argument("--to", required=True, help="the folder to write (must not exist)")
    sp.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from workbench.run import export_run

    out = export_run(args.run, args.to)
    print(f"exported to {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    print(f"upload with: huggingface-cli upload <your-name>/<model-name> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
