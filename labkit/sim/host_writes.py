"""When the host wrote its bytes: a side channel from the rig to a simulator process.

A real stimulator takes a command when the host writes it: its own processor reads the
line at once. A simulator in its own process reads its pseudo-terminal in a thread that,
on a loaded machine, may run milliseconds (or, beside other real-time simulators, tens of
milliseconds) later, and the kernel moves pty bytes on in a worker of its own. Stamping a
discharge with that read time would put it later than the host's marker, by an amount
that depends on scheduling; and the amplifiers, which hold samples back by a fixed
latency, could stream the discharge's samples before the emulator got to its command.

So the rig tells the simulator when it writes: just before each write to the emulator's
pseudo-terminal, :class:`HostWriteAnnouncer` (in the rig's process, called by the
drivers' ``write_all``) sends one datagram ``(total bytes written so far, local_clock())``
over a socket pair. Datagrams on a local socket arrive whole and in order, and one sent
before the bytes is already queued when the bytes reach the other end. In the simulator,
:class:`HostWriteLog` matches the bytes read from the pty to those records: the bytes up
to offset ``n`` arrived at the time of the record that covers ``n`` (the unit acts then,
as it would on a wire), and :meth:`HostWriteLog.unhandled` tells the amplifiers that the
host has written bytes the emulator has not handled yet, so that they hold their samples
until it has (see :meth:`labkit.sim.transport.SerialEmulator.input_waiting`).

Bytes no record covers (a third-party program on the pty, or records dropped because the
simulator was stopped long enough for its socket to fill) are stamped when they are read,
as before.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import deque

from labkit.clock import local_clock

__all__ = ["HostWriteAnnouncer", "HostWriteLog", "host_write_channel"]

#: One record: total bytes written after this write (int64), local_clock() before it (f64).
_RECORD = struct.Struct("<qd")


def host_write_channel() -> tuple[socket.socket, socket.socket]:
    """A connected datagram socket pair: (the rig's end, the simulator's end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    return ours, theirs


class HostWriteAnnouncer:
    """The rig's end: announce each write to the simulator's pseudo-terminal.

    Parameters
    ----------
    sock : socket.socket
        The rig's end of :func:`host_write_channel` (non-blocking).

    Notes
    -----
    Registered with :func:`labkit.stimulators.ports.observe_writes`, so the drivers call
    it with the number of bytes they are about to write (negative: bytes announced but not
    written). A record that does not fit the socket (the simulator stopped for long) is
    dropped; totals are cumulative, so the next record puts the simulator right again.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.total_bytes = 0
        #: Records that could not be sent (the simulator's socket was full or closed).
        self.dropped_records = 0

    def __call__(self, n_bytes: int) -> None:
        """Announce ``n_bytes`` about to be written now (negative: retract)."""
        with self._lock:
            self.total_bytes = max(0, self.total_bytes + int(n_bytes))
            record = _RECORD.pack(self.total_bytes, local_clock())
            try:
                self._sock.send(record)
            except OSError:  # full (simulator stopped) or gone: its reads stamp themselves
                self.dropped_records += 1

    def close(self) -> None:
        """Close the rig's end."""
        self._sock.close()


class HostWriteLog:
    """The simulator's end: when did the host write the bytes read from the pty?

    Parameters
    ----------
    sock : socket.socket
        The simulator's end of :func:`host_write_channel`.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._lock = threading.Lock()
        self._records: deque[tuple[int, float]] = deque()  # (total after write, time)
        #: Total bytes the host announced (its last record).
        self.announced_bytes = 0

    def _drain(self) -> None:
        """Take every record queued on the socket (lock held)."""
        while True:
            try:
                data = self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the rig's end is closed
                return
            if len(data) != _RECORD.size:
                return  # end of file (closed) or a foreign datagram
            total, time_s = _RECORD.unpack(data)
            while self._records and self._records[-1][0] >= total:
                self._records.pop()  # a retraction: those bytes never came
            self._records.append((total, time_s))
            self.announced_bytes = total

    def arrival_s(self, read_end: int) -> float | None:
        """When the host wrote the byte at offset ``read_end - 1`` of its stream.

        Parameters
        ----------
        read_end : int
            Total bytes read from the pty so far (the chunk just read ends there).

        Returns
        -------
        float | None
            ``local_clock()`` time of the write that carried that byte, or ``None`` when
            no record covers it (bytes not written through a labkit driver).
        """
        with self._lock:
            self._drain()
            records = self._records
            while records and records[0][0] < read_end:
                records.popleft()  # writes wholly read before this chunk ended
            if not records:
                return None
            return records[0][1]

    def unhandled(self, handled_bytes: int) -> bool:
        """True when the host announced more bytes than ``handled_bytes``."""
        with self._lock:
            self._drain()
            return self.announced_bytes > handled_bytes

    def close(self) -> None:
        """Close the simulator's end."""
        self._sock.close()
