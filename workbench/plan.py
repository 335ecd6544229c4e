"""``workbench plan CONFIG``: the memory each stage of a run needs, and the launch that fits, before any GPU job.

The model is built from its ``config.json`` alone on PyTorch's meta device (shapes, no weights), so a 70B plan
takes a second on a laptop. For each stage the estimate adds:

- **weights**: every parameter in the loaded dtype (``dtype: auto`` is bf16 on a GPU), plus what the stage holds
  beside them (the reinforced model of a full-weight reinforcement, a frozen reference copy);
- **gradients** and **optimizer states** (AdamW: two per trained parameter) for the trained parameters only: the
  LoRA adapter (kept in fp32) or all weights (fp32 where the finetuning stage trains fp32 master weights);
- **activations** at the configured batch and block size: per decoder layer, the tensors a Llama-style layer
  keeps for the backward pass (two RMSNorms, q/k/v with rotary embeddings, the attention output, the gated MLP;
  see :func:`layer_activation_bytes`), only each layer's input under gradient checkpointing plus one layer
  recomputed; and the vocabulary-wide tensors of the loss (logits, their fp32 copy, log-softmax, and their
  gradients), which dominate for small models with large vocabularies.

Inference stages (score, labels, report) hold the model pair and a batch of logits of both models. The launch
that fits: one GPU when the largest stage fits ``--gpu-memory`` with 10% headroom, else with ``--gpus N`` data
parallel (each GPU holds a whole copy), FSDP (weights, gradients and optimizer states sharded over N), or
DeepSpeed ZeRO-3 with the optimizer offloaded to CPU, in that order (``configs/accelerate/``). Tokens per second
come from a measured MFU (``benchmarks/results/gpu_check.json``) when there is one, never from a guess.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import RunConfig, TrainConfig
from workbench.errors import WorkbenchError
from workbench.rundir import RunDir

__all__ = [
    "ModelShape",
    "StageMemory",
    "model_shape",
    "config_json_path",
    "estimate_stages",
    "layer_activation_bytes",
    "training_memory",
    "choose_launch",
    "format_plan",
    "measured_mfu",
    "add_plan_parser",
]

GiB = 2**30
HEADROOM = 0.9  # use at most 90% of a GPU's memory (allocator fragmentation, CUDA context)
MFU_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gpu_check.json"
ACCELERATE_DIR = "configs/accelerate"
_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}


@dataclass
class ModelShape:
    """What the estimate needs of a model, read from its config on the meta device."""

    params: int  # every parameter once (tied embeddings counted once)
    matmul_params: int  # parameters in matrix multiplications (all but the input embedding, unless tied)
    lora_params_per_rank: int  # LoRA parameters at rank 1 on every linear layer but the output head
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    model_type: str = ""

    def lora_params(self, rank: int) -> int:
        return self.lora_params_per_rank * rank


def config_json_path(spec: str) -> Path:
    """The ``config.json`` of a model spec, without loading weights (the embedded model's converted copy, a
    folder, a run directory's ``unlearned/``, or a hub id already in the local cache)."""
    from workbench.models import EMBEDDED_NAMES

    if spec in EMBEDDED_NAMES:
        from workbench.models import embedded_model_dir

        return embedded_model_dir() / "config.json"
    path = Path(spec).expanduser()
    for candidate in (path / "config.json", RunDir(path).unlearned / "config.json"):
        if candidate.is_file():
            return candidate
    if path.exists() or path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        raise WorkbenchError(
            f"plan: model {spec!r} has no config.json (a .gguf file or a folder without one); the plan "
            "reads the model's config.json: point `model:` to a Hugging Face model folder"
        )
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec, "config.json")
    except Exception:  # an id the hub library refuses: the same answer as not cached
        cached = None
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    raise WorkbenchError(
        f"plan: no config.json for model {spec!r} (not a local folder, and not in the local hub cache); "
        "the plan never downloads: put the model's config.json in a folder and point `model:` to it"
    )


def _read_config(spec: str):
    from transformers import AutoConfig

    if spec == "tiny":
        from workbench.models import tiny_model

        return tiny_model().model.config
    path = config_json_path(spec)
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return AutoConfig.from_pretrained(str(path.parent))
    except (OSError, ValueError, KeyError) as exc:
        raise WorkbenchError(f"plan: {path} is not a readable model config: {str(exc).splitlines()[0]}") from exc


