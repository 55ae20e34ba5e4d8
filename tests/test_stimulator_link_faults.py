"""Late replies, corrupted replies and second openers, on both vendors' drivers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.errors import (
    CRCError,
    NotConnectedError,
    PortBusyError,
    SettingsConflictError,
    StimulatorTimeoutError,
)
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import ports
from labkit.stimulators.magpro import MagPro
from labkit.stimulators.magstim import Magstim

POSIX = os.name == "posix"
#: First bytes of the MagPro messages the tests hold back (frame start, length, id).
AMPLITUDE_MSG = b"\xfe\x04\x01"
DIDT_MSG = b"\xfe\x04\x02"


def _wait_for(predicate, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def magstim_emulator():
    made = []

    def factory(**options):
        options.setdefault("pty", False)
        options.setdefault("keepalive_timeout_s", 5.0)
        emulator = MagstimEmulator("200", **options)
        made.append(emulator)
        return emulator

    yield factory
    for emulator in made:
        emulator.stop()


@pytest.fixture
def magpro_emulator():
    emulator = MagProEmulator(pty=POSIX, seed=3)
    yield emulator
    emulator.stop()


# ----------------------------------------------------------------------------- Magstim
def test_magstim_late_arm_ack_is_not_taken_for_the_fire_ack(magstim_emulator):
    # EB, EA and EH all answer "E<status><crc>": a late EB reply would pass for EH's.
    emulator = magstim_emulator(arm_delay_s=3.0)
    events = []
    stim = Magstim(emulator.url, keepalive=False, markers=events.append).connect()
    try:
        emulator.delay_replies(b"E", 0.7)  # the EB reply: 0.2 s after the driver gave up
        emulator.delay_replies(b"E", 0.3)  # the EH reply: slow, but within the timeout
        with pytest.raises(StimulatorTimeoutError):
            stim.arm(wait=False)
        # The unit is arming but not ready: it refuses EH with "ES". The late EB ack
        # must be dropped, not read as the answer to EH.
        with pytest.raises(SettingsConflictError):
            stim.fire()
        assert emulator.pulses_delivered == 0 and events == [] and stim.pulse_count == 0
        assert stim.resyncs == 1 and stim.stale_bytes == 3
    finally:
        stim.close()


def test_magstim_fire_refused_by_a_unit_that_disarmed_itself_says_why(magstim_emulator):
    # a host late with its keep-alives (here: none) finds the unit disarmed: the refusal
    # says so instead of "conflicts with the current settings"
    emulator = magstim_emulator(arm_delay_s=0.05, keepalive_timeout_s=0.3)
    stim = Magstim(emulator.url, keepalive=False).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        assert _wait_for(lambda: not emulator.armed)
        with pytest.raises(SettingsConflictError, match=r"the simulated Magstim 200² emulator "
                                                        r"refused to fire: it is not armed"):
            stim.fire()
        assert emulator.pulses_delivered == 0
    finally:
        stim.close()


def test_magstim_unit_that_disarms_itself_while_arming_is_not_blamed_on_the_link(
        magstim_emulator):
    # the host sends nothing for longer than the unit's keep-alive timeout while it arms
    emulator = magstim_emulator(arm_delay_s=5.0, keepalive_timeout_s=0.3)
    stim = Magstim(emulator.url, keepalive=False).connect()
    stim.link_diagnosis = lambda: "the link is fine"  # as a simulator process would say
    try:
        stim.arm(wait=False)
        assert _wait_for(lambda: not emulator.armed)
        with pytest.raises(StimulatorTimeoutError) as info:
            stim.wait_ready(timeout_s=0.3)
        message = str(info.value)
        assert message.startswith("the simulated Magstim 200² emulator not ready within 0.3 s:"
                                  " it is not armed (it was disarmed while arming")
        assert "the link is fine" not in message
    finally:
        stim.close()


def test_magstim_fire_refused_while_recharging_says_why(magstim_emulator):
    emulator = magstim_emulator(arm_delay_s=0.05, recharge_s=5.0)
    stim = Magstim(emulator.url, keepalive=False).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        stim.fire()
        with pytest.raises(SettingsConflictError, match="armed but not ready .*recharging"):
            stim.fire()
        assert emulator.pulses_delivered == 1
    finally:
        stim.close()


def test_magstim_fire_after_late_ack_is_acknowledged_by_its_own_reply(magstim_emulator):
    emulator = magstim_emulator(arm_delay_s=0.05)
    events = []
    stim = Magstim(emulator.url, keepalive=False, markers=events.append).connect()
    try:
        stim.set_intensity(40)
        emulator.delay_replies(b"E", 0.7)
        emulator.delay_replies(b"E", 0.3)
        with pytest.raises(StimulatorTimeoutError):
            stim.arm(wait=False)
        event = stim.fire()
        assert emulator.pulses_delivered == 1 and events == [event]
        assert stim.resyncs == 1
    finally:
        stim.close()


def test_magstim_unanswered_fire_latches_and_disarms(magstim_emulator):
    emulator = magstim_emulator(arm_delay_s=0.05)
    stim = Magstim(emulator.url, keepalive=False).connect()
    try:
        stim.arm()
        emulator.delay_replies(b"E", 2.0)  # the EH reply only
        with pytest.raises(StimulatorTimeoutError) as info:
            stim.fire()
        assert "may have been delivered" in "".join(getattr(info.value, "__notes__", []))
        assert emulator.pulses_delivered == 1  # the unit did fire
        assert _wait_for(lambda: not emulator.armed, 1.0)  # and was sent EA at once
        assert stim.fault is info.value and stim.pulse_count == 0
        with pytest.raises(NotConnectedError, match="failed earlier"):
            stim.status()
    finally:
        stim.close()


# ----------------------------------------------------------------------------- MagPro
def test_magpro_late_amplitude_reply_does_not_fail_the_next_fire(magpro_emulator):
    events = []
    stim = MagPro(magpro_emulator.url, keepalive=False, markers=events.append).connect()
    try:
        stim.arm()
        magpro_emulator.delay_replies(AMPLITUDE_MSG, 0.7)
        with pytest.raises(StimulatorTimeoutError, match=r"amplitude \(0x01\)"):
            stim.set_intensity(60)
        event = stim.fire()  # the late 0x01 is absorbed, not read as "did not fire"
        assert magpro_emulator.pulses_delivered == 1 and events == [event]
        assert event.intensity_percent == 60.0  # learnt from the late reply
        assert stim.resyncs == 1
    finally:
        stim.close()


def test_magpro_amplitude_message_while_enabled_is_no_fire_refusal(magpro_emulator,
                                                                   monkeypatch):
    # A 0x01 that reports the unit enabled (an extra message, a late reply) arriving
    # before the di/dt must not be read as "did not fire".
    emulator = magpro_emulator
    discharge = emulator._discharge

    def amplitude_then_discharge():
        emulator._send(emulator._amplitude_reply())
        discharge()

    events = []
    stim = MagPro(emulator.url, keepalive=False, markers=events.append).connect()
    try:
        stim.arm()
        monkeypatch.setattr(emulator, "_discharge", amplitude_then_discharge)
        stim.fire()
        assert emulator.pulses_delivered == 1 and len(events) == 1
    finally:
        stim.close()


def test_magpro_unanswered_fire_latches_and_disables(magpro_emulator):
    stim = MagPro(magpro_emulator.url, keepalive=False).connect()
    try:
        stim.arm()
        magpro_emulator.delay_replies(DIDT_MSG, 2.0)
        with pytest.raises(StimulatorTimeoutError, match=r"single pulse \(0x03\)"):
            stim.fire()
        assert magpro_emulator.pulses_delivered == 1
        assert _wait_for(lambda: not magpro_emulator.enabled, 1.0)
        assert stim.fault is not None and stim.pulse_count == 0
    finally:
        stim.close()


def test_magpro_crc_error_on_set_train_is_retried_once(magpro_emulator, monkeypatch):
    emulator = magpro_emulator
    corrupted = []

    def corrupt_first_timing(data: bytes) -> None:
        if data[2:3] == b"\x0b" and not corrupted:
            corrupted.append(data)
            data = data[:-2] + bytes(((data[-2] + 1) & 0xFF,)) + b"\xff"
        SerialEmulator.reply(emulator, data)

    stim = MagPro(emulator.url, keepalive=False).connect()
    try:
        monkeypatch.setattr(emulator, "reply", corrupt_first_timing)
        settings = stim.set_train(10, 20, 1, 5)
        assert corrupted and stim.retries == 1 and stim.train_verified
        assert emulator.train == settings
        assert [p for p in emulator.received if p[0] == 0x06] == [
            bytes.fromhex("06 0064 0014 0001 0032")] * 2
    finally:
        stim.close()


def test_magpro_fire_is_never_retried_after_a_crc_error(magpro_emulator, monkeypatch):
    emulator = magpro_emulator

    def corrupt_didt(data: bytes) -> None:
        if data[2:3] == b"\x02":
            data = data[:-2] + bytes(((data[-2] + 1) & 0xFF,)) + b"\xff"
        SerialEmulator.reply(emulator, data)

    stim = MagPro(emulator.url, keepalive=False).connect()
    try:
        stim.arm()
        monkeypatch.setattr(emulator, "reply", corrupt_didt)
        with pytest.raises(CRCError):
            stim.fire()
        assert emulator.pulses_delivered == 1 and stim.pulse_count == 0
        assert [p for p in emulator.received if p[0] == 0x03] == [b"\x03\x01"]
    finally:
        stim.close()


# ----------------------------------------------------------------------------- two openers
@pytest.mark.parametrize("driver", [MagPro, Magstim])
def test_second_opener_in_this_process_is_refused_naming_the_holder(driver,
                                                                    magstim_emulator,
                                                                    magpro_emulator):
    emulator = magpro_emulator if driver is MagPro else magstim_emulator()
    first = driver(emulator.url, keepalive=False).connect()
    second = driver(emulator.url, keepalive=False)
    try:
        with pytest.raises(PortBusyError, match=rf"{driver.__name__} object at 0x{id(first):x}"):
            second.connect()
        assert not second.connected and first.status() is not None
        assert ports.holder_of(emulator.url).owner.startswith(driver.__name__)
    finally:
        first.close()
    assert ports.holder_of(emulator.url) is None
    second.connect()  # free again once the first driver closed
    second.close()


@pytest.mark.skipif(not POSIX, reason="pty and flock are POSIX")
def test_second_process_on_the_port_is_refused_naming_its_pid(magpro_emulator):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import serial, sys, time\n"
         f"port = serial.Serial({magpro_emulator.pty_path!r}, exclusive=True)\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PortBusyError, match=rf"pid {holder.pid}"):
            MagPro(magpro_emulator.pty_path, keepalive=False).connect()
        assert ports.holder_of(magpro_emulator.pty_path) is None
    finally:
        holder.communicate("", timeout=5)
    with MagPro(magpro_emulator.pty_path, keepalive=False) as stim:
        assert stim.status().serial_number == magpro_emulator.serial_number


def test_a_fault_latched_by_the_keepalive_disables_the_unit(magpro_emulator):
    # The unit still obeys but its status replies stop coming back in time: the
    # keep-alive latches a fault, and the driver disables the unit without waiting.
    with MagPro(magpro_emulator.url) as stim:
        stim.arm()
        magpro_emulator.delay_replies(b"\xfe\x09\x00", 5.0, count=100)  # status replies
        assert _wait_for(lambda: stim.fault is not None, 2.0)
        assert _wait_for(lambda: not magpro_emulator.enabled, 1.0)
        assert isinstance(stim.fault, StimulatorTimeoutError)
