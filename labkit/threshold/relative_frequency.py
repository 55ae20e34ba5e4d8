"""Relative-frequency method (Rossini-Rothwell, IFCN).

The threshold is the lowest intensity at which at least ``hits_needed`` of
``pulses_per_level`` stimuli (5 of 10) evoke an MEP at or above the criterion
(Rossini et al. 1994, 2015; Rothwell et al. 1999).

Procedure used here
-------------------
Each level is tested with up to 10 pulses and stopped early as soon as its outcome is
known: it *passes* at the 5th hit, it *fails* at the 6th miss. The search keeps the lowest
passing level ``P`` and the highest failing level ``F``:

* no failing level yet: step down from ``P`` by ``coarse_step_percent``;
* no passing level yet: step up from ``F`` by ``coarse_step_percent``;
* both known and ``P - F > 1``: test ``P - 1`` (fine 1 % steps down);
* ``P - F == 1``: done, threshold = ``P``.

A level at the stimulator's maximum that fails ends the hunt with a NaN threshold
(the threshold is above the output range); a passing level at the minimum ends it with
the minimum.
"""

from __future__ import annotations

import math

from labkit.threshold._base import ThresholdEstimator, ThresholdInputError


class RelativeFrequency(ThresholdEstimator):
    """Rossini-Rothwell relative-frequency threshold hunt.

    Parameters
    ----------
    start : int
        First level, % MSO; ideally slightly suprathreshold.
    coarse_step_percent : int
        Step while bracketing the threshold, % MSO (IFCN: 2-5 %); 1 gives the plain
        1 % step-down procedure.
    pulses_per_level : int
        Stimuli per level at most (10).
    hits_needed : int
        Hits needed for a level to pass (5).
    **kwargs
        ``mode``, ``criterion_uv``, ``min_percent``, ``max_percent``, ``max_trials``
        (default 300) as in :class:`~labkit.threshold.ThresholdEstimator`.
    """

    def __init__(
        self,
        start: int = 60,
        *,
        coarse_step_percent: int = 4,
        pulses_per_level: int = 10,
        hits_needed: int = 5,
        **kwargs,
    ) -> None:
        kwargs.setdefault("max_trials", 300)
        super().__init__(start, **kwargs)
        if not (isinstance(coarse_step_percent, int) and 1 <= coarse_step_percent <= 20):
            raise ThresholdInputError(
                f"coarse_step_percent must be an integer in [1, 20] % MSO, "
                f"got {coarse_step_percent!r}"
            )
        if not (isinstance(pulses_per_level, int) and 1 <= pulses_per_level <= 50):
            raise ThresholdInputError(
                f"pulses_per_level must be an integer in [1, 50], got {pulses_per_level!r}"
            )
        if not (isinstance(hits_needed, int) and 1 <= hits_needed <= pulses_per_level):
            raise ThresholdInputError(
                f"hits_needed must be an integer in [1, pulses_per_level={pulses_per_level}], "
                f"got {hits_needed!r}"
            )
        self.coarse_step_percent = coarse_step_percent
        self.pulses_per_level = pulses_per_level
        self.hits_needed = hits_needed
        self.lowest_pass: int | None = None
        self.highest_fail: int | None = None
        self.level = self.start
        self.level_hits = 0
        self.level_misses = 0
        #: Outcome of every finished level: ``{intensity: (hits, misses, passed)}``.
        self.levels: dict[int, tuple[int, int, bool]] = {}
        self._over = False

    def _propose(self) -> float:
        return self.level

    def _observe(self, intensity_percent: int, amplitude_uv: float, hit: bool) -> None:
        if hit:
            self.level_hits += 1
        else:
            self.level_misses += 1
        misses_to_fail = self.pulses_per_level - self.hits_needed + 1
        if self.level_hits >= self.hits_needed:
            self._close_level(passed=True)
        elif self.level_misses >= misses_to_fail:
            self._close_level(passed=False)

    def _close_level(self, passed: bool) -> None:
        lvl = self.level
        self.levels[lvl] = (self.level_hits, self.level_misses, passed)
        self.level_hits = self.level_misses = 0
        if passed:
            self.lowest_pass = lvl if self.lowest_pass is None else min(self.lowest_pass, lvl)
        else:
            self.highest_fail = lvl if self.highest_fail is None else max(self.highest_fail, lvl)
        P, F = self.lowest_pass, self.highest_fail
        if F is None:
            if P <= self.min_percent:
                self._over = True
                return
            nxt = P - self.coarse_step_percent
        elif P is None:
            if F >= self.max_percent:
                self._over = True
                return
            nxt = F + self.coarse_step_percent
        elif P - F > 1:
            nxt = P - 1
        else:
            self._over = True
            return
        self.level = self.clip(nxt)

    def _finished(self) -> bool:
        return self._over

    def _estimate(self) -> float:
        return float(self.lowest_pass) if self.lowest_pass is not None else math.nan
