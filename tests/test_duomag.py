"""Deymed DuoMAG: bytes as MAGIC's duomag.m writes and reads them, driver on the emulator.

Expected bytes are worked out by hand from MAGIC ``duomag.m`` (and its fork that sets
delays up to 600 ms): ``fwrite(port, [a a])`` for the intensity, ``[121 121]`` to fire,
``[upper upper lower lower]`` with ``upper = bin2dec(['100' frc(1:5)])`` and
``lower = bin2dec(['101' exp frc(6:7)])`` for the recharge delay (``'110'``/``'111'`` for
the TTL-out delay), ``frc = dec2bin(steps, 7)``; status read as 1 Mbaud, 2 stop bits,
frames between ``255`` sync bytes, fields at the rows ``getStatus`` reads.
"""

from __future__ import annotations

import os
import time

import pytest
import serial

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.errors import ConfigError, StimulatorError, StimulatorTimeoutError
from labkit.sim import WiredTrigger
from labkit.sim.duomag_emulator import DuoMAGEmulator
from labkit.stimulators import duomag_protocol as dp
from labkit.stimulators.duomag import DuoMAG

POSIX = os.name == "posix"


# ----------------------------------------------------------------------------- bytes
def test_intensity_and_fire_bytes():
    assert dp.intensity_command(50) == bytes([50, 50])      # setAmplitude(50)
    assert dp.FIRE == bytes([121, 121])                      # fire
    for bad in (101, -1, 50.5, True, float("nan"), "50"):
        with pytest.raises(ConfigError, match="percent"):
            dp.intensity_command(bad)


def test_delay_bytes_follow_magics_bit_layout():
    # MAGIC's own example: 60 steps of 2 ms = 120 ms. frc = dec2bin(60, 7) = '0111100';
    # exp for 2 ms = '101'. upper = '100'+'01111' = 0x8F, lower = '101'+'101'+'00' = 0xB4.
    assert dp.delay_command("recharge", 60, 2.0) == bytes([0x8F, 0x8F, 0xB4, 0xB4])
    # TTL-out delay: '110'+'01111' = 0xCF, '111'+'101'+'00' = 0xF4.
    assert dp.delay_command("ttl", 60, 2.0) == bytes([0xCF, 0xCF, 0xF4, 0xF4])
    # 127 steps of 0.05 ms: frc '1111111', exp '000' -> 0x9F, 0xA3.
    assert dp.delay_command("recharge", 127, 0.05) == bytes([0x9F, 0x9F, 0xA3, 0xA3])
    assert dp.parse_delay_command(bytes([0x8F, 0x8F, 0xB4, 0xB4])) == ("recharge", 120.0)


def test_delays_use_the_finest_exact_step():
    assert dp.encode_delay_ms(3.0) == (60, 0.05)
    assert dp.encode_delay_ms(120) == (120, 1.0)
    assert dp.encode_delay_ms(600) == (120, 5.0)  # the fork's upper bound
    with pytest.raises(ConfigError, match="ipi_ms .* not steps"):
        dp.encode_delay_ms(127.3, "ipi_ms")
    with pytest.raises(ConfigError, match="0..1270"):
        dp.encode_delay_ms(2000)


def _status_bytes() -> bytes:
    # Rows as MAGIC's getStatus reads them (1-based rows, bit strings MSB first).
    return bytes([
        0b00111110,   # row 1: char 3 demandOnStimTTL = 1; chars 4:8 '11110' = -2
        70,           # row 2: current intensity
        90, 80, 60,   # rows 3-5: coil, resistor, discharge temperature ADC
        3,            # row 6: omitted pulses
        0b00100000,   # row 7: char 3 coil disconnected
        0b00000011,   # row 8: char 7 coil data OK, char 8 receiving USB
        0b00000001,   # row 9: char 8 charged
        30,           # row 10: TTL delay steps
        12,           # row 11: recharge delay steps
        0b01100001,   # row 12: chars 2:4 '110' (5 ms) recharge; chars 6:8 '001' (0.1 ms) TTL
        0, 0,
        6,            # row 15: coil type 6 = 50BF
    ])