def model_shape(spec_or_config: Any) -> ModelShape:
    """Build the model on the meta device (no memory, no weights) and count its parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    config = _read_config(spec_or_config) if isinstance(spec_or_config, str) else spec_or_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = model.get_output_embeddings() is not None and model.get_output_embeddings().weight is emb
    matmul = params - (0 if tied else emb.numel())
    out_head = model.get_output_embeddings()
    lora = sum(
        m.in_features + m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not out_head
    )
    g = lambda *names: next((int(getattr(config, n)) for n in names if getattr(config, n, None) is not None), 0)
    heads = g("num_attention_heads", "n_head")
    return ModelShape(
        params=params,
        matmul_params=matmul,
        lora_params_per_rank=lora,
        hidden=g("hidden_size", "n_embd", "d_model"),
        intermediate=g("intermediate_size", "n_inner", "ffn_dim"),
        layers=g("num_hidden_layers", "n_layer"),
        heads=heads,
        kv_heads=g("num_key_value_heads") or heads,
        vocab=g("vocab_size"),
        tied=tied,
        model_type=str(getattr(config, "model_type", "")),
    )


# -- the estimate ---------------------------------------------------------------------------------------------------
@dataclass
class StageMemory:
    stage: str
    what: str  # one line: what the stage holds
    weights: float
    gradients: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    tokens: int = 0  # tokens per step (per process)
    flops_per_token: float = 0.0  # model FLOPs per token (2N per forward, 4N LoRA training, 6N full)
    trains: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def layer_activation_bytes(s: ModelShape, act: int, full: bool = False) -> float:
    """Bytes per token one decoder layer keeps for the backward pass (``act``: bytes of the compute dtype).

    Two RMSNorms (each: its fp32 input and its output; with trained norm weights also the normalised value), q,
    k and v after the rotary embedding as attention keeps them (grouped-query k and v at their own width), the
    attention output and o_proj's input, and the MLP's gate, up, SiLU and product. Measured against PyTorch's
    own accounting on the embedded model (benchmarks/bench_plan_memory.py)."""
    h, i = s.hidden, s.intermediate
    kv = h * s.kv_heads // max(1, s.heads)
    norms = 2 * (4 + (4 if full else 0) + act) * h
    attention = act * (3 * h + 2 * kv)
    mlp = 4 * act * i
    return norms + attention + mlp


def _loss_bytes_per_token(s: ModelShape, act: int) -> float:
    """The vocabulary-wide tensors of a next-token loss per token at its peak: the logits (compute dtype), their
    fp32 copy (none when already fp32) and two fp32 tensors of the log-softmax's forward and backward."""
    return s.vocab * (act + (4 if act != 4 else 0) + 2 * 4)


def training_memory(
    s: ModelShape,
    t: TrainConfig,
    weight_bytes: int,
    act: int,
    tokens: int,
    fp32_master: bool = False,
    extra_weights: float = 0.0,
    loss_tokens: int | None = None,
    extra_loss_bytes: float = 0.0,
) -> tuple[float, float, float, float]:
    """(weights, gradients, optimizer states, activations) in bytes of one training step of ``tokens`` tokens.

    ``fp32_master``: full-weight training holds fp32 weights (and so fp32 gradients and states);
    ``extra_weights``: bytes of models held beside (reference copies); ``loss_tokens``: tokens whose logits the
    loss keeps (default ``tokens``); ``extra_loss_bytes``: further vocabulary-wide bytes (a retain KL term)."""
    if t.weights == "lora":
        trained = s.lora_params(t.lora_rank)
        weights = s.params * weight_bytes + trained * 4
        grads, states = trained * 4, 2 * trained * 4
    else:
        pbytes = 4 if fp32_master else weight_bytes
        weights = s.params * pbytes
        grads, states = s.params * pbytes, 2 * s.params * pbytes
    per_layer = layer_activation_bytes(s, act, full=t.weights != "lora") * tokens
    if t.gradient_checkpointing:  # each layer's input kept, one layer recomputed at a time
        layers = s.layers * s.hidden * act * tokens + per_layer
    else:
        layers = s.layers * per_layer
    loss = _loss_bytes_per_token(s, act) * (tokens if loss_tokens is None else loss_tokens) + extra_loss_bytes
    return weights + extra_weights, grads, states, layers + loss


