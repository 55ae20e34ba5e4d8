"""ProtocolRunner against the byte-level Magstim emulator: safety gate, pulse log, pause,
resume, stop (disarm within 100 ms), pre-pulse check, device train mode, dry run."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from runner_helpers import Log, rtms

import labkit.sim  # noqa: F401 - registers the labkitsim:// URL scheme
from labkit.clock import local_clock
from labkit.errors import SafetyError
from labkit.runner import ProtocolRunner, wait_until
from labkit.safety import SafetyLimits, SafetyOverride
from labkit.safety.guard import FiringGuard
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators.magstim import Rapid
from labkit.stimulators.registry import MODELS

RMT = 50.0


def host_timed(stim, protocol, rmt, **options):
    """A runner that paces the schedule itself (software timing) on the Rapid²."""
    return ProtocolRunner(stim, protocol, rmt, train_mode="software", **options)





def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def rig():
    """A Rapid² run with software timing (the schedule paced by the host)."""
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    stim = Rapid(emulator.url).connect()
    yield emulator, stim
    stim.close()
    emulator.stop()


@pytest.fixture
def rapid_rig():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.05, recharge_s=0.0)
    stim = Rapid(emulator.url).connect()
    yield emulator, stim
    stim.close()
    emulator.stop()


def test_runs_and_logs_every_pulse_with_time_and_intensity(rig):
    emulator, stim = rig
    log = Log()
    runner = host_timed(stim, rtms(), RMT, log=log, progress=False)
    assert runner.run() == "finished"
    pulses = log.of("pulse")
    assert len(pulses) == 20 == emulator.pulses_delivered == runner.pulses_delivered
    assert [p["index"] for p in pulses] == list(range(20))
    assert {p["intensity_percent"] for p in pulses} == {45}  # 90 % of 50 % MSO
    assert emulator.intensity_percent == 45
    times = np.array([p["time_s"] for p in pulses])
    within = np.diff(times)[np.r_[0:9, 10:19]]
    assert np.all(np.abs(within - 0.1) < 0.02)  # 10 Hz inside trains
    assert times[10] - times[9] == pytest.approx(0.1 + 0.3, abs=0.02)  # train end + 0.3 s
    assert [p["train"] for p in pulses] == [0] * 10 + [1] * 10
    kinds = [k for k in log.kinds() if k != "realtime"]  # "realtime" only where permitted
    assert kinds == ["safety", "run", "train", "train", "finish"]
    assert not emulator.armed


def test_unsafe_protocol_is_refused_before_arming(rig):
    emulator, stim = rig
    log = Log()
    sent_before = len(emulator.received)
    runner = host_timed(stim, rtms(20, per_train=40, rel=120), RMT, log=log, progress=False)
    with pytest.raises(SafetyError, match=r"row 20 Hz, column 120 %"):
        runner.run()
    assert runner.state == "failed"
    assert not any(frame.startswith(b"EB") for frame in emulator.received[sent_before:])
    assert not any(frame.startswith(b"@") for frame in emulator.received[sent_before:])
    assert log.of("safety")[0]["ok"] is False and log.of("pulse") == []
    with pytest.raises(SafetyError):
        host_timed(stim, rtms(20, per_train=40, rel=120), RMT, progress=False).start()


def test_stop_during_a_train_disarms_within_100_ms(rig):
    emulator, stim = rig
    log = Log()
    runner = host_timed(stim, rtms(per_train=50, trains=1), RMT, log=log, progress=False)
    runner.start()
    wait_for(lambda: len(log.of("pulse")) >= 5)
    assert emulator.armed
    t0 = local_clock()
    runner.stop(wait=False)
    wait_for(lambda: not emulator.armed, timeout_s=1.0)
    elapsed = local_clock() - t0
    assert elapsed < 0.1, f"disarmed after {elapsed * 1000:.1f} ms"
    assert runner.join(2.0) == "stopped"
    delivered = emulator.pulses_delivered
    time.sleep(0.3)
    assert emulator.pulses_delivered == delivered < 50
    assert len(log.of("pulse")) == delivered
    assert log.of("stop")[0]["reason"] == "user"


def test_pause_disarms_and_resume_never_shortens_an_interval(rig):
    emulator, stim = rig
    log = Log()
    runner = host_timed(stim, rtms(per_train=10, trains=2), RMT, log=log, progress=False)
    runner.start()
    wait_for(lambda: len(log.of("pulse")) >= 4)
    runner.pause("subject moved")
    wait_for(lambda: runner.state == "paused")
    assert not emulator.armed
    held = emulator.pulses_delivered
    time.sleep(0.3)
    assert emulator.pulses_delivered == held
    runner.resume()
    assert runner.join(5.0) == "finished"
    times = np.array([p["time_s"] for p in log.of("pulse")])
    assert len(times) == 20 == emulator.pulses_delivered
    gaps = np.diff(times)
    assert np.min(gaps) > 0.1 - 0.01  # shifted schedule: only fire-time jitter remains
    assert gaps[held - 1] > 0.3  # the pause
    assert log.of("pause")[0]["reason"] == "subject moved"
    assert log.of("resume")[0]["next_index"] == held


def test_pre_pulse_check_pauses_the_run(rig):
    emulator, stim = rig
    log = Log()
    broken = threading.Event()

    def emg_alive(index: int):
        return "EMG stream stopped" if index == 5 and not broken.is_set() else None

    runner = host_timed(stim, rtms(), RMT, log=log, progress=False,
                            pre_pulse_check=emg_alive)
    runner.start()
    wait_for(lambda: runner.state == "paused")
    assert emulator.pulses_delivered == 5 and not emulator.armed
    assert log.of("pause")[0]["reason"] == "EMG stream stopped"
    broken.set()
    runner.resume()
    assert runner.join(5.0) == "finished" and emulator.pulses_delivered == 20


def test_override_for_looser_limits_is_written_to_the_log(rig):
    _, stim = rig
    log = Log()
    loose = SafetyLimits(max_pulses_per_session=4000)
    refused = host_timed(stim, rtms(), RMT, limits=loose, progress=False)
    assert not refused.dry_run(print_summary=False).ok
    override = SafetyOverride(reason="protocol 7 amendment", approved_by="Dr. C")
    runner = host_timed(stim, rtms(trains=1), RMT, limits=loose, override=override,
                            log=log, progress=False)
    assert runner.run() == "finished"
    assert log.of("override")[0]["approved_by"] == "Dr. C"
    assert log.kinds()[:2] == ["safety", "override"]


def test_dry_run_does_not_touch_the_stimulator(capsys):
    class Untouchable:
        guard = FiringGuard()
        abilities = MODELS["magstim-rapid2"].abilities

        def _touched(self, *args, **kwargs):
            raise AssertionError("dry run touched the stimulator")

        arm = disarm = fire = set_intensity = status = deliver_train = _touched

    runner = ProtocolRunner(Untouchable(), rtms(), RMT, progress=False)
    report = runner.dry_run()
    assert report.ok and report.train_mode == "hardware"  # a Rapid² paces trains itself
    out = capsys.readouterr().out
    assert "schedule: 20 pulses in 2 train(s)" in out and "SAFE" in out
    assert "45 % MSO" in out


def test_device_train_mode_on_a_rapid(rapid_rig):
    emulator, stim = rapid_rig
    log = Log()
    runner = ProtocolRunner(stim, rtms(), RMT, log=log, progress=False)
    assert runner.train_mode == "hardware"
    assert runner.run() == "finished"
    assert emulator.pulses_delivered == 20
    pulses = log.of("pulse")
    assert len(pulses) == 20 and {p["timing"] for p in pulses} == {"device"}
    assert [t["pulses"] for t in log.of("train")] == [10, 10]
    assert any(frame.startswith(b"B0100") for frame in emulator.received)  # 10.0 Hz


def test_software_timing_can_be_forced_on_a_rapid(rapid_rig):
    emulator, stim = rapid_rig
    runner = host_timed(stim, rtms(trains=1), RMT, progress=False)
    assert runner.run() == "finished" and emulator.pulses_delivered == 10


def test_progress_bar_runs(rig, capsys):
    _, stim = rig
    runner = host_timed(stim, rtms(trains=1, per_train=5), RMT, progress=True)
    assert runner.run() == "finished"
    assert "5/5" in capsys.readouterr().err


def test_wait_until_is_interruptible_and_on_time():
    wake = threading.Event()
    target = local_clock() + 0.05
    assert wait_until(target, wake) is True
    assert 0 <= local_clock() - target < 0.005
    threading.Timer(0.05, wake.set).start()
    t0 = local_clock()
    assert wait_until(t0 + 10.0, wake) is False
    assert local_clock() - t0 < 0.5


def test_timing_priority_restores_the_interpreter_settings():
    import sys

    from labkit.runner import timing_priority

    before = sys.getswitchinterval()
    with timing_priority(switch_interval_s=0.0005, realtime=False) as rt:
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        assert rt is False
    assert sys.getswitchinterval() == before


def test_every_pulse_reaches_the_session_log(rig, tmp_path):
    from labkit.session.core import Session

    emulator, stim = rig
    with Session.open(tmp_path, "P01", 1) as session:
        runner = host_timed(stim, rtms(), RMT, log=session.sink, progress=False)
        assert runner.run() == "finished"
        records = session.events()
    pulses = [r for r in records if r.kind == "pulse"]
    assert len(pulses) == 20 == emulator.pulses_delivered
    assert {r.payload["intensity_percent"] for r in pulses} == {45}
    assert all(r.time_s > 0 for r in pulses)
    kinds = [r.kind for r in records]
    assert kinds.index("safety") < kinds.index("run") < kinds.index("pulse") < kinds.index(
        "finish")


def test_device_train_mode_on_a_magpro():
    from labkit.sim.magpro_emulator import MagProEmulator
    from labkit.stimulators.magpro import MagPro

    emulator = MagProEmulator(pty=False)
    stim = MagPro(emulator.url).connect()
    try:
        log = Log()
        runner = ProtocolRunner(stim, rtms(trains=1), RMT, log=log, progress=False)
        assert runner.train_mode == "hardware"
        assert runner.run() == "finished"
        assert stim.pulse_count == 10 and len(log.of("pulse")) == 10
        assert stim.train_settings is not None and stim.train_settings.pulses_in_train == 10
    finally:
        stim.close()
        emulator.stop()


def test_stop_during_a_device_train_disarms_and_ends_it(rapid_rig):
    emulator, stim = rapid_rig
    log = Log()
    runner = ProtocolRunner(stim, rtms(per_train=50, trains=1), RMT, log=log, progress=False)
    runner.start()
    wait_for(lambda: emulator.pulses_delivered >= 5)
    t0 = local_clock()
    runner.stop(wait=False)
    wait_for(lambda: not emulator.armed, timeout_s=1.0)
    assert local_clock() - t0 < 0.1
    assert runner.join(2.0) == "stopped"
    delivered = emulator.pulses_delivered
    time.sleep(0.25)
    assert emulator.pulses_delivered == delivered < 50
    assert len(log.of("pulse")) in (delivered - 1, delivered, delivered + 1)  # from the clock


def test_stop_while_paused_ends_the_run(rig):
    emulator, stim = rig
    runner = host_timed(stim, rtms(), RMT, progress=False)
    runner.start()
    wait_for(lambda: emulator.pulses_delivered >= 2)
    runner.pause()
    wait_for(lambda: runner.state == "paused")
    runner.stop()
    assert runner.state == "stopped" and not emulator.armed
    assert emulator.pulses_delivered < 20


def test_pause_during_a_device_train_delivers_the_rest_after_resume(rapid_rig):
    emulator, stim = rapid_rig
    log = Log()
    runner = ProtocolRunner(stim, rtms(per_train=20, trains=1), RMT, log=log, progress=False)
    runner.start()
    wait_for(lambda: emulator.pulses_delivered >= 5)
    runner.pause("coil check")
    wait_for(lambda: runner.state == "paused")
    assert not emulator.armed
    held = emulator.pulses_delivered
    runner.resume()
    assert runner.join(6.0) == "finished"
    indices = [p["index"] for p in log.of("pulse")]
    assert indices == list(range(20))
    # the log counts pulses from the device's clock at the disarm: at most one off
    assert abs(emulator.pulses_delivered - 20) <= 1
    trains = log.of("train")
    assert trains[0]["pulses"] == 20 and trains[1]["pulses"] == 20 - trains[1]["first_index"]
    assert abs(trains[1]["first_index"] - held) <= 1


def test_a_device_error_fails_the_run_disarms_and_is_logged(rig):
    from labkit.errors import StimulatorTimeoutError

    emulator, stim = rig
    log = Log()
    real_fire = stim.fire
    calls = []

    def flaky_fire():
        calls.append(1)
        if len(calls) == 4:
            raise StimulatorTimeoutError("Magstim did not answer within 0.50 s")
        return real_fire()

    stim.fire = flaky_fire
    runner = host_timed(stim, rtms(), RMT, log=log, progress=False)
    with pytest.raises(StimulatorTimeoutError):
        runner.run()
    assert runner.state == "failed" and isinstance(runner.error, StimulatorTimeoutError)
    assert not emulator.armed and emulator.pulses_delivered == 3
    assert "StimulatorTimeoutError" in log.of("error")[0]["error"]
    assert log.of("error")[0]["pulses_delivered"] == 3


def test_real_time_priority_is_not_inherited_by_new_threads():
    import os

    from labkit.runner import timing_priority

    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no POSIX scheduling API")
    seen = {}
    with timing_priority(realtime=True) as rt:
        if not rt:
            pytest.skip("SCHED_FIFO not permitted here")
        worker = threading.Thread(target=lambda: seen.update(policy=os.sched_getscheduler(0)))
        worker.start()
        worker.join()
    assert seen["policy"] == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.parametrize("rmt", [None, 0, 150, float("nan"), "50"])
def test_a_missing_or_absurd_rmt_is_refused_naming_it(rig, rmt):
    from labkit.errors import ConfigError

    _, stim = rig
    with pytest.raises(ConfigError, match="rmt_percent"):
        host_timed(stim, rtms(), rmt, progress=False)


def test_a_fresh_runner_repeats_the_run_and_counts_the_first(rig):
    emulator, stim = rig
    log = Log()
    first = host_timed(stim, rtms(per_train=5, trains=1), RMT, log=log, progress=False)
    assert first.run() == "finished"
    with pytest.raises(RuntimeError, match="already started"):
        first.start()
    second = first.fresh()
    assert second is not first and second.state == "idle"
    assert second.pulses_delivered_before == 5 == stim.guard.count  # the session's count
    assert second.train_mode == "software"
    assert second.run() == "finished"
    assert emulator.pulses_delivered == 10 and len(log.of("pulse")) == 10
    # an explicit count carries on from itself, not from the guard
    third = ProtocolRunner(stim, rtms(per_train=5, trains=1), RMT, train_mode="software",
                           progress=False, pulses_delivered_before=100)
    assert third.run() == "finished"
    assert third.fresh().pulses_delivered_before == 105
