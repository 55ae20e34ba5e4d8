"""Input-output (recruitment) curves: planning and Boltzmann fit.

Planning: :func:`plan_io_curve` turns levels in % of the resting motor threshold into a
randomised list of stimulator intensities (% MSO, 1 % grid), ``n_per_level`` each.

Fit: :func:`fit_boltzmann` fits the three-parameter Boltzmann sigmoid (Devanne et al.
1997, Exp Brain Res 114:329)::

    MEP(x) = mep_max_uv / (1 + exp((s50 - x) / slope))

plus a fitted ``baseline_uv`` (what the peak-to-peak measure returns without an MEP:
background EMG and noise), by bounded least squares on **log** amplitudes,
``log(y + floor_uv)`` against ``log(baseline_uv + MEP(x) + floor_uv)``: MEP variability
is multiplicative (the spread grows with the amplitude), and ``floor_uv`` (default
10 µV) admits zero amplitudes. Confidence intervals are percentile bootstrap intervals: trials
are resampled with replacement within each tested intensity and the curve refitted
(``n_boot`` times, seeded, so the same data and seed give the same interval); the SE is
the SD of the bootstrap estimates.

The fit says ``status == "not identified"`` (with a ``reason``, and NaN for the
parameters and intervals) rather than report numbers that look valid when

* the amplitudes do not increase with intensity (one-sided Spearman test, p >= 0.05;
  flat, decreasing and all-zero data),
* S50 or its interval lies outside the tested intensity range,
* no tested intensity lies on the rise of the curve (between 12 and 88 % of the plateau,
  ``s50 ± 2 · slope``: a step between two tested intensities), or S50 or the slope ends
  on a bound of the fit, or
* a standard error is zero or undefined.

Bounds keep the fit finite when the curve does not saturate: ``mep_max_uv`` in (0, 20 ×
the largest observed amplitude], ``s50`` within the tested range widened by twice its
width, ``slope`` in [0.05, the tested range], ``baseline_uv`` in [0, the largest
observed amplitude]. When the highest tested intensity does not
reach ``s50 + 2 · slope`` (where the curve is at 88 % of its plateau), or a parameter
sits on a bound, the plateau is not identified: ``mep_max_identified`` is False and its
interval should not be trusted (S50 and slope may still be).

``x`` may be in % MSO or in % RMT; the fitted ``s50`` and ``slope`` are in the same unit.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit

from labkit.errors import LabkitError

__all__ = [
    "IDENTIFIED",
    "NOT_IDENTIFIED",
    "BoltzmannFit",
    "RecruitmentInputError",
    "boltzmann",
    "fit_boltzmann",
    "plan_io_curve",
]

#: ``BoltzmannFit.status`` values.
IDENTIFIED = "identified"
NOT_IDENTIFIED = "not identified"

#: Levels of a typical IO curve, % RMT.
DEFAULT_LEVELS_RMT = (90, 100, 110, 120, 130, 140, 150)


class RecruitmentInputError(LabkitError, ValueError):
    """An argument of the IO-curve planning or fit is invalid."""


def plan_io_curve(
    rmt_percent: float,
    levels_rmt: Sequence[float] = DEFAULT_LEVELS_RMT,
    n_per_level: int = 10,
    seed: int | np.random.Generator = 0,
    *,
    min_percent: int = 1,
    max_percent: int = 100,
) -> list[int]:
    """Randomised stimulus order for an input-output curve.

    Parameters
    ----------
    rmt_percent : float
        Resting motor threshold, % MSO.
    levels_rmt : sequence of float
        Levels in % RMT (default 90-150 in steps of 10).
    n_per_level : int
        Pulses per level.
    seed : int | numpy.random.Generator
        Seed (or generator) of the shuffle; the same seed gives the same order.
    min_percent, max_percent : int
        Stimulator output range, % MSO. A level outside it is an error.

    Returns
    -------
    list of int
        Intensities, % MSO on the 1 % grid, ``len(levels_rmt) * n_per_level`` of them.
    """
    rmt = float(rmt_percent)
    if not (np.isfinite(rmt) and 0 < rmt <= 100):
        raise RecruitmentInputError(f"rmt_percent must be in (0, 100] % MSO, got {rmt_percent!r}")
    if not (isinstance(n_per_level, int | np.integer) and 1 <= n_per_level <= 1000):
        raise RecruitmentInputError(f"n_per_level must be an integer in [1, 1000], got "
                                    f"{n_per_level!r}")
    levels = np.asarray(levels_rmt, dtype=float)
    if levels.ndim != 1 or levels.size == 0 or not np.all(np.isfinite(levels) & (levels > 0)):
        raise RecruitmentInputError(f"levels_rmt must be positive % RMT values, got {levels_rmt!r}")
    mso = np.round(rmt * levels / 100.0).astype(int)
    bad = np.flatnonzero((mso < min_percent) | (mso > max_percent))
    if bad.size:
        i = bad[0]
        raise RecruitmentInputError(
            f"level {levels[i]:g} % RMT = {mso[i]} % MSO is outside the stimulator range "
            f"[{min_percent}, {max_percent}] % MSO (RMT {rmt:g} % MSO)"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = np.repeat(mso, n_per_level)
    rng.shuffle(order)
    return [int(v) for v in order]


def boltzmann(x: np.ndarray, mep_max_uv: float, s50: float, slope: float) -> np.ndarray:
    """Boltzmann sigmoid ``mep_max_uv / (1 + exp((s50 - x) / slope))``, µV."""
    z = np.clip((s50 - np.asarray(x, dtype=float)) / slope, -700.0, 700.0)
    return mep_max_uv / (1.0 + np.exp(z))


@dataclass(frozen=True)
class BoltzmannFit:
    """Result of :func:`fit_boltzmann`.

    Attributes
    ----------
    status : str
        ``"identified"`` or ``"not identified"`` (then the parameters are NaN).
    reason : str | None
        Why the curve is not identified.
    mep_max_uv, s50, slope : float
        Plateau (µV), intensity at half the plateau and slope parameter (unit of ``x``).
    baseline_uv : float
        Amplitude measured without an MEP (noise and background), µV.
    ci : dict
        Percentile bootstrap interval ``(low, high)`` per parameter name.
    se : dict
        Bootstrap standard error per parameter name.
    mep_max_identified : bool
        False when the data do not reach the plateau (see the module docstring).
    at_bound : tuple of str
        Parameters that ended on a bound (``baseline_uv`` at 0 is not counted).
    n : int
        Number of trials fitted.
    n_boot : int
        Bootstrap refits that converged.
    residual_sd_log : float
        SD of the residuals of ``log(y + floor_uv)`` (natural log).
    """

    status: str
    reason: str | None
    mep_max_uv: float
    s50: float
    slope: float
    baseline_uv: float
    ci: dict[str, tuple[float, float]]
    se: dict[str, float]
    mep_max_identified: bool
    at_bound: tuple[str, ...]
    n: int
    n_boot: int
    residual_sd_log: float

    @property
    def identified(self) -> bool:
        """True when S50 and slope are identified by the data."""
        return self.status == IDENTIFIED

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Fitted amplitude at ``x`` (baseline included), µV; NaN when not identified."""
        return self.baseline_uv + boltzmann(x, self.mep_max_uv, self.s50, self.slope)

    def to_frame(self) -> pd.DataFrame:
        """Parameter table: estimate, SE and CI per parameter."""
        rows = []
        for name in _NAMES:
            lo, hi = self.ci[name]
            rows.append({"parameter": name, "estimate": getattr(self, name),
                         "se": self.se[name], "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows).set_index("parameter")


_NAMES = ("mep_max_uv", "s50", "slope", "baseline_uv")
_CURVE = _NAMES[:3]


def _not_identified(reason: str, n: int, at_bound: tuple[str, ...] = ()) -> BoltzmannFit:
    nan = float("nan")
    return BoltzmannFit(NOT_IDENTIFIED, reason, nan, nan, nan, nan,
                        dict.fromkeys(_NAMES, (nan, nan)), dict.fromkeys(_NAMES, nan), False,
                        at_bound, n, 0, nan)


def _fit_log(x: np.ndarray, ly: np.ndarray, floor_uv: float, p0: np.ndarray,
             lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def model(xv: np.ndarray, mep_max_uv: float, s50: float, slope: float,
              baseline_uv: float) -> np.ndarray:
        return np.log(baseline_uv + boltzmann(xv, mep_max_uv, s50, slope) + floor_uv)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        return curve_fit(model, x, ly, p0=p0, bounds=(lower, upper), method="trf",
                         max_nfev=20_000)


def fit_boltzmann(
    intensity: Sequence[float],
    amplitude_uv: Sequence[float],
    confidence: float = 0.95,
    *,
    n_boot: int = 400,
    seed: int = 0,
    floor_uv: float = 10.0,
) -> BoltzmannFit:
    """Fit a Boltzmann sigmoid to an input-output curve on log amplitudes.

    Parameters
    ----------
    intensity : array_like
        Stimulus intensity per trial (% MSO or % RMT).
    amplitude_uv : array_like
        Peak-to-peak MEP per trial, µV (finite, >= 0).
    confidence : float
        Coverage of the bootstrap intervals.
    n_boot : int
        Bootstrap refits (at least 50).
    seed : int
        Seed of the bootstrap resampling.
    floor_uv : float
        Added to amplitudes and model before the log, µV (> 0).

    Returns
    -------
    BoltzmannFit
        ``status`` says whether the curve is identified (see the module docstring).
    """
    x = np.asarray(intensity, dtype=float).ravel()
    y = np.asarray(amplitude_uv, dtype=float).ravel()
    if x.size != y.size:
        raise RecruitmentInputError(
            f"intensity has {x.size} values but amplitude_uv has {y.size}"
        )
    if not np.all(np.isfinite(x)):
        raise RecruitmentInputError("intensity must be finite")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise RecruitmentInputError("amplitude_uv must be finite peak-to-peak values >= 0 µV")
    if np.unique(x).size < 3 or x.size < 4:
        raise RecruitmentInputError(
            f"need at least 4 trials on at least 3 intensities, got {x.size} trials on "
            f"{np.unique(x).size}"
        )
    if not 0 < confidence < 1:
        raise RecruitmentInputError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (isinstance(n_boot, int | np.integer) and n_boot >= 50):
        raise RecruitmentInputError(f"n_boot must be an integer >= 50, got {n_boot!r}")
    if not (np.isfinite(floor_uv) and floor_uv > 0):
        raise RecruitmentInputError(f"floor_uv must be > 0 µV, got {floor_uv!r}")
    if np.ptp(y) == 0:
        return _not_identified(f"the amplitudes do not vary (all {y[0]:g} µV)", x.size)
    trend = stats.spearmanr(x, y, alternative="greater")
    if not (np.isfinite(trend.pvalue) and trend.pvalue < 0.05):
        return _not_identified(f"no increasing trend with intensity (Spearman rho "
                               f"{trend.statistic:.2f}, one-sided p {trend.pvalue:.2g})", x.size)
    span = float(x.max() - x.min())
    ymax = float(y.max())
    lower = np.array([1e-9, x.min() - 2 * span, 0.05, 0.0])
    upper = np.array([20.0 * ymax, x.max() + 2 * span, span, ymax])
    levels = np.unique(x)
    means = np.array([y[x == v].mean() for v in levels])
    top = means.max()
    half = levels[np.argmin(np.abs(means - top / 2))]
    p0 = np.clip([1.1 * top, half, max(span / 10, 0.1), means.min()],
                 lower * 1.001 + 1e-12, upper * 0.999)
    ly = np.log(y + floor_uv)
    popt, pcov = _fit_log(x, ly, floor_uv, p0, lower, upper)
    rel = 1e-3
    at_bound = tuple(
        n for n, v, lo, hi in zip(_NAMES, popt, lower, upper, strict=True)
        if (v <= lo + rel * abs(hi - lo) and n != "baseline_uv") or v >= hi - rel * abs(hi - lo)
    )
    mep_max, s50, slope, baseline = (float(v) for v in popt)
    if not x.min() <= s50 <= x.max():
        return _not_identified(f"S50 {s50:.3g} lies outside the tested range "
                               f"[{x.min():g}, {x.max():g}]", x.size, at_bound)
    rising = levels[(levels > s50 - 2 * slope) & (levels < s50 + 2 * slope)]
    if rising.size == 0:
        return _not_identified(f"no tested intensity on the rise of the curve ({s50:.3g} ± "
                               f"{2 * slope:.2g}, 12-88 % of the plateau): the slope is not "
                               f"identified", x.size, at_bound)
    stuck = [n for n in ("s50", "slope") if n in at_bound]
    if stuck:
        return _not_identified(f"{' and '.join(stuck)} ended on the bound of the fit (the "
                               f"data do not constrain {'it' if len(stuck) == 1 else 'them'})",
                               x.size, at_bound)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(x == v) for v in levels]
    start = np.clip(popt, lower * 1.001 + 1e-12, upper * 0.999)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, g.size) for g in groups])
        try:
            boots.append(_fit_log(x[idx], ly[idx], floor_uv, start, lower, upper)[0])
        except (RuntimeError, ValueError):
            continue
    boots_arr = np.array(boots).reshape(-1, len(_NAMES))
    se_arr = boots_arr.std(axis=0, ddof=1) if len(boots) > 1 else np.full(len(_NAMES), np.nan)
    wald = np.sqrt(np.abs(np.diag(pcov)))
    tiny = 1e-9 * np.maximum(np.abs(popt), 1.0)
    bad = [n for n, s, w, t in zip(_CURVE, se_arr[:3], wald[:3], tiny[:3], strict=True)
           if not (np.isfinite(s) and s > t and np.isfinite(w) and w > t)]
    if bad or len(boots) < n_boot // 2:
        return _not_identified(f"the standard error of {', '.join(bad) or 'the fit'} is zero "
                               f"or undefined", x.size, at_bound)
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(boots_arr, [tail, 100 - tail], axis=0)
    if not x.min() <= lo[1] <= hi[1] <= x.max():
        return _not_identified(f"the S50 interval [{lo[1]:.3g}, {hi[1]:.3g}] reaches beyond "
                               f"the tested range [{x.min():g}, {x.max():g}]", x.size, at_bound)
    ci = {n: (float(a), float(b)) for n, a, b in zip(_NAMES, lo, hi, strict=True)}
    se = {n: float(v) for n, v in zip(_NAMES, se_arr, strict=True)}
    plateau = bool(x.max() >= s50 + 2 * slope and not at_bound)
    resid = ly - np.log(baseline + boltzmann(x, mep_max, s50, slope) + floor_uv)
    return BoltzmannFit(IDENTIFIED, None, mep_max, s50, slope, baseline, ci, se, plateau,
                        at_bound, int(x.size), len(boots),
                        float(np.std(resid, ddof=min(len(_NAMES), x.size - 1))))
