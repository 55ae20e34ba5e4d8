"""Magstim protocol: exact bytes, reply parsing, validation, Rapid² limits, fuzzed parsers."""

from __future__ import annotations

import math
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from third_party import require

from labkit.errors import (
    ConfigError,
    CRCError,
    InvalidCommandError,
    InvalidDataError,
    SafetyError,
    SettingsConflictError,
    StimulatorProtocolError,
)
from labkit.stimulators import magstim_protocol as mp
from labkit.stimulators.base import StimulatorStatus


def _reply(body: bytes) -> bytes:
    """A reply as the unit sends it; the CRC computed by hand-checked arithmetic."""
    return body + bytes([(~sum(body)) & 0xFF])


# ----------------------------------------------------------------------------- exact bytes
@pytest.mark.parametrize(("made", "expected"), [
    (mp.remote_control(True), b"Q@n"),
    (mp.remote_control(False), b"R@m"),
    (mp.ARM, b"EBx"),
    (mp.DISARM, b"EAy"),
    (mp.FIRE, b"EHr"),
    (mp.GET_PARAMETERS, b"J@u"),
    (mp.GET_RAPID_PARAMETERS, b"\\@c"),
    (mp.GET_TEMPERATURE, b"F@y"),
    (mp.GET_VERSION, b"NDm"),
    (mp.GET_ERROR_CODE, b"I@v"),
    (mp.GET_SYSTEM_STATUS, b"x@G"),
    (mp.HIGH_RESOLUTION_ON, b"Y@f"),
    (mp.HIGH_RESOLUTION_OFF, b"Z@e"),
    (mp.ENHANCED_POWER_ON, b"^@a"),
    (mp.ENHANCED_POWER_OFF, b"_@`"),
    (mp.set_intensity(50), b"@050*"),
    (mp.set_intensity(50.0), b"@050*"),
    (mp.set_intensity(50, output="B"), b"A050)"),
    (mp.set_ipi(10, high_resolution=False), b"C010+"),
    (mp.set_ipi(2.5, high_resolution=True), b"C025%"),
    (mp.set_frequency(10), b"B0100\xfc"),
    (mp.set_pulses(50, (9, 0, 0)), b"D00050\xc6"),
    (mp.set_pulses(50, (8, 0, 0)), b"D0050\xf6"),
    (mp.set_duration(5, (9, 0, 0)), b"[0050\xdf"),
    (mp.set_duration(5, (7, 2, 0)), b"[050\x0f"),
    (mp.remote_control(True, "1234"), b"Q1234\xe4"),
])
def test_exact_command_bytes(made, expected):
    assert made == expected


def test_crc_is_inverted_byte_sum():
    assert mp.crc(b"Q@") == 0x6E
    assert mp.crc(b"") == 0xFF
    assert mp.crc(b"\xff\x01") == 0xFF  # sum 0x100 wraps to 0
    assert mp.crc_ok(b"Q@n") and not mp.crc_ok(b"Q@o") and not mp.crc_ok(b"Q")


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [101, -1, 50.5, math.nan, math.inf, True, "50", None])
def test_intensity_rejected_with_name_and_range(bad):
    with pytest.raises(ConfigError, match=r"percent must be an integer from 0 to 100 % MSO"):
        mp.set_intensity(bad)


def test_output_b_intensity_error_names_percent_b():
    with pytest.raises(ConfigError, match="percent_b"):
        mp.set_intensity(120, output="B")


@pytest.mark.parametrize(("value", "high_res", "message"), [
    (1000, False, "0 to 999"), (2.5, False, "integer"), (100.0, True, "0 to 99.9"),
    (2.55, True, "one decimal"), (-1, True, "0 to 99.9"),
])
def test_ipi_validation(value, high_res, message):
    with pytest.raises(ConfigError, match=message):
        mp.set_ipi(value, high_resolution=high_res)


def test_train_field_ranges_depend_on_version():
    with pytest.raises(ConfigError, match="0 to 1000 pulses"):
        mp.set_pulses(1001, (8, 0, 0))
    assert mp.set_pulses(6000, (9, 0, 0)) == mp.frame("D06000")
    with pytest.raises(ConfigError, match="0 to 99.9 s"):
        mp.set_duration(100, (8, 0, 0))
    assert mp.set_duration(100, (9, 0, 0)) == mp.frame("[1000")


