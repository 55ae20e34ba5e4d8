"""Maximum-likelihood PEST (Awiszus 2003; MTAT 2.0 style).

Model: ``P(MEP >= criterion | x) = Phi((x - t) / (0.07 t))`` — a cumulative Gaussian with a
spread proportional to the threshold ``t`` (Awiszus 2003). After every stimulus the
log-likelihood of ``t`` is evaluated on a fine grid (0.05 % MSO) and the next stimulus is
given at the maximum-likelihood estimate, rounded to the 1 % grid.

Before the first responses the likelihood has no interior maximum. As in the MTAT
procedure, two virtual anchor responses make the search well-posed: a miss at
``lower_anchor_percent`` (default 20 % MSO) and a hit at ``upper_anchor_percent``
(default 100 % MSO). They only matter until real hits and misses bracket the threshold.
When the maximum is a plateau, its midpoint is used.

Stopping: a fixed number of stimuli (``max_trials``, default 20, as in MTAT 2.0) or,
when ``ci_width_percent`` is given, as soon as the likelihood-ratio 95 % confidence
interval of ``t`` (log-likelihood within 1.92 of its maximum) is at most that wide
(after ``min_trials``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from labkit.threshold._base import ThresholdEstimator, ThresholdInputError, _finite

_LR_95 = 1.920729  # chi2(1).ppf(0.95) / 2


class MLPest(ThresholdEstimator):
    """Awiszus maximum-likelihood PEST.

    Parameters
    ----------
    start : int
        First intensity, % MSO.
    relative_spread : float
        ``sigma / t`` of the cumulative Gaussian (0.07 after Awiszus 2003).
    ci_width_percent : float | None
        Stop once the 95 % likelihood-ratio interval of ``t`` is at most this wide, % MSO.
    min_trials : int
        Stimuli before the interval rule may stop the hunt.
    lower_anchor_percent, upper_anchor_percent : float
        Virtual miss and hit that start the search, % MSO.
    **kwargs
        ``mode``, ``criterion_uv``, ``min_percent``, ``max_percent``, ``max_trials``
        (default 20).
    """

    grid_step_percent = 0.05

    def __init__(
        self,
        start: int = 60,
        *,
        relative_spread: float = 0.07,
        ci_width_percent: float | None = None,
        min_trials: int = 5,
        lower_anchor_percent: float = 20.0,
        upper_anchor_percent: float = 100.0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("max_trials", 20)
        super().__init__(start, **kwargs)
        rs = _finite(relative_spread, "relative_spread")
        if not 0.005 <= rs <= 1.0:
            raise ThresholdInputError(f"relative_spread must be in [0.005, 1], got {rs}")
        if ci_width_percent is not None and not _finite(ci_width_percent, "ci_width_percent") > 0:
            raise ThresholdInputError(f"ci_width_percent must be > 0 % MSO, got {ci_width_percent}")
        lo_a = _finite(lower_anchor_percent, "lower_anchor_percent")
        hi_a = _finite(upper_anchor_percent, "upper_anchor_percent")
        if not 0 <= lo_a < hi_a <= 100:
            raise ThresholdInputError(
                "anchors must satisfy 0 <= lower_anchor_percent < upper_anchor_percent <= 100, "
                f"got {lo_a} and {hi_a}"
            )
        self.relative_spread = rs
        self.ci_width_percent = ci_width_percent
        self.min_trials = int(min_trials)
        # Thresholds considered: the stimulator range, on a fine grid.
        self.t_grid = np.arange(
            max(self.min_percent, 1.0), self.max_percent + 1e-9, self.grid_step_percent
        )
        self.loglik = np.zeros_like(self.t_grid)
        self._add(lo_a, hit=False)
        self._add(hi_a, hit=True)

    def _add(self, x: float, hit: bool) -> None:
        z = (x - self.t_grid) / (self.relative_spread * self.t_grid)
        self.loglik += log_ndtr(z) if hit else log_ndtr(-z)

    def _observe(self, intensity_percent: int, amplitude_uv: float, hit: bool) -> None:
        self._add(float(intensity_percent), hit)

    def _estimate(self) -> float:
        ll = self.loglik
        best = np.flatnonzero(ll >= ll.max() - 1e-9)
        return float(0.5 * (self.t_grid[best[0]] + self.t_grid[best[-1]]))

    def likelihood(self) -> np.ndarray:
        """Likelihood of the threshold on :attr:`t_grid`, scaled to a maximum of 1."""
        return np.exp(self.loglik - self.loglik.max())

    def confidence_interval(self) -> tuple[float, float]:
        """Likelihood-ratio 95 % interval of the threshold, % MSO."""
        inside = np.flatnonzero(self.loglik >= self.loglik.max() - _LR_95)
        return float(self.t_grid[inside[0]]), float(self.t_grid[inside[-1]])

    def _propose(self) -> float:
        return self.start if not self.history else self._estimate()

    def _finished(self) -> bool:
        if self.ci_width_percent is None or self.n_trials < self.min_trials:
            return False
        lo, hi = self.confidence_interval()
        return hi - lo <= self.ci_width_percent
