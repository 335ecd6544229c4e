"""What the benchmarks share: the run context, figures with targets, timers, and the Harry Potter pack inputs.

Every benchmark module exposes ``run(ctx: Context) -> dict`` returning ``{"figures": [...], "details": {...}}``;
``run_all.py`` calls them one after another in one process. A figure is a plain dict (see :func:`figure`).
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: `python benchmarks/run_all.py`
    sys.path.insert(0, str(REPO))

__all__ = ["REPO", "Context", "figure", "timed", "median", "pack_inputs", "load", "free", "set_threads"]


@dataclass
class Context:
    """Settings of one benchmark run and what one benchmark hands to the next."""

    quick: bool = False  # tiny model, few tokens: seconds, for tests (figures are not representative)
    model: str = "embedded"  # model spec of the measurements ('tiny' in quick mode)
    threads: int = 1  # torch intra-op threads
    work: Path = Path(".")  # a scratch folder, removed at the end
    skip_demo: bool = False  # do not run the demo (it takes ~10 minutes)
    demo_run_dir: Path | None = None  # an existing demo run directory to read stage timings from
    demo_config: Path | None = None  # the config the demo benchmark runs (default: demo.yaml; quick: tiny.yaml)
    shared: dict[str, Any] = field(default_factory=dict)  # hand-offs between benchmarks (e.g. a labels folder)
    log: Callable[[str], None] = print


def figure(
    key: str,
    name: str,
    value: float | None,
    unit: str,
    target: float | None = None,
    op: str | None = None,
    note: str = "",
) -> dict:
    """One reported number. ``op`` is '>=' or '<=' against ``target``; ``pass`` is None without a target."""
    ok = None
    if value is not None and target is not None and op is not None:
        ok = bool(value >= target) if op == ">=" else bool(value <= target)
    return {
        "key": key,
        "name": name,
        "value": None if value is None else float(value),
        "unit": unit,
        "target": target,
        "op": op,
        "pass": ok,
        "note": note,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(n)))


def pack_inputs(tokenizer, block_size: int = 512):
    """(documents, anchor map, blocks) of the bundled Harry Potter pack, cut for ``tokenizer``."""
    from workbench.anchors import load_anchor_map
    from workbench.corpus import make_blocks, read_documents
    from workbench.pack import load_pack

    pack = load_pack("harry_potter")
    docs = read_documents(pack.corpus_dir, "target corpus")
    amap = load_anchor_map(pack.anchors_path)
    return docs, amap, make_blocks(docs, tokenizer, block_size)


def spread(items: list, n: int) -> list:
    """``n`` evenly spaced items (every document type, as the demo's spread_blocks)."""
    if n >= len(items):
        return list(items)
    step = (len(items) - 1) / max(1, n - 1)
    return [items[round(i * step)] for i in range(n)]


def load(ctx: Context):
    """The measured model (fp32 on CPU here; as the workbench loads it)."""
    from workbench.models import load_model

    return load_model(ctx.model)


def free() -> None:
    gc.collect()


def env_info() -> dict:
    import platform

    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        import accelerate
        import peft

        info["accelerate"], info["peft"] = accelerate.__version__, peft.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:  # pragma: no cover
        info["cpu"] = platform.processor()
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    return info
