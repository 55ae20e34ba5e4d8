"""MagPro wire protocol: exact bytes, CRC8, frame extraction and reply parsing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import ConfigError, CRCError, StimulatorProtocolError
from labkit.stimulators import magpro_protocol as proto


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


def _bitwise_crc8_maxim(data: bytes) -> int:
    """Reference CRC: the bit-serial form of Maxim application note 27."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


# --------------------------------------------------------------------------- exact bytes
@pytest.mark.parametrize(("frame", "expected"), [
    (proto.status_command(), "FE 01 00 00 FF"),
    (proto.amplitude_command(60), "FE 02 01 3C D9 FF"),
    (proto.enable_command(True), "FE 02 02 01 CF FF"),
    (proto.enable_command(False), "FE 02 02 00 91 FF"),
])
def test_design_examples_exact_bytes(frame, expected):
    assert frame == _hex(expected)


def test_single_pulse_and_start_train_frames():
    assert proto.single_pulse_command() == _hex("FE 02 03 01 0B FF")
    payload = bytes((0x04,))
    assert proto.start_train_command() == b"\xfe\x01\x04" + bytes((crc8 := proto.crc8(payload),
                                                                  )) + b"\xff"
    assert crc8 == _bitwise_crc8_maxim(payload)


def test_train_parameter_frame_is_big_endian_tenths():
    # 10 pps, 50 pulses, 20 trains, ITI 25 s: the classic 1000-pulse M1 session.
    settings_ = proto.validate_train(10, 50, 20, 25)
    frame = proto.train_command(settings_)
    payload = _hex("06 0064 0032 0014 00FA")
    assert frame == b"\xfe\x09" + payload + bytes((_bitwise_crc8_maxim(payload),)) + b"\xff"
    assert frame == _hex("FE 09 06 00 64 00 32 00 14 00 FA F6 FF")
    low = proto.train_command(proto.validate_train(0.3, 1500, 1, 0.1))
    assert low[2:11] == _hex("06 0003 05DC 0001 0001")


def test_dual_amplitude_and_page_frames():
    frame = proto.amplitude_command(60, 45)
    assert frame[:5] == _hex("FE 03 01 3C 2D")
    assert frame[5] == _bitwise_crc8_maxim(_hex("01 3C 2D")) and frame[6] == 0xFF
    assert proto.page_command("train")[1:5] == _hex("03 07 02 00")
    assert proto.page_command("main")[2:5] == _hex("07 01 00")


def test_mode_block_get_and_set_frames():
    get = proto.mode_block_command(None)
    assert get[:3] == _hex("FE 0B 09") and get[3:13] == bytes(10)
    block = proto.ModeBlock("X100", "twin", "reverse", "monophasic", 3, 0, 0)
    frame = proto.mode_block_command(block, ipi_ms=20.5, ba_ratio=1.5)
    assert frame[2:13] == _hex("09 01 01 02 01 00 02 00CD 0096")


# --------------------------------------------------------------------------- CRC
def test_crc8_known_vectors():
    assert proto.crc8(b"123456789") == 0xA1          # CRC-8/MAXIM check value
    assert proto.crc8(_hex("02 1C B8 01 00 00 00")) == 0xA2  # Maxim AN27 ROM example
    assert proto.crc8(b"") == 0


@given(st.binary(max_size=40))
def test_crc8_matches_bit_serial_reference(data):
    assert proto.crc8(data) == _bitwise_crc8_maxim(data)


# --------------------------------------------------------------------------- frames
def test_parse_frame_errors_name_the_problem():
    good = proto.status_command()
    assert proto.parse_frame(good) == b"\x00"
    with pytest.raises(CRCError, match="bad MagPro CRC8: got 0x01, expected 0x00"):
        proto.parse_frame(_hex("FE 01 00 01 FF"))
    with pytest.raises(StimulatorProtocolError, match="end byte 0x00"):
        proto.parse_frame(_hex("FE 01 00 00 00"))
    with pytest.raises(StimulatorProtocolError, match="length byte 2"):
        proto.parse_frame(_hex("FE 02 00 00 FF"))
    with pytest.raises(StimulatorProtocolError, match="expected 0xFE"):
        proto.parse_frame(_hex("00 01 00 00 FF"))


def test_extractor_resyncs_after_garbage_and_split_reads():
    ex = proto.FrameExtractor()
    stream = b"\x13\x37garbage" + proto.amplitude_command(60) + proto.status_command()
    for byte in stream:  # byte by byte, like a slow serial line
        ex.feed(bytes((byte,)))
    assert ex.discarded == 9
    assert ex.next_payload() == b"\x01\x3c"
    assert ex.next_payload() == b"\x00"
    assert ex.next_payload() is None


