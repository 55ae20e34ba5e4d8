"""Driver for MagVenture MagPro stimulators (R30, X100 and their options).

The wire format lives in :mod:`labkit.stimulators.magpro_protocol`; this module owns the
port (through :class:`~labkit.stimulators.base.Stimulator`), waits for the right reply
among the messages the unit sends on its own, keeps a cache of what the unit last
reported (enabled, amplitudes, page, di/dt), and publishes pulse markers.

Acknowledgements the driver waits for (unit-to-host message ids, see the protocol module):

=====================  ==============================================================
command                reply awaited
=====================  ==============================================================
0x00 status            0x00 status (13-byte frame)
0x01 amplitude         0x01 amplitude (checked: the unit must report the value sent)
0x02 enable/disable    0x01 amplitude, whose info byte must show the new state
0x03 single pulse      0x02 di/dt (the discharge happened); a 0x01 reply means the unit
                       did not fire (disabled)
0x04 start train       0x08 page/train status, which must report the train running
0x05 status 2          0x05 status 2 (19-byte frame)
0x06 train parameters  0x0B timing menu (checked against what was sent)
0x07 page              0x08 page/train status (checked)
0x09 mode block        0x09 mode block
=====================  ==============================================================

The MagPro needs no keep-alive to keep remote control; the base class still sends a
status request every ~0.5 s when idle, so a pulled cable latches a
:class:`~labkit.errors.StimulatorTimeoutError` within about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import serial

from labkit.clock import local_clock
from labkit.errors import (
    ConfigError,
    CRCError,
    InvalidDataError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.markers import PulseEvent
from labkit.stimulators import magpro_protocol as proto
from labkit.stimulators.base import PulseListener, Stimulator, StimulatorStatus

__all__ = ["MagPro", "MagProStatus"]


@dataclass(frozen=True)
class MagProStatus(StimulatorStatus):
    """Status of a MagPro, parsed from the 13-byte status reply (message 0x00).

    ``armed`` and ``ready`` both mirror ``enabled`` (the MagPro reports no separate
    charge state); ``remote_control`` is always True (the serial port always controls
    the unit); ``error`` is False (the status reply carries no error flag).

    Attributes
    ----------
    model : str
        ``"R30"``, ``"X100"``, ``"R30+Option"``, ``"X100+Option"``, ...
    mode : str
        ``"standard"``, ``"power"``, ``"twin"`` or ``"dual"``.
    waveform : str
        ``"monophasic"``, ``"biphasic"``, ``"halfsine"`` or ``"biphasic_burst"``.
    enabled : bool
        The unit is enabled (will fire on command).
    serial_number : int
        The unit's serial number.
    coil_temperature_c : int
        Coil temperature, °C.
    coil_type : int
        Coil type code (e.g. 60 = Cool-B65).
    amplitude_a_percent, amplitude_b_percent : int
        Output amplitudes, % of maximum output.
    didt_a, didt_b : int | None
        di/dt of the last discharge (A/µs) as last reported by the unit, or None.
    """

    model: str
    mode: str
    waveform: str
    enabled: bool
    serial_number: int
    coil_temperature_c: int
    coil_type: int
    amplitude_a_percent: int
    amplitude_b_percent: int
    didt_a: int | None = None
    didt_b: int | None = None


class MagPro(Stimulator):
    """MagVenture MagPro R30 / X100 over its serial port (38400 baud 8N1).

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB0``, ``COM3``, a pty) or a pyserial URL.
    model : str
        Expected model, used for the train limits until the unit reports its own model
        on :meth:`connect` (the reported model then wins).
    timeout_s : float
        Reply timeout per command, s.
    keepalive : bool
        Poll the status every ~0.5 s when idle so that a dead link is noticed.
    markers : callable | None
        Receives a :class:`~labkit.markers.PulseEvent` per delivered pulse.

    Examples
    --------
    >>> with MagPro("/dev/ttyUSB0") as stim:      # doctest: +SKIP
    ...     stim.set_intensity(60)
    ...     stim.arm()
    ...     stim.fire()
    """

    baudrate: ClassVar[int] = 38400
    keepalive_interval_s: ClassVar[float] = 0.5

    def __init__(
        self,
        port: str,
        *,
        model: str = "X100",
        timeout_s: float = 0.5,
        keepalive: bool = True,
        markers: PulseListener | None = None,
    ) -> None:
        if model not in proto.MODELS:
            raise ConfigError(f"model must be one of {list(proto.MODELS)}, got {model!r}",
                              field="model")
        super().__init__(port, timeout_s=timeout_s, keepalive=keepalive, markers=markers)
        self.model = model
        self._extractor = proto.FrameExtractor()
        self._info: proto.UnitInfo | None = None
        self._amplitude_a = 0
        self._amplitude_b = 0
        self._didt: tuple[int, int] | None = None
        self._page: str | None = None
        #: Train parameters last accepted by the unit through :meth:`set_train`.
        self.train_settings: proto.TrainSettings | None = None
        self._train_start_s: float | None = None
        self._train_pulses_seen = 0
        #: Malformed or unparsable frames skipped on the line (counted, then ignored).
        self.unsolicited_errors = 0
        self._last_reply_frame = b""

    # ------------------------------------------------------------------ public API
    @property
    def enabled(self) -> bool:
        """Enabled state as last reported by the unit."""
        return bool(self._info and self._info.enabled)

    @property
    def page(self) -> str | None:
        """Page shown on the unit as last reported (``None`` before any report)."""
        return self._page

    def arm(self) -> None:
        """Enable the unit (command 0x02 01); it then fires on :meth:`fire`."""
        self._set_enabled(True)

    def disarm(self) -> None:
        """Disable the unit (command 0x02 00); also stops a running train."""
        self._set_enabled(False)

    def set_intensity(self, percent: int, b_percent: int | None = None) -> None:
        """Set amplitude A (and B in twin/dual mode), whole % of maximum output, 0–100.

        Raises
        ------
        ConfigError
            For NaN, bools, non-whole or out-of-range values (naming the argument).
        InvalidDataError
            If the unit reports a different amplitude than the one sent.
        """
        frame = proto.amplitude_command(percent, b_percent)
        a = proto.validate_percent(percent, "percent")
        with self._lock:
            reply = self._transact(frame, "amplitude (0x01)", (proto.Message.AMPLITUDE,))
            if reply.amplitude_a_percent != a or (
                    b_percent is not None and reply.amplitude_b_percent != int(b_percent)):
                raise InvalidDataError(
                    f"MagPro reports amplitude {reply.amplitude_a_percent}/"
                    f"{reply.amplitude_b_percent} % after setting {a}"
                    + ("" if b_percent is None else f"/{int(b_percent)}") + " %",
                    command=frame)

    def status(self) -> MagProStatus:
        """Query the status (command 0x00) and parse the 13-byte reply."""
        frame = proto.status_command()
        with self._lock:
            reply = self._transact(frame, "status (0x00)", (proto.Message.STATUS,))
            didt, raw = self._didt, self._last_reply_frame
        info = reply.info
        return MagProStatus(
            armed=info.enabled, ready=info.enabled, remote_control=True, error=False,
            raw=raw, model=info.model, mode=info.mode,
            waveform=info.waveform, enabled=info.enabled, serial_number=reply.serial_number,
            coil_temperature_c=reply.coil_temperature_c, coil_type=reply.coil_type,
            amplitude_a_percent=reply.amplitude_a_percent,
            amplitude_b_percent=reply.amplitude_b_percent,
            didt_a=None if didt is None else didt[0], didt_b=None if didt is None else didt[1],
        )

    def status2(self) -> proto.Status2Reply:
        """Query the extended status (command 0x05): adds page and train-running flag."""
        with self._lock:
            return self._transact(proto.status2_command(), "status 2 (0x05)",
                                  (proto.Message.STATUS2,))

    def train_running(self) -> bool:
        """True while the unit runs a train sequence (queried with status 2)."""
        return self.status2().train_running

    def set_page(self, page: str | int) -> None:
        """Show a page on the unit: ``"main"``, ``"train"``, ``"trig"``, ``"config"``,
        ``"protocol"`` (command 0x07). Trains start only from the train page."""
        frame = proto.page_command(page)
        wanted = proto.PAGES[proto.page_number(page)]
        with self._lock:
            reply = self._transact(frame, "page (0x07)", (proto.Message.PAGE,))
            if reply.page != wanted:
                raise InvalidDataError(f"MagPro shows page {reply.page!r} after asking for "
                                       f"{wanted!r}", command=frame)

    def set_train(
        self, rep_rate_hz: float, pulses_in_train: int, number_of_trains: int, iti_s: float
    ) -> proto.TrainSettings:
        """Send train parameters (command 0x06) after checking the unit's ranges.

        Parameters
        ----------
        rep_rate_hz : float
            Pulses per second: 0.1–1.0 in 0.1 steps, then whole values up to 30 (R30
            family) or 100 (X100 family; 20 with the biphasic-burst waveform).
        pulses_in_train : int
            1–1000, or 1100–2000 in steps of 100.
        number_of_trains : int
            1–500.
        iti_s : float
            Inter-train interval (last pulse to next first pulse), 0.1–300 s, 0.1 s steps.

        Returns
        -------
        TrainSettings
            The accepted settings.

        Raises
        ------
        ConfigError
            Naming the field out of range; nothing is sent.
        InvalidDataError
            If the unit echoes different timing values.
        """
        waveform = self._info.waveform if self._info else "biphasic"
        settings = proto.validate_train(rep_rate_hz, pulses_in_train, number_of_trains, iti_s,
                                        model=self.model, waveform=waveform)
        frame = proto.train_command(settings)
        with self._lock:
            reply = self._transact(frame, "train parameters (0x06)", (proto.Message.TIMING,))
            if reply.settings() != settings:
                raise InvalidDataError(f"MagPro echoes train {reply.settings()} after "
                                       f"setting {settings}", command=frame)
            self.train_settings = settings
        return settings

    def start_train(self) -> float:
        """Start the train sequence set by :meth:`set_train` (command 0x04).

        Switches the unit to the train page first if needed. Each pulse the unit reports
        (di/dt message) becomes a pulse marker timestamped on the train schedule.

        Returns
        -------
        float
            ``local_clock()`` time at which the start command was written, s.

        Raises
        ------
        ConfigError
            If :meth:`set_train` was not called on this connection.
        StimulatorError
            If the unit is disabled or did not report the train running.
        """
        if self.train_settings is None:
            raise ConfigError("call set_train(rep_rate_hz, pulses_in_train, number_of_trains, "
                              "iti_s) before start_train()", field="train")
        with self._lock:
            if not self.enabled:
                raise StimulatorError("MagPro is disabled: call arm() before start_train()")
            if self._page != "train":
                self.set_page("train")
            frame = proto.start_train_command()
            sent_s = self._send(frame, "start train (0x04)")
            reply = self._await(frame, "start train (0x04)", (proto.Message.PAGE,))
            if not reply.train_running:
                raise StimulatorError(
                    f"MagPro did not start the train (page {reply.page!r}, enabled "
                    f"{reply.info.enabled}); command {frame!r}")
            self._train_start_s = sent_s
            self._train_pulses_seen = 0
        return sent_s

    def get_mode_block(self) -> proto.ModeBlock:
        """Read model, mode, current direction, waveform and burst settings (0x09)."""
        with self._lock:
            return self._transact(proto.mode_block_command(None), "mode block get (0x09)",
                                  (proto.Message.MODE_BLOCK,))

    def set_mode_block(
        self,
        *,
        mode: str | None = None,
        current_direction: str | None = None,
        waveform: str | None = None,
        burst_pulses: int | None = None,
        ipi_ms: float | None = None,
        ba_ratio: float | None = None,
    ) -> proto.ModeBlock:
        """Change some fields of the 0x09 block (read, modify, write) and return it.

        Raises
        ------
        ConfigError
            For values outside the allowed sets (naming the field).
        InvalidDataError
            If the unit reports a block different from the one written.
        """
        with self._lock:
            current = self.get_mode_block()
            block = replace(
                current,
                mode=current.mode if mode is None else mode,
                current_direction=(current.current_direction if current_direction is None
                                   else current_direction),
                waveform=current.waveform if waveform is None else waveform,
                burst_pulses=current.burst_pulses if burst_pulses is None else burst_pulses,
            )
            ipi = ipi_ms if ipi_ms is not None else (current.ipi_ms or 0.0)
            ratio = ba_ratio if ba_ratio is not None else current.ba_ratio
            frame = proto.mode_block_command(block, ipi_ms=ipi, ba_ratio=ratio)
            reply = self._transact(frame, "mode block set (0x09)", (proto.Message.MODE_BLOCK,))
            for name in ("mode", "current_direction", "waveform", "burst_pulses"):
                if getattr(reply, name) != getattr(block, name):
                    raise InvalidDataError(
                        f"MagPro reports {name}={getattr(reply, name)!r} after setting "
                        f"{getattr(block, name)!r}", command=frame)
            return reply

    # ------------------------------------------------------------------ vendor hooks
    def _on_connect(self) -> None:
        self._extractor.clear()
        self.train_settings = None
        status = self.status()
        if status.model in proto.MODELS:
            self.model = status.model
        if status.enabled:  # a unit left enabled (e.g. cable pulled mid-run) starts disarmed
            self.disarm()

    def _on_close(self) -> None:
        if self._serial is not None and self.fault is None:
            self.disarm()

    def _keepalive(self) -> None:
        self.status()

    def _fire(self) -> float:
        frame = proto.single_pulse_command()
        if not self.enabled:
            raise StimulatorError("MagPro is disabled: call arm() before fire(); "
                                  f"command {frame!r}")
        sent_s = self._send(frame, "single pulse (0x03)")
        reply = self._await(frame, "single pulse (0x03)",
                            (proto.Message.DIDT, proto.Message.AMPLITUDE))
        if isinstance(reply, proto.AmplitudeReply):
            raise StimulatorError(
                f"MagPro did not fire (enabled={reply.info.enabled}); command {frame!r}")
        return sent_s

    def _current_intensity(self) -> float:
        return float(self._amplitude_a)

    def _discard_input(self) -> None:
        super()._discard_input()
        self._extractor.clear()

    # ------------------------------------------------------------------ I/O
    def _set_enabled(self, enabled: bool) -> None:
        frame = proto.enable_command(enabled)
        name = "enable (0x02)" if enabled else "disable (0x02)"
        with self._lock:
            reply = self._transact(frame, name, (proto.Message.AMPLITUDE,))
            if reply.info.enabled != enabled:
                raise InvalidDataError(f"MagPro reports enabled={reply.info.enabled} after "
                                       f"{name}", command=frame)

    def _transact(self, frame: bytes, name: str, expect: tuple[int, ...]):
        self._send(frame, name)
        return self._await(frame, name, expect)

    def _send(self, frame: bytes, name: str) -> float:
        self._drain_unsolicited()
        return self._write(frame)

    def _read_some(self, n: int, timeout_s: float) -> bytes:
        port = self._port()
        try:
            port.timeout = timeout_s
            return port.read(n)
        except (serial.SerialException, OSError) as exc:
            self._latch(StimulatorError(f"reading from {self.port!r} failed: {exc}"))
            raise self.fault from exc

    def _drain_unsolicited(self) -> None:
        """Absorb messages the unit sent on its own since the last command."""
        port = self._port()
        try:
            waiting = port.in_waiting
        except (serial.SerialException, OSError):
            waiting = 0
        if waiting:
            self._extractor.feed(self._read_some(waiting, 0.0))
        while True:
            try:
                payload = self._extractor.next_payload()
                if payload is None:
                    return
                self._absorb(proto.parse_reply(payload))
            except StimulatorProtocolError:
                self.unsolicited_errors += 1

    def _await(self, frame: bytes, name: str, expect: tuple[int, ...]):
        """Read frames until one whose message id is in ``expect``; absorb the others.

        A bad CRC raises :class:`~labkit.errors.CRCError` at once. Malformed bytes (a stray
        ``0xFE``, a wrong end byte) are skipped while the reply may still come; if it does
        not, the last such problem is raised instead of a timeout.
        """
        deadline = local_clock() + self.timeout_s
        malformed: StimulatorProtocolError | None = None
        while True:
            try:
                raw = self._extractor.next_frame()
            except CRCError as exc:
                raise CRCError(f"{getattr(exc, 'detail', exc)} (awaiting reply to {name})",
                               command=frame, reply=exc.reply) from None
            except StimulatorProtocolError as exc:
                self.unsolicited_errors += 1
                malformed = StimulatorProtocolError(
                    f"{getattr(exc, 'detail', exc)} (awaiting reply to {name})",
                    command=frame, reply=exc.reply)
                continue
            if raw is not None:
                payload = raw[2:-2]
                try:
                    reply = proto.parse_reply(payload)
                except StimulatorProtocolError as exc:
                    if payload[0] in expect:
                        raise type(exc)(f"{getattr(exc, 'detail', exc)} (reply to {name})",
                                        command=frame, reply=exc.reply) from None
                    self.unsolicited_errors += 1
                    continue
                self._absorb(reply)
                if payload[0] in expect:
                    self._last_reply_frame = raw
                    return reply
                continue
            remaining = deadline - local_clock()
            if remaining <= 0:
                got = len(self._extractor)
                if malformed is not None and not got:
                    raise malformed
                if got:
                    raise StimulatorProtocolError(
                        f"incomplete reply to {name}: {got} bytes of a frame after "
                        f"{self.timeout_s:.2f} s", command=frame)
                raise StimulatorTimeoutError(
                    f"MagPro on {self.port!r} did not answer {name} within "
                    f"{self.timeout_s:.2f} s (cable pulled, unit off or wrong port?)",
                    command=frame)
            self._extractor.feed(self._read_some(self._extractor.bytes_needed(), remaining))

    def _absorb(self, reply) -> None:
        """Update the cache from any message; turn train di/dt reports into markers."""
        info = getattr(reply, "info", None)
        if isinstance(info, proto.UnitInfo):
            self._info = info
        if isinstance(reply, (proto.StatusReply, proto.Status2Reply, proto.AmplitudeReply)):
            self._amplitude_a = reply.amplitude_a_percent
            self._amplitude_b = reply.amplitude_b_percent
        if isinstance(reply, (proto.Status2Reply, proto.PageReply)):
            self._page = reply.page
            if not reply.train_running and self._train_start_s is not None:
                self._train_start_s = None
        if isinstance(reply, proto.DidtReply):
            self._didt = (reply.didt_a, reply.didt_b)
            if self._train_start_s is not None and self.train_settings is not None:
                self._announce_train_pulse()

    def _announce_train_pulse(self) -> None:
        settings = self.train_settings
        k = self._train_pulses_seen
        self._train_pulses_seen += 1
        train, pulse = divmod(k, settings.pulses_in_train)
        time_s = (self._train_start_s
                  + train * (settings.train_duration_s + settings.iti_s)
                  + pulse / settings.rep_rate_hz)
        event = PulseEvent(
            time_s=time_s, intensity_percent=float(self._amplitude_a), device=type(self).__name__,
            index=self.pulse_count,
            extra={"train": train, "pulse_in_train": pulse, "time_source": "schedule"},
        )
        self.pulse_count += 1
        self._announce(event)
