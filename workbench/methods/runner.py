"""A run's ``finetune`` stage for the methods beside WHP: what each needs from the run, and what it writes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from workbench.distribution import process_device
from workbench.errors import WorkbenchError
from workbench.methods import MethodRun, rmu_layer
from workbench.methods.train import LOSSES, layer_output, rmu, rmu_control_vector, train_method, with_overrides
from workbench.methods.wrappers import system_prefix_ids, write_descriptor

__all__ = ["train_for_run", "describe_for_run", "rmu_coefficient"]


@torch.no_grad()
def rmu_coefficient(model: torch.nn.Module, layer: int, blocks: list, pad_id: int, scale: float, n: int = 4) -> float:
    """Adaptive RMU's c: ``scale`` x the mean norm of the layer's activations on the first ``n`` target blocks."""
    from workbench.pair import pad_batch

    device = next(model.parameters()).device
    ids, mask = pad_batch(blocks[:n], pad_id, device)
    h = layer_output(model, layer, ids, mask)
    return float(scale * h[mask.bool()].float().norm(dim=-1).mean())


def train_for_run(run: "MethodRun") -> tuple[torch.nn.Module, dict]:
    c = run.cfg
    section = getattr(c.methods, c.method)
    train_cfg = with_overrides(c.finetune, section)
    base = run.load_baseline()
    target = [b.input_ids for b in run.blocks]
    weight = getattr(section, "retain_weight", 0.0)
    retain = [b.input_ids for b in run.retain_blocks] if weight > 0 else None
    if weight > 0 and not retain:
        raise WorkbenchError(
            f"methods.{c.method}.retain_weight > 0 needs retain text: set target.retain or use a pack with retain/"
        )
    extra: dict = {}
    reference = None
    layers = None
    if c.method == "rmu":
        layer = rmu_layer(c.methods, base.model.config.num_hidden_layers)
        coeff = section.steering_coeff or rmu_coefficient(
            base.model, layer, target, base.tokenizer.pad_token_id, section.steering_scale
        )
        control = rmu_control_vector(base.model.config.hidden_size, coeff, section.seed)
        extra.update(layer=layer, steering_coeff=round(coeff, 4))
        if section.full_rank:  # the authors' parameters: full-rank down-projections of layers l-2..l
            layers = list(range(max(0, layer - 2), layer + 1))
            train_cfg = dataclasses.replace(train_cfg, method="full")

        def make_loss(model):
            return rmu(section, layer, control)
    else:
        if c.method == "npo" and section.reference != "baseline":
            from workbench.models import load_model

            reference = load_model(
                section.reference, device=process_device(c.device), dtype=c.dtype
            ).model.requires_grad_(False)

        def make_loss(model):
            return LOSSES[c.method](section)

    run.log(
        f"[finetune] method {c.method}: {len(target)} target blocks, "
        f"{len(retain or [])} retain blocks, lr {train_cfg.learning_rate}, {train_cfg.epochs} epochs ({train_cfg.method})"
    )
    model, finished = train_method(
        base.model,
        base.tokenizer,
        target,
        retain,
        train_cfg,
        make_loss,
        run.dir / "unlearned",
        c.seed,
        run.callbacks,
        run.progress,
        reference=reference,
        trainable_layers=layers,
        tracking=run.stage_tracking("finetune"),
        constant_lr=c.method == "rmu" and section.constant_lr,
    )
    if not finished:
        raise KeyboardInterrupt(f"{c.method} training stopped; rerun to resume from the last checkpoint")
    return model, extra


def _spec_for_descriptor(spec: str) -> str:
    """A model spec that still resolves from another working directory (paths made absolute)."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if (path.exists() or spec.startswith((".", "~", os.sep))) else spec


def describe_for_run(run: "MethodRun") -> tuple[torch.nn.Module, dict]:
    from workbench.io import atomic_dir
    from workbench.models import load_model

    c = run.cfg
    out = run.dir / "unlearned"
    base_spec = _spec_for_descriptor(c.model)
    if c.method == "whp_test_time":
        run._require("reinforce", "finetune")
        reinforced = c.reinforce.path or "../reinforced"  # relative to unlearned/: the run directory can move
        data = {
            "method": c.method,
            "base": base_spec,
            "reinforced": str(reinforced),
            "alpha": c.methods.whp_test_time.alpha,
        }
    elif c.method == "prompt":
        title = run.pack.title if run.pack is not None else "the target text"
        system = c.methods.prompt.system.replace("{title}", title)
        if not system_prefix_ids(run.tokenizer, system):
            raise WorkbenchError("methods.prompt.system: the instruction is empty")
        data = {"method": c.method, "base": base_spec, "system": system}
    else:
        raise WorkbenchError(f"method {c.method!r} writes no descriptor")
    with atomic_dir(out) as tmp:
        write_descriptor(tmp, data)
        run.tokenizer.save_pretrained(tmp)  # so tools that read the folder's tokenizer find it
    model = load_model(str(out), device=process_device(c.device), dtype=c.dtype).model
    return model, {}
