"""Optional: run lm-evaluation-harness tasks on a workbench model (``pip install 'whp-workbench[lm-eval]'``).

The loaded model and tokenizer are wrapped in lm-eval's ``HFLM`` as they are (no reload), so a run directory,
the embedded model or a model in memory are evaluated exactly as the workbench sees them. The standard seven
tasks (``arc_challenge, arc_easy, boolq, hellaswag, openbookqa, piqa, winogrande``) download their data from
the Hugging Face hub the first time; :func:`write_local_task` makes a task from a local JSONL file in the
workbench/evaldata schema, which runs offline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.io import iter_jsonl
from workbench.models import LoadedModel

__all__ = ["PAPER_TASKS", "require_lm_eval", "run_lm_eval", "write_local_task"]

PAPER_TASKS = ("arc_challenge", "arc_easy", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande")


def require_lm_eval():
    """Import lm_eval, or raise an error that says how to install it."""
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError as exc:
        raise WorkbenchError(
            "lm-evaluation-harness is not installed: run `pip install 'whp-workbench[lm-eval]'` "
            "(or `pip install lm-eval`), or leave out the lm_eval section"
        ) from exc
    return lm_eval


def write_local_task(jsonl: str | Path, folder: str | Path, name: str | None = None) -> str:
    """Write an lm-eval task YAML for a multiple-choice JSONL file (``context, choices, label`` schema) into
    ``folder``; returns the task name. Pass ``folder`` as ``include_path`` to :func:`run_lm_eval`."""
    jsonl = Path(jsonl).resolve()
    first = next((value for _, value in iter_jsonl(jsonl, f"task file {jsonl}")), None)
    if not isinstance(first, dict) or not {"context", "choices", "label"} <= set(first):
        raise WorkbenchError(f"{jsonl} line 1: a local lm-eval task needs fields 'context', 'choices' and 'label'")
    task = name or f"workbench_{jsonl.stem}"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Choices already start with their space, so lm-eval must not add another (target_delimiter "").
    yaml = "\n".join(
        [
            f"task: {task}",
            "dataset_path: json",
            "dataset_kwargs:",
            "  data_files:",
            f"    test: {json.dumps(str(jsonl))}",
            "test_split: test",
            "output_type: multiple_choice",
            'doc_to_text: "{{context}}"',
            'doc_to_choice: "{{choices}}"',
            "doc_to_target: label",
            'target_delimiter: ""',
            "metric_list:",
            "  - metric: acc",
            "    aggregation: mean",
            "    higher_is_better: true",
            "  - metric: acc_norm",
            "    aggregation: mean",
            "    higher_is_better: true",
            "",
        ]
    )
    (folder / f"{task}.yaml").write_text(yaml, encoding="utf-8")
    return task


def run_lm_eval(
    lm: LoadedModel,
    tasks: Sequence[str],
    limit: int | float | None = None,
    include_path: str | Path | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 16,
    include_defaults: bool = True,
) -> list[dict]:
    """Run lm-eval tasks on a loaded model; one dict per (task, metric): ``task, metric, value, stderr, n``.

    ``include_path``: a folder of extra task YAMLs (e.g. from :func:`write_local_task`); ``include_defaults=False``
    skips indexing lm-eval's own tasks, which is faster when only local tasks run.
    """
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if not tasks:
        raise WorkbenchError("no lm-eval tasks given")
    device = next(lm.model.parameters()).device
    wrapped = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size, device=str(device))
    manager = TaskManager(include_path=str(include_path) if include_path else None, include_defaults=include_defaults)
    try:
        out = lm_eval.simple_evaluate(
            model=wrapped,
            tasks=list(tasks),
            limit=limit,
            num_fewshot=num_fewshot,
            task_manager=manager,
            log_samples=False,
            bootstrap_iters=100,
        )
    except (KeyError, ValueError) as exc:
        raise WorkbenchError(f"lm-eval could not run tasks {', '.join(tasks)}: {exc}") from exc
    except (ConnectionError, OSError) as exc:
        raise WorkbenchError(f"lm-eval could not fetch the data of {', '.join(tasks)} (offline?): {exc}") from exc
    if out is None:
        return []
    rows = []
    for task, metrics in out["results"].items():
        n = out.get("n-samples", {}).get(task, {}).get("effective", 0)
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "value": float(value),
                    "stderr": float(stderr) if isinstance(stderr, (int, float)) else math.nan,
                    "n": int(n),
                }
            )
    return rows
