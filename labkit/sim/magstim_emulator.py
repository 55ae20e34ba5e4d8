"""An emulated Magstim 200², BiStim² or Rapid² that speaks the serial protocol byte for byte.

The emulator parses the host's byte stream by command character and known length,
checks each CRC, and answers like the real unit, including the ``?`` (unknown command),
``<cmd>?`` (invalid data) and ``<cmd>S`` (conflicts with the current settings) replies.
Timing behaviour that drivers must cope with is modelled:

* remote control lapses ``keepalive_timeout_s`` after the last valid command, and the
  unit disarms; commands already waiting at its input when the emulator judges the lapse
  are handled first (the emulator itself ran late on a loaded host: the gap is the
  simulator's, not the host's);
* after ``EB`` the unit is armed but becomes *ready* only ``arm_delay_s`` later;
* armed and not fired for ``auto_disarm_s`` → it disarms;
* the coil warms with every pulse (∝ intensity²) and cools exponentially; above 40 °C
  it refuses to arm;
* it fires only when armed, ready and under remote control (a Rapid² is not *ready*
  during the rest period after a train); each discharge is handed to
  ``coil`` as a :class:`~labkit.sim.events.Discharge` stamped with ``local_clock()``;
  Rapid² trains emit one discharge per pulse from a timer thread.

Fault injection for tests: :attr:`silent` (pulled cable), :meth:`set_garbage` and
:meth:`corrupt_crc` (corrupted replies).
"""

from __future__ import annotations

import math
import random
import threading
import time

from labkit.sim.events import Coil, Discharge
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import magstim_protocol as mp

__all__ = ["MagstimEmulator"]

MODELS = ("200", "bistim", "rapid")
_DEVICE_NAMES = {"200": "magstim-200", "bistim": "magstim-bistim", "rapid": "magstim-rapid2"}
#: Commands every model understands.
_COMMON = set("QREJFNI@")
_MODEL_COMMANDS = {
    "200": _COMMON,
    "bistim": _COMMON | set("ACYZ"),
    "rapid": (_COMMON - {"J"}) | set("\\BD[x^_b"),
}
#: Commands answered even without remote control (queries).
_QUERIES = set("QJ\\FNIx")
#: Commands whose only valid data character is fixed.
_FIXED_ARGUMENTS = {c: b"@" for c in "RJ\\FIxYZ^_b"} | {"N": b"D"}
#: Seconds after which a half-received command is dropped.
_PARTIAL_TIMEOUT_S = 0.5
#: Coil temperature above which the unit refuses to arm, °C.
COIL_LIMIT_C = 40.0