def test_extractor_finds_frame_inside_malformed_one():
    ex = proto.FrameExtractor()
    # A stray FE with a plausible length swallows the start of a real frame.
    ex.feed(b"\xfe\x02" + proto.status_command())
    with pytest.raises(StimulatorProtocolError, match="end byte"):
        ex.next_frame()
    assert ex.next_payload() == b"\x00"


def test_extractor_abandons_stalled_frame_when_a_valid_one_follows():
    ex = proto.FrameExtractor()
    # A stray FE promising 9 bytes would otherwise wait for bytes that never come.
    ex.feed(b"\xfe\x05" + proto.status_command())
    with pytest.raises(StimulatorProtocolError, match="incomplete frame abandoned"):
        ex.next_frame()
    assert ex.next_payload() == b"\x00"
    ex.feed(b"\xfe\x05\x00\x00")  # no complete frame behind it: keep waiting
    assert ex.next_frame() is None


def test_extractor_finds_frame_inside_bad_crc_one():
    ex = proto.FrameExtractor()
    ex.feed(b"\xfe\x03" + proto.status_command())  # FE 03 FE 01 00 00 FF: CRC fails
    with pytest.raises(CRCError):
        ex.next_frame()
    assert ex.next_payload() == b"\x00"


def test_extractor_drops_bad_crc_frame():
    ex = proto.FrameExtractor()
    ex.feed(_hex("FE 01 00 55 FF") + proto.status_command())
    with pytest.raises(CRCError):
        ex.next_frame()
    assert ex.next_frame() == proto.status_command()
    assert len(ex) == 0


def test_extractor_rejects_out_of_range_length():
    ex = proto.FrameExtractor()
    ex.feed(b"\xfe\x00" + proto.status_command())
    with pytest.raises(StimulatorProtocolError, match="length byte 0 outside 1..32"):
        ex.next_frame()
    assert ex.next_payload() == b"\x00"


def test_bytes_needed():
    ex = proto.FrameExtractor()
    assert ex.bytes_needed() == 5
    ex.feed(b"\xfe\x09\x00")
    assert ex.bytes_needed() == 10


# --------------------------------------------------------------------------- replies
X100_ENABLED_BIPHASIC = 0b001_1_01_00  # model X100, enabled, biphasic, standard


def _frame(payload_hex: str) -> bytes:
    return proto.build_frame(_hex(payload_hex))


def test_parse_real_shaped_status_reply():
    frame = _frame(f"00 {X100_ENABLED_BIPHASIC:02X} 01 E2 40 1F 3C 3C 00")
    assert len(frame) == 13
    reply = proto.parse_reply(proto.parse_frame(frame))
    assert reply == proto.StatusReply(
        info=proto.UnitInfo("X100", "standard", "biphasic", True), serial_number=123456,
        coil_temperature_c=31, coil_type=60, amplitude_a_percent=60, amplitude_b_percent=0)
    assert proto.build_frame(reply.to_payload()) == frame


def test_parse_real_shaped_status2_reply():
    # R30 (model 0), disabled, biphasic; page 2 (train), train running.
    frame = _frame("05 04 00 30 39 18 48 32 00 32 00 64 64 02 01")
    assert len(frame) == 19
    reply = proto.parse_reply(proto.parse_frame(frame))
    assert isinstance(reply, proto.Status2Reply)
    assert (reply.info.model, reply.info.enabled, reply.serial_number) == ("R30", False, 12345)
    assert (reply.coil_temperature_c, reply.coil_type, reply.amplitude_a_percent) == (24, 72, 50)
    assert (reply.page, reply.train_running, reply.amplitude_factor_a_percent) == (
        "train", True, 100)
    assert proto.build_frame(reply.to_payload()) == frame


@pytest.mark.parametrize(("payload", "expected"), [
    ("01 3C 28 34", proto.AmplitudeReply(60, 40, proto.UnitInfo("X100", "standard",
                                                                 "biphasic", True))),
    ("02 60 00 34", proto.DidtReply(96, 0, proto.UnitInfo("X100", "standard", "biphasic",
                                                           True))),
    ("03 1F 3C 24", proto.TemperatureReply(31, 60, proto.UnitInfo("X100", "standard",
                                                                   "biphasic", False))),
    ("08 02 01 77", proto.PageReply("train", True, proto.UnitInfo("X100+Option", "dual",
                                                                   "biphasic", True))),
])
def test_parse_short_messages(payload, expected):
    frame = _frame(payload)
    assert len(frame) == 8
    assert proto.parse_reply(proto.parse_frame(frame)) == expected


