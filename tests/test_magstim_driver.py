"""Magstim drivers against a scripted device and against MagstimEmulator (URL and pty)."""

from __future__ import annotations

import os
import threading
import time

import pytest

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.clock import local_clock
from labkit.errors import (
    ConfigError,
    CRCError,
    InvalidCommandError,
    InvalidDataError,
    NotConnectedError,
    SafetyError,
    SettingsConflictError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.markers import PulseEvent
from labkit.sim.events import Discharge
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import magstim_protocol as mp
from labkit.stimulators.magstim import BiStim, Magstim, Rapid


def _reply(body: bytes) -> bytes:
    return body + bytes([(~sum(body)) & 0xFF])


class Scripted(SerialEmulator):
    """Answers a fixed list of (expected command, reply) pairs, in order."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        self.pairs = list(pairs)
        self.unexpected: list[bytes] = []
        self._pending = bytearray()
        super().__init__(pty=False)

    def handle_bytes(self, data: bytes) -> None:
        self._pending.extend(data)
        while self.pairs and self._pending.startswith(self.pairs[0][0]):
            sent, reply = self.pairs.pop(0)
            del self._pending[:len(sent)]
            self.reply(reply)
        if self._pending and (not self.pairs or not self.pairs[0][0].startswith(
                bytes(self._pending))):
            self.unexpected.append(bytes(self._pending))
            self._pending.clear()


STANDBY = _reply(b"Q\x89")
DISARMED = _reply(b"E\x89")
PARAMS_55 = _reply(b"J\x89055000000")


@pytest.fixture
def scripted():
    made = []

    def factory(pairs):
        device = Scripted(pairs)
        made.append(device)
        return device

    yield factory
    for device in made:
        device.stop()


@pytest.fixture
def emulators():
    made = []

    def factory(model="200", **options):
        options.setdefault("pty", False)
        options.setdefault("arm_delay_s", 0.2)
        emulator = MagstimEmulator(model, **options)
        made.append(emulator)
        return emulator

    yield factory
    for emulator in made:
        emulator.stop()


# ----------------------------------------------------------------------------- exact exchanges
def test_connect_set_close_exact_bytes(scripted):
    device = scripted([
        (b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55),
        (b"@050*", _reply(b"@\x89")),
        (b"EAy", _reply(b"E\x89")), (b"R@m", _reply(b"R\x09")),
    ])
    stim = Magstim(device.url, keepalive=False).connect()
    assert stim._current_intensity() == 55.0  # read back on connect
    stim.set_intensity(50)
    stim.close()
    assert device.pairs == [] and device.unexpected == []
    assert not stim.connected


def test_crc_error_on_a_query_is_retried_once(scripted):
    device = scripted([
        (b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55),
        (b"F@y", b"F\x89250250\x00"), (b"F@y", _reply(b"F\x89250251")),
    ])
    with Magstim(device.url, keepalive=False) as stim:
        assert stim.temperature().coil2_c == 25.1
        assert stim.retries == 1
        device.pairs += [(b"EAy", _reply(b"E\x89")), (b"R@m", _reply(b"R\x09"))]
    assert device.pairs == []


def test_second_crc_error_raises(scripted):
    device = scripted([
        (b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55),
        (b"F@y", b"F\x89250250\x00"), (b"F@y", b"F\x89250250\x00"),
    ])
    stim = Magstim(device.url, keepalive=False).connect()
    with pytest.raises(CRCError, match=r"command b'F@y'"):
        stim.temperature()
    stim._release_port()


def test_fire_is_not_retried_after_a_bad_reply(scripted):
    device = scripted([
        (b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55), (b"EHr", b"E\x8e\x00"),
    ])
    stim = Magstim(device.url, keepalive=False).connect()
    with pytest.raises(CRCError, match="EHr") as info:
        stim.fire()
    assert "may have been delivered" in info.value.__notes__[0]
    time.sleep(0.05)
    assert device.unexpected == []  # no second EHr on the line
    assert stim.pulse_count == 0
    stim._release_port()


@pytest.mark.parametrize(("reply", "error"), [
    (b"?", InvalidCommandError), (_reply(b"@?"), InvalidDataError),
    (_reply(b"@S"), SettingsConflictError), (b"@\x89", StimulatorProtocolError),
])
def test_refusals_raise_specific_errors(scripted, reply, error):
    device = scripted([(b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55),
                       (b"@050*", reply)]
                      + ([(b"@050*", reply)] if error is StimulatorProtocolError else []))
    stim = Magstim(device.url, keepalive=False, timeout_s=0.2).connect()
    with pytest.raises(error, match=r"b'@050\*'"):
        stim.set_intensity(50)
    stim._release_port()


@pytest.mark.parametrize("bad", [101, -5, 50.5, float("nan"), True, "60"])
def test_bad_intensity_refused_before_anything_is_sent(scripted, bad):
    device = scripted([(b"Q@n", STANDBY), (b"EAy", DISARMED), (b"J@u", PARAMS_55)])
    stim = Magstim(device.url, keepalive=False).connect()
    with pytest.raises(ConfigError, match="percent must be an integer from 0 to 100"):
        stim.set_intensity(bad)
    time.sleep(0.05)
    assert device.unexpected == []
    stim._release_port()


def test_not_connected_error():
    with pytest.raises(NotConnectedError, match="call connect"):
        Magstim("labkitsim://nobody").status()


# ----------------------------------------------------------------------------- round trips
def _round_trip(stim_cls, port, emulator):
    pulses: list[PulseEvent] = []
    with stim_cls(port, markers=pulses.append) as stim:
        stim.set_intensity(62)
        assert stim.parameters().intensity_percent == 62
        assert stim.version() == (9, 0, 0)
        assert stim.error_code() == "000"
        assert stim.temperature().coil1_c == 25.0
        assert stim.abilities.coil_temperature and stim.coil_temperature_c() == 25.0
        stim.arm()
        assert stim.status().ready
        before = local_clock()
        event = stim.fire()
        assert before <= event.time_s <= local_clock()
    assert pulses == [event] and event.intensity_percent == 62.0
    assert not emulator.remote_control and not emulator.armed  # close() disarmed, released


def test_round_trip_through_url(emulators):
    got: list[Discharge] = []
    emulator = emulators(coil=got.append)
    _round_trip(Magstim, emulator.url, emulator)
    assert len(got) == 1 and got[0].intensity_percent == 62.0
    assert emulator.received[-2:] == [b"EAy", b"R@m"]


@pytest.mark.skipif(os.name != "posix", reason="pty only on POSIX")
def test_round_trip_through_pty(emulators):
    got: list[Discharge] = []
    emulator = emulators(coil=got.append, pty=True)
    _round_trip(Magstim, emulator.pty_path, emulator)
    assert len(got) == 1


def test_arm_ready_fire_gives_exactly_one_discharge_and_one_marker(emulators):
    got: list[Discharge] = []
    emulator = emulators(coil=got.append, arm_delay_s=0.3)
    heard: list[PulseEvent] = []
    with Magstim(emulator.url) as stim:
        stim.add_pulse_listener(heard.append)
        stim.set_intensity(47)
        start = time.monotonic()
        stim.arm()
        assert time.monotonic() - start >= 0.28 and emulator.ready
        event = stim.fire()
        time.sleep(0.1)
    assert len(got) == 1 and got[0].intensity_percent == 47.0
    assert heard == [event] and event.index == 0 and event.device == "Magstim"
    assert abs(got[0].time_s - event.time_s) < 0.05  # same clock: local_clock


def test_arm_timeout_is_clear_and_disarms(emulators):
    emulator = emulators(arm_delay_s=10.0)
    with Magstim(emulator.url, arm_timeout_s=0.3) as stim:
        with pytest.raises(StimulatorTimeoutError, match=r"not ready within 0.3 s.*disarmed"):
            stim.arm()
        assert not emulator.armed


def test_bistim_round_trip_with_high_resolution(emulators):
    got: list[Discharge] = []
    emulator = emulators("bistim", coil=got.append)
    with BiStim(emulator.url) as stim:
        stim.set_intensity(40, 55)
        stim.set_ipi(3)
        assert emulator.ipi_ms == 3.0 and not emulator.high_resolution
        stim.set_ipi(2.5)  # fractional: switches high resolution on
        assert emulator.high_resolution and emulator.ipi_ms == 2.5
        params = stim.parameters()
        assert (params.intensity_percent, params.intensity_b_percent, params.ipi_ms) == (
            40, 55, 2.5)
        stim.set_ipi(150)  # beyond 99.9 ms: back to 1 ms resolution
        assert not emulator.high_resolution and emulator.ipi_ms == 150.0
        with pytest.raises(ConfigError, match="ipi_ms"):
            stim.set_ipi(2.55)
        stim.arm()
        event = stim.fire()
    assert event.intensity_b_percent == 55.0 and event.ipi_ms == 150.0
    assert got[0].intensity_b_percent == 55.0 and got[0].ipi_ms == 150.0


# ------------------------------------------------------------------------ keep-alive and faults
def test_idle_connection_keeps_remote_control(emulators):
    emulator = emulators()
    with Magstim(emulator.url):
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert emulator.remote_control
            time.sleep(0.05)


@pytest.mark.parametrize("how", ["keepalive_off", "keepalive_stopped"])
def test_without_keepalive_the_unit_drops_control_within_1_2_s(emulators, how):
    emulator = emulators()
    if how == "keepalive_off":
        stim = Magstim(emulator.url, keepalive=False).connect()
    else:
        stim = Magstim(emulator.url).connect()
        time.sleep(0.6)
        stim._stop_keepalive.set()  # the thread dies without a goodbye
        stim._keepalive_thread.join(1.0)
    last = stim._last_io_s
    while emulator.remote_control:
        assert local_clock() - last < 1.2
        time.sleep(0.01)
    assert local_clock() - last >= 0.9
    stim._release_port()


@pytest.mark.parametrize("model, cls", [("200", Magstim), ("rapid", Rapid)])
def test_arm_takes_back_control_that_lapsed_while_the_host_was_late(emulators, model, cls):
    emulator = emulators(model)
    stim = cls(emulator.url, keepalive=False).connect()  # a host that missed its pokes
    try:
        stim.set_intensity(40)
        deadline = time.monotonic() + 3.0
        while emulator.remote_control and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not emulator.remote_control and not emulator.armed
        stim.arm(wait=False)
        assert emulator.remote_control and emulator.armed
        assert stim.control_retaken == 1
    finally:
        stim.close()


def test_silent_unit_raises_timeout_within_1_s(emulators):
    emulator = emulators()
    stim = Magstim(emulator.url, keepalive=False, timeout_s=0.5).connect()
    emulator.silent = True
    start = time.monotonic()
    with pytest.raises(StimulatorTimeoutError, match=r"did not answer within 0.50 s.*Q@n"):
        stim.status()
    assert time.monotonic() - start < 1.0
    stim.close()  # shutdown after a dead line does not hang or raise


def test_silent_unit_latches_a_fault_through_the_keepalive(emulators):
    emulator = emulators()
    stim = Magstim(emulator.url).connect()
    emulator.silent = True
    start = time.monotonic()
    while stim.fault is None:
        assert time.monotonic() - start < 1.5
        time.sleep(0.01)
    assert isinstance(stim.fault, StimulatorTimeoutError)
    with pytest.raises(NotConnectedError, match="failed earlier"):
        stim.fire()
    stim.close()


def test_reconnect_after_a_dead_session_disarms(emulators):
    emulator = emulators(arm_delay_s=0.0)
    first = Magstim(emulator.url).connect()
    first.arm()
    first._stop_keepalive.set()
    first._release_port()  # the process died: no goodbye
    assert emulator.armed
    with Magstim(emulator.url) as second:
        assert not emulator.armed and not second.status().armed


def test_garbage_never_kills_the_keepalive(emulators):
    emulator = emulators(seed=7)
    with Magstim(emulator.url) as stim:
        emulator.set_garbage(5, replies=3)
        emulator.corrupt_crc(replies=2)
        time.sleep(2.5)
        assert stim._keepalive_thread.is_alive() and stim.fault is None
        assert stim.keepalive_errors + stim.retries >= 2
        assert emulator.remote_control
        assert stim.status().remote_control


# ----------------------------------------------------------------------------- Rapid
def test_rapid_train_round_trip_announces_every_pulse(emulators):
    got: list[Discharge] = []
    emulator = emulators("rapid", coil=got.append)
    heard: list[PulseEvent] = []
    with Rapid(emulator.url, markers=heard.append) as stim:
        assert stim.software_version == (9, 0, 0)
        status = stim.status()
        assert isinstance(status, mp.RapidStatus) and status.single_pulse
        stim.set_intensity(50)
        assert stim.set_train(20, 6) == pytest.approx(0.3)
        params = stim.parameters()
        assert (params.frequency_hz, params.n_pulses, params.duration_s) == (20.0, 6, 0.3)
        assert not stim.status().single_pulse
        with pytest.raises(SettingsConflictError, match="fire_train"):
            stim.fire()
        stim.guard.permit("test train", 6, 50)  # what a passing verdict would allow
        stim.arm()
        events = stim.fire_train()
        deadline = time.monotonic() + 1.0
        while len(got) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(got) == 6 and heard == events and [e.index for e in events] == list(range(6))
    assert events[1].time_s - events[0].time_s == pytest.approx(0.05)
    assert emulator.received[:4] == [b"Q@n", b"EAy", b"NDm", b"\\@c"]
    assert mp.set_pulses(6, (9, 0, 0)) in emulator.received


def test_rapid_train_over_energy_limit_is_refused_and_nothing_sent(emulators):
    emulator = emulators("rapid")
    with Rapid(emulator.url, variant="super_rapid2") as stim:
        stim.set_intensity(100)
        sent = len(emulator.received)
        with pytest.raises(SafetyError, match="energy limit"):
            stim.set_train(10, 300)
        with pytest.raises(SafetyError, match="frequency ceiling"):
            stim.set_train(30, 10)
        assert all(m[:1] not in b"BD[" for m in emulator.received[sent:])
        stim.set_intensity(40)
        stim.set_train(10, 300)  # 30 s at 40 %: allowed (limit 156 s)
        with pytest.raises(SafetyError, match="energy limit"):
            stim.set_intensity(100)  # would make the configured train unsafe
        assert emulator.intensity_percent == 40


def test_rapid_old_software_uses_short_fields_and_q_keepalive(emulators):
    emulator = emulators("rapid", software_version=(8, 0, 0))
    with Rapid(emulator.url) as stim:
        stim.set_intensity(30)
        stim.set_train(5, 10)
        assert stim.parameters().n_pulses == 10
        time.sleep(0.8)
        assert emulator.remote_control
    assert b"D0010\xfa" in emulator.received and b"[020\x12" in emulator.received
    assert b"x@G" not in emulator.received


def test_rapid_v9_keepalive_is_x_at(emulators):
    emulator = emulators("rapid")
    with Rapid(emulator.url):
        time.sleep(0.8)
        assert emulator.remote_control
    assert b"x@G" in emulator.received


def test_rapid_enhanced_power_allows_110_single_pulses_only(emulators):
    got: list[Discharge] = []
    emulator = emulators("rapid", coil=got.append)
    with Rapid(emulator.url) as stim:
        with pytest.raises(ConfigError, match="0 to 100"):
            stim.set_intensity(105)
        stim.set_enhanced_power(True)
        assert stim.status().enhanced_power and emulator.enhanced_power
        stim.set_intensity(110)
        with pytest.raises(ConfigError, match="0 to 110"):
            stim.set_intensity(111)
        with pytest.raises(SettingsConflictError, match="enhanced-power"):
            stim.set_train(5, 10)
        stim.arm()
        assert stim.fire().intensity_percent == 110.0
        stim.set_enhanced_power(False)
        assert emulator.intensity_percent == 100 and stim._current_intensity() == 100.0
        stim.set_train(5, 10)
        with pytest.raises(SettingsConflictError, match="single pulses only"):
            stim.set_enhanced_power(True)
    assert got[0].intensity_percent == 110.0


def test_rapid_unlock_code(emulators):
    emulator = emulators("rapid", unlock_code="A1b2")
    with pytest.raises(InvalidDataError, match="Q@n"):
        Rapid(emulator.url).connect()
    with Rapid(emulator.url, unlock_code="A1b2") as stim:
        assert stim.status().remote_control
    with pytest.raises(ConfigError, match="unlock_code"):
        Rapid(emulator.url, unlock_code="@bad")


def test_concurrent_commands_share_one_port(emulators):
    emulator = emulators()
    errors: list[BaseException] = []
    with Magstim(emulator.url) as stim:
        def worker(value):
            try:
                for _ in range(10):
                    stim.set_intensity(value)
                    stim.status()
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(v,)) for v in (20, 40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_simulated_super_rapid_rig_uses_its_table_on_both_ends():
    import labkit
    from labkit.profiles import load_profile

    base = load_profile("simulated")
    profile = base.model_copy(update={"stimulator": base.stimulator.model_copy(
        update={"model": "magstim-super-rapid2-115v"})})
    with labkit.open_rig(profile, seed=1) as rig:
        stim, emulator = rig.stimulator, rig.hardware.emulator
        assert (stim.variant, stim.voltage) == ("super_rapid2", 115)
        assert (emulator.rapid_variant, emulator.voltage) == ("super_rapid2", 115)