def _dtype_bytes(cfg: RunConfig, device: str) -> int:
    if cfg.dtype == "auto":
        return 2 if device == "gpu" else 4
    if cfg.dtype not in _BYTES:
        raise WorkbenchError(f"dtype: unknown {cfg.dtype!r}; use float32, bfloat16, float16 or auto")
    return _BYTES[cfg.dtype]


def _act_bytes(t: TrainConfig, device: str, weight_bytes: int) -> int:
    bf16 = t.bf16 if t.bf16 is not None else device == "gpu"
    return 2 if (bf16 or weight_bytes == 2) else 4


def estimate_stages(cfg: RunConfig, s: ModelShape, device: str = "gpu") -> list[StageMemory]:
    """The memory of every stage the run's method runs, on one process (``device``: 'gpu' or 'cpu')."""
    from workbench.methods import registry

    spec = registry.get(cfg.method)
    wb = _dtype_bytes(cfg, device)
    n_m = s.matmul_params
    out: list[StageMemory] = []
    for stage in spec.stages:
        if stage == "reinforce":
            if cfg.reinforce.path:
                out.append(StageMemory(stage, "an existing reinforced model (reinforce.path): no training", 0.0))
                continue
            r = cfg.reinforce
            tokens = r.batch_size * cfg.target.block_size
            act = _act_bytes(r, device, wb)
            w, g, o, a = training_memory(s, r, wb, act, tokens)
            out.append(
                StageMemory(
                    stage,
                    f"{r.weights} on {r.batch_size} x {cfg.target.block_size} tokens"
                    + (", gradient checkpointing" if r.gradient_checkpointing else ""),
                    w,
                    g,
                    o,
                    a,
                    tokens,
                    (4 if r.weights == "lora" else 6) * n_m,
                    True,
                )
            )
        elif stage in ("score", "labels") or (stage == "report" and spec.uses_reinforced and not spec.trains):
            batch = cfg.scoring.batch_size if stage == "score" else cfg.labels.batch_size
            if stage == "report":
                batch = 1
            tokens = batch * cfg.target.block_size
            pair = s.params * wb + (
                s.lora_params(cfg.reinforce.lora_rank) * 4 if cfg.reinforce.weights == "lora" else s.params * wb
            )
            # both models' logits in fp32, the label math's copies of them, one layer's transient tensors
            act = tokens * (4 * 4 * s.vocab + 2 * wb * (s.hidden + s.intermediate))
            out.append(
                StageMemory(
                    stage,
                    f"the model pair, forward passes of {batch} x {cfg.target.block_size} tokens",
                    pair,
                    activations=act,
                    tokens=tokens,
                    flops_per_token=4 * n_m,
                )
            )
        elif stage == "finetune" and "finetune" not in spec.own_stages:  # the run's own: WHP's on its labels
            out.append(_whp_finetune(cfg, s, wb, device))
        elif stage == "finetune" and spec.trains:
            out.append(_method_finetune(cfg, s, wb, device))
        elif stage == "finetune":
            out.append(StageMemory(stage, f"{cfg.method}: writes a descriptor, no training", 0.0))
        elif stage == "report":
            tokens = 2048  # the perplexity windows (2 x 1024) and a batch of probes
            act = tokens * (s.vocab * (wb + 4 + 4) + 2 * wb * (s.hidden + s.intermediate))
            out.append(
                StageMemory(
                    stage,
                    "one model at a time, probes and perplexity windows",
                    s.params * wb,
                    activations=act,
                    tokens=tokens,
                    flops_per_token=2 * n_m,
                )
            )
    return out


def _whp_finetune(cfg: RunConfig, s: ModelShape, wb: int, device: str) -> StageMemory:
    f = cfg.finetune
    tokens = f.batch_size * cfg.target.block_size
    act = _act_bytes(f, device, wb)
    retain_tokens = f.batch_size * cfg.target.retain_block_size if f.retain_weight > 0 else 0
    ref = s.params * wb if (f.weights == "full" and f.retain_weight > 0) else 0.0
    # the labelled rows are gathered (one more fp32 copy); the retain KL adds the model's and the reference's
    # fp32 log-softmax over the retain tokens
    extra = tokens * s.vocab * 4 + retain_tokens * s.vocab * (act + 5 * 4)
    w, g, o, a = training_memory(
        s,
        f,
        wb,
        act,
        tokens + retain_tokens,
        fp32_master=(f.weights == "full"),
        extra_weights=ref,
        loss_tokens=tokens,
        extra_loss_bytes=extra,
    )
    what = (
        f"{f.weights} on {f.batch_size} x {cfg.target.block_size} tokens, {f.target} labels"
        + (f", retain KL on {f.batch_size} x {cfg.target.retain_block_size}" if retain_tokens else "")
        + (", gradient checkpointing" if f.gradient_checkpointing else "")
    )
    return StageMemory(
        "finetune", what, w, g, o, a, tokens + retain_tokens, (4 if f.weights == "lora" else 6) * s.matmul_params, True
    )


