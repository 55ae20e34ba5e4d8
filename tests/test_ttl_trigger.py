"""Firing by TTL trigger: serial for intensity and arming, a digital edge for the pulse."""

from __future__ import annotations

import os
import time
import uuid

import pytest

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.closedloop import ClosedLoopController
from labkit.errors import ConfigError, StimulatorError
from labkit.sim import WiredTrigger
from labkit.sim.amplifier import EEGAmplifier
from labkit.sim.eeg import MuEEGSource
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators import ports
from labkit.stimulators.magpro import MagPro
from labkit.stimulators.magstim import Magstim
from labkit.stimulators.trigger import ParallelPortTrigger, SerialLineTrigger

POSIX = os.name == "posix"


@pytest.fixture
def magstim():
    discharges = []
    emulator = MagstimEmulator("200", pty=POSIX, arm_delay_s=0.05, coil=discharges.append)
    events = []
    stim = Magstim(emulator.url, keepalive=False, markers=events.append).connect()
    yield emulator, stim, discharges, events
    stim.close()
    emulator.stop()


@pytest.fixture
def magpro():
    discharges = []
    emulator = MagProEmulator(pty=False, coil=discharges.append)
    events = []
    stim = MagPro(emulator.url, keepalive=False, markers=events.append).connect()
    yield emulator, stim, discharges, events
    stim.close()
    emulator.stop()


def test_quick_fire_on_the_magstims_own_rts_line(magstim):
    # MagPy's quickFire: RTS of the stimulator's own port, wired to its trigger input.
    emulator, stim, discharges, events = magstim
    stim.set_intensity(45)
    stim.arm()
    stim.use_trigger(SerialLineTrigger.sharing(stim))
    event = stim.fire()
    assert emulator.pulses_delivered == 1 and events == [event]
    assert event.extra == {"trigger": "ttl"} and event.intensity_percent == 45.0
    # The marker is the edge, taken before it: never after the discharge. (How close the
    # two are is measured in benchmarks/bench_ttl_trigger.py; here only a loose bound
    # that a preempted thread on a loaded machine still meets.)
    assert 0.0 <= discharges[0].time_s - event.time_s < 0.05
    assert not any(m.startswith(b"EH") for m in emulator.received)  # no serial fire
    assert emulator.trigger_edges == 1 and not emulator.trigger_level


def test_trigger_refused_while_the_unit_is_not_armed(magstim):
    emulator, stim, _, events = magstim
    line = WiredTrigger(emulator)
    stim.use_trigger(line)
    with pytest.raises(StimulatorError, match="not armed"):
        stim.fire()
    assert line.pulses == 0 and emulator.pulses_delivered == 0 and events == []


def test_back_to_serial_firing(magstim):
    emulator, stim, _, events = magstim
    stim.arm()
    stim.use_trigger(WiredTrigger(emulator))
    stim.fire()
    stim.wait_ready()
    stim.use_trigger(None)
    stim.fire()
    assert emulator.pulses_delivered == 2
    assert [e.extra for e in events] == [{"trigger": "ttl"}, {}]
    assert sum(m.startswith(b"EH") for m in emulator.received) == 1


def test_magpro_ttl_pulse_is_confirmed_by_its_di_dt(magpro):
    emulator, stim, discharges, events = magpro
    stim.set_intensity(60)
    stim.arm()
    stim.use_trigger(WiredTrigger(emulator))
    event = stim.fire()
    assert emulator.pulses_delivered == 1 and events == [event]
    assert stim.status().didt_a == discharges[0].intensity_percent * 160 / 100
    assert 0.0 <= discharges[0].time_s - event.time_s < 0.05
    assert not any(p[0] == 0x03 for p in emulator.received)


def test_magpro_ignoring_the_trigger_gives_no_marker(magpro):
    emulator, stim, _, events = magpro
    stim.arm()
    emulator.enabled = False  # disabled at the front panel: the edge is ignored
    stim.use_trigger(WiredTrigger(emulator))
    with pytest.raises(StimulatorError, match="no discharge .* TTL trigger"):
        stim.fire()
    assert emulator.ignored_triggers == 1 and events == [] and stim.pulse_count == 0


@pytest.mark.skipif(not POSIX, reason="pty")
def test_a_pty_has_no_modem_lines_and_says_so(magstim):
    emulator = magstim[0]
    with pytest.raises(StimulatorError, match="no modem lines"):
        SerialLineTrigger(emulator.pty_path)
    assert ports.holder_of(emulator.pty_path) is None  # released after the failure


def test_line_arguments_are_checked():
    with pytest.raises(ConfigError, match="width_s"):
        SerialLineTrigger("loop://", width_s=0)
    with pytest.raises(ConfigError, match="line"):
        SerialLineTrigger("loop://", line="cts")
    with pytest.raises(ConfigError, match="bit"):
        ParallelPortTrigger(0, bit=9)


def test_missing_parallel_port_is_a_clear_error():
    with pytest.raises(StimulatorError, match="parallel"):
        ParallelPortTrigger("/dev/labkit-no-such-parport")


@pytest.mark.parametrize("driver", ["magstim", "magpro"])
def test_opening_the_port_puts_no_edge_on_an_rts_trigger(driver):
    # pyserial asserts RTS when a port opens unless told otherwise; with a quickFire
    # cable that edge would trigger an armed unit.
    emulator = (MagstimEmulator("200", pty=False) if driver == "magstim"
                else MagProEmulator(pty=False))
    try:
        stim_class = Magstim if driver == "magstim" else MagPro
        with stim_class(emulator.url, keepalive=False):
            pass
        assert emulator.trigger_edges == 0 and not emulator.trigger_level
    finally:
        emulator.stop()


def test_closed_loop_fires_through_the_ttl_line_unchanged():
    # The controller calls stim.fire(); with a trigger line set, every pulse is an edge.
    tag = uuid.uuid4().hex
    source = MuEEGSource(seed=5, mu_hz=10.5, snr_db=20.0)
    amp = EEGAmplifier(source, name=f"test-ttl-{tag[:10]}", source_id=f"src-{tag}")
    amp.start()
    emulator = MagstimEmulator("200", coil=amp, pty=False, arm_delay_s=0.05, recharge_s=0.0)
    stim = Magstim(emulator.url).connect()
    try:
        stim.set_intensity(50)
        stim.use_trigger(SerialLineTrigger.sharing(stim))
        with ClosedLoopController(stim, amp.name, source_id=amp.source_id, mu_hz=10.5,
                                  min_interval_s=0.2, max_pulses=3, rmt_percent=50.0) as ctl:
            ctl.start()
            deadline = time.monotonic() + 15
            while len(ctl.triggers) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            ctl.stop()
        assert len(ctl.triggers) == 3 == emulator.pulses_delivered == emulator.trigger_edges
        assert not any(m.startswith(b"EH") for m in emulator.received)
    finally:
        stim.close()
        emulator.stop()
        amp.stop()
