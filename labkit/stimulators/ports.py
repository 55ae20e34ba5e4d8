"""Exclusive serial ports: one driver per port, in this process and across processes.

Two drivers on one stimulator interleave their commands and take each other's replies
(one counts pulses the other fired). So every driver opens its port through
:func:`open_exclusive`:

* an in-process registry refuses a second opener of the same port (device path after
  resolving symlinks, or the exact URL) and names the driver object that holds it;
* device paths are also opened with pyserial's ``exclusive=True`` (an advisory
  ``flock`` on POSIX, an exclusive open on Windows), so a second *process* is refused
  too; on Linux the error names the processes that have the device open.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from labkit.errors import PortBusyError

__all__ = ["PortHolder", "declare_simulated", "forget_simulated", "holder_of", "observe_writes",
           "open_exclusive", "port_key", "release", "simulated_device", "stop_observing_writes",
           "write_observer"]


@dataclass(frozen=True)
class PortHolder:
    """Who holds a port in this process."""

    key: str
    owner: str
    thread: str
    since: str

    def describe(self) -> str:
        """One line naming the holder, for error messages."""
        return f"{self.owner} (opened {self.since} from thread {self.thread!r})"


_HOLDERS: dict[str, tuple[PortHolder, int]] = {}
_LOCK = threading.Lock()


def port_key(port: str) -> str:
    """Registry key of a port: the URL as given, or the device path with symlinks resolved."""
    if "://" in port:
        return port
    try:
        return os.path.realpath(port)
    except (OSError, ValueError):
        return port


def holder_of(port: str) -> PortHolder | None:
    """The in-process holder of ``port``, or ``None`` when it is free here."""
    with _LOCK:
        entry = _HOLDERS.get(port_key(port))
    return None if entry is None else entry[0]


def _other_processes(path: str) -> list[str]:
    """``"pid N (command)"`` for every other process with ``path`` open (Linux /proc)."""
    found = []
    proc = "/proc"
    if not os.path.isdir(proc):
        return found
    target = os.path.realpath(path)
    me = os.getpid()
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == me:
            continue
        fd_dir = os.path.join(proc, name, "fd")
        try:
            links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        if target in links:
            try:
                with open(os.path.join(proc, name, "cmdline"), "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = "?"
            found.append(f"pid {name} ({cmd[:80]})")
    return found


def open_exclusive(port: str, owner: object, *, rts: bool | None = None,
                   **options) -> serial.SerialBase:
    """Open ``port`` for ``owner`` alone and register it.

    Parameters
    ----------
    port : str
        Device path or pyserial URL.
    owner : object
        The driver taking the port (named in errors raised to later openers).
    rts : bool | None
        Level of the RTS line from the moment the port opens (``None``: pyserial's
        default, asserted). ``False`` keeps a trigger input wired to RTS (MagPy's
        quickFire cable) from seeing an edge when the port opens.
    **options
        Passed to :func:`serial.serial_for_url` (baud rate, timeouts, ...).

    Returns
    -------
    serial.SerialBase
        The open port. Give it back with :func:`release`.

    Raises
    ------
    PortBusyError
        When a driver in this process holds the port (naming it), or another process
        has it locked (naming the processes found, on Linux).
    """
    key = port_key(port)
    holder = PortHolder(key, f"{type(owner).__name__} object at 0x{id(owner):x}",
                        threading.current_thread().name, time.strftime("%H:%M:%S"))
    with _LOCK:
        entry = _HOLDERS.get(key)
        if entry is not None:
            raise PortBusyError(f"serial port {port!r} is already open in this process by "
                                f"{entry[0].describe()}; close() that driver first")
        _HOLDERS[key] = (holder, id(owner))
    try:
        if "://" not in port:
            options["exclusive"] = True
        opened = serial.serial_for_url(port, do_not_open=True, **options)
        if rts is not None:
            opened.rts = rts
        opened.open()
        return opened
    except serial.SerialException as exc:
        with _LOCK:
            _HOLDERS.pop(key, None)
        if "lock" in str(exc).lower():
            others = _other_processes(port)
            who = ", ".join(others) if others else "another process"
            raise PortBusyError(f"serial port {port!r} is locked by {who}; close the "
                                f"program that holds it first ({exc})") from exc
        raise
    except BaseException:
        with _LOCK:
            _HOLDERS.pop(key, None)
        raise


def release(port: str, owner: object) -> None:
    """Forget ``owner``'s claim on ``port`` (after closing it). Other owners are untouched."""
    key = port_key(port)
    with _LOCK:
        entry = _HOLDERS.get(key)
        if entry is not None and entry[1] == id(owner):
            del _HOLDERS[key]


# -- ports served by the simulator ---------------------------------------------------------
_SIMULATED: dict[str, str] = {}


def declare_simulated(port: str, device: str) -> None:
    """Record that ``port`` (URL or pty path) is served by a simulator, named ``device``.

    The simulator declares its own ports, so that a driver's errors can say that a silent
    "unit" is the simulator falling behind or stopped, not a cable or a switched-off unit.
    """
    with _LOCK:
        _SIMULATED[port_key(port)] = device


def forget_simulated(port: str) -> None:
    """Undo :func:`declare_simulated` (the simulator stopped and freed the port)."""
    with _LOCK:
        _SIMULATED.pop(port_key(port), None)


def simulated_device(port: str) -> str | None:
    """What simulates ``port`` (``"the simulated Magstim Rapid² emulator"``), or ``None``."""
    with _LOCK:
        return _SIMULATED.get(port_key(port))


# -- write observers (a simulator in another process) ----------------------------------------
_WRITE_OBSERVERS: dict[str, Callable[[int], None]] = {}


def observe_writes(port: str, observer: Callable[[int], None]) -> None:
    """Have ``observer(n_bytes)`` called just before the drivers write to ``port``.

    A simulator in another process registers one for its pseudo-terminal: a real unit
    takes a command when the host writes it, while the simulator's threads may read it
    later on a loaded machine, so the simulator is told when each write happened (see
    :mod:`labkit.sim.host_writes`). ``observer(-n)`` retracts ``n`` announced bytes that
    were not written (a write that timed out or was interrupted). Ports of real hardware
    have none.

    Parameters
    ----------
    port : str
        The port's path (symlinks resolved, as for :func:`open_exclusive`).
    observer : callable
        Called with the number of bytes about to be written (negative: retracted).
    """
    with _LOCK:
        _WRITE_OBSERVERS[port_key(port)] = observer


def stop_observing_writes(port: str, observer: Callable[[int], None]) -> None:
    """Undo :func:`observe_writes` if ``observer`` is still the one registered for
    ``port`` (a pty path may already serve another simulator)."""
    with _LOCK:
        key = port_key(port)
        if _WRITE_OBSERVERS.get(key) is observer:
            del _WRITE_OBSERVERS[key]


def write_observer(port: str) -> Callable[[int], None] | None:
    """The observer of writes to ``port`` (:func:`observe_writes`).

    Parameters
    ----------
    port : str
        The port's path or URL.

    Returns
    -------
    callable or None
        The observer, or ``None`` (always for real hardware).
    """
    if not _WRITE_OBSERVERS:  # real hardware: no lookup
        return None
    with _LOCK:
        return _WRITE_OBSERVERS.get(port_key(port))