# ----------------------------------------------------------------------------- replies
def test_status_reply_decodes_all_eight_bits():
    # armed, ready, coil present, remote control: bits 1, 2, 3, 7
    reply = _reply(b"Q\x8e")
    status = mp.parse_status(b"Q@n", reply)
    assert isinstance(status, StimulatorStatus)
    assert (status.standby, status.armed, status.ready, status.coil_present) == (
        False, True, True, True)
    assert (status.replace_coil, status.error_present, status.error_type) == (False,) * 3
    assert status.remote_control and not status.error and status.raw == reply
    every = mp.parse_status(b"Q@n", _reply(b"Q\x71"))  # bits 0, 4, 5, 6
    assert (every.standby, every.replace_coil, every.error_present, every.error_type) == (
        True, True, True, True)
    assert every.error and not every.remote_control


def test_rapid_status_byte_decodes_all_eight_bits():
    status = mp.parse_status(b"B0100\xfc", _reply(b"B\x80\xa9"), rapid=True)
    assert isinstance(status, mp.RapidStatus)
    assert status.enhanced_power and status.single_pulse and status.coil_ready
    assert status.modified_coil_algorithm
    assert not (status.train or status.wait or status.hvpsu_connected or status.theta_psu)


def test_status_bits_round_trip_through_packers():
    byte = mp.status_to_byte(armed=True, remote_control=True)
    assert byte == 0x82
    assert mp.rapid_status_to_byte(train=True, theta_psu=True) == 0x42
    with pytest.raises(ValueError, match="unknown status bits"):
        mp.status_to_byte(armd=True)


def test_magstim_200_parameters():
    params = mp.parse_parameters(b"J@u", _reply(b"J\x89055000000"))
    assert params.intensity_percent == 55 and params.intensity_b_percent is None
    assert params.status.remote_control


@pytest.mark.parametrize(("high_res", "ipi"), [(False, 25.0), (True, 2.5)])
def test_bistim_parameters(high_res, ipi):
    params = mp.parse_parameters(b"J@u", _reply(b"J\x89040060025"), model="bistim",
                                 high_resolution=high_res)
    assert (params.intensity_percent, params.intensity_b_percent, params.ipi_ms) == (40, 60, ipi)


@pytest.mark.parametrize(("version", "body"), [
    ((9, 0, 0), b"\\\x89\x10" + b"050" + b"0200" + b"00100" + b"0050" + b"0005"),
    ((8, 0, 0), b"\\\x89\x10" + b"050" + b"0200" + b"0100" + b"050" + b"0005"),
    ((5, 0, 0), b"\\\x89\x10" + b"050" + b"0200" + b"0100" + b"050" + b"005"),
])
def test_rapid_parameters_per_software_version(version, body):
    reply = _reply(body)
    assert len(reply) == mp.rapid_parameter_length(version)
    params = mp.parse_parameters(b"\\@c", reply, model="rapid", version=version)
    assert params.intensity_percent == 50
    assert params.frequency_hz == 20.0 and params.n_pulses == 100
    assert params.duration_s == 5.0 and params.wait_s == 0.5
    assert isinstance(params.status, mp.RapidStatus) and not params.status.single_pulse


def test_rapid_parameters_wrong_length_for_version():
    reply = _reply(b"\\\x89\x10" + b"050" + b"0200" + b"0100" + b"050" + b"0005")  # v8 shape
    with pytest.raises(StimulatorProtocolError, match="expected a 24-byte reply, got 22"):
        mp.parse_parameters(b"\\@c", reply, model="rapid", version=(9, 0, 0))


def test_temperature_version_error_code_and_system_status():
    temp = mp.parse_temperature(b"F@y", _reply(b"F\x89253312"))
    assert (temp.coil1_c, temp.coil2_c) == (25.3, 31.2)
    assert mp.parse_version(b"NDm", _reply(b"N\x8910.2.3\x00")) == (10, 2, 3)
    assert mp.parse_error_code(b"I@v", _reply(b"I\x89E12")) == "E12"
    system = mp.parse_system_status(b"x@G", _reply(b"x\x89\x20\x05\x00"))
    assert system.plus1_module and not system.special_trigger_mode and system.charge_delay_set
    assert system.status.coil_ready


