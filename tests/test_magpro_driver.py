"""MagPro driver against the MagPro emulator, through the in-process URL and the pty."""

from __future__ import annotations

import os
import time

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.clock import local_clock
from labkit.errors import (
    ConfigError,
    CRCError,
    InvalidDataError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.sim.magpro_emulator import AMBIENT_C, MagProEmulator
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import magpro_protocol as proto
from labkit.stimulators.magpro import MagPro, MagProStatus

POSIX = os.name == "posix"


@pytest.fixture
def emulator():
    discharges = []
    emu = MagProEmulator(coil=discharges.append, seed=7)
    emu.coil_log = discharges
    yield emu
    emu.stop()


@pytest.fixture
def stim(emulator):
    events = []
    driver = MagPro(emulator.url, keepalive=False, markers=events.append)
    driver.events = events
    driver.connect()
    yield driver
    driver.close()


def _wait_for(predicate, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------- round trips
def _session(driver: MagPro, emulator: MagProEmulator):
    status = driver.status()
    assert isinstance(status, MagProStatus)
    assert status.serial_number == emulator.serial_number
    assert (status.model, status.enabled, status.coil_type) == ("X100", False, 60)
    assert status.raw[:3] == b"\xfe\x09\x00" and len(status.raw) == 13
    assert status.raw == proto.build_frame(
        proto.StatusReply(**emulator._status_fields()).to_payload())
    driver.set_intensity(60)
    assert emulator.amplitude_percent == 60
    driver.arm()
    assert emulator.enabled and driver.status().armed
    before = local_clock()
    event = driver.fire()
    assert emulator.pulses_delivered == 1
    discharge = emulator.discharges[-1]
    assert discharge.intensity_percent == 60.0 and discharge.device == "magpro-x100"
    # The marker is stamped when the write returns; the in-process emulator may discharge
    # a few µs earlier than that.
    assert before <= event.time_s and abs(discharge.time_s - event.time_s) < 0.05
    assert (event.intensity_percent, event.device, event.index) == (60.0, "MagPro", 0)
    assert driver.status().didt_a == 96  # 60 % of 160 A/µs, as the unit reported
    driver.disarm()
    assert not emulator.enabled


def test_round_trip_through_url(emulator):
    events = []
    with MagPro(emulator.url, keepalive=False, markers=events.append) as driver:
        _session(driver, emulator)
    assert len(events) == 1 and emulator.coil_log == emulator.discharges


@pytest.mark.skipif(not POSIX, reason="pty only on POSIX")
def test_round_trip_through_pty(emulator):
    with MagPro(emulator.pty_path, keepalive=False) as driver:
        _session(driver, emulator)


def test_exact_bytes_on_the_wire(emulator):
    with MagPro(emulator.url, keepalive=False) as driver:
        driver.set_intensity(60)
        driver.arm()
        driver.fire()
        driver.set_train(10, 50, 1, 25)
    # Byte layouts as MAGIC's magventure.m builds them (getStatus, setAmplitude, arm,
    # fire, setTrain: rate×10, pulses, trains, ITI×10 as 16-bit MSB-first).
    assert emulator.received == [
        b"\x00",                                  # connect: status
        b"\x01\x3c",                              # amplitude 60 %
        b"\x02\x01",                              # enable
        b"\x03\x01",                              # single pulse
        bytes.fromhex("06 0064 0032 0001 00FA"),  # 10 pps, 50 pulses, 1 train, 25 s
        b"\x02\x00",                              # close: disable
    ]


def test_dual_amplitude_page_and_status2(stim, emulator):
    stim.set_intensity(55, 40)
    assert (emulator.amplitude_percent, emulator.amplitude_b_percent) == (55, 40)
    stim.set_page("train")
    assert emulator.page == "train" and stim.page == "train"
    s2 = stim.status2()
    assert (s2.page, s2.train_running, s2.amplitude_b_percent) == ("train", False, 40)


def test_mode_block_get_and_set(stim, emulator):
    block = stim.get_mode_block()
    assert (block.model, block.mode, block.waveform) == ("X100", "standard", "biphasic")
    new = stim.set_mode_block(waveform="biphasic_burst", burst_pulses=3, ipi_ms=20.0)
    assert (new.waveform, new.burst_pulses, new.ipi_ms) == ("biphasic_burst", 3, 20.0)
    assert (emulator.waveform, emulator.burst_pulses, emulator.ipi_ms) == (
        "biphasic_burst", 3, 20.0)
    assert stim.status().waveform == "biphasic_burst"
    with pytest.raises(ConfigError, match=r"0\.1\.\.20 pps"):
        stim.set_train(30, 10, 1, 1)  # burst waveform caps the rate at 20 pps


# --------------------------------------------------------------------------- refusals
def test_intensity_validation_before_any_io(stim, emulator):
    sent = len(emulator.received)
    for bad in (float("nan"), True, 50.5, -1, 101):
        with pytest.raises(ConfigError, match=r"percent.*0\.\.100"):
            stim.set_intensity(bad)
    assert len(emulator.received) == sent


def test_fire_refused_while_disabled(stim, emulator):
    with pytest.raises(StimulatorError, match="disabled: call arm"):
        stim.fire()
    assert emulator.pulses_delivered == 0 and b"\x03\x01" not in emulator.received
    assert stim.pulse_count == 0


def test_emulator_refuses_to_fire_when_disabled_and_says_so(emulator):
    port = serial.serial_for_url(emulator.url, timeout=0.5)
    port.write(proto.single_pulse_command())
    reply = proto.parse_reply(proto.parse_frame(port.read(8)))
    port.close()
    assert isinstance(reply, proto.AmplitudeReply) and not reply.info.enabled
    assert emulator.pulses_delivered == 0 and emulator.discharges == []


def test_unit_disabled_behind_drivers_back(stim, emulator):
    stim.arm()
    emulator.enabled = False  # someone pressed the front-panel button
    with pytest.raises(StimulatorError, match="did not fire"):
        stim.fire()
    assert emulator.pulses_delivered == 0 and stim.pulse_count == 0


def test_unit_reporting_other_amplitude_is_an_error(stim, emulator, monkeypatch):
    monkeypatch.setattr(emulator, "_amplitude_reply",
                        lambda: proto.AmplitudeReply(10, 0, emulator._info()))
    with pytest.raises(InvalidDataError, match="instead of amplitude 60 %") as info:
        stim.set_intensity(60)
    assert "amplitude_a_percent=10" in str(info.value)


def test_train_limits_refused_before_sending(stim, emulator):
    sent = len(emulator.received)
    with pytest.raises(ConfigError, match="rep_rate_hz") as info:
        stim.set_train(150, 10, 1, 1)
    assert info.value.field == "rep_rate_hz"
    with pytest.raises(ConfigError, match="iti_s"):
        stim.set_train(10, 10, 1, 0)
    with pytest.raises(ConfigError, match="one at a time") as info:
        stim.set_train(10, 10, 2, 1)  # a queued sequence would outlive a dead host
    assert info.value.field == "number_of_trains"
    assert len(emulator.received) == sent


def test_limits_follow_the_model_the_unit_reports():
    with MagProEmulator("R30", pty=False) as emu, MagPro(emu.url, keepalive=False) as driver:
        assert driver.model == "R30"
        with pytest.raises(ConfigError, match=r"0\.1\.\.30 pps"):
            driver.set_train(50, 10, 1, 1)
        assert driver.set_train(30, 10, 1, 1).rep_rate_hz == 30.0


def test_start_train_needs_settings_and_enable(stim):
    with pytest.raises(ConfigError, match="set_train"):
        stim.start_train()
    stim.set_train(10, 5, 1, 1)
    with pytest.raises(StimulatorError, match="disabled"):
        stim.start_train()


def test_bad_model_name():
    with pytest.raises(ConfigError, match="model must be one of"):
        MagPro("loop://", model="X200")


# --------------------------------------------------------------------------- trains
def test_train_delivers_right_count_at_right_rate(stim, emulator):
    stim.set_intensity(50)
    stim.arm()
    settings_ = stim.set_train(20, 10, 1, 0.3)
    stim.guard.permit("test trains", 20, 50)  # what a passing verdict would allow
    assert emulator.train == settings_ and stim.train_verified
    starts = [stim.start_train()]
    assert emulator.page == "train"
    assert _wait_for(lambda: not emulator.train_running and emulator.pulses_delivered == 10)
    starts.append(stim.start_train())  # the host paces trains: one per command
    assert _wait_for(lambda: not emulator.train_running and emulator.pulses_delivered == 20)
    times = [d.time_s for d in emulator.discharges]
    assert len(times) == 20
    assert all(d.intensity_percent == 50.0 for d in emulator.discharges)
    # The unit times its own train: its pulses are 50 ms apart, however late the
    # emulator's train thread runs on a loaded machine.
    for first in (0, 10):
        within = [b - a for a, b in zip(times[first:first + 9], times[first + 1:first + 10],
                                        strict=True)]
        assert within == pytest.approx([0.05] * 9, abs=1e-9)
    assert 0.0 <= times[0] - starts[0] < 0.1 and 0.0 <= times[10] - starts[1] < 0.1
    assert not stim.train_running()
    # Every pulse the unit reported became a marker on the train schedule.
    assert len(stim.events) == 20 and stim.pulse_count == 20
    offsets = [e.time_s - d.time_s for e, d in zip(stim.events, emulator.discharges, strict=True)]
    assert max(abs(o) for o in offsets) < 0.1  # emulator thread lateness under load
    assert stim.events[10].extra == {"train": 0, "pulse_in_train": 0, "time_source": "schedule"}


def test_disarm_stops_a_train(stim, emulator):
    stim.set_intensity(40)
    stim.arm()
    stim.set_train(10, 100, 1, 1)
    stim.guard.permit("test train", 100, 40)  # what a passing verdict would allow
    stim.start_train()
    assert _wait_for(lambda: emulator.pulses_delivered >= 2)
    stim.disarm()
    assert _wait_for(lambda: not emulator.train_running, 1.0)
    delivered = emulator.pulses_delivered
    time.sleep(0.25)
    assert emulator.pulses_delivered == delivered < 10


def test_coil_warms_with_pulses(stim, emulator):
    stim.set_intensity(100)
    stim.arm()
    for _ in range(30):
        stim.fire()
    assert emulator.coil_temperature_c > AMBIENT_C + 0.25
    assert emulator.pulses_delivered == 30
    assert stim.abilities.coil_temperature
    assert stim.coil_temperature_c() == round(emulator.coil_temperature_c)


# --------------------------------------------------------------------------- failures
def test_silent_unit_times_out_within_one_second(stim, emulator):
    emulator.silent = True
    start = time.monotonic()
    with pytest.raises(StimulatorTimeoutError, match=r"did not answer status \(0x00\)") as info:
        stim.status()
    assert time.monotonic() - start < 1.0
    assert info.value.command == proto.status_command()


def test_keepalive_notices_pulled_cable(emulator):
    with MagPro(emulator.url) as driver:
        time.sleep(1.2)
        polls = emulator.received.count(b"\x00")
        assert polls >= 2  # connect + at least one keep-alive status
        assert driver.fault is None
        emulator.silent = True
        pulled = time.monotonic()
        assert _wait_for(lambda: driver.fault is not None, 1.5)
        assert time.monotonic() - pulled < 1.4  # 0.5 s idle poll + 0.5 s timeout + slack
        assert isinstance(driver.fault, StimulatorTimeoutError)
        with pytest.raises(StimulatorError, match="failed earlier"):
            driver.status()


def test_bad_crc_reply_raises_crc_error_naming_command(stim, emulator, monkeypatch):
    def corrupt(data: bytes) -> None:
        SerialEmulator.reply(emulator, data[:-2] + bytes(((data[-2] + 1) & 0xFF,)) + b"\xff")

    monkeypatch.setattr(emulator, "reply", corrupt)
    with pytest.raises(CRCError, match=r"status \(0x00\)") as info:
        stim.status()
    assert info.value.command == proto.status_command()


def test_emulator_ignores_bad_crc_and_resyncs_on_garbage(emulator):
    port = serial.serial_for_url(emulator.url, timeout=0.3)
    port.write(bytes.fromhex("FE 01 00 55 FF"))
    assert port.read(13) == b""
    assert emulator.crc_errors == 1
    port.write(b"\x12\x34garbage\xfe" + proto.status_command())
    reply = proto.parse_reply(proto.parse_frame(port.read(13)))
    port.close()
    assert isinstance(reply, proto.StatusReply)
    assert emulator.received == [b"\x00"]


def test_garbage_before_reply_is_skipped(stim, emulator, monkeypatch):
    monkeypatch.setattr(emulator, "reply",
                        lambda data: SerialEmulator.reply(emulator, b"\x00\xfe\x05\x13" + data))
    status = stim.status()
    assert status.serial_number == emulator.serial_number
    assert status.raw[:3] == b"\xfe\x09\x00" and len(status.raw) == 13  # garbage not kept


def test_unsolicited_messages_are_absorbed(stim, emulator):
    # The unit reports a front-panel amplitude change on its own.
    emulator.amplitude_percent = 33
    SerialEmulator.reply(emulator, proto.build_frame(emulator._amplitude_reply().to_payload()))
    time.sleep(0.05)
    assert stim.status().amplitude_a_percent == 33
    assert stim._current_intensity() == 33.0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=24))
