"""The session's storage-fault latch: low disk space or a failed write stops stimulation.

A recorder's low-space warning, a recorder's write error (disk full, I/O error) or a
failed background log write *trips* the latch. It stays set until it is cleared
explicitly (:meth:`StorageLatch.clear`, through ``Session.clear_storage_fault``):

- :meth:`StorageLatch.check` raises :class:`StorageFaultError` while it is set, so
  anything about to stimulate (a protocol run, a threshold hunt, a panel's fire) refuses
  to start;
- every subscriber (``subscribe(stop)``: a running protocol runner's stop) is called once
  when it trips, so running stimulation stops.

The latch is pure state (no I/O); the session logs what happens to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.recording import LowDiskSpaceError
from labkit.session.log import SessionError

__all__ = ["LOW_DISK_SPACE", "StorageFault", "StorageFaultError", "StorageLatch", "fault_kind"]

#: What the log says while free space is below a recorder's floor.
LOW_DISK_SPACE = "low disk space"


class StorageFaultError(SessionError):
    """Stimulation refused: the session's storage is faulted (see :class:`StorageLatch`)."""


@dataclass(frozen=True)
class StorageFault:
    """A latched storage fault.

    Attributes
    ----------
    what : str
        ``"low disk space"``, ``"disk full"`` or ``"write failed"``.
    source : str
        The recording label or ``"log"``.
    error : str
        The error's text.
    time_s : float
        When it tripped (the session clock), s.
    """

    what: str
    source: str
    error: str
    time_s: float

    def reason(self) -> str:
        """One line for a stop reason or an error message."""
        return f"{self.what} ({self.source}): {self.error}"


def fault_kind(error: BaseException) -> str:
    """``"low disk space"``, ``"disk full"`` or ``"write failed"`` for a storage error."""
    if isinstance(error, LowDiskSpaceError):
        return LOW_DISK_SPACE
    return "disk full" if "disk full" in str(error) else "write failed"


class StorageLatch:
    """Session-wide storage fault: set by a fault, cleared only on purpose.

    Parameters
    ----------
    clock : callable
        Time source for :attr:`StorageFault.time_s`.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._fault: StorageFault | None = None
        self._subscribers: dict[int, Callable[[str], Any]] = {}
        self._next_id = 0

    @property
    def fault(self) -> StorageFault | None:
        """The latched fault, or ``None``."""
        return self._fault

    def trip(self, error: BaseException, source: str) -> StorageFault:
        """Latch ``error`` (the first fault is kept; a worse one replaces low space).

        Every subscriber is called with the reason, each time the fault is set or worsens.
        """
        what = fault_kind(error)
        with self._lock:
            current = self._fault
            if current is not None and not (current.what == LOW_DISK_SPACE
                                            and what != LOW_DISK_SPACE):
                return current
            self._fault = fault = StorageFault(what, source, str(error), float(self._clock()))
            callbacks = list(self._subscribers.values())
        for stop in callbacks:
            try:
                stop(fault.reason())
            except Exception:  # noqa: BLE001, S110 - one subscriber must not block the rest
                pass
        return fault

    def clear(self) -> StorageFault | None:
        """Unlatch; returns the fault that was set (``None`` when none was)."""
        with self._lock:
            fault, self._fault = self._fault, None
        return fault

    def check(self, action: str = "stimulation") -> None:
        """Raise :class:`StorageFaultError` while a fault is latched."""
        fault = self._fault
        if fault is not None:
            raise StorageFaultError(
                f"{fault.reason()}; {action} refused until the storage fault is cleared "
                "(free space, then Session.clear_storage_fault())"
            )

    def subscribe(self, stop: Callable[[str], Any]) -> Callable[[], None]:
        """Call ``stop(reason)`` whenever the latch trips; returns an unsubscribe function."""
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._subscribers[key] = stop

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe
