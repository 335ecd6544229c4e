"""Training monitor: a live loss curve and a stop button for reinforcement or finetuning in a notebook.

::

    monitor = TrainingMonitor()
    run = nb.run(callbacks=monitor.callbacks)   # or Run(cfg, run_dir, callbacks=monitor.callbacks)
    monitor.start(run.finetune)                 # trains in a background thread; the cell returns at once
    monitor                                     # the curve grows as the Trainer logs; "stop" stops cleanly
    ...
    model = monitor.wait()                      # in a later cell: the stage's result (None if stopped)

Why a thread: while a cell runs, the kernel does not read widget messages, so a stop button clicked during a
blocking ``run.finetune()`` would only be seen after training ended. In the thread the kernel stays free; the
button sets a flag (:class:`~workbench.training.StopController`) that the Trainer checks after each step, then
saves a checkpoint and stops. Rerunning the stage resumes from that checkpoint. :meth:`run` trains in the
cell instead, and turns the kernel's interrupt (the ■ button) into the same clean stop.

Each training the callbacks see (reinforce, finetune, a resumed one) is a *phase*: its own curve, named after
its checkpoint folder; a resumed phase continues its curve.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from transformers import TrainerCallback

from workbench.training import LossHistory, StopController
from workbench.widgets._common import esc, figure_widget

__all__ = ["TrainingMonitor", "phase_name"]

_PHASE_NAMES = {"reinforced_ckpt": "reinforce", "unlearned_ckpt": "finetune"}


def phase_name(output_dir: str) -> str:
    """'reinforce' / 'finetune' for the run's checkpoint folders, else the folder's name."""
    name = Path(output_dir).name
    return _PHASE_NAMES.get(name, name)


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

    def on_step_end(self, args, state, control, **kwargs):
        m = self.monitor
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

    def __init__(self, title: str = "training loss", metrics: Sequence[str] = ("loss",),
                 extra_metrics: Sequence[str] = ("target_loss", "retain_kl"), stop_after: int | None = None):
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
        self._fig = None
        self._w = None
        self._lock = threading.Lock()

    @property
    def callbacks(self) -> list[TrainerCallback]:
        """The Trainer callbacks: loss history, stop controller, phase tracking."""
        return [self._history, self._phases, self._controller]

    @property
    def stopped(self) -> bool:
        return self._controller.requested

    # -- control --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the training to stop after the current step (a checkpoint is saved, so a rerun resumes)."""
        if self._can_stop():
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
        """Run ``fn`` in this cell; the kernel's interrupt (■) stops it cleanly like the stop button."""
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
        result, self.result = self.result, None  # do not keep a model alive in the monitor
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
                self.status = (f"finished ({self._summary()})" if len(self.records) > n0 else
                               "finished: nothing to train (the stage was already done with these settings)")
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
        self._refresh()

    def _mark_stopped(self) -> None:
        self.state = "stopped"
        where = f"; checkpoint kept in {self.last_checkpoint}" if self.last_checkpoint else ""
        self.status = (f"stopped cleanly at step {self._controller.stopped_at}{where}; "
                       "rerun the stage to resume from it")

    def _summary(self) -> str:
        if not self.records:
            return "no loss logged"
        last = self.records[-1]
        return f"{last['phase']}: step {last['step']}, loss {last['loss']:.4f}"

    # -- callbacks (the Trainer calls these) --------------------------------------------------------------------
    def _begin_phase(self, name: str, output_dir: str, state) -> None:
        self.phase = name
        self._phase_step0 = state.global_step
        self.status = f"{name}: training"
        if self.state in ("idle", "finished"):
            self.state = "running"
        self._refresh()

    def _saved(self, path: Path, step: int) -> None:
        self.last_checkpoint = path

    def _end_phase(self, state) -> None:
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
        if self.state == "running":
            self.status = f"{row['phase']}: step {step}, loss {rec.get('loss', float('nan')):.4f}"
        self._update_figure(row)
        self._refresh()

    # -- data -----------------------------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """The logged records as a DataFrame (phase, step, loss, ...)."""
        with self._lock:
            rows = list(self.records)
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["phase", "step", "loss"])

    # -- widget ---------------------------------------------------------------------------------------------
    @property
    def figure(self):
        """The plotly FigureWidget of the loss curves."""
        if self._fig is None:
            self._fig = figure_widget()
            self._fig.update_layout(title=self.title, height=300, margin=dict(l=50, r=10, t=40, b=40),
                                    xaxis_title="step", yaxis_title="loss", legend=dict(orientation="h", y=-0.25))
            for row in list(self.records):
                self._update_figure(row)
        return self._fig

    def _update_figure(self, row: dict) -> None:
        fig = self._fig
        if fig is None:
            return
        with self._lock:
            with fig.batch_update():
                for metric in self.metrics + self.extra_metrics:
                    if metric not in row or not isinstance(row[metric], (int, float)):
                        continue
                    name = f"{row['phase']} {metric}" if metric != "loss" else row["phase"]
                    trace = next((t for t in fig.data if t.name == name), None)
                    if trace is None:
                        fig.add_scatter(x=[row["step"]], y=[row[metric]], mode="lines+markers", name=name,
                                        line=dict(dash="dot" if metric in self.extra_metrics else "solid"))
                    else:
                        trace.x = tuple(trace.x) + (row["step"],)
                        trace.y = tuple(trace.y) + (row[metric],)

    @property
    def widget(self):
        if self._w is None:
            import ipywidgets as W

            w = {"stop": W.Button(description="stop", button_style="danger", icon="stop",
                                  tooltip="stop after the current step and keep the checkpoint"),
                 "status": W.HTML()}
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
        color = {"failed": "#b31d28", "stopped": "#8a6d00", "stopping": "#8a6d00", "finished": "#1a7f37"}.get(self.state, "#333")
        return f'<span style="font-size:12px;color:{color}"><b>{esc(self.state)}</b> · {esc(self.status)}</span>'

    def _refresh(self) -> None:
        if self._w is None:
            return
        self._w["status"].value = self.status_html()
        self._w["stop"].disabled = not self._can_stop()
