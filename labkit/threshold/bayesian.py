"""Bayesian adaptive threshold hunt over threshold and slope (Ψ-method).

Psychometric model of a hit (peak-to-peak MEP >= criterion) at intensity ``x``::

    P(hit | x; t, r) = g + (1 - g - l) * Phi((x - t) / (r * t))

with threshold ``t`` (% MSO), relative spread ``r = sigma / t`` (the slope parameter;
Awiszus 2003 fixes it at 0.07, here it is estimated), false-hit rate ``g`` and lapse rate
``l`` (fixed, default 0.01 each, so that one stray response cannot wreck the posterior).

Use of the amplitudes (default, ``use_amplitudes=True``)
--------------------------------------------------------
A hit/miss throws away most of what an MEP says. Near threshold the log-amplitude grows
about linearly with intensity, so the posterior is updated with a censored log-linear
model consistent with the hit model above::

    log10(amp / criterion) = k * (x - t + e),   e ~ N(0, (r t)^2)

``k`` (decades per % MSO) is a third, nuisance parameter on a log grid (0.03-0.5, flat
prior). Amplitudes at or below ``0.4 x criterion`` (20 µV at rest: the EMG noise floor)
count as "below the floor" (censored), amplitudes at or above ``20 x criterion`` (1 mV at
rest, where the curve bends towards saturation) as "above the ceiling"; in between the
Gaussian density is used. A 2 % uniform outlier component keeps a single odd trial from
dominating. With ``use_amplitudes=False`` the update uses hits and misses only.

Prior (documented defaults)
---------------------------
* ``t``: Gaussian with mean ``prior_mean_percent`` (default: ``start``) and SD
  ``prior_sd_percent`` (default 15 % MSO), truncated to the stimulator range — broad,
  covering the published spread of resting motor thresholds (~30-80 % MSO).
* ``r``: log-normal with median ``spread_prior`` = 0.11 and log-SD 0.5, on 9 log-spaced
  points between 0.03 and 0.25. 0.11 is the median near-threshold spread of the
  Goetz et al. (2014/2019) statistical MEP model population (its stimulus-axis
  variability); Awiszus's 0.07 lies well inside the prior.
* ``k``: flat over its grid (or log-normal: ``amplitude_slope_prior``).

Placement
---------
Kontsevich & Tyler (1999) Ψ-method, in its Ψ-marginal form (Prins 2013): the next
intensity (any point of the 1 % grid in range) minimises the expected entropy of the
*marginal* posterior of ``t`` after the next hit/miss — slope parameters are nuisance
parameters, so stimuli are not spent on learning them for their own sake. (The expected
entropy uses the hit/miss outcome as a proxy even when amplitudes update the posterior.)
The first stimulus is given at ``start``. ``placement="median"`` instead gives every
stimulus at the posterior median of ``t`` (rounded to the grid): cheaper, and with the
amplitude update as informative per pulse (see :mod:`labkit.threshold.population`).
``placement="information"`` minimises the expected entropy of the marginal posterior
of ``t`` after the next *amplitude* (the Ψ-marginal criterion with the outcome the
update really uses): the amplitude is binned on ``log10(amp / criterion)`` (below the
floor, ``information_bins`` = 6 equal bins up to the ceiling, above the ceiling), with
the bin probabilities of the censored log-linear model below; candidates are the 1 %
grid from 4 below to 10 above the posterior median (``information_window_percent``).
With the population prior it was no better than the posterior median on training
populations (p90 |error| at the same mean pulses equal on one, 0.1 % MSO worse on
another; bias ≈ 0 instead of −0.1 % MSO), at ~10 ms per stimulus: see
:mod:`labkit.threshold.population`.

Stopping rule
-------------
Done when the posterior SD of ``t`` is at most ``sd_stop_percent`` (default 2.0 % MSO)
after at least ``min_trials`` (default 8) stimuli, or after ``max_trials`` (default 25).
These defaults were tuned on a virtual population (seed 7) separate from the one of the
validation study (``benchmarks/threshold_study.py``, seed 2026): mean ~14 pulses.

Estimate
--------
The posterior median of ``t`` (it minimises the expected absolute error), % MSO.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import log_ndtr, ndtr

from labkit.threshold._base import ThresholdEstimator, ThresholdInputError, _finite


@lru_cache(maxsize=8)
def _tables(
    lo: int, hi: int, t_step: float, r_min: float, r_max: float, n_r: int, g: float, lapse: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grids and the hit-probability table ``p[x, t, r]`` (read-only, shared)."""
    x = np.arange(lo, hi + 1, dtype=float)
    t = np.arange(max(lo, 1), hi + 1e-9, t_step)
    r = np.geomspace(r_min, r_max, n_r)
    z = (x[:, None, None] - t[None, :, None]) / (r[None, None, :] * t[None, :, None])
    p = g + (1.0 - g - lapse) * ndtr(z)
    for arr in (x, t, r, p):
        arr.setflags(write=False)
    return x, t, r, p


