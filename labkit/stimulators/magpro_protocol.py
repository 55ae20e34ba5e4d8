"""MagVenture MagPro (R30, X100) serial protocol: framing, CRC, commands and replies.

Pure functions and small objects only: nothing here touches a port or a clock, so the
driver (:mod:`labkit.stimulators.magpro`), the emulator (:mod:`labkit.sim.magpro_emulator`)
and the tests share one description of the wire format.

Wire format (38400 baud, 8N1)::

    0xFE  len  payload[len]  CRC8(payload)  0xFF

The CRC is Dallas/Maxim CRC-8 (reflected polynomial 0x8C, initial value 0) over the
payload only. The first payload byte is the command id (host to unit) or the message id
(unit to host). The unit answers with *messages* whose ids form their own table, and it
also sends messages on its own (front-panel changes, di/dt after every discharge, train
start and stop), so a host must be ready for frames it did not ask for.

Byte layouts follow the public MATLAB toolbox MAGIC (``magventure.m``, Rogasch et al.)
and MagventurePyTMS (``pytms.py``, X. Li); this is an independent implementation.

Unit-to-host message ids used here:

====  ===========================================================================
0x00  status: info, serial number (3 bytes BE), coil temperature (°C), coil type,
      amplitude A, amplitude B (13-byte frame)
0x01  amplitude A, amplitude B, info (also reports enable/disable)
0x02  di/dt A, di/dt B (A/µs), info (sent after each discharge)
0x03  coil temperature, coil type, info
0x04  MEP: max amplitude (µV), min amplitude (µV), time of max (µs), 32-bit BE each
0x05  status 2: status fields + original amplitudes, amplitude factors, page,
      train running (19-byte frame)
0x06  original amplitudes A, B, info (protocol page)
0x07  amplitude factors A, B (%), info (protocol page)
0x08  page, train running, info
0x09  model, mode, current direction, waveform, burst index, IPI index (LE), B/A index
0x0A  delays: trigger-in ×10 ms, trigger-out ×10 ms (signed), charge delay ms (BE)
0x0B  timing menu: control (bits 0–3 timing control, bit 4 extended rate), rep rate
      ×10, pulses, trains, ITI ×10 (16-bit BE), prior-warning sound, ramp-up ×100,
      ramp-up trains
0x0C  page and stimulus count: trains, pulses × trains, stimuli delivered, page
====  ===========================================================================

Host-to-unit commands come in the forms the public sources use, and the emulator
answers every one: single pulse ``03 01`` (MAGIC) or ``03`` (MagventurePyTMS); page
``07 p 00`` (MAGIC) or ``07 p`` (MagventurePyTMS); mode block get ``09 00`` followed
by nine zero bytes (MAGIC) or not (MagventurePyTMS); train parameters ``06 …`` (MAGIC)
or the timing menu ``0B 01 …`` (MagventurePyTMS); trigger and charge delays ``08 …``
(MAGIC) or ``0A 01 …`` (MagventurePyTMS).

The *info* byte packs bits 0–1 mode, bits 2–3 waveform, bit 4 enabled, bits 5–7 model.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import IntEnum

from labkit.errors import ConfigError, CRCError, StimulatorProtocolError

START_BYTE = 0xFE
END_BYTE = 0xFF
#: Longest payload accepted; the longest known message (status 2) has 15 bytes.
MAX_PAYLOAD = 32
#: Shortest frame: start, length, one payload byte, CRC, end.
MIN_FRAME = 5

MODELS = ("R30", "X100", "R30+Option", "X100+Option", "R30+Option+Mono", "MST")
MODES = ("standard", "power", "twin", "dual")
WAVEFORMS = ("monophasic", "biphasic", "halfsine", "biphasic_burst")
CURRENT_DIRECTIONS = ("normal", "reverse")
PAGES = {
    1: "main", 2: "train", 3: "trig", 4: "config", 6: "download", 7: "protocol",
    8: "mep", 13: "service", 15: "treatment", 16: "treat_select", 17: "service2",
    19: "calculator",
}
#: Pages a host may select with command 0x07.
SETTABLE_PAGES = {"main": 1, "train": 2, "trig": 3, "config": 4, "protocol": 7}
#: Highest repetition rate (pulses per second) per model, standard waveforms.
MAX_REP_RATE_HZ = {
    "R30": 30.0, "R30+Option": 30.0, "R30+Option+Mono": 30.0,
    "X100": 100.0, "X100+Option": 100.0, "MST": 100.0,
}
#: Highest repetition rate with the biphasic-burst waveform (X100 family).
MAX_BURST_REP_RATE_HZ = 20.0
PULSES_IN_TRAIN_RANGE = (1, 1000)
#: Above 1000 the unit accepts pulses in steps of 100 up to 2000.
PULSES_IN_TRAIN_HIGH = tuple(range(1100, 2001, 100))
NUMBER_OF_TRAINS_RANGE = (1, 500)
ITI_RANGE_S = (0.1, 300.0)


class Command(IntEnum):
    """Host-to-unit command ids (first payload byte)."""

    STATUS = 0x00
    AMPLITUDE = 0x01
    ENABLE = 0x02
    SINGLE_PULSE = 0x03
    START_TRAIN = 0x04
    STATUS2 = 0x05
    TRAIN_PARAMETERS = 0x06
    PAGE = 0x07
    TRIG_CHARGE_DELAY = 0x08
    MODE_BLOCK = 0x09
    DELAYS = 0x0A
    TIMING = 0x0B
    PAGE_COUNT = 0x0C


class Message(IntEnum):
    """Unit-to-host message ids (first payload byte)."""

    STATUS = 0x00
    AMPLITUDE = 0x01
    DIDT = 0x02
    TEMPERATURE = 0x03
    MEP = 0x04
    STATUS2 = 0x05
    ORIGINAL_AMPLITUDE = 0x06
    AMPLITUDE_FACTOR = 0x07
    PAGE = 0x08
    MODE_BLOCK = 0x09
    DELAYS = 0x0A
    TIMING = 0x0B
    PAGE_COUNT = 0x0C


#: Timing-control settings of the timing menu (low nibble of its control byte).
TIMING_CONTROLS = ("sequence", "external_trig", "ext_seq_start", "ext_seq_cont")


def _error(cls: type[StimulatorProtocolError], detail: str, reply: bytes | None):
    """Make a protocol error that remembers its bare ``detail`` for re-raising."""
    exc = cls(detail, reply=reply)
    exc.detail = detail
    return exc


# --------------------------------------------------------------------------- CRC, frames
def _crc_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc8(data: bytes) -> int:
    """Dallas/Maxim CRC-8 (reflected polynomial 0x8C, init 0, no final xor).

    Parameters
    ----------
    data : bytes
        The payload.

    Returns
    -------
    int
        The checksum, 0–255. ``crc8(b"123456789") == 0xA1``.
    """
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def build_frame(payload: bytes) -> bytes:
    """Frame a payload: ``FE len payload CRC8 FF``.

    Raises
    ------
    ValueError
        If the payload is empty or longer than :data:`MAX_PAYLOAD` bytes.
    """
    payload = bytes(payload)
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise ValueError(f"MagPro payload must have 1..{MAX_PAYLOAD} bytes, got {len(payload)}")
    return bytes((START_BYTE, len(payload))) + payload + bytes((crc8(payload), END_BYTE))


def parse_frame(frame: bytes) -> bytes:
    """Check one complete frame and return its payload.

    Raises
    ------
    CRCError
        If the checksum does not match the payload.
    StimulatorProtocolError
        If start byte, length or end byte are wrong.
    """
    frame = bytes(frame)
    if len(frame) < MIN_FRAME or frame[0] != START_BYTE:
        raise _error(StimulatorProtocolError,
                     f"malformed MagPro frame: expected 0xFE and at least {MIN_FRAME} bytes",
                     frame)
    length = frame[1]
    if not 1 <= length <= MAX_PAYLOAD or len(frame) != length + 4:
        raise _error(StimulatorProtocolError,
                     f"malformed MagPro frame: length byte {length} does not match "
                     f"{len(frame)} bytes (allowed payload 1..{MAX_PAYLOAD})", frame)
    if frame[-1] != END_BYTE:
        raise _error(StimulatorProtocolError,
                     f"malformed MagPro frame: end byte 0x{frame[-1]:02X}, expected 0xFF", frame)
    payload = frame[2:-2]
    expected = crc8(payload)
    if frame[-2] != expected:
        raise _error(CRCError, f"bad MagPro CRC8: got 0x{frame[-2]:02X}, expected "
                     f"0x{expected:02X}", frame)
    return payload


class FrameExtractor:
    """Cut frames out of a byte stream, resynchronising on garbage.

    Bytes before a ``0xFE`` are discarded. A frame whose length byte is out of range or
    whose end byte is not ``0xFF`` is malformed: only its ``0xFE`` is dropped, so that a
    real frame starting inside it is still found. So is an incomplete frame when a
    complete, CRC-valid frame already starts at a later ``0xFE`` in the buffer (a stray
    ``0xFE`` must not stall the line). A frame with a bad CRC loses its ``0xFE`` too; the
    rest of it is scanned again (and discarded unless a real frame starts inside).

    Examples
    --------
    >>> ex = FrameExtractor()
    >>> ex.feed(b"\\x00\\xfe\\x01\\x00\\x00\\xff")
    >>> ex.next_payload()
    b'\\x00'
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        #: Bytes thrown away while looking for a frame start.
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf.extend(data)
        self._skip_garbage()

    def clear(self) -> None:
        """Forget everything buffered."""
        self._buf.clear()

    def __len__(self) -> int:
        return len(self._buf)

    def bytes_needed(self) -> int:
        """Least number of further bytes that could complete the next frame."""
        if not self._buf:
            return MIN_FRAME
        if len(self._buf) < 2:
            return MIN_FRAME - len(self._buf)
        length = self._buf[1]
        return max(1, length + 4 - len(self._buf))

    def _skip_garbage(self) -> None:
        start = self._buf.find(START_BYTE)
        drop = len(self._buf) if start < 0 else start
        if drop:
            del self._buf[:drop]
            self.discarded += drop

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self.discarded += n
        self._skip_garbage()

    def next_frame(self) -> bytes | None:
        """Return the next complete, valid frame, or ``None`` if none is complete yet.

        Raises
        ------
        CRCError
            For a frame with a bad checksum.
        StimulatorProtocolError
            For a malformed frame. In both cases the frame's start byte is consumed, so
            calling again makes progress.
        """
        buf = self._buf
        if len(buf) < 2:
            return None
        length = buf[1]
        if not 1 <= length <= MAX_PAYLOAD:
            bad = bytes(buf[:2])
            self._drop(1)
            raise _error(StimulatorProtocolError,
                         f"malformed MagPro frame: length byte {length} outside "
                         f"1..{MAX_PAYLOAD}", bad)
        total = length + 4
        if len(buf) < total:
            if self._valid_frame_after_start():
                bad = bytes(buf[:2])
                self._drop(1)
                raise _error(StimulatorProtocolError,
                             "malformed MagPro frame: incomplete frame abandoned, a complete "
                             "frame follows it", bad)
            return None
        frame = bytes(buf[:total])
        if frame[-1] != END_BYTE:
            self._drop(1)
            raise _error(StimulatorProtocolError,
                         f"malformed MagPro frame: end byte 0x{frame[-1]:02X}, expected 0xFF",
                         frame)
        try:
            parse_frame(frame)
        except CRCError:
            self._drop(1)
            raise
        del buf[:total]
        self._skip_garbage()
        return frame

    def _valid_frame_after_start(self) -> bool:
        """True if a complete, valid frame starts at a later ``0xFE`` in the buffer.

        Lets a stray ``0xFE`` (whose length byte promises more bytes than ever come) give
        way to a real frame right away instead of stalling until the host times out.
        """
        buf = self._buf
        i = buf.find(START_BYTE, 1)
        while i >= 0:
            if i + 1 < len(buf):
                length = buf[i + 1]
                end = i + length + 4
                if (1 <= length <= MAX_PAYLOAD and end <= len(buf) and buf[end - 1] == END_BYTE
                        and crc8(buf[i + 2:end - 2]) == buf[end - 2]):
                    return True
            i = buf.find(START_BYTE, i + 1)
        return False

    def next_payload(self) -> bytes | None:
        """Like :meth:`next_frame` but return the payload only."""
        frame = self.next_frame()
        return None if frame is None else frame[2:-2]


