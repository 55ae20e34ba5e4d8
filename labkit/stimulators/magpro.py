"""Driver for MagVenture MagPro stimulators (R30, X100 and their options).

The wire format lives in :mod:`labkit.stimulators.magpro_protocol`; this module owns the
port (through :class:`~labkit.stimulators.base.Stimulator`), waits for the right reply
among the messages the unit sends on its own, keeps a cache of what the unit last
reported (enabled, amplitudes, page, di/dt), and publishes pulse markers.

Acknowledgements the driver waits for (unit-to-host message ids, see the protocol module).
A reply counts only if it *answers this command*: a message of the right id that reports
something else (an amplitude other than the one sent, a late reply to an earlier command,
one of the extra messages an X100 sends after enable) is absorbed and the wait goes on.

=====================  ==============================================================
command                reply awaited
=====================  ==============================================================
0x00 status            0x00 status (13-byte frame)
0x01 amplitude         0x01 amplitude reporting the value sent
0x02 enable/disable    0x01 amplitude whose info byte shows the new state (an X100 also
                       sends a coil message and a second 0x01: absorbed)
0x03 single pulse      0x02 di/dt (the discharge happened); a 0x01 reporting the unit
                       disabled means it did not fire
0x04 start train       0x08 page/train status reporting the train running
0x05 status 2          0x05 status 2 (19-byte frame)
0x06 train parameters  0x0B timing menu *or* a short message (MAGIC reads one 8-byte
                       frame); then the timing menu is read back with ``0B 00`` and
                       compared, where the unit answers it
0x07 page              0x08 page/train status reporting the page asked for
0x09 mode block        0x09 mode block
0x0A delays            0x0A delays
0x0B timing menu       0x0B timing menu
0x0C page/count        0x0C page and stimulus count
=====================  ==============================================================

Failures: after a timeout the next command first listens for one more timeout and
absorbs what arrives, so a late reply is never taken for the next command's answer.
Queries and absolute settings (status, amplitude, disable, train, page, mode block,
menus) are sent once more after a corrupted (bad CRC) reply; enable, single pulse and
start train never are. A single pulse or train start that goes unanswered latches a
fault (the pulse may have happened) and the driver sends disable at once.

Host death: a MagPro has no remote-control timeout. A train the unit has started runs to
its end even if this computer dies, and the unit stays enabled. So :meth:`MagPro.set_train`
accepts one train per command (``number_of_trains=1``): a dead host leaves at most the
current train running. The operator's stop procedure is the unit's own stop/disable
button (or its power switch); see the README's hardware section.

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
    SettingsConflictError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.markers import PulseEvent
from labkit.stimulators import magpro_protocol as proto
from labkit.stimulators.base import PulseListener, Stimulator, StimulatorStatus

__all__ = ["MagPro", "MagProStatus"]

#: Message ids that may acknowledge command 0x06: the timing menu (MagventurePyTMS's
#: reading) or one short 4-byte message (MAGIC reads a single 8-byte frame). Never di/dt.
_TRAIN_ACKS = (proto.Message.TIMING, proto.Message.AMPLITUDE, proto.Message.TEMPERATURE,
               proto.Message.ORIGINAL_AMPLITUDE, proto.Message.AMPLITUDE_FACTOR,
               proto.Message.PAGE)


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
    short_forms : bool
        Send single pulse as ``03`` and page as ``07 p`` (MagventurePyTMS) instead of
        ``03 01`` and ``07 p 00`` (MAGIC). Both are public; units are reported to take both.

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
        short_forms: bool = False,
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
        self.short_forms = bool(short_forms)
        #: Corrupted replies whose command was sent again successfully.
        self.retries = 0
        #: Timing menu as last read back (0x0B), or None.
        self.timing: proto.TimingReply | None = None
        #: True once the unit answered a timing-menu read, False once it did not.
        self.timing_menu_answered: bool | None = None
        #: True when the train last set was confirmed by reading the timing menu back.
        self.train_verified = False
        #: Last MEP reported by the unit's MEP monitor (message 0x04), if any.
        self.last_mep: proto.MEPReply | None = None

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
        b = None if b_percent is None else int(b_percent)
        for value in (a, b):
            if value is not None:
                self._check_intensity_allowed(value)

        def answers(reply: proto.AmplitudeReply) -> bool:
            return reply.amplitude_a_percent == a and (b is None or reply.amplitude_b_percent == b)

        wanted = f"amplitude {a}" + ("" if b is None else f"/{b}") + " %"
        with self._lock:
            self._transact(frame, "amplitude (0x01)", (proto.Message.AMPLITUDE,),
                           accept=answers, wanted=wanted)

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

    def coil_temperature_c(self) -> float:
        """Coil temperature, °C (from the status reply)."""
        return float(self.status().coil_temperature_c)

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
        frame = proto.page_command(page, short=self.short_forms)
        wanted = proto.PAGES[proto.page_number(page)]
        with self._lock:
            self._transact(frame, "page (0x07)", (proto.Message.PAGE,),
                           accept=lambda reply: reply.page == wanted, wanted=f"page {wanted!r}")

    def set_train(
        self, rep_rate_hz: float, pulses_in_train: int, number_of_trains: int = 1,
        iti_s: float = 1.0,
    ) -> proto.TrainSettings:
        """Send the parameters of one train (command 0x06) after checking the unit's ranges.

        The unit's acknowledgement may be the timing menu (0x0B) or one short message
        (as MAGIC reads it); either way the timing menu is then read back (``0B 00``) and
        compared where the unit answers, and :attr:`train_verified` says whether it did.

        Parameters
        ----------
        rep_rate_hz : float
            Pulses per second: 0.1–1.0 in 0.1 steps, then whole values up to the model's
            ceiling (:func:`~labkit.stimulators.magpro_protocol.max_rep_rate_hz`: 30 on an
            R30, 100 on an X100; less with biphasic burst or in twin/dual mode).
        pulses_in_train : int
            1–1000, or 1100–2000 in steps of 100.
        number_of_trains : int
            Must be 1: the host starts each train (:meth:`start_train`), so a host that
            dies leaves at most one train running on the unit.
        iti_s : float
            Inter-train interval the unit stores (unused with one train), 0.1–300 s.

        Returns
        -------
        TrainSettings
            The accepted settings.

        Raises
        ------
        ConfigError
            Naming the field out of range, or ``number_of_trains`` other than 1; nothing
            is sent.
        InvalidDataError
            If the unit reports different timing values.
        SettingsConflictError
            If the unit's timing menu has ramp-up below 100 % (the train would run below
            the amplitude its markers state) or timing control other than "sequence".
        """
        if number_of_trains != 1 or isinstance(number_of_trains, bool):
            raise ConfigError(
                f"number_of_trains must be 1, got {number_of_trains!r}: a MagPro runs a queued "
                "sequence to its end even if this computer dies, so trains are started one "
                "at a time (call start_train() once per train)", field="number_of_trains")
        info = self._info
        settings = proto.validate_train(
            rep_rate_hz, pulses_in_train, number_of_trains, iti_s, model=self.model,
            waveform=info.waveform if info else "biphasic",
            mode=info.mode if info else "standard",
            extended_rate=bool(self.timing and self.timing.extended_rate))
        frame = proto.train_command(settings)
        with self._lock:
            self.train_settings = None
            self.train_verified = False
            ack = self._transact(frame, "train parameters (0x06)", _TRAIN_ACKS,
                                 wanted="an acknowledgement")
            timing = ack if isinstance(ack, proto.TimingReply) else self._read_timing()
            if timing is not None:
                self._check_timing(timing, settings, frame)
                self.train_verified = True
            self.train_settings = settings
        return settings

    def set_timing(
        self, rep_rate_hz: float, pulses_in_train: int, *, iti_s: float = 1.0,
        prior_warning_sound: bool = True,
    ) -> proto.TimingReply:
        """Set one train through the timing menu (``0B 01 …``, as MagventurePyTMS does).

        Same checks and one-train policy as :meth:`set_train`; the unit's 0x0B answer
        (or a read-back) is compared with what was sent.

        Raises
        ------
        StimulatorError
            If the unit does not answer the timing menu (use :meth:`set_train`).
        """
        info = self._info
        settings = proto.validate_train(
            rep_rate_hz, pulses_in_train, 1, iti_s, model=self.model,
            waveform=info.waveform if info else "biphasic",
            mode=info.mode if info else "standard",
            extended_rate=bool(self.timing and self.timing.extended_rate))
        frame = proto.timing_set_command(settings, prior_warning_sound=prior_warning_sound)
        with self._lock:
            self.train_settings = None
            self.train_verified = False
            reply = self._transact(frame, "timing menu set (0x0B)", (proto.Message.TIMING,))
            self.timing_menu_answered = True
            self._check_timing(reply, settings, frame)
            self.timing = reply
            self.train_settings = settings
            self.train_verified = True
            return reply

    def timing_menu(self) -> proto.TimingReply | None:
        """Read the timing menu (``0B 00``); ``None`` if the unit does not answer it."""
        with self._lock:
            return self._read_timing(force=True)

    def delays(self) -> proto.DelaysReply:
        """Read trigger-in, trigger-out and charge delays (``0A 00``), ms."""
        with self._lock:
            return self._transact(proto.delays_get_command(), "delays get (0x0A)",
                                  (proto.Message.DELAYS,))

    def set_delays(self, trigger_in_ms: float, trigger_out_ms: float,
                   charge_delay_ms: int) -> proto.DelaysReply:
        """Set the trigger and charge delays (``0A 01 …``), then read them back.

        Raises
        ------
        ConfigError
            For a value off the unit's grid (naming the field).
        InvalidDataError
            If the unit reports other values.
        """
        frame = proto.delays_set_command(trigger_in_ms, trigger_out_ms, charge_delay_ms)
        wanted = (round(trigger_in_ms, 1), round(trigger_out_ms, 1), int(charge_delay_ms))
        with self._lock:
            self._write_only(frame)
            reply = self.delays()
            got = (reply.trigger_in_ms, reply.trigger_out_ms, reply.charge_delay_ms)
            if got != wanted:
                raise InvalidDataError(f"MagPro reports delays {got} ms after setting {wanted}",
                                       command=frame)
            return reply

    def page_count(self) -> proto.PageCountReply:
        """Read the page and the unit's stimulus count (``0C 00``)."""
        with self._lock:
            reply = self._transact(proto.page_count_command(), "page/count get (0x0C)",
                                   (proto.Message.PAGE_COUNT,))
            self._page = reply.page
            return reply

    def deliver_train(self, frequency_hz: float, n_pulses: int, *, iti_s: float = 1.0) -> float:
        """Configure and start one device-timed train (:class:`DeviceTrain`).

        Returns
        -------
        float
            ``local_clock()`` time at which the start command was written, s.
        """
        self.set_train(frequency_hz, n_pulses, 1, max(0.1, min(300.0, iti_s)))
        return self.start_train()

    def start_train(self) -> float:
        """Start the train set by :meth:`set_train` (command 0x04).

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
            If the unit is disabled or did not report the train running. No answer at all
            latches a fault and disables the unit (the train may have started).
        """
        if self.train_settings is None:
            raise ConfigError("call set_train(rep_rate_hz, pulses_in_train) before "
                              "start_train()", field="train")
        with self._lock:
            if not self.enabled:
                raise StimulatorError("MagPro is disabled: call arm() before start_train()")
            self.guard.before_pulses(self.train_settings.total_pulses,
                                     self._current_intensity(), local_clock())
            if self._page != "train":
                self.set_page("train")
            frame = proto.start_train_command()
            name = "start train (0x04)"
            sent_s = self._send(frame, name)
            try:
                self._await(frame, name, (proto.Message.PAGE,),
                            accept=lambda reply: reply.train_running,
                            wanted="the train running")
            except StimulatorTimeoutError as exc:
                self._latch_and_disable(exc, "the train may be running")
                raise
            except InvalidDataError as exc:
                raise StimulatorError(f"MagPro did not start the train ({exc})") from None
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
        frame = proto.single_pulse_command(short=self.short_forms)
        if not self.enabled:
            raise StimulatorError("MagPro is disabled: call arm() before fire(); "
                                  f"command {frame!r}")
        name = "single pulse (0x03)"
        sent_s = self._send(frame, name)

        def answers(reply) -> bool:
            # di/dt = the discharge; an amplitude message counts only as a refusal
            return isinstance(reply, proto.DidtReply) or not reply.info.enabled

        try:
            reply = self._await(frame, name, (proto.Message.DIDT, proto.Message.AMPLITUDE),
                                accept=answers, wanted="di/dt after the discharge")
        except StimulatorTimeoutError as exc:
            self._latch_and_disable(exc, "the pulse may have been delivered")
            raise
        if isinstance(reply, proto.AmplitudeReply):
            raise StimulatorError(
                f"MagPro did not fire (enabled={reply.info.enabled}); command {frame!r}")
        return sent_s

    def _check_trigger_ready(self) -> None:
        if not self.enabled:
            raise StimulatorError("MagPro is disabled: call arm() before firing by trigger")
        self._drain_unsolicited()

    def _confirm_trigger(self, time_s: float) -> None:
        """The unit reports every discharge (0x02 di/dt): wait for it after the edge."""
        try:
            self._await(b"", "external trigger (TTL)", (proto.Message.DIDT,))
        except StimulatorTimeoutError as exc:
            raise StimulatorError(
                f"MagPro reported no discharge within {self.timeout_s:.2f} s of the TTL "
                "trigger: is the trigger cable connected and the unit set to take external "
                "triggers? No marker was published") from exc

    def _latch_and_disable(self, exc: BaseException, what: str) -> None:
        """Latch ``exc`` (which sends disable at once) and say so in its notes."""
        exc.add_note(f"No acknowledgement: {what}. The driver sent disable and refuses "
                     "further commands until close() and connect().")
        self._latch(exc)

    def _safe_state_command(self) -> bytes:
        return proto.enable_command(False)

    def _current_intensity(self) -> float:
        return float(self._amplitude_a)

    def _discard_input(self) -> None:
        super()._discard_input()
        self._extractor.clear()

    def _resync(self) -> None:
        """After a timeout: absorb everything for one more timeout, then go on.

        A MagPro talks unprompted (di/dt during a train), so the line need not go quiet;
        every frame that arrives in the window is absorbed like an unsolicited message.
        """
        end = local_clock() + self.timeout_s
        while (remaining := end - local_clock()) > 0:
            data = self._read_some(256, min(remaining, 0.02))
            if data:
                self.stale_bytes += len(data)
                self._extractor.feed(data)
                self._absorb_buffered()
        self._resync_needed = False
        self.resyncs += 1

    # ------------------------------------------------------------------ I/O
    def _set_enabled(self, enabled: bool) -> None:
        frame = proto.enable_command(enabled)
        name = "enable (0x02)" if enabled else "disable (0x02)"
        with self._lock:
            # enable is not repeated blindly; disable is (it only makes things safer)
            self._transact(frame, name, (proto.Message.AMPLITUDE,),
                           accept=lambda reply: reply.info.enabled == enabled,
                           wanted=f"enabled={enabled}", retry=not enabled)

    def _read_timing(self, force: bool = False) -> proto.TimingReply | None:
        """Read the timing menu back; ``None`` (remembered) if the unit does not answer."""
        if self.timing_menu_answered is False and not force:
            return None
        try:
            reply = self._transact(proto.timing_get_command(), "timing menu get (0x0B)",
                                   (proto.Message.TIMING,))
        except StimulatorTimeoutError:
            self.timing_menu_answered = False
            return None
        self.timing_menu_answered = True
        self.timing = reply
        return reply

    def _check_timing(self, timing: proto.TimingReply, settings: proto.TrainSettings,
                      frame: bytes) -> None:
        if timing.settings() != settings:
            raise InvalidDataError(f"MagPro reports train {timing.settings()} after setting "
                                   f"{settings}", command=frame)
        if timing.ramps_up:
            raise SettingsConflictError(
                f"the MagPro's timing menu has ramp-up {timing.ramp_up_percent} % over "
                f"{timing.ramp_up_trains} trains: every train started from here would begin "
                "below the set amplitude and its markers would overstate it; set Ramp Up to "
                "1.00 on the unit's timing page", command=frame)
        if timing.timing_control != 0:
            control = proto.TIMING_CONTROLS[timing.timing_control] if (
                timing.timing_control < len(proto.TIMING_CONTROLS)) else timing.timing_control
            raise SettingsConflictError(
                f"the MagPro's timing control is {control!r}, not 'sequence': a train "
                "started over the serial port would not run as set", command=frame)

    def _transact(self, frame: bytes, name: str, expect: tuple[int, ...], *,
                  accept=None, wanted: str = "", retry: bool = True):
        """Send ``frame`` and await its answer; once more after a bad CRC if ``retry``."""
        for attempt in (0, 1):
            self._send(frame, name)
            try:
                return self._await(frame, name, expect, accept=accept, wanted=wanted)
            except CRCError:
                if attempt or not retry:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_only(self, frame: bytes) -> float:
        """Send a command whose answer (if any) is read by the next query."""
        return self._send(frame, "")

    def _send(self, frame: bytes, name: str) -> float:
        if self._resync_needed:
            self._resync()
        self._drain_unsolicited()
        return self._write(frame)

    def _read_some(self, n: int, timeout_s: float) -> bytes:
        port = self._port()
        try:
            port.timeout = timeout_s
            return port.read(n)
        except (serial.SerialException, OSError) as exc:
            self._latch(StimulatorError(self._with_link_hint(
                f"reading from {self.port!r} failed: {exc}")))
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
        self._absorb_buffered()

    def _absorb_buffered(self) -> None:
        """Absorb every complete frame already buffered, counting malformed ones."""
        while True:
            try:
                payload = self._extractor.next_payload()
                if payload is None:
                    return
                self._absorb(proto.parse_reply(payload))
            except StimulatorProtocolError:
                self.unsolicited_errors += 1

    def _await(self, frame: bytes, name: str, expect: tuple[int, ...], *, accept=None,
               wanted: str = ""):
        """Read frames until one answers this command; absorb every other one.

        A frame answers when its message id is in ``expect`` and ``accept(reply)`` (if
        given) is true. A frame of an expected id that ``accept`` rejects (a late reply to
        an earlier command, an extra message) is absorbed; if no answer comes before the
        timeout, the last such frame is reported in an :class:`InvalidDataError`.

        A bad CRC raises :class:`~labkit.errors.CRCError` at once. Malformed bytes (a stray
        ``0xFE``, a wrong end byte) are skipped while the reply may still come; if it does
        not, the last such problem is raised instead of a timeout.
        """
        deadline = local_clock() + self.timeout_s
        graced = False
        malformed: StimulatorProtocolError | None = None
        rejected = None
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
                    if accept is None or accept(reply):
                        self._last_reply_frame = raw
                        return reply
                    rejected = (reply, raw)
                continue
            remaining = deadline - local_clock()
            if remaining <= 0 and rejected is None and not graced and self._grant_grace():
                graced = True  # a simulator that runs but is behind: wait once more
                self.slow_replies += 1
                deadline += self.link_grace_s
                continue
            if remaining <= 0:
                self._resync_needed = True
                if rejected is not None:
                    raise InvalidDataError(
                        f"MagPro answered {name} with {rejected[0]} instead of {wanted} "
                        f"within {self.timeout_s:.2f} s", command=frame, reply=rejected[1])
                got = len(self._extractor)
                if malformed is not None and not got:
                    raise malformed
                if got:
                    raise StimulatorProtocolError(
                        f"incomplete reply to {name}: {got} bytes of a frame after "
                        f"{self.timeout_s:.2f} s", command=frame)
                raise StimulatorTimeoutError(self.silence_message(name), command=frame)
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
        if isinstance(reply, proto.MEPReply):
            self.last_mep = reply
        if isinstance(reply, proto.TimingReply):
            self.timing = reply
        if isinstance(reply, proto.PageCountReply):
            self._page = reply.page
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
