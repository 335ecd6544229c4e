#!/usr/bin/env python
"""GPU check: label-generation and finetuning throughput and model-FLOPs utilisation (MFU) in bf16.

For a lent GPU machine (torch and transformers, no internet, small uploads): builds a randomly initialised
~1.1B-parameter Llama-style model from a config (TinyLlama shape: hidden 2048, 22 layers, 32 heads, 4 KV heads,
vocabulary 32000) in bf16 on CUDA, then measures through the workbench code:

- generic-label generation: ``workbench.labels.generate_labels`` with a LoRA ``ModelPair`` on synthetic aligned
  blocks (two forward passes per token + label math + parquet shards), against the raw two-forward bound;
- finetuning: the ``UnlearningTrainer`` path (``workbench.training.run_trainer``), LoRA and full weights.

MFU = model FLOPs per second / the device's peak dense bf16 FLOP/s, with N the parameters doing matmuls (all but
the input embedding): forward 2N per token (label generation: two forwards, 4N), full training 6N, LoRA training
4N (no weight gradients for frozen weights; the 6N figure is reported beside it). Attention FLOPs are left out
(about 4% at 512 tokens); the JSON also holds MFU with them. From the measured MFU it projects the paper's
setting, Llama-2-7b on ~4M tokens (label generation + finetuning, 1 epoch each) on one H100.

    python benchmarks/gpu_check.py                 # on the GPU machine (under 5 minutes); JSON to $OUT or --out
    python benchmarks/gpu_check.py --cpu-smoke     # tiny config on CPU in seconds: checks the code paths only

Needs torch and transformers; uses peft (LoRA), accelerate (Trainer) and pandas/pyarrow (label shards) when
present and says which parts it skipped when they are not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from workbench.io import atomic_write_text  # noqa: E402

# dense bf16 peak, TFLOP/s (no sparsity), by a substring of torch.cuda.get_device_name()
PEAK_TFLOPS = [
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("A10G", 70.0),
    ("L4", 121.0),
    ("A6000", 154.8),
    ("V100", 125.0),
]
H100_PEAK = 989.4e12
TARGETS = {"labels_mfu": 0.45, "finetune_mfu": 0.35}
# the paper's setting: Llama-2-7b (6.74B parameters; 6.61B without the input embedding) on ~4M tokens
LLAMA2_7B = {"params": 6.738e9, "matmul_params": 6.738e9 - 32000 * 4096, "layers": 32, "hidden": 4096}
PAPER_TOKENS = 4.0e6


def model_config(smoke: bool, layers: int | None):
    from transformers import LlamaConfig

    if smoke:
        return LlamaConfig(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=layers or 2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
        )
    return LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=layers or 22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    )


def build_model(config, device: torch.device, dtype: torch.dtype, seed: int = 0):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    model.config.pad_token_id = 0
    return model.eval()


def matmul_params(model) -> int:
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


def synthetic_aligned(n_blocks: int, seq: int, vocab: int, seed: int = 0):
    """Aligned blocks as the translation step makes them: ~5% of tokens changed, ~20% of positions unlabelled,
    8 suppressed tokens per block."""
    from workbench.corpus import Block
    from workbench.translate import AlignedBlock

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_blocks):
        ids = rng.integers(1, vocab, seq).astype(np.int64)
        trans = ids.copy()
        swap = rng.random(seq) < 0.05
        trans[swap] = rng.integers(1, vocab, int(swap.sum()))
        o2t = np.arange(seq, dtype=np.int64)
        o2t[rng.random(seq) < 0.2] = -1
        o2t[-1] = -1
        starts = np.sort(rng.choice(seq, 8, replace=False))
        suppress = [(int(s), int(trans[s])) for s in starts]
        offsets = np.zeros((seq, 2), dtype=np.int64)
        out.append(AlignedBlock(Block(i, ids, offsets, "", 0), "", trans, offsets, o2t, [], suppress, {}))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float, str]:
    if override_tflops:
        return override_tflops * 1e12, "given by --peak-tflops"
    if device.type != "cuda":
        return 1e12, "CPU smoke: nominal 1 TFLOP/s, MFU meaningless"
    name = torch.cuda.get_device_name(device)
    for key, tf in PEAK_TFLOPS:
        if key in name:
            return tf * 1e12, f"{name}: {tf} TFLOP/s dense bf16"
    return H100_PEAK, f"{name}: unknown, assumed H100 SXM {H100_PEAK / 1e12} TFLOP/s (pass --peak-tflops)"


def has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


# -- label generation ----------------------------------------------------------------------------------------
def bench_labels(config, device, dtype, args, work: Path, n_matmul: int, peak: float) -> dict:
    from workbench.model_pair import ModelPair, pad_batch

    model = build_model(config, device, dtype)
    if has("peft"):
        from workbench.training import TrainConfig, add_lora

        pm = add_lora(model, TrainConfig(lora_rank=16, lora_alpha=32))
        with torch.no_grad():
            for name, p in pm.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.01)
        pm.eval()
        pair, kind = ModelPair.from_peft(pm), "LoRA adapter toggled on one model"

        def raw(ids, mask, t_ids, t_mask):  # the bound: two raw forwards, logits left as they come
            pm(input_ids=ids, attention_mask=mask)
            with pm.disable_adapter():
                pm(input_ids=t_ids, attention_mask=t_mask)
    else:
        reinforced = build_model(config, device, dtype, seed=1)
        pair, kind = ModelPair.from_models(model, reinforced), "two models (no peft)"

        def raw(ids, mask, t_ids, t_mask):
            reinforced(input_ids=ids, attention_mask=mask)
            model(input_ids=t_ids, attention_mask=t_mask)

    seq, batch = args.seq, args.batch
    warm = synthetic_aligned(batch, seq, config.vocab_size, seed=1)
    aligned = synthetic_aligned(batch * args.label_batches, seq, config.vocab_size, seed=2)
    tokens = len(aligned) * seq

    @torch.inference_mode()
    def bound(blocks) -> float:
        sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(blocks), batch):
            b = blocks[i : i + batch]
            ids, mask = pad_batch([ab.block.input_ids for ab in b], 0, device)
            t_ids, t_mask = pad_batch([ab.trans_ids for ab in b], 0, device)
            raw(ids, mask, t_ids, t_mask)
        sync(device)
        return time.perf_counter() - t0

    bound(warm)
    t_bound = bound(aligned)  # measured again after the labels; the mean is used
    res = {
        "pair": kind,
        "tokens": tokens,
        "seq": seq,
        "batch": batch,
        "bound_tokens_per_s": tokens / t_bound,
        "bound_mfu": 4 * n_matmul * tokens / t_bound / peak,
    }
    if has("pandas") and has("pyarrow"):
        from workbench.labels import generate_labels

        kw = dict(
            alphas=[0.0, 1.0, 2.0, 5.0, 10.0],
            top_k=32,
            batch_size=batch,
            shard_blocks=batch * 4,
            pad_id=0,
            progress=False,
        )
        generate_labels(pair, warm, work / "labels_warm", fingerprint="w", **kw)
        sync(device)
        t0 = time.perf_counter()
        generate_labels(pair, aligned, work / "labels", fingerprint="m", **kw)
        sync(device)
        t_labels = time.perf_counter() - t0
        t_bound = (t_bound + bound(aligned)) / 2
        res.update(bound_tokens_per_s=tokens / t_bound, bound_mfu=4 * n_matmul * tokens / t_bound / peak)
        res.update(
            tokens_per_s=tokens / t_labels,
            mfu=4 * n_matmul * tokens / t_labels / peak,
            ratio_to_bound=t_bound / t_labels,
            seconds=t_labels,
            path="workbench.labels.generate_labels",
        )
    else:
        res.update(
            tokens_per_s=res["bound_tokens_per_s"],
            mfu=res["bound_mfu"],
            ratio_to_bound=None,
            path="raw two-forward bound only (pandas/pyarrow missing: no label shards)",
        )
    attn = 4 * 2 * config.num_hidden_layers * config.hidden_size * seq / 2  # causal QK^T and AV, two forwards
    res["mfu_with_attention"] = res["mfu"] * (4 * n_matmul + attn) / (4 * n_matmul)
    pair = model = None  # freed before the next benchmark
    return res


# -- finetuning ------------------------------------------------------------------------------------------------
class _StepClock:
    """Synchronised wall time from the end of the warm-up steps to the end of the last step."""

    def __init__(self, device, warmup: int):
        self.device, self.warmup = device, warmup
        self.t0 = self.t1 = None
        self.steps = 0

    def step_end(self, step: int) -> None:
        if step == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()
        elif step > self.warmup:
            sync(self.device)
            self.t1 = time.perf_counter()
            self.steps = step - self.warmup


def _dataset(n: int, seq: int, vocab: int, seed: int):
    from workbench.finetune import UnlearnDataset
    from workbench.labels import IGNORE

    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        ids = rng.integers(1, vocab, seq).astype(np.int64)
        lab = rng.integers(1, vocab, seq).astype(np.int64)
        lab[rng.random(seq) < 0.2] = IGNORE
        items.append({"input_ids": ids, "generic_labels": lab})
    return UnlearnDataset(items)


def bench_finetune(config, device, dtype, args, work: Path, n_matmul: int, peak: float, method: str) -> dict:
    from workbench.finetune import FinetuneConfig

    steps, warmup, batch, seq = args.train_steps, 2, args.batch, args.seq
    cfg = FinetuneConfig(
        weights=method,
        lora_rank=16,
        lora_alpha=32,
        learning_rate=1e-4,
        epochs=1.0,
        batch_size=batch,
        target="hard",
        retain_weight=0.0,
        save_steps=10**6,
        logging_steps=10**6,
        bf16=device.type == "cuda" or None,
    )
    model = build_model(config, device, dtype)
    clock = _StepClock(device, warmup)
    total = steps + warmup
    ds = _dataset(total * batch, seq, config.vocab_size, seed=3)
    if method == "lora":
        from workbench.training import add_lora

        model = add_lora(model, cfg)
    model.train()
    if has("accelerate"):
        from transformers import TrainerCallback

        from workbench.finetune import UnlearningTrainer, unlearning_collator
        from workbench.training import run_trainer

        class CB(TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                clock.step_end(state.global_step)
                control.should_save = False  # no final checkpoint (GBs of optimizer state for full weights)
                return control

        run_trainer(
            UnlearningTrainer,
            model,
            ds,
            unlearning_collator(0),
            cfg,
            work / f"ft_{method}",
            seed=0,
            callbacks=[CB()],
            progress=False,
            unlearn_cfg=cfg,
        )
        path = "UnlearningTrainer (workbench.training.run_trainer)"
    else:  # no accelerate: the Trainer cannot run; a plain loop with the same loss
        from workbench.finetune import unlearning_collator, unlearning_loss

        collate = unlearning_collator(0)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        for step in range(1, total + 1):
            b = {k: v.to(device) for k, v in collate([ds[i] for i in range((step - 1) * batch, step * batch)]).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss, _ = unlearning_loss(model, b, cfg)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            clock.step_end(step)
        path = "plain loop with workbench.finetune.unlearning_loss (accelerate missing)"
    secs = clock.t1 - clock.t0
    tok_s = clock.steps * batch * seq / secs
    per_token = 6 * n_matmul if method == "full" else 4 * n_matmul
    res = {
        "method": method,
        "path": path,
        "steps": clock.steps,
        "batch": batch,
        "seq": seq,
        "seconds": secs,
        "tokens_per_s": tok_s,
        "mfu": per_token * tok_s / peak,
        "mfu_6n": 6 * n_matmul * tok_s / peak,
        "flops_per_token": per_token,
    }
    attn = 3 * 4 * config.num_hidden_layers * config.hidden_size * seq / 2
    res["mfu_with_attention"] = (per_token + attn) * tok_s / peak
    if device.type == "cuda":
        res["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model
    return res


# -- projection ------------------------------------------------------------------------------------------------
def project(labels_mfu: float | None, ft: dict[str, dict]) -> dict:
    """Wall time of the paper's setting on one H100 SXM at the measured MFUs (assumed to carry over to 7B)."""
    n = LLAMA2_7B["matmul_params"]
    out = {
        "model": "Llama-2-7b",
        "tokens": PAPER_TOKENS,
        "device": "one H100 SXM (989 TFLOP/s dense bf16)",
        "assumption": "the MFU measured on the ~1.1B proxy carries over to 7B (larger matmuls usually do better)",
    }
    if labels_mfu:
        out["labels_s"] = 4 * n * PAPER_TOKENS / (labels_mfu * H100_PEAK)
    for method, r in ft.items():
        if r and r.get("mfu"):
            out[f"finetune_{method}_s"] = (6 if method == "full" else 4) * n * PAPER_TOKENS / (r["mfu"] * H100_PEAK)
    # the workbench default is LoRA; the reinforced model (LoRA, 1 epoch on the same tokens) costs as much again
    main = "lora" if "finetune_lora_s" in out else ("full" if "finetune_full_s" in out else None)
    if main and "labels_s" in out:
        out["finetune_method"] = main
        out["total_s"] = out["labels_s"] + out[f"finetune_{main}_s"]
        out["total_hours"] = out["total_s"] / 3600
        reinforce = out.get("finetune_lora_s", out[f"finetune_{main}_s"])
        out["total_with_reinforce_hours"] = (out["total_s"] + reinforce) / 3600
        if "finetune_full_s" in out:
            out["total_full_finetune_hours"] = (out["labels_s"] + out["finetune_full_s"]) / 3600
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU in seconds (checks the code paths)")
    p.add_argument("--out", default=None, help="folder for gpu_check.json (default: $OUT, else benchmarks/results)")
    p.add_argument("--seq", type=int, default=None, help="tokens per block (default 512; smoke 32)")
    p.add_argument("--batch", type=int, default=None, help="blocks per batch (default 16; smoke 2)")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default 22 = ~1.1B parameters)")
    p.add_argument("--label-batches", type=int, default=None, help="measured label batches (default 16; smoke 2)")
    p.add_argument("--train-steps", type=int, default=None, help="measured training steps (default 12; smoke 2)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, if not in the table")
    p.add_argument("--skip-full", action="store_true", help="measure LoRA finetuning only")
    args = p.parse_args(argv)
    smoke = args.cpu_smoke
    args.seq = args.seq or (32 if smoke else 512)
    args.batch = args.batch or (2 if smoke else 16)
    args.label_batches = args.label_batches or (2 if smoke else 16)
    args.train_steps = args.train_steps or (2 if smoke else 12)
    t_start = time.perf_counter()
    if not smoke and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or pass --cpu-smoke", file=sys.stderr)
        return 2
    device = torch.device("cpu" if smoke else "cuda")
    dtype = torch.bfloat16
    if smoke:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    peak, peak_note = peak_flops(device, args.peak_tflops)
    config = model_config(smoke, args.layers)
    probe = build_model(config, torch.device("meta"), dtype)
    n_total = sum(p.numel() for p in probe.parameters())
    n_matmul = matmul_params(probe)
    del probe
    env = {m: has(m) for m in ("peft", "accelerate", "pandas", "pyarrow")}
    result = {
        "schema": "whp-gpu-check/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpu_smoke": smoke,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_flops": peak,
        "peak_note": peak_note,
        "dtype": "bfloat16",
        "torch": torch.__version__,
        "packages": env,
        "params": n_total,
        "matmul_params": n_matmul,
        "config": {
            k: getattr(config, k)
            for k in (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
            )
        },
        "targets": TARGETS,
    }
    print(
        f"device {result['device']} ({peak_note}); model {n_total / 1e9:.3f}B parameters "
        f"({n_matmul / 1e9:.3f}B in matmuls); packages {env}",
        flush=True,
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        result["labels"] = bench_labels(config, device, dtype, args, work, n_matmul, peak)
        print(
            f"labels: {result['labels']['tokens_per_s']:,.0f} tokens/s, MFU {result['labels']['mfu']:.1%} "
            f"(bound {result['labels']['bound_mfu']:.1%})",
            flush=True,
        )
        ft = {}
        methods = ["lora"] if args.skip_full else ["lora", "full"]
        for method in methods:
            if method == "lora" and not env["peft"]:
                ft[method] = None
                continue
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            ft[method] = bench_finetune(config, device, dtype, args, work, n_matmul, peak, method)
            print(
                f"finetune {method}: {ft[method]['tokens_per_s']:,.0f} tokens/s, MFU {ft[method]['mfu']:.1%}",
                flush=True,
            )
    primary = ft.get("full") or ft.get("lora")
    result["finetune"] = {**(primary or {}), "by_method": ft}
    result["projection"] = project(result["labels"]["mfu"], ft)
    result["pass"] = {
        "labels_mfu": result["labels"]["mfu"] >= TARGETS["labels_mfu"],
        "finetune_mfu": bool(primary and primary["mfu"] >= TARGETS["finetune_mfu"]),
    }
    result["seconds"] = time.perf_counter() - t_start
    out_dir = Path(args.out or os.environ.get("OUT") or REPO / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu_check.json"
    atomic_write_text(path, json.dumps(result, indent=2, default=float) + "\n")
    pr = result["projection"]
    print(
        f"\nlabel generation MFU {result['labels']['mfu']:.1%} (target {TARGETS['labels_mfu']:.0%}), "
        f"finetuning MFU {primary['mfu'] if primary else float('nan'):.1%} ({(primary or {}).get('method')}, "
        f"target {TARGETS['finetune_mfu']:.0%})"
    )
    if "total_s" in pr:
        print(
            f"projected Llama-2-7b, {PAPER_TOKENS / 1e6:.0f}M tokens, one H100: labels {pr['labels_s'] / 60:.1f} min + "
            f"finetune ({pr['finetune_method']}) {pr['finetune_' + pr['finetune_method'] + '_s'] / 60:.1f} min = "
            f"{pr['total_hours']:.2f} h ({pr['total_with_reinforce_hours']:.2f} h with the reinforced model's training)"
        )
    print(f"{result['seconds']:.0f} s; results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
