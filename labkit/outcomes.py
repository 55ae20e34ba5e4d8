"""Pain outcomes as trials report them (pure: arrays and numbers in, outcomes out).

Definitions (IMMPACT: Dworkin et al. 2008, J Pain 9:105; Farrar et al. 2001, Pain 94:149;
for TMS pain studies Klein et al. 2015, Pain 156:1601):

- **baseline** = mean of the daily 0–10 NRS diary over the week before the first
  session (days −7 … −1); **endpoint** = mean over the last week of treatment (the
  7 days ending on the last session day); each **follow-up** = mean over the 7 days
  ending on the follow-up day. A window needs at least :data:`MIN_DIARY_DAYS` rated days,
  otherwise it has no value (never a single rating standing in for the week);
- **change** = baseline − window mean (NRS points, positive = less pain);
  **reduction** = change / baseline (percent);
- responders: reduction ≥ 30 % ("moderate", clinically important: Farrar 2001),
  ≥ 50 % ("substantial"), and a change ≥ 2 NRS points (Farrar 2001);
- **PGIC** (Patient Global Impression of Change, 1 = very much improved … 7 = very much
  worse): "much" or "very much improved" (1–2) counts as a PGIC responder;
- follow-up should reach at least 3 months (:data:`MIN_FOLLOW_UP_DAYS`) to say anything
  about durability (Klein 2015); :attr:`PatientOutcomes.follow_up_3_months` says whether
  it did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import ConfigError

if TYPE_CHECKING:
    import pandas

WINDOW_DAYS = 7
#: Fewest rated days that make a weekly mean.
MIN_DIARY_DAYS = 4
#: Reduction thresholds, percent of baseline.
RESPONDER_THRESHOLDS_PERCENT = (30.0, 50.0)
#: Change that counts as clinically important, NRS points (Farrar 2001).
RESPONDER_CHANGE_NRS = 2.0
#: Shortest follow-up that speaks to durability, days (3 months).
MIN_FOLLOW_UP_DAYS = 90
PGIC_LABELS = {1: "very much improved", 2: "much improved", 3: "minimally improved",
               4: "no change", 5: "minimally worse", 6: "much worse", 7: "very much worse"}
BASELINE_DEFINITION = (f"mean of the daily NRS diary over the {WINDOW_DAYS} days before the "
                       f"first session (at least {MIN_DIARY_DAYS} rated days)")


@dataclass(frozen=True)
class Diary:
    """Daily NRS ratings: ``day`` (0 = first session, negative before it) and ``nrs``.

    Raises
    ------
    ConfigError
        Lengths differ, a day repeats, or a rating is not a whole number 0–10.
    """

    days: tuple[int, ...]
    nrs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.days) != len(self.nrs):
            raise ConfigError(f"days ({len(self.days)}) and nrs ({len(self.nrs)}) differ in "
                              "length", field="diary")
        if len(set(self.days)) != len(self.days):
            raise ConfigError("a day is rated twice", field="diary.days")
        for day, value in zip(self.days, self.nrs, strict=True):
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0 <= value <= 10 and float(value).is_integer()):
                raise ConfigError(f"day {day}: NRS must be a whole number 0–10, got {value!r}",
                                  field="diary.nrs")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, float]]) -> Diary:
        """From ``(day, nrs)`` pairs in any order."""
        ordered = sorted((int(d), float(v)) for d, v in pairs)
        return cls(tuple(d for d, _ in ordered), tuple(v for _, v in ordered))

    def window(self, first_day: int, last_day: int) -> np.ndarray:
        """Ratings of the days ``first_day`` … ``last_day`` (inclusive)."""
        days = np.asarray(self.days)
        return np.asarray(self.nrs, dtype=float)[(days >= first_day) & (days <= last_day)]


def window_mean(diary: Diary, first_day: int, last_day: int,
                min_days: int = MIN_DIARY_DAYS) -> float | None:
    """Mean NRS over a window, or ``None`` when fewer than ``min_days`` days were rated."""
    values = diary.window(first_day, last_day)
    return float(values.mean()) if len(values) >= min_days else None


@dataclass(frozen=True)
class TimepointOutcome:
    """Outcome at one time point (end of treatment or a follow-up).

    Attributes
    ----------
    label : str
        ``"end of treatment"`` or ``"follow-up 1 month"`` …
    first_day, last_day : int
        The diary window.
    mean_nrs : float | None
        Mean of the window (``None``: too few rated days; then every flag is ``None``).
    n_days : int
        Rated days in the window.
    change_nrs, reduction_percent : float | None
        Baseline − mean, and that as a percent of baseline.
    responder_30, responder_50, responder_2pt : bool | None
        Reduction ≥ 30 %, ≥ 50 %, change ≥ 2 NRS points.
    pgic : int | None
        PGIC rating at this time point (1–7), when asked.
    """

    label: str
    first_day: int
    last_day: int
    mean_nrs: float | None
    n_days: int
    change_nrs: float | None
    reduction_percent: float | None
    responder_30: bool | None
    responder_50: bool | None
    responder_2pt: bool | None
    pgic: int | None = None

    @property
    def pgic_responder(self) -> bool | None:
        """PGIC "much" or "very much improved" (``None`` when not asked)."""
        return None if self.pgic is None else self.pgic <= 2


@dataclass(frozen=True)
class PatientOutcomes:
    """One patient's baseline and outcomes."""

    subject_id: str
    baseline_nrs: float
    baseline_days: int
    timepoints: tuple[TimepointOutcome, ...]
    last_session_day: int

    @property
    def longest_follow_up_days(self) -> int:
        """Days from the last session to the last follow-up with a value (0 if none)."""
        ends = [t.last_day - self.last_session_day for t in self.timepoints
                if t.label.startswith("follow-up") and t.mean_nrs is not None]
        return max(ends, default=0)

    @property
    def follow_up_3_months(self) -> bool:
        """A follow-up with a value at least 3 months after the last session."""
        return self.longest_follow_up_days >= MIN_FOLLOW_UP_DAYS

    def table(self) -> pandas.DataFrame:
        """One row per time point."""
        import pandas as pd

        return pd.DataFrame([{
            "patient": self.subject_id, "when": t.label, "days": f"{t.first_day}..{t.last_day}",
            "rated_days": t.n_days, "baseline": round(self.baseline_nrs, 2),
            "mean_nrs": None if t.mean_nrs is None else round(t.mean_nrs, 2),
            "change": None if t.change_nrs is None else round(t.change_nrs, 2),
            "reduction_%": None if t.reduction_percent is None else round(t.reduction_percent, 1),
            ">=30 %": t.responder_30, ">=50 %": t.responder_50, ">=2 pt": t.responder_2pt,
            "PGIC": t.pgic, "PGIC responder": t.pgic_responder,
        } for t in self.timepoints])


