"""Motor-threshold estimators with one shared interface.

::

    est = make_estimator("bayesian", start=60)     # or MLPest(start=60), ...
    while not est.done:
        x = est.next_intensity()      # % MSO on the 1 % grid, within the stimulator range
        est.update(x, amplitude_uv)   # peak-to-peak MEP, µV
    est.threshold                     # % MSO; est.history is a list of Trial

Methods: :class:`RelativeFrequency` (Rossini-Rothwell / IFCN), :class:`MLPest`
(Awiszus / MTAT 2.0), :class:`BayesianAdaptive` (Ψ-marginal over threshold and slope,
the default) and :class:`StochasticApproximation` (Wang et al. 2023). All are pure
objects: no I/O, no clock, no random state.
"""

from __future__ import annotations

from labkit.threshold._base import (
    ACTIVE_CRITERION_UV,
    RESTING_CRITERION_UV,
    ThresholdEstimator,
    ThresholdInputError,
    ThresholdStateError,
    Trial,
    resolve_criterion,
)
from labkit.threshold.bayesian import BayesianAdaptive
from labkit.threshold.mlpest import MLPest
from labkit.threshold.relative_frequency import RelativeFrequency
from labkit.threshold.stochastic import StochasticApproximation

#: Method names accepted by :func:`make_estimator`.
METHODS: dict[str, type[ThresholdEstimator]] = {
    "bayesian": BayesianAdaptive,
    "mlpest": MLPest,
    "relative_frequency": RelativeFrequency,
    "stochastic": StochasticApproximation,
}
#: The estimator labkit uses when none is named.
DEFAULT_ESTIMATOR = BayesianAdaptive
DEFAULT_METHOD = "bayesian"


def make_estimator(method: str = DEFAULT_METHOD, start: int = 60, **kwargs) -> ThresholdEstimator:
    """Build a threshold estimator by name.

    Parameters
    ----------
    method : {"bayesian", "mlpest", "relative_frequency", "stochastic"}
        Which method; ``"bayesian"`` is the default.
    start : int
        First intensity, % MSO.
    **kwargs
        Passed to the estimator (``mode``, ``criterion_uv``, ``min_percent``,
        ``max_percent``, ``max_trials`` and method-specific options).

    Returns
    -------
    ThresholdEstimator
        A fresh estimator.
    """
    try:
        cls = METHODS[method]
    except (KeyError, TypeError):
        raise ThresholdInputError(
            f"method must be one of {sorted(METHODS)}, got {method!r}"
        ) from None
    return cls(start, **kwargs)


__all__ = [
    "ACTIVE_CRITERION_UV",
    "DEFAULT_ESTIMATOR",
    "DEFAULT_METHOD",
    "METHODS",
    "RESTING_CRITERION_UV",
    "BayesianAdaptive",
    "MLPest",
    "RelativeFrequency",
    "StochasticApproximation",
    "ThresholdEstimator",
    "ThresholdInputError",
    "ThresholdStateError",
    "Trial",
    "make_estimator",
    "resolve_criterion",
]
