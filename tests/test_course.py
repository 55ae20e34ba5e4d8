"""Course summary from session folders: RMT, pulses, NRS, responder status, adverse events."""

from __future__ import annotations

import pytest

from labkit.course import (
    BASELINE_DEFINITION,
    percent_reduction,
    summarize_course,
    summarize_session,
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
    assert course.baseline_nrs == 8
    assert "first stimulation session" in BASELINE_DEFINITION


def test_responder_status_at_end_and_follow_ups(course_root):
    outcomes = summarize_course(course_root, "P7").outcomes()
    assert [o.label for o in outcomes] == ["end of course", "follow-up day 32",
                                           "follow-up day 92"]
    end, one, three = outcomes
    assert end.nrs == 4 and end.reduction_percent == pytest.approx(50.0)
    assert end.responder_30 and end.responder_50  # exactly 50 % counts
    assert one.reduction_percent == pytest.approx(37.5)
    assert one.responder_30 and not one.responder_50
    assert three.reduction_percent == pytest.approx(12.5)
    assert not three.responder_30


def test_end_of_course_falls_back_to_before_rating(tmp_path):
    _session(tmp_path, "P8", "01", day=0, before=10, after=9, rmt=40, pulses=5)
    _session(tmp_path, "P8", "02", day=1, before=7, rmt=40, pulses=5)  # no "after" rating
    (end,) = summarize_course(tmp_path, "P8").outcomes()
    assert end.nrs == 7 and end.reduction_percent == pytest.approx(30.0)
    assert end.responder_30 and not end.responder_50


def test_adverse_events_and_table(course_root):
    course = summarize_course(course_root, "P7")
    assert course.adverse_events == [{"session_id": "02", "event": "headache",
                                      "severity": "mild", "description": "gone by evening"}]
    table = course.table()
    assert list(table["session"]) == ["01", "02", "03", "fu1m", "fu3m"]
    assert list(table["visit"]) == ["rTMS", "rTMS", "rTMS", "follow-up", "follow-up"]
    assert list(table["pulses_delivered"]) == [20, 30, 10, 0, 0]
    assert list(table["reduction_percent"]) == [12.5, 37.5, 50.0, 37.5, 12.5]
    assert table.loc[1, "adverse_events"] == "headache"


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
    _session(tmp_path, "P2", "fu1", day=30, follow_up=4)
    with pytest.raises(ConfigError, match="no baseline"):
        summarize_course(tmp_path, "P2").outcomes()
