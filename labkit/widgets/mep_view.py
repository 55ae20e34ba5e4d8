"""Live MEP view: the last sweep over the previous ones, and the amplitude per trial.

Choice of plotting widget
-------------------------
The view draws inline **SVG into a plain** ``ipywidgets.HTML`` value, rendered by
:mod:`labkit.widgets._svg` (pure functions, ~1 ms for 20 overlaid sweeps of 400 points).

- No extra front-end extension: ipywidgets is already required; bqplot and anywidget
  need their own lab extensions on every reviewer's machine, and ipympl has had thread
  races with ipykernel 7 (updates from a background thread are exactly what we do).
- Thread-safe by construction: an update is one trait assignment (one comm message),
  which ipykernel >= 7 sends correctly from any thread; no figure object is shared.
- Fast enough: a redraw is a few kB of text; :class:`~labkit.widgets._threads.RenderThrottle`
  caps redraws at ``max_rate_hz`` (30 by default) and coalesces bursts, so a train of
  pulses never floods the browser. ``benchmarks/bench_live_view.py`` measures the rate.
- Testable: the SVG carries ``data-n-traces`` / ``data-n-points``, which unit tests parse
  and the browser test reads from the page; no pixel comparison.
- Vector output survives nbconvert/HTML export of the executed notebook as it is.
"""

from __future__ import annotations

import threading
from collections import deque

import ipywidgets as widgets
import numpy as np

from labkit.mep import MEPInputError, blank_artifact
from labkit.trialstyle import trial_style
from labkit.widgets._emg import MEPTrial
from labkit.widgets._svg import TracePath, series_svg, trace_path, traces_svg
from labkit.widgets._threads import RenderThrottle