#: Placement rules of :class:`BayesianAdaptive` (``placement=``).
PLACEMENTS = ("psi", "median", "information")


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0)
    return h.sum(axis=axis)


class BayesianAdaptive(ThresholdEstimator):
    """Ψ-marginal Bayesian threshold hunt (default estimator of labkit).

    Parameters
    ----------
    start : int
        First intensity, % MSO.
    prior_mean_percent : float | None
        Mean of the Gaussian prior of ``t``, % MSO (default ``start``).
    prior_sd_percent : float
        SD of the prior of ``t``, % MSO.
    spread_prior : float
        Prior median of the relative spread ``r = sigma / t``.
    spread_log_sd : float
        Log-SD of the log-normal prior of ``r``.
    sd_stop_percent : float
        Stop when the posterior SD of ``t`` is at most this, % MSO.
    min_trials : int
        Stimuli before the SD rule may stop the hunt.
    false_hit_rate, lapse_rate : float
        Fixed guess and lapse rates ``g`` and ``l``.
    use_amplitudes : bool
        Update on the amplitudes (censored log-linear model, default) or on hits and
        misses only.
    amplitude_slope_prior : float | None
        Prior median of the amplitude slope ``k`` (decades per % MSO) of a log-normal
        prior with log-SD ``amplitude_slope_log_sd``; None (default): flat over its grid.
    amplitude_slope_log_sd : float
        Log-SD of that prior.
    placement : {"psi", "median", "information"}
        Next intensity: minimum expected entropy of ``t`` after the next hit/miss
        (Ψ-marginal, default), the posterior median of ``t``, or minimum expected entropy
        of ``t`` after the next amplitude (needs ``use_amplitudes``).
    **kwargs
        ``mode``, ``criterion_uv``, ``min_percent``, ``max_percent``, ``max_trials``
        (default 25).
    """

    t_step_percent = 0.5
    spread_range = (0.03, 0.25)
    n_spread = 9
    #: Slope of log10 amplitude against intensity near threshold, decades per % MSO.
    amplitude_slope_range = (0.03, 0.5)
    n_amplitude_slope = 8
    #: Amplitudes at or below this fraction of the criterion are noise-floor (censored).
    floor_fraction = 0.4
    #: Amplitudes at or above this multiple of the criterion are censored (curve bends).
    ceiling_factor = 20.0
    #: Weight of a uniform outlier component in the amplitude likelihood.
    outlier_rate = 0.02
    #: ``placement="information"``: amplitude bins between the floor and the ceiling.
    information_bins = 6
    #: ``placement="information"``: candidates from/to this far from the posterior
    #: median of ``t``, % MSO.
    information_window_percent = (-4, 10)

    def __init__(
        self,
        start: int = 60,
        *,
        prior_mean_percent: float | None = None,
        prior_sd_percent: float = 15.0,
        spread_prior: float = 0.11,
        spread_log_sd: float = 0.5,
        sd_stop_percent: float = 2.0,
        min_trials: int = 8,
        false_hit_rate: float = 0.01,
        lapse_rate: float = 0.01,
        use_amplitudes: bool = True,
        amplitude_slope_prior: float | None = None,
        amplitude_slope_log_sd: float = 0.55,
        placement: str = "psi",
        **kwargs,
    ) -> None:
        kwargs.setdefault("max_trials", 25)
        super().__init__(start, **kwargs)
        mean = self.start if prior_mean_percent is None else _finite(
            prior_mean_percent, "prior_mean_percent")
        sd = _finite(prior_sd_percent, "prior_sd_percent")
        if sd <= 0:
            raise ThresholdInputError(f"prior_sd_percent must be > 0 % MSO, got {sd}")
        for name, val, lo, hi in (
            ("false_hit_rate", false_hit_rate, 0.0, 0.2),
            ("lapse_rate", lapse_rate, 0.0, 0.2),
            ("spread_log_sd", spread_log_sd, 0.01, 5.0),
            ("spread_prior", spread_prior, 0.005, 1.0),
        ):
            v = _finite(val, name)
            if not lo <= v <= hi:
                raise ThresholdInputError(f"{name} must be within [{lo}, {hi}], got {val!r}")
        if placement not in PLACEMENTS:
            raise ThresholdInputError(
                f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if placement == "information" and not use_amplitudes:
            raise ThresholdInputError(
                "placement='information' needs use_amplitudes=True (with hits and misses "
                "only, 'psi' is the information-gain placement)")
        self.placement = placement
        stop = _finite(sd_stop_percent, "sd_stop_percent")
        if stop <= 0:
            raise ThresholdInputError(f"sd_stop_percent must be > 0 % MSO, got {stop}")
        self.sd_stop_percent = stop
        self.min_trials = int(min_trials)
        self.x_grid, self.t_grid, self.r_grid, self._p = _tables(
            self.min_percent, self.max_percent, self.t_step_percent,
            *self.spread_range, self.n_spread, float(false_hit_rate), float(lapse_rate),
        )
        self.use_amplitudes = bool(use_amplitudes)
        self.k_grid = (
            np.geomspace(*self.amplitude_slope_range, self.n_amplitude_slope)
            if self.use_amplitudes else np.ones(1)
        )
        if amplitude_slope_prior is None or not self.use_amplitudes:
            log_k_prior = 0.0 * self.k_grid
        else:
            k_med = _finite(amplitude_slope_prior, "amplitude_slope_prior")
            k_sd = _finite(amplitude_slope_log_sd, "amplitude_slope_log_sd")
            if not (0.005 <= k_med <= 5.0 and 0.01 <= k_sd <= 5.0):
                raise ThresholdInputError(
                    "amplitude_slope_prior must be within [0.005, 5] decades per % MSO and "
                    f"amplitude_slope_log_sd within [0.01, 5], got {amplitude_slope_prior!r}, "
                    f"{amplitude_slope_log_sd!r}")
            log_k_prior = -0.5 * (np.log(self.k_grid / k_med) / k_sd) ** 2
        log_prior = (
            self._threshold_log_prior(mean, sd)[:, None, None]
            - 0.5 * (np.log(self.r_grid[None, :, None] / spread_prior) / spread_log_sd) ** 2
            + log_k_prior[None, None, :]
        )
        post = np.exp(log_prior - log_prior.max())
        #: Joint posterior over (threshold, relative spread, amplitude slope).
        self.joint_posterior = post / post.sum()

    def _threshold_log_prior(self, mean_percent: float, sd_percent: float) -> np.ndarray:
        """Log prior of ``t`` on :attr:`t_grid` (up to a constant): Gaussian."""
        return -0.5 * ((self.t_grid - mean_percent) / sd_percent) ** 2

    @property
    def posterior(self) -> np.ndarray:
        """Posterior over (threshold, relative spread) on ``t_grid x r_grid``."""
        return self.joint_posterior.sum(axis=2)

    # -- posterior summaries -----------------------------------------------------------
    def marginal_threshold(self) -> np.ndarray:
        """Posterior of ``t`` on :attr:`t_grid` (sums to 1)."""
        return self.posterior.sum(axis=1)

    def posterior_sd(self) -> float:
        """Posterior SD of the threshold, % MSO."""
        m = self.marginal_threshold()
        mean = float(m @ self.t_grid)
        return float(np.sqrt(max(m @ (self.t_grid - mean) ** 2, 0.0)))

    def credible_interval(self, mass: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval of the threshold, % MSO."""
        cdf = np.cumsum(self.marginal_threshold())
        a = (1.0 - mass) / 2
        return (float(np.interp(a, cdf, self.t_grid)), float(np.interp(1 - a, cdf, self.t_grid)))

    def _estimate(self) -> float:
        cdf = np.cumsum(self.marginal_threshold())
        return float(np.interp(0.5, cdf, self.t_grid))

    # -- hunt --------------------------------------------------------------------------
    def _propose(self) -> float:
        if not self.history:
            return self.start
        if self.placement == "median":
            return self._estimate()
        if self.placement == "information":
            return self._propose_information()
        post = self.posterior                                   # (T, R)
        p = self._p                                             # (X, T, R)
        joint_hit = p * post[None]                              # (X, T, R)
        p_hit = joint_hit.sum(axis=(1, 2))                      # (X,)
        marg_hit = joint_hit.sum(axis=2)                        # (X, T)
        marg_miss = post.sum(axis=1)[None, :] - marg_hit        # (X, T)
        p_miss = 1.0 - p_hit
        with np.errstate(divide="ignore", invalid="ignore"):
            h_hit = _entropy(marg_hit / p_hit[:, None])
            h_miss = _entropy(marg_miss / p_miss[:, None])
        expected = p_hit * h_hit + p_miss * h_miss
        expected = np.where(np.isfinite(expected), expected, np.inf)
        return float(self.x_grid[int(np.argmin(expected))])

    def _propose_information(self) -> float:
        """Intensity whose amplitude is expected to leave the least entropy of ``t``.

        The amplitude outcome is discretised on ``y = log10(amp / criterion)``: below the
        floor, :attr:`information_bins` equal bins between floor and ceiling, above the
        ceiling; ``P(bin | x, t, r, k)`` follows the censored log-linear model of the
        update (without its outlier part). Candidates: the 1 % grid within
        :attr:`information_window_percent` of the posterior median, in range; grid cells
        of ``t`` with a marginal below ``1e-7`` of its peak are left out.
        """
        post = self.joint_posterior
        m = post.sum(axis=(1, 2))
        keep = np.flatnonzero(m > 1e-7 * m.max())
        lo, hi = keep[0], keep[-1] + 1
        t = self.t_grid[lo:hi][:, None, None]
        s = self.r_grid[None, :, None] * t                              # (T, R, 1)
        k = self.k_grid[None, None, :]                                  # (1, 1, K)
        edges = np.linspace(np.log10(self.floor_fraction), np.log10(self.ceiling_factor),
                            self.information_bins + 1)
        centre = round(self._estimate())
        below, above = self.information_window_percent
        xs = np.arange(centre + below, centre + above + 1)
        xs = np.unique(np.clip(xs, self.min_percent, self.max_percent)).astype(float)
        d = xs[:, None, None, None] - t[None]                           # (X, T, R, 1)
        z = (edges[None, :, None, None, None] / k[None, None] - d[:, None]) / s[None, None]
        cdf = ndtr(z)                                                   # (X, E, T, R, K)
        shape = (xs.size, 1, *cdf.shape[2:])
        cdf = np.concatenate([np.zeros(shape), cdf, np.ones(shape)], axis=1)
        joint = (np.diff(cdf, axis=1) * post[lo:hi][None, None]).sum(axis=(3, 4))  # (X, B, T)
        p_bin = joint.sum(axis=2)                                       # (X, B)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = _entropy(joint / p_bin[:, :, None])
        expected = (p_bin * np.where(p_bin > 0, h, 0.0)).sum(axis=1)
        return float(xs[int(np.argmin(expected))])

    def _observe(self, intensity_percent: int, amplitude_uv: float, hit: bool) -> None:
        if self.use_amplitudes:
            like = self._amplitude_likelihood(float(intensity_percent), amplitude_uv)
        else:
            i = int(intensity_percent - self.x_grid[0])
            like = (self._p[i] if hit else 1.0 - self._p[i])[:, :, None]
        post = self.joint_posterior * like
        self.joint_posterior = post / post.sum()

    def _amplitude_likelihood(self, x: float, amplitude_uv: float) -> np.ndarray:
        """Likelihood of one amplitude on the (t, r, k) grid (censored log-linear model)."""
        c = self.criterion_uv
        t = self.t_grid[:, None, None]
        s = self.r_grid[None, :, None] * t
        k = self.k_grid[None, None, :]
        d = x - t
        floor = self.floor_fraction * c
        ceiling = self.ceiling_factor * c
        if amplitude_uv <= floor:
            like = np.exp(log_ndtr((np.log10(floor / c) / k - d) / s))
        elif amplitude_uv >= ceiling:
            like = np.exp(log_ndtr((d - np.log10(ceiling / c) / k) / s))
        else:
            z = (np.log10(amplitude_uv / c) / k - d) / s
            like = np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * k * s)
            like = like * (np.log10(ceiling / floor))  # density x range: comparable scale
        return (1.0 - self.outlier_rate) * like + self.outlier_rate

    def _finished(self) -> bool:
        return self.n_trials >= self.min_trials and self.posterior_sd() <= self.sd_stop_percent
