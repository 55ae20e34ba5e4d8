"""Input-output (recruitment) curves: planning and Boltzmann fit.

Planning: :func:`plan_io_curve` turns levels in % of the resting motor threshold into a
randomised list of stimulator intensities (% MSO, 1 % grid), ``n_per_level`` each.

Fit: :func:`fit_boltzmann` fits the three-parameter Boltzmann sigmoid (Devanne et al.
1997, Exp Brain Res 114:329)::

    MEP(x) = mep_max_uv / (1 + exp((s50 - x) / slope))

by bounded least squares on the raw amplitudes (``scipy.optimize.curve_fit``, method
"trf"). Confidence intervals are Wald intervals from the ``curve_fit`` covariance
(estimate ± t(0.975, n - 3) · SE), **not** bootstrap. Bounds keep the fit finite when
the curve does not saturate: ``mep_max_uv`` in (0, 20 × the largest observed amplitude],
``s50`` within the tested range widened by twice its width, ``slope`` in [0.05, the
tested range]. When the highest tested intensity does not reach ``s50 + 2 · slope``
(where the curve is at 88 % of its plateau), or a parameter sits on a bound, the plateau
is not identified: ``mep_max_identified`` is False and its interval should not be
trusted (``s50`` and ``slope`` are then extrapolations too).

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
    "BoltzmannFit",
    "RecruitmentInputError",
    "boltzmann",
    "fit_boltzmann",
    "plan_io_curve",
]

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
    mep_max_uv, s50, slope : float
        Plateau (µV), intensity at half the plateau and slope parameter (unit of ``x``).
    ci : dict
        95 % Wald interval ``(low, high)`` per parameter name.
    se : dict
        Standard error per parameter name.
    mep_max_identified : bool
        False when the data do not reach the plateau (see the module docstring).
    at_bound : tuple of str
        Parameters that ended on a bound.
    n : int
        Number of trials fitted.
    residual_sd_uv : float
        SD of the residuals, µV.
    """

    mep_max_uv: float
    s50: float
    slope: float
    ci: dict[str, tuple[float, float]]
    se: dict[str, float]
    mep_max_identified: bool
    at_bound: tuple[str, ...]
    n: int
    residual_sd_uv: float

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Fitted amplitude at ``x``, µV."""
        return boltzmann(x, self.mep_max_uv, self.s50, self.slope)

    def to_frame(self) -> pd.DataFrame:
        """Parameter table: estimate, SE and 95 % CI per parameter."""
        rows = []
        for name in ("mep_max_uv", "s50", "slope"):
            lo, hi = self.ci[name]
            rows.append({"parameter": name, "estimate": getattr(self, name),
                         "se": self.se[name], "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows).set_index("parameter")


_NAMES = ("mep_max_uv", "s50", "slope")


def fit_boltzmann(
    intensity: Sequence[float], amplitude_uv: Sequence[float], confidence: float = 0.95
) -> BoltzmannFit:
    """Fit a Boltzmann sigmoid to an input-output curve.

    Parameters
    ----------
    intensity : array_like
        Stimulus intensity per trial (% MSO or % RMT).
    amplitude_uv : array_like
        Peak-to-peak MEP per trial, µV (finite, >= 0).
    confidence : float
        Coverage of the Wald intervals.

    Returns
    -------
    BoltzmannFit
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
    span = float(x.max() - x.min())
    ymax = max(float(y.max()), 1e-6)
    lower = np.array([1e-9, x.min() - 2 * span, 0.05])
    upper = np.array([20.0 * ymax, x.max() + 2 * span, span])
    levels = np.unique(x)
    means = np.array([y[x == v].mean() for v in levels])
    top = means.max()
    half = levels[np.argmin(np.abs(means - top / 2))]
    p0 = np.clip([1.1 * top, half, max(span / 10, 0.1)], lower * 1.001 + 1e-12, upper * 0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, pcov = curve_fit(boltzmann, x, y, p0=p0, bounds=(lower, upper), method="trf",
                               max_nfev=20_000)
    rel = 1e-3
    at_bound = tuple(
        n for n, v, lo, hi in zip(_NAMES, popt, lower, upper, strict=True)
        if v <= lo + rel * abs(hi - lo) or v >= hi - rel * abs(hi - lo)
    )
    se_arr = np.sqrt(np.clip(np.diag(pcov), 0, None))
    dof = max(x.size - 3, 1)
    tq = stats.t.ppf(0.5 + confidence / 2, dof)
    ci = {n: (float(v - tq * s), float(v + tq * s)) for n, v, s in zip(_NAMES, popt, se_arr,
                                                                       strict=True)}
    se = {n: float(s) for n, s in zip(_NAMES, se_arr, strict=True)}
    mep_max, s50, slope = (float(v) for v in popt)
    identified = bool(
        x.max() >= s50 + 2 * slope and not at_bound and np.all(np.isfinite(se_arr))
    )
    resid = y - boltzmann(x, *popt)
    return BoltzmannFit(mep_max, s50, slope, ci, se, identified, at_bound, int(x.size),
                        float(np.std(resid, ddof=min(3, x.size - 1))))
