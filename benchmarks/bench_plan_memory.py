"""`workbench plan`'s memory estimate against the measured peak of one training step (CPU, fp32).

One LoRA (or full-weight) training step of the reinforce stage's computation (forward with the causal-LM loss,
backward, AdamW step) runs once to create the optimizer states, then once more under PyTorch's ``MemTracker``,
which follows every tensor (parameters, gradients, optimizer states, activations, temporaries) and reports the
peak. The estimate is :func:`workbench.plan.estimate_stages` for the same settings on the ``cpu`` device
(fp32 weights and compute).

    python benchmarks/bench_plan_memory.py --model embedded --batch 2 --block 512          # about a minute
    python benchmarks/bench_plan_memory.py --model embedded --batch 2 --block 512 --checkpointing
    python benchmarks/bench_plan_memory.py --model tiny                                    # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from workbench.config import ReinforceConfig, RunConfig, TargetConfig  # noqa: E402
from workbench.plan import estimate_stages, model_shape  # noqa: E402
from workbench.training import add_lora, gradient_checkpointing  # noqa: E402


class _NoHook:
    def remove(self) -> None:
        pass


def _tracker():
    """PyTorch's MemTracker, taught that frozen parameters (a LoRA model's base weights) take no gradient hook."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class Tracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            for p in module.parameters():
                if not p.requires_grad:
                    self._param_to_grad_hook_handles.setdefault(p, (_NoHook(), _NoHook()))
            return super()._track_module_params_and_buffers(module, install_grad_hooks)

    return Tracker()


def measured_step_peak(model: torch.nn.Module, input_ids: torch.Tensor, checkpointing: bool = False) -> dict:
    """Peak bytes of tensors during one training step (after a first step made the optimizer states)."""
    from contextlib import nullcontext

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    mask = torch.ones_like(input_ids)

    def step():
        loss = model(input_ids=input_ids, attention_mask=mask, labels=input_ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with gradient_checkpointing(model) if checkpointing else nullcontext():
        step()
        tracker = _tracker()
        tracker.track_external(model, opt)
        with tracker, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*module hierarchy tracking.*")
            step()
    snap = tracker.get_tracker_snapshot("peak")
    dev = next(iter(snap.values()))
    parts = {str(k).split(".")[-1].lower(): float(v) for k, v in dev.items()}
    return {"peak_bytes": parts.pop("total"), "parts": parts}


def compare(
    model_spec: str, batch: int, block: int, rank: int, method: str = "lora", checkpointing: bool = False, seed: int = 0
) -> dict:
    """The plan's estimate for the reinforce stage against the measured peak, on CPU in fp32."""
    from workbench.models import load_model

    torch.manual_seed(seed)
    cfg = RunConfig(
        model=model_spec,
        dtype="float32",
        target=TargetConfig(block_size=block),
        reinforce=ReinforceConfig(
            batch_size=batch, lora_rank=rank, weights=method, gradient_checkpointing=checkpointing
        ),
    )
    shape = model_shape(model_spec)
    est = next(s for s in estimate_stages(cfg, shape, "cpu") if s.stage == "reinforce")
    loaded = load_model(model_spec, device="cpu", dtype="float32")
    model = add_lora(loaded.model, cfg.reinforce) if method == "lora" else loaded.model
    ids = torch.randint(0, shape.vocab, (batch, block))
    t0 = time.perf_counter()
    got = measured_step_peak(model, ids, checkpointing)
    return {
        "model": model_spec,
        "batch": batch,
        "block": block,
        "rank": rank,
        "method": method,
        "gradient_checkpointing": checkpointing,
        "estimate_bytes": est.total,
        "estimate_parts": {
            "weights": est.weights,
            "gradients": est.gradients,
            "optimizer": est.optimizer,
            "activations": est.activations,
        },
        "measured_bytes": got["peak_bytes"],
        "measured_parts": got["parts"],
        "ratio": est.total / got["peak_bytes"],
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--out", default=None, help="append the result to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    res = compare(args.model, args.batch, args.block, args.rank, args.method, args.checkpointing)
    mib = 2**20
    print(
        f"{res['model']} {res['method']} batch {res['batch']} x {res['block']}, checkpointing "
        f"{res['gradient_checkpointing']}: estimate {res['estimate_bytes'] / mib:,.0f} MiB, measured peak "
        f"{res['measured_bytes'] / mib:,.0f} MiB, ratio {res['ratio']:.3f}"
    )
    print("  estimate: " + ", ".join(f"{k} {v / mib:,.0f}" for k, v in res["estimate_parts"].items()))
    print("  measured at the peak: " + ", ".join(f"{k} {v / mib:,.0f}" for k, v in res["measured_parts"].items()))
    if args.out:
        path = Path(args.out)
        rows = json.loads(path.read_text()) if path.is_file() else []
        rows.append(res)
        path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