# --------------------------------------------------------------------------- validation
def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def validate_percent(value, name: str = "percent") -> int:
    """Check an amplitude: a whole number 0–100 (% of maximum output).

    Raises
    ------
    ConfigError
        Naming ``name`` and the allowed range, for NaN, bools, non-whole numbers,
        strings or values outside 0–100.
    """
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a whole number 0..100 (% MSO), got {value!r}",
                          field=name)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number 0..100 (% MSO), got {value!r}",
                          field=name)
    if not 0 <= value <= 100:
        raise ConfigError(f"{name} must be within 0..100 (% MSO), got {value!r}", field=name)
    return int(value)


def _tenths(value, name: str, low: float, high: float, unit: str) -> int:
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number {low:g}..{high:g} {unit}, got {value!r}",
                          field=name)
    tenths = round(value * 10)
    if abs(value * 10 - tenths) > 1e-6:
        raise ConfigError(f"{name} must be a multiple of 0.1 {unit}, got {value!r}", field=name)
    if not round(low * 10) <= tenths <= round(high * 10):
        raise ConfigError(f"{name} must be within {low:g}..{high:g} {unit}, got {value!r}",
                          field=name)
    return tenths


def _whole(value, name: str, low: int, high: int) -> int:
    if not _is_number(value) or not math.isfinite(value) or value != int(value):
        raise ConfigError(f"{name} must be a whole number {low}..{high}, got {value!r}",
                          field=name)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be within {low}..{high}, got {value!r}", field=name)
    return int(value)


