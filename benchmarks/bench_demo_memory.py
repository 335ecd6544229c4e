"""Peak memory of the demo (target: at most 4 GiB) and its wall time by stage.

Runs ``python -m workbench demo --run-dir D --no-progress`` (quick mode: the tiny config) in a child process,
samples the resident memory of it and its children (psutil, else /proc), and takes the exact peak from the
kernel (``wait4`` rusage ``ru_maxrss``). Stage wall times come from the child's ``[stage] running`` lines and,
per stage, from the run directory's ``stages/*.json`` records. ``--skip-demo`` skips the run; with
``--demo-run-dir`` the stage timings of an existing run directory are reported instead (no memory figure).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPO, Context, figure

TARGET_PEAK_GIB = 4.0
GIB = 1024**3
STAGE_LINE = re.compile(r"^\[(reinforce|score|labels|finetune|report)\] (running|up to date)")
DONE_LINE = re.compile(r"^(run directory:|stage seconds:|Before/after)")


def _rss_tree(pid: int) -> int:
    try:
        import psutil

        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
        total = 0
        for q in procs:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total
    except ImportError:
        return _proc_rss(pid)
    except Exception:  # the process just ended
        return 0


def _proc_rss(pid: int) -> int:
    total = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.is_file():
            for c in children.read_text().split():
                total += _proc_rss(int(c))
    except (OSError, ValueError):
        pass
    return total


def stage_records(run_dir: Path) -> dict[str, float]:
    out = {}
    for p in sorted((run_dir / "stages").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
            out[rec.get("stage", p.stem)] = float(rec.get("seconds"))
        except (OSError, ValueError, TypeError):
            continue
    return out


def run_and_sample(cmd: list[str], env: dict, log_path: Path, interval: float = 0.25) -> dict:
    """Run ``cmd``; return wall time, exit code, sampled RSS timeline, kernel peak RSS and stage start times."""
    t0 = time.perf_counter()
    with open(log_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        lines: list[tuple[float, str]] = []

        def reader():
            for line in proc.stdout:
                lines.append((time.perf_counter() - t0, line.rstrip("\n")))

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        samples: list[tuple[float, int]] = []
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            samples.append((time.perf_counter() - t0, _rss_tree(proc.pid)))
            time.sleep(interval)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        th.join(timeout=5)
    starts = [(t, m.group(1), m.group(2)) for t, line in lines for m in [STAGE_LINE.match(line)] if m]
    # the last stage ends where the CLI starts printing its summary (else at exit, teardown included)
    last = starts[-1][0] if starts else 0.0
    done_at = next((t for t, line in lines if t >= last and DONE_LINE.match(line)), wall)
    stages = {}
    for i, (t, name, state) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else done_at
        window = [r for s, r in samples if t <= s <= end]
        stages[name] = {
            "wall_s": round(end - t, 2),
            "state": state,
            "peak_rss_sampled_gib": round(max(window) / GIB, 3) if window else None,
        }
    return {
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_kernel_gib": round(ru.ru_maxrss * 1024 / GIB, 3),  # ru_maxrss is in KiB on Linux
        "peak_rss_sampled_gib": round(max((r for _, r in samples), default=0) / GIB, 3),
        "samples": len(samples),
        "stages": stages,
        "stdout_tail": [x for _, x in lines[-15:]],
    }


def run(ctx: Context) -> dict:
    default_demo = REPO / "workbench" / "configs" / ("tiny.yaml" if ctx.quick else "demo.yaml")
    config = Path(ctx.demo_config) if ctx.demo_config else default_demo
    figs, details = [], {"config": str(config)}
    if ctx.skip_demo:
        if ctx.demo_run_dir and (Path(ctx.demo_run_dir) / "stages").is_dir():
            rec = stage_records(Path(ctx.demo_run_dir))
            details.update(source=str(ctx.demo_run_dir), stage_seconds=rec)
            figs.append(
                figure(
                    "demo.peak_rss_gib",
                    "demo peak memory (RSS)",
                    None,
                    "GiB",
                    TARGET_PEAK_GIB,
                    "<=",
                    "not measured: --skip-demo (timings read from --demo-run-dir)",
                )
            )
            figs.append(
                figure(
                    "demo.stages_total_s",
                    "demo wall time, sum of stage records",
                    round(sum(rec.values()), 1),
                    "s",
                    note=f"from {ctx.demo_run_dir}",
                )
            )
            figs += [
                figure(f"demo.stage.{k}_s", f"demo stage {k}", round(v, 1), "s", note="stage record")
                for k, v in rec.items()
            ]
            return {"figures": figs, "details": details}
        figs.append(
            figure(
                "demo.peak_rss_gib",
                "demo peak memory (RSS)",
                None,
                "GiB",
                TARGET_PEAK_GIB,
                "<=",
                "skipped (--skip-demo)",
            )
        )
        return {"figures": figs, "details": details}
    run_dir = ctx.work / "demo_run"
    if config == REPO / "workbench" / "configs" / "demo.yaml":
        cmd = [sys.executable, "-m", "workbench", "demo", "--run-dir", str(run_dir), "--no-progress"]
    else:
        cmd = [sys.executable, "-m", "workbench", "run", str(config), "--run-dir", str(run_dir), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("OMP_NUM_THREADS", str(ctx.threads))
    res = run_and_sample(cmd, env, ctx.work / "demo_stderr.log")
    if res["returncode"] != 0:
        tail = (ctx.work / "demo_stderr.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the demo exited with {res['returncode']}: {tail}")
    rec = stage_records(run_dir)
    ctx.shared["demo_run_dir"] = run_dir
    peak = max(res["peak_rss_kernel_gib"], res["peak_rss_sampled_gib"])
    details.update(command=" ".join(cmd[1:]), stage_seconds=rec, **res)
    figs.append(
        figure(
            "demo.peak_rss_gib",
            "demo peak memory (RSS, whole process tree)",
            peak,
            "GiB",
            TARGET_PEAK_GIB,
            "<=",
            f"{'tiny config' if ctx.quick else 'demo.yaml'}, {res['samples']} samples + kernel peak",
        )
    )
    figs.append(figure("demo.wall_s", "demo wall time (process start to exit)", res["wall_s"], "s"))
    for name, st in res["stages"].items():
        figs.append(
            figure(
                f"demo.stage.{name}_s",
                f"demo stage {name}",
                st["wall_s"],
                "s",
                note=f"stage record {rec.get(name, float('nan')):.1f} s; peak {st['peak_rss_sampled_gib']} GiB",
            )
        )
    return {"figures": figs, "details": details}
