"""MagstimEmulator spoken to with raw bytes: replies, timing behaviour, discharges, faults."""

from __future__ import annotations

import os
import time

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.clock import local_clock
from labkit.sim.events import Discharge
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators import magstim_protocol as mp


def _reply(body: bytes) -> bytes:
    return body + bytes([(~sum(body)) & 0xFF])


def _wait_for(predicate, timeout_s: float) -> float:
    """Poll ``predicate`` until true; return the elapsed time (or fail)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(0.005)
    return time.monotonic() - start


class Raw:
    """A bare port on an emulator: write bytes, read the reply."""

    def __init__(self, port: serial.SerialBase):
        self.port = port

    def ask(self, message: bytes, n: int, timeout_s: float = 0.5) -> bytes:
        self.port.reset_input_buffer()
        self.port.write(message)
        self.port.timeout = timeout_s
        return self.port.read(n)


@pytest.fixture
def make():
    made = []

    def factory(model="200", **options):
        options.setdefault("pty", False)
        emulator = MagstimEmulator(model, **options)
        port = serial.serial_for_url(emulator.url, timeout=0.5)
        made.append((emulator, port))
        return emulator, Raw(port)

    yield factory
    for emulator, port in made:
        port.close()
        emulator.stop()


def test_remote_control_reply_and_status_bits(make):
    emulator, raw = make()
    assert raw.ask(b"Q@n", 3) == _reply(b"Q\x89")  # standby, coil present, remote
    assert emulator.remote_control
    assert emulator.received == [b"Q@n"]
    assert raw.ask(b"R@m", 3) == _reply(b"R\x09")
    assert not emulator.remote_control


def test_error_replies(make):
    # Each lone "?" costs a full read timeout (0.5 s); two in a row took the unit past its
    # 1 s remote-control timeout, so a loaded machine saw "@S" instead of "@?".
    emulator, raw = make(keepalive_timeout_s=10.0)
    assert raw.ask(b"@050*", 3) == _reply(b"@S")  # not under remote control
    raw.ask(b"Q@n", 3)
    assert raw.ask(b"k@\x00", 3) == b"?"  # unknown command character
    assert raw.ask(b"Q@o", 3) == b"?"  # bad CRC
    assert raw.ask(mp.frame("@150"), 3) == _reply(b"@?")  # out of range
    assert raw.ask(mp.frame("@5x0"), 3) == _reply(b"@?")  # not digits
    assert raw.ask(b"A050)", 3) == b"?"  # output B only exists on a BiStim
    assert raw.ask(b"EHr", 3) == _reply(b"ES")  # fire while disarmed
    assert emulator.pulses_delivered == 0
    assert b"Q@o" not in emulator.received and b"k@\x00" not in emulator.received


def test_command_split_across_writes_is_reassembled(make):
    emulator, raw = make()
    for byte in b"Q@n":
        raw.port.write(bytes([byte]))
        time.sleep(0.02)
    raw.port.timeout = 0.5
    assert raw.port.read(3) == _reply(b"Q\x89")
    raw.port.write(b"Q@nJ@u")  # two commands in one write
    assert raw.port.read(3 + 12) == _reply(b"Q\x89") + _reply(b"J\x89030000000")


def test_arm_delay_then_fire_gives_one_discharge_at_set_intensity(make):
    got: list[Discharge] = []
    emulator, raw = make(coil=got.append, arm_delay_s=0.3)
    raw.ask(b"Q@n", 3)
    assert raw.ask(b"@050*", 3) == _reply(b"@\x89")
    start = time.monotonic()
    assert raw.ask(b"EBx", 3) == _reply(b"E\x8a")  # armed, not ready yet
    assert emulator.armed and not emulator.ready
    assert raw.ask(b"EHr", 3) == _reply(b"ES")  # not ready: refused
    elapsed = _wait_for(lambda: emulator.ready, 1.0)
    assert 0.25 <= time.monotonic() - start and elapsed < 0.5
    before = local_clock()
    assert raw.ask(b"EHr", 3) == _reply(b"E\x8a")  # fired; recharging, so not ready
    assert len(got) == 1 and emulator.pulses_delivered == 1
    assert got[0].intensity_percent == 50.0 and got[0].device == "magstim-200"
    assert before <= got[0].time_s <= local_clock()
    assert raw.ask(b"EBx", 3) == _reply(b"ES")  # already armed


def starved_armed(make) -> tuple[MagstimEmulator, Raw, list[Discharge]]:
    """A Magstim 200 under remote control at 50 % MSO, just armed (arm delay and recharge
    0.1 s), whose time-driven ``tick()`` never runs, as on a host that starves its thread;
    with the list its discharges go to."""
    got: list[Discharge] = []
    emulator, raw = make(coil=got.append, arm_delay_s=0.1, recharge_s=0.1)
    emulator.tick = lambda: None
    raw.ask(b"Q@n", 3)
    assert raw.ask(b"@050*", 3) == _reply(b"@\x89")
    assert raw.ask(b"EBx", 3) == _reply(b"E\x8a")
    return emulator, raw, got


def test_readiness_follows_the_clock_even_when_the_tick_thread_is_starved(make):
    """A loaded host may run the emulator's tick() late: the unit is still ready as soon
    as its arm delay and recharge are over (the driver must not see a refused EH)."""
    emulator, raw, got = starved_armed(make)
    assert raw.ask(b"EHr", 3) == _reply(b"ES")  # within the arm delay: refused
    time.sleep(0.15)
    assert raw.ask(b"EHr", 3) == _reply(b"E\x8a")  # ready by the clock: fired
    assert raw.ask(b"EHr", 3) == _reply(b"ES")  # recharging: refused
    time.sleep(0.15)
    assert raw.ask(b"EHr", 3) == _reply(b"E\x8a")
    assert len(got) == 2


def test_trigger_input_follows_the_clock_even_when_the_tick_thread_is_starved(make):
    """The TTL input sees the same readiness as EH: a trigger edge after the arm delay and
    after the recharge fires, however late tick() runs."""
    emulator, raw, got = starved_armed(make)
    ignored_before = emulator.ignored_triggers
    emulator.on_trigger()  # within the arm delay: ignored
    assert emulator.ignored_triggers == ignored_before + 1 and not got
    time.sleep(0.15)
    emulator.on_trigger()  # ready by the clock: fires
    emulator.on_trigger()  # recharging: ignored
    time.sleep(0.15)
    emulator.on_trigger()
    assert len(got) == 2 and emulator.ignored_triggers == ignored_before + 2


def test_remote_control_lapses_without_valid_commands(make):
    emulator, raw = make(arm_delay_s=0.0)
    raw.ask(b"Q@n", 3)
    raw.ask(b"EBx", 3)
    last = time.monotonic()
    raw.ask(b"Q@o", 3)  # an invalid frame does not count as keep-alive
    _wait_for(lambda: not emulator.remote_control, 2.0)
    assert 0.9 <= time.monotonic() - last <= 1.2
    assert not emulator.armed


def test_auto_disarm_when_armed_and_idle(make):
    emulator, raw = make(arm_delay_s=0.0, auto_disarm_s=0.4)
    raw.ask(b"Q@n", 3)
    raw.ask(b"EBx", 3)
    start = time.monotonic()
    while emulator.armed and time.monotonic() - start < 1.0:
        raw.ask(b"Q@n", 3)  # keep control; only the missing pulse disarms
        time.sleep(0.05)
    assert not emulator.armed and emulator.remote_control
    assert 0.35 <= time.monotonic() - start <= 0.8


def test_coil_warms_with_pulses_and_cools(make):
    emulator, raw = make(arm_delay_s=0.0, recharge_s=0.0)
    emulator.heat_per_pulse_c = 2.0
    raw.ask(b"Q@n", 3)
    raw.ask(mp.frame("@100"), 3)
    raw.ask(b"EBx", 3)
    _wait_for(lambda: emulator.ready, 0.5)
    for _ in range(3):
        _wait_for(lambda: emulator.ready, 0.5)
        raw.ask(b"EHr", 3)
    assert emulator.coil_temperature_c == pytest.approx(31.0, abs=0.05)
    assert raw.ask(b"F@y", 9) == _reply(b"F\x8e310310")  # armed, ready, coil, remote
    emulator.cooling_tau_s = 0.05
    _wait_for(lambda: emulator.coil_temperature_c < 25.5, 1.0)
    emulator.cooling_tau_s = 1e9
    emulator.coil_temperature_c = 41.0
    raw.ask(b"EAy", 3)
    assert raw.ask(b"EBx", 3) == _reply(b"ES")  # too hot to arm


def test_bistim_parameters_and_high_resolution(make):
    got: list[Discharge] = []
    emulator, raw = make("bistim", coil=got.append, arm_delay_s=0.0)
    raw.ask(b"Q@n", 3)
    raw.ask(b"@050*", 3)
    raw.ask(b"A050)", 3)
    raw.ask(b"C025%", 3)
    assert raw.ask(b"J@u", 12) == _reply(b"J\x89050050025")
    assert emulator.ipi_ms == 25.0
    assert raw.ask(b"Y@f", 3) == _reply(b"Y\x89")
    assert emulator.ipi_ms == 2.5
    raw.ask(b"EBx", 3)
    assert raw.ask(b"Z@e", 3) == _reply(b"ZS")  # not while armed
    _wait_for(lambda: emulator.ready, 0.5)
    raw.ask(b"EHr", 3)
    assert got[0].intensity_b_percent == 50.0 and got[0].ipi_ms == 2.5
    assert got[0].device == "magstim-bistim"


def test_rapid_version_dependent_fields(make):
    emulator, raw = make("rapid", software_version=(8, 1, 0))
    raw.ask(b"Q@n", 3)
    assert raw.ask(b"NDm", 9) == _reply(b"N\x898.1.0\x00")
    assert raw.ask(b"x@G", 3) == b"?"  # x@ only from v9
    assert raw.ask(mp.set_pulses(20, (8, 1, 0)), 4)[:1] == b"D"
    assert emulator.n_pulses == 20
    assert len(raw.ask(b"\\@c", 30, timeout_s=0.2)) == 22


def test_rapid_unlock_code(make):
    emulator, raw = make("rapid", unlock_code="7c1A")
    assert raw.ask(b"Q@n", 3) == _reply(b"Q?")
    assert not emulator.remote_control
    assert raw.ask(mp.remote_control(True, "7c1A"), 3)[:1] == b"Q"
    assert emulator.remote_control


def test_rapid_train_emits_one_discharge_per_pulse_at_frequency(make):
    got: list[Discharge] = []
    emulator, raw = make("rapid", coil=got.append, arm_delay_s=0.0)
    raw.ask(b"Q@n", 3)
    raw.ask(b"@050*", 3)
    assert raw.ask(mp.set_frequency(20), 4)[:1] == b"B"
    raw.ask(mp.set_pulses(5, (9, 0, 0)), 4)
    raw.ask(mp.set_duration(0.3, (9, 0, 0)), 4)
    raw.ask(b"EBx", 3)
    _wait_for(lambda: emulator.ready, 0.5)
    raw.ask(b"EHr", 3)
    _wait_for(lambda: len(got) == 5 and not emulator.train_running, 1.0)
    time.sleep(0.1)
    assert len(got) == 5 == emulator.pulses_delivered
    gaps = [b.time_s - a.time_s for a, b in zip(got, got[1:], strict=False)]
    assert all(0.02 <= gap <= 0.1 for gap in gaps), gaps  # paced at 20 Hz
    assert got[-1].time_s - got[0].time_s == pytest.approx(0.2, abs=0.04)  # no drift
    assert raw.ask(b"EHr", 3) == _reply(b"ES")  # post-train wait


def test_rapid_refuses_frequency_above_ceiling_and_over_energy_limit(make):
    emulator, raw = make("rapid", arm_delay_s=0.0)
    raw.ask(b"Q@n", 3)
    raw.ask(mp.frame("@100"), 3)
    assert raw.ask(mp.set_frequency(20), 4) == _reply(b"B?")  # 15 Hz max at 100 %
    raw.ask(mp.set_frequency(10), 4)
    raw.ask(mp.set_pulses(300, (9, 0, 0)), 4)  # 30 s > 25 s allowed
    raw.ask(mp.set_duration(30, (9, 0, 0)), 4)
    raw.ask(b"EBx", 3)
    _wait_for(lambda: emulator.ready, 0.5)
    assert raw.ask(b"EHr", 3) == _reply(b"ES")
    assert emulator.pulses_delivered == 0


def test_fault_injection(make):
    emulator, raw = make(seed=3)
    emulator.corrupt_crc()
    bad = raw.ask(b"Q@n", 3)
    assert bad[:2] == b"Q\x89" and not mp.crc_ok(bad)
    emulator.set_garbage(7)
    junk = raw.ask(b"Q@n", 7)
    assert len(junk) == 7 and junk[:1] != b"?"
    assert raw.ask(b"Q@n", 3) == _reply(b"Q\x89")
    emulator.silent = True
    assert raw.ask(b"Q@n", 3, timeout_s=0.2) == b""


@pytest.mark.skipif(os.name != "posix", reason="pty only on POSIX")
def test_pty_speaks_like_a_serial_port():
    emulator = MagstimEmulator("200")
    try:
        port = serial.Serial(emulator.pty_path, 9600, timeout=0.5)
        port.write(b"Q@n")
        assert port.read(3) == _reply(b"Q\x89")
        port.close()
        assert emulator.url.startswith("labkitsim://")
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def fuzz_target():
    emulator = MagstimEmulator("rapid", pty=False, arm_delay_s=0.0)
    port = serial.serial_for_url(emulator.url, timeout=0.3)
    yield emulator, Raw(port)
    port.close()
    emulator.stop()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.binary(min_size=1, max_size=30))
def test_line_noise_never_breaks_the_emulator(fuzz_target, noise):
    emulator, raw = fuzz_target
    emulator.handle_bytes(noise)  # raises nothing, whatever arrives
    with emulator._lock:
        emulator._buffer.clear()  # what the partial-command timeout would do
    assert raw.ask(b"Q@n", 3)[:1] == b"Q"  # and it still answers
    assert emulator._threads[0].is_alive()


def test_fixed_argument_commands_reject_other_data(make):
    emulator, raw = make()
    raw.ask(b"Q@n", 3)
    assert raw.ask(mp.frame("J!"), 3) == _reply(b"J?")
    assert raw.ask(mp.frame("NX"), 3) == _reply(b"N?")
