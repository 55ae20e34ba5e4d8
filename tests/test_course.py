"""Course summary from session folders and the diary: RMT, pulses, NRS, outcomes, adverse events."""

from __future__ import annotations

import pytest

from labkit.bids import AllocationKey
from labkit.course import (
    BASELINE_DEFINITION,
    percent_reduction,
    read_diary,
    summarize_course,
    summarize_session,
    write_diary,
)
from labkit.errors import ConfigError
from labkit.session import Session


def _session(root, sub, ses, *, day, before=None, after=None, rmt=None, pulses=0,
             follow_up=None, events=(), sham=False, end="finish"):
    with Session.open(root, sub, ses) as s:
        if rmt is not None:
            s.log_threshold(rmt, method="bayesian", n_pulses=12)
        if before is not None:
            s.log_pain_rating(before, "before", course_day=day)
        if pulses:
            s.sink("run", {"protocol": "m1_10hz_pain_1000", "sham": sham,
                           "total_pulses": 1000, "intensity_percent": 45,
                           "shortened_from": None})
            for i in range(pulses):
                s.sink("pulse", {"index": i, "time_s": 100.0 + 0.1 * i,
                                 "intensity_percent": 45})
            s.sink(end, {"pulses_delivered": pulses})
        if after is not None:
            s.log_pain_rating(after, "after", course_day=day)
        if follow_up is not None:
            s.log_pain_rating(follow_up, "follow-up", course_day=day)
        for e in events:
            s.log_adverse_event(e, severity="mild", description="gone by evening")
    return s


@pytest.fixture
def course_root(tmp_path):
    root = tmp_path / "data"
    with Session.open(root, "P7", "01") as s:
        s.log_screening({"epilepsy": False}, eligible=True)
    # session 01 gets its ratings and pulses in a second visit of the same folder
    with Session.resume(root, "P7", "01") as s:
        s.log_threshold(50.0, method="bayesian", kind="amt")  # AMT is not the RMT
        s.log_threshold(52.0, method="mlpest")
        s.log_pain_rating(8, "before", course_day=0)
        s.sink("run", {"protocol": "m1_10hz_pain_1000", "sham": False, "total_pulses": 1000,
                       "intensity_percent": 47})
        for i in range(20):
            s.sink("pulse", {"index": i, "time_s": 10.0 + i, "intensity_percent": 47})
        s.sink("finish", {"pulses_delivered": 20})
        s.log_pain_rating(7, "after", course_day=0)
    _session(root, "P7", "02", day=1, before=6, after=5, rmt=54, pulses=30,
             events=["headache"])
    _session(root, "P7", "03", day=2, before=5, after=4, rmt=53.0, pulses=10, end="stop")
    _session(root, "P7", "fu1m", day=32, follow_up=5)
    _session(root, "P7", "fu3m", day=92, follow_up=7)
    return root


def test_session_summary_reads_what_the_log_says(course_root):
    s = summarize_session(course_root / "sub-P7" / "ses-01")
    assert s.session_id == "01"
    assert s.rmt_percent == 52.0 and s.rmt_method == "mlpest"  # the last RMT, not the AMT
    assert s.pulses_delivered == 20 and s.pulses_planned == 1000
    assert s.intensity_percent == 47 and s.protocol == "m1_10hz_pain_1000"
    assert (s.nrs_before, s.nrs_after, s.day) == (8, 7, 0)
    assert s.screening_cleared is True and s.run_state == "finished"
    assert not s.is_follow_up
    stopped = summarize_session(course_root / "sub-P7" / "ses-03")
    assert stopped.run_state == "stopped" and stopped.pulses_delivered == 10


def test_course_orders_sessions_and_follow_ups(course_root):
    course = summarize_course(course_root, "P7")
    assert [s.session_id for s in course.sessions] == ["01", "02", "03"]
    assert [f.session_id for f in course.follow_ups] == ["fu1m", "fu3m"]
    assert [s.rmt_percent for s in course.sessions] == [52.0, 54.0, 53.0]
    assert course.pulses_delivered == 60
    assert course.last_session_day == 2
    assert "days before the first session" in BASELINE_DEFINITION


