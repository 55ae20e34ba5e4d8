"""Continuous recording: round trip, torn tails, disk full, kill -9, spoofed names."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from labkit.errors import StreamError
from labkit.recording import (
    AppendFile,
    RecordingError,
    StreamRecorder,
    read_markers,
    read_recording,
    to_raw,
)
from labkit.session import StorageFaultError, read_log

REPO = Path(__file__).resolve().parents[1]
FS_HZ = 1000.0


def _emg_outlet(name: str, n_ch: int = 2, source_id: str | None = None) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EMG", n_ch, FS_HZ, pylsl.cf_float32,
                            source_id or uuid.uuid4().hex)
    channels = info.desc().append_child("channels")
    for i in range(n_ch):
        ch = channels.append_child("channel")
        ch.append_child_value("label", f"EMG{i + 1}")
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EMG")
    return pylsl.StreamOutlet(info)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _push_counter(outlet, n_samples: int, start: int = 0, chunk: int = 50) -> None:
    t = pylsl.local_clock()
    for k in range(start, start + n_samples, chunk):
        block = np.zeros((chunk, 2), dtype=np.float32)
        block[:, 0] = np.arange(k, k + chunk)
        block[:, 1] = -block[:, 0] * 0.5
        outlet.push_chunk(block, t + (k + chunk - 1) / FS_HZ)


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class FullDiskFile(AppendFile):
    """Accepts ``budget`` bytes, writes part of the next write, then raises ENOSPC."""

    budgets: dict[str, int] = {}

    def __init__(self, path):
        super().__init__(path)
        self.budget = self.budgets.get(Path(path).name, 10**12)

    def write(self, data) -> None:
        data = bytes(data)
        if len(data) > self.budget:
            super().write(data[: self.budget])
            self.budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(data)
        super().write(data)


def test_round_trip_values_names_units_and_raw(tmp_path):
    name = _unique("rec-rt")
    outlet = _emg_outlet(name)
    rec = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0)
    assert _wait_for(outlet.have_consumers)
    _push_counter(outlet, 1000)
    assert _wait_for(lambda: rec.n_samples >= 1000)
    rec.stop()
    data, stamps, info = read_recording(tmp_path / "emg")
    assert data.shape == (2, 1000)
    np.testing.assert_array_equal(data[0], np.arange(1000))
    np.testing.assert_array_equal(data[1], -np.arange(1000) * 0.5)
    assert np.all(np.diff(stamps) > 0)
    assert info["ch_names"] == ["EMG1", "EMG2"] and info["units"] == ["microvolts"] * 2
    assert info["sfreq"] == FS_HZ and info["torn_bytes"] == 0
    raw = to_raw(tmp_path / "emg")
    assert raw.get_channel_types() == ["emg", "emg"]
    np.testing.assert_allclose(raw.get_data()[0, :4], np.arange(4) * 1e-6)  # µV → V
    assert raw.first_time_s == stamps[0]


def test_markers_round_trip_and_annotations(tmp_path):
    name = _unique("rec-mk")
    emg = _emg_outlet(name)
    mk = pylsl.StreamOutlet(pylsl.StreamInfo(name + "-m", "Markers", 1, 0, pylsl.cf_string,
                                             uuid.uuid4().hex))
    r_emg = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0)
    r_mk = StreamRecorder(name + "-m", tmp_path / "mk", duplicate_wait_s=0.0)
    assert _wait_for(lambda: emg.have_consumers() and mk.have_consumers())
    t0 = pylsl.local_clock()
    _push_counter(emg, 2000)
    sent = [t0 + 0.5, t0 + 1.25]
    for i, t in enumerate(sent):
        mk.push_sample([json.dumps({"event": "pulse", "index": i})], t)
    assert _wait_for(lambda: r_emg.n_samples >= 2000 and r_mk.n_samples >= 2)
    r_emg.stop()
    r_mk.stop()
    values, stamps, info = read_markers(tmp_path / "mk")
    assert [json.loads(v)["index"] for v in values] == [0, 1]
    np.testing.assert_allclose(stamps, sent, atol=1e-6)
    raw = to_raw(tmp_path / "emg", markers=tmp_path / "mk")
    assert list(raw.annotations.description) == ["pulse", "pulse"]
    np.testing.assert_allclose(raw.annotations.onset, np.array(sent) - raw.first_time_s,
                               atol=1 / FS_HZ)


def test_torn_tail_is_dropped_and_reported(tmp_path):
    name = _unique("rec-torn")
    outlet = _emg_outlet(name)
    rec = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0)
    assert _wait_for(outlet.have_consumers)
    _push_counter(outlet, 100)
    assert _wait_for(lambda: rec.n_samples >= 100)
    rec.stop()
    with open(tmp_path / "emg" / "data.f32", "ab") as f:  # one full row + 3 bytes of a row
        f.write(np.array([100, -50], dtype="<f4").tobytes() + b"\x00\x01\x02")
    data, stamps, info = read_recording(tmp_path / "emg")
    assert data.shape == (2, 100)  # the row without a timestamp is dropped too
    assert info["torn_bytes"] == 8 + 3
    np.testing.assert_array_equal(data[0], np.arange(100))
    assert info["n_gaps"] == 0


def test_gaps_in_time_axis_are_reported(tmp_path):
    name = _unique("rec-gap")
    outlet = _emg_outlet(name)
    rec = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0)
    assert _wait_for(outlet.have_consumers)
    t = pylsl.local_clock()
    block = np.zeros((100, 2), dtype=np.float32)
    outlet.push_chunk(block, t + 0.099)
    outlet.push_chunk(block, t + 0.349)  # 150 samples (0.15 s) never arrived
    assert _wait_for(lambda: rec.n_samples >= 200)
    rec.stop()
    info = read_recording(tmp_path / "emg")[2]
    assert info["n_gaps"] == 1
    assert info["max_gap_s"] == pytest.approx(0.151, abs=1e-6)


def test_existing_recording_is_not_overwritten(tmp_path):
    name = _unique("rec-twice")
    _outlet = _emg_outlet(name)
    StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0).stop()
    with pytest.raises(RecordingError, match="already holds a recording"):
        StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0)


def test_disk_full_stops_cleanly_keeps_data_and_signals(tmp_path):
    name = _unique("rec-full")
    outlet = _emg_outlet(name)
    budget_rows = 300
    FullDiskFile.budgets = {"data.f32": budget_rows * 8 + 5}  # dies inside a row
    errors: list[RecordingError] = []
    hit = threading.Event()

    def on_error(err):
        errors.append(err)
        hit.set()

    rec = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0, on_error=on_error,
                         file_opener=FullDiskFile)
    assert _wait_for(outlet.have_consumers)
    _push_counter(outlet, 1000)
    assert hit.wait(5.0)
    assert rec.failed and not _wait_for(lambda: rec.running, 0.2)
    assert errors == [rec.error]
    assert "disk full" in str(rec.error) and str(tmp_path / "emg") in str(rec.error)
    with pytest.raises(RecordingError, match="data written so far is kept"):
        rec.check()
    rec.stop()  # harmless after a failure
    data, stamps, info = read_recording(tmp_path / "emg")
    assert data.shape[1] == budget_rows  # every row that fitted, none of the torn one
    np.testing.assert_array_equal(data[0], np.arange(data.shape[1]))
    assert info["torn_bytes"] > 0
    FullDiskFile.budgets = {}


def test_session_recorder_disk_full_logs_fault_and_calls_on_fault(tmp_path):
    from labkit.session import Session

    name = _unique("rec-sesfull")
    outlet = _emg_outlet(name)
    FullDiskFile.budgets = {"data.f32": 100 * 8}
    faults: list = []
    with Session(tmp_path, "01", on_fault=faults.append) as ses:
        rec = ses.record(name, "emg", duplicate_wait_s=0.0, file_opener=FullDiskFile)
        assert _wait_for(outlet.have_consumers)
        _push_counter(outlet, 500)
        assert _wait_for(lambda: faults, 5.0)
        assert rec.failed
        assert ses.storage.fault.what == "disk full"
        with pytest.raises(StorageFaultError, match=r"\['emg'\] failed and stopped"):
            ses.clear_storage_fault("disk replaced")
    FullDiskFile.budgets = {}
    assert isinstance(faults[0], RecordingError) and "disk full" in str(faults[0])
    fault = ses.events("fault")[0].payload
    assert fault["recording"] == "emg" and "disk full" in fault["error"]
    assert fault["what"] == "disk full"
    stop = ses.events("recording_stop")[0].payload
    assert stop == {"recording": "emg", "n_samples": rec.n_samples, "failed": True}
    assert read_recording(ses.recordings()["emg"])[0].shape == (2, 100)


def test_second_stream_with_same_name_is_refused(tmp_path):
    name = _unique("rec-spoof")
    real_id, spoof_id = uuid.uuid4().hex, uuid.uuid4().hex
    _real = _emg_outlet(name, source_id=real_id)
    _spoof = _emg_outlet(name, source_id=spoof_id)
    with pytest.raises(StreamError, match="2 LSL streams are named .*pass source_id"):
        StreamRecorder(name, tmp_path / "a", duplicate_wait_s=1.0)
    rec = StreamRecorder(name, tmp_path / "b", source_id=real_id, duplicate_wait_s=1.0)
    rec.stop()
    assert read_recording(tmp_path / "b")[2]["source_id"] == real_id


def test_flush_interval_above_one_second_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"flush_interval_s must be in \(0, 1\]"):
        StreamRecorder("whatever", tmp_path / "x", flush_interval_s=2.0)


def test_low_disk_space_signals_before_data_is_lost(tmp_path, monkeypatch):
    import labkit.recording as recording

    monkeypatch.setattr(recording, "_free_bytes", lambda path: 10 * 2**20)
    name = _unique("rec-low")
    outlet = _emg_outlet(name)
    got: list[RecordingError] = []
    rec = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0, flush_interval_s=0.05,
                         min_free_bytes=64 * 2**20, on_error=got.append)
    assert _wait_for(outlet.have_consumers)
    assert _wait_for(lambda: got, 2.0)
    assert isinstance(got[0], recording.LowDiskSpaceError)
    assert "10.0 MiB free < 64.0 MiB" in str(got[0])
    _push_counter(outlet, 500)
    assert _wait_for(lambda: rec.n_samples >= 500)  # still recording
    rec.stop()
    assert rec.low_space and not rec.failed and len(got) == 1
    assert read_recording(tmp_path / "emg")[0].shape == (2, 500)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_loses_at_most_one_second(tmp_path):
    name = _unique("crash")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "helpers_crash.py"), str(tmp_path), name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        t_kill = pylsl.local_clock()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    ses = tmp_path / "sub-01" / "ses-01"
    data, stamps, info = read_recording(ses / "recordings" / "emg")
    assert data.shape[1] > 1000
    np.testing.assert_array_equal(data[0], np.arange(data.shape[1]))  # no gap, no garbage
    assert t_kill - stamps[-1] <= 1.0
    assert stamps[-1] <= t_kill + 0.01
    pulses = read_log(ses, kind="pulse")
    assert [p.payload["index"] for p in pulses] == list(range(len(pulses)))
    assert len(pulses) >= 15
    assert t_kill - pulses[-1].time_s <= 1.0
    values, mstamps, _ = read_markers(ses / "recordings" / "markers")
    assert len(values) >= len(pulses) - 10
    assert t_kill - mstamps[-1] <= 1.0
    # the crashed session can be resumed (log repaired if torn) and exported
    from labkit.bids import EMGSetup, export_bids, validate_bids
    from labkit.session import Session

    crash_emg = EMGSetup(reference="bipolar belly-tendon", placement_description="belly-tendon",
                         muscles={"FDI": "first dorsal interosseous",
                                  "APB": "abductor pollicis brevis"})

    with Session.resume(tmp_path, "01", "01") as resumed:
        resumed.note("resumed after kill -9")
    kinds = [r.kind for r in read_log(ses)]
    assert kinds[-3:] == ["session_resume", "note", "session_end"]
    out = export_bids(resumed, tmp_path / "bids", emg_setup=crash_emg, stimulator={
        "manufacturer": "Magstim", "stimulator": "Magstim 200", "coil_id": "D70",
        "target": "M1"})
    assert out.n_pulses >= len(pulses) - 2  # pulses logged after the last sample are outside
    if shutil.which("bids-validator-deno") or (Path(sys.executable).parent
                                               / "bids-validator-deno").exists():
        assert validate_bids(tmp_path / "bids").errors == []


# -- time base: raw stream timestamps + clock offsets, synchronised on read -------------------
def test_ten_seconds_of_5_khz_emg_step_by_exactly_one_sample(tmp_path):
    from labkit.sim import VirtualSubject
    from labkit.sim.amplifier import EMGAmplifier

    name = _unique("rec-exact")
    with EMGAmplifier(VirtualSubject(seed=1), name=name, source_id=name) as amp:
        rec = StreamRecorder(name, tmp_path / "emg", source_id=name, duplicate_wait_s=0.0)
        deadline = time.monotonic() + 60.0  # a loaded host may take a while to connect
        while rec.n_samples < 10 * 5000 + 1000 and time.monotonic() < deadline:
            time.sleep(0.1)
        rec.stop()
    _, raw, _ = read_recording(tmp_path / "emg", sync=False)
    data, stamps, info = read_recording(tmp_path / "emg")
    assert stamps.size >= 10 * 5000 and data.shape == (2, stamps.size)
    k = np.round((raw - amp.t0) * amp.fs).astype(np.int64)
    assert np.array_equal(np.diff(k), np.ones(k.size - 1, dtype=np.int64))  # no sample lost
    np.testing.assert_allclose(raw, amp.sample_time(k), rtol=0, atol=1e-9)  # unmodified
    np.testing.assert_allclose(np.diff(stamps), 1 / amp.fs, rtol=0, atol=1e-9)
    fit = info["clock_sync"]
    assert fit["n_offsets"] >= 10 and fit["applied"] and info["n_gaps"] == 0
    # one computer, one clock: the measured offset (the estimate's µs bias) is not applied
    assert fit["method"] == "same host" and abs(fit["measured_intercept_s"]) < 1e-3
    np.testing.assert_array_equal(stamps, raw)


def test_stream_from_another_clock_is_mapped_onto_the_local_clock(tmp_path):
    """A remote host: its clock is 1234.5 s behind ours and runs 50 ppm fast."""
    behind_s, drift = 1234.5, 50e-6
    origin = pylsl.local_clock()
    rng = np.random.default_rng(3)

    def remote(t_local):
        return origin - behind_s + (np.asarray(t_local) - origin) * (1 + drift)

    def measured_offset():  # what time_correction() would say, ±20 µs, now and then 5 ms off
        now = pylsl.local_clock()
        spoilt = 5e-3 if rng.random() < 0.1 else 0.0
        return float(now - remote(now)) + rng.uniform(-20e-6, 20e-6) + spoilt

    name = _unique("rec-remote")
    outlet = _emg_outlet(name)
    mk = pylsl.StreamOutlet(pylsl.StreamInfo(name + "-m", "Markers", 1, 0, pylsl.cf_string,
                                             uuid.uuid4().hex))
    r_emg = StreamRecorder(name, tmp_path / "emg", duplicate_wait_s=0.0,
                           clock_offset=measured_offset, clock_offset_interval_s=0.1)
    r_mk = StreamRecorder(name + "-m", tmp_path / "mk", duplicate_wait_s=0.0)
    assert _wait_for(lambda: outlet.have_consumers() and mk.have_consumers())
    t_start = pylsl.local_clock()
    local_times = t_start + np.arange(3000) / FS_HZ  # 3 s of samples, true local times
    for k in range(0, 3000, 100):
        while pylsl.local_clock() < local_times[k + 99]:
            time.sleep(0.005)
        block = np.zeros((100, 2), dtype=np.float32)
        block[:, 0] = np.arange(k, k + 100)
        outlet.push_chunk(block, remote(local_times[k:k + 100]).tolist())
    mk.push_sample(["pulse"], float(local_times[1500]))  # a local marker at sample 1500
    assert _wait_for(lambda: r_emg.n_samples >= 3000 and r_mk.n_samples >= 1)
    r_emg.stop()
    r_mk.stop()
    data, stamps, info = read_recording(tmp_path / "emg")
    raw = read_recording(tmp_path / "emg", sync=False)[1]
    np.testing.assert_allclose(raw, remote(local_times), rtol=0, atol=1e-9)  # stored as sent
    np.testing.assert_allclose(stamps, local_times, rtol=0, atol=30e-6)
    assert info["clock_sync"]["method"] == "robust linear"  # same host name, other clock
    assert info["clock_sync"]["slope"] == pytest.approx(-drift / (1 + drift), abs=15e-6)
    assert info["clock_sync"]["n_outliers"] >= 1
    _, mstamps, _ = read_markers(tmp_path / "mk")
    hit = int(np.argmin(np.abs(stamps - mstamps[0])))
    assert hit == 1500 and data[0, hit] == 1500  # marker and EMG share one time axis
    raw_mne = to_raw(tmp_path / "emg", markers=tmp_path / "mk")
    assert raw_mne.annotations.onset[0] == pytest.approx(1.5, abs=0.5 / FS_HZ)


def test_clock_fit_is_robust_and_identity_without_offsets():
    from labkit.timesync import dejitter, fit_clock_offsets, same_clock

    t = np.linspace(1000.0, 1600.0, 121)
    offsets = 0.25 + 2e-5 * (t - t[0])
    offsets[[10, 50, 90]] += [0.01, -0.02, 0.5]  # three spoilt measurements
    fit = fit_clock_offsets(t, offsets)
    remote = t - offsets
    clean = np.delete(np.arange(t.size), [10, 50, 90])
    np.testing.assert_allclose(fit.to_local(remote[clean]), t[clean], atol=1e-9)
    assert fit.n_outliers == 3 and fit.method == "robust linear"
    none = fit_clock_offsets([], [])
    assert none.method == "none" and np.array_equal(none.to_local(np.array([1.0])), [1.0])
    one = fit_clock_offsets([5.0], [-0.5])
    assert one.method == "constant" and one.to_local(np.array([10.0]))[0] == 9.5
    host = same_clock(fit_clock_offsets([5.0, 6.0], [-2.4e-5, -2.2e-5]), same_host=True)
    assert host.method == "same host" and host.to_local(np.array([7.0]))[0] == 7.0
    assert host.measured_intercept_s == pytest.approx(-2.3e-5)
    assert same_clock(one, same_host=True) is one  # 0.5 s apart: two clocks after all
    assert same_clock(fit, same_host=False) is fit
    # dejitter: a straight line per segment; a gap stays a gap
    rng = np.random.default_rng(0)
    true = np.r_[np.arange(100), np.arange(200, 300)] / 1000.0
    smooth = dejitter(true + rng.uniform(-1e-4, 1e-4, true.size), 1000.0)
    assert np.abs(smooth - true).max() < 1e-4 and np.abs(np.diff(smooth)[:99] - 1e-3).max() < 1e-5
    assert np.diff(smooth)[99] > 0.09


def test_format_1_recordings_are_read_as_stored(tmp_path):
    rec = tmp_path / "old"
    rec.mkdir()
    header = {"format_version": 1, "name": "old", "type": "EMG", "source_id": "x",
              "sfreq": 1000.0, "n_channels": 1, "ch_names": ["EMG1"], "units": ["microvolts"],
              "ch_types": ["emg"], "channel_format": "float32"}
    (rec / "header.json").write_text(json.dumps(header))
    (rec / "data.f32").write_bytes(np.arange(5, dtype="<f4").tobytes())
    (rec / "times.f64").write_bytes((100.0 + np.arange(5) / 1000.0).astype("<f8").tobytes())
    _, stamps, info = read_recording(rec)
    np.testing.assert_array_equal(stamps, 100.0 + np.arange(5) / 1000.0)
    assert "format 1" in info["clock_sync"]["method"]


# -- crash repair of the session log -------------------------------------------------------
def _session_log(tmp_path) -> Path:
    return tmp_path / "sub-01" / "ses-01" / "log.jsonl"


def test_resume_restores_a_lost_newline_and_says_the_run_ended_uncleanly(tmp_path):
    from labkit.session import Session

    ses = Session(tmp_path, "01", "01")
    ses.note("before the power cut")  # never closed: no session_end
    ses.log.close()
    log = _session_log(tmp_path)
    log.write_bytes(log.read_bytes()[:-1])  # the last record lost only its newline
    with Session.resume(tmp_path, "01", "01") as resumed:
        resumed.note("after")
        assert resumed.log.repair.newline_restored and resumed.log.repair.torn_bytes == 0
    records = read_log(log)  # readable: nothing was appended onto the last record
    assert [r.kind for r in records][-5:] == ["note", "fault", "session_resume", "note",
                                              "session_end"]
    assert [r.seq for r in records] == list(range(len(records)))
    fault = records[-4].payload
    assert fault["what"] == "previous run ended uncleanly"
    assert fault["last_kind"] == "note" and fault["newline_restored"] is True
    assert log.read_bytes().count(b"\n") == len(records)


def test_resume_drops_and_reports_a_torn_record(tmp_path):
    from labkit.session import Session

    Session(tmp_path, "01", "01").note("kept")
    log = _session_log(tmp_path)
    partial = b'{"seq": 99, "time_s": 3.0, "kind": "pul'
    with open(log, "ab") as f:
        f.write(partial)
    with Session.resume(tmp_path, "01", "01") as resumed:
        assert resumed.log.repair.torn_bytes == len(partial)
    records = read_log(log)
    kinds = [r.kind for r in records]
    assert kinds[-4:] == ["fault", "fault", "session_resume", "session_end"]
    torn, unclean = records[-4].payload, records[-3].payload
    assert torn["what"] == "torn last line removed on reopen"
    assert torn["bytes_dropped"] == len(partial) and torn["dropped"] == partial.decode()
    assert unclean["what"] == "previous run ended uncleanly" and unclean["torn_bytes"] == len(
        partial)
    assert [r.seq for r in records] == list(range(len(records)))


def test_clean_resume_logs_no_fault(tmp_path):
    from labkit.session import Session

    Session(tmp_path, "01", "01").close()
    Session.resume(tmp_path, "01", "01").close()
    assert [r.kind for r in read_log(_session_log(tmp_path))].count("fault") == 0


# -- latched storage faults ----------------------------------------------------------------
def test_low_disk_space_latches_until_cleared_runs_stop_and_later_runs_are_refused(
        tmp_path, monkeypatch):
    import runner_helpers

    import labkit.recording as recording
    from labkit.rig import open_rig
    from labkit.runner import ProtocolRunner
    from labkit.session import Session
    from labkit.session.storage import StorageFaultError

    free = [10 * 2**30]
    monkeypatch.setattr(recording, "_free_bytes", lambda path: free[0])

    def protocol():
        return runner_helpers.rtms(per_train=50, trains=1, name="latch-rtms")

    with open_rig("simulated") as rig, Session(tmp_path, "L01", 1) as ses:
        emu = rig.hardware.emulator
        emu.recharge_s = 0.0
        rec = ses.record(rig.hardware.emg_stream.name, "emg", duplicate_wait_s=0.0,
                         source_id=rig.hardware.emg_stream.source_id, flush_interval_s=0.05)
        # 1. a run not tied to the latch stops at its next pulse (no on_fault wired)
        first = ProtocolRunner(rig.stimulator, protocol(), 50.0, log=ses.sink, progress=False,
                               train_mode="software")
        first.start()
        _wait_for(lambda: first.pulses_delivered >= 5)
        free[0] = 10 * 2**20  # below the recorder's 64 MiB floor
        _wait_for(lambda: ses.storage.fault is not None, 2.0)
        at_latch = emu.pulses_delivered
        assert first.join(2.0) == "failed" and isinstance(first.error, StorageFaultError)
        assert emu.pulses_delivered - at_latch <= 1 and not emu.armed
        # 2. while latched, new runs refuse before anything is armed
        for _ in range(2):
            with pytest.raises(StorageFaultError, match=r"low disk space \(emg\).*refused"):
                ProtocolRunner(rig.stimulator, protocol(), 50.0, log=ses.sink,
                               progress=False).start()
        with pytest.raises(StorageFaultError, match="low disk space"):
            ses.guard(ProtocolRunner(rig.stimulator, protocol(), 50.0, log=ses.sink,
                                     progress=False))
        assert emu.pulses_delivered == first.pulses_delivered and not emu.armed
        time.sleep(0.3)
        assert ses.storage.fault.what == "low disk space" and rec.running  # still recording
        # 3. cleared on purpose; a guarded run stops at once when space runs short again
        free[0] = 10 * 2**30
        assert ses.clear_storage_fault("freed 10 GiB").what == "low disk space"
        third = ses.guard(ProtocolRunner(rig.stimulator, protocol(), 50.0, log=ses.sink,
                                         progress=False))
        third.start()
        _wait_for(lambda: third.pulses_delivered >= 5)
        free[0] = 10 * 2**20
        low_at = pylsl.local_clock()
        assert third.join(2.0) == "stopped" and pylsl.local_clock() - low_at < 0.5
        assert third.stop_reason.startswith("storage: low disk space (emg)")
        assert third.pulses_delivered < 50 and not emu.armed
        ses.stop_recordings()
    records = read_log(ses.path)
    faults = [r.payload for r in records if r.kind == "fault"]
    assert {f["what"] for f in faults} == {"low disk space"}  # never "recording failed"
    assert [f.get("refused") for f in faults if "refused" in f] == [
        "protocol run", "protocol run", "protocol run"]
    cleared = [r.payload for r in records if r.kind == "storage_fault_cleared"]
    assert len(cleared) == 1 and cleared[0]["reason"] == "freed 10 GiB"
    pulses = [r for r in records if r.kind == "pulse"]
    assert len(pulses) == emu.pulses_delivered  # every pulse that happened is logged
