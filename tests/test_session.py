"""Sessions on disk: pseudonymous ids, the fsync'd JSONL log, torn tails, disk full."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from labkit.errors import ConfigError
from labkit.markers import PulseEvent
from labkit.recording import AppendFile
from labkit.session import (
    LogFormatError,
    PersonalDataError,
    Session,
    SessionError,
    SessionLog,
    SessionLogError,
    check_session_id,
    check_subject_id,
    read_log,
)


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FullDiskFile(AppendFile):
    """An AppendFile that accepts ``budget`` bytes, writes part of the next, then ENOSPC."""

    def __init__(self, path, budget: int):
        super().__init__(path)
        self.budget = budget
        self.syncs = 0

    def write(self, data) -> None:
        data = bytes(data)
        if len(data) > self.budget:
            super().write(data[: self.budget])
            self.budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(data)
        super().write(data)

    def sync(self) -> None:
        self.syncs += 1
        super().sync()


# -- ids -------------------------------------------------------------------------------
@pytest.mark.parametrize("good, label", [
    ("01", "01"), ("P007", "P007"), ("sub-01", "01"), ("sub01", "sub01"), ("S12b", "S12b"),
])
def test_pseudonymous_subject_ids_are_accepted(good, label):
    assert check_subject_id(good) == label


@pytest.mark.parametrize("bad, why", [
    ("John Smith", "spaces"),
    ("jane.doe@example.org", "e-mail"),
    ("1985-03-12", "date"),
    ("12/03/1985", "date"),
    ("19850312", "digit run"),
    ("+33 6 12 34 56 78", "spaces"),
    ("0612345678", "digit run"),
    ("Smith", "not a short code"),
    ("", "not a short code"),
])
def test_personal_data_in_subject_id_is_refused(bad, why):
    with pytest.raises(PersonalDataError) as info:
        check_subject_id(bad)
    msg = str(info.value)
    assert "field 'subject_id'" in msg
    assert why in msg
    assert "^[A-Za-z]{0,4}[0-9]{1,4}[A-Za-z]?$" in msg  # the allowed pattern is named
    assert info.value.field == "subject_id"


def test_session_ids():
    assert check_session_id(3) == "03"
    assert check_session_id("ses-fu1") == "fu1"
    with pytest.raises(PersonalDataError, match="field 'session_id'"):
        check_session_id("2024-01-05")


# -- the log ---------------------------------------------------------------------------
def test_log_round_trip_with_injected_clock(tmp_path):
    clock = FakeClock(10.0)
    log = SessionLog(tmp_path / "log.jsonl", clock=clock)
    log.append("note", text="hello")
    clock.t = 12.5
    log.append("threshold", threshold_percent=55.0)
    log.append("pulse", time_s=13.25, intensity_percent=50)
    log.close()
    recs = read_log(tmp_path / "log.jsonl")
    assert [(r.seq, r.time_s, r.kind) for r in recs] == [
        (0, 10.0, "note"), (1, 12.5, "threshold"), (2, 13.25, "pulse")]
    assert recs[0].payload == {"text": "hello"}
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[2]) == {
        "seq": 2, "time_s": 13.25, "kind": "pulse", "payload": {"intensity_percent": 50}}


def test_every_append_is_fsynced(tmp_path):
    files = []

    def opener(path):
        f = FullDiskFile(path, budget=10**9)
        files.append(f)
        return f

    log = SessionLog(tmp_path / "log.jsonl", opener=opener)
    for i in range(5):
        log.append("note", i=i)
    assert files[0].syncs == 5


def test_log_refuses_bad_kind_and_keeps_awkward_values(tmp_path):
    import dataclasses

    import numpy as np

    @dataclasses.dataclass
    class Verdict:
        ok: bool
        cell: tuple

    log = SessionLog(tmp_path / "log.jsonl")
    with pytest.raises(ValueError, match="lower-case identifier"):
        log.append("Pulse!")
    with pytest.raises(ValueError, match="time_s of 'note' must be finite"):
        log.append("note", time_s=float("nan"))
    rec = log.append("safety", value=float("nan"), peak=np.float32(1.5), n=np.int64(3),
                     arr=np.arange(3), verdict=Verdict(True, (10, 90)), where=tmp_path,
                     inf=-float("inf"))
    back = read_log(tmp_path / "log.jsonl")
    assert [r.seq for r in back] == [0]
    assert back[0].payload == rec.payload == {
        "value": "NaN", "peak": 1.5, "n": 3, "arr": [0, 1, 2],
        "verdict": {"ok": True, "cell": [10, 90]}, "where": str(tmp_path), "inf": "-Infinity"}


def test_torn_last_line_is_ignored_then_repaired_on_reopen(tmp_path):
    path = tmp_path / "log.jsonl"
    log = SessionLog(path, clock=FakeClock(1.0))
    log.append("note", text="a")
    log.append("note", text="b")
    log.close()
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(b'{"seq": 2, "time_s": 3.0, "kind": "pul')
    recs = read_log(path)
    assert [r.payload["text"] for r in recs] == ["a", "b"]
    log = SessionLog(path, clock=FakeClock(5.0))
    log.append("note", text="c")
    log.close()
    recs = read_log(path)
    assert [r.kind for r in recs] == ["note", "note", "fault", "note"]
    assert recs[2].payload["bytes_dropped"] == len(b'{"seq": 2, "time_s": 3.0, "kind": "pul')
    assert [r.seq for r in recs] == [0, 1, 2, 3]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"seq": 0, "time_s": 1.0, "kind": "note", "payload": {}}')
    assert [r.kind for r in read_log(path)] == ["note"]


def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"seq": 0, "time_s": 1.0, "kind": "note", "payload": {}}\n'
        '{"seq": 1, "time_s": 2.0, "kind": "no\n'
        '{"seq": 2, "time_s": 3.0, "kind": "note", "payload": {}}\n'
    )
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)
    assert info.value.line == 2


def test_line_missing_keys_is_an_error(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"seq": 0, "kind": "note"}\n')
    with pytest.raises(LogFormatError, match=r"line 1: missing key\(s\) \['time_s'\]"):
        read_log(path)


def test_disk_full_while_logging_raises_and_keeps_earlier_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    log = SessionLog(path, opener=lambda p: FullDiskFile(p, budget=200))
    log.append("note", text="first")
    with pytest.raises(SessionLogError, match="disk full while logging 'pulse'.*stop stimulation"):
        for i in range(20):
            log.append("pulse", time_s=float(i), intensity_percent=50, index=i)
    assert log.failed
    with pytest.raises(SessionLogError, match="log is closed"):
        log.append("note", text="after")
    recs = read_log(path)  # the partial last line is torn and ignored
    assert recs[0].payload == {"text": "first"}
    assert all(r.kind in ("note", "pulse") for r in recs)
    assert path.read_bytes()[-1:] != b"\n"  # the cut really happened mid-line


def test_nowait_appends_keep_order_and_reach_disk(tmp_path):
    path = tmp_path / "log.jsonl"
    log = SessionLog(path, clock=FakeClock(1.0))
    for i in range(50):
        log.append_nowait("pulse", time_s=float(i), index=i)
        if i % 10 == 9:
            log.append("note", after=i)  # a synchronous append writes the queue first
    deadline = 200
    while len(read_log(path)) < 55 and deadline:
        time.sleep(0.01)
        deadline -= 1
    recs = read_log(path)  # written by the writer thread without flush() or close()
    assert [r.seq for r in recs] == list(range(55))
    assert [r.payload["index"] for r in recs if r.kind == "pulse"] == list(range(50))
    assert recs[10].kind == "note" and recs[10].payload == {"after": 9}
    log.close()


def test_background_write_failure_is_reported_and_blocks_further_logging(tmp_path):
    errors = []
    log = SessionLog(tmp_path / "log.jsonl", opener=lambda p: FullDiskFile(p, budget=100),
                     on_error=errors.append)
    for i in range(10):  # ~80 bytes each: the disk fills in the background
        log.append_nowait("pulse", time_s=float(i), intensity_percent=50, index=i)
    for _ in range(300):
        if errors:
            break
        time.sleep(0.01)
    assert errors and "disk full" in str(errors[0])
    assert log.failed
    with pytest.raises(SessionLogError, match="log is closed.*disk full"):
        log.append_nowait("note")
    with pytest.raises(SessionLogError, match="log is closed"):
        log.append("note")
    recs = read_log(tmp_path / "log.jsonl")  # whatever fitted, in order; the cut line is torn
    assert len(recs) < 10
    assert [(r.seq, r.payload["index"]) for r in recs] == [(i, i) for i in range(len(recs))]


def test_session_on_fault_hears_background_log_failure(tmp_path):
    faults = []
    Session(tmp_path, "01", 1).close()
    ses = Session.resume(tmp_path, "01", 1, on_fault=faults.append,
                         log_opener=lambda p: FullDiskFile(p, budget=400))
    for i in range(10):
        try:
            ses.log_pulse(time_s=float(i), intensity_percent=50, index=i, nowait=True)
        except SessionLogError:
            break
    for _ in range(300):
        if faults:
            break
        time.sleep(0.01)
    assert faults and isinstance(faults[0], SessionLogError)
    assert "stop stimulation" in str(faults[0])


# -- the session -----------------------------------------------------------------------
def test_session_layout_and_start_records(tmp_path):
    with Session(tmp_path, "P007", clock=FakeClock(7.0)) as s:
        assert s.path == tmp_path / "sub-P007" / "ses-01"
        assert s.recordings_dir.is_dir()
        s.log_pain_rating(6, when="before")
    kinds = [r.kind for r in read_log(s.log_path)]
    assert kinds == ["session_start", "versions", "pain_rating", "session_end"]
    versions = read_log(s.log_path, kind="versions")[0].payload
    assert versions["packages"]["numpy"]
    assert versions["python"].count(".") == 2


def test_next_session_number_open_and_resume(tmp_path):
    Session(tmp_path, "01").close()
    s2 = Session(tmp_path, "01")
    s2.close()
    assert s2.session_id == "02"
    with pytest.raises(SessionError, match="already exists; use Session.resume"):
        Session.open(tmp_path, "01", "02")
    with pytest.raises(SessionError, match="no session to resume"):
        Session.resume(tmp_path, "01", "09")
    s = Session.resume(tmp_path, "01", 2)
    s.close()
    kinds = [r.kind for r in read_log(s.log_path)]
    assert kinds.count("session_resume") == 1 and kinds.count("session_start") == 1


def test_session_refuses_personal_data(tmp_path):
    with pytest.raises(PersonalDataError, match="field 'subject_id'"):
        Session(tmp_path, "Marie Curie")
    assert not any(tmp_path.iterdir())  # nothing written under a personal name


@pytest.mark.parametrize("nrs, when, msg", [
    (11, "before", "0–10"), (-1, "after", "0–10"), (float("nan"), "before", "integer"),
    (5.5, "before", "integer"), (True, "before", "integer"), (5, "during", "follow-up"),
])
def test_pain_rating_validation(tmp_path, nrs, when, msg):
    with Session(tmp_path, "01") as s, pytest.raises(ConfigError, match=msg):
        s.log_pain_rating(nrs, when=when)


def test_helpers_write_what_analysis_needs(tmp_path):
    with Session(tmp_path, "01", clock=FakeClock(50.0)) as s:
        s.log_pain_rating(7.0, when="before")
        s.log_threshold(48, method="MLPest", n_pulses=18)
        s.log_adverse_event("headache", severity="mild", description="after session")
        s.log_override("PI approved 115 % RMT", limit="intensity_ceiling")
        s.log_pulse(PulseEvent(time_s=51.5, intensity_percent=43, device="Magstim", index=0,
                               extra={"train_index": 0}),
                    intensity_rmt_percent=90, protocol="m1_10hz_1000")
        with pytest.raises(ConfigError, match="field 'threshold_percent'"):
            s.log_threshold(130, method="x")
        with pytest.raises(ConfigError, match="field 'severity'"):
            s.log_adverse_event("seizure", severity="catastrophic")
        with pytest.raises(ConfigError, match="field 'reason'"):
            s.log_override("  ")
    pain = s.events("pain_rating")[0]
    assert pain.payload == {"nrs": 7, "when": "before"}
    pulse = s.events("pulse")[0]
    assert pulse.time_s == 51.5
    assert pulse.payload == {"intensity_percent": 43, "device": "Magstim", "index": 0,
                             "train_index": 0, "intensity_rmt_percent": 90,
                             "protocol": "m1_10hz_1000"}
    assert s.events("threshold")[0].payload["threshold_percent"] == 48.0
    assert s.events("adverse_event")[0].payload["event"] == "headache"


def test_sink_takes_time_from_payload_and_keeps_order(tmp_path):
    with Session(tmp_path, "01", clock=FakeClock(5.0)) as s:
        for i in range(20):
            s.sink("pulse", {"index": i, "time_s": 10.0 + i, "intensity_percent": 40})
        s.sink("finish", {"pulses_delivered": 20})  # synchronous: the pulses are on disk
        on_disk = read_log(s.log_path)
        assert [r.kind for r in on_disk[-21:]] == ["pulse"] * 20 + ["finish"]
    pulses = s.events("pulse")
    assert [p.time_s for p in pulses] == [10.0 + i for i in range(20)]
    assert "time_s" not in pulses[0].payload
    assert s.events("finish")[0].time_s == 5.0


def test_exception_in_block_is_logged_at_session_end(tmp_path):
    with pytest.raises(RuntimeError), Session(tmp_path, "01") as s:
        raise RuntimeError("stimulator silent")
    end = s.events("session_end")[0]
    assert end.payload["error"] == "RuntimeError: stimulator silent"
    assert set(end.payload) == {"error", "wall_clock", "unix_time_s"}
