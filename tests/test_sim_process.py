"""The simulated lab in its own process: reached over a pty and LSL, dies with its parent,
and a driver that gets no answer says the simulator is the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import labkit
from labkit.errors import ConfigError, StimulatorError
from labkit.profiles import DeviceProfile, load_profile
from labkit.sim.process import SimulatorProcess, SimulatorProcessError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="pseudo-terminals and /proc (Linux)")


def _quiet_profile(seed: int = 3) -> DeviceProfile:
    profile = load_profile("simulated")
    simulation = profile.simulation.model_copy(update={"emg_noise_uv": 0.0, "seed": seed})
    return profile.model_copy(update={"simulation": simulation})


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def child_rig():
    rig = labkit.open_rig(_quiet_profile(), sim_process="child")
    yield rig
    rig.close()


def test_child_rig_is_another_process_reached_over_a_pty(child_rig):
    hardware = child_rig.hardware
    assert isinstance(hardware, SimulatorProcess)
    assert hardware.pid != os.getpid() and _alive(hardware.pid)
    assert child_rig.stimulator.port == hardware.pty_path
    assert hardware.pty_path.startswith("/dev/pts/")
    assert child_rig.simulated


def test_meps_from_the_child_equal_its_ground_truth(child_rig):
    subject = child_rig.subject
    before = len(subject.responses)
    rmt = subject.resting_motor_threshold_percent
    intensities = [int(round(rmt * f)) for f in (1.2, 1.4)]
    trials = [child_rig.pulse(x) for x in intensities]
    responses = child_rig.subject.responses[before:]
    assert [r.intensity_percent for r in responses] == intensities
    np.testing.assert_allclose([t.amplitude_uv for t in trials],
                               [r.amplitudes_uv["FDI"] for r in responses], rtol=0.01)
    assert child_rig.hardware.emulator.pulses_delivered == before + 2
    assert child_rig.hardware.emg_amplifier.late_discharges == 0


def test_ground_truth_proxy_reads_writes_and_calls_in_the_child(child_rig):
    emulator = child_rig.hardware.emulator
    emulator.recharge_s = 0.125
    assert child_rig.hardware.emulator.recharge_s == 0.125  # written in the child
    subject = child_rig.subject
    subject.contraction_percent_mvc = 15.0
    assert subject.contraction_percent_mvc == 15.0
    subject.contraction_percent_mvc = 0.0
    index = child_rig.hardware.emg_amplifier.sample_index(0.0)  # a method runs there
    assert isinstance(index, int)
    with pytest.raises(AttributeError, match="no_such_truth"):
        subject.no_such_truth  # noqa: B018 - the child's own error comes back
    assert "in the simulator process" in repr(subject)


def test_diagnosis_of_a_running_child_says_it_runs(child_rig):
    assert "is behind: it runs and answered a ping" in child_rig.hardware.diagnose()


def test_stopped_simulator_makes_the_timeout_say_so():
    with labkit.open_rig("simulated", sim_process="child", seed=2) as rig:
        pid = rig.hardware.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(StimulatorError) as info:
                rig.stimulator.status()
        finally:
            os.kill(pid, signal.SIGCONT)
    message = str(info.value)
    assert message.startswith("the simulated Magstim Rapid² emulator did not answer within "
                              f"0.50 s on {rig.hardware.pty_path!r}: the simulator process "
                              f"(pid {pid}) is stopped")
    assert "Likely causes" not in message


def test_dead_simulator_makes_the_driver_error_say_so_with_its_exit():
    rig = labkit.open_rig("simulated", sim_process="child", seed=2)
    pid = rig.hardware.pid
    try:
        os.kill(pid, signal.SIGKILL)
        assert _wait_gone(pid)
        with pytest.raises(StimulatorError, match=rf"simulator process \(pid {pid}\) was "
                                                  r"killed by SIGKILL"):
            rig.stimulator.status()
        assert rig.hardware.exitcode == -signal.SIGKILL
    finally:
        rig.close()  # still closes the streams and the outlet


def test_close_stops_the_child():
    rig = labkit.open_rig("simulated", sim_process="child", seed=4)
    pid = rig.hardware.pid
    rig.close()
    assert rig.hardware.exitcode == 0
    assert not _alive(pid)


_PARENT = textwrap.dedent("""
    import sys, threading, time
    import labkit
    rigs = []
    def open_it():
        rigs.append(labkit.open_rig("simulated", sim_process="child", seed=1))
    if sys.argv[1] == "thread":  # no parent-death signal: the connection's end stops it
        worker = threading.Thread(target=open_it)
        worker.start()
        worker.join()
    else:
        open_it()
    print(rigs[0].hardware.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("opened_from", ["main", "thread"])
def test_the_simulator_dies_with_a_kill_9_of_its_parent(opened_from):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, opened_from],
                              stdout=subprocess.PIPE, text=True)
    child = None
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent printed {line!r}"
        child = int(line)
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_gone(child), f"simulator pid {child} outlived its parent"
    finally:
        parent.kill()
        parent.wait(10)
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_process_setting_is_checked():
    with pytest.raises(ConfigError, match="'inline' or 'child'"):
        labkit.open_rig("simulated", sim_process="thread")
    raw = load_profile("simulated").model_dump()
    raw["simulation"]["process"] = "thread"
    with pytest.raises(ValueError, match="inline"):
        DeviceProfile.model_validate(raw)