class MagstimEmulator(SerialEmulator):
    """A simulated Magstim unit reachable through :attr:`url` and :attr:`pty_path`.

    Parameters
    ----------
    model : {"200", "bistim", "rapid"}
        Which unit to emulate.
    coil : callable | None
        Receives one :class:`~labkit.sim.events.Discharge` per pulse.
    name : str | None
        Registry name (the URL is ``labkitsim://<name>``).
    pty : bool
        Also expose a pseudo-terminal (POSIX).
    software_version : tuple of int
        Reported by ``ND``; for a Rapid it sets the field widths and ``x@`` support.
    keepalive_timeout_s : float
        Remote control lapses after this long without a valid command.
    arm_delay_s : float
        Armed → ready delay.
    auto_disarm_s : float
        Armed and idle this long → disarm.
    seed : int
        Seeds the fault-injection garbage.
    unlock_code : str | None
        When set (newer Rapids), remote control needs ``Q`` + this code; ``Q@`` is refused.
    recharge_s : float
        Not ready for this long after a single pulse.
    discharge_delay_ms : float
        The unit's command → discharge time, ms (see
        :meth:`~labkit.sim.transport.SerialEmulator.set_discharge_delay_ms`).
    ambient_c : float
        Coil temperature at rest, °C.
    rapid_variant : {"rapid2", "super_rapid2", "super_rapid2_plus"}
        Rapid frequency-ceiling table.
    voltage : {240, 115}
        Mains voltage of that table.
    """

    def __init__(self, model: str = "200", *, coil: Coil | None = None, name: str | None = None,
                 pty: bool = True, software_version: tuple[int, int, int] = (9, 0, 0),
                 keepalive_timeout_s: float = 1.0, arm_delay_s: float = 1.0,
                 auto_disarm_s: float = 60.0, seed: int = 0, unlock_code: str | None = None,
                 recharge_s: float = 0.05, discharge_delay_ms: float = 0.0,
                 ambient_c: float = 25.0,
                 rapid_variant: str = "rapid2", voltage: int = 240) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        mp.max_frequency_hz(0, rapid_variant, voltage)  # checks both names
        #: Rapid² frequency-ceiling table in use (variant and mains voltage).
        self.rapid_variant, self.voltage = rapid_variant, voltage
        #: Trigger-input edges that found the unit not ready (no discharge).
        self.ignored_triggers = 0
        self.model = model
        self.device = _DEVICE_NAMES[model]
        self.coil = coil
        self.software_version = tuple(software_version)
        self.keepalive_timeout_s = float(keepalive_timeout_s)
        self.arm_delay_s = float(arm_delay_s)
        self.auto_disarm_s = float(auto_disarm_s)
        self.unlock_code = unlock_code
        self.recharge_s = float(recharge_s)
        self.set_discharge_delay_ms(discharge_delay_ms)
        self.ambient_c = float(ambient_c)
        #: Warming per pulse at 100 % MSO, °C (scales with intensity²).
        self.heat_per_pulse_c = 0.05
        #: Cooling time constant, s.
        self.cooling_tau_s = 300.0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._buffer = bytearray()
        self._buffer_since = 0.0
        self._last_valid = -math.inf
        self._armed_at = 0.0
        self._last_fire = 0.0
        self._not_ready_until = 0.0
        self._garbage: list[int] = []  # pending corrupted replies: n bytes, or -1 = bad CRC
        self._train_thread: threading.Thread | None = None
        self._train_stop = threading.Event()
        self._last_tick = time.monotonic()
        #: Valid commands received, as full frames (including the CRC).
        self.received: list[bytes] = []
        self.remote_control = False
        self.armed = False
        self.ready = False
        self.intensity_percent = 30
        self.intensity_b_percent = 30
        self._ipi_raw = 10
        self.high_resolution = False
        self.frequency_tenths = 10
        self.n_pulses = 0
        self.duration_tenths = 0
        self.enhanced_power = False
        self.train_running = False
        self.error_code = "000"
        self.pulses_delivered = 0
        self.coil_temperature_c = self.ambient_c
        super().__init__(name, pty=pty)

    # ------------------------------------------------------------------ observable state
    @property
    def ipi_ms(self) -> float:
        """BiStim inter-pulse interval, ms."""
        return self._ipi_raw / 10 if self.high_resolution else float(self._ipi_raw)

    @property
    def frequency_hz(self) -> float:
        """Rapid train frequency, Hz."""
        return self.frequency_tenths / 10

    @property
    def repetitive(self) -> bool:
        """Rapid: a train is configured (duration and frequency above zero)."""
        return self.model == "rapid" and self.duration_tenths > 0 and self.frequency_tenths > 0

    def status_byte(self) -> int:
        """Current instrument-status byte."""
        return mp.status_to_byte(
            standby=not self.armed, armed=self.armed, ready=self.ready, coil_present=True,
            remote_control=self.remote_control,
        )

    def rapid_status_byte(self) -> int:
        """Current Rapid-status byte."""
        waiting = time.monotonic() < self._not_ready_until and self.repetitive
        return mp.rapid_status_to_byte(
            enhanced_power=self.enhanced_power, train=self.train_running, wait=waiting,
            single_pulse=not self.repetitive, hvpsu_connected=True, coil_ready=self.ready,
        )

    # ------------------------------------------------------------------ fault injection
    def set_garbage(self, nbytes: int, replies: int = 1) -> None:
        """Replace the next ``replies`` replies by ``nbytes`` seeded random bytes.

        The garbage never starts with ``?`` so that it cannot pass for a refusal.
        ``nbytes=0`` sends nothing at all for those replies (a lost reply).
        """
        with self._lock:
            self._garbage.extend([int(nbytes)] * int(replies))

    def corrupt_crc(self, replies: int = 1) -> None:
        """Send the next ``replies`` replies with a wrong CRC byte."""
        with self._lock:
            self._garbage.extend([-1] * int(replies))

    def _send(self, message: bytes) -> None:
        if self._garbage:
            mode = self._garbage.pop(0)
            if mode == -1:
                message = message[:-1] + bytes([(message[-1] + 1) & 0xFF])
            else:
                junk = bytearray(self._rng.randrange(256) for _ in range(mode))
                if junk and junk[0] == ord("?"):
                    junk[0] = 0
                message = bytes(junk)
        self.reply(message)

    # ------------------------------------------------------------------ parsing
    def _command_length(self, buf: bytearray) -> int | None:
        """Frame length of the command at the start of ``buf``; None when unknown."""
        char = chr(buf[0])
        if char not in _MODEL_COMMANDS[self.model]:
            return None
        version = self.software_version
        if char == "Q":
            if len(buf) < 2:
                return 3
            if buf[1] == ord("@") or not self.unlock_code:
                return 3
            return 2 + len(self.unlock_code)
        if char in "@AC":
            return 5
        if char == "B":
            return 6
        if char == "D":
            return 2 + mp.pulses_digits(version)
        if char == "[":
            return 2 + mp.duration_digits(version)
        if char == "x" and version < mp.RAPID_V9:
            return None
        return 3

    def handle_bytes(self, data: bytes) -> None:
        """Split the host's bytes into commands and answer each one."""
        with self._lock:
            if not self._buffer:
                self._buffer_since = time.monotonic()
            self._buffer.extend(data)
            while self._buffer:
                length = self._command_length(self._buffer)
                if length is None:
                    self._buffer.clear()
                    self._send(b"?")
                    return
                if len(self._buffer) < length:
                    return
                message = bytes(self._buffer[:length])
                del self._buffer[:length]
                self._buffer_since = time.monotonic()
                if not mp.crc_ok(message):
                    self._buffer.clear()
                    self._send(b"?")
                    return
                self._last_valid = time.monotonic()
                self.received.append(message)
                self._dispatch(message)

    # ------------------------------------------------------------------ replies
    def _ack(self, char: str, data: bytes = b"", *, rapid: bool = False) -> None:
        body = char.encode("latin-1") + bytes([self.status_byte()])
        if rapid:
            body += bytes([self.rapid_status_byte()])
        self._send(mp.frame(body + data))

    def _refuse(self, char: str, kind: str) -> None:
        self._send(mp.frame(char.encode("latin-1") + kind.encode("ascii")))

    @staticmethod
    def _digits(field: bytes) -> int | None:
        if field and all(0x30 <= b <= 0x39 for b in field):
            return int(field)
        return None

    def _dispatch(self, message: bytes) -> None:
        char = chr(message[0])
        body = message[1:-1]
        now = time.monotonic()
        self._update_readiness(now)  # as the unit is now, however late tick() runs
        rapid = self.model == "rapid"
        if char == "Q":
            self._remote_on(body)
            return
        fixed = _FIXED_ARGUMENTS.get(char)
        if fixed is not None and body != fixed:
            self._refuse(char, "?")
            return
        if not self.remote_control and char not in _QUERIES and message[:2] != b"EA":
            self._refuse(char, "S")
            return
        if char == "R":
            self._disarm()
            self.remote_control = False
            self._ack("R")
        elif char == "E":
            self._energy(body, now)
        elif char in "@A":
            value = self._digits(body)
            ceiling = 110 if (rapid and self.enhanced_power) else 100
            if value is None or value > ceiling:
                self._refuse(char, "?")
                return
            if char == "@":
                self.intensity_percent = value
            else:
                self.intensity_b_percent = value
            self._ack(char)
        elif char == "C":
            value = self._digits(body)
            if value is None:
                self._refuse(char, "?")
                return
            self._ipi_raw = value
            self._ack(char)
        elif char in "YZ":
            if self.armed:
                self._refuse(char, "S")
                return
            if char == "Z" and self.high_resolution:
                self._ipi_raw = 10
            self.high_resolution = char == "Y"
            self._ack(char)
        elif char == "J":
            data = (f"{self.intensity_percent:03d}{self.intensity_b_percent:03d}"
                    f"{self._ipi_raw:03d}" if self.model == "bistim"
                    else f"{self.intensity_percent:03d}000000")
            self._ack("J", data.encode("ascii"))
        elif char == "\\":
            self._ack("\\", self._rapid_parameters(), rapid=True)
        elif char == "F":
            tenths = min(999, max(0, round(self.coil_temperature_c * 10)))
            self._ack("F", f"{tenths:03d}{tenths:03d}".encode("ascii"))
        elif char == "N":
            text = ".".join(str(v) for v in self.software_version).encode("ascii")
            self._ack("N", text + b"\x00")
        elif char == "I":
            self._ack("I", self.error_code.encode("ascii")[:3].ljust(3, b"0"))
        elif char == "x":
            self._ack("x", b"\x00\x00", rapid=True)
        elif char in "BD[":
            self._train_setting(char, body)
        elif char in "^_":
            if char == "^" and self.repetitive:
                self._refuse(char, "S")  # enhanced power is for single pulses only
                return
            self.enhanced_power = char == "^"
            if not self.enhanced_power:
                self.intensity_percent = min(self.intensity_percent, 100)
            self._ack(char, rapid=True)
        elif char == "b":  # ignore the coil safety switch: instrument status only (MagPy)
            self._ack(char)
        else:  # pragma: no cover - _command_length filters unknown characters
            self._send(b"?")

    def _remote_on(self, body: bytes) -> None:
        if self.unlock_code:
            if body.decode("latin-1") != self.unlock_code:
                self._refuse("Q", "?")
                return
        elif body != b"@":
            self._refuse("Q", "?")
            return
        self.remote_control = True
        self._ack("Q")

    def _rapid_parameters(self) -> bytes:
        version = self.software_version
        wait_width = 3 if version < mp.RAPID_V7 else 4
        wait_tenths = 0
        if self.n_pulses and self.frequency_tenths:
            wait_tenths = round(10 * mp.min_wait_s(
                min(self.intensity_percent, 100), self.n_pulses, self.frequency_hz))
        return (f"{self.intensity_percent:03d}{self.frequency_tenths:04d}"
                f"{self.n_pulses:0{mp.pulses_digits(version)}d}"
                f"{self.duration_tenths:0{mp.duration_digits(version)}d}"
                f"{min(wait_tenths, 10 ** wait_width - 1):0{wait_width}d}").encode("ascii")

    def _train_setting(self, char: str, body: bytes) -> None:
        value = self._digits(body)
        if value is None or self.train_running or self.enhanced_power:
            self._refuse(char, "?" if value is None else "S")
            return
        if char == "B":
            ceiling = mp.max_frequency_hz(min(self.intensity_percent, 100), self.rapid_variant,
                                          self.voltage)
            if value > 1000 or value / 10 > ceiling:
                self._refuse(char, "?")
                return
            self.frequency_tenths = value
        elif char == "D":
            if value > mp.max_pulses(self.software_version):
                self._refuse(char, "?")
                return
            self.n_pulses = value
        else:
            self.duration_tenths = value
        self._ack(char, rapid=True)

    # ------------------------------------------------------------------ arming and firing
    def _energy(self, body: bytes, now: float) -> None:
        if body == b"B":
            if self.armed or self.coil_temperature_c > COIL_LIMIT_C:
                self._refuse("E", "S")
                return
            self.armed, self.ready = True, False
            self._armed_at = now
            self._ack("E")
        elif body == b"A":
            self._disarm()
            self._ack("E")
        elif body == b"H":
            if not (self.armed and self.ready) or self.train_running or (
                    now < self._not_ready_until):
                self._refuse("E", "S")
                return
            if self.repetitive:
                on_time = self.n_pulses / self.frequency_hz
                if self.n_pulses == 0 or on_time > mp.max_on_time_s(
                        min(self.intensity_percent, 100), self.frequency_hz):
                    self._refuse("E", "S")
                    return
                self._ack("E")
                self._start_train()
            else:
                self._discharge_now()
                self._not_ready_until = now + self.recharge_s
                self.ready = self.recharge_s <= 0
                self._ack("E")
        else:
            self._refuse("E", "?")

    def on_trigger(self) -> None:
        """TTL trigger input (RTS of the URL port): a single pulse when armed and ready."""
        with self._lock:
            now = time.monotonic()
            self._update_readiness(now)  # as the unit is now, however late tick() runs
            if (not (self.armed and self.ready) or self.train_running or self.repetitive
                    or now < self._not_ready_until):
                self.ignored_triggers += 1
                return
            self._discharge_now()
            self._not_ready_until = now + self.recharge_s
            self.ready = self.recharge_s <= 0

    def _update_readiness(self, now: float) -> None:
        """An armed unit is ready once the arm delay and the recharge are over (lock held)."""
        if (self.armed and not self.ready and not self.train_running
                and now - self._armed_at >= self.arm_delay_s and now >= self._not_ready_until):
            self.ready = True

    def _disarm(self) -> None:
        self.armed = self.ready = False
        self._train_stop.set()

    def _discharge_now(self, time_s: float | None = None) -> Discharge:
        """Record one pulse and hand it to the coil (lock held).

        ``time_s`` is the discharge's ``local_clock()`` time when the unit's own timing
        fixes it (a pulse of a hardware-timed train); by default the command's.
        """
        self._last_fire = time.monotonic()
        self.pulses_delivered += 1
        self.coil_temperature_c += self.heat_per_pulse_c * (self.intensity_percent / 100) ** 2
        bistim = self.model == "bistim"
        discharge = Discharge(
            time_s=self.discharge_time_s() if time_s is None else time_s,
            intensity_percent=float(self.intensity_percent),
            device=self.device,
            intensity_b_percent=float(self.intensity_b_percent) if bistim else None,
            ipi_ms=self.ipi_ms if bistim else None,
        )
        if self.coil is not None:
            self.coil(discharge)
        return discharge

    def _start_train(self) -> None:
        self._train_stop = threading.Event()
        self.train_running = True
        thread = threading.Thread(
            target=self._run_train,
            args=(self._train_stop, self.n_pulses, self.frequency_hz, self.discharge_time_s()),
            name=f"{self.name}-train", daemon=True)
        self._train_thread = thread
        thread.start()

    def _run_train(self, stop: threading.Event, n_pulses: int, frequency_hz: float,
                   first_s: float) -> None:
        """Deliver a hardware-timed train: pulse ``i`` is stamped ``first_s + i / f``.

        The unit times its train itself, so a discharge happens on its schedule even when
        this thread runs late on a loaded host (the stamp does not follow the thread).
        """
        start = time.monotonic()
        try:
            for i in range(n_pulses):
                self._device_due_s = first_s + i / frequency_hz
                delay = start + i / frequency_hz - time.monotonic()
                if delay > 0 and (stop.wait(delay) or self._stop.is_set()):
                    return
                with self._lock:
                    if stop.is_set() or not (self.armed and self.remote_control):
                        return
                    self._discharge_now(first_s + i / frequency_hz)
        finally:
            if self._train_thread is threading.current_thread():  # not a newer train's
                self._device_due_s = None
            with self._lock:
                self.train_running = False
                self._not_ready_until = time.monotonic() + mp.min_wait_s(
                    min(self.intensity_percent, 100), n_pulses, frequency_hz)
                if time.monotonic() < self._not_ready_until:
                    self.ready = False  # resting: EH is refused until the rest is over

    # ------------------------------------------------------------------ time
    def tick(self) -> None:
        """Keep-alive timeout, arm delay, recharge, auto-disarm and coil cooling."""
        now = time.monotonic()
        with self._lock:
            dt = now - self._last_tick
            self._last_tick = now
            excess = self.coil_temperature_c - self.ambient_c
            self.coil_temperature_c = self.ambient_c + excess * math.exp(-dt / self.cooling_tau_s)
            if self._buffer and now - self._buffer_since > _PARTIAL_TIMEOUT_S:
                self._buffer.clear()
            if (self.remote_control and now - self._last_valid > self.keepalive_timeout_s
                    and not self.input_waiting()):
                self.remote_control = False
                self._disarm()
            if not self.armed:
                return
            self._update_readiness(now)
            idle_since = max(self._armed_at, self._last_fire)
            if not self.train_running and now - idle_since > self.auto_disarm_s:
                self._disarm()

    def stop(self) -> None:
        """Stop any train, then the transports."""
        self._train_stop.set()
        super().stop()

    close = stop
