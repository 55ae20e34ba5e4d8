"""The real command → discharge delay, measured from the TMS artifact in the recording.

The closed loop decides on the newest EEG sample and calls ``fire()``; the pulse happens
later by the driver's write, the serial transmission (~3.1 ms for the 3-byte Magstim
``EH`` at 9600 baud), the unit's own command → discharge time and any offset between the
amplifier's time stamps and the host clock. None of these is visible to the host; all of
them are visible in the data: the discharge puts a large artifact into the EEG (and the
EMG) at the moment it happens, on the stream's own clock.

So during a few calibration pulses (e.g. the first pulses of a run, or single pulses
before it), record the host time of each ``fire()`` call and the stream around it; then
:func:`estimate_discharge_delay` finds each artifact's onset — the first sample whose
deviation from the pre-pulse median exceeds ``threshold_uv`` (default: 20 robust SDs of
the pre-pulse data, at least 100 µV) — and returns the median delay. The discharge lies
between the last clean sample and the first one showing it, so the midpoint (half a
sample period before the first artifact sample) is taken as the onset.

Give the result to the controller as ``loop_delay_s``: it then aims the discharge, not
the command, at the target phase and reports the phase at the discharge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit.errors import ConfigError

__all__ = ["DelayCalibration", "DelayEstimate", "artifact_onset", "estimate_discharge_delay"]


@dataclass(frozen=True)
class DelayEstimate:
    """Command → discharge delay from calibration pulses.

    Attributes
    ----------
    delay_s : float
        Median delay, s (NaN when no artifact was found).
    spread_s : float
        Median absolute deviation of the per-pulse delays, s.
    per_pulse_s : tuple of float
        Delay of each calibration pulse, s (NaN where no artifact was found).
    n_found : int
        Pulses whose artifact was found.
    """

    delay_s: float
    spread_s: float
    per_pulse_s: tuple[float, ...]
    n_found: int


def artifact_onset(
    signal: np.ndarray,
    times_s: np.ndarray,
    after_s: float,
    max_delay_s: float = 0.05,
    threshold_uv: float | None = None,
    baseline_s: float = 0.1,
) -> float:
    """Time of the TMS artifact's onset after ``after_s`` (NaN if none).

    Parameters
    ----------
    signal : ndarray, shape (n_times,) or (n_channels, n_times)
        EEG or EMG, µV; with several channels the largest absolute deviation counts.
    times_s : ndarray, shape (n_times,)
        Time stamp of every sample (the stream's, LSL clock), increasing.
    after_s : float
        The command time (host clock = LSL clock); the onset is searched after it.
    max_delay_s : float
        Search window after ``after_s``, s.
    threshold_uv : float, optional
        Deviation from the pre-pulse median that marks the artifact, µV; default
        ``max(20 × 1.4826 × MAD of the baseline, 100)``.
    baseline_s : float
        Pre-pulse data used for the median and MAD, s (ending at ``after_s``).

    Returns
    -------
    float
        Onset time, s (midpoint between the last clean sample and the first artifact
        sample).
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    t = np.asarray(times_s, dtype=np.float64)
    if x.shape[1] != t.shape[0]:
        raise ConfigError(f"has {x.shape[1]} samples but times_s has {t.shape[0]}",
                          field="signal")
    base = (t >= after_s - baseline_s) & (t < after_s)
    if not base.any():
        return float("nan")
    med = np.median(x[:, base], axis=1, keepdims=True)
    dev = np.max(np.abs(x - med), axis=0)
    if threshold_uv is None:
        mad = float(np.median(dev[base]))
        threshold_uv = max(20.0 * 1.4826 * mad, 100.0)
    search = np.flatnonzero((t >= after_s) & (t <= after_s + max_delay_s))
    hit = search[dev[search] > threshold_uv]
    if hit.size == 0:
        return float("nan")
    k = int(hit[0])
    if k == 0:
        return float(t[0])
    return float(0.5 * (t[k - 1] + t[k]))


def estimate_discharge_delay(
    command_times_s: Sequence[float],
    signal: np.ndarray,
    times_s: np.ndarray,
    max_delay_s: float = 0.05,
    threshold_uv: float | None = None,
) -> DelayEstimate:
    """Median command → discharge delay over calibration pulses.

    Parameters
    ----------
    command_times_s : sequence of float
        Host (LSL) time of each ``fire()`` call (``Trigger.decision_time_s``).
    signal : ndarray, shape (n_times,) or (n_channels, n_times)
        EEG or EMG recorded across the pulses, µV.
    times_s : ndarray, shape (n_times,)
        Sample time stamps (LSL clock).
    max_delay_s : float
        Longest plausible delay, s.
    threshold_uv : float, optional
        Artifact threshold (see :func:`artifact_onset`).

    Returns
    -------
    DelayEstimate
    """
    if not 0.001 <= max_delay_s <= 0.5:
        raise ConfigError(f"must be in 0.001–0.5 s, got {max_delay_s!r}", field="max_delay_s")
    per = []
    for c in command_times_s:
        onset = artifact_onset(signal, times_s, float(c), max_delay_s, threshold_uv)
        per.append(onset - float(c))
    arr = np.asarray(per, dtype=float)
    ok = arr[np.isfinite(arr)]
    if ok.size == 0:
        return DelayEstimate(float("nan"), float("nan"), tuple(per), 0)
    med = float(np.median(ok))
    return DelayEstimate(med, float(np.median(np.abs(ok - med))), tuple(float(v) for v in arr),
                         int(ok.size))


class DelayCalibration:
    """Collects the raw EEG around the first pulses of a run and measures the delay.

    The closed loop hands it every raw chunk (before blanking) and the host time of each
    calibration ``fire()`` call; once the stream has run ``max_delay_s`` past the last
    one, :attr:`complete` is true and :meth:`estimate` gives the median command →
    discharge delay (:func:`estimate_discharge_delay`). Only the data a measurement needs
    is kept: ``baseline_s`` before the first command on.

    Parameters
    ----------
    n_pulses : int
        Calibration pulses (1–50).
    max_delay_s : float
        Longest plausible delay, s.
    baseline_s : float
        Pre-pulse data for the artifact threshold, s.
    """

    def __init__(self, n_pulses: int, max_delay_s: float = 0.05, baseline_s: float = 0.1):
        if isinstance(n_pulses, bool) or not isinstance(n_pulses, int) or not 1 <= n_pulses <= 50:
            raise ConfigError(f"must be an int in 1–50, got {n_pulses!r}", field="n_pulses")
        self.n_pulses = n_pulses
        self.max_delay_s = float(max_delay_s)
        self.baseline_s = float(baseline_s)
        self.command_times_s: list[float] = []
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._last_stamp = -np.inf

    @property
    def pending(self) -> bool:
        """True while calibration pulses are still to be fired."""
        return len(self.command_times_s) < self.n_pulses

    @property
    def complete(self) -> bool:
        """All calibration pulses fired and the stream ran past the last one's window."""
        return (not self.pending
                and self._last_stamp >= self.command_times_s[-1] + self.max_delay_s)

    def feed(self, chunk: np.ndarray, stamps: np.ndarray) -> None:
        """Keep a raw chunk, shape (n_channels, n), with its sample time stamps."""
        if chunk.shape[1] == 0:
            return
        self._chunks.append((np.array(chunk, dtype=np.float64), np.array(stamps, dtype=float)))
        self._last_stamp = float(stamps[-1])
        if not self.command_times_s:  # nothing to measure yet: keep only the baseline
            keep_from = self._last_stamp - self.baseline_s
            while len(self._chunks) > 1 and self._chunks[1][1][0] <= keep_from:
                self._chunks.pop(0)

    def add_command(self, time_s: float) -> None:
        """A calibration pulse was commanded at host time ``time_s``."""
        if not self.pending:
            raise ConfigError(f"all {self.n_pulses} calibration pulses were already given",
                              field="n_pulses")
        self.command_times_s.append(float(time_s))

    def estimate(self) -> DelayEstimate:
        """The delay over the calibration pulses (NaN when no artifact was found)."""
        signal = np.concatenate([c for c, _ in self._chunks], axis=1)
        times = np.concatenate([t for _, t in self._chunks])
        self._chunks = []
        return estimate_discharge_delay(self.command_times_s, signal, times, self.max_delay_s)
