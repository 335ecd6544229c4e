"""Training monitor: a live loss curve, progress (step N/total, time left) and a stop button for reinforcement
or finetuning in a notebook.

::

    monitor = TrainingMonitor()
    run = nb.run(callbacks=monitor.callbacks)   # or Run(cfg, run_dir, callbacks=monitor.callbacks)
    monitor                                     # the widget: curve, progress, stop button
    monitor.run(run.finetune)                   # trains in this cell; "stop" stops after the current step

    monitor.start(run.finetune)                 # or: train in a background thread; the cell returns at once
    model = monitor.wait()                      # in a later cell: the stage's result (None if stopped)

Why a thread: while a cell runs, the kernel does not read widget messages, so a stop button clicked during a
blocking ``run.finetune()`` would only be seen after training ended. :meth:`run` therefore trains in a
thread too and keeps the cell busy reading the kernel's widget messages (``jupyter-ui-poll``) until training
ends, so a click is seen within a fraction of a second; cells queued behind it (Run All) wait their turn. The
button sets a flag (:class:`~workbench.training.StopController`) that the Trainer checks after each step,
then saves a checkpoint and stops. Rerunning the stage resumes from that checkpoint. The kernel's interrupt
(the ■ button) stops the same way.

Each training the callbacks see (reinforce, finetune, a resumed one) is a *phase*: its own curve, named after
its checkpoint folder; a resumed phase continues its curve. The Trainer's own progress bar and log lines are
left out when these callbacks are present (the monitor shows both).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import TrainerCallback

from workbench.rundir import CHECKPOINT_SUFFIX, trained_stage
from workbench.training import LossHistory, StopController
from workbench.widgets._common import esc, figure_widget

__all__ = ["TrainingMonitor", "phase_name"]


def _ui_poller():
    """``jupyter_ui_poll.ui_events`` inside a running IPython kernel, else None."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return None
        from jupyter_ui_poll import ui_events
    except ImportError:
        return None
    return ui_events


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def phase_name(output_dir: str) -> str:
    """'reinforce' / 'finetune' for the run's checkpoint folders, else the folder's name."""
    name = Path(output_dir).name
    return (trained_stage(name) if name.endswith(CHECKPOINT_SUFFIX) else None) or name


class _ResettableStop(StopController):
    def _can_stop(self) -> bool:
        # between two phases of one start()/run() the state reads 'finished' but a stop is still useful
        return self.state == "running" or self._active and self.state != "stopping"

    def reset(self) -> None:
        self._event.clear()
        self.stopped_at = None