#: Highest rate in twin/dual mode: R30+Option 5 pps; X100+Option 50 pps (5 monophasic).
TWIN_DUAL_MAX_REP_RATE_HZ = {"R30+Option": 5.0, "X100+Option": 50.0}
#: Top of the 0.1-pps range when the unit offers extended rates (timing-menu bit 4).
EXTENDED_RATE_FINE_TOP_HZ = 20.0


def max_rep_rate_hz(model: str, waveform: str = "biphasic", mode: str = "standard") -> float:
    """Highest repetition rate the unit accepts for ``model``, ``waveform`` and ``mode``.

    Per MagventurePyTMS's rate tables: R30 30 pps; R30+Option 30 (5 in twin/dual);
    X100 100 (20 with biphasic burst); X100+Option 100 (20 biphasic burst; in twin/dual
    50, or 5 monophasic). Models those tables do not cover keep the family ceiling.
    """
    high = MAX_REP_RATE_HZ.get(model, 30.0)
    if waveform == "biphasic_burst":
        high = min(high, MAX_BURST_REP_RATE_HZ)
    if mode in ("twin", "dual") and model in TWIN_DUAL_MAX_REP_RATE_HZ:
        twin = TWIN_DUAL_MAX_REP_RATE_HZ[model]
        if model == "X100+Option" and waveform == "monophasic":
            twin = 5.0
        high = min(high, twin)
    return high


@dataclass(frozen=True)
class TrainSettings:
    """Validated train parameters (what command 0x06 carries).

    Attributes
    ----------
    rep_rate_hz : float
        Pulses per second within a train.
    pulses_in_train : int
        Pulses (or bursts) per train.
    number_of_trains : int
        Trains in the sequence.
    iti_s : float
        Inter-train interval: last pulse of a train to first pulse of the next, s.
    """

    rep_rate_hz: float
    pulses_in_train: int
    number_of_trains: int
    iti_s: float

    @property
    def train_duration_s(self) -> float:
        """First to last pulse of one train, s."""
        return (self.pulses_in_train - 1) / self.rep_rate_hz

    @property
    def total_pulses(self) -> int:
        """Pulses in the whole sequence."""
        return self.pulses_in_train * self.number_of_trains

    @property
    def sequence_duration_s(self) -> float:
        """First pulse of the first train to last pulse of the last train, s."""
        n = self.number_of_trains
        return n * self.train_duration_s + (n - 1) * self.iti_s


def validate_train(
    rep_rate_hz, pulses_in_train, number_of_trains, iti_s, *,
    model: str = "X100", waveform: str = "biphasic", mode: str = "standard",
    extended_rate: bool = False,
) -> TrainSettings:
    """Check train parameters against the unit's documented ranges.

    Rep rate: 0.1–1.0 pps in 0.1 steps (up to 20 pps with ``extended_rate``), then whole
    pps up to :func:`max_rep_rate_hz`. Pulses in train: 1–1000, then 1100–2000 in steps
    of 100. Trains: 1–500. ITI: 0.1–300 s in 0.1 s steps (MagventurePyTMS, tested on an
    X100; MAGIC checks 0.1–120 s).

    Raises
    ------
    ConfigError
        Naming the field and its allowed range.
    """
    high = max_rep_rate_hz(model, waveform, mode)
    rate_tenths = _tenths(rep_rate_hz, "rep_rate_hz", 0.1, high, "pps")
    fine_top = min(high, EXTENDED_RATE_FINE_TOP_HZ) if extended_rate else 1.0
    if rate_tenths > round(fine_top * 10) and rate_tenths % 10:
        raise ConfigError(
            f"rep_rate_hz above {fine_top:g} pps must be a whole number (0.1..{fine_top:g} in "
            f"0.1 steps, then up to {high:g}) for model {model} ({mode}, {waveform}), got "
            f"{rep_rate_hz!r}", field="rep_rate_hz")
    low_p, high_p = PULSES_IN_TRAIN_RANGE
    if _is_number(pulses_in_train) and pulses_in_train in PULSES_IN_TRAIN_HIGH:
        pulses = int(pulses_in_train)
    else:
        try:
            pulses = _whole(pulses_in_train, "pulses_in_train", low_p, high_p)
        except ConfigError:
            raise ConfigError(
                f"pulses_in_train must be a whole number {low_p}..{high_p} or 1100..2000 in "
                f"steps of 100, got {pulses_in_train!r}", field="pulses_in_train") from None
    trains = _whole(number_of_trains, "number_of_trains", *NUMBER_OF_TRAINS_RANGE)
    iti_tenths = _tenths(iti_s, "iti_s", *ITI_RANGE_S, "s")
    return TrainSettings(rate_tenths / 10, pulses, trains, iti_tenths / 10)


