"""Driver for Deymed DuoMAG stimulators (MP, XT, MP-Dual) over their serial port.

The wire format is in :mod:`labkit.stimulators.duomag_protocol`. A DuoMAG answers no
command: it streams status frames, and the driver reads its acknowledgements from them:

* intensity — a frame reporting the intensity sent;
* fire — a frame that *started after* the fire bytes were written: its omitted-pulse
  count must not have risen (it rises when the unit skips a trigger, e.g. while
  recharging); no frame at all latches a fault and sends intensity 0;
* link — a silent stream latches a fault within a second (the keep-alive reads a fresh
  frame every 0.5 s when idle).

The public protocol has no enable/disable command. So :meth:`DuoMAG.arm` checks the unit
is charged and error-free and arms the *driver* (it refuses to fire otherwise), and
:meth:`DuoMAG.disarm` sets the intensity to 0 % so that any stray trigger (TTL input,
front panel) delivers nothing; :meth:`DuoMAG.arm` restores the intensity set last.

MP-Dual: two units, the second triggered by the first's TTL output after the TTL-out
delay; :meth:`DuoMAG.set_ipi` sets that delay (the paired-pulse interval) and markers
carry it. The XT's repetitive trains have no public serial commands: here an XT fires
host-timed single pulses like an MP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import serial

from labkit.clock import local_clock
from labkit.errors import (
    ConfigError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.stimulators import duomag_protocol as dp
from labkit.stimulators.base import FLUSH_ERRORS, PulseListener, Stimulator, StimulatorStatus

__all__ = ["DuoMAG", "DuoMAGStatus"]


@dataclass(frozen=True)
class DuoMAGStatus(StimulatorStatus):
    """Status of a DuoMAG: the driver's armed state plus the last status frame.

    ``armed`` is the driver's software arm (the unit has no remote enable); ``ready`` is
    armed and charged; ``remote_control`` mirrors the unit's "receiving USB" flag;
    ``error`` is any fault flag of the frame.

    Attributes
    ----------
    frame : StatusFrame
        Every field the unit reported.
    """

    frame: dp.StatusFrame


class DuoMAG(Stimulator):
    """Deymed DuoMAG MP / XT / MP-Dual (1 Mbaud, 8N2).

    Parameters
    ----------
    port : str
        Device path or pyserial URL.
    model : {"MP", "XT", "MP-Dual"}
        The unit (MP-Dual enables :meth:`set_ipi`).
    timeout_s : float
        How long to wait for a status frame, s.
    keepalive : bool
        Read a fresh status frame every ~0.5 s when idle (notices a pulled cable).
    markers : callable | None
        Receives a :class:`~labkit.markers.PulseEvent` per delivered pulse.
    arm_timeout_s : float
        How long :meth:`arm` and :meth:`fire` wait for the unit to be charged, s.
    """

    baudrate: ClassVar[int] = dp.BAUDRATE
    stopbits: ClassVar[float] = serial.STOPBITS_TWO
    #: The unit has no remote enable: a silent DuoMAG is a port, cable or power matter.
    silence_causes: ClassVar[tuple[str, ...]] = Stimulator.silence_causes[:3]

    def __init__(self, port: str, *, model: str = "MP", timeout_s: float = 0.5,
                 keepalive: bool = True, markers: PulseListener | None = None,
                 arm_timeout_s: float = 3.0) -> None:
        if model not in dp.MODELS:
            raise ConfigError(f"model must be one of {list(dp.MODELS)}, got {model!r}",
                              field="model")
        super().__init__(port, timeout_s=timeout_s, keepalive=keepalive, markers=markers)
        self.model = model
        self.arm_timeout_s = float(arm_timeout_s)
        self._stream = dp.StatusStream()
        self._armed = False
        self._intensity_percent = 0
        #: Last status frame read.
        self.last_frame: dp.StatusFrame | None = None
        self._last_raw = b""
        self._trigger_before: dp.StatusFrame | None = None

    # ------------------------------------------------------------------ public API
    @property
    def armed(self) -> bool:
        """The driver is armed (it fires on :meth:`fire`)."""
        return self._armed

    def arm(self) -> None:
        """Arm the driver once the unit is charged and reports no fault; restore intensity.

        Raises
        ------
        StimulatorError
            If the unit reports a fault (named) or is not charged within
            ``arm_timeout_s``.
        """
        with self._lock:
            frame = self._fresh_frame("arm")
            if frame.intensity_percent != self._intensity_percent:
                self._set_and_confirm(self._intensity_percent)
            frame = self._wait_charged("arm")
            self._check_faults(frame)
            self._armed = True

    def disarm(self) -> None:
        """Disarm the driver and set the unit's intensity to 0 % (no remote disable)."""
        with self._lock:
            self._armed = False
            self._write(dp.intensity_command(0))

    def set_intensity(self, percent: int) -> None:
        """Set the intensity (whole % MSO, 0–100) and wait for the unit to report it.

        While disarmed the value is remembered and sent by :meth:`arm`.
        """
        command = dp.intensity_command(percent)
        self._check_intensity_allowed(command[0])
        with self._lock:
            self._intensity_percent = command[0]
            if self._armed:
                self._set_and_confirm(command[0])

    def set_ipi(self, ms: float) -> None:
        """MP-Dual: delay of the second unit's pulse (TTL-out delay), ms.

        Raises
        ------
        ConfigError
            On a single unit, or for a delay the encoding cannot express exactly.
        """
        if self.model != "MP-Dual":
            raise ConfigError(f"set_ipi needs model 'MP-Dual', this is {self.model!r}",
                              field="model")
        self._set_delay("ttl", ms, "ipi_ms")

    def set_ttl_delay(self, ms: float) -> None:
        """Delay of the TTL output after the pulse, ms (0.05 ms steps up to 6.35 ms, ...)."""
        self._set_delay("ttl", ms, "ttl_delay_ms")

    def set_recharge_delay(self, ms: float) -> None:
        """Delay before the unit recharges after a pulse, ms."""
        self._set_delay("recharge", ms, "recharge_delay_ms")

    def status(self) -> DuoMAGStatus:
        """Read a fresh status frame."""
        with self._lock:
            frame = self._fresh_frame("status")
        return DuoMAGStatus(armed=self._armed, ready=self._armed and frame.charged,
                            remote_control=frame.receiving_usb, error=frame.error,
                            raw=self._last_raw, frame=frame)

    # ------------------------------------------------------------------ vendor hooks
    def _on_connect(self) -> None:
        self._armed = False
        self._stream.clear()
        frame = self._fresh_frame("connect")
        self._intensity_percent = frame.intensity_percent

    def _on_close(self) -> None:
        if self._serial is not None and self.fault is None:
            self.disarm()

    def _keepalive(self) -> None:
        self._fresh_frame("keep-alive")

    def _fire(self) -> float:
        frame = self._ready_frame()
        sent_s = self._write(dp.FIRE)
        self._confirm_pulse(frame, "fire")
        return sent_s

    def _check_trigger_ready(self) -> None:
        self._trigger_before = self._ready_frame()

    def _confirm_trigger(self, time_s: float) -> None:
        self._confirm_pulse(self._trigger_before, "TTL trigger")

    def _safe_state_command(self) -> bytes:
        return dp.intensity_command(0)

    def _current_intensity(self) -> float:
        return float(self._intensity_percent)

    def _pulse_extra(self) -> dict:
        if self.model == "MP-Dual" and self.last_frame is not None:
            return {"ipi_ms": self.last_frame.ttl_delay_ms}
        return {}

    # ------------------------------------------------------------------ I/O
    def _ready_frame(self) -> dp.StatusFrame:
        if not self._armed:
            raise StimulatorError("DuoMAG is not armed: call arm() before firing")
        frame = self.last_frame
        if frame is None or not frame.charged:
            frame = self._wait_charged("fire")
        self._check_faults(frame)
        return frame

    def _confirm_pulse(self, before: dp.StatusFrame, what: str) -> None:
        try:
            after = self._fresh_frame(what)
        except StimulatorTimeoutError as exc:
            exc.add_note("No status after the trigger: the pulse may have been delivered. "
                         "The driver sent intensity 0 and refuses further commands until "
                         "close() and connect().")
            self._armed = False
            self._latch(exc)
            raise
        if (after.omitted_pulse_count - before.omitted_pulse_count) % 256:
            raise StimulatorError(f"DuoMAG omitted the pulse ({what}): omitted-pulse count "
                                  f"{before.omitted_pulse_count} -> "
                                  f"{after.omitted_pulse_count}; no marker published")

    def _check_faults(self, frame: dp.StatusFrame) -> None:
        if frame.error:
            flags = [name for name in ("power_overheat", "coil_disconnected",
                                       "voltage_hold_error", "voltage_recharge_error",
                                       "power_fan_seized", "coil_overheat",
                                       "resistor_overheat", "discharge_overheat")
                     if getattr(frame, name)]
            raise StimulatorError(f"DuoMAG reports {', '.join(flags)}")

    def _wait_charged(self, what: str) -> dp.StatusFrame:
        deadline = local_clock() + self.arm_timeout_s
        while True:
            frame = self._fresh_frame(what)
            if frame.charged:
                return frame
            if local_clock() >= deadline:
                raise StimulatorTimeoutError(self._with_link_hint(
                    f"DuoMAG on {self.port!r} not charged within {self.arm_timeout_s:.1f} s "
                    f"({what})"))

    def _set_and_confirm(self, percent: int) -> None:
        self._write(dp.intensity_command(percent))
        deadline = local_clock() + self.timeout_s
        while True:
            frame = self._fresh_frame("intensity")
            if frame.intensity_percent == percent:
                return
            if local_clock() >= deadline:
                raise StimulatorProtocolError(
                    f"DuoMAG reports intensity {frame.intensity_percent} % after setting "
                    f"{percent} %", command=dp.intensity_command(percent))

    def _set_delay(self, kind: str, ms: float, name: str) -> None:
        steps, step = dp.encode_delay_ms(ms, name)
        command = dp.delay_command(kind, steps, step)
        with self._lock:
            self._write(command)
            deadline = local_clock() + self.timeout_s
            while True:
                frame = self._fresh_frame(name)
                got = frame.ttl_delay_ms if kind == "ttl" else frame.recharge_delay_ms
                if abs(got - steps * step) < 1e-6:
                    return
                if local_clock() >= deadline:
                    raise StimulatorProtocolError(
                        f"DuoMAG reports {name} {got} ms after setting {steps * step:g} ms",
                        command=command)

    def _fresh_frame(self, what: str) -> dp.StatusFrame:
        """A status frame that started after this call (older bytes are dropped)."""
        port = self._port()
        try:
            port.reset_input_buffer()
        except FLUSH_ERRORS:
            pass
        self._stream.clear()
        deadline = local_clock() + self.timeout_s
        while True:
            remaining = deadline - local_clock()
            if remaining <= 0:
                raise StimulatorTimeoutError(
                    self.silence_message(f"({what})", verb="sent no status frame"))
            try:
                port.timeout = min(remaining, 0.05)
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._latch(StimulatorError(self._with_link_hint(
                    f"reading from {self.port!r} failed: {exc}")))
                raise self.fault from exc
            for raw in self._stream.feed(data):
                try:
                    frame = dp.parse_status(raw)
                except StimulatorProtocolError:
                    continue  # a frame cut by the buffer reset
                self.last_frame, self._last_raw = frame, raw
                return frame
