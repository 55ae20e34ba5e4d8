"""What the session log records for the signed session record: wall clock, operator, site,
and whether adverse events were asked about."""

from __future__ import annotations

from datetime import datetime

import pytest

from labkit.errors import ConfigError
from labkit.session import Session


def test_start_and_end_carry_the_wall_clock_with_its_zone_next_to_the_lsl_time(tmp_path):
    before = datetime.now().astimezone().timestamp()
    with Session(tmp_path, "P001", operator="A. Operator", site="Lab 2") as ses:
        pass
    start, end = ses.events("session_start")[0], ses.events("session_end")[0]
    for rec in (start, end):
        stamp = datetime.fromisoformat(rec.payload["wall_clock"])
        assert stamp.utcoffset() is not None  # ISO 8601 with the zone, not naive
        assert before - 1 <= rec.payload["unix_time_s"] <= datetime.now().timestamp() + 1
        assert abs(stamp.timestamp() - rec.payload["unix_time_s"]) < 1.0
        assert isinstance(rec.time_s, float)  # the LSL clock stays the record's time
    assert start.payload["operator"] == "A. Operator" and start.payload["site"] == "Lab 2"


def test_operator_and_site_are_optional_but_never_blank(tmp_path):
    with Session(tmp_path, "P001") as ses:
        pass
    assert "operator" not in ses.events("session_start")[0].payload
    with pytest.raises(ConfigError) as info:
        Session(tmp_path, "P002", operator="  ")
    assert info.value.field == "operator"


def test_adverse_event_check_records_who_asked_and_the_answer(tmp_path):
    with Session(tmp_path, "P001") as ses:
        ses.log_adverse_event_check(asked_by="A. Operator", none_reported=True)
    (rec,) = ses.events("adverse_event_check")
    assert rec.payload == {"asked_by": "A. Operator", "none_reported": True}
    with Session(tmp_path, "P003") as ses, pytest.raises(ConfigError):
        ses.log_adverse_event_check(asked_by="", none_reported=True)