# --------------------------------------------------------------------------- commands
def status_command() -> bytes:
    """Frame of command 0x00 (status request): ``FE 01 00 00 FF``."""
    return build_frame(bytes((Command.STATUS,)))


def status2_command() -> bytes:
    """Frame of command 0x05 (extended status request)."""
    return build_frame(bytes((Command.STATUS2,)))


def amplitude_command(a_percent, b_percent=None) -> bytes:
    """Frame of command 0x01: amplitude A (and B in twin/dual mode), % of maximum."""
    payload = bytes((Command.AMPLITUDE, validate_percent(a_percent, "percent")))
    if b_percent is not None:
        payload += bytes((validate_percent(b_percent, "b_percent"),))
    return build_frame(payload)


def enable_command(enabled: bool) -> bytes:
    """Frame of command 0x02: enable (1) or disable (0) the unit."""
    return build_frame(bytes((Command.ENABLE, 1 if enabled else 0)))


def single_pulse_command(short: bool = False) -> bytes:
    """Frame of command 0x03: trigger one pulse (or one burst).

    ``short=False`` gives MAGIC's ``03 01`` (``FE 02 03 01 …``); ``short=True`` gives
    MagventurePyTMS's one-byte ``03``.
    """
    return build_frame(bytes((Command.SINGLE_PULSE,) if short else (Command.SINGLE_PULSE, 1)))


def start_train_command() -> bytes:
    """Frame of command 0x04: start the train sequence (unit must be on the train page)."""
    return build_frame(bytes((Command.START_TRAIN,)))


def train_command(settings: TrainSettings) -> bytes:
    """Frame of command 0x06: rep rate ×10, pulses, trains, ITI ×10, 16-bit big-endian."""
    fields = (round(settings.rep_rate_hz * 10), settings.pulses_in_train,
              settings.number_of_trains, round(settings.iti_s * 10))
    payload = bytes((Command.TRAIN_PARAMETERS,)) + b"".join(
        int(v).to_bytes(2, "big") for v in fields)
    return build_frame(payload)


def page_command(page: str | int, short: bool = False) -> bytes:
    """Frame of command 0x07: show ``page`` (main, train, trig, config, protocol).

    ``short=False`` gives MAGIC's ``07 p 00``; ``short=True`` MagventurePyTMS's ``07 p``.
    """
    code = page_number(page)
    return build_frame(bytes((Command.PAGE, code) if short else (Command.PAGE, code, 0x00)))


def timing_get_command() -> bytes:
    """Frame of command 0x0B 00: read the timing menu (answered with message 0x0B)."""
    return build_frame(bytes((Command.TIMING, 0x00)))


def timing_set_command(settings: TrainSettings, *, control: str = "sequence",
                       prior_warning_sound: bool = True) -> bytes:
    """Frame of command 0x0B 01: set the timing menu.

    Payload ``0B 01 control rate×10 pulses trains ITI×10 sound`` (16-bit big-endian
    values), as MagventurePyTMS sends it. Ramp-up cannot be set this way.
    """
    code = _index(TIMING_CONTROLS, control, "control")
    fields = (round(settings.rep_rate_hz * 10), settings.pulses_in_train,
              settings.number_of_trains, round(settings.iti_s * 10))
    return build_frame(bytes((Command.TIMING, 0x01, code))
                       + b"".join(int(v).to_bytes(2, "big") for v in fields)
                       + bytes((1 if prior_warning_sound else 0,)))


def parse_timing_set_command(payload: bytes) -> tuple[int, TrainSettings | None, int, bool]:
    """Decode a ``0B 01`` payload: ``(control code, settings or None, raw rate×10, sound)``.

    ``settings`` is ``None`` when the values are outside the unit's ranges (validated
    for an X100; the caller re-validates for its model).
    """
    payload = bytes(payload)
    if len(payload) < 12 or payload[:2] != bytes((Command.TIMING, 1)):
        raise _error(StimulatorProtocolError,
                     f"MagPro 0x0B set needs 12 payload bytes, got {len(payload)}", payload)
    rate, pulses, trains, iti = (int.from_bytes(payload[i:i + 2], "big") for i in (3, 5, 7, 9))
    try:
        settings = validate_train(rate / 10, pulses, trains, iti / 10)
    except ConfigError:
        settings = None
    return payload[2] & 0x0F, settings, rate, bool(payload[11])


def page_count_command() -> bytes:
    """Frame of command 0x0C 00: read page and stimulus count (message 0x0C)."""
    return build_frame(bytes((Command.PAGE_COUNT, 0x00)))


def delays_get_command() -> bytes:
    """Frame of command 0x0A 00: read the trigger and charge delays (message 0x0A)."""
    return build_frame(bytes((Command.DELAYS, 0x00)))


#: Settable trigger-in delays (ms), per MagventurePyTMS.
DELAY_IN_MS = (tuple(round(0.1 * i, 1) for i in range(101)) + tuple(range(11, 101))
               + tuple(range(110, 6501, 10)))
#: Settable trigger-out delays (ms; negative = before the pulse), per MagventurePyTMS.
DELAY_OUT_MS = (tuple(range(-100, -9)) + tuple(round(0.1 * i, 1) for i in range(-99, 101))
                + tuple(range(11, 101)))
#: Settable charge delays (ms), per MagventurePyTMS.
CHARGE_DELAY_MS = (tuple(range(0, 101, 10)) + tuple(range(125, 4001, 25))
                   + tuple(range(4050, 12001, 50)))


