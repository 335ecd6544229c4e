"""Notebook set-up: one setting picks the config, and every notebook shares one run directory.

The first cell of each notebook is::

    from workbench import notebook
    nb = notebook.setup("02_anchor_editing")

What the notebooks work on, first match wins:

- ``WORKBENCH_RUN=runs/demo`` (or ``setup(run=...)``): an existing run directory, with the config it was made
  with (its ``config.yaml``). After ``make demo`` the notebooks reuse its finished stages.
- ``WORKBENCH_CONFIG=my.yaml`` (or ``setup(config=...)``): any run config (its model, its pack or its own
  corpus, anchors, retain text and probes); the run directory is ``<runs>/<name>``, the one ``workbench run``
  uses, so the command line and the notebooks share their stages.
- neither: the demo's settings, read from ``workbench/configs/demo.yaml`` (the settings the README's
  result comes from), in ``<runs>/notebooks-embedded``; a notebook with settings of its own
  (:data:`NOTEBOOK_CONFIGS`: ``07_ground_truth`` works on the fictional pack) reads its config instead, in
  ``<runs>/<its name>``, the directory ``workbench run`` and the benchmark scripts use for that config.

``WORKBENCH_MODEL`` (or ``setup(model=...)``) replaces the config's model: ``tiny`` alone picks
``workbench/configs/tiny.yaml`` (a random 2-layer model: every step in seconds, numbers without meaning), or the
tiny config of a notebook with settings of its own;
with a config, the model is swapped and the run directory gets the model's name as a suffix.
``WORKBENCH_RUNS`` (default ``runs``) is where run directories go. Relative paths are looked up from the
working directory, then from its parents (JupyterLab runs a notebook in ``notebooks/``).

No silent retraining: :meth:`Notebook.run` with settings that would redo a stage already finished in the run
directory says which settings differ and writes a **variant** (``<run>/variants/<name>/``) instead, reusing the
stages the change does not affect; the earlier models stay. :meth:`Notebook.variants` lists them.

A curated anchor map saved by ``02_anchor_editing`` (``<run>/anchors.curated.json``) is used by the later
notebooks when it exists; :func:`setup` says so.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import (
    RunConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    read_config_mapping,
    rename_old_keys,
)
from workbench.errors import WorkbenchError
from workbench.rundir import STAGE_ARTIFACTS, RunDir

__all__ = [
    "ENV_MODEL",
    "ENV_RUNS",
    "ENV_CONFIG",
    "ENV_RUN",
    "DEMO_CONFIG",
    "NOTEBOOK_CONFIGS",
    "Notebook",
    "setup",
    "model_choice",
    "config_diff",
    "STAGE_ARTIFACTS",
]

ENV_MODEL = "WORKBENCH_MODEL"
ENV_RUNS = "WORKBENCH_RUNS"
ENV_CONFIG = "WORKBENCH_CONFIG"
ENV_RUN = "WORKBENCH_RUN"
_CONFIGS = Path(__file__).parent / "configs"
DEMO_CONFIG = _CONFIGS / "demo.yaml"  # the notebooks' default settings: the demo's, one source of truth
# notebooks whose settings are not the demo's: notebook -> (its config, the config for the tiny model)
NOTEBOOK_CONFIGS = {"07_ground_truth": ("ystrevane.yaml", "ystrevane_tiny.yaml")}

# STAGE_ARTIFACTS (workbench/rundir.py): what each stage leaves in the run directory; a variant links the ones it
# shares with its parent

_SHOWN: set[str] = set()  # messages already shown in this kernel (a warning appears once)


def model_choice() -> str | None:
    """The model set by ``$WORKBENCH_MODEL`` (None when unset)."""
    return (os.environ.get(ENV_MODEL) or "").strip() or None


def _slug(spec: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", spec).strip("-")[:limit] or "model"


def _find(path: str | os.PathLike, what: str) -> Path:
    """``path`` as given, else relative to a parent of the working directory (the repo root from notebooks/)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    for parent in list(Path.cwd().parents)[:2]:
        if (parent / p).exists():
            return (parent / p).resolve()
    raise WorkbenchError(f"{what} {path} does not exist (looked in {Path.cwd()} and its parents)")


def _relative(text: str) -> str:
    """Absolute paths in a message shortened: relative to the working directory, the repo, or the package."""
    pkg = Path(__file__).resolve().parent
    for base, prefix in ((Path.cwd(), ""), (pkg.parent, ""), (pkg, "workbench/")):
        text = text.replace(str(base) + os.sep, prefix)
    return text