def test_parse_mode_block_reply():
    # X100, twin, reverse, biphasic burst, burst index 2 (3 pulses), IPI index 80 (LE),
    # B/A index 80 -> ratio 1.0
    frame = _frame("09 00 01 02 01 03 02 50 00 50")
    assert len(frame) == 14
    block = proto.parse_reply(proto.parse_frame(frame))
    assert block == proto.ModeBlock("X100", "twin", "reverse", "biphasic_burst", 3, 80, 80)
    assert block.ba_ratio == 1.0
    assert block.ipi_ms == 90.0  # twin table: indices 70..150 run 100 ms down in 1 ms steps


def test_ipi_tables():
    assert proto.ipi_ms_from_index(0, "twin", "biphasic") == 3000
    assert proto.ipi_ms_from_index(20, "twin", "biphasic") == 1000
    assert proto.ipi_ms_from_index(80, "twin", "biphasic") == 90
    assert proto.ipi_ms_from_index(260, "dual", "biphasic") == 1.0
    assert proto.ipi_ms_from_index(0, "standard", "biphasic_burst") == 100
    assert proto.ipi_ms_from_index(195, "standard", "biphasic_burst") == 0.5
    assert proto.ipi_ms_from_index(5, "standard", "biphasic") is None
    for ms in (3000, 90, 19.5, 1.0):
        index = proto.ipi_index_from_ms(ms, "twin", "biphasic")
        assert proto.ipi_ms_from_index(index, "twin", "biphasic") == ms


def test_parse_timing_reply():
    reply = proto.TimingReply(10.0, 50, 20, 25.0)
    frame = proto.build_frame(reply.to_payload())
    assert proto.parse_reply(proto.parse_frame(frame)) == reply
    assert reply.settings() == proto.TrainSettings(10.0, 50, 20, 25.0)


def test_parse_reply_rejects_short_payloads():
    with pytest.raises(StimulatorProtocolError, match="0x00 needs 9 payload bytes, got 3"):
        proto.parse_reply(_hex("00 34 01"))
    with pytest.raises(StimulatorProtocolError, match="empty"):
        proto.parse_reply(b"")
    assert proto.parse_reply(_hex("F0 01 02")) == proto.OtherMessage(0xF0, b"\x01\x02")


def test_info_byte_round_trip_all_combinations():
    for model in proto.MODELS:
        for mode in proto.MODES:
            for waveform in proto.WAVEFORMS:
                for enabled in (False, True):
                    info = proto.UnitInfo(model, mode, waveform, enabled)
                    assert proto.UnitInfo.decode(info.encode()) == info
    assert proto.UnitInfo.decode(0xFF).model == "model-7"


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [math.nan, math.inf, True, 50.5, -1, 101, "50", None])
def test_amplitude_validation_names_argument_and_range(bad):
    with pytest.raises(ConfigError, match=r"percent.*0\.\.100") as info:
        proto.amplitude_command(bad)
    assert info.value.field == "percent"


def test_amplitude_b_validation_names_b():
    with pytest.raises(ConfigError, match="b_percent") as info:
        proto.amplitude_command(50, 120)
    assert info.value.field == "b_percent"
    assert proto.amplitude_command(50.0) == proto.amplitude_command(50)