def _on_grid(value, name: str, grid: tuple[float, ...], unit: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or not any(
            abs(value - g) < 1e-6 for g in grid):
        raise ConfigError(f"{name} must be one of the unit's steps from {grid[0]:g} to "
                          f"{grid[-1]:g} {unit}, got {value!r}", field=name)
    return float(value)


def delays_set_command(trigger_in_ms, trigger_out_ms, charge_delay_ms) -> bytes:
    """Frame of command 0x0A 01: ``0A 01 in×10 out×10 charge`` (16-bit BE, out signed).

    Raises
    ------
    ConfigError
        For values off the unit's grid (:data:`DELAY_IN_MS`, :data:`DELAY_OUT_MS`,
        :data:`CHARGE_DELAY_MS`), naming the field.
    """
    d_in = _on_grid(trigger_in_ms, "trigger_in_ms", DELAY_IN_MS, "ms")
    d_out = _on_grid(trigger_out_ms, "trigger_out_ms", DELAY_OUT_MS, "ms")
    d_charge = _on_grid(charge_delay_ms, "charge_delay_ms", CHARGE_DELAY_MS, "ms")
    return build_frame(bytes((Command.DELAYS, 0x01))
                       + round(d_in * 10).to_bytes(2, "big")
                       + round(d_out * 10).to_bytes(2, "big", signed=True)
                       + round(d_charge).to_bytes(2, "big"))


def trig_charge_delay_command(trigger_in_ms: int, trigger_out_ms: int,
                              charge_delay_ms: int) -> bytes:
    """Frame of MAGIC's command 0x08: ``08 in×10 out×10 charge 00 00`` (16-bit BE).

    Whole milliseconds as MAGIC checks them; the output delay may be negative
    (two's complement).
    """
    d_in = _whole(trigger_in_ms, "trigger_in_ms", 0, 6500)
    d_out = _whole(trigger_out_ms, "trigger_out_ms", -100, 100)
    d_charge = _whole(charge_delay_ms, "charge_delay_ms", 0, 12000)
    return build_frame(bytes((Command.TRIG_CHARGE_DELAY,)) + (d_in * 10).to_bytes(2, "big")
                       + (d_out * 10).to_bytes(2, "big", signed=True)
                       + d_charge.to_bytes(2, "big") + b"\x00\x00")


def page_number(page: str | int) -> int:
    """Page code for a settable page name (or a code given directly)."""
    if isinstance(page, str) and page.lower() in SETTABLE_PAGES:
        return SETTABLE_PAGES[page.lower()]
    if isinstance(page, int) and not isinstance(page, bool) and page in SETTABLE_PAGES.values():
        return page
    raise ConfigError(f"page must be one of {sorted(SETTABLE_PAGES)} (or codes "
                      f"{sorted(SETTABLE_PAGES.values())}), got {page!r}", field="page")


# --------------------------------------------------------------------------- info byte
@dataclass(frozen=True)
class UnitInfo:
    """The packed info byte: model (bits 5–7), enabled (4), waveform (2–3), mode (0–1)."""

    model: str
    mode: str
    waveform: str
    enabled: bool

    @classmethod
    def decode(cls, byte: int) -> UnitInfo:
        """Unpack an info byte (unknown model codes become ``"model-N"``)."""
        code = (byte >> 5) & 0x7
        model = MODELS[code] if code < len(MODELS) else f"model-{code}"
        return cls(model, MODES[byte & 0x3], WAVEFORMS[(byte >> 2) & 0x3],
                   bool(byte & 0x10))

    def encode(self) -> int:
        """Pack into one byte."""
        return ((_index(MODELS, self.model, "model") << 5) | (0x10 if self.enabled else 0)
                | (_index(WAVEFORMS, self.waveform, "waveform") << 2)
                | _index(MODES, self.mode, "mode"))


def _index(options: tuple[str, ...], value: str, name: str) -> int:
    if value not in options:
        raise ConfigError(f"{name} must be one of {list(options)}, got {value!r}", field=name)
    return options.index(value)


# --------------------------------------------------------------------------- replies
@dataclass(frozen=True)
class StatusReply:
    """Message 0x00 (9-byte payload, 13-byte frame)."""

    info: UnitInfo
    serial_number: int
    coil_temperature_c: int
    coil_type: int
    amplitude_a_percent: int
    amplitude_b_percent: int

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return (bytes((Message.STATUS, self.info.encode()))
                + self.serial_number.to_bytes(3, "big")
                + bytes((self.coil_temperature_c, self.coil_type, self.amplitude_a_percent,
                         self.amplitude_b_percent)))


@dataclass(frozen=True)
class Status2Reply:
    """Message 0x05 (15-byte payload, 19-byte frame)."""

    info: UnitInfo
    serial_number: int
    coil_temperature_c: int
    coil_type: int
    amplitude_a_percent: int
    amplitude_b_percent: int
    original_amplitude_a_percent: int
    original_amplitude_b_percent: int
    amplitude_factor_a_percent: int
    amplitude_factor_b_percent: int
    page: str
    train_running: bool

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return (bytes((Message.STATUS2, self.info.encode()))
                + self.serial_number.to_bytes(3, "big")
                + bytes((self.coil_temperature_c, self.coil_type, self.amplitude_a_percent,
                         self.amplitude_b_percent, self.original_amplitude_a_percent,
                         self.original_amplitude_b_percent, self.amplitude_factor_a_percent,
                         self.amplitude_factor_b_percent, _page_code(self.page),
                         1 if self.train_running else 0)))


@dataclass(frozen=True)
class AmplitudeReply:
    """Message 0x01: amplitudes A/B (% MSO) and the info byte."""

    amplitude_a_percent: int
    amplitude_b_percent: int
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.AMPLITUDE, self.amplitude_a_percent, self.amplitude_b_percent,
                      self.info.encode()))


@dataclass(frozen=True)
class DidtReply:
    """Message 0x02: realised di/dt of outputs A/B in A/µs, sent after a discharge."""

    didt_a: int
    didt_b: int
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.DIDT, self.didt_a, self.didt_b, self.info.encode()))


