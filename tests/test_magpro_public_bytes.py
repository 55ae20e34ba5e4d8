"""MagPro bytes as the public sources write and read them, independent of the emulator.

Sources (read for facts; nothing here is taken from the emulator):

* MAGIC ``magventure.m`` (N. Rogasch et al.): command layouts of getStatus (00),
  setAmplitude (01 a [b]), arm/disarm (02 01/00), fire (03 01), sendTrain (04),
  getStatus2 (05), setTrain (06 + rate×10, pulses, trains, ITI×10 as MSB/LSB pairs),
  setPage (07 p 00), setTrig_ChargeDelay (08 …), getMode (09 00 + nine zero bytes);
  reply offsets of messages 0x00–0x09 (``parseResponse``, 1-based ``readData``).
* magicpy 0.1.6 (PyPI; the Python port of MAGIC): the same layouts; its bit-serial CRC
  (``MagVenture.calc_crc``) computed every checksum written below.
* MagventurePyTMS ``pytms.py`` (X. Li, tested on an X100, 2025): firePulse ``03``,
  page ``07 p`` then ``0C 00``, ``09 00``, ``0A 00``/``0A 01 …``, ``0B 00``/``0B 01 …``;
  reply offsets of messages 0x0A, 0x0B and 0x0C (``_read``, 0-based frame index ``b``).
"""

from __future__ import annotations

import os
import time

import pytest
import serial
from third_party import require

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.errors import ConfigError, SettingsConflictError
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.stimulators import magpro_protocol as proto
from labkit.stimulators.magpro import MagPro

POSIX = os.name == "posix"


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


# (frame built by labkit, frame as the source writes it, source)
COMMAND_FRAMES = [
    (proto.status_command(), "FE 01 00 00 FF", "MAGIC getStatus"),
    (proto.amplitude_command(60), "FE 02 01 3C D9 FF", "MAGIC setAmplitude(60)"),
    (proto.amplitude_command(60, 40), "FE 03 01 3C 28 2A FF", "MAGIC setAmplitude([60 40])"),
    (proto.enable_command(True), "FE 02 02 01 CF FF", "MAGIC arm"),
    (proto.enable_command(False), "FE 02 02 00 91 FF", "MAGIC disarm"),
    (proto.single_pulse_command(), "FE 02 03 01 0B FF", "MAGIC fire"),
    (proto.single_pulse_command(short=True), "FE 01 03 E2 FF", "MagventurePyTMS firePulse"),
    (proto.start_train_command(), "FE 01 04 61 FF", "MAGIC sendTrain"),
    (proto.status2_command(), "FE 01 05 3F FF", "MAGIC getStatus2"),
    (proto.train_command(proto.TrainSettings(10.0, 50, 1, 25.0)),
     "FE 09 06 00 64 00 32 00 01 00 FA 89 FF", "MAGIC setTrain(10, 50, 1, 25)"),
    (proto.page_command("train"), "FE 03 07 02 00 EB FF", "MAGIC setPage('Train')"),
    (proto.page_command("train", short=True), "FE 02 07 02 D2 FF",
     "MagventurePyTMS page = 'Timing'"),
    (proto.trig_charge_delay_command(10, -10, 200), "FE 09 08 00 64 FF 9C 00 C8 00 00 37 FF",
     "MAGIC setTrig_ChargeDelay(10, -10, 200)"),
    (proto.mode_block_command(None), "FE 0B 09 00 00 00 00 00 00 00 00 00 00 2B FF",
     "MAGIC getMode"),
    (proto.delays_get_command(), "FE 02 0A 00 E7 FF", "MagventurePyTMS delays sync (0A 00)"),
    (proto.delays_set_command(1.0, -10, 200), "FE 08 0A 01 00 0A FF 9C 00 C8 5C FF",
     "MagventurePyTMS delays = [1.0, -10, 200]"),
    (proto.timing_get_command(), "FE 02 0B 00 23 FF", "MagventurePyTMS train sync (0B 00)"),
    (proto.timing_set_command(proto.TrainSettings(10.0, 50, 1, 25.0)),
     "FE 0C 0B 01 00 00 64 00 32 00 01 00 FA 01 DE FF",
     "MagventurePyTMS _setTrain (Sequence, 10 pps, 50, 1, 25 s, warning sound)"),
    (proto.page_count_command(), "FE 02 0C 00 4D FF", "MagventurePyTMS page sync (0C 00)"),
]


