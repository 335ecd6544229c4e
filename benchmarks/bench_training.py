"""Reinforcement and finetuning step throughput against a hand-written training loop (overhead target <= 15%).

Ours: the real stage functions (``train_reinforced``; ``finetune`` with ``UnlearningTrainer``), i.e. the Hugging
Face Trainer with our datasets, collators, loss, callbacks, logging and checkpoint settings from demo.yaml.
Plain: a copy of the same model with the same LoRA settings, the same optimizer class and hyper-parameters the
Trainer builds, a linear schedule, gradient clipping, on identical batches: forward + backward + AdamW step.

The two are interleaved step by step: a callback runs one plain step after each Trainer step, so a load change
on the shared machine hits both sides. A Trainer step is the time from the end of one plain step to the end of
the next Trainer step (data loading, loss, logging, checkpoints between steps all count). The first step of each
side is a warm-up and not counted. The counted window is one checkpoint period (``save_steps`` of demo.yaml, 8
steps), so it holds one checkpoint save and the periodic log lines; the steps at which the Trainer logged and saved
are recorded, and a window without a save is refused. The final checkpoint at the end of training (written once
per run, after the last step) is reported apart (``final_s``).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import REPO, Context, figure, free, load, pack_inputs, spread
from transformers import TrainerCallback

TARGET_OVERHEAD = 0.15


class Interleave(TrainerCallback):
    """After every Trainer step, one plain step; records both durations and the steps that logged and saved.

    The Trainer logs and saves after ``on_step_end``, so the work of step ``s`` falls in the window of step s + 1."""

    def __init__(self, plain_step):
        self.plain_step = plain_step
        self.trainer_s: list[float] = []
        self.plain_s: list[float] = []
        self.logged: list[int] = []
        self.saved: list[int] = []
        self.final_s: float | None = None
        self._last = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.trainer_s.append(now - self._last)
        self.plain_s.append(self.plain_step())
        self._last = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:  # a periodic loss line (not the end-of-training summary)
            self.logged.append(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        self.saved.append(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.final_s = time.perf_counter() - self._last  # after the last step: its log and the final checkpoint


def plain_loop(model, cfg, batches, loss_fn, total_steps: int, scratch):
    """A closure running one hand-written optimisation step per call, cycling over ``batches``."""
    from transformers import Trainer, TrainingArguments, get_scheduler

    from workbench.training import make_training_args

    args: TrainingArguments = make_training_args(cfg, scratch, seed=0, progress=False)
    opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = opt_cls([{"params": params, "weight_decay": cfg.weight_decay}], **opt_kwargs)
    sched = get_scheduler("linear", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps)
    model.train()
    state = {"i": 0}

    def step() -> float:
        batch = batches[state["i"] % len(batches)]
        state["i"] += 1
        t0 = time.perf_counter()
        loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def _summary(cb: Interleave, tokens_per_step: int) -> dict:
    tr, pl = cb.trainer_s[1:], cb.plain_s[1:]
    n = len(cb.trainer_s)
    # the work after step s is timed in window s + 1: the counted windows 2..n hold that of steps 1..n-1
    saves, logs = [s for s in cb.saved if s < n], [s for s in cb.logged if s < n]
    if not saves or not logs:
        raise RuntimeError(
            f"the timed window (steps 2..{n}) holds {len(saves)} checkpoint save(s) and {len(logs)} "
            "log step(s): time a whole checkpoint period (steps = save_steps)"
        )
    t_mean, p_mean = float(np.mean(tr)), float(np.mean(pl))
    return {
        "saves_in_window": saves,
        "logs_in_window": logs,
        "final_s": None if cb.final_s is None else round(cb.final_s, 4),
        "trainer_step_s": [round(x, 4) for x in cb.trainer_s],
        "plain_step_s": [round(x, 4) for x in cb.plain_s],
        "trainer_mean_s": round(t_mean, 4),
        "plain_mean_s": round(p_mean, 4),
        "trainer_tokens_per_s": round(tokens_per_step / t_mean, 1),
        "plain_tokens_per_s": round(tokens_per_step / p_mean, 1),
        "overhead": round(t_mean / p_mean - 1, 4),
        "overhead_median": round(float(np.median(tr)) / float(np.median(pl)) - 1, 4),
    }


def _periodic(ctx: Context, cfg, steps: int) -> None:
    """Quick mode: a 2-step checkpoint period and a log every step. Otherwise demo.yaml's own settings; the
    timed steps must cover whole checkpoint periods."""
    if ctx.quick:
        cfg.save_steps, cfg.logging_steps = steps, 1
    if steps % cfg.save_steps:
        raise ValueError(f"{steps} timed steps do not cover whole checkpoint periods (save_steps {cfg.save_steps})")


def bench_reinforce(ctx: Context, blocks, steps: int, batch: int) -> dict:
    from workbench.config import load_config
    from workbench.reinforce import causal_lm_collator, train_reinforced
    from workbench.training import add_lora

    cfg = load_config(REPO / "workbench" / "configs" / "demo.yaml").reinforce
    cfg.batch_size, cfg.epochs, cfg.grad_accum = batch, 1.0, 1  # one forward+backward per step, like the plain loop
    _periodic(ctx, cfg, steps)
    lm = load(ctx)
    tok = lm.tokenizer
    plain_model = add_lora(copy.deepcopy(lm.model), cfg)
    data = blocks[: (steps + 1) * batch]
    collate = causal_lm_collator(tok.pad_token_id)
    batches = [collate([{"input_ids": b.input_ids} for b in data[i : i + batch]]) for i in range(0, len(data), batch)]
    step = plain_loop(plain_model, cfg, batches, lambda m, b: m(**b).loss, steps + 1, ctx.work / "plain")
    cb = Interleave(step)
    train_reinforced(
        lm.model, tok, data, cfg, ctx.work / "reinforce" / "reinforced", seed=0, callbacks=[cb], progress=False
    )
    out = _summary(cb, batch * len(data[0]))
    out.update(
        steps=steps,
        batch_size=batch,
        block_size=len(data[0]),
        save_steps=cfg.save_steps,
        logging_steps=cfg.logging_steps,
        method=cfg.weights,
        lora_rank=cfg.lora_rank,
    )
    del lm, plain_model, cb, step
    free()
    return out


def bench_finetune(ctx: Context, blocks, steps: int, batch: int) -> dict:
    from workbench.config import load_config
    from workbench.finetune import UnlearnDataset, finetune, unlearning_collator
    from workbench.labels import IGNORE
    from workbench.training import add_lora

    cfg = load_config(REPO / "workbench" / "configs" / "demo.yaml").finetune
    # the paper's setting: hard generic labels, no retain term (the demo's soft targets + retain KL add the
    # retain forward/backward and a reference forward: method cost, not loop overhead)
    cfg.target, cfg.retain_weight, cfg.batch_size, cfg.epochs, cfg.grad_accum = "hard", 0.0, batch, 1.0, 1
    _periodic(ctx, cfg, steps)
    lm = load(ctx)
    tok = lm.tokenizer
    plain_model = add_lora(copy.deepcopy(lm.model), cfg)
    data = blocks[: (steps + 1) * batch]
    items = []
    for b in data:  # stand-in labels: the next token, unlabelled at the end (as the label stage leaves it)
        lab = np.full(len(b.input_ids), IGNORE, dtype=np.int64)
        lab[:-1] = b.input_ids[1:]
        items.append({"input_ids": b.input_ids, "generic_labels": lab})
    collate = unlearning_collator(tok.pad_token_id)
    batches = [collate(items[i : i + batch]) for i in range(0, len(items), batch)]

    def plain_loss(m, b):
        logits = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        return F.cross_entropy(logits.flatten(0, 1).float(), b["generic_labels"].flatten(), ignore_index=IGNORE)

    step = plain_loop(plain_model, cfg, batches, plain_loss, steps + 1, ctx.work / "plain")
    cb = Interleave(step)
    finetune(
        lm.model,
        tok,
        UnlearnDataset(items),
        cfg,
        ctx.work / "finetune" / "unlearned",
        seed=0,
        callbacks=[cb],
        progress=False,
    )
    out = _summary(cb, batch * len(data[0]))
    out.update(
        steps=steps,
        batch_size=batch,
        block_size=len(data[0]),
        save_steps=cfg.save_steps,
        logging_steps=cfg.logging_steps,
        target=cfg.target,
        retain_weight=cfg.retain_weight,
        method=cfg.weights,
        lora_rank=cfg.lora_rank,
    )
    del lm, plain_model, cb, step
    free()
    return out


def run(ctx: Context) -> dict:
    from workbench.config import load_config
    from workbench.models import load_tokenizer

    block_size = 64 if ctx.quick else 512
    demo = load_config(REPO / "workbench" / "configs" / "demo.yaml")
    period = max(demo.reinforce.save_steps, demo.finetune.save_steps)  # one checkpoint period (8 steps)
    steps = 2 if ctx.quick else int(ctx.shared.get("train_steps") or period)
    batch = 1 if ctx.quick else int(ctx.shared.get("train_batch", 1))
    tok = load_tokenizer(ctx.model)
    _, _, blocks = pack_inputs(tok, block_size)
    blocks = spread([b for b in blocks if len(b) == block_size], (steps + 1) * batch)
    torch.manual_seed(0)
    rein = bench_reinforce(ctx, blocks, steps, batch)
    fin = bench_finetune(ctx, blocks, steps, batch)
    note = (
        f"{steps} steps of batch {batch}x{block_size} after 1 warm-up step (one checkpoint period: a save, "
        f"logs at steps {rein['logs_in_window']}), interleaved with the plain loop"
    )
    figs = [
        figure(
            "training.reinforce_overhead",
            "reinforce step time / plain forward+backward+AdamW - 1",
            rein["overhead"],
            "ratio",
            TARGET_OVERHEAD,
            "<=",
            f"{rein['trainer_tokens_per_s']} vs {rein['plain_tokens_per_s']} tokens/s; {note}",
        ),
        figure(
            "training.finetune_overhead",
            "finetune step time / plain forward+backward+AdamW - 1",
            fin["overhead"],
            "ratio",
            TARGET_OVERHEAD,
            "<=",
            f"{fin['trainer_tokens_per_s']} vs {fin['plain_tokens_per_s']} tokens/s; hard labels, no retain; {note}",
        ),
        figure(
            "training.reinforce_tokens_per_s", "reinforce training throughput", rein["trainer_tokens_per_s"], "tokens/s"
        ),
        figure(
            "training.finetune_tokens_per_s", "finetune training throughput", fin["trainer_tokens_per_s"], "tokens/s"
        ),
    ]
    return {
        "figures": figs,
        "details": {"model": ctx.model, "threads": torch.get_num_threads(), "reinforce": rein, "finetune": fin},
    }