@dataclass(frozen=True)
class TemperatureReply:
    """Message 0x03: coil temperature (°C) and coil type code."""

    coil_temperature_c: int
    coil_type: int
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.TEMPERATURE, self.coil_temperature_c, self.coil_type,
                      self.info.encode()))


@dataclass(frozen=True)
class PageReply:
    """Message 0x08: current page and whether a train sequence is running."""

    page: str
    train_running: bool
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.PAGE, _page_code(self.page), 1 if self.train_running else 0,
                      self.info.encode()))


@dataclass(frozen=True)
class ModeBlock:
    """Model, mode, current direction, waveform and burst/twin settings (0x09 block).

    Attributes
    ----------
    model, mode, current_direction, waveform : str
        See :data:`MODELS`, :data:`MODES`, :data:`CURRENT_DIRECTIONS`, :data:`WAVEFORMS`.
    burst_pulses : int
        Pulses per biphasic burst, 2–5.
    ipi_index : int
        Inter-pulse-interval index as the unit reports it (see :func:`ipi_ms_from_index`).
    ba_ratio_index : int
        Pulse B/A amplitude ratio index: ratio = 5 − 0.05·index.
    """

    model: str
    mode: str
    current_direction: str
    waveform: str
    burst_pulses: int
    ipi_index: int
    ba_ratio_index: int

    @property
    def ba_ratio(self) -> float:
        """Pulse B/A amplitude ratio (twin mode)."""
        return round(5.0 - 0.05 * self.ba_ratio_index, 2)

    @property
    def ipi_ms(self) -> float | None:
        """Inter-pulse interval in ms for twin/dual mode or bursts, else ``None``."""
        return ipi_ms_from_index(self.ipi_index, self.mode, self.waveform)

    def to_payload(self) -> bytes:
        """Encode as the unit reports it (message 0x09, 10-byte payload)."""
        return bytes((Message.MODE_BLOCK, 0x00, _index(MODELS, self.model, "model"),
                      _index(MODES, self.mode, "mode"),
                      _index(CURRENT_DIRECTIONS, self.current_direction, "current_direction"),
                      _index(WAVEFORMS, self.waveform, "waveform"), 5 - self.burst_pulses,
                      self.ipi_index & 0xFF, self.ipi_index >> 8, self.ba_ratio_index))


@dataclass(frozen=True)
class TimingReply:
    """Message 0x0B: timing (train) menu as the unit holds it.

    Attributes
    ----------
    rep_rate_hz, pulses_in_train, number_of_trains, iti_s
        The train part (see :class:`TrainSettings`).
    timing_control : int
        Index into :data:`TIMING_CONTROLS` (0 = sequence started from the host).
    prior_warning_sound : bool
        The unit beeps before each train.
    ramp_up_percent : int
        Level of the first train(s), 70–100 % of the set amplitude.
    ramp_up_trains : int
        Trains over which the ramp-up applies, 1–10.
    extended_rate : bool
        The unit offers 0.1 pps steps above 1 pps (bit 4 of the control byte).
    """

    rep_rate_hz: float
    pulses_in_train: int
    number_of_trains: int
    iti_s: float
    timing_control: int = 0
    prior_warning_sound: bool = True
    ramp_up_percent: int = 100
    ramp_up_trains: int = 10
    extended_rate: bool = False

    def to_payload(self) -> bytes:
        """Encode as the unit would send it (14-byte payload)."""
        fields = (round(self.rep_rate_hz * 10), self.pulses_in_train, self.number_of_trains,
                  round(self.iti_s * 10))
        control = (self.timing_control & 0x0F) | (0x10 if self.extended_rate else 0)
        return (bytes((Message.TIMING, 0x00, control))
                + b"".join(int(v).to_bytes(2, "big") for v in fields)
                + bytes((1 if self.prior_warning_sound else 0, self.ramp_up_percent,
                         self.ramp_up_trains)))

    def settings(self) -> TrainSettings:
        """The train part as :class:`TrainSettings`."""
        return TrainSettings(self.rep_rate_hz, self.pulses_in_train, self.number_of_trains,
                             self.iti_s)

    @property
    def ramps_up(self) -> bool:
        """True when the first trains run below the set amplitude (ramp-up < 100 %)."""
        return self.ramp_up_percent < 100


@dataclass(frozen=True)
class MEPReply:
    """Message 0x04: MEP measured by the unit's MEP monitor (32-bit big-endian fields)."""

    max_amplitude_uv: int
    min_amplitude_uv: int
    max_time_us: int

    def to_payload(self) -> bytes:
        """Encode as the unit would send it (13-byte payload)."""
        return bytes((Message.MEP,)) + b"".join(
            int(v).to_bytes(4, "big") for v in (self.max_amplitude_uv, self.min_amplitude_uv,
                                                self.max_time_us))


@dataclass(frozen=True)
class OriginalAmplitudeReply:
    """Message 0x06: original amplitudes A/B (% MSO) before protocol factors, info byte."""

    original_a_percent: int
    original_b_percent: int
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.ORIGINAL_AMPLITUDE, self.original_a_percent,
                      self.original_b_percent, self.info.encode()))


@dataclass(frozen=True)
class AmplitudeFactorReply:
    """Message 0x07: amplitude factors A/B (% of the original amplitude), info byte."""

    factor_a_percent: int
    factor_b_percent: int
    info: UnitInfo

    def to_payload(self) -> bytes:
        """Encode as the unit would send it."""
        return bytes((Message.AMPLITUDE_FACTOR, self.factor_a_percent, self.factor_b_percent,
                      self.info.encode()))


@dataclass(frozen=True)
class DelaysReply:
    """Message 0x0A: trigger-in, trigger-out (may be negative) and charge delays, ms."""

    trigger_in_ms: float
    trigger_out_ms: float
    charge_delay_ms: int

    def to_payload(self) -> bytes:
        """Encode as the unit would send it (8-byte payload)."""
        return (bytes((Message.DELAYS, 0x00)) + round(self.trigger_in_ms * 10).to_bytes(2, "big")
                + round(self.trigger_out_ms * 10).to_bytes(2, "big", signed=True)
                + int(self.charge_delay_ms).to_bytes(2, "big"))


