"""Select the Harry Potter pack's completion probes by what the baseline model reveals.

Completion familiarity can only show forgetting if the baseline's completions reveal the books. This script
completes every candidate prompt (``benchmarks/completion_candidates.jsonl``, original prompts that name the
setting and leave a character, place or object to complete) with the baseline model, greedy and sampled,
grades each completion with the workbench's offline keyword judge (the pack's anchored names and the prompt's
reference keywords) and keeps a prompt when

- its greedy completion grades at least ``--min-greedy`` (2: a target-specific name the prompt does not hold),
- its sampled completions grade at least ``--min-sampled`` on average (1.0), and
- at least ``--min-mention`` of the samples (0.5) name a target-specific term (an anchored name of the pack).

Only the baseline's behaviour decides: never an unlearned model's (that would tune the probe set on the
evaluation). Dev and heldout split by the prompts' ``fact`` (a fact never spans both): the kept prompts' facts,
in the order of a hash of their names, fill dev up to a third of the kept prompts, the rest are heldout. Kept
prompts keep their candidate ids.

    # measure the candidates, print the per-prompt table and the rule's verdict (~4 min on 2 CPU cores)
    python benchmarks/completion_probe_selection.py
    # ... and write the kept prompts to the pack's probes/completion.jsonl
    python benchmarks/completion_probe_selection.py --write
    # measure a probe file as it stands (per split and mode; another seed than the selection's)
    python benchmarks/completion_probe_selection.py --measure workbench/packs/harry_potter/probes/completion.jsonl --seed 1

Selection settings: the authors' generation preset (20 new tokens, temperature 1, top-k 5) with ``--samples``
(6) samples per prompt and one greedy completion, seed ``--seed`` (0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.anchors import load_anchor_map  # noqa: E402
from workbench.eval.completion import (  # noqa: E402
    CompletionSettings,
    KeywordJudge,
    generation_preset,
    per_prompt_summary,
    score_completions,
    summarize_completions,
)
from workbench.io import atomic_write_text  # noqa: E402
from workbench.pack import load_anchor_terms, load_pack, load_probes  # noqa: E402
from workbench.probe_checks import subtlety_band  # noqa: E402

CANDIDATES = ROOT / "benchmarks" / "completion_candidates.jsonl"
DEV_SHARE = 3  # one fact in DEV_SHARE goes to dev


def fact_splits(facts: list[str]) -> dict[str, str]:
    """Each fact's split: facts in the order of a hash of their names fill dev while it holds at most a third of
    the prompts (``facts``: one entry per prompt); the others are heldout."""
    sizes = Counter(facts)
    budget, dev, out = len(facts) / DEV_SHARE, 0, {}
    for fact in sorted(sizes, key=lambda f: hashlib.sha256(f.encode()).hexdigest()):
        out[fact] = "dev" if dev + sizes[fact] <= budget else "heldout"
        dev += sizes[fact] if out[fact] == "dev" else 0
    return out


def measure(lm, probes, anchors, samples: int, seed: int, batch_size: int, preset: str | None) -> pd.DataFrame:
    """Greedy and sampled completions of ``probes``, graded by the keyword judge; one row per completion."""
    if preset == "eval":  # `workbench eval`'s defaults (48 new tokens, top-p 0.95), with the samples asked for
        cfg = CompletionSettings(
            max_new_tokens=48,
            greedy=True,
            samples=samples,
            temperature=1.0,
            top_p=0.95,
            seed=seed,
            batch_size=batch_size,
        )
    else:
        cfg = generation_preset("authors", greedy=True, samples=samples, seed=seed, batch_size=batch_size)
    return score_completions(lm, probes, KeywordJudge(anchor_terms=anchors), cfg)


def split_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per split and mode: n, mean grade (0-3), F = mean/3, the authors' score and the share naming a target term."""
    s = summarize_completions(df, by=("mode", "split"))
    s["mean_grade"] = s["familiarity"] * 3
    return s[
        ["mode", "split", "n", "mean_grade", "familiarity", "authors_score", "mention_share", "share_0", "share_3"]
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", default=str(CANDIDATES), help="candidate prompts (completion.jsonl schema + fact)")
    ap.add_argument(
        "--pack", default="harry_potter", help="pack whose anchors grade and whose probe file --write replaces"
    )
    ap.add_argument("--model", default="embedded", help="the baseline model")
    ap.add_argument("--samples", type=int, default=6, help="sampled completions per prompt")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--batch-size", type=int, default=32, help="prompts per generate() call")
    ap.add_argument("--min-greedy", type=float, default=2, help="keep: greedy grade at least this")
    ap.add_argument("--min-sampled", type=float, default=1.0, help="keep: mean sampled grade at least this")
    ap.add_argument("--min-mention", type=float, default=0.5, help="keep: share of samples naming a target term")
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts (timing)")
    ap.add_argument("--measure", metavar="FILE", help="measure this probe file as it stands instead of selecting")
    ap.add_argument(
        "--preset",
        choices=["authors", "eval"],
        default="authors",
        help="generation settings: the authors' (20 tokens, top-k 5) or `workbench eval`'s defaults (48 tokens, top-p 0.95)",
    )
    ap.add_argument("--write", action="store_true", help="write the kept prompts to the pack's probes/completion.jsonl")
    ap.add_argument("--csv", help="also write the per-prompt table here (and the completions to *.completions.csv)")
    args = ap.parse_args(argv)

    from workbench.models import load_model

    pack = load_pack(args.pack)
    anchors = load_anchor_terms(pack)
    path = Path(args.measure or args.candidates)
    probes = load_probes(path, "completion")
    if not args.measure:
        amap = load_anchor_map(pack.anchors_path)
        for p in probes:
            lo, hi = subtlety_band(p.prompt, amap, pack.title)
            if not lo <= p.subtlety <= hi:
                raise SystemExit(f"{path}: {p.id} subtlety {p.subtlety} outside {lo}-{hi} for what its prompt names")
    if args.limit:
        probes = probes[: args.limit]
    t0 = time.perf_counter()
    lm = load_model(args.model)
    df = measure(lm, probes, anchors, args.samples, args.seed, args.batch_size, args.preset)
    print(
        f"{len(probes)} prompts x (1 greedy + {args.samples} sampled), preset {args.preset}, seed {args.seed}: "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    table = per_prompt_summary(df)
    by_id = {p.id: p for p in probes}
    table["fact"] = [by_id[i].fact for i in table["probe_id"]]
    table["keep"] = (
        (table["greedy_grade"] >= args.min_greedy)
        & (table["sampled_mean_grade"] >= args.min_sampled)
        & (table["sampled_mention_share"] >= args.min_mention)
    )
    pd.set_option("display.width", 250, "display.max_colwidth", 70, "display.max_rows", 1000)
    cols = (
        ["probe_id"]
        + (["split"] if args.measure else [])
        + [
            "fact",
            "subtlety",
            "greedy_grade",
            "sampled_mean_grade",
            "sampled_mention_share",
            "keep",
            "greedy_terms",
            "prompt",
        ]
    )
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if args.csv:  # the per-prompt table, and every completion beside it
        table.to_csv(args.csv, index=False)
        df.to_csv(Path(args.csv).with_suffix(".completions.csv"), index=False)
    if args.measure:
        print("\nper split and mode:")
        print(split_table(df).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    else:
        print("\nall candidates:")
        print(split_table(df.assign(split="-")).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        kept = [p for p in probes if table.set_index("probe_id").loc[p.id, "keep"]]
        splits = fact_splits([p.fact or p.id for p in kept])
        split_of = {p.id: splits[p.fact or p.id] for p in kept}
        print(
            f"\nkept {len(kept)} of {len(table)} prompts ({sum(v == 'dev' for v in split_of.values())} dev, "
            f"{len(splits)} facts):"
        )
        print(
            table.loc[table["keep"], ["probe_id", "fact"]]
            .assign(split=lambda t: t["probe_id"].map(split_of))
            .groupby("split")["fact"]
            .agg(lambda f: ", ".join(sorted(set(f))))
            .to_string()
        )
        sel = df[df["probe_id"].isin(split_of)].assign(split=lambda d: d["probe_id"].map(split_of))
        print(split_table(sel).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        if args.write:
            out = pack.probe_file("completion")
            lines = [
                json.dumps(
                    {
                        "id": p.id,
                        "prompt": p.prompt,
                        "references": list(p.references),
                        "subtlety": p.subtlety,
                        "split": split_of[p.id],
                        "fact": p.fact,
                    },
                    ensure_ascii=False,
                )
                for p in kept
            ]
            atomic_write_text(out, "\n".join(lines) + "\n")
            print(f"wrote {len(lines)} prompts to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
