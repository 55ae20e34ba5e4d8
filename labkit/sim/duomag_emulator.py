"""An emulated Deymed DuoMAG (MP, XT, MP-Dual) speaking the serial protocol.

Reachable as ``emulator.url`` and ``emulator.pty_path`` like every
:class:`~labkit.sim.transport.SerialEmulator`; its RTS/trigger input fires it too.

Behaviour, and the choices made where the public sources are silent:

* Commands are taken only as the sources send them: intensity and fire as two equal
  bytes, delays as ``U U L L``; anything else is dropped and counted in
  :attr:`DuoMAGEmulator.malformed`. Intensities above 100 are ignored.
* The unit streams a 15-byte status frame (with coil type) after a ``0xFF`` sync byte
  every ``status_period_s`` (20 ms here; the real rate is not published) to both
  transports; a transport nobody reads drops frames like a full OS buffer.
* A fire (or trigger edge) discharges when the unit is charged and the intensity is
  above 0; the unit then recharges for the recharge delay plus ``charge_s``. A fire while
  not charged is skipped and counts in the omitted-pulse count (mod 255).
* MP-Dual: one :class:`~labkit.sim.events.Discharge` per paired pulse, output B (the
  second unit) at the same intensity after the TTL-out delay (``ipi_ms``).
* Coil temperature (ADC counts) rises by ``intensity/100`` per pulse and decays.
"""

from __future__ import annotations

import os
import threading
import time

from labkit.errors import ConfigError
from labkit.sim.events import Coil, Discharge
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import duomag_protocol as dp

__all__ = ["DuoMAGEmulator"]

#: Unread bytes after which a transport drops new status frames.
_BACKLOG_BYTES = 4096


class DuoMAGEmulator(SerialEmulator):
    """A DuoMAG that streams its status and delivers discharges to a coil.

    Parameters
    ----------
    model : {"MP", "XT", "MP-Dual"}
        The unit.
    coil : callable | None
        Receives one :class:`~labkit.sim.events.Discharge` per (paired) pulse.
    name : str | None
        Registry name in ``labkitsim://<name>``.
    pty : bool
        Also open a pseudo-terminal (POSIX).
    status_period_s : float
        Interval between status frames, s.
    charge_s : float
        Charging time after the recharge delay, s.
    coil_type : int
        Coil-type code reported (1 = 70BF).

    Attributes
    ----------
    intensity_percent : int
    charged : bool
    omitted_pulse_count : int
    pulses_delivered : int
    ttl_delay_ms, recharge_delay_ms : float
    discharges : list[Discharge]
    received : list[bytes]
        Every command accepted, as sent.
    malformed : int
        Bytes dropped as not forming a command.
    """

    def __init__(self, model: str = "MP", *, coil: Coil | None = None, name: str | None = None,
                 pty: bool = True, status_period_s: float = 0.02, charge_s: float = 0.2,
                 coil_type: int = 1) -> None:
        if model not in dp.MODELS:
            raise ConfigError(f"model must be one of {list(dp.MODELS)}, got {model!r}",
                              field="model")
        self.model = model
        self.device = f"duomag-{model.lower()}"
        self.coil = coil
        self.status_period_s = float(status_period_s)
        self.charge_s = float(charge_s)
        self.coil_type = int(coil_type)
        self.intensity_percent = 0
        self.charged = True
        self.omitted_pulse_count = 0
        self.pulses_delivered = 0
        self.ttl_delay_ms = 0.0
        self.recharge_delay_ms = 0.0
        self.coil_temperature_adc = 40.0
        self.discharges: list[Discharge] = []
        self.received: list[bytes] = []
        self.malformed = 0
        self.coil_errors: list[BaseException] = []
        self._pending = bytearray()
        self._charged_at = 0.0
        self._next_frame_s = 0.0
        self._unit = threading.RLock()
        super().__init__(name, pty=pty, tick_s=min(0.01, self.status_period_s / 2))
        if self._pty_master is not None:
            os.set_blocking(self._pty_master, False)  # an unread pty drops, never blocks

    # ----------------------------------------------------------------- commands
    def handle_bytes(self, data: bytes) -> None:
        """Decode doubled command bytes and delay quartets."""
        with self._unit:
            self._pending.extend(data)
            while len(self._pending) >= 2:
                first = self._pending[0]
                if first < 0x80:
                    if self._pending[1] != first:
                        del self._pending[0]
                        self.malformed += 1
                        continue
                    del self._pending[:2]
                    self._command(first)
                    continue
                if len(self._pending) < 4:
                    return
                quartet = bytes(self._pending[:4])
                parsed = dp.parse_delay_command(quartet)
                if parsed is None:
                    del self._pending[0]
                    self.malformed += 1
                    continue
                del self._pending[:4]
                self.received.append(quartet)
                kind, delay_ms = parsed
                if kind == "ttl":
                    self.ttl_delay_ms = delay_ms
                else:
                    self.recharge_delay_ms = delay_ms

    def _command(self, code: int) -> None:
        if code == dp.FIRE_CODE:
            self.received.append(dp.FIRE)
            self._fire()
        elif code <= 100:
            self.received.append(bytes((code, code)))
            self.intensity_percent = code
        else:
            self.malformed += 2

    def on_trigger(self) -> None:
        """TTL trigger input: fires like the serial command."""
        with self._unit:
            self._fire()

    def _fire(self) -> None:
        now = time.monotonic()
        if not self.charged or self.intensity_percent == 0:
            self.omitted_pulse_count = (self.omitted_pulse_count + 1) % dp.SYNC
            return
        self.charged = False
        self._charged_at = now + self.recharge_delay_ms / 1000 + self.charge_s
        self.pulses_delivered += 1
        self.coil_temperature_adc += self.intensity_percent / 100
        dual = self.model == "MP-Dual"
        event = Discharge(time_s=self.discharge_time_s(),
                          intensity_percent=float(self.intensity_percent),
                          device=self.device,
                          intensity_b_percent=float(self.intensity_percent) if dual else None,
                          ipi_ms=self.ttl_delay_ms if dual else None)
        self.discharges.append(event)
        if self.coil is not None:
            try:
                self.coil(event)
            except Exception as exc:  # a broken subject must not kill the unit
                self.coil_errors.append(exc)

    # ----------------------------------------------------------------- status stream
    def frame(self) -> dp.StatusFrame:
        """The status the unit reports now."""
        with self._unit:
            return dp.StatusFrame(
                intensity_percent=self.intensity_percent,
                coil_temperature_adc=min(254, round(self.coil_temperature_adc)),
                resistor_temperature_adc=40, discharge_temperature_adc=40,
                omitted_pulse_count=self.omitted_pulse_count, charged=self.charged,
                ttl_delay_ms=self.ttl_delay_ms, recharge_delay_ms=self.recharge_delay_ms,
                coil_type=self.coil_type)

    def tick(self) -> None:
        """Finish charging, cool the coil, and send a status frame when due."""
        now = time.monotonic()
        with self._unit:
            if not self.charged and now >= self._charged_at:
                self.charged = True
            self.coil_temperature_adc = 40 + (self.coil_temperature_adc - 40) * 0.9999
        if now < self._next_frame_s or self.silent:
            return
        self._next_frame_s = now + self.status_period_s
        data = bytes((dp.SYNC,)) + self.frame().to_bytes()
        if len(self._to_url_host) < _BACKLOG_BYTES:
            self._to_url_host.write(data)
        if self._pty_master is not None:
            with self._pty_lock:
                try:
                    os.write(self._pty_master, data)
                except OSError:
                    pass  # nobody reads the pty: the frame is dropped
