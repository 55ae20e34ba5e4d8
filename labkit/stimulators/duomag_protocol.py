"""Deymed DuoMAG (MP, XT, MP-Dual) serial protocol: commands and the status stream.

Pure functions and dataclasses only. Facts from MAGIC's ``duomag.m`` (N. Rogasch et al.)
and its fork that sets delays up to 600 ms; this is an independent implementation.

Link: 1,000,000 baud, 8 data bits, no parity, **2 stop bits**.

Host to unit, every command byte sent twice (no checksum, no reply):

=================  ===========================================================
intensity          ``[a, a]``, ``a`` = 0–100 % MSO
fire               ``[121, 121]``
recharge delay     ``[U, U, L, L]``: ``U = 0b100fffff``, ``L = 0b101eeeff``
TTL-out delay      ``[U, U, L, L]``: ``U = 0b110fffff``, ``L = 0b111eeeff``
=================  ===========================================================

where ``fffffff`` is a 7-bit step count (upper 5 bits in ``U``, lower 2 in ``L``) and
``eee`` the step-size code: 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10 ms for codes 0–7. So a delay
is ``steps × step`` with ``steps`` 0–127. On an MP-Dual the TTL-out delay is the delay of
the second unit's pulse: the paired-pulse interval.

Unit to host: a continuous stream of status frames, each introduced by the sync byte
``0xFF`` (never a data value). Data bytes (0-based, as MAGIC's ``getStatus`` reads them):

====  ===================================================================
0     bit 5 demand-on-stim TTL; bits 4–0 change of intensity (signed 5-bit)
1     current intensity, % MSO
2–4   coil, resistor, discharge temperature (ADC counts, units unspecified)
5     omitted-pulse count
6     bit 6 power overheat, 5 coil disconnected, 4 voltage-hold error,
      3 voltage-recharge error
7     bit 6 power fan seized, 4 coil overheat, 3 resistor overheat,
      2 discharge overheat, 1 coil data OK, 0 receiving USB
8     bit 2 idle time, bit 0 charged
9     bits 6–0 TTL-delay steps
10    bits 6–0 recharge-delay steps
11    bits 6–4 recharge step code, bits 2–0 TTL step code
14    coil type (newer units, frames longer than 13 bytes): 1 70BF, 2 70BF-COOL,
      3 120BFV, 4 100R, 5 125R, 6 50BF, 7 50BFT
====  ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import ConfigError, StimulatorProtocolError

BAUDRATE = 1_000_000
SYNC = 0xFF
FIRE_CODE = 121
#: Step sizes (ms) by step-size code 0–7.
STEP_MS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MAX_STEPS = 127
#: Longest delay the encoding can express, ms.
MAX_DELAY_MS = MAX_STEPS * STEP_MS[-1]
#: Coil names by coil-type code (MAGIC's list, "as in the Deymed manual").
COIL_TYPES = {1: "70BF", 2: "70BF-COOL", 3: "120BFV", 4: "100R", 5: "125R", 6: "50BF",
              7: "50BFT"}
MODELS = ("MP", "XT", "MP-Dual")
#: Data bytes of a status frame: 13 on older units, 15 (with the coil type) on newer ones.
FRAME_LENGTHS = (13, 15)

_DELAY_KINDS = {"recharge": (0b100, 0b101), "ttl": (0b110, 0b111)}


def intensity_command(percent) -> bytes:
    """``[a, a]``: set the intensity, whole % MSO 0–100.

    Raises
    ------
    ConfigError
        For NaN, bools, fractions or values outside 0–100 (naming ``percent``).
    """
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or percent != percent \
            or percent != int(percent) or not 0 <= percent <= 100:
        raise ConfigError(f"percent must be a whole number 0..100 (% MSO), got {percent!r}",
                          field="percent")
    return bytes((int(percent),) * 2)


FIRE = bytes((FIRE_CODE, FIRE_CODE))


def delay_command(kind: str, steps: int, step_ms: float) -> bytes:
    """``[U, U, L, L]`` for ``steps × step_ms`` (``kind`` ``"recharge"`` or ``"ttl"``)."""
    if kind not in _DELAY_KINDS:
        raise ConfigError(f"kind must be 'recharge' or 'ttl', got {kind!r}", field="kind")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ConfigError(f"steps must be an integer 0..{MAX_STEPS}, got {steps!r}",
                          field="steps")
    codes = [i for i, ms in enumerate(STEP_MS) if abs(ms - step_ms) < 1e-9]
    if not codes:
        raise ConfigError(f"step_ms must be one of {STEP_MS}, got {step_ms!r}", field="step_ms")
    upper_tag, lower_tag = _DELAY_KINDS[kind]
    upper = (upper_tag << 5) | (steps >> 2)
    lower = (lower_tag << 5) | (codes[0] << 2) | (steps & 0b11)
    return bytes((upper, upper, lower, lower))


def encode_delay_ms(delay_ms, name: str = "delay_ms") -> tuple[int, float]:
    """``(steps, step_ms)`` with the finest step that expresses ``delay_ms`` exactly.

    Raises
    ------
    ConfigError
        If no step size gives ``delay_ms`` exactly with at most 127 steps (naming
        ``name`` and the range).
    """
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float)) or \
            delay_ms != delay_ms or not 0 <= delay_ms <= MAX_DELAY_MS:
        raise ConfigError(f"{name} must be a number of ms in 0..{MAX_DELAY_MS:g}, got "
                          f"{delay_ms!r}", field=name)
    for step in STEP_MS:
        steps = round(delay_ms / step)
        if steps <= MAX_STEPS and abs(steps * step - delay_ms) < 1e-6:
            return steps, step
    raise ConfigError(f"{name} {delay_ms!r} ms is not steps × step with steps 0..127 and a "
                      f"step of {STEP_MS} ms (e.g. 0.05 ms steps up to 6.35 ms, 1 ms steps "
                      "up to 127 ms, 10 ms steps up to 1270 ms)", field=name)


def parse_delay_command(data: bytes) -> tuple[str, float] | None:
    """Decode ``[U, U, L, L]`` into ``(kind, delay_ms)``; ``None`` if it is not one."""
    if len(data) != 4 or data[0] != data[1] or data[2] != data[3]:
        return None
    for kind, (upper_tag, lower_tag) in _DELAY_KINDS.items():
        if data[0] >> 5 == upper_tag and data[2] >> 5 == lower_tag:
            steps = ((data[0] & 0x1F) << 2) | (data[2] & 0b11)
            return kind, round(steps * STEP_MS[(data[2] >> 2) & 0b111], 4)
    return None


@dataclass(frozen=True)
class StatusFrame:
    """One status frame of the stream (fields as listed in the module notes)."""

    intensity_percent: int
    change_intensity: int = 0
    demand_on_stim_ttl: bool = False
    coil_temperature_adc: int = 0
    resistor_temperature_adc: int = 0
    discharge_temperature_adc: int = 0
    omitted_pulse_count: int = 0
    power_overheat: bool = False
    coil_disconnected: bool = False
    voltage_hold_error: bool = False
    voltage_recharge_error: bool = False
    power_fan_seized: bool = False
    coil_overheat: bool = False
    resistor_overheat: bool = False
    discharge_overheat: bool = False
    coil_data_ok: bool = True
    receiving_usb: bool = True
    idle_time: bool = False
    charged: bool = False
    ttl_delay_ms: float = 0.0
    recharge_delay_ms: float = 0.0
    coil_type: int | None = None

    @property
    def error(self) -> bool:
        """Any fault flag set (overheat, disconnected coil, voltage error, fan)."""
        return any((self.power_overheat, self.coil_disconnected, self.voltage_hold_error,
                    self.voltage_recharge_error, self.power_fan_seized, self.coil_overheat,
                    self.resistor_overheat, self.discharge_overheat))

    @property
    def coil_name(self) -> str | None:
        """Coil name for :attr:`coil_type`, if known."""
        return None if self.coil_type is None else COIL_TYPES.get(self.coil_type)

    def to_bytes(self) -> bytes:
        """Encode the data bytes (without the sync byte), as the unit sends them."""
        ttl_steps, ttl_step = encode_delay_ms(self.ttl_delay_ms, "ttl_delay_ms")
        re_steps, re_step = encode_delay_ms(self.recharge_delay_ms, "recharge_delay_ms")
        data = [
            (0x20 if self.demand_on_stim_ttl else 0) | (self.change_intensity & 0x1F),
            self.intensity_percent, self.coil_temperature_adc, self.resistor_temperature_adc,
            self.discharge_temperature_adc, self.omitted_pulse_count,
            _bits(power_overheat=(6, self.power_overheat),
                  coil_disconnected=(5, self.coil_disconnected),
                  hold=(4, self.voltage_hold_error), recharge=(3, self.voltage_recharge_error)),
            _bits(fan=(6, self.power_fan_seized), coil=(4, self.coil_overheat),
                  resistor=(3, self.resistor_overheat), discharge=(2, self.discharge_overheat),
                  data=(1, self.coil_data_ok), usb=(0, self.receiving_usb)),
            _bits(idle=(2, self.idle_time), charged=(0, self.charged)),
            ttl_steps, re_steps,
            (STEP_MS.index(re_step) << 4) | STEP_MS.index(ttl_step),
            0, 0,
        ]
        if self.coil_type is not None:
            data.append(self.coil_type)
        if any(not 0 <= b < SYNC for b in data):
            raise ValueError(f"DuoMAG status bytes must be 0..254, got {data}")
        return bytes(data)


def _bits(**flags: tuple[int, bool]) -> int:
    return sum(1 << bit for bit, on in flags.values() if on)


def parse_status(data: bytes) -> StatusFrame:
    """Parse the data bytes of one status frame (between two sync bytes).

    Raises
    ------
    StimulatorProtocolError
        If the frame is shorter than 13 bytes.
    """
    data = bytes(data)
    if len(data) < FRAME_LENGTHS[0]:
        raise StimulatorProtocolError(
            f"DuoMAG status frame has {len(data)} bytes, expected {FRAME_LENGTHS[0]} or more",
            reply=data)
    change = data[0] & 0x1F
    if change & 0x10:
        change -= 0x20
    return StatusFrame(
        intensity_percent=data[1], change_intensity=change,
        demand_on_stim_ttl=bool(data[0] & 0x20), coil_temperature_adc=data[2],
        resistor_temperature_adc=data[3], discharge_temperature_adc=data[4],
        omitted_pulse_count=data[5],
        power_overheat=bool(data[6] & 0x40), coil_disconnected=bool(data[6] & 0x20),
        voltage_hold_error=bool(data[6] & 0x10), voltage_recharge_error=bool(data[6] & 0x08),
        power_fan_seized=bool(data[7] & 0x40), coil_overheat=bool(data[7] & 0x10),
        resistor_overheat=bool(data[7] & 0x08), discharge_overheat=bool(data[7] & 0x04),
        coil_data_ok=bool(data[7] & 0x02), receiving_usb=bool(data[7] & 0x01),
        idle_time=bool(data[8] & 0x04), charged=bool(data[8] & 0x01),
        ttl_delay_ms=round((data[9] & 0x7F) * STEP_MS[data[11] & 0x07], 4),
        recharge_delay_ms=round((data[10] & 0x7F) * STEP_MS[(data[11] >> 4) & 0x07], 4),
        coil_type=data[14] if len(data) > 14 else None,
    )


class StatusStream:
    """Cut complete status frames out of the byte stream (sync byte ``0xFF``).

    Bytes before the first sync are dropped (a frame whose start was missed); a frame is
    complete when the next sync arrives.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._synced = False

    def clear(self) -> None:
        """Forget buffered bytes (the next frame starts at the next sync)."""
        self._buf.clear()
        self._synced = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the data bytes of every frame completed by them."""
        frames = []
        for byte in data:
            if byte == SYNC:
                if self._synced and self._buf:
                    frames.append(bytes(self._buf))
                self._buf.clear()
                self._synced = True
            elif self._synced:
                self._buf.append(byte)
        return frames