@pytest.mark.parametrize(("built", "published", "source"), COMMAND_FRAMES,
                         ids=[c[2] for c in COMMAND_FRAMES])
def test_command_frames_match_the_public_sources(built, published, source):
    assert built == _hex(published), source


def test_checksums_agree_with_magicpy_when_installed():
    magicpy = require("magicpy")
    for built, _, source in COMMAND_FRAMES:
        payload = [f"{b:02x}" for b in built[2:-2]]
        assert int(magicpy.MagVenture.calc_crc(payload), 16) == built[-2], source


# --------------------------------------------------------------------------- replies
def _frame(payload_hex: str) -> bytes:
    return proto.build_frame(_hex(payload_hex))


def test_timing_message_fields_at_pytms_offsets():
    # pytms _read, b[2]==11: b[4]&15 control, b[4]>>4&1 extended rate, b[5:7] rate×10,
    # b[7:9] pulses, b[9:11] trains, b[11:13] ITI×10, b[13] sound, b[14] ramp-up ×100,
    # b[15] ramp-up trains.
    frame = _frame("0B 00 13 00 64 00 32 00 01 00 FA 01 50 03")
    reply = proto.parse_reply(proto.parse_frame(frame))
    assert reply == proto.TimingReply(10.0, 50, 1, 25.0, timing_control=3,
                                      prior_warning_sound=True, ramp_up_percent=80,
                                      ramp_up_trains=3, extended_rate=True)
    assert proto.TIMING_CONTROLS[reply.timing_control] == "ext_seq_cont" and reply.ramps_up
    assert proto.build_frame(reply.to_payload()) == frame


def test_delays_message_fields_at_pytms_offsets():
    # pytms: b[4:6]/10 trigger in, signed b[6:8]/10 trigger out, b[8:10] charge delay.
    reply = proto.parse_reply(proto.parse_frame(_frame("0A 00 00 0A FF 9C 00 C8")))
    assert reply == proto.DelaysReply(1.0, -10.0, 200)


def test_page_count_message_fields_at_pytms_offsets():
    # pytms: b[4:6] trains, b[7:10] pulses × trains, b[11:13] stimulus count, b[15] page.
    reply = proto.parse_reply(proto.parse_frame(
        _frame("0C 00 00 14 00 00 03 E8 00 01 2C 00 00 02")))
    assert reply == proto.PageCountReply(20, 1000, 300, "train")


def test_mep_message_fields_at_magic_offsets():
    # MAGIC readData(3)==4: readData(4:7) max µV, (8:11) min µV, (12:15) time of max µs.
    reply = proto.parse_reply(proto.parse_frame(
        _frame("04 00 00 01 F4 00 00 00 32 00 00 5D C0")))
    assert reply == proto.MEPReply(500, 50, 24000)


def test_original_amplitude_and_factor_messages():
    # pytms: b[2]==6 amplitudeOriginal b[3], b[4]; b[2]==7 gain b[3]/100; info in b[5].
    original = proto.parse_reply(proto.parse_frame(_frame("06 3C 28 30")))
    factor = proto.parse_reply(proto.parse_frame(_frame("07 5A 64 30")))
    assert (original.original_a_percent, original.original_b_percent) == (60, 40)
    assert (factor.factor_a_percent, factor.factor_b_percent) == (90, 100)
    assert original.info == proto.UnitInfo("X100", "standard", "monophasic", True)


def test_short_messages_are_the_8_byte_frames_magic_reads():
    # MAGIC reads 8 bytes after 01, 02, 03, 06, 07 and 08: message ids 1,2,3,6,7,8 with a
    # 4-byte payload whose last byte is the info byte.
    for mid in (1, 2, 3, 6, 7, 8):
        frame = _frame(f"{mid:02X} 01 02 30")
        assert len(frame) == 8
        proto.parse_reply(proto.parse_frame(frame))