@dataclass(frozen=True)
class PageCountReply:
    """Message 0x0C: page and stimulus count (fields located by MagventurePyTMS).

    Attributes
    ----------
    number_of_trains : int
        Trains in the sequence (payload bytes 2–3).
    total_pulses : int
        Pulses in train × trains (bytes 5–7).
    stimulus_count : int
        Stimuli delivered, as counted by the unit (bytes 9–10).
    page : str
        Page shown (byte 13).
    """

    number_of_trains: int
    total_pulses: int
    stimulus_count: int
    page: str

    def to_payload(self) -> bytes:
        """Encode as the unit would send it (14-byte payload; unknown bytes zero)."""
        return (bytes((Message.PAGE_COUNT, 0x00)) + self.number_of_trains.to_bytes(2, "big")
                + b"\x00" + self.total_pulses.to_bytes(3, "big") + b"\x00"
                + self.stimulus_count.to_bytes(2, "big") + b"\x00\x00"
                + bytes((_page_code(self.page),)))


@dataclass(frozen=True)
class OtherMessage:
    """A well-framed message this module does not interpret (MEP data, delays, ...)."""

    message_id: int
    data: bytes


Reply = (StatusReply | Status2Reply | AmplitudeReply | DidtReply | TemperatureReply
         | PageReply | ModeBlock | TimingReply | MEPReply | OriginalAmplitudeReply
         | AmplitudeFactorReply | DelaysReply | PageCountReply | OtherMessage)


def _page_code(page: str) -> int:
    for code, name in PAGES.items():
        if name == page:
            return code
    if page.startswith("page-") and page[5:].isdigit():
        return int(page[5:])
    raise ConfigError(f"page must be one of {sorted(PAGES.values())}, got {page!r}",
                      field="page")


def _page_name(code: int) -> str:
    return PAGES.get(code, f"page-{code}")


def _choice(options: tuple[str, ...], code: int, name: str, payload: bytes) -> str:
    if code >= len(options):
        raise _error(StimulatorProtocolError,
                     f"MagPro mode block: {name} code {code} outside 0..{len(options) - 1}",
                     payload)
    return options[code]


def ipi_ms_from_index(index: int, mode: str, waveform: str) -> float | None:
    """Inter-pulse interval (ms) for the unit's IPI index.

    Twin/dual mode: 3000 ms down to 1 ms over indices 0–260; biphasic burst: 100 ms down
    to 0.5 ms over indices 0–195. Other modes have no IPI (``None``).
    """
    if mode in ("twin", "dual"):
        steps = ((20, 3000.0, 100.0), (30, 1000.0, 50.0), (70, 500.0, 10.0),
                 (150, 100.0, 1.0), (170, 20.0, 0.5), (260, 10.0, 0.1))
    elif waveform == "biphasic_burst":
        steps = ((80, 100.0, 1.0), (100, 20.0, 0.5), (195, 10.0, 0.1))
    else:
        return None
    prev_end, start_ms = 0, None
    for end, start_ms, step in steps:
        if index <= end:
            return round(start_ms - (index - prev_end) * step, 2)
        prev_end = end
    return None


_FIXED_LENGTHS = {
    Message.STATUS: 9, Message.STATUS2: 15, Message.AMPLITUDE: 4, Message.DIDT: 4,
    Message.TEMPERATURE: 4, Message.PAGE: 4, Message.MODE_BLOCK: 10, Message.MEP: 13,
    Message.ORIGINAL_AMPLITUDE: 4, Message.AMPLITUDE_FACTOR: 4, Message.DELAYS: 8,
    Message.TIMING: 14, Message.PAGE_COUNT: 14,
}