@pytest.mark.parametrize(("args", "model", "field", "pattern"), [
    ((150, 10, 1, 1), "X100", "rep_rate_hz", r"0\.1\.\.100 pps"),
    ((31, 10, 1, 1), "R30", "rep_rate_hz", r"0\.1\.\.30 pps"),
    ((10.5, 10, 1, 1), "X100", "rep_rate_hz", "whole number"),
    ((0, 10, 1, 1), "X100", "rep_rate_hz", r"0\.1\.\.100"),
    ((0.05, 10, 1, 1), "X100", "rep_rate_hz", "multiple of 0.1"),
    ((math.nan, 10, 1, 1), "X100", "rep_rate_hz", "number"),
    ((10, 0, 1, 1), "X100", "pulses_in_train", r"1\.\.1000 or 1100\.\.2000"),
    ((10, 1050, 1, 1), "X100", "pulses_in_train", "steps of 100"),
    ((10, 2100, 1, 1), "X100", "pulses_in_train", "2000"),
    ((10, 2.5, 1, 1), "X100", "pulses_in_train", "whole"),
    ((10, 10, 0, 1), "X100", "number_of_trains", r"1\.\.500"),
    ((10, 10, 501, 1), "X100", "number_of_trains", r"1\.\.500"),
    ((10, 10, True, 1), "X100", "number_of_trains", "whole"),
    ((10, 10, 1, 0), "X100", "iti_s", r"0\.1\.\.300 s"),
    ((10, 10, 1, 300.1), "X100", "iti_s", r"0\.1\.\.300 s"),
    ((10, 10, 1, 1.25), "X100", "iti_s", "multiple of 0.1"),
])
def test_train_validation_names_field(args, model, field, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        proto.validate_train(*args, model=model)
    assert info.value.field == field
    assert field in str(info.value)


def test_train_validation_burst_ceiling_and_accepts_edges():
    with pytest.raises(ConfigError, match=r"0\.1\.\.20 pps"):
        proto.validate_train(25, 10, 1, 1, model="X100", waveform="biphasic_burst")
    assert proto.validate_train(0.1, 2000, 500, 300) == proto.TrainSettings(0.1, 2000, 500, 300)
    s = proto.validate_train(10, 50, 20, 25)
    assert (s.total_pulses, s.train_duration_s) == (1000, 4.9)
    assert s.sequence_duration_s == pytest.approx(20 * 4.9 + 19 * 25)


def test_page_validation():
    with pytest.raises(ConfigError, match="page must be one of"):
        proto.page_command("service")


# --------------------------------------------------------------------------- fuzz
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=24), max_size=8))
def test_fuzz_extractor_raises_only_protocol_errors(chunks):
    ex = proto.FrameExtractor()
    for chunk in chunks:
        ex.feed(chunk)
        for _ in range(64):
            try:
                frame = ex.next_frame()
            except StimulatorProtocolError:
                continue
            if frame is None:
                break
            assert proto.parse_frame(frame) == frame[2:-2]
            try:
                proto.parse_reply(frame[2:-2])
            except StimulatorProtocolError:
                pass
        assert len(ex) <= proto.MAX_PAYLOAD + 4 + sum(map(len, chunks))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_parse_reply_raises_only_protocol_errors(payload):
    try:
        proto.parse_reply(payload)
    except StimulatorProtocolError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20))
def test_fuzz_parse_mode_block_command(payload):
    try:
        proto.parse_mode_block_command(b"\x09" + payload)
    except StimulatorProtocolError:
        pass


_no_fe = st.binary(max_size=16).map(lambda b: b.replace(b"\xfe", b""))
_payloads = st.binary(min_size=1, max_size=proto.MAX_PAYLOAD)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_no_fe, _payloads), min_size=1, max_size=5),
       st.integers(1, 7))
def test_fuzz_every_frame_recovered_from_noisy_stream(items, chunk):
    stream = b"".join(garbage + proto.build_frame(p) for garbage, p in items)
    ex = proto.FrameExtractor()
    found = []
    for i in range(0, len(stream), chunk):
        ex.feed(stream[i:i + chunk])
        while (payload := ex.next_payload()) is not None:
            found.append(payload)
    assert found == [p for _, p in items]


_info = st.builds(proto.UnitInfo, st.sampled_from(proto.MODELS), st.sampled_from(proto.MODES),
                  st.sampled_from(proto.WAVEFORMS), st.booleans())
_byte = st.integers(0, 255)
_replies = st.one_of(
    st.builds(proto.StatusReply, _info, st.integers(0, 2**24 - 1), _byte, _byte, _byte, _byte),
    st.builds(proto.Status2Reply, _info, st.integers(0, 2**24 - 1), _byte, _byte, _byte, _byte,
              _byte, _byte, _byte, _byte, st.sampled_from(sorted(proto.PAGES.values())),
              st.booleans()),
    st.builds(proto.AmplitudeReply, st.integers(0, 100), st.integers(0, 100), _info),
    st.builds(proto.DidtReply, _byte, _byte, _info),
    st.builds(proto.PageReply, st.sampled_from(sorted(proto.PAGES.values())), st.booleans(),
              _info),
)


@settings(max_examples=200, deadline=None)
@given(_replies)
def test_reply_encode_parse_round_trip(reply):
    ex = proto.FrameExtractor()
    ex.feed(proto.build_frame(reply.to_payload()))
    assert proto.parse_reply(ex.next_payload()) == reply
