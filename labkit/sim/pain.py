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
    """

    baseline_nrs: float = 7.0
    plateau_fraction: float = 0.55
    build_up_sessions: float = 3.0
    acute_relief_fraction: float = 0.12
    placebo_fraction: float = 0.1
    decay_days: float = 60.0
    rating_sd_nrs: float = 0.4
    adverse_event_probability: float = 0.1

    def __post_init__(self) -> None:
        checks = {
            "baseline_nrs": (self.baseline_nrs, 0.0, 10.0),
            "plateau_fraction": (self.plateau_fraction, 0.0, 1.0),
            "acute_relief_fraction": (self.acute_relief_fraction, 0.0, 1.0),
            "placebo_fraction": (self.placebo_fraction, 0.0, 1.0),
            "adverse_event_probability": (self.adverse_event_probability, 0.0, 1.0),
            "rating_sd_nrs": (self.rating_sd_nrs, 0.0, 5.0),
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