def _method_finetune(cfg: RunConfig, s: ModelShape, wb: int, device: str) -> StageMemory:
    from workbench.methods import registry
    from workbench.methods.base import with_overrides

    section = getattr(cfg.methods, cfg.method)
    shape = registry.get(cfg.method).training_shape(section, s.layers)
    f = with_overrides(cfg.finetune, section)
    tokens = f.batch_size * cfg.target.block_size
    act = _act_bytes(f, device, wb)
    retain = f.batch_size * cfg.target.retain_block_size if getattr(section, "retain_weight", 0.0) > 0 else 0
    # full-weight training keeps a frozen copy for reference terms; NPO may name another reference model
    ref_weights = s.params * wb if f.weights == "full" else 0.0
    if shape.extra_reference:  # NPO with a reference model of its own
        ref_weights += s.params * wb
    if shape.layers_run is not None:  # RMU: no logits, the layers up to the steered one, on target and retain
        shallow = ModelShape(**{**s.__dict__, "layers": shape.layers_run, "vocab": 0})
        w, g, o, a = training_memory(shallow, f, wb, act, tokens + retain, extra_weights=ref_weights, loss_tokens=0)
        w = s.params * wb + (w - shallow.params * wb)  # every layer's weights are still loaded
    else:
        extra = tokens * s.vocab * (wb + 4) if shape.reference_logits else 0.0  # the reference's logits (no graph)
        w, g, o, a = training_memory(s, f, wb, act, tokens + retain, extra_weights=ref_weights, extra_loss_bytes=extra)
    what = (
        f"{cfg.method}, {f.weights} on {f.batch_size} x {cfg.target.block_size} tokens"
        + (f" + retain {f.batch_size} x {cfg.target.retain_block_size}" if retain else "")
        + (", gradient checkpointing" if f.gradient_checkpointing else "")
    )
    return StageMemory(
        "finetune", what, w, g, o, a, tokens + retain, (4 if f.weights == "lora" else 6) * s.matmul_params, True
    )


# -- launch choice and throughput ----------------------------------------------------------------------------------
def choose_launch(stages: list[StageMemory], gpus: int, gpu_gib: float) -> list[str]:
    """One line per stage: the launch that fits it, or what to change."""
    budget = gpu_gib * GiB * HEADROOM
    lines = []
    for st in stages:
        if st.total == 0:
            lines.append(f"{st.stage}: nothing to place")
            continue
        if st.total <= budget:
            if st.trains and gpus > 1:
                lines.append(
                    f"{st.stage}: fits one GPU; data parallel on {gpus}: "
                    f"accelerate launch --config_file {ACCELERATE_DIR}/ddp_multi_gpu.yaml"
                )
            else:
                lines.append(
                    f"{st.stage}: fits one GPU ({st.total / GiB:.1f} of {gpu_gib:g} GiB): plain `workbench` "
                    f"or {ACCELERATE_DIR}/single_gpu.yaml"
                )
            continue
        if not st.trains:
            lines.append(
                f"{st.stage}: does NOT fit one GPU ({st.total / GiB:.1f} GiB > {budget / GiB:.1f}); this stage "
                "runs in one process: lower its batch_size, or use GPUs with more memory"
            )
            continue
        sharded = (st.weights + st.gradients + st.optimizer) / gpus + st.activations
        offload = (st.weights + st.gradients) / gpus + st.activations
        if gpus > 1 and sharded <= budget:
            lines.append(
                f"{st.stage}: FSDP over {gpus} GPUs ({sharded / GiB:.1f} GiB each): "
                f"accelerate launch --config_file {ACCELERATE_DIR}/fsdp.yaml --num_processes {gpus}"
            )
        elif gpus > 1 and offload <= budget:
            lines.append(
                f"{st.stage}: DeepSpeed ZeRO-3 over {gpus} GPUs with the optimizer offloaded to CPU "
                f"({offload / GiB:.1f} GiB each; offload_optimizer_device: cpu in "
                f"{ACCELERATE_DIR}/deepspeed_zero3.yaml)"
            )
        else:
            lines.append(
                f"{st.stage}: does NOT fit {gpus} x {gpu_gib:g} GiB; lower batch_size, turn on "
                "gradient_checkpointing, use weights: lora, or more GPUs"
            )
    return lines