def test_fuzz_garbage_on_line_raises_only_protocol_errors(emulator, garbage):
    driver = MagPro(emulator.url, keepalive=False, timeout_s=0.3)
    driver.connect()
    try:
        emulator._to_url_host.write(garbage)
        try:
            status = driver.status()
        except StimulatorProtocolError:
            status = driver.status()  # the next command recovers
        assert status.serial_number == emulator.serial_number
        assert driver.fault is None
    finally:
        driver.close()


def test_keepalive_thread_survives_garbage(emulator):
    with MagPro(emulator.url) as driver:
        for burst in (b"\xfe\x03\x00\x00\x00\xff", b"\xfe\x01\x00\x01\xff", b"\xfe\x20\x00",
                      b"\xfe\x04\x00\x00"):
            emulator._to_url_host.write(burst)
            time.sleep(0.35)
        time.sleep(0.6)
        assert driver._keepalive_thread.is_alive()
        assert driver.fault is None
        assert driver.keepalive_errors + driver.unsolicited_errors >= 1
        assert driver.status().serial_number == emulator.serial_number


def test_close_disarms(emulator):
    driver = MagPro(emulator.url, keepalive=False).connect()
    driver.arm()
    assert emulator.enabled
    driver.close()
    assert not emulator.enabled and not driver.connected
    driver.close()  # twice is fine


def test_train_markers_arrive_while_idle_through_keepalive(emulator):
    events = []
    with MagPro(emulator.url, markers=events.append) as driver:
        driver.set_intensity(45)
        driver.arm()
        driver.set_train(10, 5, 1, 1)
        driver.guard.permit("test train", 5, 45)  # what a passing verdict would allow
        driver.start_train()
        # No further calls: the keep-alive's status polls pick up the unit's reports.
        assert _wait_for(lambda: len(events) == 5, 2.5)
    assert [e.intensity_percent for e in events] == [45.0] * 5
    assert [e.index for e in events] == list(range(5))