def test_status_fields_at_magics_rows():
    frame = dp.parse_status(_status_bytes())
    assert (frame.demand_on_stim_ttl, frame.change_intensity, frame.intensity_percent) == (
        True, -2, 70)
    assert (frame.coil_temperature_adc, frame.resistor_temperature_adc,
            frame.discharge_temperature_adc, frame.omitted_pulse_count) == (90, 80, 60, 3)
    assert frame.coil_disconnected and frame.error and not frame.power_overheat
    assert frame.coil_data_ok and frame.receiving_usb and frame.charged
    assert (frame.ttl_delay_ms, frame.recharge_delay_ms) == (3.0, 60.0)
    assert frame.coil_name == "50BF"
    assert dp.parse_status(frame.to_bytes()) == frame  # 3 ms re-encoded as 60 × 0.05 ms
    assert dp.parse_status(_status_bytes()[:13]).coil_type is None  # older units


def test_stream_cuts_frames_at_sync_bytes():
    stream = dp.StatusStream()
    data = _status_bytes()
    assert stream.feed(data[5:] + b"\xff" + data[:7]) == []  # partial frame before a sync
    assert stream.feed(data[7:] + b"\xff") == [data]


# ----------------------------------------------------------------------------- emulator
def test_emulator_over_its_pty_reads_like_magic():
    emulator = DuoMAGEmulator(pty=POSIX)
    try:
        port = serial.serial_for_url(emulator.pty_path if POSIX else emulator.url,
                                     baudrate=1_000_000, stopbits=serial.STOPBITS_TWO,
                                     timeout=1.0)
        port.write(bytes([55, 55]))
        time.sleep(0.1)
        port.reset_input_buffer()
        raw = port.read(32)  # MAGIC: nchar = 32, frames between the last two syncs
        syncs = [i for i, b in enumerate(raw) if b == 0xFF]
        frame = dp.parse_status(raw[syncs[-2] + 1:syncs[-1]])
        assert frame.intensity_percent == 55 and frame.charged and frame.coil_name == "70BF"
        port.close()
    finally:
        emulator.stop()


def test_emulator_drops_undoubled_bytes():
    emulator = DuoMAGEmulator(pty=False)
    try:
        emulator.handle_bytes(bytes([40, 41, 121, 30, 30]))
        assert emulator.intensity_percent == 30 and emulator.pulses_delivered == 0
        assert emulator.malformed == 3
    finally:
        emulator.stop()


# ----------------------------------------------------------------------------- driver
@pytest.fixture
def unit():
    made = []

    def factory(model="MP", **options):
        emulator = DuoMAGEmulator(model, pty=False, **options)
        events = []
        stim = DuoMAG(emulator.url, model=model, keepalive=False, markers=events.append)
        made.append((emulator, stim))
        return emulator, stim.connect(), events

    yield factory
    for emulator, stim in made:
        stim.close()
        emulator.stop()


def test_set_arm_fire_gives_one_discharge_and_one_marker(unit):
    emulator, stim, events = unit()
    stim.set_intensity(60)
    assert emulator.intensity_percent == 0  # remembered while disarmed
    stim.arm()
    assert emulator.intensity_percent == 60
    event = stim.fire()
    assert emulator.pulses_delivered == 1 and events == [event]
    assert event.intensity_percent == 60.0 and event.device == "DuoMAG"
    assert 0.0 <= emulator.discharges[0].time_s - event.time_s < 0.05  # loaded machine
    assert emulator.received == [bytes([60, 60]), dp.FIRE]


def test_fire_waits_for_the_recharge(unit):
    emulator, stim, events = unit(charge_s=0.3)
    stim.set_intensity(30)
    stim.arm()
    first = stim.fire()
    second = stim.fire()  # the unit is recharging: the driver waits for "charged"
    assert second.time_s - first.time_s > 0.28  # charge_s 0.3, less one 10 ms tick
    assert emulator.pulses_delivered == 2 and emulator.omitted_pulse_count == 0


def test_omitted_pulse_is_an_error_without_marker(unit):
    emulator, stim, events = unit(charge_s=10.0)
    stim.set_intensity(30)
    stim.arm()
    stim.fire()  # the unit now recharges for 10 s
    # a stale cached status still says "charged": the unit skips the trigger and counts it
    stim.last_frame = dp.StatusFrame(intensity_percent=30, charged=True)
    with pytest.raises(StimulatorError, match="omitted the pulse"):
        stim.fire()
    assert emulator.pulses_delivered == 1 and emulator.omitted_pulse_count == 1
    assert len(events) == 1 and stim.pulse_count == 1