def measured_mfu(path: Path = MFU_FILE) -> dict | None:
    """MFUs measured on a GPU by benchmarks/gpu_check.py (None when there is no such measurement)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("cpu_smoke") or not data.get("peak_flops"):
        return None
    by = (data.get("finetune") or {}).get("by_method") or {}
    return {
        "device": data.get("device"),
        "peak_flops": float(data["peak_flops"]),
        "labels": (data.get("labels") or {}).get("mfu"),
        "lora": (by.get("lora") or {}).get("mfu"),
        "full": (by.get("full") or {}).get("mfu"),
    }


def _tokens_per_s(st: StageMemory, cfg: RunConfig, mfu: dict | None, gpus: int) -> str:
    if not st.tokens or not st.flops_per_token:
        return ""
    if mfu is None:
        return "no measured MFU"
    key = "labels" if not st.trains else (cfg.finetune.weights if st.stage == "finetune" else cfg.reinforce.weights)
    value = mfu.get(key)
    if not value:
        return "no measured MFU"
    per_gpu = value * mfu["peak_flops"] / st.flops_per_token
    n = gpus if st.trains else 1
    return f"{per_gpu * n:,.0f} tokens/s at MFU {value:.0%} ({mfu['device']})"


def format_plan(
    cfg: RunConfig, s: ModelShape, stages: list[StageMemory], gpus: int, gpu_gib: float, mfu: dict | None
) -> str:
    lines = [
        f"model {cfg.model} ({s.model_type}): {s.params / 1e9:.3f}B parameters ({s.params:,}), {s.layers} layers, "
        f"hidden {s.hidden}, intermediate {s.intermediate}, {s.heads} heads / {s.kv_heads} KV heads, "
        f"vocabulary {s.vocab}" + (", tied embeddings" if s.tied else ""),
        f"method {cfg.method}, dtype {cfg.dtype}"
        + (" (bf16 on a GPU)" if cfg.dtype == "auto" else "")
        + "; GiB per process",
        "",
    ]
    head = f"{'stage':<10} {'weights':>8} {'grads':>8} {'optim':>8} {'activ.':>8} {'total':>8}  tokens/s"
    lines += [head, "-" * len(head)]
    for st in stages:
        cells = [st.weights, st.gradients, st.optimizer, st.activations, st.total]
        lines.append(
            f"{st.stage:<10} " + " ".join(f"{v / GiB:8.2f}" for v in cells) + f"  {_tokens_per_s(st, cfg, mfu, gpus)}"
        )
        lines.append(f"{'':<10} {st.what}")
    lines += ["", f"launch ({gpus} GPU{'s' if gpus > 1 else ''} of {gpu_gib:g} GiB, {HEADROOM:.0%} usable):"]
    lines += ["  " + ln for ln in choose_launch(stages, gpus, gpu_gib)]
    if mfu is None:
        lines.append(
            "tokens/s: no measured MFU yet (run benchmarks/gpu_check.py on a GPU; it writes "
            "benchmarks/results/gpu_check.json)"
        )
    return "\n".join(lines)


def add_plan_parser(sub) -> None:
    sp = sub.add_parser(
        "plan",
        help="memory per stage and the launch that fits, from the model's config.json alone",
        description="Estimate each stage's GPU memory (weights, gradients, optimizer states, "
        "activations) from the model's config.json on the meta device, and pick a launch.",
    )
    sp.add_argument("config", help="YAML run config")
    sp.add_argument("--gpus", type=int, default=1, help="GPUs available (default 1)")
    sp.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    sp.set_defaults(func=_cmd_plan)


def _cmd_plan(args) -> int:
    from workbench.config import load_config

    if args.gpus < 1 or not (args.gpu_memory > 0 and math.isfinite(args.gpu_memory)):
        raise WorkbenchError("plan: --gpus must be at least 1 and --gpu-memory a positive number of GiB")
    cfg = load_config(args.config)
    shape = model_shape(cfg.model)
    stages = estimate_stages(cfg, shape, "gpu")
    print(format_plan(cfg, shape, stages, args.gpus, args.gpu_memory, measured_mfu()))
    return 0
