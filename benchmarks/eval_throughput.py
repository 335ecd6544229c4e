"""Eval throughput against raw forward throughput, on the same padded batches, in one run.

    python benchmarks/eval_throughput.py                      # embedded model, target >= 0.70
    python benchmarks/eval_throughput.py --model tiny --items 5 --probes 10

*Eval* is the whole scoring path of probe familiarity and multiple-choice utility: tokenization, batching,
padding, the forward pass, log-softmax/gather and building the result tables (``score_probes`` and
``score_mc``). *Raw* is the forward pass eval needs and nothing else, written out: ``model(input_ids,
attention_mask, position_ids, logits_to_keep=k)`` on exactly the batches that eval builds, where ``k`` is the
longest continuation of the batch (eval pads left, so every continuation ends at the last position and only
the last ``k`` positions need the vocabulary projection). Both count the same non-padding tokens, so
``ratio = eval tokens/s / raw tokens/s`` is the share of the time eval spends in that forward pass; it cannot
exceed 1 by more than timing noise. (A forward with logits at every position, as a plain ``model(...)`` call
gives, would be an unfair reference: it projects every context position onto the vocabulary, work eval skips.)
Results go to ``benchmarks/results/eval_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workbench.eval.loglikelihood import LoglikelihoodConfig, model_max_length, plan_batches  # noqa: E402
from workbench.eval.probes import probe_requests, score_probes  # noqa: E402
from workbench.eval.utility import default_evaldata_dir, load_mc_task, mc_requests, score_mc  # noqa: E402
from workbench.models import load_model  # noqa: E402
from workbench.pack import NextTokenProbe, load_pack  # noqa: E402

TASKS = ("piqa", "hellaswag", "arc_easy", "winogrande", "boolq")


def workload_probes(pack_name: str | None, n: int, evaldata: Path) -> list[NextTokenProbe]:
    """The pack's next-token probes when it has them, else prompts cut from WikiText-2 (prompt -> next word)."""
    probes: list[NextTokenProbe] = []
    if pack_name:
        try:
            pack = load_pack(pack_name)
            for kind in ("probability", "collateral", "general"):
                if pack.has_probes(kind):
                    probes += pack.probes(kind)
        except Exception as exc:  # the pack may still be incomplete: fall back to text probes
            print(f"(pack {pack_name!r} not usable: {exc}; using text probes)")
            probes = []
    if len(probes) < n:
        text = (evaldata / "wikitext2_test_raw.txt").read_text(encoding="utf-8").splitlines()
        for line in text:
            words = line.split()
            if len(words) < 20 or line.startswith(" ="):
                continue
            cut = 8 + len(probes) % 10
            probes.append(NextTokenProbe(f"wt-{len(probes)}", " ".join(words[:cut]), (" " + words[cut],), kind="text"))
            if len(probes) >= n:
                break
    return probes[:n]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="model spec (default embedded)")
    ap.add_argument("--pack", default="harry_potter", help="pack whose probes are scored (falls back to text probes)")
    ap.add_argument(
        "--evaldata", default=None, help="benchmark folder (default: the subsets shipped in workbench/evaldata)"
    )
    ap.add_argument("--probes", type=int, default=100, help="number of probes")
    ap.add_argument("--items", type=int, default=30, help="items per multiple-choice task")
    ap.add_argument("--tasks", default=",".join(TASKS), help="multiple-choice tasks")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats of each side (the median is kept)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_throughput.json"), help="result JSON")
    args = ap.parse_args(argv)

    evaldata = Path(args.evaldata) if args.evaldata else default_evaldata_dir()
    lm = load_model(args.model)
    model, tok = lm.model, lm.tokenizer
    cfg = LoglikelihoodConfig(batch_size=args.batch_size, progress=False)
    probes = workload_probes(args.pack, args.probes, evaldata)
    tasks = [load_mc_task(t, limit=args.items, evaldata_dir=evaldata) for t in args.tasks.split(",") if t]

    # The exact batches eval builds: one planning per score_* call, as in score_probes / score_mc.
    max_len = model_max_length(model)
    pad = tok.pad_token_id or 0
    batches = plan_batches(probe_requests(tok, probes)[0], cfg, pad, max_len)
    for task in tasks:
        batches += plan_batches(mc_requests(tok, task), cfg, pad, max_len)
    tokens = sum(b.n_tokens for b in batches)
    padded = sum(b.input_ids.numel() for b in batches)
    device = next(model.parameters()).device

    keep = [max(len(c) for c in b.continuations) for b in batches]  # the positions eval reads logits at

    def raw() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b, k in zip(batches, keep):
                _ = model(
                    input_ids=b.input_ids.to(device),
                    attention_mask=b.attention_mask.to(device),
                    position_ids=b.position_ids.to(device),
                    use_cache=False,
                    logits_to_keep=k,
                ).logits
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def evaluate() -> float:
        t0 = time.perf_counter()
        score_probes(lm, probes, cfg)
        for task in tasks:
            score_mc(lm, task, cfg)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    raw()  # warm-up over every batch shape (allocator, kernels), so the first timed side pays no first-use cost
    raw_times, eval_times = [], []
    for i in range(max(1, args.repeats)):  # interleaved, so load changes on a shared machine hit both sides,
        first, second = (raw, evaluate) if i % 2 == 0 else (evaluate, raw)  # in alternating order
        t_first, t_second = first(), second()
        raw_times.append(t_first if first is raw else t_second)
        eval_times.append(t_second if first is raw else t_first)
    t_raw, t_eval = statistics.median(raw_times), statistics.median(eval_times)
    result = {
        "model": args.model,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "probes": len(probes),
        "tasks": {t.name: len(t.items) for t in tasks},
        "batches": len(batches),
        "batch_size": args.batch_size,
        "tokens": tokens,
        "padded_tokens": padded,
        "logit_positions": sum(k * b.input_ids.shape[0] for b, k in zip(batches, keep)),
        "reference": "forward with logits_to_keep (the positions eval reads), same batches",
        "raw_seconds": raw_times,
        "eval_seconds": eval_times,
        "raw_tokens_per_s": tokens / t_raw,
        "eval_tokens_per_s": tokens / t_eval,
        "ratio": t_raw / t_eval,
        "target": 0.70,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"model {args.model} on {device}: {len(batches)} batches, {tokens} tokens ({padded} padded)")
    print(
        f"raw forward (logits where eval reads them): {result['raw_tokens_per_s']:.0f} tokens/s   eval: {result['eval_tokens_per_s']:.0f} tokens/s"
    )
    print(f"ratio eval/raw = {result['ratio']:.2f} (target >= 0.70)   -> {out}")
    return result


def run(ctx) -> dict:
    """Adapter for benchmarks/run_all.py (``run(ctx) -> {"figures": [...], "details": {...}}``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import figure

    argv = ["--model", ctx.model, "--out", str(Path(ctx.work) / "eval_throughput.json")]
    if ctx.quick:
        argv += ["--probes", "6", "--items", "2", "--tasks", "piqa,winogrande", "--repeats", "1"]
    res = main(argv)
    fig = figure(
        "eval_throughput_ratio",
        "eval throughput / raw forward throughput (same padded batches, same logits kept)",
        res["ratio"],
        "x",
        res["target"],
        ">=",
        note=f"{res['tokens']} tokens, {res['batches']} batches",
    )
    return {"figures": [fig], "details": res}


if __name__ == "__main__":
    main()
