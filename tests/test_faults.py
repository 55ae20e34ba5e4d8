"""Faults during a protocol: stream stall, silent stimulator, serial garbage, full disk,
kill -9, and the two Rapid² fixes (rest period not *ready*; markers of a cut train).

Faults already covered elsewhere (referenced, not repeated): kill -9 of a recording
session (tests/test_recording.py::test_kill_9_loses_at_most_one_second), disk full in
the log (tests/test_session.py::test_disk_full_while_logging_raises_and_keeps_earlier_lines,
::test_session_on_fault_hears_background_log_failure) and in a recorder
(tests/test_recording.py::test_disk_full_stops_cleanly_keeps_data_and_signals,
::test_low_disk_space_signals_before_data_is_lost), silent units at driver level
(tests/test_magstim_driver.py::test_silent_unit_*, tests/test_magpro_driver.py::
test_silent_unit_times_out_within_one_second).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import runner_helpers
from runner_helpers import Log

import labkit.sim  # noqa: F401 - registers the labkitsim:// URL scheme
from labkit.clock import local_clock
from labkit.errors import ConfigError, StimulatorProtocolError, StimulatorTimeoutError
from labkit.protocols import Protocol
from labkit.recording import read_markers, read_recording
from labkit.rig import open_rig
from labkit.runner import ProtocolRunner
from labkit.session import Session, read_log
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators.magstim import Rapid
from labkit.watchdog import StreamWatchdog

REPO = Path(__file__).resolve().parents[1]
RMT = 50.0


def rtms(**settings) -> Protocol:
    """The shared short protocol, with 1 s between trains unless told otherwise."""
    return runner_helpers.rtms(**{"iti_s": 1.0, "name": "fault-rtms", **settings})



def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def discharge_times(emulator: MagstimEmulator) -> list[float]:
    """Record the LSL time of every discharge of ``emulator`` (wraps its coil)."""
    times: list[float] = []
    inner = emulator.coil

    def coil(discharge):
        times.append(discharge.time_s)
        if inner is not None:
            inner(discharge)

    emulator.coil = coil
    return times


# -- 1. the EMG stream stops mid-protocol ------------------------------------------------
def test_watchdog_reason_names_stream_and_limit_and_validates_arguments():
    now = [100.0]
    latest = [99.95]
    dog = StreamWatchdog(lambda: latest[0], stale_s=0.2, name="emg", clock=lambda: now[0])
    assert dog(0) is None and dog.age_s() == pytest.approx(0.05)
    now[0] = 100.5
    assert dog(3) == "stream 'emg' stopped: no sample for 0.55 s (limit stale_s = 0.2 s)"
    latest[0] = 100.45
    assert dog(4) is None
    with pytest.raises(ConfigError, match=r"stale_s.*\[0.01, 60\].*nan"):
        StreamWatchdog(lambda: 0.0, stale_s=float("nan"))
    with pytest.raises(ConfigError, match="resume_after_s"):
        StreamWatchdog(lambda: 0.0, resume_after_s=-1)


def test_emg_stall_pauses_the_run_and_data_flow_resumes_it_nothing_recorded_is_lost(tmp_path):
    with open_rig("simulated") as rig, Session(tmp_path, "F01", 1) as session:
        hw = rig.hardware
        hw.emulator.recharge_s = 0.0
        session.record(hw.emg_stream.name, "emg", source_id=hw.emg_stream.source_id,
                       duplicate_wait_s=0.0)
        time.sleep(0.3)
        dog = StreamWatchdog(rig.emg, stale_s=0.2, resume_after_s=0.2)
        runner = ProtocolRunner(rig.stimulator, rtms(trains=3), RMT, log=session.sink,
                                progress=False, pre_pulse_check=dog, train_mode="software")
        dog.watch(runner)
        runner.start()
        wait_for(lambda: runner.pulses_delivered >= 5)
        stalled_at = local_clock()
        hw.emg_amplifier.pause()
        wait_for(lambda: runner.state == "paused", timeout_s=1.0)
        assert local_clock() - stalled_at < 0.6  # stale_s + chunk + poll
        assert runner.pause_reason.startswith(f"stream {rig.emg.name!r} stopped")
        assert not hw.emulator.armed  # disarmed while paused
        held = hw.emulator.pulses_delivered
        time.sleep(0.6)
        assert hw.emulator.pulses_delivered == held and runner.state == "paused"
        resumed_at = local_clock()
        hw.emg_amplifier.resume()
        # ~5 s of protocol left; a loaded host may add watchdog pauses (checked below)
        assert runner.join(30.0) == "finished"
        assert runner.pulses_delivered == 30 == hw.emulator.pulses_delivered
        dog.stop()
        time.sleep(0.3)  # the samples after the last pulse reach the recorder
        session.stop_recordings()
    pauses = read_log(session.path, kind="pause")
    resumes = read_log(session.path, kind="resume")
    # One pause is the stall made here. On a starved machine (2 cores, load ~10) the
    # consumer can also see no sample for > stale_s while the amplifier is fine: the
    # watchdog then pauses too (the safe side) and resumes; the recording has no gap there.
    assert len(pauses) == len(resumes) == dog.resumes >= 1
    assert all("stopped: no sample for" in p.payload["reason"] for p in pauses)
    induced = next(i for i, p in enumerate(pauses) if p.time_s >= stalled_at)
    assert pauses[induced].time_s - stalled_at < 0.6
    assert resumes[induced].time_s > resumed_at
    pulse_times = [r.time_s for r in read_log(session.path, kind="pulse")]
    for pause, resume in zip(pauses, resumes, strict=True):
        assert not any(pause.time_s < t < resume.time_s for t in pulse_times)
    # the recording keeps everything before the gap and everything after it
    amp = rig.hardware.emg_amplifier
    rec_dir = session.path / "recordings" / "emg"
    data, stamps, info = read_recording(rec_dir)
    _, raw_stamps, _ = read_recording(rec_dir, sync=False)
    fs = amp.fs
    # stored timestamps are the amplifier's own, unmodified: sample k at t0 + k / fs
    k = np.round((raw_stamps - amp.t0) * fs).astype(np.int64)
    np.testing.assert_allclose(raw_stamps, amp.t0 + k / fs, rtol=0, atol=1e-9)
    # one host, one clock: the read time axis is the amplifier's, one sample per step
    assert info["clock_sync"]["n_offsets"] >= 3 and info["clock_sync"]["method"] == "same host"
    np.testing.assert_array_equal(stamps, raw_stamps)
    steps = np.diff(stamps)
    gaps = np.flatnonzero(steps > 1.5 / fs)
    assert len(gaps) == 1
    np.testing.assert_allclose(np.delete(steps, gaps), 1 / fs, rtol=0, atol=1e-9)
    assert np.array_equal(np.delete(np.diff(k), gaps), np.ones(k.size - 2, dtype=np.int64))
    before_end, after_start = stamps[gaps[0]], stamps[gaps[0] + 1]
    held_back_s = amp.latency_ms / 1000.0  # samples leave the amplifier this long after
    assert stalled_at - held_back_s - 0.1 < before_end <= stalled_at + 0.05
    # samples due from the resume on
    assert resumed_at - held_back_s - 0.1 <= after_start < resumed_at + 0.2
    assert stamps[-1] >= pulse_times[-1]  # data after the resumed run's last pulse
    assert np.isfinite(data).all() and data.shape[1] == stamps.size


# -- 2. the stimulator stops answering -------------------------------------------------
@pytest.fixture
def host_timed_rapid():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0,
                               keepalive_timeout_s=30.0)  # the unit itself stays armed
    stim = Rapid(emulator.url).connect()
    yield emulator, stim
    stim.close()
    emulator.stop()


def test_silent_stimulator_stops_the_run_within_1_s_and_reconnect_disarms(host_timed_rapid):
    emulator, stim = host_timed_rapid
    times = discharge_times(emulator)
    log = Log()
    runner = ProtocolRunner(stim, rtms(per_train=50, trains=1), RMT, log=log, progress=False,
                            train_mode="software")
    runner.start()
    wait_for(lambda: runner.pulses_delivered >= 5)
    silent_at = local_clock()
    emulator.silent = True
    wait_for(lambda: runner.state == "failed", timeout_s=1.0)
    assert local_clock() - silent_at < 1.0
    assert not times or max(times) <= silent_at + 0.05  # nothing went out after silence
    assert isinstance(runner.error, StimulatorTimeoutError)
    error = log.of("error")[-1]
    assert ("the simulated Magstim Rapid² emulator did not answer within 0.50 s on "
            f"{emulator.url!r}: the simulator process is behind or stopped") in error["error"]
    assert error["pulses_delivered"] == runner.pulses_delivered
    # a trigger already on the wire when the cable went may have fired, unanswered
    assert emulator.pulses_delivered - runner.pulses_delivered in (0, 1)
    assert emulator.armed  # it never heard the disarm
    emulator.silent = False
    stim.close()
    stim.connect()
    assert not emulator.armed and emulator.received[-1][:2] != b"EB"
    assert not stim.status().armed


def test_silent_rapid_during_a_device_train_fails_the_run_and_logs_no_phantom_pulses():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    times = discharge_times(emulator)
    heard = []
    stim = Rapid(emulator.url, markers=heard.append).connect()
    try:
        log = Log()
        runner = ProtocolRunner(stim, rtms(per_train=40, trains=1), RMT, log=log,
                                progress=False, train_mode="hardware")
        runner.start()
        wait_for(lambda: runner.pulses_delivered >= 3)
        silent_at = local_clock()
        emulator.silent = True
        wait_for(lambda: runner.state == "failed", timeout_s=1.5)
        failed_at = local_clock()
        assert failed_at - silent_at < 1.2  # keep-alive timeout latches the fault
        time.sleep(0.2)
        assert max(times) <= silent_at + 1.05  # the unit drops remote control after 1 s
        assert isinstance(runner.error, StimulatorTimeoutError)
        assert "did not answer" in log.of("error")[-1]["error"]
        logged = [p["time_s"] for p in log.of("pulse")]
        assert len(logged) < 40 and max(logged) <= failed_at
        assert len(heard) <= len(times) + 1  # markers only for pulses whose time passed
        emulator.silent = False
        stim.close()
        stim.connect()
        assert not emulator.armed and not emulator.train_running
    finally:
        stim.close()
        emulator.stop()


def test_silent_magpro_during_a_device_train_fails_the_run_within_1_5_s():
    from labkit.sim.magpro_emulator import MagProEmulator
    from labkit.stimulators import MagPro

    emulator = MagProEmulator("R30", pty=False)
    stim = MagPro(emulator.url).connect()
    try:
        log = Log()
        runner = ProtocolRunner(stim, rtms(per_train=40, trains=1), RMT, log=log,
                                progress=False, train_mode="hardware")
        runner.start()
        wait_for(lambda: runner.pulses_delivered >= 3)
        silent_at = local_clock()
        emulator.silent = True
        wait_for(lambda: runner.state == "failed", timeout_s=1.5)
        failed_at = local_clock()
        assert isinstance(runner.error, StimulatorTimeoutError)
        assert "did not answer" in log.of("error")[-1]["error"]
        logged = [p["time_s"] for p in log.of("pulse")]
        assert len(logged) < 40 and max(logged) <= failed_at < silent_at + 1.5
    finally:
        stim.close()
        emulator.stop()


def test_magpro_reconnect_after_a_silent_unit_disables_it():
    from labkit.sim.magpro_emulator import MagProEmulator
    from labkit.stimulators import MagPro

    emulator = MagProEmulator("R30", pty=False)
    stim = MagPro(emulator.url).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        assert emulator.enabled
        emulator.silent = True
        wait_for(lambda: stim.fault is not None, timeout_s=1.5)
        emulator.silent = False
        stim.close()
        assert emulator.enabled  # close() skips the disable on a faulted port
        stim.connect()
        assert not emulator.enabled
    finally:
        stim.close()
        emulator.stop()


# -- 3. serial garbage and CRC errors ---------------------------------------------------
def test_corrupted_query_replies_between_trains_are_retried_and_the_run_finishes():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    stim = Rapid(emulator.url).connect()
    try:
        injected = []

        def corrupt_at_second_train(index: int) -> None:
            if index == 10 and not injected:
                emulator.corrupt_crc(1)  # next reply: the status poll or a train setting
                injected.append(index)

        runner = ProtocolRunner(stim, rtms(per_train=10, trains=2, iti_s=1.0), RMT,
                                progress=False, train_mode="hardware",
                                pre_pulse_check=corrupt_at_second_train)
        assert runner.run() == "finished"
        assert injected == [10] and stim.retries + stim.keepalive_errors >= 1
        assert emulator.pulses_delivered == 20 == runner.pulses_delivered
        fires = [m for m in emulator.received if m[:2] == b"EH"]
        assert len(fires) == 2  # one trigger per train, none repeated
    finally:
        stim.close()
        emulator.stop()


@pytest.mark.parametrize("inject", ["crc", "garbage"])
def test_corrupted_fire_reply_is_never_retried_and_fails_the_run_clearly(host_timed_rapid, inject):
    emulator, stim = host_timed_rapid

    def corrupt(index: int) -> None:
        if index == 4:
            if inject == "crc":
                emulator.corrupt_crc(1)
            else:
                emulator.set_garbage(3, 1)

    log = Log()
    runner = ProtocolRunner(stim, rtms(per_train=10, trains=1), RMT, log=log, progress=False,
                            pre_pulse_check=corrupt, train_mode="software")
    with pytest.raises(StimulatorProtocolError) as info:
        runner.run()
    assert runner.state == "failed" and runner.pulses_delivered == 4
    assert "may have been delivered" in "".join(getattr(info.value, "__notes__", []))
    fires = [m for m in emulator.received if m[:2] == b"EH"]
    assert len(fires) == emulator.pulses_delivered == 5  # the 5th went out, never twice
    assert not emulator.armed
    assert log.of("error")[-1]["pulses_delivered"] == 4


def test_a_refused_trigger_while_recharging_is_retried_once_after_ready():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.08)
    stim = Rapid(emulator.url).connect()
    try:
        log = Log()
        # 20 Hz: every trigger comes 50 ms after the last, the unit needs 80 ms
        runner = ProtocolRunner(stim, rtms(frequency_hz=20, per_train=5, trains=1), RMT,
                                log=log, progress=False, train_mode="software")
        assert runner.run() == "finished"
        assert emulator.pulses_delivered == 5 == runner.pulses_delivered
        refused = log.of("refused")
        assert refused and all("armed but not ready (still recharging" in r["error"]
                               for r in refused)
        fires = [m for m in emulator.received if m[:2] == b"EH"]
        assert len(fires) == 5 + len(refused)
        times = [p["time_s"] for p in log.of("pulse")]
        assert min(np.diff(times)) >= 0.08 - 0.005  # the unit's recharge, never shorter
    finally:
        stim.close()
        emulator.stop()


# -- 5. the disk fills ------------------------------------------------------------------
def test_low_disk_space_stops_stimulation_before_data_is_lost(tmp_path, monkeypatch):
    import labkit.recording as recording

    free = [10 * 2**30]
    monkeypatch.setattr(recording, "_free_bytes", lambda path: free[0])
    holder: dict = {}

    def on_fault(err) -> None:
        holder["fault"] = err
        holder["runner"].stop(reason=f"storage: {err}", wait=False)

    with open_rig("simulated") as rig, Session(tmp_path, "F05", 1, on_fault=on_fault) as ses:
        hw = rig.hardware
        hw.emulator.recharge_s = 0.0
        rec = ses.record(hw.emg_stream.name, "emg", source_id=hw.emg_stream.source_id,
                         duplicate_wait_s=0.0, flush_interval_s=0.05)
        runner = ProtocolRunner(rig.stimulator, rtms(per_train=50, trains=1), RMT,
                                log=ses.sink, progress=False)
        holder["runner"] = runner
        runner.start()
        wait_for(lambda: runner.pulses_delivered >= 5)
        free[0] = 10 * 2**20  # below the recorder's 64 MiB floor
        low_at = local_clock()
        assert runner.join(2.0) == "stopped"
        assert local_clock() - low_at < 0.5
        assert isinstance(holder["fault"], recording.LowDiskSpaceError)
        assert not hw.emulator.armed and runner.pulses_delivered < 50
        assert hw.emulator.pulses_delivered == runner.pulses_delivered
        n_at_stop = rec.n_samples
        time.sleep(0.3)
        assert rec.n_samples > n_at_stop and not rec.failed  # recording goes on
        ses.stop_recordings()
    stop = read_log(ses.path, kind="stop")[0]
    assert "disk almost full" in stop.payload["reason"]
    assert stop.payload["pulses_delivered"] == runner.pulses_delivered
    assert len(read_log(ses.path, kind="pulse")) == runner.pulses_delivered
    assert read_log(ses.path, kind="fault")[0].payload["what"] == "low disk space"
    _, stamps, _ = read_recording(ses.path / "recordings" / "emg")
    assert np.all(np.diff(stamps) < 1.5 / 5000.0)


def test_log_disk_full_fails_the_run_and_disarms(tmp_path):
    from test_session import FullDiskFile  # the injected-ENOSPC file of the session tests

    from labkit.session import SessionLogError

    Session(tmp_path, "F06", 1).close()
    faults = []
    with open_rig("simulated") as rig:
        rig.hardware.emulator.recharge_s = 0.0
        ses = Session.resume(tmp_path, "F06", 1, on_fault=faults.append,
                             log_opener=lambda p: FullDiskFile(p, budget=3000))
        runner = ProtocolRunner(rig.stimulator, rtms(per_train=50, trains=1), RMT,
                                log=ses.sink, progress=False)
        with pytest.raises(SessionLogError):
            runner.run()
        assert runner.state == "failed" and runner.pulses_delivered < 50
        assert not rig.hardware.emulator.armed
        assert faults or ses.log.failed
        ses.log.close()
    records = read_log(ses.path)  # what fitted is intact and in order
    assert [r.seq for r in records] == list(range(len(records)))
    pulses = [r for r in records if r.kind == "pulse"]
    assert [p.payload["index"] for p in pulses] == list(range(len(pulses)))


# -- 4. kill -9 during a protocol ---------------------------------------------------------
def _child(root: str) -> None:  # pragma: no cover - runs in the subprocess
    with open_rig("simulated") as rig:
        rig.hardware.emulator.recharge_s = 0.0
        ses = Session(root, "K01", 1)
        hw = rig.hardware
        ses.record(hw.emg_stream.name, "emg", source_id=hw.emg_stream.source_id,
                   duplicate_wait_s=0.0)
        ses.record(hw.marker_stream.name, "markers", source_id=hw.marker_stream.source_id,
                   duplicate_wait_s=0.0)
        time.sleep(0.3)
        # 4 s trains 5 s apart (closer trains would count as one continuous train)
        runner = ProtocolRunner(rig.stimulator, rtms(per_train=40, trains=10, iti_s=5.0), RMT,
                                log=ses.sink, progress=False, train_mode="software")
        runner.start()
        print("ready", flush=True)
        runner.join(120.0)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_during_a_protocol_keeps_log_and_recording_to_within_1_s(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, __file__, "child", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=REPO, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(3.0)  # arming takes 1 s, then 10 pulses/s
        t_kill = local_clock()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    ses = tmp_path / "sub-K01" / "ses-01"
    pulses = read_log(ses, kind="pulse")
    assert len(pulses) >= 15
    assert [p.payload["index"] for p in pulses] == list(range(len(pulses)))
    assert t_kill - pulses[-1].time_s <= 1.0
    assert read_log(ses, kind="run")[0].payload["protocol"] == "fault-rtms"
    _, stamps, _ = read_recording(ses / "recordings" / "emg")
    assert t_kill - stamps[-1] <= 1.0 and np.all(np.diff(stamps) < 1.5 / 5000.0)
    values, mstamps, _ = read_markers(ses / "recordings" / "markers")
    assert t_kill - mstamps[-1] <= 1.0
    indices = [json.loads(v)["index"] for v in values]
    assert indices == list(range(len(indices))) and len(indices) >= len(pulses) - 10


# -- Rapid² fixes ---------------------------------------------------------------------
def test_rapid_emulator_is_not_ready_during_the_rest_after_a_train():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    stim = Rapid(emulator.url).connect()
    try:
        stim.set_intensity(50)
        stim.set_train(20, 10)  # 0.5 s at 50 %: a rest period follows
        stim.guard.permit("test trains", 20, 50)  # what a passing verdict would allow
        stim.arm()
        stim.fire_train()
        wait_for(lambda: not emulator.train_running and emulator.pulses_delivered == 10)
        status = stim.status()
        assert status.armed and not status.ready
        with pytest.raises(StimulatorProtocolError):  # EH refused with S while resting
            stim.fire_train()
        stim.wait_ready(timeout_s=10.0)
        assert stim.status().ready
        stim.fire_train()
        wait_for(lambda: emulator.pulses_delivered == 20)
    finally:
        stim.close()
        emulator.stop()


def test_rapid_train_cut_by_disarm_announces_only_pulses_that_happened():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    times = discharge_times(emulator)
    heard = []
    stim = Rapid(emulator.url, markers=heard.append).connect()
    try:
        stim.set_intensity(50)
        stim.set_train(10, 20)  # 2 s
        stim.guard.permit("test train", 20, 50)  # what a passing verdict would allow
        stim.arm()
        events = stim.fire_train()
        assert len(events) == 20 and len(heard) <= 1  # not announced up front
        time.sleep(0.45)
        stim.disarm()
        cut = local_clock()
        time.sleep(0.3)
        assert 4 <= len(heard) <= 6 and all(e.time_s <= cut for e in heard)
        assert len(heard) == len(times)  # one marker per delivered pulse
        assert [e.index for e in heard] == list(range(len(heard)))
        assert stim.pulse_count == len(heard)
        assert heard == events[: len(heard)]
    finally:
        stim.close()
        emulator.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2])