class _Phases(TrainerCallback):
    """Tells the monitor when a training begins and ends (and where it checkpoints)."""

    def __init__(self, monitor: "TrainingMonitor"):
        self.monitor = monitor

    def on_train_begin(self, args, state, control, **kwargs):
        self.monitor._begin_phase(phase_name(args.output_dir), args.output_dir, state)

    shows_progress = True  # run_trainer leaves out the Trainer's own progress bar and log printing

    def on_step_end(self, args, state, control, **kwargs):
        m = self.monitor
        m._progress(state.global_step, getattr(state, "max_steps", 0) or 0)
        if m.stop_after is not None and state.global_step - m._phase_step0 >= m.stop_after and not m.stopped:
            m.stop()  # runs before the StopController's on_step_end, so this very step is the last

    def on_save(self, args, state, control, **kwargs):
        self.monitor._saved(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.monitor._end_phase(state)


class TrainingMonitor:
    """A live loss plot with a stop button. Pass :attr:`callbacks` to the Run (or to ``run_trainer``).

    State (plain attributes): ``state`` ('idle', 'running', 'stopping', 'stopped', 'finished', 'failed'),
    ``records`` (one dict per log: phase, step, loss and the other logged numbers), ``phase``,
    ``last_checkpoint`` (the latest checkpoint folder saved), ``result`` and ``error`` of :meth:`start`.
    """

    def __init__(
        self,
        title: str = "training loss",
        metrics: Sequence[str] = ("loss",),
        extra_metrics: Sequence[str] = ("target_loss", "retain_kl"),
        stop_after: int | None = None,
    ):
        self.title = title
        self.metrics = list(metrics)  # solid lines, one per phase
        self.extra_metrics = list(extra_metrics)  # dotted lines, when logged
        self.stop_after = stop_after  # stop automatically after this many steps (per phase): for demos and tests
        self.records: list[dict] = []
        self.phase: str | None = None
        self.state = "idle"
        self.status = "waiting for training to start"
        self.last_checkpoint: Path | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._controller = _ResettableStop()
        self._history = LossHistory(listeners=[self.on_log])
        self._phases = _Phases(self)
        self._thread: threading.Thread | None = None
        self._active = False  # inside start()/run()
        self._phase_step0 = 0
        self._phase_t0 = time.perf_counter()
        self.stop_requested_step: int | None = None
        self.step = 0  # the current phase's step and its total
        self.max_steps = 0
        self._fig = None
        self._w = None
        self._lock = threading.Lock()
        self._pending: list[dict] = []  # logged rows not drawn yet
        self._flushed_at = 0.0
        self.plot_interval = 1.0  # seconds between two updates of the curve while training
        self._last_step: dict[str, int] = {}  # phase -> the last step it reached

    @property
    def callbacks(self) -> list[TrainerCallback]:
        """The Trainer callbacks: loss history, stop controller, phase tracking."""
        return [self._history, self._phases, self._controller]

    def attach(self, fn: Callable) -> None:
        """When ``fn`` is a stage of a Run (``run.finetune``), make this monitor the one that Run reports to."""
        owner = getattr(fn, "__self__", None)
        if owner is None or not isinstance(getattr(owner, "callbacks", None), list):
            return
        others = {id(c) for c in owner.callbacks if isinstance(c, (LossHistory, _Phases, StopController))}
        owner.callbacks = [c for c in owner.callbacks if id(c) not in others] + self.callbacks

    @property
    def stopped(self) -> bool:
        return self._controller.requested

    # -- control --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the training to stop after the current step (a checkpoint is saved, so a rerun resumes)."""
        if self._can_stop():
            self.stop_requested_step = self.step  # steps done when the click arrived: the stop follows within one
            self._controller.stop()
            self.state = "stopping" if self.state in ("running", "finished") else self.state
            self.status = "stopping after the current step; the checkpoint will be kept"
            self._refresh()

    def _can_stop(self) -> bool:
        # between two phases of one start()/run() the state reads 'finished' but a stop is still useful
        return self.state == "running" or self._active and self.state != "stopping"

    def reset(self) -> None:
        """Allow training again after a stop (start() and run() call this)."""
        self._controller.reset()
        self.error = None
        self.result = None

    def start(self, fn: Callable, *args, **kwargs) -> threading.Thread:
        """Run ``fn(*args, **kwargs)`` (e.g. ``run.finetune``) in a background thread; returns at once."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("a training is already running in this monitor; wait() for it or stop() it first")
        self.attach(fn)
        self.reset()
        self.state = "running"
        self.status = "starting"
        self._active = True
        self._refresh()

        def target():
            self._call(fn, args, kwargs)

        self._thread = threading.Thread(target=target, name="workbench-training", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None, raise_error: bool = True) -> Any:
        """Wait for :meth:`start`'s training; returns its result (None when it was stopped)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"training still running after {timeout} s")
        if self.error is not None and raise_error:
            raise self.error
        return self.result

    def run(self, fn: Callable, *args, **kwargs) -> Any:
        """Run ``fn`` (e.g. ``run.reinforce``) until it ends, reading widget clicks meanwhile: the stop button
        and the kernel's interrupt (■) stop it cleanly after the current step. Returns ``fn``'s result."""
        poll = _ui_poller()
        if poll is None or threading.current_thread() is not threading.main_thread():
            return self._run_here(fn, args, kwargs)
        thread = self.start(fn, *args, **kwargs)
        old = signal.signal(signal.SIGINT, lambda *_: self.stop())
        try:
            with poll() as ui_poll:
                while thread.is_alive():
                    # handle every widget message that arrived (a click on stop): the kernel takes one message
                    # per call, and a click queued behind a backlog (the plot's echoes) would wait its turn
                    ui_poll(200)
                    thread.join(0.05)
        finally:
            signal.signal(signal.SIGINT, old)
        from IPython.display import HTML, display

        display(HTML(self.summary_html()))  # stays in the saved notebook, where the live widget does not
        if self.error is not None:
            raise self.error
        result, self.result = self.result, None  # do not keep a model alive in the monitor
        return result

    def _run_here(self, fn, args, kwargs) -> Any:
        """Train in this thread (no kernel to poll): only the interrupt signal can stop it."""
        self.attach(fn)
        self.reset()
        self.state = "running"
        self.status = "starting"
        self._refresh()
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGINT, lambda *_: self.stop())
        try:
            self._call(fn, args, kwargs)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        if self.error is not None:
            raise self.error
        result, self.result = self.result, None
        return result

    def _call(self, fn, args, kwargs) -> None:
        self._active = True
        n0 = len(self.records)
        try:
            self.result = fn(*args, **kwargs)
            if self._controller.requested:
                self._mark_stopped()
            else:
                self.state = "finished"
                self.status = (
                    f"finished ({self._summary()})"
                    if len(self.records) > n0
                    else "finished: nothing to train (the stage was already done with these settings)"
                )
        except KeyboardInterrupt:
            # the Run raises KeyboardInterrupt when its stage was stopped before the end
            self.result = None
            self._mark_stopped()
        except BaseException as exc:  # noqa: BLE001 - shown in the widget, re-raised by wait()
            self.error = exc
            self.state = "failed"
            self.status = f"failed: {type(exc).__name__}: {exc}"
        finally:
            self._active = False
        self._flush_figure()
        self._refresh()

    @property
    def stopped_step(self) -> int | None:
        """The step training stopped at (None unless stopped)."""
        return self._controller.stopped_at if self.state == "stopped" else None

    def _mark_stopped(self) -> None:
        self.state = "stopped"
        ckpt = self.last_checkpoint
        where = f"; {ckpt.parent.name}/{ckpt.name} kept" if ckpt is not None else ""
        self.status = (
            f"stopped cleanly at step {self._controller.stopped_at}{where}; the stage is unfinished: "
            "rerun it to resume from the checkpoint"
        )

    def _summary(self) -> str:
        if not self.records:
            return "no loss logged"
        last = self.records[-1]
        return f"{last['phase']}: step {last['step']}, loss {last['loss']:.4f}"

    # -- callbacks (the Trainer calls these) --------------------------------------------------------------------
    def _begin_phase(self, name: str, output_dir: str, state) -> None:
        self.phase = name
        self._phase_step0 = state.global_step
        self._phase_t0 = time.perf_counter()
        self.step, self.max_steps = state.global_step, getattr(state, "max_steps", 0) or 0
        self.status = f"{name}: training, " + self.progress_text().split(": ", 1)[1]
        if self.state in ("idle", "finished"):
            self.state = "running"
        self._refresh()

    def _progress(self, step: int, total: int) -> None:
        self.step, self.max_steps = step, total
        self._last_step[self.phase or "training"] = step
        if self.state == "running":
            self.status = self.progress_text()
            self._refresh()

    def progress_text(self) -> str:
        """'finetune: step 12/64 · loss 3.2104 · 1 min 20 s left' (time left from this phase's steps so far)."""
        done = self.step - self._phase_step0
        left = ""
        if done > 0 and self.max_steps > self.step:
            left = f" · {_duration((time.perf_counter() - self._phase_t0) / done * (self.max_steps - self.step))} left"
        loss = next((r["loss"] for r in reversed(self.records) if r.get("phase") == self.phase and "loss" in r), None)
        return (
            f"{self.phase or 'training'}: step {self.step}"
            + (f"/{self.max_steps}" if self.max_steps else "")
            + (f" · loss {loss:.4f}" if loss is not None else "")
            + left
        )

    def _saved(self, path: Path, step: int) -> None:
        self.last_checkpoint = path

    def _end_phase(self, state) -> None:
        self._flush_figure()
        if self._controller.requested:
            self._controller.stopped_at = self._controller.stopped_at or state.global_step
            self._mark_stopped()
        else:
            self.state = "finished"
            self.status = f"finished ({self._summary()})"
        self._refresh()

    def on_log(self, step: int, rec: dict) -> None:
        """A LossHistory listener: record the log line and extend the curve."""
        row = {"phase": self.phase or "training", **rec, "step": step}
        with self._lock:
            self.records.append(row)
            self._pending.append(row)
        self.step = max(self.step, step)
        if self.state == "running":
            self.status = self.progress_text()
        if time.perf_counter() - self._flushed_at >= self.plot_interval:
            self._flush_figure()
        self._refresh()

    def _flush_figure(self) -> None:
        """Draw the logged rows not drawn yet, in one update: at most one per ``plot_interval`` seconds while
        training, since each update makes the browser send messages back that the kernel reads one at a time."""
        with self._lock:
            rows, self._pending = self._pending, []
        self._flushed_at = time.perf_counter()
        if rows:
            self._update_figure(rows)

    # -- data -----------------------------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """The logged records as a DataFrame (phase, step, loss, ...)."""
        with self._lock:
            rows = list(self.records)
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["phase", "step", "loss"])

    def summary(self) -> pd.DataFrame:
        """Per phase: steps logged, first and last loss, and the other logged losses at the end."""
        h = self.history
        if h.empty:
            return pd.DataFrame(columns=["phase", "steps", "first loss", "last loss"])
        rows = []
        for phase, g in h.groupby("phase", sort=False):
            # the last step reached (a stop between two logging steps ends after the last logged one)
            last = max(int(g["step"].max()), self._last_step.get(phase, 0))
            row = {
                "phase": phase,
                "steps": last,
                "first loss": float(g["loss"].iloc[0]),
                "last loss": float(g["loss"].iloc[-1]),
            }
            for m in self.extra_metrics:
                if m in g and g[m].notna().any():
                    row[f"last {m}"] = float(g[m].dropna().iloc[-1])
            rows.append(row)
        return pd.DataFrame(rows)

    def summary_html(self) -> str:
        """The state line and :meth:`summary` as static HTML (what a reopened notebook shows)."""
        from workbench.widgets._common import df_html

        table = self.summary()
        return (
            f'<div class="wb-monitor-summary">{self.status_html()}'
            + (df_html(table, float_format="{:.4f}") if not table.empty else "")
            + "</div>"
        )

    # -- widget ---------------------------------------------------------------------------------------------
    @property
    def figure(self):
        """The plotly FigureWidget of the loss curves."""
        if self._fig is None:
            self._fig = figure_widget()
            self._fig.update_layout(
                title=self.title,
                height=300,
                margin=dict(l=50, r=10, t=40, b=40),
                xaxis_title="step",
                yaxis_title="loss",
                legend=dict(orientation="h", y=-0.25),
            )
            with self._lock:
                self._pending = []
            self._update_figure(list(self.records))
        return self._fig

    def _update_figure(self, rows: list[dict]) -> None:
        fig = self._fig
        if fig is None or not rows:
            return
        new: dict[str, tuple[list, list, str]] = {}  # trace name -> (steps, values, metric), in order
        for row in rows:
            for metric in self.metrics + self.extra_metrics:
                if metric not in row or not isinstance(row[metric], (int, float)):
                    continue
                name = f"{row['phase']} {metric}" if metric != "loss" else row["phase"]
                xs, ys, _ = new.setdefault(name, ([], [], metric))
                xs.append(row["step"])
                ys.append(row[metric])
        with self._lock:
            with fig.batch_update():
                for name, (xs, ys, metric) in new.items():
                    trace = next((t for t in fig.data if t.name == name), None)
                    if trace is None:
                        fig.add_scatter(
                            x=xs,
                            y=ys,
                            mode="lines+markers",
                            name=name,
                            line=dict(dash="dot" if metric in self.extra_metrics else "solid"),
                        )
                    else:
                        trace.x = tuple(trace.x) + tuple(xs)
                        trace.y = tuple(trace.y) + tuple(ys)

    @property
    def widget(self):
        if self._w is None:
            import ipywidgets as W

            w = {
                "stop": W.Button(
                    description="stop",
                    button_style="danger",
                    icon="stop",
                    tooltip="stop after the current step and keep the checkpoint",
                ),
                "status": W.HTML(),
            }
            w["stop"].add_class("wb-monitor-stop")
            w["status"].add_class("wb-monitor-status")
            w["stop"].on_click(lambda _b: self.stop())
            w["root"] = W.VBox([W.HBox([w["stop"], w["status"]]), self.figure])
            w["root"].add_class("wb-training-monitor")
            self._w = w
            self._refresh()
        return self._w["root"]

    def _ipython_display_(self):  # pragma: no cover - only in a live notebook
        from IPython.display import display

        display(self.widget)

    def status_html(self) -> str:
        color = {"failed": "#b31d28", "stopped": "#8a6d00", "stopping": "#8a6d00", "finished": "#1a7f37"}.get(
            self.state, "#333"
        )
        return f'<span style="font-size:12px;color:{color}"><b>{esc(self.state)}</b> · {esc(self.status)}</span>'

    def _refresh(self) -> None:
        if self._w is None:
            return
        self._w["status"].value = self.status_html()
        self._w["stop"].disabled = not self._can_stop()
