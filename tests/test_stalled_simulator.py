"""A simulator process that stalls must not change what the experiment measures.

A real unit takes a command when the host writes it. The simulator in its own process may
get the CPU late (a loaded machine, other real-time simulators beside it); it must still
discharge at the host's write, and its amplifiers must not stream the discharge's samples
before the emulator has placed it. Here the simulator is stopped (``SIGSTOP``) exactly
while the host writes its fire command, for longer than the EMG amplifier holds samples
back (150 ms): every MEP, discharge time and amplifier count must equal those of a run
where nothing stalled.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest
import serial

import labkit
from labkit.profiles import load_profile
from labkit.sim import host_writes
from labkit.sim.host_writes import (
    _RECORD,
    HostWriteAnnouncer,
    HostWriteLog,
    host_write_channel,
)
from labkit.stimulators import ports
from labkit.stimulators.base import write_all

STALL_S = 0.3  # longer than the simulated EMG amplifier's 150 ms hold-back


def _run(stall: bool, intensities: list[int]) -> dict:
    profile = load_profile("simulated")  # noise on: amplitudes depend on where each lands
    rig = labkit.open_rig(profile, seed=5, sim_process="child")
    pid = rig.hardware.pid
    amplitudes, offsets_ms = [], []
    try:
        for intensity in intensities:
            rig.prepare_pulse(intensity)
            if stall:  # the simulator stops just before the fire command is written
                os.kill(pid, signal.SIGSTOP)
                threading.Timer(STALL_S, os.kill, (pid, signal.SIGCONT)).start()
            pulse = rig.stimulator.fire()
            amplitudes.append(rig.mep_meter.measure(pulse).amplitude_uv)
            discharge, _ = rig.hardware.emg_amplifier.placed[-1]
            offsets_ms.append((discharge.time_s - pulse.time_s) * 1000.0)
        amplifier = rig.hardware.emg_amplifier
        counts = (amplifier.late_discharges, amplifier.holds_timed_out)
    finally:
        os.kill(pid, signal.SIGCONT)
        rig.close()
    return {"amplitudes": amplitudes, "offsets_ms": offsets_ms, "counts": counts}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals, signals")
def test_a_simulator_stalled_across_the_fire_command_measures_the_same_meps():
    intensities = [55, 70, 85]
    steady = _run(False, intensities)
    stalled = _run(True, intensities)
    assert stalled["counts"] == steady["counts"] == (0, 0)
    # the discharge is where the host wrote its command, not where the simulator woke up
    assert max(stalled["offsets_ms"]) < 1.0, stalled["offsets_ms"]
    assert min(stalled["offsets_ms"]) >= 0.0, stalled["offsets_ms"]
    np.testing.assert_array_equal(stalled["amplitudes"], steady["amplitudes"])


def _pulses(process: str, intensities: list[int]) -> tuple[list[float], int]:
    rig = labkit.open_rig(load_profile("simulated"), seed=5, sim_process=process)
    try:
        amplitudes = [rig.pulse(x).amplitude_uv for x in intensities]
        return amplitudes, rig.hardware.emg_amplifier.late_discharges
    finally:
        rig.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals")
def test_three_simulated_labs_firing_at_once_measure_what_one_alone_measures():
    """Three rigs, each with its simulator process (real-time threads competing for two
    cores), fire at the same time; each measures the MEPs one inline rig measures."""
    intensities = [50, 65, 80, 95, 60, 75]
    alone = _pulses("inline", intensities)
    results: list = [None] * 3

    def lab(i: int) -> None:
        results[i] = _pulses("child", intensities)

    threads = [threading.Thread(target=lab, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120.0)
    assert results == [alone] * 3
    assert alone[1] == 0


def test_a_train_thread_that_runs_late_still_lands_on_the_schedule():
    """The unit times its own train: a pulse whose thread runs late (a loaded machine) is
    dated on the schedule, and the amplifier waits for it instead of streaming past it."""
    rig = labkit.open_rig(load_profile("simulated"), seed=5,  # the emulator is ours to slow
                          sim_process="inline")
    emulator = rig.hardware.emulator
    deliver = emulator._discharge_now

    def late_third_pulse(time_s=None):
        if emulator.pulses_delivered == 3:  # this thread gets the CPU 300 ms late
            time.sleep(STALL_S)
        return deliver(time_s)

    emulator._discharge_now = late_third_pulse
    try:
        stim = rig.stimulator
        stim.set_intensity(50)
        stim.set_train(10, 6)
        stim.guard.permit("test train", 6, 50)  # what a passing verdict would allow
        stim.arm()
        stim.wait_ready()
        before = len(rig.hardware.emg_amplifier.placed)
        events = stim.fire_train()
        assert stim.wait_train(10.0)
        amplifier = rig.hardware.emg_amplifier
        deadline = time.monotonic() + 5.0  # the host's markers follow the clock, not the unit
        while len(amplifier.placed) < before + 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        placed = [d.time_s for d, _ in amplifier.placed[before:]]
        counts = (amplifier.late_discharges, amplifier.holds_timed_out)
    finally:
        rig.close()
    assert counts == (0, 0)
    offsets_ms = (np.array(placed) - [e.time_s for e in events]) * 1000.0
    assert len(placed) == 6 and 0.0 <= offsets_ms.min() and offsets_ms.max() < 1.0, offsets_ms


@pytest.fixture
def channel():
    ours, theirs = host_write_channel()
    announce, log = HostWriteAnnouncer(ours), HostWriteLog(theirs)
    yield announce, log
    announce.close()
    log.close()


def test_the_log_dates_each_byte_by_the_write_that_carried_it(channel):
    announce, log = channel
    announce(3)
    first = log.arrival_s(2)  # the first two bytes of the first write
    announce(4)
    assert log.arrival_s(3) == first  # the rest of the first write
    second = log.arrival_s(7)
    assert second is not None and second >= first
    assert not log.unhandled(7) and log.unhandled(6)


def test_bytes_nobody_announced_are_dated_when_read_and_shift_nothing(channel):
    announce, log = channel
    announce(3)
    assert log.arrival_s(3) is not None
    assert log.arrival_s(5) is None  # two bytes of another program on the pty
    assert log.foreign_bytes == 2 and not log.unhandled(5)
    announce(3)  # the driver's next command
    assert log.unhandled(5)
    assert log.arrival_s(8) == log._records[0][1]  # dated by its own record
    assert not log.unhandled(8)


def test_a_retraction_keeps_the_dates_of_bytes_that_did_go(channel):
    announce, log = channel
    announce(3)
    log._drain()
    first = log._records[-1][1]
    announce(0)  # an empty write announces nothing
    announce(-0)
    announce(5)
    announce(-5)  # that write went nowhere: the first one's bytes keep their date
    assert log.arrival_s(3) == first
    announce(6)
    log._drain()
    sixth = log._records[-1][1]
    announce(-2)  # 4 of the 6 bytes went: they keep the write's date
    assert log.arrival_s(7) == sixth and log.announced_bytes == 7


def test_a_write_announced_but_not_yet_dated_is_waited_for(channel):
    announce, log = channel
    announce._send(_RECORD.pack(3, float("nan")))  # the rig was preempted between the two
    assert log.unhandled(0, input_idle=True)
    assert log.arrival_s(3) is None  # not dated yet: when read


def test_announced_bytes_that_never_arrive_are_given_up(channel, monkeypatch):
    announce, log = channel
    announce(3)  # interrupted before it reached the port, or flushed by another program
    assert log.unhandled(0, input_idle=True)  # on its way, for all the simulator knows
    assert log.unhandled(0)  # and never given up while bytes wait at the unit's input
    monkeypatch.setattr(host_writes, "STALE_S", 0.0)
    assert log.unhandled(0)
    assert not log.unhandled(0, input_idle=True)
    assert log.lost_bytes == 3
    announce(4)  # the next command is matched to its own bytes
    assert log.unhandled(0) and log.arrival_s(4) is not None and not log.unhandled(4)


def test_records_that_do_not_fit_are_dropped_and_the_log_recovers(channel, monkeypatch):
    announce, log = channel
    n = 0
    while announce.dropped_records == 0:  # a stopped simulator reads nothing
        announce(1)
        n += 1
    assert log.arrival_s(n) is None  # the last bytes' records were dropped
    announce(2)  # cumulative: the simulator learns the total again...
    assert log.arrival_s(n + 2) is not None
    monkeypatch.setattr(host_writes, "STALE_S", 0.0)
    log.unhandled(n + 2, input_idle=True)  # ...and gives up the bytes it took as foreign
    announce(1)
    assert log.arrival_s(n + 3) is not None and not log.unhandled(n + 3)
    assert log.unhandled(n + 2)


def test_an_interrupted_write_retracts_what_it_did_not_send(monkeypatch):
    """A KeyboardInterrupt (the notebook's stop button) between the announcement and the
    write must not leave the simulator waiting for bytes that never come."""
    import labkit.stimulators.base as base

    calls: list[int] = []
    reader, writer = socket.socketpair()

    class Port:
        port = "/dev/labkit-test-interrupted-port"

        def fileno(self) -> int:
            return writer.fileno()

    def interrupted(fd, data):
        raise KeyboardInterrupt

    observer = calls.append
    ports.observe_writes(Port.port, observer)
    monkeypatch.setattr(base.os, "write", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_all(Port(), b"EH\x01", 1.0)
    finally:
        ports.stop_observing_writes(Port.port, observer)
        reader.close()
        writer.close()
    assert calls == [3, -3]
    assert ports.write_observer(Port.port) is None


def test_a_write_that_times_out_retracts_what_it_did_not_send():
    """``write_all`` announces a write before it, and retracts the bytes left unsent."""
    host, unit = socket.socketpair()  # a port nobody reads: it fills up
    host.setblocking(False)
    calls: list[int] = []

    class FullPort:  # what write_all uses of a pyserial port: its descriptor and name
        port = "/dev/labkit-test-full-port"

        def fileno(self) -> int:
            return host.fileno()

    port = FullPort()
    observer = calls.append
    ports.observe_writes(port.port, observer)
    try:
        payload = b"x" * (1 << 22)
        with pytest.raises(serial.SerialTimeoutException):
            write_all(port, payload, 0.2)
        assert calls[0] == len(payload)
        assert -len(payload) < calls[1] < 0  # some went, the rest is retracted
    finally:
        ports.stop_observing_writes(port.port, observer)
        host.close()
        unit.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals")
def test_bytes_a_silent_unit_drops_do_not_keep_the_amplifiers_waiting():
    """A pulled cable (``silent``) loses the host's bytes; they count as handled, so the
    amplifiers stream on as soon as they are gone, and the unit answers again after."""
    rig = labkit.open_rig(load_profile("simulated"), seed=5, sim_process="child")
    try:
        emulator = rig.hardware.emulator
        port = rig.stimulator._serial
        emulator.silent = True
        write_all(port, b"Q@n", 1.0)  # the driver's status request, into a pulled cable
        deadline = time.monotonic() + 2.0
        while emulator.holds_samples() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not emulator.holds_samples()
        emulator.silent = False
        port.reset_input_buffer()
        assert rig.stimulator.status().armed is False
        time.sleep(1.2)
        assert not emulator.holds_samples()
        assert rig.hardware.emg_amplifier.holds_timed_out == 0
    finally:
        rig.close()