class MEPView(widgets.VBox):
    """Overlay of recent MEP sweeps and a per-trial amplitude plot.

    Parameters
    ----------
    max_traces : int
        Sweeps kept in the overlay (older ones drop out).
    window_ms : (float, float)
        MEP window shaded in the overlay, ms after the pulse.
    criterion_uv : float | None
        Amplitude criterion drawn as a dashed line (50 µV at rest).
    max_rate_hz : float | None
        Redraw ceiling; ``None`` redraws on every trial (benchmarks).
    blank_ms : (float, float) | None
        Interval around the pulse drawn as a straight line, so that the TMS artifact
        (thousands of µV) does not squash the MEP; display only, the amplitudes are
        measured on the raw sweep. ``None`` draws the raw sweep.

    Notes
    -----
    :meth:`add_trial` may be called from any thread; it only stores data and requests a
    redraw.
    """

    def __init__(
        self,
        *,
        max_traces: int = 20,
        window_ms: tuple[float, float] = (15.0, 50.0),
        criterion_uv: float | None = 50.0,
        max_rate_hz: float | None = 30.0,
        blank_ms: tuple[float, float] | None = (-1.0, 6.0),
    ) -> None:
        self.window_ms = window_ms
        self.blank_ms = blank_ms
        self.criterion_uv = criterion_uv
        self._traces: deque[TracePath] = deque(maxlen=max_traces)
        self._amplitudes: list[float] = []
        self._flags: list[bool | None] = []
        self._data_lock = threading.Lock()
        self.overlay = widgets.HTML(value=traces_svg([], window_ms=window_ms))
        self.overlay.add_class("labkit-mep-overlay")
        self.amplitude_plot = widgets.HTML(
            value=series_svg([], title="peak-to-peak per trial", unit=" µV")
        )
        self.amplitude_plot.add_class("labkit-mep-amplitudes")
        self.summary = widgets.Label(value="no MEP recorded")
        self.summary.add_class("labkit-mep-summary")
        self.throttle = RenderThrottle(self._render, max_rate_hz)
        super().__init__(children=[self.summary, self.overlay, self.amplitude_plot])
        self.add_class("labkit-mep-view")

    def __repr__(self) -> str:
        return f"<MEPView: {self.n_trials} trials>"

    @property
    def n_trials(self) -> int:
        """Trials added so far."""
        return len(self._amplitudes)

    @property
    def amplitudes_uv(self) -> list[float]:
        """Peak-to-peak amplitude of every trial, µV, oldest first."""
        with self._data_lock:
            return list(self._amplitudes)

    def add_trial(self, trial: MEPTrial, *, accepted: bool | None = True) -> None:
        """Add one sweep and its amplitude; redraw (rate-limited).

        Parameters
        ----------
        trial : MEPTrial
            The sweep.
        accepted : bool | None
            True: accepted (filled at or above the criterion, hollow below); False:
            rejected (grey ×); None: not decided yet (small grey dot). See
            :mod:`labkit.trialstyle`.
        """
        self.add_sweep(trial.times_ms, trial.emg_uv, trial.amplitude_uv, accepted=accepted)

    def add_sweep(
        self,
        times_ms: np.ndarray,
        emg_uv: np.ndarray,
        amplitude_uv: float,
        *,
        accepted: bool | None = True,
    ) -> None:
        """Same as :meth:`add_trial` from bare arrays."""
        times = np.asarray(times_ms, float)
        shown = np.asarray(emg_uv, float)
        if self.blank_ms is not None and times.size > 2:
            try:
                shown = blank_artifact(shown, times, self.blank_ms)
            except MEPInputError:  # the sweep does not extend past the blanked interval
                pass
        path = trace_path(times, shown)  # decimated once, here, not at every redraw
        with self._data_lock:
            self._traces.append(path)
            self._amplitudes.append(float(amplitude_uv))
            self._flags.append(accepted)
        self.throttle.request()

    def mark_last(self, accepted: bool) -> None:
        """Set the accepted/rejected flag of the newest trial and redraw."""
        with self._data_lock:
            if self._flags:
                self._flags[-1] = accepted
        self.throttle.request()

    def clear(self) -> None:
        """Forget every trial."""
        with self._data_lock:
            self._traces.clear()
            self._amplitudes.clear()
            self._flags.clear()
        self.throttle.flush()

    def _render(self) -> None:
        with self._data_lock:
            traces = list(self._traces)
            amps = list(self._amplitudes)
            flags = list(self._flags)
        self.overlay.value = traces_svg(traces, window_ms=self.window_ms)
        criterion = self.criterion_uv
        styles = [trial_style(flag, criterion is None or amp >= criterion)
                  for amp, flag in zip(amps, flags, strict=True)]
        self.amplitude_plot.value = series_svg(
            amps, styles=styles, reference=criterion, y_min=0.0,
            title="peak-to-peak per trial (dashed: criterion)", unit=" µV",
        )
        if amps:
            self.summary.value = f"MEP {len(amps)}: {amps[-1]:.1f} µV peak-to-peak"
        else:
            self.summary.value = "no MEP recorded"


class MEPCollector:
    """Turn every delivered pulse into an MEP sweep on a view, off the firing thread.

    Register :meth:`on_pulse` as a stimulator pulse listener: it only queues the pulse,
    so the thread that fired (a protocol runner) is never delayed. A daemon thread waits
    for each sweep in turn and adds it to the view.

    Parameters
    ----------
    source : EMGSource
        Where sweeps come from (see :func:`labkit.widgets._emg.as_emg_source`).
    view : MEPView
        Where sweeps go.
    on_error : callable | None
        Called with the exception when a sweep cannot be read.
    on_trial : callable | None
        Called with every :class:`MEPTrial` after it is drawn (e.g. to log it).
    """

    def __init__(self, source, view: MEPView, on_error=None, on_trial=None) -> None:
        import queue

        self.source = source
        self.view = view
        self.trials: list[MEPTrial] = []
        self._on_error = on_error
        self._on_trial = on_trial
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="labkit-mep", daemon=True)
        self._thread.start()

    def on_pulse(self, event) -> None:
        """Pulse listener: queue the pulse's time (returns at once)."""
        self._queue.put(event.time_s)

    def close(self) -> None:
        """Stop the collector thread after the queued pulses."""
        self._queue.put(None)

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued pulse has been turned into a sweep."""
        import time

        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _loop(self) -> None:
        while True:
            time_s = self._queue.get()
            try:
                if time_s is None:
                    return
                trial = self.source.epoch(time_s)
                self.trials.append(trial)
                self.view.add_trial(trial)
                if self._on_trial is not None:
                    self._on_trial(trial)
            except Exception as exc:
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                self._queue.task_done()
