"""Experiment tracking: the training stages' losses through the Trainer's ``report_to``, and the run's config,
label statistics and before/after rows through the same trackers (accelerate's tracker classes).

``tracking.report_to`` in the run config names the trackers; null means TensorBoard when it is installed and
nothing otherwise. TensorBoard writes under ``<run>/tracking/``: one folder per training stage (``reinforce``,
``finetune``) and ``run/`` for the config, the labels and the report (``tensorboard --logdir <run>/tracking``).
The other trackers read their own settings (API keys, servers) from their usual environment variables; the
project name is ``tracking.project`` (else the run's name). Nothing here changes what a stage computes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import TRACKERS, TrackingConfig
from workbench.errors import WorkbenchError
from workbench.rundir import RunDir

__all__ = ["StageTracking", "resolve_trackers", "stage_tracking", "log_run", "flat_scalars"]

# the package each tracker needs (what `pip install` takes)
PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "trackio": "trackio",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
}
assert tuple(PACKAGES) == TRACKERS

# the project name, for trackers that read it from the environment during training
_PROJECT_ENV = {
    "wandb": "WANDB_PROJECT",
    "mlflow": "MLFLOW_EXPERIMENT_NAME",
    "comet_ml": "COMET_PROJECT_NAME",
    "clearml": "CLEARML_PROJECT",
    "swanlab": "SWANLAB_PROJECT",
}


def _installed(name: str) -> bool:
    if name == "tensorboard":  # the Trainer also writes through tensorboardX
        return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))
    return importlib.util.find_spec(PACKAGES[name]) is not None


def resolve_trackers(cfg: TrackingConfig) -> list[str]:
    """The trackers a run feeds: the configured ones (each must be known and installed), or by default
    TensorBoard where it is installed. Raises WorkbenchError naming the tracker and the fix."""
    cfg.validate()
    if cfg.report_to is None:
        return ["tensorboard"] if _installed("tensorboard") else []
    missing = [n for n in cfg.report_to if not _installed(n)]
    if missing:
        name = missing[0]
        raise WorkbenchError(
            f"tracking.report_to: {name!r} needs the {PACKAGES[name]} package, which is not installed; "
            f"`pip install {PACKAGES[name]}`, or remove it from tracking.report_to "
            f"(valid names: {', '.join(TRACKERS)})"
        )
    return list(dict.fromkeys(cfg.report_to))


@dataclass
class StageTracking:
    """Where one training stage reports: the trackers, the TensorBoard folder, the project and the run name."""

    report_to: list[str]
    log_dir: Path  # <run>/tracking/<stage>
    project: str
    run_name: str  # <run name>/<stage>

    def training_args(self) -> dict[str, Any]:
        """Keyword arguments of ``TrainingArguments``."""
        import dataclasses

        from transformers import TrainingArguments

        args = {"report_to": list(self.report_to) or "none", "run_name": self.run_name}
        if "project" in {f.name for f in dataclasses.fields(TrainingArguments)}:  # transformers >= 4.57
            args["project"] = self.project
        return args

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """The environment the Trainer's tracker callbacks read while it trains (TensorBoard's folder, the
        project name), restored afterwards; a variable the user set is left as it is."""
        wanted = {"TENSORBOARD_LOGGING_DIR": str(self.log_dir)} if "tensorboard" in self.report_to else {}
        wanted.update({_PROJECT_ENV[n]: self.project for n in self.report_to if n in _PROJECT_ENV})
        wanted = {k: v for k, v in wanted.items() if k == "TENSORBOARD_LOGGING_DIR" or k not in os.environ}
        old = {k: os.environ.get(k) for k in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def stage_tracking(cfg: TrackingConfig, run_dir: Path, run_name: str, stage: str) -> StageTracking:
    return StageTracking(
        resolve_trackers(cfg), RunDir(run_dir).tracking(stage), cfg.project or run_name, f"{run_name}/{stage}"
    )


def flat_scalars(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``a/b/c`` keys; lists become strings (trackers take scalars and strings)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flat_scalars(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(data, bool) or data is None or isinstance(data, (list, tuple)):
        out[prefix] = str(data)
    elif isinstance(data, (int, float)):
        out[prefix] = data
    else:
        out[prefix] = str(data)
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text.strip()).strip("_")


def run_scalars(report: dict) -> dict[str, float]:
    """The numbers a finished run logs: label statistics per alpha and the report's before/after rows."""
    from workbench.report import report_table

    values: dict[str, float] = {}
    for rec in report.get("labels") or []:
        a = f"alpha_{rec['alpha']:g}"
        values[f"labels/{a}/labelled_positions"] = float(rec["labelled"])
        values[f"labels/{a}/changed_share"] = float(rec["changed_share"])
    table = report_table(report)
    for _, row in table.iterrows():
        name = _slug(str(row["measure"]))
        for col in ("baseline", "unlearned", "generic"):
            v = row[col]
            if isinstance(v, (int, float)) and not math.isnan(float(v)):
                values[f"report/{name}/{col}"] = float(v)
    for key, r in (report.get("probes") or {}).items():
        values[f"report/{_slug(key)}/relative_change"] = float(r["relative_change"])
        ci = r.get("relative_change_ci95")
        if ci:
            values[f"report/{_slug(key)}/relative_change_ci_low"] = float(ci[0])
            values[f"report/{_slug(key)}/relative_change_ci_high"] = float(ci[1])
    ppl = report.get("perplexity")
    if ppl:
        values["report/perplexity/relative_change"] = float(ppl["relative_change"])
    return values


def log_run(cfg: TrackingConfig, run_dir: Path, run_name: str, report: dict) -> list[str]:
    """Log a finished run's config (as hyper-parameters), label statistics and report rows to every tracker.
    Returns the trackers fed."""
    names = resolve_trackers(cfg)
    if not names:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    project = cfg.project or run_name
    config = {k: v for k, v in flat_scalars(report.get("config") or {}).items()}
    values = run_scalars(report)
    for name in names:
        cls = LOGGER_TYPE_TO_CLASS[name]
        if name == "tensorboard":
            tracker = cls("run", logging_dir=str(RunDir(run_dir).tracking()))
        elif getattr(cls, "requires_logging_directory", False):
            tracker = cls(project, logging_dir=str(RunDir(run_dir).tracking()))
        else:
            tracker = cls(project)
        tracker.start()
        try:
            tracker.store_init_configuration(config)
            tracker.log(values, step=0)
        finally:
            tracker.finish()
    return names
