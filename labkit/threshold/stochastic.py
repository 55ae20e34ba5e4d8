"""Stochastic approximation of the threshold (Wang, Peterchev & Goetz 2023).

Robbins-Monro root finding on the logarithm of the MEP amplitude::

    x[i+1] = x[i] - a[i] * (log10(max(amp[i], floor_uv)) - log10(criterion_uv))

with steps ``a[i] = step_percent_per_decade / (1 + k)``, where ``k`` counts the sign
changes of the error so far (Kesten's acceleration: the step shrinks only once the
search oscillates around the threshold). Each stimulus is given at ``x[i]`` rounded to
the 1 % grid; the estimate is the continuous ``x`` after the last update. Stops after a
fixed number of stimuli (``max_trials``, default 20).
"""

from __future__ import annotations

import math

from labkit.threshold._base import ThresholdEstimator, ThresholdInputError, _finite


class StochasticApproximation(ThresholdEstimator):
    """Analog stochastic-approximation threshold hunt.

    Parameters
    ----------
    start : int
        First intensity, % MSO.
    step_percent_per_decade : float
        Initial gain: % MSO moved per decade of amplitude error (about the inverse slope
        of log-amplitude against intensity near threshold).
    floor_uv : float
        Amplitudes below this are taken as this (the EMG noise floor), µV.
    **kwargs
        ``mode``, ``criterion_uv``, ``min_percent``, ``max_percent``, ``max_trials``
        (default 20).
    """

    def __init__(
        self,
        start: int = 60,
        *,
        step_percent_per_decade: float = 8.0,
        floor_uv: float = 10.0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("max_trials", 20)
        super().__init__(start, **kwargs)
        gain = _finite(step_percent_per_decade, "step_percent_per_decade")
        floor = _finite(floor_uv, "floor_uv")
        if not 0 < gain <= 50:
            raise ThresholdInputError(f"step_percent_per_decade must be in (0, 50], got {gain}")
        if not 0 < floor < self.criterion_uv:
            raise ThresholdInputError(
                f"floor_uv must be in (0, criterion_uv={self.criterion_uv}) µV, got {floor}"
            )
        self.gain = gain
        self.floor_uv = floor
        self.x = float(self.start)
        self._sign_changes = 0
        self._last_sign = 0

    def _propose(self) -> float:
        return self.x

    def _observe(self, intensity_percent: int, amplitude_uv: float, hit: bool) -> None:
        err = math.log10(max(amplitude_uv, self.floor_uv)) - math.log10(self.criterion_uv)
        sign = (err > 0) - (err < 0)
        if sign and self._last_sign and sign != self._last_sign:
            self._sign_changes += 1
        if sign:
            self._last_sign = sign
        step = self.gain / (1 + self._sign_changes)
        # The update starts from the intensity actually given (on the grid).
        self.x = float(min(max(intensity_percent - step * err, self.min_percent), self.max_percent))

    def _estimate(self) -> float:
        return self.x if self.history else math.nan
