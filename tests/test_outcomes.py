"""Pain outcomes per IMMPACT / Farrar 2001 / Klein 2015 on diaries with known answers."""

from __future__ import annotations

import pytest

from labkit.errors import ConfigError
from labkit.outcomes import Diary, group_outcomes, patient_outcomes, window_mean

LAST = 11  # ten weekday sessions end on day 11


def diary(baseline: list[int], end_week: list[int], **follow_ups: list[int]) -> Diary:
    """Baseline days -7.., last treatment week days 5..11, follow-up weeks ending on 41/101."""
    pairs = list(zip(range(-7, 0), baseline, strict=False))
    pairs += list(zip(range(5, 12), end_week, strict=False))
    for key, values in follow_ups.items():
        end = LAST + {"m1": 30, "m3": 90}[key]
        pairs += list(zip(range(end - 6, end + 1), values, strict=False))
    return Diary.from_pairs(pairs)


@pytest.mark.parametrize(("base", "end", "r30", "r50", "r2"), [
    (8, 5, True, False, True),    # 37.5 %, 3 points
    (3, 2, True, False, False),   # 33 % but 1 point: the two definitions disagree
    (10, 7, True, False, True),   # exactly 30 % counts
    (6, 3, True, True, True),     # exactly 50 % counts
    (4, 2, True, True, True),     # exactly 2 points counts
    (9, 7, False, False, True),   # 2 points but 22 %
    (7, 8, False, False, False),  # worse
])
def test_responder_definitions_on_known_diaries(base, end, r30, r50, r2):
    out = patient_outcomes("P1", diary([base] * 7, [end] * 7), LAST, ())
    (t,) = out.timepoints
    assert out.baseline_nrs == base and t.mean_nrs == end
    assert t.change_nrs == pytest.approx(base - end)
    assert (t.responder_30, t.responder_50, t.responder_2pt) == (r30, r50, r2)


def test_weekly_means_average_the_daily_ratings():
    d = diary([7, 8, 7, 8, 7, 8, 7], [4, 5, 4, 5, 4, 5, 4])
    out = patient_outcomes("P1", d, LAST, ())
    assert out.baseline_nrs == pytest.approx(52 / 7)
    assert out.timepoints[0].mean_nrs == pytest.approx(31 / 7)
    assert out.timepoints[0].reduction_percent == pytest.approx(100 * (52 - 31) / 52)


def test_a_week_needs_four_rated_days():
    assert window_mean(Diary((1, 2, 3), (5, 5, 5)), 0, 6) is None
    assert window_mean(Diary((1, 2, 3, 4), (5, 5, 5, 6)), 0, 6) == 5.25
    out = patient_outcomes("P1", diary([8] * 7, [4, 4, 4]), LAST, ())
    (t,) = out.timepoints
    assert t.n_days == 3 and t.mean_nrs is None
    assert (t.responder_30, t.responder_50, t.responder_2pt) == (None, None, None)
    with pytest.raises(ConfigError, match="at least 4 daily ratings .* found 3"):
        patient_outcomes("P1", diary([8] * 3, [4] * 7), LAST, ())


def test_follow_ups_and_three_months():
    d = diary([8] * 7, [4] * 7, m1=[5] * 7, m3=[7] * 7)
    out = patient_outcomes("P1", d, LAST, (30, 90), pgic={"end of treatment": 2,
                                                          "follow-up 3 months": 4})
    end, one, three = out.timepoints
    assert [t.label for t in out.timepoints] == ["end of treatment", "follow-up 1 month",
                                                 "follow-up 3 months"]
    assert (one.first_day, one.last_day) == (35, 41) and (three.first_day, three.last_day) == (
        95, 101)
    assert end.responder_50 and one.responder_30 and not one.responder_50
    assert not three.responder_30
    assert end.pgic_responder is True and three.pgic_responder is False and one.pgic is None
    assert out.longest_follow_up_days == 90 and out.follow_up_3_months
    short = patient_outcomes("P1", d, LAST, (30,))
    assert short.longest_follow_up_days == 30 and not short.follow_up_3_months


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(ConfigError, match="whole number 0–10"):
        Diary((0,), (10.5,))
    with pytest.raises(ConfigError, match="rated twice"):
        Diary((0, 0), (1, 2))
    with pytest.raises(ConfigError, match="baseline NRS is 0"):
        patient_outcomes("P1", diary([0] * 7, [0] * 7), LAST, ())
    with pytest.raises(ConfigError, match="PGIC must be 1–7"):
        patient_outcomes("P1", diary([5] * 7, [4] * 7), LAST, (), pgic={"end of treatment": 8})


def test_group_counts_missing_weeks_as_non_responders():
    patients = [
        patient_outcomes("A", diary([8] * 7, [3] * 7), LAST, (), {"end of treatment": 1}),
        patient_outcomes("B", diary([8] * 7, [6] * 7), LAST, (), {"end of treatment": 4}),
        patient_outcomes("C", diary([8] * 7, [2] * 2), LAST, ()),
    ]
    (row,) = group_outcomes(patients).to_dict("records")
    assert row["patients"] == 3 and row["missing"] == 1
    assert row[">=30 %"] == "1/3" and row[">=50 %"] == "1/3" and row[">=2 pt"] == "2/3"
    assert row["PGIC much/very much improved"] == "1/2"
    assert row["mean reduction %"] == pytest.approx((62.5 + 25.0) / 2, abs=0.05)


def test_diary_plot_shades_the_averaged_weeks():
    from labkit.plotting import PlotInputError, plot_pain_diary

    fig = plot_pain_diary({"P1": ([-2, -1, 0, 1], [7, 8, 5, 4])},
                          [("baseline", -7, -1), ("end", 0, 1)], session_days=[0, 1])
    ax = fig.axes[0]
    assert len(ax.patches) == 2  # one shaded span per window
    assert [t.get_text() for t in ax.texts] == ["baseline", "end"]
    assert list(ax.lines[0].get_ydata()) == [7, 8, 5, 4]
    with pytest.raises(PlotInputError, match="differ in length"):
        plot_pain_diary({"P1": ([0, 1], [5])})