def show_once(message: str) -> None:
    """Print a message unless this kernel already printed it; absolute paths shortened."""
    message = _relative(message)
    if message not in _SHOWN:
        _SHOWN.add(message)
        print(message)


def _run_log(message: str) -> None:
    """The Run's log in a notebook: paths relative; a warning only once per kernel."""
    if message.startswith("warning"):
        show_once(message)
    else:
        print(_relative(message))


def _variant_name(diff: list[tuple[str, object, object]]) -> str:
    parts = []
    for key, _, value in diff:
        if key == "name":
            continue
        shown = Path(value).name if isinstance(value, str) and os.sep in value else value
        parts.append(f"{key.split('.')[-1]}={shown}")
    name = _slug("_".join(parts) or "variant")
    if len(name) >= 60:  # long diffs: a short readable head and a hash of the whole
        import hashlib

        name = name[:48] + "-" + hashlib.sha256(repr(diff).encode()).hexdigest()[:8]
    return name


def _dry_run(cfg: RunConfig, run_dir: Path):
    """A Run that reads inputs and computes fingerprints without touching ``run_dir``."""
    from workbench.run import Run

    class _DryRun(Run):
        def _check_dir(self, update: bool) -> None:  # writes nothing
            pass

    return _DryRun(copy.deepcopy(cfg), run_dir, log=None)


