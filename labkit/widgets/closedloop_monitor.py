"""ClosedLoopMonitor: where in the cycle the triggers landed, how often, how late.

Data are fed by method (:meth:`ClosedLoopMonitor.record`) from whatever runs the loop,
from any thread, in radians (the API's unit); redraws are rate-limited. Everything shown
is in degrees (cosine convention: 0° = positive peak, ±180° = trough): a phase histogram
over [-180°, 180°) with the target marked, circular mean and circular SD of the trigger
phases, trigger rate over the last ``rate_window_s``, and loop latency (median, 95th
percentile, max).
"""

from __future__ import annotations

import math
import threading
from collections import deque

import ipywidgets as widgets
import numpy as np

from labkit.clock import local_clock
from labkit.widgets._svg import histogram_svg
from labkit.widgets._threads import RenderThrottle


def circular_stats_deg(phases_rad: np.ndarray) -> tuple[float, float]:
    """Circular mean and circular SD (``sqrt(-2 ln R)``) of phases, in degrees."""
    phases = np.asarray(phases_rad, float)
    if phases.size == 0:
        return math.nan, math.nan
    z = np.mean(np.exp(1j * phases))
    r = min(abs(z), 1.0)
    sd = math.degrees(math.sqrt(-2.0 * math.log(r))) if r > 0 else math.inf
    return math.degrees(float(np.angle(z))), sd


class ClosedLoopMonitor(widgets.VBox):
    """Live summary of a phase-triggered closed loop.

    Parameters
    ----------
    target_phase_rad : float | None
        Target phase, marked on the histogram.
    n_bins : int
        Histogram bins over [-π, π).
    rate_window_s : float
        Window of the trigger-rate estimate, s.
    max_rate_hz : float | None
        Redraw ceiling.
    """

    def __init__(self, *, target_phase_rad: float | None = 0.0, n_bins: int = 18,
                 rate_window_s: float = 10.0, max_rate_hz: float | None = 10.0) -> None:
        self.target_phase_rad = target_phase_rad
        self.n_bins = int(n_bins)
        self.rate_window_s = float(rate_window_s)
        self._lock = threading.Lock()
        self._phases: list[float] = []
        self._latencies: list[float] = []
        self._times: deque[float] = deque()
        self.histogram = widgets.HTML(self._hist_svg(np.zeros(self.n_bins, int)))
        self.histogram.add_class("labkit-phase-histogram")
        self.phase_label = widgets.Label("phase: --")
        self.phase_label.add_class("labkit-phase-stats")
        self.rate_label = widgets.Label("rate: -- /s")
        self.rate_label.add_class("labkit-trigger-rate")
        self.latency_label = widgets.Label("latency: --")
        self.latency_label.add_class("labkit-latency")
        self.throttle = RenderThrottle(self._render, max_rate_hz)
        super().__init__(children=[
            widgets.HTML("<b>Closed loop</b>"), self.histogram,
            widgets.HBox([self.phase_label, self.rate_label, self.latency_label]),
        ])
        self.add_class("labkit-closedloop-monitor")

    def __repr__(self) -> str:
        return f"<ClosedLoopMonitor: {self.n_triggers} triggers>"

    @property
    def n_triggers(self) -> int:
        """Triggers recorded so far."""
        return len(self._phases)

    def record(self, phase_rad: float, latency_ms: float | None = None,
               time_s: float | None = None) -> None:
        """Add one trigger.

        Parameters
        ----------
        phase_rad : float
            Phase at which the pulse was delivered (wrapped into [-π, π)).
        latency_ms : float | None
            Loop latency of this trigger, ms.
        time_s : float | None
            LSL time of the trigger (default: now).
        """
        wrapped = (float(phase_rad) + math.pi) % (2 * math.pi) - math.pi
        with self._lock:
            self._phases.append(wrapped)
            if latency_ms is not None:
                self._latencies.append(float(latency_ms))
            self._times.append(local_clock() if time_s is None else float(time_s))
        self.throttle.request()

    def trigger_rate_hz(self, now_s: float | None = None) -> float:
        """Triggers per second over the last ``rate_window_s``."""
        now = local_clock() if now_s is None else now_s
        with self._lock:
            recent = [t for t in self._times if now - self.rate_window_s < t <= now]
        return len(recent) / self.rate_window_s

    def phase_counts(self) -> np.ndarray:
        """Counts per phase bin over [-π, π)."""
        with self._lock:
            phases = np.asarray(self._phases)
        counts, _ = np.histogram(phases, bins=self.n_bins, range=(-math.pi, math.pi))
        return counts

    def _hist_svg(self, counts: np.ndarray) -> str:
        target = self.target_phase_rad
        target_deg = None if target is None else math.degrees(
            (float(target) + math.pi) % (2 * math.pi) - math.pi)
        return histogram_svg(counts, lo=-180.0, hi=180.0, unit="°",
                             title="trigger phase (°; 0° = peak, ±180° = trough)",
                             target=target_deg)

    def _render(self) -> None:
        counts = self.phase_counts()
        with self._lock:
            phases = np.asarray(self._phases)
            lat = np.asarray(self._latencies)
            last_t = self._times[-1] if self._times else None
        self.histogram.value = self._hist_svg(counts)
        mean_deg, sd_deg = circular_stats_deg(phases)
        self.phase_label.value = f"phase: mean {mean_deg:.0f}°, circular SD {sd_deg:.0f}°"
        if last_t is not None:
            self.rate_label.value = f"rate: {self.trigger_rate_hz(last_t):.2f} /s"
        if lat.size:
            self.latency_label.value = (
                f"latency: median {np.median(lat):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms,"
                f" max {lat.max():.1f} ms"
            )
