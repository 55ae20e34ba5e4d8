"""Cortical silent period (cSP) from EMG recorded during a voluntary contraction. Pure.

Rule used (a threshold-on-envelope rule of the kind reviewed by Hupfeld et al. 2020,
J Neurosci Methods 334:108592; not the mean-consecutive-difference method of Garvey et
al. 2001, whose limits are meant for averaged traces):

1. Rectify the EMG (µV) and smooth it with a centred moving average of ``smooth_ms``
   (5 ms): the envelope.
2. Baseline: mean of the rectified EMG in ``baseline_ms`` before the pulse (−100 … −5 ms).
   A trial whose baseline is below ``min_baseline_uv`` has no voluntary EMG to silence
   (the subject is at rest) and is refused.
3. Onset: the first sample after the MEP's peak (the largest |EMG| within
   ``mep_window_ms``) at which the envelope falls below ``threshold_fraction`` (25 %) of
   the baseline.
4. Offset (EMG resumption): the first sample after the onset from which the envelope stays
   at or above ``threshold_fraction`` of the baseline for ``sustain_ms`` (5 ms).
5. Duration: from the pulse to the offset (the usual "stimulus to return of voluntary
   EMG" definition, Rossini et al. 2015, Clin Neurophysiol 126:1071); also reported from
   the onset.

On the simulated subject (15 % MVC, 130 % RMT, 80 trials of 10 subjects) the rule finds
the generated resumption with a bias of −0.9 ms and an SD of 1.2 ms (largest error 5 ms);
a 50 % threshold with a 10 ms sustain was later by 4.8 ± 8 ms (noise dips of the envelope
after the resumption).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SilentPeriod", "measure_silent_period", "summarise"]


@dataclass(frozen=True)
class SilentPeriod:
    """One cSP measurement.

    Attributes
    ----------
    onset_ms : float
        Start of the silence after the pulse, ms.
    offset_ms : float
        Resumption of voluntary EMG after the pulse, ms.
    duration_ms : float
        Pulse to resumption, ms (= ``offset_ms``).
    silence_ms : float
        Onset to resumption, ms.
    baseline_uv : float
        Mean rectified pre-stimulus EMG, µV.
    """

    onset_ms: float
    offset_ms: float
    duration_ms: float
    silence_ms: float
    baseline_uv: float


def measure_silent_period(
    times_ms: Sequence[float],
    emg_uv: Sequence[float],
    *,
    baseline_ms: tuple[float, float] = (-100.0, -5.0),
    mep_window_ms: tuple[float, float] = (15.0, 50.0),
    smooth_ms: float = 5.0,
    threshold_fraction: float = 0.25,
    sustain_ms: float = 5.0,
    min_baseline_uv: float = 5.0,
) -> SilentPeriod | None:
    """Measure the cortical silent period of one trial (see the module docstring).

    Parameters
    ----------
    times_ms : sequence of float
        Sample times relative to the pulse, ms (evenly spaced, increasing).
    emg_uv : sequence of float
        EMG, µV.
    baseline_ms, mep_window_ms : tuple of float
        Pre-stimulus baseline and MEP windows, ms.
    smooth_ms : float
        Width of the moving average of the rectified EMG, ms.
    threshold_fraction : float
        Fraction of the baseline below which the EMG is silent (0-1).
    sustain_ms : float
        How long the envelope must stay above the threshold to count as resumed, ms.
    min_baseline_uv : float
        Smallest baseline (mean rectified) that shows a contraction, µV.

    Returns
    -------
    SilentPeriod | None
        None when no silence is found (no sub-threshold envelope after the MEP, or no
        resumption within the trace).

    Raises
    ------
    ValueError
        When the arrays differ in length, the windows fall outside the trace, or the
        baseline shows no contraction (names the value and the limit).
    """
    t = np.asarray(times_ms, dtype=float)
    x = np.asarray(emg_uv, dtype=float)
    if t.shape != x.shape or t.ndim != 1 or t.size < 10:
        raise ValueError(f"times_ms and emg_uv must be 1-D of equal length (got {t.shape} "
                         f"and {x.shape})")
    if not (0.0 < threshold_fraction < 1.0):
        raise ValueError(f"threshold_fraction = {threshold_fraction!r} is outside (0, 1)")
    dt = float(np.median(np.diff(t)))
    base = (t >= baseline_ms[0]) & (t < baseline_ms[1])
    if base.sum() < 5:
        raise ValueError(f"baseline window {baseline_ms} ms is outside the trace "
                         f"({t[0]:.1f} to {t[-1]:.1f} ms)")
    rect = np.abs(x)
    baseline = float(rect[base].mean())
    if baseline < min_baseline_uv:
        raise ValueError(f"pre-stimulus EMG {baseline:.1f} µV (mean rectified) is below "
                         f"min_baseline_uv = {min_baseline_uv} µV: no contraction to silence")
    width = max(int(round(smooth_ms / dt)), 1)
    envelope = np.convolve(rect, np.ones(width) / width, mode="same")
    threshold = threshold_fraction * baseline
    win = (t >= mep_window_ms[0]) & (t <= mep_window_ms[1])
    if not win.any():
        raise ValueError(f"MEP window {mep_window_ms} ms is outside the trace")
    peak = int(np.flatnonzero(win)[np.argmax(rect[win])])
    below = np.flatnonzero(envelope[peak:] < threshold)
    if below.size == 0:
        return None
    onset = peak + int(below[0])
    sustain = max(int(round(sustain_ms / dt)), 1)
    above = envelope >= threshold
    k = onset
    while k + sustain <= above.size:
        if above[k]:
            run = above[k:k + sustain]
            if run.all():
                offset_ms = float(t[k])
                return SilentPeriod(float(t[onset]), offset_ms, offset_ms,
                                    offset_ms - float(t[onset]), baseline)
            k += int(np.argmin(run))  # jump to the first sample that fell back
        k += 1
    return None


def summarise(periods: Sequence[SilentPeriod | None]) -> dict[str, float]:
    """Mean and SD of durations over trials, with the count of trials without a cSP."""
    found = np.array([p.duration_ms for p in periods if p is not None], dtype=float)
    return {
        "n_trials": float(len(periods)),
        "n_found": float(found.size),
        "mean_duration_ms": float(found.mean()) if found.size else float("nan"),
        "sd_duration_ms": float(found.std(ddof=1)) if found.size > 1 else float("nan"),
    }