def _flags(baseline: float, mean: float | None) -> tuple:
    if mean is None:
        return None, None, None, None, None
    change = baseline - mean
    reduction = 100.0 * change / baseline
    # round first so that e.g. 7 -> 4.9 is not lost to binary float error
    r, c = round(reduction, 9), round(change, 9)
    low, high = RESPONDER_THRESHOLDS_PERCENT
    return change, reduction, r >= low, r >= high, c >= RESPONDER_CHANGE_NRS


def _months(days: int) -> str:
    months = days / 30.0
    return f"{months:g} month" + ("" if months == 1 else "s") if float(months).is_integer() \
        else f"day {days}"


def patient_outcomes(subject_id: str, diary: Diary, last_session_day: int,
                     follow_up_days: Sequence[int] = (30, 90),
                     pgic: Mapping[str, int] | None = None) -> PatientOutcomes:
    """Baseline, end-of-treatment and follow-up outcomes of one patient.

    Parameters
    ----------
    subject_id : str
        Pseudonymous code.
    diary : Diary
        Daily NRS ratings (day 0 = first session).
    last_session_day : int
        Day of the last session (end of treatment).
    follow_up_days : sequence of int
        Follow-ups, days after the last session (30 = 1 month, 90 = 3 months).
    pgic : mapping | None
        PGIC score (1–7) by time-point label (``"end of treatment"``,
        ``"follow-up 1 month"``…).

    Returns
    -------
    PatientOutcomes

    Raises
    ------
    ConfigError
        No baseline week (fewer than :data:`MIN_DIARY_DAYS` rated days before day 0), a
        baseline of 0 (no reduction is defined), or a PGIC outside 1–7.
    """
    baseline = window_mean(diary, -WINDOW_DAYS, -1)
    if baseline is None:
        raise ConfigError(
            f"subject {subject_id}: the baseline needs at least {MIN_DIARY_DAYS} daily ratings "
            f"in the {WINDOW_DAYS} days before the first session, found "
            f"{len(diary.window(-WINDOW_DAYS, -1))}", field="diary")
    if baseline == 0:
        raise ConfigError(f"subject {subject_id}: baseline NRS is 0, no reduction is defined",
                          field="diary")
    pgic = dict(pgic or {})
    for label, score in pgic.items():
        if score not in PGIC_LABELS:
            raise ConfigError(f"{label}: PGIC must be 1–7, got {score!r}", field="pgic")
    # the last week of treatment never reaches back into the baseline week
    windows = [("end of treatment", max(0, last_session_day - WINDOW_DAYS + 1),
                last_session_day)]
    for fu in sorted(int(d) for d in follow_up_days):
        if fu <= 0:
            raise ConfigError(f"follow-ups are days after the last session (> 0), got {fu}",
                              field="follow_up_days")
        end = last_session_day + fu
        windows.append((f"follow-up {_months(fu)}", end - WINDOW_DAYS + 1, end))
    timepoints = []
    for label, first, last in windows:
        mean = window_mean(diary, first, last)
        change, reduction, r30, r50, r2 = _flags(baseline, mean)
        timepoints.append(TimepointOutcome(label, first, last, mean,
                                           len(diary.window(first, last)), change, reduction,
                                           r30, r50, r2, pgic.get(label)))
    return PatientOutcomes(subject_id, baseline, len(diary.window(-WINDOW_DAYS, -1)),
                           tuple(timepoints), int(last_session_day))


