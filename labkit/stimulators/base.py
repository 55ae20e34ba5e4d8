"""Common machinery of every stimulator driver.

A driver owns one serial port behind one lock. Vendor subclasses only describe their
wire protocol: how to frame a command, how to read and parse its reply, what keeps
remote control alive, and how to arm, disarm and fire. This base class supplies the
rest: opening the port (device path, pty or pyserial URL), the background keep-alive,
fault latching, the safe shutdown (disarm and release before the port closes), and
timestamped pulse markers.
"""

from __future__ import annotations

import os
import select
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import serial

from labkit.clock import local_clock
from labkit.errors import (
    NotConnectedError,
    StimulatorError,
    StimulatorProtocolError,
    StimulatorTimeoutError,
)
from labkit.markers import PulseEvent
from labkit.safety.guard import FiringGuard
from labkit.stimulators import ports
from labkit.stimulators.capabilities import Abilities

if TYPE_CHECKING:
    from labkit.stimulators.trigger import TriggerLine

PulseListener = Callable[[PulseEvent], None]

try:  # flushing a tty whose other end is gone (USB adapter unplugged) raises termios.error
    from termios import error as _termios_error
except ImportError:  # pragma: no cover - not POSIX
    _termios_error = OSError
#: What discarding a line's input may raise when the line is gone.
FLUSH_ERRORS = (serial.SerialException, OSError, _termios_error)


def write_all(port: serial.SerialBase, data: bytes, timeout_s: float) -> None:
    """Write every byte of ``data`` to ``port``; time out only with bytes still unsent.

    pyserial's own write on a POSIX port raises ``Write timeout`` when its timeout has
    run out by the time the system call returns, even though every byte was written: a
    thread that waits for the CPU on a loaded machine would then report a link fault
    for a command the unit received. Here the deadline counts only while bytes wait
    for a port that cannot take them. When a simulator in another process serves the
    port (:func:`labkit.stimulators.ports.observe_writes`), it is told of the write just
    before the bytes go out, and of any bytes left unsent.

    Raises
    ------
    serial.SerialTimeoutException
        When bytes are still unsent ``timeout_s`` after the first try.
    OSError
        When the line is gone.
    """
    try:
        fd = port.fileno()
    except (AttributeError, OSError, ValueError, serial.SerialException):
        port.write(data)  # not a file descriptor (a pyserial URL, Windows)
        return
    name = getattr(port, "port", None)
    observer = None if name is None else ports.write_observer(name)
    if observer is None:
        _write_fd(fd, data, timeout_s, [0])
        return
    observer(len(data))  # a simulator in another process: when the unit takes the bytes
    sent = [0]
    try:
        _write_fd(fd, data, timeout_s, sent)
    except BaseException:  # timed out, line gone, interrupted: retract what did not go
        observer(sent[0] - len(data))
        raise


def _write_fd(fd: int, data: bytes, timeout_s: float, sent: list[int]) -> None:
    """Write ``data`` to ``fd``, counting the bytes written in ``sent[0]``."""
    deadline = time.monotonic() + timeout_s
    unsent = memoryview(data)
    # pyserial opens POSIX ports non-blocking; on a port opened otherwise, wait until
    # it takes bytes before writing, so that a full port times out instead of hanging
    must_wait = os.get_blocking(fd)
    while unsent:
        if not must_wait:
            try:
                written = os.write(fd, unsent)
                sent[0] += written
                unsent = unsent[written:]
                continue
            except (BlockingIOError, InterruptedError):
                pass
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
            raise serial.SerialTimeoutException(
                f"Write timeout: {len(unsent)} of {len(data)} bytes unsent after "
                f"{timeout_s:.1f} s")
        if must_wait:
            written = os.write(fd, unsent)
            sent[0] += written
            unsent = unsent[written:]


@dataclass(frozen=True)
class StimulatorStatus:
    """State common to every stimulator.

    Vendor drivers return subclasses with their own extra fields.

    Attributes
    ----------
    armed : bool
        The capacitor is charged or charging and the unit will fire on trigger.
    ready : bool
        Armed and charged to the set intensity.
    remote_control : bool
        The unit accepts commands from the serial port.
    error : bool
        The unit reports an error condition.
    raw : bytes
        The reply the status was parsed from.
    """

    armed: bool
    ready: bool
    remote_control: bool
    error: bool
    raw: bytes