def test_outcomes_come_from_the_diary_not_from_in_clinic_ratings(tmp_path):
    """In-clinic: 8 before session 1 and 4 after session 10 (50 %, acute relief included).
    The diary: baseline week 8, last week of treatment 6 -> 25 %, not a responder."""
    for k, day in enumerate([0, 1, 2, 3, 4, 7, 8, 9, 10, 11]):
        _session(tmp_path, "P7", f"{k + 1:02d}", day=day, before=8 if k == 0 else 6,
                 after=4 if k == 9 else 6, rmt=50, pulses=2)
    with Session.open(tmp_path, "P7", "fu3m") as s:  # PGIC asked at the 3-month visit
        s.log_event("pgic", timepoint="follow-up 3 months", score=4)
        s.log_pain_rating(7, "follow-up", course_day=101)
    days = list(range(-7, 0)) + list(range(0, 12)) + list(range(35, 42)) + [95, 97, 99]
    nrs = [8] * 7 + [7] * 5 + [6] * 7 + [5] * 7 + [7] * 3
    write_diary(tmp_path, "P7", days, nrs)
    out = summarize_course(tmp_path, "P7").outcomes(follow_up_days=(30, 90))
    assert out.baseline_nrs == 8.0 and out.last_session_day == 11
    assert [t.label for t in out.timepoints] == ["end of treatment", "follow-up 1 month",
                                                 "follow-up 3 months"]
    end, one, three = out.timepoints
    assert (end.first_day, end.last_day, end.mean_nrs) == (5, 11, 6.0)
    assert end.reduction_percent == pytest.approx(25.0)
    assert not end.responder_30 and end.responder_2pt  # 2 points, but only 25 %
    assert (one.first_day, one.last_day) == (35, 41)
    assert one.mean_nrs == 5.0 and one.reduction_percent == pytest.approx(37.5)
    assert one.responder_30 and not one.responder_50 and one.responder_2pt
    assert three.n_days == 3 and three.mean_nrs is None  # 3 rated days are not a week
    assert three.responder_30 is None
    assert not out.follow_up_3_months  # the 3-month window has no value
    # the in-clinic numbers would have called this patient a 50 % responder
    sessions = summarize_course(tmp_path, "P7").sessions
    assert percent_reduction(sessions[0].nrs_before, sessions[-1].nrs_after) == 50.0
    # PGIC is read from the visits by time-point label
    assert three.pgic == 4 and three.pgic_responder is False
    assert end.pgic is None and end.pgic_responder is None  # not asked


def test_without_a_diary_there_is_no_responder_status(course_root):
    with pytest.raises(ConfigError, match="no daily pain diary"):
        summarize_course(course_root, "P7").outcomes()


def test_diary_round_trip_and_bad_files(tmp_path):
    write_diary(tmp_path, "P3", [-1, -2, 0], [5, 6, 4])
    diary = read_diary(tmp_path, "P3")
    assert diary.days == (-2, -1, 0) and diary.nrs == (6.0, 5.0, 4.0)
    assert read_diary(tmp_path, "P4") is None
    path = tmp_path / "sub-P3" / "pain_diary.tsv"
    path.write_text("day\tnrs\n1\tlots\n")
    with pytest.raises(ConfigError, match="line 2") as info:
        read_diary(tmp_path, "P3")
    assert info.value.file == str(path)
    with pytest.raises(ConfigError, match="whole number 0–10"):
        write_diary(tmp_path, "P3", [0], [11])


def test_adverse_events_and_table(course_root):
    course = summarize_course(course_root, "P7")
    assert course.adverse_events == [{"session_id": "02", "event": "headache",
                                      "severity": "mild", "description": "gone by evening"}]
    table = course.table()
    assert list(table["session"]) == ["01", "02", "03", "fu1m", "fu3m"]
    assert list(table["visit"]) == ["stimulation"] * 3 + ["follow-up"] * 2
    assert list(table["pulses_delivered"]) == [20, 30, 10, 0, 0]
    assert table.loc[1, "adverse_events"] == "headache"
    assert "arm" not in table and "sham" not in table.to_string().lower()
    blinded = course.table(AllocationKey({"X": "sham", "Y": "active"}))
    assert list(blinded["arm"])[:3] == ["Y", "Y", "Y"]


def test_crashed_run_has_no_end_state(tmp_path):
    """A run record without finish/stop/error (crash): pulses counted, state unknown."""
    with Session.open(tmp_path, "P9", "01") as s:
        s.log_pain_rating(6, "before")
        s.sink("run", {"protocol": "m1_10hz_pain_1000-demo-1of20trains", "sham": False,
                       "shortened_from": "m1_10hz_pain_1000", "total_pulses": 50,
                       "intensity_percent": 45})
        for i in range(7):
            s.sink("pulse", {"index": i, "time_s": 5.0 + 0.1 * i, "intensity_percent": 45})
    got = summarize_session(s.path)
    assert got.shortened_from == "m1_10hz_pain_1000" and got.pulses_planned == 50
    assert got.pulses_delivered == 7
    assert got.day is None and got.run_state is None


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no session with a log.jsonl for subject P1"):
        summarize_course(tmp_path, "P1")
    with pytest.raises(ConfigError, match="no session log"):
        summarize_session(tmp_path)
    with pytest.raises(ConfigError, match="baseline NRS is 0"):
        percent_reduction(0, 0)
    with pytest.raises(ConfigError, match="field 'nrs'.*0–10"):
        percent_reduction(5, 11)
    _session(tmp_path, "P2", "01", day=0, before=6, rmt=40, pulses=3)
    write_diary(tmp_path, "P2", [-2, -1, 0], [6, 6, 6])
    with pytest.raises(ConfigError, match="at least 4 daily ratings .* found 2"):
        summarize_course(tmp_path, "P2").outcomes()
