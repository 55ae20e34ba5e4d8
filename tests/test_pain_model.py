"""The seeded pain-course model: reproducible, responders respond, sham and follow-ups."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.sim.pain import (
    PainCourseModel,
    PainProfile,
    patient_profile,
    weekday_schedule,
)

DAYS = weekday_schedule(10)


def _simulate(kind="responder", seed=0, **kwargs):
    return PainCourseModel(patient_profile(kind), seed=seed, **kwargs).simulate(DAYS, (30, 90))


def test_weekday_schedule_skips_weekends():
    assert weekday_schedule(10) == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    with pytest.raises(ConfigError, match="n_sessions"):
        weekday_schedule(0)


def test_same_seed_same_course_other_seed_differs():
    a, b, c = _simulate(seed=4), _simulate(seed=4), _simulate(seed=5)
    assert a == b
    assert [v.nrs_before for v in a] != [v.nrs_before for v in c] or \
        [v.nrs_after for v in a] != [v.nrs_after for v in c]


def test_visits_sessions_then_follow_ups_on_the_right_days():
    visits = _simulate()
    assert [v.kind for v in visits] == ["session"] * 10 + ["follow-up"] * 2
    assert [v.day for v in visits] == DAYS + [11 + 30, 11 + 90]
    assert all(v.nrs_after is None for v in visits[10:])
    assert all(isinstance(v.nrs_before, int) and 0 <= v.nrs_before <= 10 for v in visits)


def test_noise_free_relief_builds_then_fades():
    profile = PainProfile(rating_sd_nrs=0.0, adverse_event_probability=0.0)
    visits = PainCourseModel(profile, seed=0).simulate(DAYS, (30, 90))
    relief = [v.relief_fraction for v in visits]
    # grows session by session (weekend decay is small compared with a session's gain)
    assert all(b > a for a, b in zip(relief[:10], relief[1:10], strict=False))
    assert 0.45 < relief[9] < 0.55
    end = relief[9]
    assert relief[10] == pytest.approx(end * np.exp(-30 / 60.0))
    assert relief[11] == pytest.approx(end * np.exp(-90 / 60.0))
    # without noise the ratings are the rounded latent pain
    assert visits[0].nrs_before == 7
    assert visits[10].nrs_before == round(7 * (1 - relief[10]))


def _mean_end_reduction(kind, sham=False, n=40):
    out = []
    for seed in range(n):
        v = PainCourseModel(patient_profile(kind), seed=seed, sham=sham).simulate(DAYS, (30,))
        out.append((v[0].nrs_before - v[9].nrs_after) / v[0].nrs_before)
    return float(np.mean(out))


def test_responder_improves_non_responder_and_sham_do_not():
    assert _mean_end_reduction("responder") >= 0.5
    assert _mean_end_reduction("non-responder") < 0.25
    assert _mean_end_reduction("responder", sham=True) < 0.25


def test_follow_up_at_one_month_keeps_some_relief_three_months_little():
    one, three = [], []
    for seed in range(40):
        v = PainCourseModel(patient_profile("responder"), seed=seed).simulate(DAYS, (30, 90))
        one.append(1 - v[10].nrs_before / v[0].nrs_before)
        three.append(1 - v[11].nrs_before / v[0].nrs_before)
    assert 0.25 <= np.mean(one) <= 0.4
    assert np.mean(three) < 0.2


def test_adverse_events_rate_and_kinds():
    profile = PainProfile(adverse_event_probability=0.5)
    events = [e for seed in range(20)
              for v in PainCourseModel(profile, seed=seed).simulate(DAYS, ())
              for e in v.adverse_events]
    assert 60 <= len(events) <= 140  # 200 sessions at p = 0.5
    assert set(events) <= {"headache", "neck pain", "scalp pain"}
    none = PainProfile(adverse_event_probability=0.0)
    assert not any(v.adverse_events for v in PainCourseModel(none).simulate(DAYS, ()))


def test_bad_inputs_name_the_field():
    with pytest.raises(ConfigError, match=r"PainProfile.baseline_nrs.*\[0, 10\]"):
        PainProfile(baseline_nrs=11)
    with pytest.raises(ConfigError, match="PainProfile.decay_days"):
        PainProfile(decay_days=0)
    with pytest.raises(ConfigError, match="kind"):
        patient_profile("maybe")
    model = PainCourseModel(patient_profile("responder"))
    with pytest.raises(ConfigError, match="session_days"):
        model.simulate([0, 0, 1])
    with pytest.raises(ConfigError, match="follow_up_days"):
        model.simulate([0, 1], (0,))


# -- daily diary and PGIC ---------------------------------------------------------------
def test_diary_covers_the_baseline_week_the_course_and_the_follow_ups():
    model = PainCourseModel(patient_profile("responder"), seed=3)
    d = model.diary(weekday_schedule(10), follow_up_days=(30, 90))
    assert d.last_session_day == 11
    assert min(d.days) >= -7 and max(d.days) <= 101
    assert set(d.relief_by_day) == set(range(-7, 102))  # truth for every day, rated or not
    missed = 109 - len(d.days)
    assert 0 < missed < 20  # a few blank days at 5 %
    assert all(0 <= v <= 10 for v in d.nrs)
    assert set(d.pgic) == {"end of treatment", "follow-up 1 month", "follow-up 3 months"}
    assert model.diary(weekday_schedule(10)) == d  # seeded


def test_diary_relief_matches_the_visits_ground_truth():
    """The diary and the in-clinic visits share one latent relief trajectory."""
    model = PainCourseModel(patient_profile("responder"), seed=2)
    visits = model.simulate(weekday_schedule(10), follow_up_days=(30, 90))
    d = model.diary(weekday_schedule(10), follow_up_days=(30, 90))
    for v in visits:
        assert d.relief_by_day[v.day] == pytest.approx(v.relief_fraction, rel=1e-9)
    assert d.relief_by_day[-1] == 0.0


def test_diary_outcomes_separate_responders_from_non_responders():
    from labkit.outcomes import Diary, patient_outcomes

    hits = {"responder": 0, "non-responder": 0}
    for kind in hits:
        for seed in range(20):
            d = PainCourseModel(patient_profile(kind), seed=seed).diary(weekday_schedule(10))
            out = patient_outcomes("P", Diary(d.days, d.nrs), d.last_session_day, (30, 90),
                                   d.pgic)
            hits[kind] += bool(out.timepoints[0].responder_30)
    assert hits["responder"] >= 18 and hits["non-responder"] <= 1


def test_a_sham_course_stays_near_placebo_in_the_diary():
    d = PainCourseModel(patient_profile("responder"), seed=1, sham=True).diary(
        weekday_schedule(10))
    assert max(d.relief_by_day.values()) <= 0.1 + 1e-12
