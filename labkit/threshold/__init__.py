"""Motor-threshold estimators with one shared interface.

::

    est = make_estimator("ML-PEST", start=60)      # or MLPest(start=60), "bayesian", ...
    while not est.done:
        x = est.next_intensity()      # % MSO on the 1 % grid, within the stimulator range
        est.update(x, amplitude_uv)   # peak-to-peak MEP, µV
    est.threshold                     # % MSO; est.history is a list of Trial

Methods: :class:`RelativeFrequency` (Rossini-Rothwell / IFCN), :class:`MLPest`
(Awiszus / MTAT 2.0), :class:`BayesianAdaptive` (Ψ-marginal over threshold and slope;
the default for active thresholds), :class:`PopulationBayesian` (the same with a
population prior on the resting threshold and a posterior-SD stopping rule; resting
thresholds only, the default for them) and
:class:`StochasticApproximation` (Wang et al. 2023). All are pure objects: no I/O, no
clock, no random state; the same responses give the same hunt.

Validation (``benchmarks/threshold_study.py``: 1000 virtual subjects of the statistical
MEP model, seed 2026, start 60 % MSO): mean pulses / median |error| / p90 |error|
(% MSO) — ``bayesian_population`` 11.8 / 1.08 / 2.89 (max 25 pulses; 11.8 / 1.13 / 2.92
on the study's own response streams of its row; the previous default, Ψ-marginal
placement, 11.9 / 1.12 / 3.00); ``bayesian`` 14.4 / 1.06 / 2.78; ``mlpest``
20.0 / 1.03 / 3.19; ``relative_frequency`` 45.7 / 0.98 / 2.73 (max 76).

Default (:func:`default_method`): ``"bayesian_population"`` for a resting motor threshold
at the 50 µV criterion — about the accuracy of the broad-prior hunt in 2.6 pulses fewer
(its prior, robust mixture weight, placement and stopping rule were chosen on other
populations, seeds 7, 8, 10, 11 and 99: :mod:`labkit.threshold.population`);
``"bayesian"`` for active thresholds or any other criterion, about which the population
prior says nothing.
"""

from __future__ import annotations

from typing import Any

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
from labkit.threshold.population import PopulationBayesian
from labkit.threshold.relative_frequency import RelativeFrequency
from labkit.threshold.stochastic import StochasticApproximation

#: Method names accepted by :func:`make_estimator`.
METHODS: dict[str, type[ThresholdEstimator]] = {
    # before "bayesian": method_name() takes the first class an estimator is an instance of
    "bayesian_population": PopulationBayesian,
    "bayesian": BayesianAdaptive,
    "mlpest": MLPest,
    "relative_frequency": RelativeFrequency,
    "stochastic": StochasticApproximation,
}
#: Further names of the methods (compared without case, spaces, ``-`` or ``_``); the
#: method keys and the class names are accepted too.
ALIASES: dict[str, str] = {
    "ML-PEST": "mlpest", "PEST": "mlpest", "MTAT": "mlpest",
    "Psi": "bayesian", "Bayes": "bayesian",
    "Rossini-Rothwell": "relative_frequency", "Rossini": "relative_frequency",
    "IFCN": "relative_frequency",
    "SA": "stochastic",
}
#: The estimator labkit uses for a resting threshold (50 µV) when none is named.
DEFAULT_ESTIMATOR = PopulationBayesian
DEFAULT_METHOD = "bayesian_population"
#: The default for active thresholds and other criteria.
DEFAULT_ACTIVE_METHOD = "bayesian"


def default_method(mode: str = "resting", criterion_uv: float | None = None) -> str:
    """The method labkit uses when none is named.

    Parameters
    ----------
    mode : {"resting", "active"}
        Which threshold is hunted.
    criterion_uv : float or None
        The MEP criterion, µV (None: the mode's own, 50 µV resting, 200 µV active).

    Returns
    -------
    str
        ``"bayesian_population"`` for a resting threshold at 50 µV, else ``"bayesian"``.
    """
    criterion = resolve_criterion(mode, criterion_uv)
    resting = mode == "resting" and criterion == RESTING_CRITERION_UV
    return DEFAULT_METHOD if resting else DEFAULT_ACTIVE_METHOD


def _squash(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def method_name(method: str | type[ThresholdEstimator] | ThresholdEstimator) -> str:
    """The one name of an estimator method, from any name, class or instance.

    Parameters
    ----------
    method : str, estimator class or estimator
        ``"ML-PEST"``, ``"mlpest"``, ``"MLPest"``, :class:`MLPest` or an ``MLPest(...)``
        all name the same method. Case, spaces, ``-`` and ``_`` do not matter.

    Returns
    -------
    str
        The key of :data:`METHODS` (``"mlpest"``).

    Raises
    ------
    ThresholdInputError
        The name is not one of the methods; the message lists them.
    """
    if isinstance(method, ThresholdEstimator):
        method = type(method)
    if isinstance(method, type):
        for key, cls in METHODS.items():
            if issubclass(method, cls):
                return key
    elif isinstance(method, str):
        wanted = _squash(method)
        names = {_squash(k): k for k in METHODS}
        names.update({_squash(cls.__name__): k for k, cls in METHODS.items()})
        names.update({_squash(alias): k for alias, k in ALIASES.items()})
        if wanted in names:
            return names[wanted]
    known = sorted(METHODS) + sorted(cls.__name__ for cls in METHODS.values())
    raise ThresholdInputError(
        f"method must be one of {known} (any case; also {sorted(ALIASES)}), "
        f"got {method!r}"
    )


def make_estimator(
    method: str | type[ThresholdEstimator] | None = None, start: int = 60, **options: Any
) -> ThresholdEstimator:
    """Build a threshold estimator by name or class.

    Parameters
    ----------
    method : str, estimator class or None
        Which method (see :func:`method_name`: ``"bayesian"``, ``"ML-PEST"``,
        ``"mlpest"``, ``MLPest``...); None: :func:`default_method` for the ``mode`` and
        ``criterion_uv`` options (the population prior for a resting threshold).
    start : int
        First intensity, % MSO.
    **options
        Keyword arguments of the estimator's class: ``mode`` (``"rest"``/``"active"``),
        ``criterion_uv``, ``min_percent``, ``max_percent``, ``max_trials`` and the
        method's own options (see each class).

    Returns
    -------
    ThresholdEstimator
        A fresh estimator.
    """
    if method is None:
        method = default_method(options.get("mode", "resting"), options.get("criterion_uv"))
    return METHODS[method_name(method)](start, **options)


__all__ = [
    "ACTIVE_CRITERION_UV",
    "ALIASES",
    "DEFAULT_ACTIVE_METHOD",
    "DEFAULT_ESTIMATOR",
    "DEFAULT_METHOD",
    "METHODS",
    "RESTING_CRITERION_UV",
    "BayesianAdaptive",
    "MLPest",
    "PopulationBayesian",
    "RelativeFrequency",
    "StochasticApproximation",
    "ThresholdEstimator",
    "ThresholdInputError",
    "ThresholdStateError",
    "Trial",
    "default_method",
    "make_estimator",
    "method_name",
    "resolve_criterion",
]