@pytest.mark.parametrize(("reply", "error", "message"), [
    (b"?", InvalidCommandError, "did not recognise"),
    (_reply(b"@?"), InvalidDataError, "rejected the command's data"),
    (_reply(b"@S"), SettingsConflictError, "conflicts"),
    (b"@\x89\x00", CRCError, "checksum 0x00 does not match"),
    (b"@\x89", StimulatorProtocolError, "too short"),
    (b"", StimulatorProtocolError, "empty reply"),
    (_reply(b"Q\x89"), StimulatorProtocolError, "echoes 'Q' instead of '@'"),
])
def test_error_replies_raise_specific_errors_naming_the_command(reply, error, message):
    with pytest.raises(error, match=message) as info:
        mp.check_reply(b"@050*", reply)
    assert "b'@050*'" in str(info.value)
    assert info.value.command == b"@050*"


def test_reply_lengths():
    assert mp.reply_length(b"Q@n") == 3 and mp.reply_length(b"J@u") == 12
    assert mp.reply_length(b"F@y") == 9 and mp.reply_length(b"NDm") is None
    assert mp.reply_length(b"B0100", rapid=True) == 4
    assert mp.reply_length(b"\\@c", rapid=True, version=(6, 0, 0)) == 21
    with pytest.raises(InvalidCommandError):
        mp.reply_length(b"k@")


# ----------------------------------------------------------------------------- Rapid limits
def test_joules_table_matches_published_points_and_never_undercuts():
    assert mp.joules_per_pulse(50) == 63.0
    assert mp.joules_per_pulse(63) == 100.1  # 100.02 J rounded up; published 100.0
    assert mp.joules_per_pulse(100) == 252.0
    assert mp.joules_per_pulse(0) == 0.0
    assert mp.joules_per_pulse(86) == 186.4  # published 186.3: rounded up, never below


def test_max_on_time_formula():
    assert mp.max_on_time_s(100, 10) == pytest.approx(25.0)
    assert mp.max_on_time_s(50, 20) == pytest.approx(50.0)
    assert mp.max_on_time_s(0, 10) == math.inf


def test_train_over_energy_limit_is_refused_naming_the_limit():
    with pytest.raises(SafetyError, match=r"energy limit.*30.00 s.*25.00 s at 100 % MSO"):
        mp.check_train(100, 10, 300, variant="super_rapid2")
    assert mp.check_train(100, 10, 250, variant="super_rapid2") == pytest.approx(25.0)


def test_frequency_ceiling_falls_with_power():
    assert mp.max_frequency_hz(30) == 50 and mp.max_frequency_hz(100) == 15
    assert mp.max_frequency_hz(100, "super_rapid2") == 25
    with pytest.raises(SafetyError, match="frequency ceiling: 20 Hz at 100 % MSO exceeds the 15"):
        mp.check_train(100, 20, 10)
    with pytest.raises(ConfigError, match="variant must be one of"):
        mp.max_frequency_hz(50, "turbo")


def test_min_wait():
    assert mp.min_wait_s(10, 10, 1) == 0.5
    assert mp.min_wait_s(100, 100, 10) == pytest.approx(100 * (2520 - 1050) / 10500)


# ----------------------------------------------------------------------------- fuzzing
_PARSERS = [
    lambda r: mp.parse_status(b"Q@n", r),
    lambda r: mp.parse_status(b"x@G", r, rapid=True),
    lambda r: mp.parse_parameters(b"J@u", r),
    lambda r: mp.parse_parameters(b"J@u", r, model="bistim"),
    lambda r: mp.parse_parameters(b"\\@c", r, model="rapid", version=(9, 0, 0)),
    lambda r: mp.parse_parameters(b"\\@c", r, model="rapid", version=(6, 0, 0)),
    lambda r: mp.parse_temperature(b"F@y", r),
    lambda r: mp.parse_version(b"NDm", r),
    lambda r: mp.parse_error_code(b"I@v", r),
    lambda r: mp.parse_system_status(b"x@G", r),
]


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, len(_PARSERS) - 1), data=st.binary(max_size=40),
       prefix=st.sampled_from([b"", b"Q", b"J", b"\\", b"F", b"N", b"I", b"x"]),
       fix_crc=st.booleans())
