"""Embedded model load: first conversion (GGUF -> fp32 safetensors cache) against a cached load (target <= 3 s).

Each load runs in a fresh process (``WORKBENCH_CACHE`` pointing at a scratch folder, so the first load really
converts); the figure is the ``load_model`` call, import time of torch/transformers reported beside it.
Quick mode saves and reloads the tiny model instead (same ``load_model`` folder path, no conversion).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import REPO, Context, figure

TARGET_CACHED_S = 3.0

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch, transformers
from workbench.models import load_model, tiny_model
import_s = time.perf_counter() - t0
out = []
for action in sys.argv[1:]:
    mode, target = action.split("=", 1)
    t1 = time.perf_counter()
    if mode == "save-tiny":
        lm = tiny_model()
        lm.model.save_pretrained(target)
        lm.tokenizer.save_pretrained(target)
    else:
        lm = load_model(target)
    t2 = time.perf_counter()
    with torch.inference_mode():
        lm.model(input_ids=torch.tensor([[1, 2, 3]]))
    out.append({"import_s": import_s, "load_s": t2 - t1, "first_forward_s": time.perf_counter() - t2})
print("BENCH_JSON " + json.dumps(out))
"""


def _child(actions: list[str], env: dict) -> list[dict]:
    """Run ``mode=target`` actions in one fresh process; one timing dict per action (import time in the first)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *actions], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON "))
    return json.loads(line[len("BENCH_JSON ") :])


def run(ctx: Context) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("OMP_NUM_THREADS", str(ctx.threads))
    if ctx.quick:  # one process: build + save the tiny model, then load it back (seconds)
        folder = str(ctx.work / "tiny-model")
        first, cached0 = _child([f"save-tiny={folder}", f"load={folder}"], env)
        cached = [cached0]
        what = "tiny model: build + save, then load_model(folder), in one process"
    else:  # a fresh process for each load
        env["WORKBENCH_CACHE"] = str(ctx.work / "cache")
        first = _child(["load=embedded"], env)[0]
        cached = [_child(["load=embedded"], env)[0] for _ in range(2)]
        what = "embedded SmolLM2-135M: GGUF conversion, then cached fp32 safetensors, fresh process each"
    best = min(c["load_s"] for c in cached)
    details = {"what": what, "first": first, "cached": cached}
    figs = [
        figure(
            "load.cached_s",
            "model load, cached (fresh process)",
            round(best, 3),
            "s",
            TARGET_CACHED_S,
            "<=",
            f"import of torch/transformers {cached[0]['import_s']:.1f} s on top",
        ),
        figure(
            "load.first_conversion_s",
            "model load, first conversion",
            round(first["load_s"], 3),
            "s",
            note=f"{first['load_s'] / best:.1f}x the cached load",
        ),
    ]
    return {"figures": figs, "details": details}
