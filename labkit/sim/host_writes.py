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
drivers' ``write_all``) sends two datagrams over a socket pair: ``(total bytes written
after this write, NaN)``, which says bytes are coming, then ``(the same total,
local_clock())``, which dates them. Datagrams on a local socket arrive whole and in order,
and those sent before the bytes are already queued when the bytes reach the other end; as
the date is read after the first datagram went out, an amplifier that saw no announcement
streams only samples older than the date. In the simulator,
:class:`HostWriteLog` matches the bytes read from the pty to those records: the bytes up
to offset ``n`` arrived at the time of the record that covers ``n`` (the unit acts then,
as it would on a wire), and :meth:`HostWriteLog.unhandled` tells the amplifiers that the
host has written bytes the emulator has not handled yet, so that they hold their samples
until it has (see :meth:`labkit.sim.transport.SerialEmulator.input_waiting`).

Bytes no record covers (a third-party program on the pty, or records dropped because the
simulator was stopped long enough for its socket to fill) are dated when they are read,
as before, and do not shift the dates of later writes. Announced bytes that never arrive
(a write interrupted before it reached the port, the pty's output flushed by another
program) are given up after :data:`STALE_S` with nothing waiting at the unit's input.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
from collections import deque

from labkit.clock import local_clock

__all__ = ["STALE_S", "HostWriteAnnouncer", "HostWriteLog", "host_write_channel"]

#: One record: total bytes written after this write (int64), local_clock() before it (f64;
#: NaN in the first record of a write, which only says bytes are coming).
_RECORD = struct.Struct("<qd")
#: Seconds after which announced bytes that did not arrive are given up.
STALE_S = 0.5


def host_write_channel() -> tuple[socket.socket, socket.socket]:
    """A connected datagram socket pair.

    Returns
    -------
    tuple of socket.socket
        The rig's end (non-blocking) and the simulator's end.
    """
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
        """Announce a write.

        Parameters
        ----------
        n_bytes : int
            Bytes about to be written now; negative: that many announced bytes were not
            written after all (a write that timed out or was interrupted).
        """
        n_bytes = int(n_bytes)
        if n_bytes == 0:
            return
        with self._lock:
            self.total_bytes = max(0, self.total_bytes + n_bytes)
            if n_bytes > 0:  # bytes are coming: then when
                self._send(_RECORD.pack(self.total_bytes, math.nan))
            self._send(_RECORD.pack(self.total_bytes, local_clock()))

    def _send(self, record: bytes) -> None:
        try:
            self._sock.send(record)
        except OSError:  # full (simulator stopped) or gone: its reads date themselves
            self.dropped_records += 1

    def close(self) -> None:
        """Close the rig's end."""
        self._sock.close()


class HostWriteLog:
    """The simulator's end: when did the host write the bytes read from the pty?

    Offsets are counted in the host's stream; ``offset_bytes`` converts the simulator's
    counts of bytes read and handled into it (bytes nobody announced are not part of it,
    announced bytes that never came are).

    Parameters
    ----------
    sock : socket.socket
        The simulator's end of :func:`host_write_channel`.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._lock = threading.Lock()
        self._records: deque[list] = deque()  # [total after write, time or NaN]
        #: Total bytes the host announced (its last record).
        self.announced_bytes = 0
        #: Host offset minus the simulator's count of bytes read (see the class notes).
        self.offset_bytes = 0
        #: Bytes read that no record covered (another program on the pty).
        self.foreign_bytes = 0
        #: Announced bytes given up after :data:`STALE_S` (they never arrived).
        self.lost_bytes = 0

    def _drain(self) -> None:
        """Take every record queued on the socket (lock held)."""
        records = self._records
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
            kept_s = math.nan
            while records and records[-1][0] > total:  # a retraction
                kept_s = records.pop()[1]
            if records and records[-1][0] == total:
                if math.isnan(records[-1][1]):
                    records[-1][1] = time_s  # the date of the bytes announced just before
            else:  # a new write, or what is left of a partly written one
                records.append([total, kept_s if not math.isnan(kept_s) else time_s])
            self.announced_bytes = total

    def arrival_s(self, read_end: int) -> float | None:
        """When the host wrote the last byte of the chunk just read.

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
            end = read_end + self.offset_bytes
            records = self._records
            if end > self.announced_bytes:  # it ends in bytes nobody announced
                surplus = end - self.announced_bytes
                self.offset_bytes -= surplus
                self.foreign_bytes += surplus
                while records and records[0][0] <= self.announced_bytes:
                    records.popleft()
                return None
            while records and records[0][0] < end:
                records.popleft()  # writes wholly read before this chunk ended
            if not records or math.isnan(records[0][1]):
                return None
            return float(records[0][1])

    def unhandled(self, handled_bytes: int, *, input_idle: bool = False) -> bool:
        """True when the host announced bytes the simulator has not handled.

        Parameters
        ----------
        handled_bytes : int
            Bytes read from the pty and handled so far (the simulator's count).
        input_idle : bool
            Nothing waits at the unit's input (pty, queue, handler): announced bytes older
            than :data:`STALE_S` are then given up as lost.

        Returns
        -------
        bool
            True while announced bytes are on their way or waiting to be handled.
        """
        with self._lock:
            self._drain()
            handled = handled_bytes + self.offset_bytes
            if self.announced_bytes <= handled:
                return False
            if input_idle:
                first = next((r for r in self._records if r[0] > handled), None)
                dated = first is not None and not math.isnan(first[1])
                if first is None or (dated and local_clock() - first[1] > STALE_S):
                    self.lost_bytes += self.announced_bytes - handled
                    self.offset_bytes += self.announced_bytes - handled
                    self._records.clear()
                    return False
            return True

    def close(self) -> None:
        """Close the simulator's end."""
        self._sock.close()
