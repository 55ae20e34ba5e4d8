"""What the closed-loop controller records per trigger, and circular statistics on it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["PhaseErrorStats", "Trigger", "circular_stats", "phase_error_stats", "triggers_frame"]


@dataclass(frozen=True)
class Trigger:
    """One pulse fired by :class:`~labkit.closedloop.ClosedLoopController`.

    Times are LSL ``local_clock()`` seconds; phases are radians, cosine convention
    (0 = mu peak, ±pi = trough).

    Attributes
    ----------
    index : int
        Pulse number within the run (0, 1, ...).
    condition : str
        ``"phase"`` or ``"random"``.
    target_phase_rad : float
        The phase the controller aimed at (NaN for ``"random"``).
    sample_time_s : float
        Timestamp of the newest EEG sample the decision was based on.
    decision_time_s : float
        When ``fire()`` was called (after the controller's own sub-ms wait for the
        predicted moment).
    fire_time_s : float
        The pulse's time stamp from the driver (when the fire command was written).
    return_time_s : float
        When ``fire()`` returned (the stimulator acknowledged).
    estimated_phase_rad : float
        Phase the tracker predicted for the discharge (phase at the newest sample,
        advanced at the tracked frequency to ``discharge_time_s``).
    true_phase_rad : float | None
        Ground truth at ``discharge_time_s`` from the controller's ``truth`` callable (a
        simulator), else None.
    amplitude_uv : float
        The amplitude-gate value: the tracked mu amplitude at the decision, µV.
    freq_hz : float
        Tracked mu frequency at the decision, Hz.
    loop_delay_s : float
        Delay from decision to pulse that the controller compensated, s.
    discharge_time_s : float | None
        When the discharge happened: ``decision_time_s`` plus a measured command →
        discharge delay (``loop_delay_s`` given, e.g. from
        :func:`~labkit.closedloop.delay.estimate_discharge_delay`), else the driver's
        write time stamp. ``estimated_phase_rad`` and ``true_phase_rad`` are the phases
        at this moment.
    calibration : bool
        A calibration pulse (``calibration_pulses``): it measured the delay, so it was
        aimed without it.
    decision_to_return_ms : float
        ``return_time_s - decision_time_s`` in ms (the driver round trip).
    sample_to_fire_ms : float
        ``fire_time_s - sample_time_s`` in ms: how far ahead of its newest sample the
        controller predicted (transport latency + wait for the target phase).
    """

    index: int
    condition: str
    target_phase_rad: float
    sample_time_s: float
    decision_time_s: float
    fire_time_s: float
    return_time_s: float
    estimated_phase_rad: float
    true_phase_rad: float | None
    amplitude_uv: float
    freq_hz: float
    loop_delay_s: float
    discharge_time_s: float | None = None
    calibration: bool = False

    @property
    def decision_to_return_ms(self) -> float:
        """Driver round trip, ms."""
        return (self.return_time_s - self.decision_time_s) * 1000.0

    @property
    def sample_to_fire_ms(self) -> float:
        """Prediction horizon from the newest sample to the pulse, ms."""
        return (self.fire_time_s - self.sample_time_s) * 1000.0

    def as_dict(self) -> dict:
        """All fields plus the two latencies, for logs and data frames."""
        out = asdict(self)
        out["decision_to_return_ms"] = self.decision_to_return_ms
        out["sample_to_fire_ms"] = self.sample_to_fire_ms
        return out


def triggers_frame(triggers: Iterable[Trigger]):
    """A :class:`pandas.DataFrame` with one row per trigger (columns of :meth:`Trigger.as_dict`)."""
    import pandas as pd

    rows = [t.as_dict() for t in triggers]
    columns = list(Trigger.__dataclass_fields__) + ["decision_to_return_ms", "sample_to_fire_ms"]
    return pd.DataFrame(rows, columns=columns)


def _wrap(x):
    return np.angle(np.exp(1j * np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class PhaseErrorStats:
    """Circular summary of phases or phase errors.

    Attributes
    ----------
    n : int
        Number of values.
    mean_deg : float
        Circular mean, degrees in (-180, 180].
    sd_deg : float
        Circular standard deviation ``sqrt(-2 ln R)``, degrees.
    resultant : float
        Mean resultant length R (0 = uniform, 1 = all equal).
    """

    n: int
    mean_deg: float
    sd_deg: float
    resultant: float


def circular_stats(phases_rad: Sequence[float] | np.ndarray) -> PhaseErrorStats:
    """Circular mean, SD and resultant length of angles (radians)."""
    x = np.asarray(phases_rad, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return PhaseErrorStats(0, math.nan, math.nan, math.nan)
    z = np.mean(np.exp(1j * x))
    r = float(min(abs(z), 1.0))
    sd = math.degrees(math.sqrt(-2.0 * math.log(r))) if r > 0 else math.inf
    return PhaseErrorStats(int(x.size), math.degrees(math.atan2(z.imag, z.real)), sd, r)


def phase_error_stats(
    phases_rad: Sequence[float] | np.ndarray, target_rad: float
) -> PhaseErrorStats:
    """Circular statistics of ``phases_rad - target_rad`` (wrapped); None values skipped."""
    x = np.array([np.nan if p is None else p for p in phases_rad], dtype=float)
    return circular_stats(_wrap(x - target_rad))
