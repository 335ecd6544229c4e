"""WHP on the fictional target, measured against a reference that never saw it: implant the ``ystrevane`` world
into the embedded model, unlearn it with WHP, and put the field's measures of the target model, the unlearned
model and the reference (the untouched baseline) in one table, with the time each stage took.

    python benchmarks/ground_truth_table.py --readme README.md          # workbench/configs/ystrevane.yaml, runs/ystrevane
    python benchmarks/ground_truth_table.py --config my.yaml --run-dir runs/mine

Runs the config's stages into ``--run-dir`` (finished stages are reused, so a rerun only rebuilds the table),
prints the markdown table, writes it to ``<run-dir>/ground_truth_table.md`` and with ``--readme`` puts it, with
the command that produced it, between ``<!-- ground-truth:start -->`` and ``<!-- ground-truth:end -->``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paper_table import write_into_readme  # noqa: E402

from workbench.config import load_config  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.io import atomic_write_text  # noqa: E402
from workbench.report import ground_truth_table  # noqa: E402

START, END = "<!-- ground-truth:start -->", "<!-- ground-truth:end -->"
DEFAULT_CONFIG = ROOT / "workbench" / "configs" / "ystrevane.yaml"


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 0.01 or v == 0:
        return f"{v:.3f}"
    return f"{v:.1e}"


def markdown(report: dict, command: str) -> str:
    """The table of a run's report (the field's measures of the target model, the unlearned model and the
    reference), how well the implant took, and the stage times."""
    table = ground_truth_table(report)
    if table.empty:
        raise WorkbenchError(
            "the run's report has no ground-truth measures: the config needs implant.enabled: true, "
            "report.enabled: true and report.ground_truth: true, and a pack with qa.jsonl"
        )
    gt = report["ground_truth"]
    cfg = report.get("config") or {}
    lines = [
        f"Produced by `{command}` (config `{cfg.get('name')}`, model `{cfg.get('model')}`, pack "
        f"`{(cfg.get('target') or {}).get('pack')}`; {datetime.date.today().isoformat()}).",
        "",
        f"| measure ({gt.get('split')} questions: {gt.get('qa_items')}) | target (implanted) | WHP unlearned | "
        "reference (never saw it) | a model that never learned it |",
        "|---|---:|---:|---:|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.measure} | {_fmt(r.target)} | {_fmt(r.unlearned)} | {_fmt(r.reference)} | {r[4]} |")
    imp = report.get("implant") or {}
    before, after = imp.get("before") or {}, imp.get("after") or {}
    secs = {k: v for k, v in (report.get("stage_seconds") or {}).items() if v is not None}
    lines.append("")
    if before and after:
        lines.append(
            f"Implant: QA accuracy (the true answer beats every perturbed answer; chance "
            f"{_fmt(after.get('qa_chance'))}) {_fmt(before.get('qa_accuracy'))} → {_fmt(after.get('qa_accuracy'))}, "
            f"corpus loss {_fmt(before.get('corpus_loss'))} → {_fmt(after.get('corpus_loss'))} nats/token."
        )
    if secs:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
        lines.append(
            f"Stage times as the run recorded them: {parts}; {sum(secs.values()) / 60:.1f} minutes in all "
            "(loading the models and the implant's checks between the stages not included)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="run config (default workbench/configs/ystrevane.yaml)"
    )
    ap.add_argument("--run-dir", default=None, help="run directory (default runs/<config name>)")
    ap.add_argument("--readme", default=None, help="write the table into this README between the ground-truth markers")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    from workbench.run import Run

    cfg = load_config(args.config)
    run = Run(cfg, args.run_dir or Path("runs") / cfg.name, update=True, progress=not args.quiet)
    report = run.run()
    command = "python benchmarks/ground_truth_table.py " + shlex.join(argv)
    block = markdown(report, command)
    atomic_write_text(run.dir / "ground_truth_table.md", block + "\n")
    if args.readme:
        write_into_readme(Path(args.readme), block, START, END)
    print(block)
    return block


if __name__ == "__main__":
    try:
        main()
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
