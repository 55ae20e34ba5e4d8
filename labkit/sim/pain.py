"""A seeded model of a patient's NRS pain over an rTMS course (pure: no I/O, no clock).

The model is deliberately simple and says so. A patient has a baseline pain on the 0–10
numeric rating scale (NRS) and a *relief* fraction ``r`` (0 = baseline pain, 1 = no pain):

- each active session moves ``r`` a step towards the patient's plateau,
  ``r ← r + (plateau − r) · (1 − exp(−1 / build_up_sessions))`` (relief builds over the
  first sessions, as in the 5–10-session courses of Lefaucheur 2014/2020);
- between visits ``r`` decays exponentially with time constant ``decay_days``, so relief
  fades over the 1–3 months after the course (what follow-ups measure);
- right after a session the rating is lower still by ``acute_relief_fraction``
  (transient within-session relief);
- a sham session moves ``r`` towards ``placebo_fraction`` instead of the plateau and gives
  at most the placebo's acute relief;
- every rating adds Gaussian rating noise (``rating_sd_nrs``) and is rounded to a whole
  number and clipped to 0–10; adverse events (mild headache, neck or scalp pain) occur
  per session with probability ``adverse_event_probability``.

:meth:`PainCourseModel.diary` gives what trials analyse instead of in-clinic ratings: a
**daily diary** (the day's average pain, from a baseline week before the first session
to the last follow-up, with day-to-day noise ``diary_sd_nrs`` and a few missed days) on
the same latent relief, and the **PGIC** (Patient Global Impression of Change, 1–7) at
the end of treatment and at each follow-up. The diary carries no acute post-session
relief: it is the day's average, not the minute after stimulation.

Defaults: a *responder* builds towards ~55 % relief (7 → 3-4 on the NRS) and a *non-responder*
~10 % (about the placebo level); responders keep about 30 % relief at one month (on
average; borderline 30 % responders) and lose most of it by three months. These
figures are plausible round numbers for a demo, not fitted to trial data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from labkit.errors import ConfigError

PatientKind = Literal["responder", "non-responder"]
#: Adverse events the model can produce, with their relative frequencies.
ADVERSE_EVENT_WEIGHTS = {"headache": 0.6, "neck pain": 0.25, "scalp pain": 0.15}


@dataclass(frozen=True)
class PainProfile:
    """How one patient's pain responds to a course.

    Attributes
    ----------
    baseline_nrs : float
        Pain before the course, NRS 0–10.
    plateau_fraction : float
        Relief (fraction of baseline) that active sessions build towards, 0–1.
    build_up_sessions : float
        Time constant of the build-up, in sessions (> 0).
    acute_relief_fraction : float
        Extra relief right after an active session, fraction of the current pain, 0–1.
    placebo_fraction : float
        Relief that sham sessions build towards (and their acute relief), 0–1.
    decay_days : float
        Time constant of the fading of relief between and after sessions, days (> 0).
    rating_sd_nrs : float
        Standard deviation of the rating noise, NRS points (≥ 0).
    adverse_event_probability : float
        Probability of a mild adverse event per session, 0–1.
    diary_sd_nrs : float
        Day-to-day noise of the daily diary ratings, NRS points (≥ 0).
    diary_missing_probability : float
        Probability that a diary day is left blank, 0–1.
    """

    baseline_nrs: float = 7.0
    plateau_fraction: float = 0.55
    build_up_sessions: float = 3.0
    acute_relief_fraction: float = 0.12
    placebo_fraction: float = 0.1
    decay_days: float = 60.0
    rating_sd_nrs: float = 0.4
    adverse_event_probability: float = 0.1
    diary_sd_nrs: float = 0.7
    diary_missing_probability: float = 0.05

    def __post_init__(self) -> None:
        checks = {
            "baseline_nrs": (self.baseline_nrs, 0.0, 10.0),
            "plateau_fraction": (self.plateau_fraction, 0.0, 1.0),
            "acute_relief_fraction": (self.acute_relief_fraction, 0.0, 1.0),
            "placebo_fraction": (self.placebo_fraction, 0.0, 1.0),
            "adverse_event_probability": (self.adverse_event_probability, 0.0, 1.0),
            "rating_sd_nrs": (self.rating_sd_nrs, 0.0, 5.0),
            "diary_sd_nrs": (self.diary_sd_nrs, 0.0, 5.0),
            "diary_missing_probability": (self.diary_missing_probability, 0.0, 1.0),
        }
        for name, (value, low, high) in checks.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and low <= value <= high):
                raise ConfigError(f"must be in [{low:g}, {high:g}], got {value!r}",
                                  field=f"PainProfile.{name}")
        for name in ("build_up_sessions", "decay_days"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"must be > 0, got {value!r}", field=f"PainProfile.{name}")


def patient_profile(kind: PatientKind, *, baseline_nrs: float = 7.0) -> PainProfile:
    """The default profile of a ``"responder"`` or a ``"non-responder"``.

    Parameters
    ----------
    kind : {"responder", "non-responder"}
        Which kind of patient.
    baseline_nrs : float
        Pain before the course, NRS 0–10.

    Returns
    -------
    PainProfile
    """
    if kind == "responder":
        return PainProfile(baseline_nrs=baseline_nrs)
    if kind == "non-responder":
        return PainProfile(baseline_nrs=baseline_nrs, plateau_fraction=0.1,
                           acute_relief_fraction=0.04)
    raise ConfigError(f"must be 'responder' or 'non-responder', got {kind!r}", field="kind")


@dataclass(frozen=True)
class PainVisit:
    """One visit of the course.

    Attributes
    ----------
    day : int
        Day of the visit, counted from the first session (day 0).
    kind : {"session", "follow-up"}
        A stimulation session or a follow-up rating without stimulation.
    nrs_before : int
        Rating at the start of the visit (the only rating of a follow-up), NRS 0–10.
    nrs_after : int | None
        Rating after the stimulation (sessions only).
    relief_fraction : float
        The model's noise-free relief after the visit (ground truth), 0–1.
    adverse_events : tuple of str
        Adverse events of this session (empty for follow-ups).
    sham : bool
        The session was sham.
    """

    day: int
    kind: Literal["session", "follow-up"]
    nrs_before: int
    nrs_after: int | None = None
    relief_fraction: float = 0.0
    adverse_events: tuple[str, ...] = field(default_factory=tuple)
    sham: bool = False


@dataclass(frozen=True)
class SimulatedDiary:
    """A patient's daily diary and PGIC ratings over a course (see :meth:`PainCourseModel.diary`).

    Attributes
    ----------
    days : tuple of int
        Rated days (0 = first session; negative = baseline week); missed days are absent.
    nrs : tuple of int
        The day's average pain, NRS 0–10.
    relief_by_day : dict
        Noise-free relief fraction of every day (ground truth), including missed days.
    pgic : dict
        PGIC score (1 = very much improved … 7 = very much worse) by time point
        (``"end of treatment"``, ``"follow-up 1 month"``, ``"follow-up 3 months"``).
    last_session_day : int
        Day of the last session.
    """

    days: tuple[int, ...]
    nrs: tuple[int, ...]
    relief_by_day: dict[int, float]
    pgic: dict[str, int]
    last_session_day: int


def _pgic_from_relief(relief: float) -> int:
    """PGIC a patient with this true relief would give (before noise)."""
    for score, floor in ((1, 0.5), (2, 0.3), (3, 0.1), (4, -0.1)):
        if relief >= floor:
            return score
    return 5


def _months_label(days: int) -> str:
    months = days / 30.0
    if float(months).is_integer():
        return f"follow-up {months:g} month" + ("" if months == 1 else "s")
    return f"follow-up day {days}"


def weekday_schedule(n_sessions: int = 10) -> list[int]:
    """Days of ``n_sessions`` daily sessions on weekdays (Mon–Fri), starting on day 0."""
    if not isinstance(n_sessions, int) or not 1 <= n_sessions <= 100:
        raise ConfigError(f"must be an integer in [1, 100], got {n_sessions!r}",
                          field="n_sessions")
    days, day = [], 0
    while len(days) < n_sessions:
        if day % 7 < 5:
            days.append(day)
        day += 1
    return days


class PainCourseModel:
    """Seeded NRS ratings of one patient over a course and its follow-ups.

    Parameters
    ----------
    profile : PainProfile
        The patient (see :func:`patient_profile`).
    seed : int
        Seed of the rating noise and adverse events; the same seed gives the same course.
    sham : bool
        Every session is sham.

    Examples
    --------
    >>> model = PainCourseModel(patient_profile("responder"), seed=1)
    >>> visits = model.simulate(weekday_schedule(10), follow_up_days=(30, 90))
    >>> len(visits)
    12
    """

    def __init__(self, profile: PainProfile, seed: int = 0, *, sham: bool = False) -> None:
        self.profile = profile
        self.seed = int(seed)
        self.sham = bool(sham)

    def _rate(self, rng: np.random.Generator, latent_nrs: float) -> int:
        noisy = latent_nrs + rng.normal(0.0, self.profile.rating_sd_nrs)
        return int(np.clip(np.floor(noisy + 0.5), 0, 10))

    def simulate(self, session_days: list[int], follow_up_days: tuple[int, ...] = (30, 90)
                 ) -> list[PainVisit]:
        """Ratings at every session and follow-up.

        Parameters
        ----------
        session_days : list of int
            Days of the stimulation sessions, increasing, from 0.
        follow_up_days : tuple of int
            Follow-ups, in days after the **last** session (e.g. 30 and 90 for one and
            three months).

        Returns
        -------
        list of PainVisit
            Sessions then follow-ups, in time order.
        """
        days = [int(d) for d in session_days]
        if not days or any(b <= a for a, b in zip(days, days[1:], strict=False)) or days[0] < 0:
            raise ConfigError(f"must be increasing days from 0, got {session_days!r}",
                              field="session_days")
        if any(int(d) <= 0 for d in follow_up_days):
            raise ConfigError(f"must be days after the last session (> 0), got "
                              f"{follow_up_days!r}", field="follow_up_days")
        p = self.profile
        rng = np.random.default_rng([self.seed, 4])
        gain = 1.0 - math.exp(-1.0 / p.build_up_sessions)
        target = p.placebo_fraction if self.sham else p.plateau_fraction
        acute = min(p.acute_relief_fraction, p.placebo_fraction) if self.sham \
            else p.acute_relief_fraction
        ae_probability = p.adverse_event_probability * (0.5 if self.sham else 1.0)
        kinds, weights = zip(*ADVERSE_EVENT_WEIGHTS.items(), strict=True)
        relief, last_day = 0.0, days[0]
        visits: list[PainVisit] = []
        for day in days:
            relief *= math.exp(-(day - last_day) / p.decay_days)
            before = self._rate(rng, p.baseline_nrs * (1.0 - relief))
            relief += (target - relief) * gain
            after = self._rate(rng, p.baseline_nrs * (1.0 - relief) * (1.0 - acute))
            events: tuple[str, ...] = ()
            if rng.random() < ae_probability:
                events = (str(rng.choice(kinds, p=np.asarray(weights) / sum(weights))),)
            visits.append(PainVisit(day, "session", before, after, relief, events, self.sham))
            last_day = day
        end_day, end_relief = days[-1], relief
        for offset in sorted(int(d) for d in follow_up_days):
            relief = end_relief * math.exp(-offset / p.decay_days)
            nrs = self._rate(rng, p.baseline_nrs * (1.0 - relief))
            visits.append(PainVisit(end_day + offset, "follow-up", nrs, None, relief, (),
                                    self.sham))
        return visits

    def diary(self, session_days: list[int], follow_up_days: tuple[int, ...] = (30, 90), *,
              baseline_days: int = 7) -> SimulatedDiary:
        """Daily diary from ``baseline_days`` before the first session to the last follow-up.

        Parameters
        ----------
        session_days : list of int
            Days of the stimulation sessions, increasing, from 0.
        follow_up_days : tuple of int
            Follow-ups in days after the last session; the PGIC is asked at the end of
            treatment (last session day) and at each follow-up.
        baseline_days : int
            Days rated before the first session (7 = the usual baseline week).

        Returns
        -------
        SimulatedDiary
        """
        days = [int(d) for d in session_days]
        if not days or any(b <= a for a, b in zip(days, days[1:], strict=False)) or days[0] < 0:
            raise ConfigError(f"must be increasing days from 0, got {session_days!r}",
                              field="session_days")
        if any(int(d) <= 0 for d in follow_up_days):
            raise ConfigError(f"must be days after the last session (> 0), got "
                              f"{follow_up_days!r}", field="follow_up_days")
        if not isinstance(baseline_days, int) or not 1 <= baseline_days <= 60:
            raise ConfigError(f"must be an integer in [1, 60], got {baseline_days!r}",
                              field="baseline_days")
        p = self.profile
        rng = np.random.default_rng([self.seed, 5])  # own stream: visits stay as they were
        gain = 1.0 - math.exp(-1.0 / p.build_up_sessions)
        target = p.placebo_fraction if self.sham else p.plateau_fraction
        daily_decay = math.exp(-1.0 / p.decay_days)
        sessions, last = set(days), days[-1]
        end = last + max((int(d) for d in follow_up_days), default=0)
        relief, truth, rated, values = 0.0, {}, [], []
        for day in range(-baseline_days, end + 1):
            relief *= daily_decay if day > -baseline_days else 1.0
            if day in sessions:
                relief += (target - relief) * gain
            truth[day] = relief
            noisy = p.baseline_nrs * (1.0 - relief) + rng.normal(0.0, p.diary_sd_nrs)
            if rng.random() < p.diary_missing_probability:
                continue
            rated.append(day)
            values.append(int(np.clip(np.floor(noisy + 0.5), 0, 10)))
        pgic = {}
        for label, day in [("end of treatment", last)] + [
                (_months_label(int(d)), last + int(d)) for d in sorted(follow_up_days)]:
            score = _pgic_from_relief(truth[day]) + int(rng.choice([-1, 0, 0, 0, 1]))
            pgic[label] = int(np.clip(score, 1, 7))
        return SimulatedDiary(tuple(rated), tuple(values), truth, pgic, last)