def test_disarm_sets_zero_and_refuses_to_fire(unit):
    emulator, stim, events = unit()
    stim.set_intensity(45)
    stim.arm()
    stim.disarm()
    time.sleep(0.05)
    assert emulator.intensity_percent == 0
    with pytest.raises(StimulatorError, match="not armed"):
        stim.fire()
    stim.arm()
    assert emulator.intensity_percent == 45  # restored


def test_mp_dual_paired_pulse_interval(unit):
    emulator, stim, events = unit("MP-Dual")
    stim.set_ipi(3.0)
    assert emulator.ttl_delay_ms == 3.0 and emulator.received[-1] == dp.delay_command(
        "ttl", 60, 0.05)
    stim.set_intensity(50)
    stim.arm()
    event = stim.fire()
    assert event.ipi_ms == 3.0
    assert emulator.discharges[0].ipi_ms == 3.0
    with pytest.raises(ConfigError, match="MP-Dual"):
        DuoMAG("loop://", model="MP").set_ipi(3.0)


def test_recharge_delay_is_reported_back(unit):
    emulator, stim, _ = unit()
    stim.set_recharge_delay(120)
    assert emulator.recharge_delay_ms == 120.0
    assert stim.status().frame.recharge_delay_ms == 120.0


def test_ttl_trigger_fires_and_is_confirmed(unit):
    emulator, stim, events = unit()
    stim.set_intensity(40)
    stim.arm()
    stim.use_trigger(WiredTrigger(emulator))
    event = stim.fire()
    assert emulator.pulses_delivered == 1 and event.extra == {"trigger": "ttl"}
    assert dp.FIRE not in emulator.received


def test_silent_unit_latches_through_the_keepalive():
    emulator = DuoMAGEmulator(pty=False)
    try:
        with DuoMAG(emulator.url) as stim:
            emulator.silent = True
            deadline = time.monotonic() + 2.0
            while stim.fault is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert isinstance(stim.fault, StimulatorTimeoutError)
            assert "no status frame" in str(stim.fault)
    finally:
        emulator.stop()


def test_fault_flags_refuse_arming(unit, monkeypatch):
    emulator, stim, _ = unit()
    real = emulator.frame
    monkeypatch.setattr(emulator, "frame", lambda: dp.StatusFrame(
        **{**real().__dict__, "coil_overheat": True}))
    with pytest.raises(StimulatorError, match="coil_overheat"):
        stim.arm()
    assert not stim.armed


# ----------------------------------------------------------------------------- registry
def test_registry_declares_the_duomag_models():
    from labkit.stimulators.capabilities import PairedPulse, SinglePulse, TTLTrigger
    from labkit.stimulators.registry import abilities_for_driver, model_spec

    dual = model_spec("deymed-duomag-mp-dual")
    assert (dual.driver, dual.driver_options, dual.emulator) == (
        "DuoMAG", {"model": "MP-Dual"}, ("duomag", "MP-Dual"))
    assert dual.abilities.paired_pulse and not dual.abilities.repetitive
    assert not model_spec("deymed-duomag-xt").abilities.device_train
    assert not dual.abilities.coil_temperature  # ADC counts with no published unit
    assert abilities_for_driver(DuoMAG("loop://", model="MP-Dual")).paired_pulse
    assert not abilities_for_driver(DuoMAG("loop://", model="MP")).paired_pulse
    stim = DuoMAG("loop://", model="MP-Dual")
    assert isinstance(stim, SinglePulse) and isinstance(stim, PairedPulse)
    assert isinstance(stim, TTLTrigger) and dual.abilities.ttl_trigger


def test_a_simulated_rig_runs_on_a_duomag():
    import labkit
    from labkit.profiles import load_profile

    base = load_profile("simulated")
    profile = base.model_copy(update={"stimulator": base.stimulator.model_copy(
        update={"model": "deymed-duomag-mp"})})
    with labkit.open_rig(profile, seed=1) as rig:
        assert type(rig.stimulator).__name__ == "DuoMAG"
        trial = rig.pulse(70)
        emulator = rig.hardware.emulator
        assert emulator.pulses_delivered == 1 and trial.intensity_percent == 70
    assert load_profile("deymed-duomag-mp").stimulator.model == "deymed-duomag-mp"
