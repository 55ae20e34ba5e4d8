"""Magstim serial protocol (200², BiStim², Rapid²): framing, CRC, replies, limits.

Pure functions and dataclasses only: nothing here touches a port or a clock, so every
byte can be tested by feeding bytes. The drivers (:mod:`labkit.stimulators.magstim`) and
the emulator (:mod:`labkit.sim.magstim_emulator`) share this module, which is what keeps
the two byte-for-byte consistent.

Wire format (9600 baud, 8N1, no terminator): a message is one ASCII command character,
its data characters and one CRC byte, ``CRC = ~sum(bytes) & 0xFF``. Replies echo the
command character, then the instrument-status byte, (Rapid: a Rapid-status byte), data
and a CRC. A lone ``?`` means "unknown command"; ``<cmd>?<crc>`` means "invalid data";
``<cmd>S<crc>`` means "conflicts with the current settings".

Layouts were established from the public MagPy (N. McNair, ``magpy/magstim.py``) and
MAGIC (N. Rogasch, ``magstim.m``, ``bistim.m``, ``rapid.m``) sources; no code was taken
from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from labkit.errors import (
    ConfigError,
    CRCError,
    InvalidCommandError,
    InvalidDataError,
    SafetyError,
    SettingsConflictError,
    StimulatorProtocolError,
)
from labkit.stimulators.base import StimulatorStatus

Version = tuple[int, int, int]

#: Software version from which Rapid² units use 5-digit pulse counts, 4-digit durations,
#: a 24-byte parameter reply and the ``x@`` system-status command.
RAPID_V9: Version = (9, 0, 0)
#: Software version from which the parameter reply grows from 21 to 22 bytes.
RAPID_V7: Version = (7, 0, 0)

#: Instrument-status bits, bit 0 first.
STATUS_BITS = (
    "standby", "armed", "ready", "coil_present",
    "replace_coil", "error_present", "error_type", "remote_control",
)
#: Rapid-status bits, bit 0 first.
RAPID_STATUS_BITS = (
    "enhanced_power", "train", "wait", "single_pulse",
    "hvpsu_connected", "coil_ready", "theta_psu", "modified_coil_algorithm",
)


# ----------------------------------------------------------------------------- framing
def crc(data: bytes) -> int:
    """Magstim checksum: the bitwise complement of the byte sum, low 8 bits.

    Parameters
    ----------
    data : bytes
        Command character and data characters (without the CRC).

    Returns
    -------
    int
        The CRC byte value.
    """
    return (~sum(data)) & 0xFF


def frame(body: bytes | str) -> bytes:
    """Append the CRC to a command body: ``frame("Q@") == b"Q@n"``."""
    raw = body.encode("ascii") if isinstance(body, str) else bytes(body)
    return raw + bytes([crc(raw)])


def crc_ok(message: bytes) -> bool:
    """True when the last byte of ``message`` is the CRC of the rest."""
    return len(message) >= 2 and crc(message[:-1]) == message[-1]


# ----------------------------------------------------------------------------- validation
def check_whole_number(value: object, *, name: str, low: int, high: int, unit: str = "") -> int:
    """Return ``value`` as an int, or raise :class:`ConfigError` naming ``name`` and the range.

    Accepts ints and floats that are whole numbers; rejects bools, NaN, infinities,
    fractions, strings and anything out of ``[low, high]``.
    """
    suffix = f" {unit}" if unit else ""
    allowed = f"an integer from {low} to {high}{suffix}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    if not isinstance(value, Integral):
        as_float = float(value)
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    number = int(value)
    if not low <= number <= high:
        raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    return number


def check_tenths(value: object, *, name: str, low: float, high: float, unit: str) -> int:
    """Return ``value`` in tenths (``12.5 -> 125``), or raise naming ``name`` and the range.

    The value must be a finite real number with at most one decimal place.
    """
    allowed = f"a number from {low:g} to {high:g} {unit} in steps of 0.1"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    tenths = round(as_float * 10)
    if abs(tenths - as_float * 10) > 1e-6:
        raise ConfigError(f"{name} must be {allowed} (one decimal at most), got {value!r}",
                          field=name)
    if not round(low * 10) <= tenths <= round(high * 10):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}", field=name)
    return tenths


# ----------------------------------------------------------------------------- commands
def _digits(value: int, width: int) -> str:
    return str(value).zfill(width)


def remote_control(enable: bool, unlock_code: str | None = None) -> bytes:
    """``Q@`` (enable) or ``R@`` (disable); newer Rapids enable with ``Q`` + unlock code."""
    if not enable:
        return frame("R@")
    if unlock_code:
        return frame("Q" + unlock_code)
    return frame("Q@")


ARM = frame("EB")
DISARM = frame("EA")
FIRE = frame("EH")
GET_PARAMETERS = frame("J@")
GET_RAPID_PARAMETERS = frame("\\@")
GET_TEMPERATURE = frame("F@")
GET_VERSION = frame("ND")
GET_ERROR_CODE = frame("I@")
GET_SYSTEM_STATUS = frame("x@")
HIGH_RESOLUTION_ON = frame("Y@")
HIGH_RESOLUTION_OFF = frame("Z@")
ENHANCED_POWER_ON = frame("^@")
ENHANCED_POWER_OFF = frame("_@")


def set_intensity(percent: object, *, output: str = "A", maximum: int = 100) -> bytes:
    """``@nnn`` (output A) or ``A nnn`` (BiStim output B), intensity in % MSO.

    Parameters
    ----------
    percent : int
        Whole number from 0 to ``maximum``.
    output : {"A", "B"}
        Which output (B only exists on a BiStim).
    maximum : int
        Highest accepted value (100; 110 on a Rapid in enhanced-power mode).
    """
    name = "percent" if output == "A" else "percent_b"
    value = check_whole_number(percent, name=name, low=0, high=maximum, unit="% MSO")
    return frame(("@" if output == "A" else "A") + _digits(value, 3))


def set_ipi(ipi_ms: object, *, high_resolution: bool) -> bytes:
    """``Cnnn``: BiStim inter-pulse interval (ms, or 0.1 ms units in high-resolution mode)."""
    if high_resolution:
        value = check_tenths(ipi_ms, name="ipi_ms", low=0.0, high=99.9, unit="ms")
    else:
        value = check_whole_number(ipi_ms, name="ipi_ms", low=0, high=999, unit="ms")
    return frame("C" + _digits(value, 3))


def pulses_digits(version: Version) -> int:
    """Width of the ``D`` (pulse count) field: 5 from software v9, 4 before."""
    return 5 if version >= RAPID_V9 else 4


def duration_digits(version: Version) -> int:
    """Width of the ``[`` (train duration, 0.1 s) field: 4 from software v9, 3 before."""
    return 4 if version >= RAPID_V9 else 3


def max_pulses(version: Version) -> int:
    """Largest pulse count the unit accepts (6000 from v9, 1000 before)."""
    return 6000 if version >= RAPID_V9 else 1000


def max_duration_s(version: Version) -> float:
    """Longest train duration the field can encode, s."""
    return (10 ** duration_digits(version) - 1) / 10


def set_frequency(frequency_hz: object) -> bytes:
    """``Bnnnn``: Rapid train frequency in 0.1 Hz units (0–100 Hz)."""
    value = check_tenths(frequency_hz, name="frequency_hz", low=0.0, high=100.0, unit="Hz")
    return frame("B" + _digits(value, 4))


def set_pulses(n_pulses: object, version: Version) -> bytes:
    """``Dnnnnn`` (``Dnnnn`` before v9): Rapid pulses per train."""
    value = check_whole_number(n_pulses, name="n_pulses", low=0, high=max_pulses(version),
                               unit="pulses")
    return frame("D" + _digits(value, pulses_digits(version)))


def set_duration(duration_s: object, version: Version) -> bytes:
    """``[nnnn`` (``[nnn`` before v9): Rapid train duration in 0.1 s units."""
    value = check_tenths(duration_s, name="duration_s", low=0.0, high=max_duration_s(version),
                         unit="s")
    return frame("[" + _digits(value, duration_digits(version)))


# ----------------------------------------------------------------------------- reply lengths
#: Reply length of the single-output/BiStim commands, by command character.
_REPLY_LENGTHS = {"Q": 3, "R": 3, "E": 3, "@": 3, "A": 3, "C": 3, "Y": 3, "Z": 3,
                  "J": 12, "F": 9, "I": 6}
#: Command characters whose Rapid reply carries the Rapid-status byte after the status.
RAPID_STATUS_COMMANDS = "\\BD[^_x"
#: Rapid-only commands and their reply lengths: instrument + Rapid status (4 bytes);
#: ``x@`` 6; ``b@`` (ignore the coil safety switch) 3, instrument status only, as
#: MagPy's ``ignoreCoilSafetySwitch`` reads it.
_RAPID_REPLY_LENGTHS = {"B": 4, "D": 4, "[": 4, "^": 4, "_": 4, "b": 3, "x": 6}


def rapid_parameter_length(version: Version) -> int:
    """Length of the ``\\@`` reply: 24 bytes from v9, 22 from v7, 21 before."""
    if version >= RAPID_V9:
        return 24
    if version >= RAPID_V7:
        return 22
    return 21


def reply_length(command: bytes, *, rapid: bool = False,
                 version: Version = RAPID_V9) -> int | None:
    """Bytes in the successful reply to ``command``; ``None`` for the NUL-terminated ``ND``.

    Raises
    ------
    InvalidCommandError
        When the command character is not part of the protocol.
    """
    char = chr(command[0]) if command else ""
    if char == "N":
        return None
    if rapid and char == "\\":
        return rapid_parameter_length(version)
    if rapid and char in _RAPID_REPLY_LENGTHS:
        return _RAPID_REPLY_LENGTHS[char]
    if char in _REPLY_LENGTHS:
        return _REPLY_LENGTHS[char]
    raise InvalidCommandError("not a Magstim command", command=bytes(command))


# ----------------------------------------------------------------------------- replies
def check_reply(command: bytes, reply: bytes) -> bytes:
    """Validate a complete reply and return it.

    Checks, in order: empty reply, ``?`` (unknown command), CRC, echoed command
    character, ``?`` / ``S`` in the status position of a 3-byte reply. (As status bytes,
    0x3F and 0x53 would mean *standby* and *armed* at once, which a unit never reports,
    so the two readings cannot be confused.)

    Raises
    ------
    InvalidCommandError, CRCError, InvalidDataError, SettingsConflictError,
    StimulatorProtocolError
        Each names the command and carries the reply bytes.
    """
    command = bytes(command)
    reply = bytes(reply)
    if not reply:
        raise StimulatorProtocolError("empty reply", command=command, reply=reply)
    if reply[:1] == b"?":
        raise InvalidCommandError("the unit did not recognise the command",
                                  command=command, reply=reply)
    if len(reply) < 3:
        raise StimulatorProtocolError(f"reply too short ({len(reply)} bytes, at least 3)",
                                      command=command, reply=reply)
    if not crc_ok(reply):
        raise CRCError(f"checksum 0x{reply[-1]:02X} does not match 0x{crc(reply[:-1]):02X}",
                       command=command, reply=reply)
    if command and reply[0] != command[0]:
        raise StimulatorProtocolError(
            f"reply echoes {chr(reply[0])!r} instead of {chr(command[0])!r}",
            command=command, reply=reply)
    if reply[1:2] == b"?" and len(reply) == 3:
        raise InvalidDataError("the unit rejected the command's data",
                               command=command, reply=reply)
    if reply[1:2] == b"S" and len(reply) == 3:
        raise SettingsConflictError("the command conflicts with the unit's current settings",
                                    command=command, reply=reply)
    return reply


def _expect_length(command: bytes, reply: bytes, length: int) -> None:
    if len(reply) != length:
        raise StimulatorProtocolError(f"expected a {length}-byte reply, got {len(reply)}",
                                      command=command, reply=reply)


def _number(command: bytes, reply: bytes, field: bytes, what: str) -> int:
    if not field or not all(0x30 <= b <= 0x39 for b in field):
        raise StimulatorProtocolError(f"{what} is not a decimal number: {field!r}",
                                      command=command, reply=reply)
    return int(field)


def _bits(value: int, names: tuple[str, ...]) -> dict[str, bool]:
    return {name: bool((value >> i) & 1) for i, name in enumerate(names)}


@dataclass(frozen=True)
class MagstimStatus(StimulatorStatus):
    """The instrument-status byte of a Magstim unit (all eight bits).

    Attributes
    ----------
    standby, coil_present, replace_coil, error_present, error_type : bool
        Bits 0, 3, 4, 5 and 6 of the status byte (``armed``, ``ready`` and
        ``remote_control`` are bits 1, 2 and 7; ``error`` mirrors ``error_present``).
    """

    standby: bool
    coil_present: bool
    replace_coil: bool
    error_present: bool
    error_type: bool


@dataclass(frozen=True)
class RapidStatus(MagstimStatus):
    """Instrument status plus the eight Rapid-status bits of a Rapid² unit."""

    enhanced_power: bool
    train: bool
    wait: bool
    single_pulse: bool
    hvpsu_connected: bool
    coil_ready: bool
    theta_psu: bool
    modified_coil_algorithm: bool


def status_from_bytes(instrument: int, rapid: int | None = None, raw: bytes = b"") -> MagstimStatus:
    """Build a :class:`MagstimStatus` (or :class:`RapidStatus`) from status byte values."""
    bits = _bits(instrument, STATUS_BITS)
    common = dict(
        armed=bits["armed"], ready=bits["ready"], remote_control=bits["remote_control"],
        error=bits["error_present"], raw=raw, standby=bits["standby"],
        coil_present=bits["coil_present"], replace_coil=bits["replace_coil"],
        error_present=bits["error_present"], error_type=bits["error_type"],
    )
    if rapid is None:
        return MagstimStatus(**common)
    return RapidStatus(**common, **_bits(rapid, RAPID_STATUS_BITS))


def status_to_byte(**bits: bool) -> int:
    """Pack named instrument-status bits (``**bits``: ``armed=True``...) into a byte value."""
    return _pack(bits, STATUS_BITS)


def rapid_status_to_byte(**bits: bool) -> int:
    """Pack named Rapid-status bits (``**bits``: ``train=True``...) into a byte value."""
    return _pack(bits, RAPID_STATUS_BITS)


def _pack(bits: dict[str, bool], names: tuple[str, ...]) -> int:
    unknown = set(bits) - set(names)
    if unknown:
        raise ValueError(f"unknown status bits {sorted(unknown)}; allowed: {names}")
    return sum(1 << i for i, name in enumerate(names) if bits.get(name))


def parse_status(command: bytes, reply: bytes, *, rapid: bool = False) -> MagstimStatus:
    """Parse any status-bearing reply (``Q@``, ``EB``, ``@050``...; Rapid ``B``/``D``/``x@``).

    With ``rapid=True`` the Rapid-status byte (second data byte) is decoded too.
    """
    check_reply(command, reply)
    if rapid:
        if len(reply) < 4:
            raise StimulatorProtocolError("reply has no Rapid-status byte",
                                          command=command, reply=reply)
        return status_from_bytes(reply[1], reply[2], raw=reply)
    return status_from_bytes(reply[1], raw=reply)


@dataclass(frozen=True)
class MagstimParameters:
    """Settings reported by ``J@`` (200², BiStim²) or ``\\@`` (Rapid²).

    Attributes
    ----------
    intensity_percent : int
        Output A, % MSO.
    intensity_b_percent : int | None
        BiStim output B, % MSO.
    ipi_ms : float | None
        BiStim inter-pulse interval, ms (already scaled in high-resolution mode).
    frequency_hz, n_pulses, duration_s, wait_s : float | int | None
        Rapid² train settings.
    status : MagstimStatus
        The status byte(s) that came with the reply.
    """

    intensity_percent: int
    status: MagstimStatus
    intensity_b_percent: int | None = None
    ipi_ms: float | None = None
    frequency_hz: float | None = None
    n_pulses: int | None = None
    duration_s: float | None = None
    wait_s: float | None = None


def parse_parameters(command: bytes, reply: bytes, *, model: str = "200",
                     version: Version = RAPID_V9,
                     high_resolution: bool = False) -> MagstimParameters:
    """Parse a ``J@`` (``model`` ``"200"``/``"bistim"``) or ``\\@`` (``"rapid"``) reply."""
    check_reply(command, reply)
    if model == "rapid":
        _expect_length(command, reply, rapid_parameter_length(version))
        data = reply[3:-1]
        n_width, d_width = pulses_digits(version), duration_digits(version)
        cuts = [3, 4, n_width, d_width]
        fields = []
        start = 0
        for width in cuts:
            fields.append(data[start:start + width])
            start += width
        fields.append(data[start:])
        power, freq, pulses, duration, wait = (
            _number(command, reply, f, name) for f, name in
            zip(fields, ("power", "frequency", "pulses", "duration", "wait"), strict=True))
        return MagstimParameters(
            intensity_percent=power, status=status_from_bytes(reply[1], reply[2], raw=reply),
            frequency_hz=freq / 10, n_pulses=pulses, duration_s=duration / 10,
            wait_s=wait / 10,
        )
    _expect_length(command, reply, 12)
    data = reply[2:-1]
    status = status_from_bytes(reply[1], raw=reply)
    power_a = _number(command, reply, data[0:3], "power A")
    if model == "bistim":
        power_b = _number(command, reply, data[3:6], "power B")
        ipi = _number(command, reply, data[6:9], "inter-pulse interval")
        return MagstimParameters(
            intensity_percent=power_a, status=status, intensity_b_percent=power_b,
            ipi_ms=ipi / 10 if high_resolution else float(ipi),
        )
    return MagstimParameters(intensity_percent=power_a, status=status)


@dataclass(frozen=True)
class CoilTemperature:
    """``F@`` reply: the two coil temperatures, °C (0.1 °C resolution)."""

    coil1_c: float
    coil2_c: float
    status: MagstimStatus


def parse_temperature(command: bytes, reply: bytes) -> CoilTemperature:
    """Parse an ``F@`` reply (``F`` + status + 2×3 digits in 0.1 °C + CRC)."""
    check_reply(command, reply)
    _expect_length(command, reply, 9)
    t1 = _number(command, reply, reply[2:5], "coil 1 temperature")
    t2 = _number(command, reply, reply[5:8], "coil 2 temperature")
    return CoilTemperature(t1 / 10, t2 / 10, status_from_bytes(reply[1], raw=reply))


def parse_version(command: bytes, reply: bytes) -> Version:
    """Parse an ``ND`` reply: ``N`` + status + ``"9.0.0"`` + NUL + CRC → ``(9, 0, 0)``."""
    check_reply(command, reply)
    body = reply[2:-1]
    if not body.endswith(b"\x00"):
        raise StimulatorProtocolError("version text is not NUL-terminated",
                                      command=command, reply=reply)
    parts = body[:-1].split(b".")
    if len(parts) != 3:
        raise StimulatorProtocolError("version is not major.minor.patch",
                                      command=command, reply=reply)
    major, minor, patch = (_number(command, reply, p, "version") for p in parts)
    return (major, minor, patch)


def parse_error_code(command: bytes, reply: bytes) -> str:
    """Parse an ``I@`` reply: ``I`` + status + 3 ASCII characters + CRC → the code."""
    check_reply(command, reply)
    _expect_length(command, reply, 6)
    code = reply[2:5]
    if not all(0x20 <= b < 0x7F for b in code):
        raise StimulatorProtocolError("error code is not printable ASCII",
                                      command=command, reply=reply)
    return code.decode("ascii")


@dataclass(frozen=True)
class SystemStatus:
    """``x@`` reply of a Rapid² ≥ v9: both status bytes plus the extended byte."""

    status: RapidStatus
    plus1_module: bool
    special_trigger_mode: bool
    charge_delay_set: bool


def parse_system_status(command: bytes, reply: bytes) -> SystemStatus:
    """Parse an ``x@`` reply: ``x`` + instrument + Rapid + extended + reserved + CRC."""
    check_reply(command, reply)
    _expect_length(command, reply, 6)
    status = status_from_bytes(reply[1], reply[2], raw=reply)
    ext = reply[3]
    return SystemStatus(status, bool(ext & 1), bool(ext & 2), bool(ext & 4))


# ----------------------------------------------------------------------------- Rapid limits
def joules_per_pulse(power_percent: int) -> float:
    """Energy per pulse of a Rapid² at ``power_percent`` % MSO, in joules.

    The published Rapid² table (reproduced in MagPy's ``rapid_system_info.yaml``: 63.0 J at
    50 %, 100.0 J at 63 %, 252.0 J at 100 %) follows the capacitor law E ∝ V² with
    V ∝ power: E = 252 J · (power/100)². We compute that and round **up** to 0.1 J; over
    all 101 published powers the result is 0.0–0.3 J above the table and never below it,
    so the limits derived from it are never looser.
    """
    power = check_whole_number(power_percent, name="power_percent", low=0, high=110,
                               unit="% MSO")
    return math.ceil(252.0 * (power / 100) ** 2 * 10 - 1e-9) / 10


def max_on_time_s(power_percent: int, frequency_hz: float) -> float:
    """Longest train the Rapid² allows at this power and frequency: 63000/(f·J(power)) s."""
    energy = joules_per_pulse(power_percent)
    if frequency_hz <= 0 or energy <= 0:
        return math.inf
    return 63000.0 / (frequency_hz * energy)


def min_wait_s(power_percent: int, n_pulses: int, frequency_hz: float) -> float:
    """Minimum rest after a train: ``max(0.5, n·(f·J − 1050)/(1050·f))`` s."""
    if frequency_hz <= 0:
        return 0.5
    energy = joules_per_pulse(power_percent)
    return max(0.5, n_pulses * (frequency_hz * energy - 1050.0) / (1050.0 * frequency_hz))


# Frequency ceiling (Hz) vs power, by mains voltage and Rapid variant: (ceiling at or
# below 30 %, ceilings for 31..100 %). Source: the Rapid² operating tables as reproduced
# in MagPy's rapid_system_info.yaml ("maxFrequency": 240 V and 115 V; types 0, 1, 2 =
# Rapid², Super Rapid², Super Rapid² Plus). MagPy checks the same tables before it sets a
# frequency.
_CEILINGS: dict[int, dict[str, tuple[int, tuple[int, ...]]]] = {
    240: {
        "rapid2": (50, (
            46, 45, 44, 42, 41, 41, 39, 39, 38, 37, 36, 34, 33, 33, 33, 33, 33, 32,
            31, 30, 30, 29, 29, 28, 28, 27, 27, 26, 26, 25, 25, 24, 24, 23, 23, 22,
            22, 21, 21, 20, 20, 20, 20, 19, 19, 19, 19, 19, 18, 18, 18, 18, 18, 18,
            17, 17, 17, 17, 17, 17, 17, 16, 16, 16, 16, 16, 16, 15, 15, 15,
        )),
        "super_rapid2": (100, (
            98, 95, 93, 90, 88, 85, 83, 80, 78, 75, 73, 70, 68, 65, 63, 60, 58, 55,
            53, 50, 50, 49, 49, 48, 48, 47, 47, 46, 46, 45, 45, 44, 44, 43, 43, 42,
            42, 41, 41, 40, 40, 39, 39, 38, 38, 37, 37, 36, 36, 35, 35, 34, 34, 33,
            33, 32, 32, 31, 31, 30, 30, 29, 29, 28, 28, 27, 27, 26, 26, 25,
        )),
        "super_rapid2_plus": (100, (
            100, 100, 100, 100, 100, 100, 100, 100, 100,
            100, 100, 100, 100, 100, 100, 100, 100, 100,
            98, 97, 95, 93, 91, 88, 88, 87, 85, 84, 82, 80, 79, 77, 74, 74, 74, 74,
            71, 70, 69, 68, 68, 66, 65, 62, 62, 62, 60, 59, 58, 57, 57, 56, 55, 55,
            53, 52, 51, 50, 50, 49, 48, 47, 46, 46, 45, 44, 43, 42, 42, 41,
        )),
    },
    115: {
        "rapid2": (36, (
            35, 35, 34, 33, 32, 32, 31, 30, 29, 28, 28, 27, 26, 26, 25, 25, 24, 24,
            23, 23, 22, 22, 21, 21, 21, 20, 20, 19, 19, 19, 18, 18, 18, 18, 17, 17,
            17, 16, 16, 16, 16, 16, 15, 15, 15, 15, 14, 14, 14, 14, 14, 13, 13, 13,
            13, 13, 12, 12, 12, 12, 12, 12, 12, 12, 11, 11, 11, 11, 11, 11,
        )),
        "super_rapid2": (60, (
            60, 60, 60, 60, 60, 60, 60, 59, 57, 55, 54, 53, 52, 51, 50, 49, 47, 46,
            45, 44, 43, 42, 42, 41, 40, 40, 39, 38, 38, 37, 36, 36, 35, 35, 34, 34,
            33, 33, 32, 32, 31, 31, 30, 30, 29, 29, 28, 28, 28, 27, 27, 27, 26, 26,
            26, 26, 25, 25, 25, 24, 24, 24, 24, 23, 23, 23, 22, 22, 22, 22,
        )),
        "super_rapid2_plus": (60, (
            60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60,
            60, 58, 56, 56, 54, 53, 52, 51, 50, 49, 48, 47, 46, 46, 45, 44, 43, 43,
            42, 41, 40, 40, 39, 39, 38, 37, 37, 36, 36, 35, 35, 34, 34, 33, 33, 33,
            32, 32, 31, 31, 30, 30, 30, 29, 29, 28, 28, 28, 27, 27, 27, 25,
        )),
    },
}
#: Rapid variants with a frequency-ceiling table.
RAPID_VARIANTS = tuple(_CEILINGS[240])
#: Mains voltages with a table.
MAINS_VOLTAGES = tuple(_CEILINGS)
#: Highest power in enhanced-power mode (single pulses only: trains are refused there).
ENHANCED_POWER_MAX_PERCENT = 110


def max_frequency_hz(power_percent: int, variant: str = "rapid2", voltage: int = 240) -> float:
    """Highest train frequency (Hz) the unit allows at ``power_percent``.

    Parameters
    ----------
    power_percent : int
        0–100 % MSO (trains are not allowed in enhanced-power mode, above 100 %).
    variant : str
        One of :data:`RAPID_VARIANTS`.
    voltage : int
        Mains voltage the unit is built for, one of :data:`MAINS_VOLTAGES`.
    """
    if voltage not in _CEILINGS:
        raise ConfigError(f"voltage must be one of {MAINS_VOLTAGES}, got {voltage!r}",
                          field="voltage")
    if variant not in _CEILINGS[voltage]:
        raise ConfigError(f"variant must be one of {RAPID_VARIANTS}, got {variant!r}",
                          field="variant")
    power = check_whole_number(power_percent, name="power_percent", low=0, high=100,
                               unit="% MSO (trains are not allowed in enhanced-power mode)")
    low, table = _CEILINGS[voltage][variant]
    if power <= 30:
        return float(low)
    return float(table[power - 31])


def check_train(power_percent: int, frequency_hz: float, n_pulses: int,
                *, variant: str = "rapid2", voltage: int = 240) -> float:
    """Refuse a Rapid² train over the frequency ceiling or the on-time/energy limit.

    Parameters
    ----------
    power_percent : int
        Intensity, % MSO.
    frequency_hz : float
        Train frequency, Hz.
    n_pulses : int
        Pulses in the train.
    variant : str
        One of :data:`RAPID_VARIANTS`.
    voltage : int
        Mains voltage, one of :data:`MAINS_VOLTAGES`.

    Returns
    -------
    float
        The train's on-time, s.

    Raises
    ------
    SafetyError
        Naming the limit that was exceeded and its value.
    """
    if frequency_hz <= 0 or n_pulses <= 0:
        return 0.0
    ceiling = max_frequency_hz(power_percent, variant, voltage)
    if frequency_hz > ceiling:
        raise SafetyError(
            f"Rapid² frequency ceiling: {frequency_hz:g} Hz at {power_percent} % MSO exceeds "
            f"the {ceiling:g} Hz allowed for a {variant} on {voltage} V mains at that power")
    on_time = n_pulses / frequency_hz
    limit = max_on_time_s(power_percent, frequency_hz)
    if on_time > limit + 1e-9:
        raise SafetyError(
            f"Rapid² energy limit: a train of {n_pulses} pulses at {frequency_hz:g} Hz lasts "
            f"{on_time:.2f} s, longer than the maximum on-time 63000/(f·J) = {limit:.2f} s at "
            f"{power_percent} % MSO (J = {joules_per_pulse(power_percent):.1f} J per pulse)")
    return on_time
