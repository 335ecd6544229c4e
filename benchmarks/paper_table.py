"""The paper's results table, reproduced: baseline vs unlearned model on the seven benchmarks, WikiText-2
perplexity and every familiarity measure of a pack.

    python benchmarks/paper_table.py --unlearned runs/demo --readme README.md
    python benchmarks/paper_table.py --unlearned runs/demo --limit 50 --ppl-max-tokens 5000   # a quick look

Writes the full evaluation (results.csv/.parquet, summary.json, figures/) and ``paper_table.md`` to ``--out``,
prints the markdown table, and with ``--readme`` puts the table, with the command that produced it, between
``<!-- results:start -->`` and ``<!-- results:end -->`` in that file. Finished parts are reused when rerun
into the same ``--out``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.errors import WorkbenchError  # noqa: E402
from workbench.eval.config import EvalConfig  # noqa: E402
from workbench.eval.evaluate import evaluate_models  # noqa: E402
from workbench.eval.utility import BENCHMARKS  # noqa: E402
from workbench.io import atomic_write_text  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"
TASK_NAMES = {
    "arc_challenge": "ARC-Challenge",
    "arc_easy": "ARC-Easy",
    "boolq": "BoolQ",
    "hellaswag": "HellaSwag",
    "openbookqa": "OpenBookQA",
    "piqa": "PIQA",
    "winogrande": "WinoGrande",
}
FAMILIARITY_ROWS = [
    ("familiarity_prob", "Familiarity: answer-token probability (mean, lower = less familiar)"),
    ("familiarity_top1", "Familiarity: answer is the top-1 token (share)"),
    ("completion_familiarity_greedy", "Familiarity: completions, greedy (mean grade / 3)"),
    ("completion_familiarity_sampled", "Familiarity: completions, sampled (mean grade / 3)"),
    ("completion_share_3_greedy", "Completions graded 3, greedy (share)"),
    ("completion_authors_score_greedy", "Completions, the authors' score (5·n3 + n2)/n, greedy (0-5)"),
    ("completion_authors_score_sampled", "Completions, the authors' score (5·n3 + n2)/n, sampled (0-5)"),
    ("primed_prob", "Primed: answer probability after a target passage"),
    ("priming_delta", "Primed: rise in answer probability"),
    ("paraphrase_max_prob", "Paraphrases: answer probability (worst case)"),
    ("collateral_prob", "Collateral domains: answer probability"),
    ("general_prob", "General knowledge: answer probability"),
]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 0.01 or v == 0:
        return f"{v:.3f}"
    return f"{v:.2e}"


def paper_table(summary: dict, base: str, other: str) -> str:
    """The markdown table: one row per benchmark and measure, with the difference and its 95% CI."""
    heads, comps = summary["headlines"], summary["comparisons"].get(other, {})
    b, u = heads.get(base, {}), heads.get(other, {})
    lines = [f"| Measure | {base} | {other} | Δ (95% CI) |", "|---|---:|---:|---:|"]

    def diff(key: str, comp_key: str | None = None) -> str:
        c = comps.get(comp_key or key)
        if c:
            return f"{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
        if key in b and key in u and b[key] is not None and u[key] is not None:
            return f"{u[key] - b[key]:+.3g}"
        return "–"

    for task, metric in BENCHMARKS.items():
        key = f"{task}_{metric}"
        if key in b or key in u:
            lines.append(
                f"| {TASK_NAMES.get(task, task)} ({metric}) | {_fmt(b.get(key))} | {_fmt(u.get(key))} | {diff(key)} |"
            )
    if "utility_mean" in b:
        lines.append(
            f"| Mean of the benchmarks | {_fmt(b.get('utility_mean'))} | {_fmt(u.get('utility_mean'))} | {diff('utility_mean')} |"
        )
    for key in sorted(k for k in b if k.startswith("ppl_")):
        name = "WikiText-2 perplexity" if "wikitext" in key else key
        lines.append(
            f"| {name} (token-level, lower is better) | {_fmt(b.get(key))} | {_fmt(u.get(key))} | {diff(key)} |"
        )
    split = summary.get("headline_split", "all")
    comp_keys = {"familiarity_prob": "probability_original_prob", "primed_prob": "probability_primed_prob"}
    for key, label in FAMILIARITY_ROWS:
        if key in b or key in u:
            lines.append(f"| {label} | {_fmt(b.get(key))} | {_fmt(u.get(key))} | {diff(key, comp_keys.get(key))} |")
    lines.append("")
    lines.append(f"Familiarity rows use the `{split}` probes; benchmark differences are paired over items (bootstrap).")
    return "\n".join(lines)


def write_into_readme(readme: Path, block: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the markers ``start`` and ``end`` (default: the results markers) of ``readme``
    with ``block``."""
    if not readme.is_file():
        raise WorkbenchError(f"{readme} does not exist")
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise WorkbenchError(f"{readme} has no '{start}' ... '{end}' markers; add them where the table should go")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n{block}\n{end}{tail}")


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unlearned", required=True, help="the unlearned model: a run directory (or any model spec)")
    ap.add_argument("--baseline", default="embedded", help="the baseline model spec (default embedded)")
    ap.add_argument("--pack", default="harry_potter", help="pack with the familiarity probes")
    ap.add_argument(
        "--evaldata", default=None, help="benchmark folder (default: the subsets shipped in workbench/evaldata)"
    )
    ap.add_argument(
        "--limit",
        type=lambda s: None if s == "all" else int(s),
        default=500,
        help="items per benchmark (default 500; 'all' for every item in the files)",
    )
    ap.add_argument(
        "--ppl-max-tokens",
        type=lambda s: None if s == "all" else int(s),
        default=None,
        help="tokens of WikiText-2 to score (default all)",
    )
    ap.add_argument("--ppl-max-length", type=int, default=1024, help="perplexity window")
    ap.add_argument("--ppl-stride", type=int, default=512, help="perplexity stride")
    ap.add_argument("--samples", type=int, default=2, help="sampled completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="tokens per completion")
    ap.add_argument(
        "--generation-preset",
        choices=("authors",),
        default=None,
        help="completion settings of the paper's authors (replaces --samples and --max-new-tokens)",
    )
    ap.add_argument("--splits", default="heldout", help="probe splits (default heldout: the reported ones)")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    ap.add_argument("--device", default=None, help="torch device")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "paper_table"), help="output folder")
    ap.add_argument("--readme", default=None, help="write the table into this README between the results markers")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    cfg = EvalConfig(
        pack=args.pack,
        tasks=tuple(BENCHMARKS),
        evaldata_dir=args.evaldata,
        limit=args.limit,
        ppl_max_tokens=args.ppl_max_tokens,
        ppl_max_length=args.ppl_max_length,
        ppl_stride=args.ppl_stride,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        splits=tuple(s for s in args.splits.split(",") if s),
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        generation_preset=args.generation_preset,
    )
    t0 = time.perf_counter()
    report = evaluate_models([("baseline", args.baseline), ("unlearned", args.unlearned)], cfg, args.out)
    table = paper_table(report.summary, "baseline", "unlearned")
    command = "python benchmarks/paper_table.py " + shlex.join(argv)
    n = {
        t: int(report.table[(report.table["section"] == "utility") & (report.table["set"] == t)]["n"].max())
        for t in BENCHMARKS
        if t in set(report.table["set"])
    }
    block = "\n".join(
        [
            f"Baseline `{args.baseline}` vs unlearned `{args.unlearned}`, pack `{args.pack}`; produced by:",
            "",
            "```",
            command,
            "```",
            "",
            table,
            "",
            "Items per benchmark: " + (", ".join(f"{TASK_NAMES.get(t, t)} {k}" for t, k in n.items()) or "none") + ".",
            f"Run on {time.strftime('%Y-%m-%d')} in {time.perf_counter() - t0:.0f} s. Full results: `{args.out}`.",
        ]
    )
    atomic_write_text(Path(args.out) / "paper_table.md", block + "\n")
    print(block)
    if args.readme:
        write_into_readme(Path(args.readme), block)
        print(f"\nwrote the table into {args.readme}")
    return block


if __name__ == "__main__":
    try:
        main()
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