class Stimulator(ABC):
    """Base class of serial stimulator drivers.

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB0``, ``COM3``, a pty) or a pyserial URL
        (``loop://``, ``labkitsim://name`` for an in-process emulator).
    timeout_s : float
        How long to wait for a reply before raising
        :class:`~labkit.errors.StimulatorTimeoutError`.
    keepalive : bool
        Run the background keep-alive that holds remote control while connected.
    markers : callable | None
        Called with a :class:`~labkit.markers.PulseEvent` for every delivered pulse,
        e.g. a :class:`~labkit.markers.PulseMarkerOutlet`.
    """

    #: Serial line speed of the vendor protocol.
    baudrate: ClassVar[int] = 9600
    #: Stop bits of the vendor protocol.
    stopbits: ClassVar[float] = serial.STOPBITS_ONE
    #: RTS level from the moment the port opens. Low, as MagPy holds it: a trigger input
    #: wired to RTS (MagPy's quickFire cable) must see no edge when the port opens.
    rts_at_open: ClassVar[bool | None] = False
    #: Seconds between keep-alive messages (the unit drops control after ~1 s).
    keepalive_interval_s: ClassVar[float] = 0.5
    #: Why a real unit stays silent, most likely first: the operator's checklist.
    silence_causes: ClassVar[tuple[str, ...]] = (
        "wrong port: the device profile's [stimulator] port is not this unit's "
        "(python -m labkit.check PROFILE lists the serial ports)",
        "the serial cable or USB-serial adapter is unplugged or loose",
        "the unit is switched off",
        "remote control is disabled on the unit's front panel",
    )

    def __init__(
        self,
        port: str,
        *,
        timeout_s: float = 0.5,
        keepalive: bool = True,
        markers: PulseListener | None = None,
    ) -> None:
        self.port = port
        self.timeout_s = float(timeout_s)
        self._use_keepalive = keepalive
        self._serial: serial.SerialBase | None = None
        self._lock = threading.RLock()
        self._keepalive_thread: threading.Thread | None = None
        self._stop_keepalive = threading.Event()
        self._last_io_s = 0.0
        self._pulse_listeners: list[PulseListener] = [markers] if markers is not None else []
        self.pulse_count = 0
        #: Checks every pulse before it is sent and counts the delivered ones. A bare
        #: driver has the published limits; a rig installs its profile's guard.
        self.guard = FiringGuard()
        self._abilities: Abilities | None = None
        #: The exception that made the connection unusable, if any.
        self.fault: BaseException | None = None
        #: Protocol errors swallowed by the keep-alive thread (garbage on the line).
        self.keepalive_errors = 0
        #: TTL line that :meth:`fire` pulses instead of sending the fire command.
        self.trigger_line: TriggerLine | None = None
        self._owned_trigger_line = False
        #: Times the line was resynchronised after a timeout (late replies discarded).
        self.resyncs = 0
        #: Bytes discarded while resynchronising.
        self.stale_bytes = 0
        self._resync_needed = False
        #: Explains a unit that does not answer (a rig whose unit is simulated in another
        #: process sets it: the simulator exited, is stopped or is behind).
        self.link_diagnosis: Callable[[], str] | None = None
        #: Extra seconds a reply may take while :attr:`link_alive` says the unit runs but
        #: is behind (a simulator in another process on a loaded machine); 0 for hardware.
        self.link_grace_s = 0.0
        self.link_alive: Callable[[], bool] | None = None
        #: Replies that came only within :attr:`link_grace_s` (after ``timeout_s``).
        self.slow_replies = 0

    def _grant_grace(self) -> bool:
        """True when a reply that is late may still come (the unit runs but is behind)."""
        return self.link_grace_s > 0 and self.link_alive is not None and self.link_alive()

    def _with_link_hint(self, message: str) -> str:
        if self.link_diagnosis is None:
            return message
        return f"{message} ({self.link_diagnosis()})"

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> Stimulator:
        """Open the port, take remote control and start the keep-alive.

        Returns
        -------
        Stimulator
            ``self``, so that ``stim = Magstim(port).connect()`` reads naturally.
        """
        with self._lock:
            if self._serial is not None:
                return self
            self._serial = ports.open_exclusive(
                self.port,
                self,
                rts=self.rts_at_open,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=self.stopbits,
                timeout=self.timeout_s,
                write_timeout=self.timeout_s,
            )
            self.fault = None
            self._resync_needed = False
            try:
                self._serial.reset_input_buffer()
                self._on_connect()
            except BaseException:
                self._release_port()
                raise
        if self._use_keepalive:
            self._stop_keepalive.clear()
            self._keepalive_thread = threading.Thread(
                target=self._keepalive_loop, name=f"{type(self).__name__}-keepalive", daemon=True
            )
            self._keepalive_thread.start()
        return self

    def close(self) -> None:
        """Disarm, release remote control, stop the keep-alive and close the port.

        Safe to call twice and after a fault: shutdown commands that fail are ignored
        once the port is known to be dead.
        """
        self._stop_keepalive.set()
        thread = self._keepalive_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._keepalive_thread = None
        with self._lock:
            try:
                if self._serial is not None:
                    try:
                        self._on_close()
                    except StimulatorError:
                        pass
                    finally:
                        self._release_port()
            finally:
                self._release_owned_trigger_line()

    def _release_owned_trigger_line(self) -> None:
        """Close the trigger line if this unit owns it (``use_trigger(close_with_unit=True)``)."""
        if self._owned_trigger_line:
            self._owned_trigger_line = False
            self.trigger_line.close()

    @property
    def connected(self) -> bool:
        """True while the port is open."""
        return self._serial is not None

    def __enter__(self) -> Stimulator:
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if self._serial is not None:
                self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ public API
    @abstractmethod
    def arm(self) -> None:
        """Charge the unit so that it fires on trigger."""

    @abstractmethod
    def disarm(self) -> None:
        """Return the unit to standby (discharged)."""

    @abstractmethod
    def set_intensity(self, percent: int) -> None:
        """Set the output intensity in % of maximum stimulator output."""

    @abstractmethod
    def status(self) -> StimulatorStatus:
        """Query and parse the unit's status."""

    def fire(self) -> PulseEvent:
        """Trigger one pulse, timestamp it and publish it as a marker.

        Returns
        -------
        PulseEvent
            The pulse with its LSL ``local_clock()`` time.
        """
        with self._lock:
            self.guard.before_pulses(1, float(self._current_intensity()), local_clock())
            line = self.trigger_line
            time_s = self._fire() if line is None else self._fire_by_trigger(line)
            extra = self._pulse_extra()
            if line is not None:
                extra["extra"] = {**extra.get("extra", {}), "trigger": "ttl"}
            event = PulseEvent(
                time_s=time_s,
                intensity_percent=self._current_intensity(),
                device=type(self).__name__,
                index=self.pulse_count,
                **extra,
            )
            self.pulse_count += 1
        self._announce(event)
        return event

    def use_trigger(self, line: TriggerLine | None, *, close_with_unit: bool = False) -> None:
        """Fire through a TTL trigger line from now on (``None``: the serial command again).

        Intensity, arming and status still go over serial; :meth:`fire` checks the unit
        is armed, pulses ``line`` (the marker carries the rising-edge time and
        ``extra["trigger"] == "ttl"``) and, where the unit reports its discharges,
        confirms the pulse afterwards. With ``close_with_unit`` the line is closed by
        :meth:`close` (a line opened for this unit, e.g. from its device profile), and by
        the next call that replaces it with another line or ``None``.
        """
        if line is not self.trigger_line:
            self._release_owned_trigger_line()
        self.trigger_line = line
        self._owned_trigger_line = close_with_unit and line is not None

    @property
    def intensity_percent(self) -> float:
        """The output intensity last set on the unit, % MSO (output A)."""
        return float(self._current_intensity())

    @property
    def abilities(self) -> Abilities:
        """What this model can do (declared in :mod:`labkit.stimulators.registry`)."""
        if self._abilities is None:
            from labkit.stimulators.registry import abilities_for_driver

            self._abilities = abilities_for_driver(self)
        return self._abilities

    @abilities.setter
    def abilities(self, value: Abilities) -> None:
        self._abilities = value

    def coil_temperature_c(self) -> float:
        """The coil temperature, °C, on models whose abilities declare ``coil_temperature``.

        Raises
        ------
        StimulatorError
            The model does not report one (``abilities.coil_temperature`` is False).
        """
        raise StimulatorError(f"{self.abilities.model} does not report its coil temperature")

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Return once the unit reports *ready* (default: at once when it does)."""
        deadline = local_clock() + (5.0 if timeout_s is None else float(timeout_s))
        while not self.status().ready:
            if local_clock() >= deadline:
                raise StimulatorTimeoutError(self._with_link_hint(
                    f"{type(self).__name__} on {self.port!r} not ready within "
                    f"{5.0 if timeout_s is None else timeout_s:.1f} s"))
            threading.Event().wait(0.02)

    def start_arming(self) -> None:
        """Start arming without waiting for *ready* (callers poll :meth:`status`).

        Units whose :meth:`arm` already returns at once need nothing more.
        """
        self.arm()

    def prepare_single_pulses(self) -> None:
        """Put the unit into single-pulse mode (units with a train mode override this)."""
        return None

    def _check_intensity_allowed(self, percent: float) -> None:
        """Refuse an intensity the guard's ceilings forbid (before it is sent)."""
        self.guard.check_intensity(float(percent))

    def add_pulse_listener(self, listener: PulseListener) -> None:
        """Call ``listener(event)`` for every delivered pulse."""
        self._pulse_listeners.append(listener)

    def remove_pulse_listener(self, listener: PulseListener) -> None:
        """Stop calling ``listener``."""
        self._pulse_listeners.remove(listener)

    # ------------------------------------------------------------------ vendor hooks
    @abstractmethod
    def _on_connect(self) -> None:
        """Take remote control after the port opened (lock held)."""

    @abstractmethod
    def _on_close(self) -> None:
        """Disarm and release remote control before the port closes (lock held)."""

    @abstractmethod
    def _keepalive(self) -> None:
        """Send the vendor's keep-alive message (lock held)."""

    @abstractmethod
    def _fire(self) -> float:
        """Send the trigger; return ``local_clock()`` at the moment it was written."""

    @abstractmethod
    def _current_intensity(self) -> float:
        """Intensity of output A (% MSO) used for the pulse marker."""

    def _pulse_extra(self) -> dict:
        """Extra :class:`PulseEvent` fields (BiStim B intensity, IPI...)."""
        return {}

    def _fire_by_trigger(self, line: TriggerLine) -> float:
        """Pulse ``line`` after :meth:`_check_trigger_ready`; confirm; return the edge time."""
        self._check_trigger_ready()
        time_s = line.pulse()
        self._confirm_trigger(time_s)
        return time_s

    def _check_trigger_ready(self) -> None:  # noqa: B027 - optional hook
        """Raise if the unit would ignore a trigger now (vendor hook; lock held)."""

    def _confirm_trigger(self, time_s: float) -> None:  # noqa: B027 - optional hook
        """Check the unit discharged after a trigger, where it reports it (vendor hook)."""

    # ------------------------------------------------------------------ I/O helpers
    def _port(self) -> serial.SerialBase:
        if self._serial is None:
            raise NotConnectedError(
                f"{type(self).__name__} on {self.port!r} is not connected; call connect() first"
            )
        if self.fault is not None:
            raise NotConnectedError(
                f"{type(self).__name__} on {self.port!r} failed earlier ({self.fault}); "
                "close() and connect() again"
            )
        return self._serial

    def _write(self, data: bytes) -> float:
        """Write ``data`` (lock held).

        Returns
        -------
        float
            ``local_clock()`` taken just before the write: the device acts on the command
            only after its bytes arrive, so this time never lies after the discharge.
        """
        port = self._port()
        if self._resync_needed:
            self._resync()
        sent_s = local_clock()
        try:
            write_all(port, data, self.timeout_s)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            self._latch(StimulatorError(
                self._with_link_hint(f"writing {data!r} to {self.port!r} failed: {exc}")))
            raise self.fault from exc
        self._last_io_s = local_clock()
        return sent_s

    def _read_exact(self, n: int, command: bytes) -> bytes:
        """Read exactly ``n`` bytes or raise :class:`StimulatorTimeoutError`."""
        port = self._port()
        buf = bytearray()
        deadline = local_clock() + self.timeout_s
        graced = False
        while len(buf) < n:
            remaining = deadline - local_clock()
            if remaining <= 0:
                if graced or not self._grant_grace():
                    break
                graced = True  # wait once more, and count it
                self.slow_replies += 1
                deadline += self.link_grace_s
                continue
            port.timeout = remaining
            try:
                chunk = port.read(n - len(buf))
            except (serial.SerialException, OSError) as exc:
                self._latch(StimulatorError(
                    self._with_link_hint(f"reading from {self.port!r} failed: {exc}")))
                raise self.fault from exc
            buf.extend(chunk)
        if len(buf) < n:
            self._resync_needed = True
            if buf:
                raise StimulatorProtocolError(
                    f"short reply: expected {n} bytes, got {len(buf)}",
                    command=command, reply=bytes(buf),
                )
            raise StimulatorTimeoutError(self.silence_message(), command=command)
        return bytes(buf)

    def silence_message(self, what: str = "", *, verb: str = "did not answer") -> str:
        """Why the unit said nothing within ``timeout_s``, written for the operator.

        On a simulated port it says that the simulator is behind or stopped (exited with
        its code, stopped, or behind, when :attr:`link_diagnosis` can tell); on real
        hardware it lists :attr:`silence_causes`, most likely first.

        Parameters
        ----------
        what : str
            The command or state that went unanswered (``"status (0x00)"``).
        verb : str
            What the unit failed to do (``"sent no status frame"``).
        """
        asked = f" {what}" if what else ""
        simulator = ports.simulated_device(self.port)
        if simulator is not None and self.link_diagnosis is not None:
            return (f"{simulator} {verb}{asked} within {self.timeout_s:.2f} s on "
                    f"{self.port!r}: {self.link_diagnosis()} (a simulated rig; no cable or "
                    "unit is involved)")
        if simulator is not None:
            return (f"{simulator} {verb}{asked} within {self.timeout_s:.2f} s on "
                    f"{self.port!r}: the simulator process is behind or stopped (a simulated "
                    "rig; no cable or unit is involved)")
        causes = "; ".join(f"({i}) {cause}" for i, cause in enumerate(self.silence_causes, 1))
        return (f"{type(self).__name__} on {self.port!r} {verb}{asked} within "
                f"{self.timeout_s:.2f} s. Likely causes, in order: {causes}")

    def _discard_input(self) -> None:
        """Drop stale bytes before a new command (resynchronises after garbage)."""
        port = self._port()
        try:
            port.reset_input_buffer()
        except FLUSH_ERRORS:  # a vanished line fails the next write, which says so
            pass

    def _resync(self) -> None:
        """Before the next command after a timeout: let a late reply arrive and drop it.

        Reads until the line has been quiet for ``timeout_s`` (so a reply up to twice the
        timeout late is discarded, never taken as the answer to the next command). A line
        that never goes quiet within four timeouts latches a fault. Drivers of units that
        talk unprompted override this.
        """
        port = self._port()
        quiet_s = self.timeout_s
        start = last_s = local_clock()
        while True:
            now = local_clock()
            if now - last_s >= quiet_s:
                break
            if now - start >= 4 * quiet_s:
                self._latch(StimulatorProtocolError(
                    f"{type(self).__name__} on {self.port!r}: the line did not go quiet "
                    f"within {4 * quiet_s:.1f} s after a timeout ({self.stale_bytes} stale "
                    "bytes); close() and connect() again"))
                raise self.fault
            try:
                port.timeout = min(0.02, quiet_s)
                data = port.read(256)
            except (serial.SerialException, OSError) as exc:
                self._latch(StimulatorError(
                    self._with_link_hint(f"reading from {self.port!r} failed: {exc}")))
                raise self.fault from exc
            if data:
                last_s = local_clock()
                self.stale_bytes += len(data)
        self._resync_needed = False
        self.resyncs += 1

    def _latch(self, exc: BaseException) -> None:
        """Remember a fatal fault, and send the unit to its safe state without waiting.

        Later commands refuse until reconnect. The safe-state command (disarm) is written
        once, best effort: on a dead link it is lost, on a confused one it disarms.
        """
        if self.fault is None:
            self.fault = exc
            command, port = self._safe_state_command(), self._serial
            if command and port is not None:
                try:
                    write_all(port, command, min(self.timeout_s, 0.1))
                    port.flush()
                except Exception:  # noqa: BLE001 - best effort on a failing link
                    pass

    def _safe_state_command(self) -> bytes | None:
        """Bytes that disarm the unit, written when a fault latches (vendor hook)."""
        return None

    def _release_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
            ports.release(self.port, self)

    def _announce(self, event: PulseEvent) -> None:
        self.guard.delivered(event)
        for listener in list(self._pulse_listeners):
            listener(event)

    def _keepalive_loop(self) -> None:
        while not self._stop_keepalive.wait(self.keepalive_interval_s / 5):
            if local_clock() - self._last_io_s < self.keepalive_interval_s:
                continue
            with self._lock:
                if self._serial is None or self._stop_keepalive.is_set() or self.fault is not None:
                    continue
                try:
                    self._keepalive()
                except StimulatorTimeoutError as exc:
                    self._latch(exc)
                except StimulatorProtocolError:
                    self.keepalive_errors += 1
                    self._discard_input()
                except StimulatorError as exc:
                    self._latch(exc)