@dataclass
class Notebook:
    """What a notebook works with: the config, the shared run directory, and shortcuts."""

    name: str  # the notebook, e.g. '02_anchor_editing'
    model: str  # the model spec ('tiny', 'embedded', a folder, a hub id)
    cfg: RunConfig  # the run config (edit a copy and pass it to run() to try other settings)
    run_dir: Path  # the shared run directory
    messages: list[str] = field(default_factory=list)
    source: str = "demo"  # where the settings come from: 'demo', 'tiny', 'config <path>', 'run <dir>'

    @property
    def curated_anchors_path(self) -> Path:
        """Where 02_anchor_editing saves the curated map."""
        return RunDir(self.run_dir).curated_anchors

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    @staticmethod
    def relative(path: str | os.PathLike) -> str:
        """A path as the notebook shows it: relative to the working directory or the repository."""
        return _relative(str(Path(path).resolve()) if Path(path).is_absolute() else str(path))

    # -- runs and variants ------------------------------------------------------------------------------------
    def place(self, cfg: RunConfig | None = None, variant: str | None = None) -> Path:
        """The directory a run with ``cfg`` goes to: the shared run directory, unless that would redo a stage
        finished there with other settings; then a variant (printing which settings differ)."""
        cfg = cfg or self.cfg
        if variant:
            return RunDir(self.run_dir).variant(_slug(variant)).path
        stored = RunDir(self.run_dir).config
        if not stored.is_file():
            return self.run_dir
        old = rename_old_keys(read_config_mapping(stored), source=str(stored))  # a run made before a key's rename
        diff = config_diff(old, config_to_dict(cfg))
        if not diff:
            return self.run_dir
        from workbench.run import STAGES

        dry = _dry_run(cfg, self.run_dir)
        redo = [
            s
            for s in STAGES
            if (rec := dry.stage_record(s)) is not None and rec.get("fingerprint") != dry.fingerprint(s)
        ]
        if not redo:
            return self.run_dir  # only unfinished stages change: the run directory takes the new settings
        target = RunDir(self.run_dir).variant(_variant_name(diff)).path
        shown = "; ".join(f"{k}: {_short(a)} → {_short(b)}" for k, a, b in diff[:8]) + (" …" if len(diff) > 8 else "")
        show_once(
            f"settings differ from the finished run in {self.run_dir} ({shown}): "
            f"they would redo {', '.join(redo)}, so this run goes to the variant {target}; "
            f"the earlier {'models stay' if 'finetune' in redo or 'reinforce' in redo else 'results stay'}"
        )
        return target

    def run(
        self,
        callbacks: list | None = None,
        progress: bool = True,
        cfg: RunConfig | None = None,
        variant: str | None = None,
    ):
        """A :class:`~workbench.run.Run` with the notebook's settings (or ``cfg``). Finished stages are reused;
        settings that would redo one go to a variant directory (see :meth:`place`), named ``variant`` if given."""
        from workbench.run import Run

        cfg = copy.deepcopy(cfg or self.cfg)
        target = self.place(cfg, variant)
        if target != self.run_dir:
            _link_shared_stages(cfg, self.run_dir, target)
        return Run(cfg, target, update=True, progress=progress, callbacks=callbacks, log=_run_log)

    def variants(self) -> dict[str, Path]:
        """The run directory and its variants that hold an unlearned model: ``{name: folder of the model}``
        (the shared run is ``'unlearned'``; each variant ``'unlearned: <variant>'``)."""
        found, here = {}, RunDir(self.run_dir)
        if here.unlearned.is_dir():
            found["unlearned"] = here.unlearned
        for d in sorted(here.variants.iterdir()) if here.variants.is_dir() else []:
            model = RunDir(d).unlearned
            if model.is_dir() and not model.is_symlink():
                found[f"unlearned: {d.name}"] = model
        return found

    def export_report(self, path: str | os.PathLike | None = None, run_report: bool = True) -> Path:
        """Write the run's report as one self-contained HTML file (default ``<run>/report.html``): settings,
        stage times, labels, the before/after table and chart, per-probe results and the variants. With
        ``run_report``, the report stage runs first when the run has an unlearned model and no report yet."""
        from workbench.report_html import export_report

        if run_report and self.cfg.report.enabled:
            run = self.run()
            if run.is_done("finetune") and not run.is_done("report"):
                run.report()
        out = export_report(self.run_dir, path)
        print(f"report: {self.relative(out)} ({out.stat().st_size / 1024:.0f} KiB, self-contained HTML)")
        return out

    def report_table(self, run=None):
        """The run's report table, as README and report.html give it (split named in the title, intervals, the
        generic reference): the report stage runs first when the run has an unlearned model and no report yet
        (reused when it has one). Displays as HTML in a notebook cell."""
        from IPython.display import HTML

        from workbench.report_html import report_table_html

        run = run or self.run()
        if not run.cfg.report.enabled:
            why = ", as on the tiny model, whose numbers mean nothing" if self.is_tiny else ""
            return HTML(
                f"<p>the report stage is off in this config (report.enabled: false{why}): no before/after "
                "table; <code>make demo</code> gives the README's table in runs/demo</p>"
            )
        if not run.is_done("finetune"):
            return HTML(
                f"<p>no unlearned model in {self.relative(run.dir)} yet: run the finetune stage "
                "(04_finetuning, or <code>workbench run</code>) for the before/after table</p>"
            )
        return HTML(report_table_html(run.report(), level=3))

    # -- data --------------------------------------------------------------------------------------------------
    def pack(self):
        """The target's data pack (corpus, anchors, retain text, probes)."""
        from workbench.pack import load_pack

        if self.cfg.target.pack is None:
            raise WorkbenchError(
                f"the config ({self.source}) names no pack, so it has no probes: set target.pack "
                "to a pack folder (`workbench packs new NAME --corpus DIR` writes one)"
            )
        return load_pack(self.cfg.target.pack)

    def probes(self, kind: str, split: str | None = None, limit: int | None = None) -> list:
        """The pack's probes of one kind (``probability``, ``completion``, ``collateral``, ``general``),
        of one split (``'dev'``, ``'heldout'``; ``None``: all), at most ``limit`` of them (8 on the tiny model).
        A pack without that probe file gives an empty list."""
        pack = self.pack()
        if not pack.has_probes(kind):
            show_once(f"the pack {pack.name} has no {kind} probes (pack.json, 'probes')")
            return []
        items = [p for p in pack.probes(kind) if split is None or p.split == split]
        if limit is None and self.is_tiny:
            limit = 8
        return items[:limit] if limit else items

    def __repr__(self) -> str:
        return "\n".join(self.messages)

    def _repr_html_(self) -> str:
        from workbench.widgets._common import esc

        return "<br>".join(esc(m) for m in self.messages)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _link_shared_stages(cfg: RunConfig, parent: Path, variant: Path) -> None:
    """Give a variant the parent's finished stages that its settings share (symlinked artifacts, copied records)."""
    from workbench.run import STAGES

    dry = _dry_run(cfg, variant)
    parent_run = _dry_run(cfg, parent)
    for stage in STAGES:
        mine = dry.stage_record(stage)
        if mine is not None and mine.get("fingerprint") != dry.fingerprint(stage):
            # a linked stage these settings redo: unlink it, so the redo writes here and not into the parent
            for art in STAGE_ARTIFACTS[stage]:
                if (variant / art).is_symlink():
                    (variant / art).unlink()
        rec = parent_run.stage_record(stage)
        if rec is None or rec.get("fingerprint") != dry.fingerprint(stage) or mine is not None:
            continue
        if not all((parent / a).exists() for a in STAGE_ARTIFACTS[stage][:1]):
            continue
        for art in STAGE_ARTIFACTS[stage]:
            src, dst = parent / art, variant / art
            if src.exists() and not dst.exists() and not dst.is_symlink():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(os.path.relpath(src, dst.parent), target_is_directory=src.is_dir())
        RunDir(variant).stages.mkdir(parents=True, exist_ok=True)
        shutil.copy2(RunDir(parent).stage_record(stage), RunDir(variant).stage_record(stage))