def test_parsers_raise_only_protocol_errors_on_garbage(index, data, prefix, fix_crc):
    reply = prefix + data
    if fix_crc and reply:
        reply = _reply(reply[:-1])  # valid checksum, garbage content: reaches field parsing
    try:
        _PARSERS[index](reply)
    except StimulatorProtocolError:
        pass


# ----------------------------------------------------------------------------- MagPy facts
# Values below are read from MagPy (magpy-tms 1.4, magpy/rapid_system_info.yaml and
# magpy/magstim.py), not from this package's tables.
@pytest.mark.parametrize(("voltage", "variant", "power", "ceiling_hz"), [
    (240, "rapid2", 30, 50), (240, "rapid2", 31, 46), (240, "rapid2", 100, 15),
    (240, "super_rapid2", 50, 50), (240, "super_rapid2", 100, 25),
    (240, "super_rapid2_plus", 48, 100), (240, "super_rapid2_plus", 49, 98),
    (240, "super_rapid2_plus", 100, 41),
    (115, "rapid2", 0, 36), (115, "rapid2", 31, 35), (115, "rapid2", 100, 11),
    (115, "super_rapid2", 38, 59), (115, "super_rapid2", 100, 22),
    (115, "super_rapid2_plus", 50, 58), (115, "super_rapid2_plus", 100, 25),
])
def test_frequency_ceilings_match_magpy(voltage, variant, power, ceiling_hz):
    assert mp.max_frequency_hz(power, variant, voltage) == ceiling_hz


def test_frequency_ceilings_equal_magpys_whole_table_when_installed():
    magpy = require("magpy")
    yaml = require("yaml")
    info = yaml.safe_load((pathlib.Path(magpy.__file__).parent / "rapid_system_info.yaml")
                          .read_text())
    for voltage, types in info["maxFrequency"].items():
        for code, table in types.items():
            variant = mp.RAPID_VARIANTS[code]
            assert [mp.max_frequency_hz(p, variant, voltage) for p in range(101)] == [
                table[p] for p in range(101)], (voltage, variant)


def test_115_v_train_refused_where_240_v_allows_it():
    assert mp.check_train(50, 30, 30) == pytest.approx(1.0)
    with pytest.raises(SafetyError, match="115 V"):
        mp.check_train(50, 30, 30, voltage=115)
    with pytest.raises(ConfigError, match="voltage"):
        mp.max_frequency_hz(50, voltage=110)


def test_enhanced_power_allows_110_single_pulses_and_no_trains():
    assert mp.set_intensity(110, maximum=mp.ENHANCED_POWER_MAX_PERCENT) == mp.frame("@110")
    with pytest.raises(ConfigError, match="enhanced-power"):
        mp.max_frequency_hz(105)


def test_b_at_reply_is_three_bytes_as_magpy_reads_it():
    # MagPy ignoreCoilSafetySwitch: _processCommand(b'b@', 'instr', 3)
    assert mp.reply_length(b"b@", rapid=True) == 3
    assert "b" not in mp.RAPID_STATUS_COMMANDS


def test_registry_has_a_model_per_rapid_variant_and_voltage():
    from labkit.stimulators.magstim import Rapid
    from labkit.stimulators.registry import abilities_for_driver, model_spec

    spec = model_spec("magstim-rapid2-115v")
    assert spec.driver_options == {"variant": "rapid2", "voltage": 115}
    assert spec.abilities.max_rate_hz(100) == 11.0  # MagPy's 115 V table at 100 %
    assert model_spec("magstim-super-rapid2-plus").abilities.max_rate_hz(50) == 97.0
    assert abilities_for_driver(Rapid("loop://", voltage=115)) is spec.abilities
    assert abilities_for_driver(Rapid("loop://")) is model_spec("magstim-rapid2").abilities
