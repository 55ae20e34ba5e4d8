"""Shared machinery of the motor-threshold estimators.

Every estimator follows one small interface (see ``DESIGN.md``)::

    est = MLPest(start=60)            # %MSO
    while not est.done:
        x = est.next_intensity()      # %MSO on the stimulator's 1 % grid
        est.update(x, amplitude_uv)   # peak-to-peak MEP in µV
    est.threshold                     # %MSO (float); est.history (list of Trial)

This module holds what all of them share: the criterion (resting 50 µV, active 200 µV),
the intensity grid and its limits, the argument checks and the trial record. Estimators
are pure objects: no I/O, no clock and no global random state.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from labkit.errors import LabkitError

#: Peak-to-peak criterion of the resting motor threshold, µV (IFCN).
RESTING_CRITERION_UV = 50.0
#: Peak-to-peak criterion of the active motor threshold, µV (IFCN, at ~10-20 % MVC).
ACTIVE_CRITERION_UV = 200.0
_MODES = {"resting": RESTING_CRITERION_UV, "active": ACTIVE_CRITERION_UV}


class ThresholdInputError(LabkitError, ValueError):
    """An argument given to an estimator is invalid (names the argument and its range)."""


class ThresholdStateError(LabkitError, RuntimeError):
    """A call came in the wrong order (``update`` before ``next_intensity``, or after done)."""


@dataclass(frozen=True)
class Trial:
    """One stimulus of a threshold hunt.

    Attributes
    ----------
    index : int
        Position in the hunt, from 0.
    intensity_percent : int
        Stimulus intensity, % MSO.
    amplitude_uv : float
        Peak-to-peak MEP amplitude, µV.
    hit : bool
        ``amplitude_uv >= criterion_uv``.
    estimate_percent : float
        The estimator's threshold estimate after this trial, % MSO (NaN if none yet).
    """

    index: int
    intensity_percent: int
    amplitude_uv: float
    hit: bool
    estimate_percent: float


def resolve_criterion(mode: str, criterion_uv: float | None) -> float:
    """Return the peak-to-peak criterion in µV for a mode or an explicit value.

    Parameters
    ----------
    mode : {"resting", "active"}
        Resting (50 µV) or active (200 µV) motor threshold.
    criterion_uv : float | None
        Explicit criterion; overrides ``mode`` when given.

    Returns
    -------
    float
        Criterion, µV.
    """
    if criterion_uv is not None:
        value = _finite(criterion_uv, "criterion_uv")
        if value <= 0:
            raise ThresholdInputError(f"criterion_uv must be > 0 µV, got {criterion_uv!r}")
        return value
    if mode not in _MODES:
        raise ThresholdInputError(
            f"mode must be one of {sorted(_MODES)}, got {mode!r}"
        )
    return _MODES[mode]


def _finite(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ThresholdInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ThresholdInputError(f"{name} must be finite, got {value!r}")
    return out


def _grid_int(value: object, name: str, lo: int, hi: int) -> int:
    """Check that ``value`` is an integer % MSO within [lo, hi] and return it."""
    out = _finite(value, name)
    if out != round(out):
        raise ThresholdInputError(
            f"{name} must be on the 1 % MSO grid (a whole number), got {value!r}"
        )
    out_int = int(round(out))
    if not lo <= out_int <= hi:
        raise ThresholdInputError(f"{name} must be within [{lo}, {hi}] % MSO, got {value!r}")
    return out_int


class ThresholdEstimator(ABC):
    """Base class of the estimators: grid, limits, checks, history.

    Parameters
    ----------
    start : int
        First intensity, % MSO (on the 1 % grid, within the limits).
    mode : {"resting", "active"}
        Criterion 50 µV (resting) or 200 µV (active).
    criterion_uv : float | None
        Explicit peak-to-peak criterion, µV; overrides ``mode``.
    min_percent, max_percent : int
        Stimulator output range, % MSO. Every proposed intensity is clipped into it.
    max_trials : int
        Hard cap on the number of stimuli; the hunt is done when it is reached.
    """

    def __init__(
        self,
        start: int = 60,
        *,
        mode: str = "resting",
        criterion_uv: float | None = None,
        min_percent: int = 1,
        max_percent: int = 100,
        max_trials: int = 100,
    ) -> None:
        lo = _grid_int(min_percent, "min_percent", 0, 100)
        hi = _grid_int(max_percent, "max_percent", 0, 100)
        if lo >= hi:
            raise ThresholdInputError(
                f"min_percent ({lo}) must be below max_percent ({hi}), both in [0, 100] % MSO"
            )
        self.min_percent = lo
        self.max_percent = hi
        self.start = _grid_int(start, "start", lo, hi)
        self.criterion_uv = resolve_criterion(mode, criterion_uv)
        self.max_trials = int(_grid_int(max_trials, "max_trials", 1, 10_000))
        self.history: list[Trial] = []
        self._pending: int | None = None

    # -- interface ---------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True when the hunt has finished (stopping rule met or ``max_trials`` reached)."""
        return len(self.history) >= self.max_trials or self._finished()

    @property
    def n_trials(self) -> int:
        """Number of stimuli given so far."""
        return len(self.history)

    @property
    def threshold(self) -> float:
        """Current threshold estimate, % MSO (NaN before any information)."""
        return float(self._estimate())

    def next_intensity(self) -> int:
        """Intensity of the next stimulus, % MSO on the 1 % grid, within the limits.

        Calling it again before :meth:`update` returns the same intensity.
        """
        if self.done:
            raise ThresholdStateError(
                f"{type(self).__name__} is done after {self.n_trials} trials; "
                "read .threshold instead of asking for another intensity"
            )
        if self._pending is None:
            self._pending = self.clip(self._propose())
        return self._pending

    def update(self, intensity_percent: float, amplitude_uv: float) -> None:
        """Record the response to the stimulus proposed by :meth:`next_intensity`.

        Parameters
        ----------
        intensity_percent : float
            Intensity actually given, % MSO; must equal the proposed one.
        amplitude_uv : float
            Peak-to-peak MEP amplitude, µV (finite, >= 0).
        """
        if self._pending is None:
            raise ThresholdStateError(
                "update() called without a pending stimulus: call next_intensity() first"
            )
        x = _grid_int(intensity_percent, "intensity_percent", self.min_percent, self.max_percent)
        if x != self._pending:
            raise ThresholdInputError(
                f"intensity_percent must be the proposed {self._pending} % MSO, got {x}"
            )
        amp = _finite(amplitude_uv, "amplitude_uv")
        if amp < 0:
            raise ThresholdInputError(
                f"amplitude_uv must be a peak-to-peak value >= 0 µV, got {amplitude_uv!r}"
            )
        hit = amp >= self.criterion_uv
        self._pending = None
        self._observe(x, amp, hit)
        self.history.append(Trial(len(self.history), x, amp, hit, float(self._estimate())))

    def history_frame(self):
        """The history as a :class:`pandas.DataFrame`, one row per trial."""
        import pandas as pd

        cols = ["index", "intensity_percent", "amplitude_uv", "hit", "estimate_percent"]
        return pd.DataFrame([dataclasses.astuple(t) for t in self.history], columns=cols)

    def clip(self, intensity_percent: float) -> int:
        """Round to the 1 % grid and clip into ``[min_percent, max_percent]``."""
        return int(min(max(round(float(intensity_percent)), self.min_percent), self.max_percent))

    # -- for subclasses ----------------------------------------------------------------
    @abstractmethod
    def _propose(self) -> float:
        """Next intensity before rounding and clipping."""

    @abstractmethod
    def _observe(self, intensity_percent: int, amplitude_uv: float, hit: bool) -> None:
        """Take in one response."""

    @abstractmethod
    def _estimate(self) -> float:
        """Current estimate, % MSO."""

    def _finished(self) -> bool:
        return False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(trials={self.n_trials}, done={self.done}, "
            f"threshold={self.threshold:.1f} % MSO)"
        )