def _quiet_libraries() -> None:
    """Library chatter (deprecation notices, transformers' info and warnings) stays out of the cells."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\.")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|torch)\.")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    logging.getLogger("peft").setLevel(logging.ERROR)


def setup(
    name: str,
    model: str | None = None,
    runs_dir: str | os.PathLike | None = None,
    use_curated: bool = True,
    config: str | os.PathLike | RunConfig | None = None,
    run: str | os.PathLike | None = None,
) -> Notebook:
    """The config and run directory for a notebook (see the module docstring)."""
    _quiet_libraries()
    choice = (model or model_choice() or "").strip() or None
    root = Path(runs_dir or os.environ.get(ENV_RUNS) or "runs")
    run_path = run or os.environ.get(ENV_RUN) or None
    config = config if config is not None else (os.environ.get(ENV_CONFIG) or None)
    if run_path:
        run_dir = _find(run_path, f"{ENV_RUN}: run directory")
        stored = RunDir(run_dir).config
        if not stored.is_file():
            raise WorkbenchError(
                f"{ENV_RUN}: {run_dir} holds no config.yaml; give a run directory that "
                "`workbench run` or `make demo` made"
            )
        cfg = config_from_dict(read_config_mapping(stored), str(stored))
        source = f"run {run_dir}"
        if choice and choice != cfg.model:
            raise WorkbenchError(
                f"{ENV_MODEL}={choice} differs from the model of {run_dir} ({cfg.model}); "
                f"unset {ENV_MODEL}, or use {ENV_CONFIG} for another model"
            )
    else:
        if isinstance(config, RunConfig):
            cfg, source = copy.deepcopy(config), f"config {config.name}"
        elif config:
            path = _find(config, f"{ENV_CONFIG}: config")
            cfg, source = load_config(path), f"config {path}"
        elif name in NOTEBOOK_CONFIGS:
            own = NOTEBOOK_CONFIGS[name][1 if choice == "tiny" else 0]
            cfg, source = load_config(_CONFIGS / own), f"config workbench/configs/{own}"
        elif choice == "tiny":
            cfg, source = load_config(_CONFIGS / "tiny.yaml"), "tiny"
            cfg.name = "notebooks-tiny"
        else:
            cfg, source = load_config(DEMO_CONFIG), "demo"
            cfg.name = "notebooks-embedded"
        if choice and choice != cfg.model:
            cfg.model = choice
            cfg.name = (
                f"{cfg.name}-{_slug(Path(choice).name or choice)}"
                if source != "demo"
                else f"notebooks-{_slug(Path(choice).name or choice)}"
            )
        run_dir = root / cfg.name
    used = cfg.model
    what = {"demo": f"the demo's settings ({DEMO_CONFIG.name}: {_demo_summary(cfg)})", "tiny": "configs/tiny.yaml"}.get(
        source, source
    )
    msgs = [
        f"notebook {name}: model {used!r}"
        + (
            f" (a random tiny model: seconds per stage, numbers without meaning; unset {ENV_MODEL} for SmolLM2-135M)"
            if used == "tiny"
            else f" (set {ENV_MODEL}=tiny for a seconds-long dry run)"
        ),
        f"settings: {_relative(what)}",
        f"run directory: {_relative(str(run_dir))} (shared by the notebooks; finished stages are reused)",
    ]
    curated = RunDir(run_dir).curated_anchors
    if use_curated and curated.is_file():
        cfg.target.anchors = str(curated)
        msgs.append(f"anchor map: {_relative(str(curated))} (the curated map saved by 02_anchor_editing)")
    else:
        msgs.append(
            f"anchor map: the pack's ({cfg.target.pack})"
            if cfg.target.anchors is None
            else f"anchor map: {_relative(str(cfg.target.anchors))}"
        )
    nb = Notebook(name, used, cfg, run_dir, msgs, source)
    print(repr(nb))
    return nb


def _demo_summary(cfg: RunConfig) -> str:
    t, f = cfg.target, cfg.finetune
    return (
        f"{t.max_blocks or 'all'} blocks of {t.block_size} tokens, {f.target} targets"
        f"{f' T={f.temperature:g}' if f.target == 'soft' else ''}, α={f.alpha:g}, retain weight "
        f"{f.retain_weight:g}, lr {f.learning_rate:g}, {f.epochs:g} epochs"
    )
