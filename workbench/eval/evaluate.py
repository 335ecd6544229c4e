"""Run the units of an evaluation over several models, resuming finished ones.

Each finished unit is written to ``<out>/partial/<model>/<unit>.json`` (and ``.parquet`` for its per-item rows)
atomically, with a fingerprint of the model and the unit's settings; a rerun into the same folder skips units
whose fingerprint matches, so an interrupted evaluation resumes where it stopped. :func:`evaluate_models` plans
the units of an :class:`EvalConfig`, runs them and writes the report (workbench/eval/summary.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.eval.config import GROUND_TRUTH_SECTIONS, EvalConfig
from workbench.eval.ground_truth import reference_rows
from workbench.eval.summary import EvalReport, dumps_json, summarize, write_frame, write_report
from workbench.eval.units import TABLE_COLUMNS, Unit, plan_units, slug
from workbench.io import atomic_write_text
from workbench.models import LoadedModel
from workbench.pack import load_pack
from workbench.rundir import UNLEARNED, RunDir

__all__ = ["ModelArg", "evaluate_models", "parse_model_arg", "run_units"]

ModelArg = str | LoadedModel | tuple[str, str | LoadedModel]


def parse_model_arg(arg: str) -> tuple[str, str]:
    """``'label=spec'`` or a plain spec -> (label, spec). The label defaults to the spec's last path part."""
    if "=" in arg and not Path(arg).exists():
        label, spec = arg.split("=", 1)
        if re.fullmatch(r"[A-Za-z0-9_.+-]+", label) and spec:
            return label, spec
    name = Path(arg.rstrip("/")).name or arg
    if name == UNLEARNED and Path(arg).parent.name:  # a run's model folder: name it after the run
        name = Path(arg.rstrip("/")).parent.name
    return name, arg


def _normalize_models(models: Sequence[ModelArg]) -> list[tuple[str, str | LoadedModel]]:
    out: list[tuple[str, str | LoadedModel]] = []
    for m in models:
        if isinstance(m, tuple):
            label, spec = m
        elif isinstance(m, LoadedModel):
            label, spec = slug(Path(m.spec).name or m.spec), m
        else:
            label, spec = parse_model_arg(m)
        out.append((label, spec))
    if not out:
        raise WorkbenchError("no model to evaluate: give at least one --model")
    labels = [lab for lab, _ in out]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        # Two models with one label would share partial results; make them distinct.
        seen: dict[str, int] = {}
        fixed = []
        for lab, spec in out:
            if lab in dupes:
                seen[lab] = seen.get(lab, 0) + 1
                lab = f"{lab}-{seen[lab]}"
            fixed.append((lab, spec))
        out = fixed
    return out


def _check_spec(spec: str | LoadedModel) -> None:
    """Fail before any work when a model path does not exist (hub ids are checked when loaded)."""
    if isinstance(spec, LoadedModel):
        return
    from workbench.models import EMBEDDED_NAMES

    if spec in EMBEDDED_NAMES or spec == "tiny":
        return
    path = Path(spec).expanduser()
    looks_local = (
        spec.startswith((".", "/", "~"))
        or path.suffix == ".gguf"
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )
    if looks_local and not path.exists():
        raise WorkbenchError(
            f"model path {spec} does not exist: give a model folder, a .gguf file, a run directory, "
            "a hub id or 'embedded'"
        )


def _model_identity(spec: str | LoadedModel, dtype: str | None = None) -> dict:
    """What identifies a model's weights for the resume fingerprint (a spec is loaded in ``dtype``)."""
    if isinstance(spec, LoadedModel):
        source = spec.source
        name = spec.spec
    else:
        source = spec
        name = spec
    ident: dict[str, Any] = {"spec": name}
    if dtype is not None and not isinstance(spec, LoadedModel):
        ident["dtype"] = dtype
    path = Path(source)
    if path.exists():
        if RunDir(path).unlearned.is_dir():
            path = RunDir(path).unlearned
        files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
        ident["path"] = str(path.resolve())
        ident["mtime"] = max((p.stat().st_mtime for p in files), default=0.0)
        if not isinstance(spec, LoadedModel):
            ident["spec"] = ident["path"]  # the same folder named from another working directory is the same model
    elif name == "tiny":
        ident["note"] = "in-process tiny model"
    return ident


def _load(spec: str | LoadedModel, config: EvalConfig) -> LoadedModel:
    if isinstance(spec, LoadedModel):
        return spec
    from workbench.models import load_model

    return load_model(spec, device=config.device, dtype=config.dtype)