def group_outcomes(patients: Sequence[PatientOutcomes]) -> pandas.DataFrame:
    """Responder counts and rates per time point over a group of patients.

    A patient whose window has too few rated days counts as a non-responder (the usual
    conservative handling of missing data) and is listed in ``missing``.
    """
    import pandas as pd

    labels: list[str] = []
    for p in patients:
        labels += [t.label for t in p.timepoints if t.label not in labels]
    rows = []
    for label in labels:
        points = [t for p in patients for t in p.timepoints if t.label == label]
        n = len(points)

        def count(attr: str, pts: list = points) -> int:
            return sum(bool(getattr(t, attr)) for t in pts)

        reductions = [t.reduction_percent for t in points if t.reduction_percent is not None]
        asked = [t for t in points if t.pgic is not None]
        rows.append({
            "when": label, "patients": n,
            "missing": sum(t.mean_nrs is None for t in points),
            "mean reduction %": round(float(np.mean(reductions)), 1) if reductions else None,
            ">=30 %": f"{count('responder_30')}/{n}", ">=50 %": f"{count('responder_50')}/{n}",
            ">=2 pt": f"{count('responder_2pt')}/{n}",
            "PGIC much/very much improved": (f"{sum(t.pgic_responder for t in asked)}/"
                                             f"{len(asked)}" if asked else "not asked"),
        })
    return pd.DataFrame(rows)
