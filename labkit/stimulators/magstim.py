"""Drivers for Magstim 200², BiStim² and Rapid² stimulators over a serial port.

The wire format lives in :mod:`labkit.stimulators.magstim_protocol`; this module only
does I/O with it: one command at a time under the base class's port lock, replies read
by their known length, errors mapped to specific exceptions that name the command.

Retry policy: after a corrupted reply (bad CRC, short reply, garbage) a command that is
safe to repeat (queries and absolute settings) is sent once more; ``EB`` (arm) and
``EH`` (fire) are never repeated blindly. Device refusals (``?``, ``S``) are never retried.

Late replies: every reply echoes its command character, but ``EB``, ``EA`` and ``EH`` all
answer ``E…``, so a reply that arrives after its command timed out could pass for the
next one's. After a timeout the next command therefore first waits until the line has
been quiet for one more timeout and drops what arrived (see
:meth:`~labkit.stimulators.base.Stimulator._resync`). A fire (``EH``) that goes
unanswered latches a fault and sends disarm (``EA``) at once: the pulse may have happened.

Example
-------
>>> with Magstim("/dev/ttyUSB0") as stim:          # doctest: +SKIP
...     stim.set_intensity(55)
...     stim.arm()                                  # waits until the unit is ready
...     event = stim.fire()
"""

from __future__ import annotations

import math
import threading
import time
from typing import ClassVar

