"""Clock synchronisation of recorded LSL timestamps (pure functions, no I/O).

A recording keeps every sample's timestamp exactly as the stream's host made it, and
separately a series of clock-offset measurements: at local time ``t_local`` the inlet's
``time_correction()`` said that ``offset`` must be added to a timestamp of the stream's
host to put it on the local clock. This is how LabRecorder and XDF store time; the
timestamps are synchronised only when read:

1. :func:`fit_clock_offsets` fits ``offset = a + b · (t_remote − t_ref)`` over the whole
   recording, where ``t_remote = t_local − offset`` is the measurement time on the stream
   host's clock (the domain in which the fit is applied). The fit is robust: iteratively
   reweighted least squares with Huber weights, so that a measurement spoilt by a busy
   network or a descheduled thread (milliseconds off) does not bend the line.
2. :meth:`ClockFit.to_local` maps timestamps onto the local clock: a stream from another
   machine (a different boot time, a drifting crystal) lands on the local clock within
   the offset's accuracy. On one computer the clocks are one and the measured offset
   (tens of µs) is only the estimate's bias; :func:`same_clock` then gives the identity,
   which keeps samples exactly 1/fs apart and pulses on their own sample (a 24 µs shift
   moves a pulse to the neighbouring 5 kHz sample about one time in eight), as labkit's
   live streams do (:func:`labkit.streams.needs_clocksync`).
3. :func:`dejitter` (optional) replaces the timestamps of a regularly sampled stream by a
   straight line per stretch without gaps, removing network/driver jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SAME_HOST_MAX_OFFSET_S", "ClockFit", "dejitter", "fit_clock_offsets", "same_clock"]

#: Huber tuning constant (95 % efficiency for Gaussian noise), in robust SDs.
HUBER_K = 1.345
#: Smallest residual scale used by the robust fit, s (offsets repeat exactly between
#: liblsl's updates, which would otherwise give a scale of zero).
MIN_SCALE_S = 1e-6
#: A fitted offset smaller than this, for a stream made on the recording computer itself,
#: is the estimate's bias, not a clock difference, s.
SAME_HOST_MAX_OFFSET_S = 1e-3


@dataclass(frozen=True)
class ClockFit:
    """The fitted clock offset of one stream: ``offset(t) = intercept_s + slope · (t − t_ref_s)``.

    Attributes
    ----------
    intercept_s : float
        Offset at ``t_ref_s``, s.
    slope : float
        Drift of the offset per second of the stream's clock (s/s).
    t_ref_s : float
        Reference time on the stream's clock, s (centres the fit).
    n_offsets : int
        Measurements used.
    n_outliers : int
        Measurements more than 5 robust SDs off the line (down-weighted, not used).
    scale_s : float
        Robust SD of the residuals, s.
    method : str
        ``"none"`` (no measurement: identity), ``"constant"`` (one measurement or too
        short a span for a slope), ``"robust linear"``, or ``"same host"`` (identity:
        one clock; see :func:`same_clock`).
    measured_intercept_s : float | None
        For ``"same host"``: the intercept that was measured and not applied, s.
    """

    intercept_s: float = 0.0
    slope: float = 0.0
    t_ref_s: float = 0.0
    n_offsets: int = 0
    n_outliers: int = 0
    scale_s: float = 0.0
    method: str = "none"
    measured_intercept_s: float | None = None

    def offset_at(self, stamps_s: np.ndarray | float) -> np.ndarray:
        """The offset (s) to add to timestamps ``stamps_s`` of the stream's clock."""
        stamps = np.asarray(stamps_s, dtype=np.float64)
        return self.intercept_s + self.slope * (stamps - self.t_ref_s)

    def to_local(self, stamps_s: np.ndarray) -> np.ndarray:
        """Timestamps of the stream's clock mapped onto the local clock, s (a new array)."""
        stamps = np.asarray(stamps_s, dtype=np.float64)
        if self.method in ("none", "same host"):
            return stamps.copy()
        return stamps + self.offset_at(stamps)

    def as_dict(self) -> dict:
        """Plain values for a recording's info."""
        return {"method": self.method, "intercept_s": self.intercept_s, "slope": self.slope,
                "t_ref_s": self.t_ref_s, "n_offsets": self.n_offsets,
                "n_outliers": self.n_outliers, "scale_s": self.scale_s,
                "measured_intercept_s": self.measured_intercept_s}


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = (w * (x - mx) ** 2).sum()
    slope = 0.0 if sxx <= 0 else float((w * (x - mx) * (y - my)).sum() / sxx)
    return float(my - slope * mx), slope