def parse_reply(payload: bytes) -> Reply:
    """Parse one unit-to-host payload into a reply dataclass.

    Parameters
    ----------
    payload : bytes
        The payload of a frame that passed :func:`parse_frame` (id first).

    Returns
    -------
    Reply
        One of the reply dataclasses; :class:`OtherMessage` for ids not interpreted here.

    Raises
    ------
    StimulatorProtocolError
        If the payload is empty or too short for its message id.
    """
    payload = bytes(payload)
    if not payload:
        raise _error(StimulatorProtocolError, "empty MagPro payload", payload)
    mid = payload[0]
    need = _FIXED_LENGTHS.get(mid)
    if need is not None and len(payload) < need:
        raise _error(StimulatorProtocolError,
                     f"MagPro message 0x{mid:02X} needs {need} payload bytes, got {len(payload)}",
                     payload)
    if mid in (Message.STATUS, Message.STATUS2):
        common = dict(
            info=UnitInfo.decode(payload[1]),
            serial_number=int.from_bytes(payload[2:5], "big"),
            coil_temperature_c=payload[5], coil_type=payload[6],
            amplitude_a_percent=payload[7], amplitude_b_percent=payload[8],
        )
        if mid == Message.STATUS:
            return StatusReply(**common)
        return Status2Reply(
            **common, original_amplitude_a_percent=payload[9],
            original_amplitude_b_percent=payload[10], amplitude_factor_a_percent=payload[11],
            amplitude_factor_b_percent=payload[12], page=_page_name(payload[13]),
            train_running=bool(payload[14]),
        )
    if mid == Message.AMPLITUDE:
        return AmplitudeReply(payload[1], payload[2], UnitInfo.decode(payload[3]))
    if mid == Message.DIDT:
        return DidtReply(payload[1], payload[2], UnitInfo.decode(payload[3]))
    if mid == Message.TEMPERATURE:
        return TemperatureReply(payload[1], payload[2], UnitInfo.decode(payload[3]))
    if mid == Message.PAGE:
        return PageReply(_page_name(payload[1]), bool(payload[2]), UnitInfo.decode(payload[3]))
    if mid == Message.MODE_BLOCK:
        model_code = payload[2]
        model = MODELS[model_code] if model_code < len(MODELS) else f"model-{model_code}"
        burst_index = payload[6]
        if burst_index > 3:
            raise _error(StimulatorProtocolError,
                         f"MagPro mode block: burst index {burst_index} outside 0..3", payload)
        return ModeBlock(
            model=model, mode=_choice(MODES, payload[3], "mode", payload),
            current_direction=_choice(CURRENT_DIRECTIONS, payload[4], "current direction",
                                      payload),
            waveform=_choice(WAVEFORMS, payload[5], "waveform", payload),
            burst_pulses=5 - burst_index, ipi_index=payload[7] | (payload[8] << 8),
            ba_ratio_index=payload[9],
        )
    if mid == Message.TIMING:
        return TimingReply(
            rep_rate_hz=int.from_bytes(payload[3:5], "big") / 10,
            pulses_in_train=int.from_bytes(payload[5:7], "big"),
            number_of_trains=int.from_bytes(payload[7:9], "big"),
            iti_s=int.from_bytes(payload[9:11], "big") / 10,
            timing_control=payload[2] & 0x0F, prior_warning_sound=bool(payload[11]),
            ramp_up_percent=payload[12], ramp_up_trains=payload[13],
            extended_rate=bool(payload[2] & 0x10),
        )
    if mid == Message.MEP:
        return MEPReply(*(int.from_bytes(payload[i:i + 4], "big") for i in (1, 5, 9)))
    if mid == Message.ORIGINAL_AMPLITUDE:
        return OriginalAmplitudeReply(payload[1], payload[2], UnitInfo.decode(payload[3]))
    if mid == Message.AMPLITUDE_FACTOR:
        return AmplitudeFactorReply(payload[1], payload[2], UnitInfo.decode(payload[3]))
    if mid == Message.DELAYS:
        return DelaysReply(int.from_bytes(payload[2:4], "big") / 10,
                           int.from_bytes(payload[4:6], "big", signed=True) / 10,
                           int.from_bytes(payload[6:8], "big"))
    if mid == Message.PAGE_COUNT:
        return PageCountReply(int.from_bytes(payload[2:4], "big"),
                              int.from_bytes(payload[5:8], "big"),
                              int.from_bytes(payload[9:11], "big"), _page_name(payload[13]))
    return OtherMessage(mid, payload[1:])


def mode_block_command(block: ModeBlock | None = None, *, ipi_ms: float = 0.0,
                       ba_ratio: float = 1.0) -> bytes:
    """Frame of command 0x09: get (``block=None``) or set the mode block.

    When setting, the IPI goes as ms ×10 and the B/A ratio as ×100, 16-bit big-endian.
    """
    if block is None:
        return build_frame(bytes((Command.MODE_BLOCK, 0x00)) + bytes(9))
    if block.burst_pulses not in (2, 3, 4, 5):
        raise ConfigError(f"burst_pulses must be 2..5, got {block.burst_pulses!r}",
                          field="burst_pulses")
    ipi = _tenths(ipi_ms, "ipi_ms", 0.0, 3000.0, "ms")
    if not _is_number(ba_ratio) or not 0.2 <= ba_ratio <= 5.0:
        raise ConfigError(f"ba_ratio must be within 0.2..5.0, got {ba_ratio!r}", field="ba_ratio")
    payload = bytes((
        Command.MODE_BLOCK, 0x01, _index(MODELS, block.model, "model"),
        _index(MODES, block.mode, "mode"),
        _index(CURRENT_DIRECTIONS, block.current_direction, "current_direction"),
        _index(WAVEFORMS, block.waveform, "waveform"), 5 - block.burst_pulses,
    )) + ipi.to_bytes(2, "big") + round(ba_ratio * 100).to_bytes(2, "big")
    return build_frame(payload)


def parse_mode_block_command(payload: bytes) -> tuple[ModeBlock, float, float] | None:
    """Decode a 0x09 *set* payload (host to unit); ``None`` for a get request.

    Returns
    -------
    tuple | None
        ``(block, ipi_ms, ba_ratio)``; ``block.ipi_index``/``ba_ratio_index`` are the
        indices the unit would report for those values (0 when not representable).

    Raises
    ------
    StimulatorProtocolError
        If the payload is too short or a code is out of range.
    """
    payload = bytes(payload)
    if len(payload) < 2 or payload[0] != Command.MODE_BLOCK:
        raise _error(StimulatorProtocolError, "MagPro 0x09 payload too short", payload)
    if payload[1] == 0:
        return None
    if len(payload) < 11:
        raise _error(StimulatorProtocolError,
                     f"MagPro 0x09 set needs 11 payload bytes, got {len(payload)}", payload)
    model = _choice(MODELS, payload[2], "model", payload)
    mode = _choice(MODES, payload[3], "mode", payload)
    direction = _choice(CURRENT_DIRECTIONS, payload[4], "current direction", payload)
    waveform = _choice(WAVEFORMS, payload[5], "waveform", payload)
    if payload[6] > 3:
        raise _error(StimulatorProtocolError,
                     f"MagPro mode block: burst index {payload[6]} outside 0..3", payload)
    ipi_ms = int.from_bytes(payload[7:9], "big") / 10
    ba_ratio = int.from_bytes(payload[9:11], "big") / 100
    ba_index = max(0, min(255, round((5.0 - ba_ratio) / 0.05)))
    block = ModeBlock(model, mode, direction, waveform, 5 - payload[6],
                      ipi_index_from_ms(ipi_ms, mode, waveform), ba_index)
    return block, ipi_ms, ba_ratio


def ipi_index_from_ms(ipi_ms: float, mode: str, waveform: str) -> int:
    """Index whose :func:`ipi_ms_from_index` is closest to ``ipi_ms`` (0 if no IPI)."""
    top = 260 if mode in ("twin", "dual") else 195 if waveform == "biphasic_burst" else None
    if top is None:
        return 0
    return min(range(top + 1),
               key=lambda i: abs((ipi_ms_from_index(i, mode, waveform) or 0.0) - ipi_ms))