def test_container_attributes_write_through_to_the_child(child_rig):
    import copy
    import pickle

    emulator = child_rig.hardware.emulator
    held = emulator._held  # a list of the child's fault-injection rules
    held.append([b"Z", 0.0, 0])
    assert child_rig.hardware.emulator._held == [[b"Z", 0.0, 0]]
    held.clear()
    assert child_rig.hardware.emulator._held == []
    responses = child_rig.subject.responses
    assert pickle.loads(pickle.dumps(responses)) == responses  # pickles as a plain list
    assert type(copy.deepcopy(responses)) is list


def test_a_late_reply_from_a_running_simulator_is_waited_for(child_rig):
    stim = child_rig.stimulator
    before = stim.slow_replies
    child_rig.hardware.emulator.delay_replies(b"x", 1.0)  # twice the driver's timeout
    assert stim.status() is not None
    assert stim.slow_replies == before + 1 and stim.fault is None


def test_ground_truth_stays_readable_after_close_as_on_an_inline_rig():
    rig = labkit.open_rig(_quiet_profile(seed=5), sim_process="child")
    emulator, subject = rig.hardware.emulator, rig.subject
    rig.pulse(60)
    assert emulator.armed and emulator.remote_control
    rig.close()
    # the state the rig's close left the unit in, read from the child's final state
    assert not emulator.armed and not emulator.remote_control
    assert emulator.pulses_delivered == 1
    assert [r.intensity_percent for r in rig.subject.responses] == [60]
    assert subject.resting_motor_threshold_percent > 0  # a property, kept too
    with pytest.raises(AttributeError, match=r"MagstimEmulator\.delay_replies is not readable: "
                                             r"the simulator process \(pid \d+\) was closed"):
        emulator.delay_replies  # noqa: B018 - methods cannot run in a closed child
    with pytest.raises(SimulatorProcessError, match="was closed with its rig"):
        emulator.recharge_s = 0.0


def test_one_child_object_is_one_proxy(child_rig):
    assert child_rig.hardware.emg_amplifier.subject is child_rig.subject
    assert child_rig.hardware.emulator is child_rig.hardware.emulator


def test_a_pure_model_comes_as_a_copy_that_draws_from_the_callers_rng(child_rig):
    from labkit.sim import StatisticalMEPModel

    model = child_rig.subject.model
    assert isinstance(model, StatisticalMEPModel)
    rng = np.random.default_rng(1)
    draws = [model.amplitude_uv(60.0, rng) for _ in range(3)]
    assert len(set(draws)) == 3  # the caller's generator advanced (a proxy would copy it)
