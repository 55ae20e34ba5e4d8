"""Pre-stimulus (background) EMG: what it is, and whether a trial may count (pure).

A motor threshold is defined for a muscle in a known state (Rossini et al. 2015, Clin
Neurophysiol 126:1071, the IFCN report; Groppa et al. 2012, Clin Neurophysiol 123:858):

* **Resting** motor threshold (RMT): the muscle fully relaxed, MEP criterion 50 µV
  peak-to-peak. Relaxation is checked on the EMG before the pulse. A trial is rejected
  when the background RMS in −100…0 ms exceeds a limit (10 µV by default; 10-20 µV is
  usual) **or** when the background's own peak-to-peak exceeds the MEP criterion: a 50 µV
  deflection before the pulse could pass for an MEP after it, whatever its RMS.
* **Active** motor threshold (AMT): a weak tonic contraction, MEP criterion 200 µV. The
  background must lie in a target band: a slight contraction, a fraction of the subject's
  maximal voluntary contraction (MVC), typically 10-20 % in the IFCN reports above,
  measured as RMS or as rectified mean of the EMG, or an absolute band in µV. Trials
  outside the band (relaxed, or pushing too hard) are rejected.

:func:`measure_background` turns one sweep into a :class:`BackgroundEMG`;
:meth:`BackgroundCriterion.judge` turns that into a :class:`BackgroundVerdict`.
:func:`mvc_uv` measures the maximum from a recording of a maximal contraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from labkit.errors import ConfigError
from labkit.threshold import ACTIVE_CRITERION_UV, RESTING_CRITERION_UV

__all__ = [
    "ACTIVE_CRITERION_UV",
    "BACKGROUND_CITATION",
    "REST_RMS_LIMIT_UV",
    "RESTING_CRITERION_UV",
    "BackgroundCriterion",
    "BackgroundEMG",
    "BackgroundVerdict",
    "measure_background",
    "mep_criterion_uv",
    "mvc_uv",
]

#: Default limit of the pre-stimulus RMS at rest, µV.
REST_RMS_LIMIT_UV = 10.0
#: Default target contraction band of an active threshold, % MVC.
ACTIVE_BAND_PERCENT_MVC = (10.0, 20.0)
BACKGROUND_CITATION = (
    "Rossini PM et al. Non-invasive electrical and magnetic stimulation of the brain, spinal "
    "cord, roots and peripheral nerves. Clin Neurophysiol 2015;126:1071-1107 (RMT 50 µV at "
    "rest; AMT 200 µV during a slight contraction). Groppa S et al. A practical guide to "
    "diagnostic transcranial magnetic stimulation. Clin Neurophysiol 2012;123:858-882."
)

Mode = Literal["rest", "active"]
Measure = Literal["rms", "rectified_mean"]


def mep_criterion_uv(mode: Mode) -> float:
    """Peak-to-peak MEP criterion of a threshold: 50 µV at rest, 200 µV active (µV)."""
    if mode == "rest":
        return RESTING_CRITERION_UV
    if mode == "active":
        return ACTIVE_CRITERION_UV
    raise ConfigError(f"must be 'rest' or 'active', got {mode!r}", field="mode")


@dataclass(frozen=True)
class BackgroundEMG:
    """The EMG before one pulse.

    Attributes
    ----------
    rms_uv : float
        RMS of the demeaned EMG, µV.
    ptp_uv : float
        Peak-to-peak (max − min), µV.
    rectified_mean_uv : float
        Mean of the rectified, demeaned EMG, µV.
    window_ms : (float, float)
        The interval measured, ms relative to the pulse.
    """

    rms_uv: float
    ptp_uv: float
    rectified_mean_uv: float
    window_ms: tuple[float, float] = (-100.0, 0.0)

    def level_uv(self, measure: Measure) -> float:
        """The contraction level by ``measure`` (``"rms"`` or ``"rectified_mean"``), µV."""
        return self.rms_uv if measure == "rms" else self.rectified_mean_uv


def measure_background(
    times_ms: np.ndarray, emg_uv: np.ndarray, window_ms: tuple[float, float] = (-100.0, 0.0)
) -> BackgroundEMG:
    """Measure the EMG of one sweep in a pre-stimulus window.

    Parameters
    ----------
    times_ms : ndarray, shape (n_times,)
        Sample times relative to the pulse, ms.
    emg_uv : ndarray, shape (n_times,)
        EMG, µV.
    window_ms : (float, float)
        Interval measured, ms; samples with ``start <= t < stop`` (and ``t < 0``) count.

    Returns
    -------
    BackgroundEMG
        NaN figures when the window holds fewer than two samples.
    """
    t = np.asarray(times_ms, dtype=float)
    x = np.asarray(emg_uv, dtype=float)
    lo, hi = window_ms
    seg = x[(t >= lo - 1e-9) & (t < hi - 1e-9) & (t < 0)]
    seg = seg[np.isfinite(seg)]
    if seg.size < 2:
        nan = math.nan
        return BackgroundEMG(nan, nan, nan, (float(lo), float(hi)))
    dev = seg - seg.mean()
    return BackgroundEMG(rms_uv=float(np.sqrt(np.mean(dev * dev))),
                         ptp_uv=float(seg.max() - seg.min()),
                         rectified_mean_uv=float(np.mean(np.abs(dev))),
                         window_ms=(float(lo), float(hi)))


def mvc_uv(emg_uv: np.ndarray, fs: float, *, window_s: float = 0.5,
           measure: Measure = "rms") -> float:
    """Maximal voluntary contraction level: the highest level over sliding windows, µV.

    Record a few seconds of maximal effort and pass the EMG of the target muscle; the
    result, in the same ``measure`` as the criterion, sets an active band with
    :meth:`BackgroundCriterion.active_from_mvc`.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_times,)
        EMG during the maximal contraction, µV.
    fs : float
        Sampling rate, Hz.
    window_s : float
        Length of the sliding window, s (non-overlapping halves: step ``window_s / 2``).
    measure : {"rms", "rectified_mean"}
        RMS or rectified mean of the demeaned EMG in each window.

    Returns
    -------
    float
        The maximum level, µV.
    """
    x = np.asarray(emg_uv, dtype=float)
    n = int(round(window_s * fs))
    if not (n >= 2 and x.ndim == 1 and x.size >= n and np.isfinite(x).all()):
        raise ConfigError(f"needs a finite 1-D recording of at least window_s = {window_s} s "
                          f"({max(n, 2)} samples at {fs} Hz), got shape {x.shape}",
                          field="emg_uv")
    if measure not in ("rms", "rectified_mean"):
        raise ConfigError(f"must be 'rms' or 'rectified_mean', got {measure!r}",
                          field="measure")
    step = max(1, n // 2)
    best = 0.0
    for start in range(0, x.size - n + 1, step):
        dev = x[start:start + n] - x[start:start + n].mean()
        level = np.sqrt(np.mean(dev * dev)) if measure == "rms" else np.mean(np.abs(dev))
        best = max(best, float(level))
    return best


@dataclass(frozen=True)
class BackgroundVerdict:
    """Whether a trial's background allows it to count, and why not.

    Attributes
    ----------
    accepted : bool
        The trial may go to the estimator.
    reason : str
        Why it was rejected (empty when accepted), with the figure and the limit.
    """

    accepted: bool
    reason: str = ""


def _positive(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number in µV, got {value!r}", field=name) from None
    if not (math.isfinite(out) and out > 0):
        raise ConfigError(f"must be a finite number > 0 µV, got {value!r}", field=name)
    return out


@dataclass(frozen=True)
class BackgroundCriterion:
    """Which pre-stimulus EMG lets a trial count toward a motor threshold.

    Build it with :meth:`rest`, :meth:`active` or :meth:`active_from_mvc`.

    Attributes
    ----------
    mode : {"rest", "active"}
        Resting or active threshold.
    rms_limit_uv : float | None
        Rest: the highest background RMS accepted, µV.
    ptp_limit_uv : float | None
        Rest: the highest background peak-to-peak accepted, µV (the MEP criterion).
    band_uv : (float, float) | None
        Active: the accepted background level, µV (inclusive).
    measure : {"rms", "rectified_mean"}
        Active: how the level is measured.
    band_percent_mvc : (float, float) | None
        Active: the band as % MVC, when set from a measured MVC (for the record).
    """

    mode: Mode
    rms_limit_uv: float | None = None
    ptp_limit_uv: float | None = None
    band_uv: tuple[float, float] | None = None
    measure: Measure = "rms"
    band_percent_mvc: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode == "rest":
            _positive(self.rms_limit_uv, "rms_limit_uv")
            _positive(self.ptp_limit_uv, "ptp_limit_uv")
            if self.band_uv is not None:
                raise ConfigError("a resting criterion has no contraction band", field="band_uv")
        elif self.mode == "active":
            if self.band_uv is None or len(self.band_uv) != 2:
                raise ConfigError("an active criterion needs band_uv = (low, high) µV",
                                  field="band_uv")
            lo, hi = (_positive(v, "band_uv") for v in self.band_uv)
            if not lo < hi:
                raise ConfigError(f"must be (low, high) with low < high, got {self.band_uv}",
                                  field="band_uv")
            if self.measure not in ("rms", "rectified_mean"):
                raise ConfigError(f"must be 'rms' or 'rectified_mean', got {self.measure!r}",
                                  field="measure")
        else:
            raise ConfigError(f"must be 'rest' or 'active', got {self.mode!r}", field="mode")

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def rest(cls, rms_limit_uv: float = REST_RMS_LIMIT_UV,
             ptp_limit_uv: float = RESTING_CRITERION_UV) -> BackgroundCriterion:
        """Muscle at rest: RMS at most ``rms_limit_uv`` and peak-to-peak at most
        ``ptp_limit_uv`` (default the 50 µV MEP criterion)."""
        return cls("rest", rms_limit_uv=rms_limit_uv, ptp_limit_uv=ptp_limit_uv)

    @classmethod
    def active(cls, band_uv: tuple[float, float], *,
               measure: Measure = "rms") -> BackgroundCriterion:
        """Tonic contraction in an absolute band ``(low, high)`` µV of ``measure``."""
        return cls("active", band_uv=(float(band_uv[0]), float(band_uv[1])), measure=measure)

    @classmethod
    def active_from_mvc(cls, mvc_uv: float,
                        band_percent_mvc: tuple[float, float] = ACTIVE_BAND_PERCENT_MVC, *,
                        measure: Measure = "rms") -> BackgroundCriterion:
        """Tonic contraction at ``band_percent_mvc`` (default 10-20 %) of a measured MVC.

        Parameters
        ----------
        mvc_uv : float
            The subject's maximal level in ``measure`` (see :func:`mvc_uv`), µV.
        band_percent_mvc : (float, float)
            Target band, % MVC, within (0, 100].
        measure : {"rms", "rectified_mean"}
            How both the MVC and the background are measured.
        """
        mvc = _positive(mvc_uv, "mvc_uv")
        lo, hi = (float(v) for v in band_percent_mvc)
        if not 0 < lo < hi <= 100:
            raise ConfigError(f"must be (low, high) % MVC with 0 < low < high <= 100, got "
                              f"{band_percent_mvc}", field="band_percent_mvc")
        return cls("active", band_uv=(mvc * lo / 100.0, mvc * hi / 100.0), measure=measure,
                   band_percent_mvc=(lo, hi))

    # -- decision -----------------------------------------------------------------------
    @property
    def mep_criterion_uv(self) -> float:
        """The MEP criterion of a threshold in this mode, µV (50 rest, 200 active)."""
        return mep_criterion_uv(self.mode)

    def judge(self, background: BackgroundEMG) -> BackgroundVerdict:
        """Accept or reject one trial by its background EMG.

        A figure that could not be measured (NaN) rejects the trial.
        """
        if self.mode == "rest":
            rms, ptp = background.rms_uv, background.ptp_uv
            if not (math.isfinite(rms) and math.isfinite(ptp)):
                return BackgroundVerdict(False, "background not measured")
            if rms > self.rms_limit_uv:
                return BackgroundVerdict(False, f"background RMS {rms:.1f} µV > "
                                                f"{self.rms_limit_uv:g} µV (not at rest)")
            if ptp > self.ptp_limit_uv:
                return BackgroundVerdict(False, f"background peak-to-peak {ptp:.1f} µV > "
                                                f"{self.ptp_limit_uv:g} µV (MEP criterion)")
            return BackgroundVerdict(True)
        level = background.level_uv(self.measure)
        name = "RMS" if self.measure == "rms" else "rectified mean"
        if not math.isfinite(level):
            return BackgroundVerdict(False, "background not measured")
        lo, hi = self.band_uv
        if not lo <= level <= hi:
            side = "below" if level < lo else "above"
            return BackgroundVerdict(False, f"background {name} {level:.1f} µV {side} the "
                                            f"contraction band {self.describe_band()}")
        return BackgroundVerdict(True)

    def describe_band(self) -> str:
        """The band as text, e.g. ``"15.0-30.0 µV (10-20 % MVC)"``; '' at rest."""
        if self.band_uv is None:
            return ""
        text = f"{self.band_uv[0]:.1f}-{self.band_uv[1]:.1f} µV"
        if self.band_percent_mvc is not None:
            text += f" ({self.band_percent_mvc[0]:g}-{self.band_percent_mvc[1]:g} % MVC)"
        return text

    def describe(self) -> str:
        """One line for a panel or a log."""
        if self.mode == "rest":
            return (f"at rest: background RMS <= {self.rms_limit_uv:g} µV and "
                    f"peak-to-peak <= {self.ptp_limit_uv:g} µV")
        name = "RMS" if self.measure == "rms" else "rectified mean"
        return f"active: background {name} within {self.describe_band()}"