def fit_clock_offsets(
    local_times_s: np.ndarray, offsets_s: np.ndarray, *, min_span_s: float = 1.0,
    iterations: int = 30,
) -> ClockFit:
    """Robust linear fit of clock offsets over a recording.

    Parameters
    ----------
    local_times_s : array, shape (n,)
        Local clock time of each measurement, s.
    offsets_s : array, shape (n,)
        The measured offsets (add to the stream's timestamps), s.
    min_span_s : float
        Below this span of measurement times only a constant offset (their median) is
        fitted: a slope from a short span is noise.
    iterations : int
        Reweighting rounds of the Huber fit.

    Returns
    -------
    ClockFit
        The fit; ``method="none"`` (identity) without measurements.
    """
    local = np.asarray(local_times_s, dtype=np.float64).ravel()
    offsets = np.asarray(offsets_s, dtype=np.float64).ravel()
    if local.shape != offsets.shape:
        raise ValueError(f"{local.size} measurement times for {offsets.size} offsets")
    finite = np.isfinite(local) & np.isfinite(offsets)
    local, offsets = local[finite], offsets[finite]
    n = int(local.size)
    if n == 0:
        return ClockFit()
    remote = local - offsets
    t_ref = float(np.median(remote))
    x = remote - t_ref
    if n < 3 or float(np.ptp(x)) < min_span_s:
        med = float(np.median(offsets))
        scale = max(1.4826 * float(np.median(np.abs(offsets - med))), MIN_SCALE_S)
        return ClockFit(med, 0.0, t_ref, n, 0, scale, "constant")
    w = np.ones(n)
    intercept, slope = _weighted_line(x, offsets, w)
    scale = MIN_SCALE_S
    for _ in range(iterations):
        resid = offsets - (intercept + slope * x)
        scale = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), MIN_SCALE_S)
        limit = HUBER_K * scale
        w = np.minimum(1.0, limit / np.maximum(np.abs(resid), 1e-300))
        new_intercept, new_slope = _weighted_line(x, offsets, w)
        done = abs(new_intercept - intercept) < 1e-12 and abs(new_slope - slope) < 1e-15
        intercept, slope = new_intercept, new_slope
        if done:
            break
    resid = offsets - (intercept + slope * x)
    outliers = int((np.abs(resid) > 5 * scale).sum())
    return ClockFit(intercept, slope, t_ref, n, outliers, scale, "robust linear")


def same_clock(fit: ClockFit, *, same_host: bool) -> ClockFit:
    """The identity when the stream was made on the recording computer, else ``fit``.

    Parameters
    ----------
    fit : ClockFit
        The fit of the measured offsets.
    same_host : bool
        The stream's host is the computer that recorded it.

    Returns
    -------
    ClockFit
        ``method="same host"`` (identity, the measured intercept kept for the record)
        when ``same_host`` and the measured offset is below
        :data:`SAME_HOST_MAX_OFFSET_S`; otherwise ``fit`` unchanged (a host name shared
        by two machines does not hide a real clock difference).
    """
    if not same_host or fit.method == "none" or abs(fit.intercept_s) >= SAME_HOST_MAX_OFFSET_S:
        return fit
    return ClockFit(0.0, 0.0, fit.t_ref_s, fit.n_offsets, fit.n_outliers, fit.scale_s,
                    "same host", fit.intercept_s)


def dejitter(stamps_s: np.ndarray, sfreq: float, *, gap_factor: float = 1.5) -> np.ndarray:
    """Replace the timestamps of a regular stream by a least-squares line per segment.

    Parameters
    ----------
    stamps_s : array, shape (n,)
        Timestamps, s (any clock).
    sfreq : float
        Nominal rate, Hz; 0 (irregular stream) returns a copy unchanged.
    gap_factor : float
        A step longer than ``gap_factor / sfreq`` (or backwards) starts a new segment:
        a gap stays a gap.

    Returns
    -------
    ndarray
        The smoothed timestamps (each segment keeps its own effective rate).
    """
    stamps = np.asarray(stamps_s, dtype=np.float64)
    out = stamps.copy()
    if sfreq <= 0 or stamps.size < 3:
        return out
    steps = np.diff(stamps)
    breaks = np.flatnonzero((steps > gap_factor / sfreq) | (steps <= 0)) + 1
    for seg in np.split(np.arange(stamps.size), breaks):
        if seg.size < 3:
            continue
        k = (seg - seg[0]).astype(np.float64)
        intercept, slope = _weighted_line(k, stamps[seg] - stamps[seg[0]], np.ones(seg.size))
        out[seg] = stamps[seg[0]] + intercept + slope * k
    return out