from labkit.clock import local_clock
from labkit.errors import (
    ConfigError,
    SettingsConflictError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.markers import PulseEvent
from labkit.stimulators import magstim_protocol as mp
from labkit.stimulators import ports
from labkit.stimulators.base import PulseListener, Stimulator

__all__ = ["BiStim", "Magstim", "Rapid"]

#: Commands that must never be sent twice because of a garbled reply.
_NOT_RETRIED = (b"EB", b"EH")
#: Longest ``ND`` reply accepted before declaring garbage.
_MAX_VERSION_REPLY = 24


class _TrainCut(threading.Event):
    """Set when a running train ends early; :attr:`cut_s` is when (``local_clock()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.cut_s = math.inf

    def cut(self) -> None:
        """Record the time of the cut (first call only) and wake the marker thread."""
        if not self.is_set():
            self.cut_s = local_clock()
        self.set()


class Magstim(Stimulator):
    """Magstim 200² single-pulse stimulator.

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB0``, ``COM3``, a pty) or a pyserial URL
        (``labkitsim://name`` for :class:`labkit.sim.MagstimEmulator`).
    timeout_s : float
        Reply timeout; a silent unit raises
        :class:`~labkit.errors.StimulatorTimeoutError` after this long.
    keepalive : bool
        Poke the unit every 0.5 s while idle so that it keeps remote control.
    markers : callable | None
        Receives a :class:`~labkit.markers.PulseEvent` for every pulse.
    arm_timeout_s : float
        How long :meth:`arm` waits for the unit to report *ready*.
    """

    #: ``model`` argument of the protocol parsers.
    model: ClassVar[str] = "200"

    def __init__(self, port: str, *, timeout_s: float = 0.5, keepalive: bool = True,
                 markers: PulseListener | None = None, arm_timeout_s: float = 3.0) -> None:
        super().__init__(port, timeout_s=timeout_s, keepalive=keepalive, markers=markers)
        self.arm_timeout_s = float(arm_timeout_s)
        self._intensity_percent = 0
        #: Last status seen in any reply (updated by the keep-alive too).
        self.last_status: mp.MagstimStatus | None = None
        #: Replies that were corrupted and successfully retried.
        self.retries = 0
        #: Arms that succeeded only after taking back remote control (it had lapsed).
        self.control_retaken = 0

    # ------------------------------------------------------------------ transactions
    def _rapid(self) -> bool:
        return False

    def _version(self) -> mp.Version:
        return mp.RAPID_V9

    def _read_reply(self, command: bytes) -> bytes:
        """Read one reply to ``command`` (lock held), stopping early on ``?``/``S`` replies."""
        expected = mp.reply_length(command, rapid=self._rapid(), version=self._version())
        first = self._read_exact(1, command)
        if first == b"?":
            return first
        try:
            return self._read_rest(command, first, expected)
        except StimulatorTimeoutError as exc:
            raise StimulatorProtocolError(
                f"short reply: the unit stopped after {first!r}... ({exc.args[0]})",
                command=command, reply=first) from exc

    def _read_rest(self, command: bytes, first: bytes, expected: int | None) -> bytes:
        second = self._read_exact(1, command)
        if second in (b"?", b"S"):
            return first + second + self._read_exact(1, command)
        reply = bytearray(first + second)
        if expected is None:  # ND: NUL-terminated text, then the CRC
            while True:
                reply += self._read_exact(1, command)
                if reply[-1] == 0:
                    break
                if len(reply) >= _MAX_VERSION_REPLY:
                    raise StimulatorProtocolError("version reply is not NUL-terminated",
                                                  command=command, reply=bytes(reply))
            reply += self._read_exact(1, command)
        else:
            reply += self._read_exact(expected - 2, command)
        return bytes(reply)

    def _transact(self, command: bytes) -> bytes:
        """Send ``command``, read and check its reply; retry once if that is safe."""
        retry = command[:2] not in _NOT_RETRIED
        with self._lock:
            for attempt in (0, 1):
                self._discard_input()
                self._write(command)
                try:
                    reply = mp.check_reply(command, self._read_reply(command))
                except (mp.InvalidCommandError, mp.InvalidDataError, SettingsConflictError):
                    self._discard_input()
                    raise
                except StimulatorProtocolError:
                    self._drain()
                    if attempt or not retry:
                        raise
                    self.retries += 1
                    continue
                self._remember_status(command, reply)
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _drain(self) -> None:
        """After garbage: wait for the line to go quiet, then drop what arrived."""
        port = self._port()
        deadline = local_clock() + min(self.timeout_s, 0.1)
        try:
            while local_clock() < deadline:
                port.timeout = 0.01
                if not port.read(64):
                    break
        except (OSError, ValueError):
            pass
        self._discard_input()

    def _remember_status(self, command: bytes, reply: bytes) -> None:
        if command[:1] == b"N":
            return
        rapid = self._rapid() and chr(command[0]) in mp.RAPID_STATUS_COMMANDS and len(reply) >= 4
        self.last_status = mp.status_from_bytes(reply[1], reply[2] if rapid else None, raw=reply)

    # ------------------------------------------------------------------ lifecycle hooks
    def _remote_command(self) -> bytes:
        return mp.remote_control(True)

    def _on_connect(self) -> None:
        # Take control, then disarm: a (re)connected unit never stays armed from before.
        self._transact(self._remote_command())
        self._transact(mp.DISARM)
        self._after_connect()

    def _after_connect(self) -> None:
        self._intensity_percent = self.parameters().intensity_percent

    def _on_close(self) -> None:
        try:
            self._transact(mp.DISARM)
        finally:
            self._transact(mp.remote_control(False))

    def _keepalive(self) -> None:
        self._transact(self._remote_command())

    # ------------------------------------------------------------------ public API
    def start_arming(self) -> None:
        """Send ``EB`` and return; the unit reports *ready* about a second later."""
        self.arm(wait=False)

    def arm(self, wait: bool = True) -> None:
        """Arm the unit (``EB``); with ``wait`` poll until it reports *ready*.

        Raises
        ------
        StimulatorTimeoutError
            When the unit is not ready within ``arm_timeout_s`` (it is disarmed again).
        """
        with self._lock:
            try:
                self._transact(mp.ARM)
            except SettingsConflictError:
                if not self.status().armed:  # EB while armed answers S: that is fine
                    # remote control may have lapsed (the host missed its keep-alives for
                    # ~1 s): take it back as connect() did and arm once more; a second S
                    # is the unit's own refusal
                    self._transact(self._remote_command())
                    self._transact(mp.ARM)
                    self.control_retaken += 1
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Poll the status until the unit reports *ready* or ``timeout_s`` passes."""
        timeout_s = self.arm_timeout_s if timeout_s is None else timeout_s
        deadline = local_clock() + timeout_s
        while True:
            status = self.status()
            if status.ready:
                return
            if local_clock() >= deadline:
                try:
                    self.disarm()
                except StimulatorError:
                    pass
                if not status.armed:  # the unit answers: the link is not the reason
                    who = ports.simulated_device(self.port) or (
                        f"{type(self).__name__} on {self.port!r}")
                    late = (f"; {self.slow_replies} late replies so far"
                            if self.slow_replies else "")
                    raise StimulatorTimeoutError(
                        f"{who} not ready within {timeout_s:.1f} s: it is not armed (it "
                        "was disarmed while arming: by this host, or by the unit itself "
                        "after ~1 s without a valid command when the host's commands come "
                        f"late{late}); arm() again", command=mp.ARM)
                raise StimulatorTimeoutError(self._with_link_hint(
                    f"{type(self).__name__} on {self.port!r} armed but not ready within "
                    f"{timeout_s:.1f} s (last status: armed={status.armed}, "
                    f"error={status.error}); disarmed"), command=mp.ARM)
            time.sleep(0.05)

    def disarm(self) -> None:
        """Return the unit to standby (``EA``)."""
        self._transact(mp.DISARM)

    def set_intensity(self, percent: int) -> None:
        """Set output A intensity, integer % MSO from 0 to 100 (``@nnn``)."""
        command = mp.set_intensity(percent, output="A", maximum=self._max_intensity())
        self._check_intensity_allowed(int(command[1:4]))
        with self._lock:
            self._transact(command)
            self._intensity_percent = int(command[1:4])

    def _max_intensity(self) -> int:
        return 100

    def status(self) -> mp.MagstimStatus:
        """Query the instrument status (``Q@``, which also renews remote control)."""
        reply = self._transact(self._remote_command())
        return mp.parse_status(reply[:1], reply)

    def parameters(self) -> mp.MagstimParameters:
        """Query the settings (``J@``)."""
        reply = self._transact(mp.GET_PARAMETERS)
        return mp.parse_parameters(mp.GET_PARAMETERS, reply, model=self.model)

    def temperature(self) -> mp.CoilTemperature:
        """Query the coil temperatures (``F@``), °C."""
        reply = self._transact(mp.GET_TEMPERATURE)
        return mp.parse_temperature(mp.GET_TEMPERATURE, reply)

    def coil_temperature_c(self) -> float:
        """Coil 1 temperature, °C (``F@``)."""
        return float(self.temperature().coil1_c)

    def version(self) -> mp.Version:
        """Query the software version (``ND``) as ``(major, minor, patch)``."""
        reply = self._transact(mp.GET_VERSION)
        return mp.parse_version(mp.GET_VERSION, reply)

    def error_code(self) -> str:
        """Query the current error code (``I@``), three ASCII characters."""
        reply = self._transact(mp.GET_ERROR_CODE)
        return mp.parse_error_code(mp.GET_ERROR_CODE, reply)

    # ------------------------------------------------------------------ firing
    def _fire(self) -> float:
        with self._lock:
            self._discard_input()
            time_s = self._write(mp.FIRE)
            try:
                mp.check_reply(mp.FIRE, self._read_reply(mp.FIRE))
            except StimulatorTimeoutError as exc:
                self._latch_and_disarm(exc)
                raise
            except SettingsConflictError as exc:
                raise SettingsConflictError(self._fire_refusal(), command=exc.command,
                                            reply=exc.reply) from exc
            except StimulatorProtocolError as exc:
                if not isinstance(exc, (mp.InvalidCommandError, mp.InvalidDataError)):
                    exc.add_note("The fire reply was corrupted: the pulse may have been "
                                 "delivered. Check status() before firing again.")
                raise
        return time_s

    def _fire_refusal(self) -> str:
        """Why the unit answered ``EH`` with *S*, from its status read right after."""
        who = ports.simulated_device(self.port) or f"the {type(self).__name__}"
        try:
            status = self.status()
        except StimulatorError:
            return f"{who} refused to fire (and its status could not be read)"
        if not status.armed:
            why = ("it is not armed: it disarms by itself after ~1 s without a valid "
                   "command (keep-alives that came late) or when armed and idle too long; "
                   "arm() again")
        elif not status.ready:
            why = "it is armed but not ready (still recharging after the previous pulse)"
        else:
            why = "it conflicts with the unit's current settings (a train running?)"
        late = f"; {self.slow_replies} late replies so far" if self.slow_replies else ""
        return f"{who} refused to fire: {why}{late}"

    def _check_trigger_ready(self) -> None:
        status = self.last_status
        if status is None or not status.armed:
            raise StimulatorError(f"{type(self).__name__} is not armed (last status): arm() "
                                  "before firing by trigger")

    def _latch_and_disarm(self, exc: BaseException) -> None:
        """Latch ``exc`` (which sends disarm at once) and say so in its notes."""
        exc.add_note("No acknowledgement: the pulse may have been delivered. The driver "
                     "sent disarm (EA) and refuses further commands until close() and "
                     "connect().")
        self._latch(exc)

    def _safe_state_command(self) -> bytes:
        return mp.DISARM

    def _current_intensity(self) -> float:
        return float(self._intensity_percent)


class BiStim(Magstim):
    """Magstim BiStim² (two 200² units, paired pulse).

    Parameters (``port`` and ``**options``) are those of :class:`Magstim`. Output B and
    the inter-pulse interval are
    set with :meth:`set_intensity` (``b=``) and :meth:`set_ipi`.
    """

    model: ClassVar[str] = "bistim"

    def __init__(self, port: str, **options) -> None:
        super().__init__(port, **options)
        self._intensity_b_percent = 0
        self._ipi_ms = 0.0
        self.high_resolution = False

    def _after_connect(self) -> None:
        params = self.parameters()
        self._intensity_percent = params.intensity_percent
        self._intensity_b_percent = params.intensity_b_percent or 0
        self._ipi_ms = params.ipi_ms or 0.0

    def set_intensity(self, a: int, b: int | None = None) -> None:  # type: ignore[override]
        """Set output A and, if given, output B (integer % MSO, 0–100)."""
        command_a = mp.set_intensity(a, output="A")
        command_b = None if b is None else mp.set_intensity(b, output="B")
        for command in (command_a, command_b):
            if command is not None:
                self._check_intensity_allowed(int(command[1:4]))
        with self._lock:
            self._transact(command_a)
            self._intensity_percent = int(command_a[1:4])
            if command_b is not None:
                self._transact(command_b)
                self._intensity_b_percent = int(command_b[1:4])

    def set_high_resolution(self, enable: bool) -> None:
        """Switch 0.1 ms IPI resolution on (``Y@``, IPI ≤ 99.9 ms) or off (``Z@``).

        The unit refuses this while armed (:class:`~labkit.errors.SettingsConflictError`).
        """
        self._transact(mp.HIGH_RESOLUTION_ON if enable else mp.HIGH_RESOLUTION_OFF)
        self.high_resolution = bool(enable)

    def set_ipi(self, ms: float) -> None:
        """Set the inter-pulse interval (``Cnnn``), ms.

        Whole milliseconds 0–999 in normal mode; 0–99.9 ms in steps of 0.1 ms in
        high-resolution mode. A fractional value switches high resolution on first; a
        whole value above 99 switches it off.
        """
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
            raise ConfigError(f"ipi_ms must be a finite number of ms (0-999, or 0-99.9 in "
                              f"steps of 0.1), got {ms!r}", field="ipi_ms")
        high_res = self.high_resolution
        if not float(ms).is_integer():
            high_res = True
        elif float(ms) > 99.9:
            high_res = False
        command = mp.set_ipi(ms, high_resolution=high_res)  # validates before any I/O
        with self._lock:
            if high_res != self.high_resolution:
                self.set_high_resolution(high_res)
            self._transact(command)
            self._ipi_ms = int(command[1:4]) / (10 if high_res else 1)

    def parameters(self) -> mp.MagstimParameters:
        """Query output A/B intensities and the IPI (``J@``)."""
        reply = self._transact(mp.GET_PARAMETERS)
        return mp.parse_parameters(mp.GET_PARAMETERS, reply, model="bistim",
                                   high_resolution=self.high_resolution)

    def _pulse_extra(self) -> dict:
        return {"intensity_b_percent": float(self._intensity_b_percent),
                "ipi_ms": float(self._ipi_ms)}


class Rapid(Magstim):
    """Magstim Rapid² repetitive stimulator.

    Parameters
    ----------
    port : str
        As for :class:`Magstim`.
    unlock_code : str | None
        Remote-control unlock code of newer units (sent as ``Q`` + code instead of ``Q@``).
    variant : {"rapid2", "super_rapid2", "super_rapid2_plus"}
        Selects the frequency-ceiling table.
    voltage : {240, 115}
        Mains voltage the unit is built for (115 V units have lower ceilings).
    **options
        ``timeout_s``, ``keepalive``, ``markers``, ``arm_timeout_s``.

    Notes
    -----
    The software version is read with ``ND`` on connect: it fixes the width of the
    pulse-count and duration fields, the length of the ``\\@`` reply, and whether the
    keep-alive uses ``x@`` (v9 and later) or the remote-control command.
    Train settings are checked against the frequency ceiling and the on-time limit
    ``63000/(f·J(power))`` **before** anything is sent; violations raise
    :class:`~labkit.errors.SafetyError`.
    """

    model: ClassVar[str] = "rapid"

    def __init__(self, port: str, *, unlock_code: str | None = None,
                 variant: str = "rapid2", voltage: int = 240, **options) -> None:
        if variant not in mp.RAPID_VARIANTS:
            raise ConfigError(f"variant must be one of {mp.RAPID_VARIANTS}, got {variant!r}",
                              field="variant")
        if voltage not in mp.MAINS_VOLTAGES or isinstance(voltage, bool):
            raise ConfigError(f"voltage must be one of {mp.MAINS_VOLTAGES} (V), got "
                              f"{voltage!r}", field="voltage")
        if unlock_code is not None and (not unlock_code.isascii() or "@" in unlock_code[:1]
                                        or not unlock_code.isprintable() or not unlock_code):
            raise ConfigError("unlock_code must be printable ASCII not starting with '@'",
                              field="unlock_code")
        super().__init__(port, **options)
        self.unlock_code = unlock_code
        self.variant = variant
        self.voltage = int(voltage)
        self.software_version: mp.Version | None = None
        self._frequency_hz = 0.0
        self._n_pulses = 0
        self._duration_s = 0.0
        self.enhanced_power = False
        self._train_markers: tuple[threading.Thread, _TrainCut] | None = None

    def _rapid(self) -> bool:
        return True

    def _version(self) -> mp.Version:
        return self.software_version or (0, 0, 0)

    def _remote_command(self) -> bytes:
        return mp.remote_control(True, self.unlock_code)

    def _after_connect(self) -> None:
        self.software_version = self.version()
        params = self.parameters()
        self._intensity_percent = params.intensity_percent
        self._frequency_hz = params.frequency_hz or 0.0
        self._n_pulses = params.n_pulses or 0
        self._duration_s = params.duration_s or 0.0
        self.enhanced_power = isinstance(params.status, mp.RapidStatus) and \
            params.status.enhanced_power

    def _max_intensity(self) -> int:
        return mp.ENHANCED_POWER_MAX_PERCENT if self.enhanced_power else 100

    def _keepalive(self) -> None:
        if self._version() >= mp.RAPID_V9:
            self._transact(mp.GET_SYSTEM_STATUS)
        else:
            self._transact(self._remote_command())

    # ------------------------------------------------------------------ queries
    def status(self) -> mp.RapidStatus:
        """Instrument and Rapid status (``x@`` from v9, ``\\@`` before)."""
        if self._version() >= mp.RAPID_V9:
            reply = self._transact(mp.GET_SYSTEM_STATUS)
            return mp.parse_system_status(mp.GET_SYSTEM_STATUS, reply).status
        return self.parameters().status  # type: ignore[return-value]

    def system_status(self) -> mp.SystemStatus:
        """The full ``x@`` reply (software v9 and later)."""
        reply = self._transact(mp.GET_SYSTEM_STATUS)
        return mp.parse_system_status(mp.GET_SYSTEM_STATUS, reply)

    def parameters(self) -> mp.MagstimParameters:
        """Power and train settings (``\\@``)."""
        reply = self._transact(mp.GET_RAPID_PARAMETERS)
        return mp.parse_parameters(mp.GET_RAPID_PARAMETERS, reply, model="rapid",
                                   version=self._version())

    # ------------------------------------------------------------------ settings
    @property
    def repetitive(self) -> bool:
        """True when a train is configured (duration > 0): ``EH`` then fires a train."""
        return self._duration_s > 0 and self._frequency_hz > 0

    def set_intensity(self, percent: int) -> None:
        """Set the power (integer % MSO, 0–100; 0–110 in enhanced-power mode).

        Refused with :class:`~labkit.errors.SafetyError` if the configured train would
        then exceed the frequency ceiling or the energy limit.
        """
        value = mp.check_whole_number(percent, name="percent", low=0,
                                      high=self._max_intensity(), unit="% MSO")
        if self.repetitive:
            mp.check_train(value, self._frequency_hz, self._n_pulses, variant=self.variant,
                           voltage=self.voltage)
        super().set_intensity(value)

    def set_enhanced_power(self, enable: bool) -> None:
        """Enhanced-power mode (``^@``/``_@``): single pulses up to 110 % MSO.

        Only in single-pulse mode. Switching it off brings an intensity above 100 back
        to 100 (the unit does the same).
        """
        if enable and self.repetitive:
            raise SettingsConflictError(
                "enhanced power is for single pulses only: call set_single_pulse() first",
                command=mp.ENHANCED_POWER_ON)
        with self._lock:
            self._transact(mp.ENHANCED_POWER_ON if enable else mp.ENHANCED_POWER_OFF)
            self.enhanced_power = bool(enable)
            self._intensity_percent = min(self._intensity_percent, self._max_intensity())

    def set_train(self, frequency_hz: float, n_pulses: int) -> float:
        """Configure a train of ``n_pulses`` at ``frequency_hz`` (sends ``B``, ``D``, ``[``).

        Returns
        -------
        float
            The train duration, s.

        Raises
        ------
        SafetyError
            Over the frequency ceiling or the on-time/energy limit at the current power.
        ConfigError
            A value outside what the unit can encode.
        """
        if self.enhanced_power:
            raise SettingsConflictError(
                "trains are not allowed in enhanced-power mode: set_enhanced_power(False) first",
                command=b"B")
        version = self._version()
        f_cmd = mp.set_frequency(frequency_hz)
        n_cmd = mp.set_pulses(n_pulses, version)
        f_tenths = int(f_cmd[1:-1])
        n = int(n_cmd[1:-1])
        if f_tenths == 0 or n == 0:
            raise ConfigError("a train needs frequency_hz > 0 and n_pulses > 0; use "
                              "set_single_pulse() for single pulses", field="frequency_hz")
        on_time = mp.check_train(self._intensity_percent, f_tenths / 10, n, variant=self.variant,
                                 voltage=self.voltage)
        duration_tenths = max(1, round(on_time * 10))
        d_cmd = mp.set_duration(duration_tenths / 10, version)
        with self._lock:
            self._transact(f_cmd)
            self._transact(n_cmd)
            self._transact(d_cmd)
            self._frequency_hz, self._n_pulses = f_tenths / 10, n
            self._duration_s = duration_tenths / 10
        return on_time

    def set_frequency(self, hz: float) -> None:
        """Change the train frequency, keeping the duration (pulse count follows)."""
        duration = self._duration_s or 1.0
        self.set_train(hz, max(1, round(duration * float(hz))))

    def set_pulses(self, n: int) -> None:
        """Change the pulses per train, keeping the frequency (duration follows)."""
        self.set_train(self._frequency_hz or 1.0, n)

    def set_duration(self, s: float) -> None:
        """Change the train duration, keeping the frequency (pulse count follows)."""
        tenths = mp.check_tenths(s, name="duration_s", low=0.1,
                                 high=mp.max_duration_s(self._version()), unit="s")
        frequency = self._frequency_hz or 1.0
        self.set_train(frequency, max(1, round(tenths / 10 * frequency)))

    def set_single_pulse(self) -> None:
        """Leave repetitive mode (train duration 0)."""
        command = mp.set_duration(0, self._version())
        self._transact(command)
        self._duration_s = 0.0

    def prepare_single_pulses(self) -> None:
        """Leave repetitive mode if a train is configured (single pulses need it)."""
        if self.repetitive:
            self.set_single_pulse()

    def deliver_train(self, frequency_hz: float, n_pulses: int, *, iti_s: float = 1.0) -> float:
        """Configure and trigger one device-timed train (:class:`DeviceTrain`).

        ``iti_s`` is not sent: the Rapid² delivers one train per trigger.

        Returns
        -------
        float
            ``local_clock()`` time of the trigger, s.
        """
        self.set_train(frequency_hz, n_pulses)
        events = self.fire_train()
        return events[0].time_s if events else local_clock()

    # ------------------------------------------------------------------ firing
    def fire(self) -> PulseEvent:
        """Fire one pulse (single-pulse mode only; use :meth:`fire_train` for trains)."""
        if self.repetitive:
            raise SettingsConflictError(
                "the Rapid is in repetitive mode: use fire_train(), or set_single_pulse() "
                "first", command=mp.FIRE)
        return super().fire()

    def fire_train(self) -> list[PulseEvent]:
        """Trigger the configured train; announce each pulse's marker as its time passes.

        Pulse times are the trigger time plus ``i / frequency_hz`` (the unit's own clock
        paces the train). The returned list is the train's *schedule*; markers reach the
        pulse listeners only once each pulse's time has passed, from a background thread,
        so a train cut short by :meth:`disarm`, :meth:`close` or a latched fault never
        publishes markers for pulses that did not happen (:attr:`pulse_count` counts only
        announced pulses).
        """
        if not self.repetitive:
            raise SettingsConflictError("no train configured: call set_train() first",
                                        command=mp.FIRE)
        with self._lock:
            mp.check_train(self._intensity_percent, self._frequency_hz, self._n_pulses,
                           variant=self.variant, voltage=self.voltage)
            self.guard.before_pulses(self._n_pulses, float(self._intensity_percent),
                                     local_clock())
            self._end_train_markers()
            start_s = self._fire()
            events = [
                PulseEvent(
                    time_s=start_s + i / self._frequency_hz,
                    intensity_percent=float(self._intensity_percent),
                    device=type(self).__name__, index=self.pulse_count + i,
                    extra={"train_pulse": i, "frequency_hz": self._frequency_hz},
                )
                for i in range(self._n_pulses)
            ]
            cancel = _TrainCut()
            thread = threading.Thread(target=self._announce_train, args=(events, cancel),
                                      name=f"{type(self).__name__}-train-markers", daemon=True)
            self._train_markers = (thread, cancel)
            thread.start()
        return events

    def wait_train(self, timeout_s: float | None = None) -> bool:
        """Wait until the markers of the last train are all announced (or it was cut).

        Returns
        -------
        bool
            True when no train announcement is pending any more.
        """
        current = self._train_markers
        if current is None:
            return True
        current[0].join(timeout_s)
        return not current[0].is_alive()

    def disarm(self) -> None:
        """Return the unit to standby (``EA``); a running train ends, later markers are dropped."""
        self._end_train_markers()
        super().disarm()

    def close(self) -> None:
        """Stop announcing the running train's future pulses, then as :meth:`Stimulator.close`."""
        self._end_train_markers()
        super().close()

    def _end_train_markers(self) -> None:
        """Announce the pulses whose time has passed; drop the rest of the running train."""
        current = getattr(self, "_train_markers", None)
        if current is None:
            return
        thread, cancel = current
        cancel.cut()
        if thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _announce_train(self, events: list[PulseEvent], cancel: _TrainCut) -> None:
        """Announce each scheduled pulse once its time has passed (marker thread).

        Takes no driver lock: :meth:`disarm` may wait for this thread while holding it.
        """
        for event in events:
            while True:
                remaining = event.time_s - local_clock()
                if remaining <= 0 or cancel.wait(remaining):
                    break
            # cut short: only pulses whose time had passed at the cut were delivered
            if self.fault is not None or event.time_s > cancel.cut_s:
                return
            self.pulse_count = max(self.pulse_count, event.index + 1)
            self._announce(event)