def _fingerprint(identity: dict, unit: Unit) -> str:
    blob = json.dumps({"model": identity, "unit": unit.name, "params": unit.params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_partial(folder: Path, unit: Unit, fingerprint: str) -> tuple[list[dict], pd.DataFrame | None] | None:
    meta_path = folder / f"{unit.name}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    details = None
    if meta.get("details"):
        dpath = folder / meta["details"]
        if not dpath.is_file():
            return None
        details = pd.read_parquet(dpath)
    rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in meta["metrics"]]
    return rows, details


def _write_partial(
    folder: Path, unit: Unit, fingerprint: str, rows: list[dict], details: pd.DataFrame | None, seconds: float
) -> None:
    meta = {
        "unit": unit.name,
        "section": unit.section,
        "fingerprint": fingerprint,
        "seconds": seconds,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "metrics": rows,
        "details": None,
    }
    if details is not None:
        meta["details"] = f"{unit.name}.parquet"
        write_frame(details, folder / meta["details"])
    # The JSON is written last: its presence marks the unit as finished.
    atomic_write_text(folder / f"{unit.name}.json", dumps_json(meta))


def run_units(
    pairs: Sequence[tuple[str, str | LoadedModel]], units: Sequence[Unit], config: EvalConfig, out: Path
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[dict]]:
    """Run every unit for every (label, model) pair, resuming finished units from ``<out>/partial``.

    Returns the tidy table (:data:`TABLE_COLUMNS`), the details frames (with a leading ``model`` column) and
    per model what was computed or resumed. Models given as specs are loaded one at a time, when first needed.
    """
    all_rows: list[dict] = []
    details: dict[str, list[pd.DataFrame]] = {}
    model_info = []
    for label, spec in pairs:
        identity = _model_identity(spec, config.dtype)
        folder = out / "partial" / slug(label)
        lm: LoadedModel | None = None
        memo: dict = {}
        info = {"label": label, "spec": spec.spec if isinstance(spec, LoadedModel) else spec, "units": {}}
        mine = [u for u in units if u.models is None or label in u.models]
        for unit in tqdm(mine, desc=f"eval {label}", disable=not config.progress, leave=False):
            fp = _fingerprint(identity, unit)
            cached = _read_partial(folder, unit, fp) if config.resume else None
            if cached is not None:
                rows, det = cached
                info["units"][unit.name] = "resumed"
            else:
                if lm is None:
                    lm = _load(spec, config)
                    info["source"] = lm.source
                t0 = time.perf_counter()
                rows, det = unit.run(lm, memo)
                _write_partial(folder, unit, fp, rows, det, time.perf_counter() - t0)
                info["units"][unit.name] = "computed"
            all_rows += [{"model": label, **r} for r in rows]
            if det is not None and unit.detail:
                details.setdefault(unit.detail, []).append(det.assign(model=label))
        model_info.append(info)
        if lm is not None and not isinstance(spec, LoadedModel):
            del lm  # free the weights before the next model

    table = pd.DataFrame(all_rows, columns=TABLE_COLUMNS)
    frames = {k: pd.concat(v, ignore_index=True) for k, v in details.items()}
    for k, df in frames.items():
        frames[k] = df[["model"] + [c for c in df.columns if c != "model"]]
    return table, frames, model_info


def evaluate_models(
    models: Sequence[ModelArg],
    config: EvalConfig | None = None,
    out_dir: str | Path | None = None,
) -> EvalReport:
    """Evaluate each model on every unit of ``config``; the first model is the baseline of the comparisons.

    ``models``: model specs (``'embedded'``, paths, run dirs, hub ids, optionally ``'label=spec'``), loaded
    models, or ``(label, spec_or_model)`` pairs. Models given as specs are loaded one at a time, and only when
    one of their units is not already finished in ``out_dir``. A model on disk is recognised for resuming by its
    path and file times; a model passed in memory only by its label, spec and source, so evaluate a changed
    in-memory model into a new ``out_dir`` (or with ``config.resume = False``).
    """
    config = config or EvalConfig()
    out = Path(out_dir) if out_dir else Path("runs") / "eval" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    pairs = _normalize_models(models)
    for _, spec in pairs:
        _check_spec(spec)
    explicit = config.sections is not None
    pack_sections = {
        "probes",
        "collateral",
        "paraphrase",
        "priming",
        "completion",
        "adversarial",
        "relearn",
        "residual",
        "quantize",
        *GROUND_TRUTH_SECTIONS,
    }
    wants_pack = config.sections is None or bool(pack_sections & set(config.sections))
    pack = load_pack(config.pack) if config.pack and wants_pack else None
    if config.reference is not None and config.reference not in [label for label, _ in pairs]:
        raise WorkbenchError(
            f"reference model {config.reference!r} is not one of the evaluated models "
            f"({', '.join(label for label, _ in pairs)}); give it as --model LABEL=SPEC and name the label"
        )
    notes: list[str] = []
    units = plan_units(config, pack, explicit, notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if not units:
        raise WorkbenchError("nothing to evaluate: every section was skipped (" + "; ".join(notes) + ")")

    table, frames, model_info = run_units(pairs, units, config, out)
    extra, ref_notes = reference_rows(table, frames, config.reference, [label for label, _ in pairs])
    if extra:
        table = pd.concat([table, pd.DataFrame(extra, columns=TABLE_COLUMNS)], ignore_index=True)
    notes += ref_notes
    summary = summarize(table, frames, config, model_info, notes)
    return write_report(table, frames, summary, out, config)