def test_delay_values_off_the_units_grid_are_refused():
    with pytest.raises(ConfigError, match="trigger_in_ms") as info:
        proto.delays_set_command(10.5, 0, 0)
    assert info.value.field == "trigger_in_ms"
    with pytest.raises(ConfigError, match="charge_delay_ms"):
        proto.delays_set_command(0, 0, 130)


def test_twin_dual_and_burst_rate_ceilings_follow_pytms():
    assert proto.max_rep_rate_hz("R30+Option", "biphasic", "twin") == 5.0
    assert proto.max_rep_rate_hz("R30+Option", "biphasic", "standard") == 30.0
    assert proto.max_rep_rate_hz("X100+Option", "biphasic", "dual") == 50.0
    assert proto.max_rep_rate_hz("X100+Option", "monophasic", "twin") == 5.0
    assert proto.max_rep_rate_hz("X100", "biphasic_burst") == 20.0
    with pytest.raises(ConfigError, match="rep_rate_hz"):
        proto.validate_train(60, 10, 1, 1, model="X100+Option", mode="twin")
    with pytest.raises(ConfigError, match="whole number"):
        proto.validate_train(2.5, 10, 1, 1)
    assert proto.validate_train(2.5, 10, 1, 1, extended_rate=True).rep_rate_hz == 2.5


# --------------------------------------------------------------------------- the emulator
def _exchange(port, frame: bytes, quiet_s: float = 0.1) -> list[bytes]:
    """Send one frame; return the payloads of every message that came back.

    Waits up to 2 s for the first message, then until the line is quiet for ``quiet_s``.
    """
    port.reset_input_buffer()
    port.write(frame)
    extractor = proto.FrameExtractor()
    payloads: list[bytes] = []
    deadline = time.monotonic() + 2.0
    last = None
    while time.monotonic() < deadline:
        port.timeout = 0.02
        data = port.read(64)
        if data:
            extractor.feed(data)
            while (payload := extractor.next_payload()) is not None:
                payloads.append(payload)
            last = time.monotonic()
        elif last is not None and time.monotonic() - last >= quiet_s:
            break
    return payloads


@pytest.fixture
def raw():
    emulator = MagProEmulator(pty=False, seed=5)
    port = serial.serial_for_url(emulator.url, timeout=0.3)
    yield emulator, port
    port.close()
    emulator.stop()


def test_emulator_answers_every_published_form(raw):
    emulator, port = raw
    assert [p[0] for p in _exchange(port, proto.enable_command(True))] == [0x01]
    for form in ("FE 02 03 01 0B FF", "FE 01 03 E2 FF"):       # MAGIC, MagventurePyTMS
        assert [p[0] for p in _exchange(port, _hex(form))] == [0x02]
    assert emulator.pulses_delivered == 2
    for frame, page in ((_hex("FE 03 07 02 00 EB FF"), "train"),      # MAGIC setPage
                        (proto.page_command("main", short=True), "main")):  # MagventurePyTMS
        reply = proto.parse_reply(_exchange(port, frame)[0])
        assert reply.page == page == emulator.page
    for form in (proto.mode_block_command(None), _hex("FE 02 09 00 B2 FF")):
        assert [p[0] for p in _exchange(port, form)] == [0x09]
    timing = proto.parse_reply(_exchange(port, proto.timing_set_command(
        proto.TrainSettings(10.0, 50, 1, 25.0)))[0])
    assert timing.settings() == emulator.train == proto.TrainSettings(10.0, 50, 1, 25.0)
    assert [p[0] for p in _exchange(port, proto.timing_get_command())] == [0x0B]
    delays = proto.parse_reply(_exchange(port, proto.delays_set_command(1.0, -10, 200))[0])
    assert delays == proto.DelaysReply(1.0, -10.0, 200) == proto.DelaysReply(*emulator.delays_ms)
    count = proto.parse_reply(_exchange(port, proto.page_count_command())[0])
    assert (count.stimulus_count, count.page, count.total_pulses) == (2, "main", 50)
    magic_delay = _exchange(port, proto.trig_charge_delay_command(5, 0, 100))
    assert [p[0] for p in magic_delay] == [0x01] and emulator.delays_ms == (5.0, 0.0, 100)


def test_magic_style_unit_answers_enable_with_three_messages_and_0x06_with_8_bytes():
    emulator = MagProEmulator.magic_style(pty=False)
    port = serial.serial_for_url(emulator.url, timeout=2.0)
    try:
        port.write(proto.enable_command(True))
        assert len(port.read(24)) == 24  # magicpy arm(): "the X100 returns 3 responses"
        port.write(proto.train_command(proto.TrainSettings(5.0, 10, 1, 1.0)))
        reply = port.read(8)             # MAGIC setTrain reads 8 bytes
        assert len(reply) == 8 and proto.parse_frame(reply)[0] == 0x01
        assert emulator.train == proto.TrainSettings(5.0, 10, 1, 1.0)
        port.write(proto.timing_get_command())
        port.timeout = 0.3
        assert port.read(1) == b""       # this unit has no timing menu
    finally:
        port.close()
        emulator.stop()


# --------------------------------------------------------------------------- the driver
def test_driver_runs_a_train_on_a_unit_answering_0x06_the_magic_way():
    emulator = MagProEmulator.magic_style(pty=False)
    events = []
    try:
        with MagPro(emulator.url, keepalive=False, markers=events.append) as stim:
            stim.set_intensity(45)
            stim.arm()                   # three messages; the first with enabled=1 answers
            stim.set_train(20, 5, 1, 1)  # short ack; no timing menu to read back
            assert stim.timing_menu_answered is False and not stim.train_verified
            stim.set_intensity(50)       # extra enable messages were absorbed, not mistaken
            stim.guard.permit("test train", 5, 50)  # what a passing verdict would allow
            stim.start_train()
            deadline = time.monotonic() + 3
            while len(events) < 5 and time.monotonic() < deadline:
                stim.status()
                time.sleep(0.05)
        assert emulator.pulses_delivered == 5 and len(events) == 5
        assert {e.intensity_percent for e in events} == {50.0}
    finally:
        emulator.stop()


def test_short_ack_is_verified_by_reading_the_timing_menu_back():
    emulator = MagProEmulator(pty=False, train_ack="short")
    try:
        with MagPro(emulator.url, keepalive=False) as stim:
            settings = stim.set_train(10, 20, 1, 2)
            assert stim.train_verified and stim.timing.settings() == settings
            assert proto.timing_get_command()[2:-2] in emulator.received
    finally:
        emulator.stop()


@pytest.mark.parametrize(("field", "value", "match"), [
    ("ramp_up_percent", 80, "ramp-up 80 %"),
    ("timing_control", 1, "external_trig"),
])
def test_timing_menu_that_would_change_the_train_is_refused(field, value, match):
    emulator = MagProEmulator(pty=False)
    setattr(emulator, field, value)
    try:
        with MagPro(emulator.url, keepalive=False) as stim:
            with pytest.raises(SettingsConflictError, match=match):
                stim.set_train(10, 20, 1, 2)
            assert stim.train_settings is None
            with pytest.raises(ConfigError, match="set_train"):
                stim.start_train()
    finally:
        emulator.stop()


def test_driver_menus_and_short_forms_on_the_wire():
    emulator = MagProEmulator(pty=False)
    try:
        with MagPro(emulator.url, keepalive=False, short_forms=True) as stim:
            stim.arm()
            stim.fire()
            stim.set_page("train")
            assert stim.set_delays(2.5, -20, 500) == proto.DelaysReply(2.5, -20.0, 500)
            assert stim.set_timing(5, 10).settings() == proto.TrainSettings(5.0, 10, 1, 1.0)
            assert stim.page_count().stimulus_count == 1
        assert b"\x03" in emulator.received and b"\x07\x02" in emulator.received
    finally:
        emulator.stop()
