"""Byte transport between an emulated device and its host.

An emulator is reachable two ways at once:

* an in-process pyserial URL ``labkitsim://<name>`` (any OS), served by
  :mod:`labkit.sim.urlhandlers.protocol_labkitsim`;
* on POSIX, a pseudo-terminal whose slave path (``/dev/pts/N``) an unmodified external
  program opens like a real serial port.

Replies go to the transport that sent the last command.

A device acts on a command when its bytes arrive, not when the emulator's thread gets
round to them: :meth:`SerialEmulator.command_time_s` is the ``local_clock()`` time at which
the bytes being handled arrived (written by the in-process host, or read from the pty), so
a discharge a command causes is stamped with it. On a busy host the emulator's thread may
run milliseconds later; the simulated unit, like a real one with its own processor, does
not. Over the pty, "arrived" is when the host *wrote* the bytes where the rig announces its
writes (:mod:`labkit.sim.host_writes`, a simulator in its own process), else when they were
read. :meth:`SerialEmulator.input_waiting` tells the simulated amplifiers that the host has
written bytes not handled yet: they hold their samples until the emulator has placed the
discharges those bytes cause.
"""

from __future__ import annotations

import os
import select
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque

from labkit.clock import local_clock
from labkit.errors import ConfigError
from labkit.sim.host_writes import HostWriteLog
from labkit.stimulators import ports

_REGISTRY: weakref.WeakValueDictionary[str, SerialEmulator] = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()
_COUNTER = [0]

URL_SCHEME = "labkitsim"


def _forget_ports(served: tuple[str | None, ...]) -> None:
    for port in served:
        if port is not None:
            ports.forget_simulated(port)


def lookup(name: str) -> SerialEmulator:
    """Return the running emulator registered under ``name``."""
    with _REGISTRY_LOCK:
        emulator = _REGISTRY.get(name)
    if emulator is None:
        raise LookupError(f"no running labkit emulator named {name!r}")
    return emulator


class ByteChannel:
    """A thread-safe byte FIFO with blocking reads."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cond = threading.Condition()

    def write(self, data: bytes) -> None:
        """Append bytes and wake readers."""
        with self._cond:
            self._buf.extend(data)
            self._cond.notify_all()

    def read(self, size: int, timeout_s: float | None) -> bytes:
        """Return up to ``size`` bytes, waiting until ``size`` arrived or the timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while len(self._buf) < size:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            out = bytes(self._buf[:size])
            del self._buf[:size]
            return out

    def __len__(self) -> int:
        with self._cond:
            return len(self._buf)

    def clear(self) -> None:
        """Drop everything buffered."""
        with self._cond:
            self._buf.clear()


class _HostInput:
    """Host bytes waiting for the emulator: chunks stamped with their arrival time.

    Each chunk is ``(data, arrival_s, pty_bytes)``; ``pty_bytes`` counts the bytes that
    came from the pseudo-terminal (0 for the in-process URL host).
    """

    def __init__(self) -> None:
        self._chunks: deque[tuple[bytes, float, int]] = deque()
        self._cond = threading.Condition()
        self._taken = False  # chunks taken by the emulator and not yet handled

    def put(self, data: bytes, arrival_s: float | None = None, pty_bytes: int = 0) -> None:
        """Queue one chunk (``arrival_s`` None: now, read under the queue's lock, so that
        an amplifier that finds the queue empty streams only samples older than that) and
        wake the emulator. An empty ``data`` only counts ``pty_bytes`` as handled."""
        with self._cond:
            if arrival_s is None:
                arrival_s = local_clock()
            self._chunks.append((data, arrival_s, pty_bytes))
            self._cond.notify_all()

    def take_all(self, timeout_s: float) -> list[tuple[bytes, float, int]]:
        """Every queued chunk, waiting up to ``timeout_s`` for the first; they count as
        waiting until :meth:`handled`."""
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout_s)
            chunks = list(self._chunks)
            self._chunks.clear()
            self._taken = bool(chunks)
            return chunks

    def handled(self) -> None:
        """The chunks last taken are handled."""
        with self._cond:
            self._taken = False

    def waiting(self) -> bool:
        """True while chunks are queued or taken and not handled yet."""
        with self._cond:
            return bool(self._chunks) or self._taken


class SerialEmulator(ABC):
    """Base class of device emulators: transports, a processing thread and a clock tick.

    Subclasses implement :meth:`handle_bytes` (parse what the host sent and call
    :meth:`reply`) and :meth:`tick` (time-driven behaviour such as keep-alive timeouts).

    Parameters
    ----------
    name : str | None
        Registry name used in the URL; a unique one is made up when omitted.
    pty : bool
        Also expose a pseudo-terminal (POSIX only).
    tick_s : float
        Period of :meth:`tick` calls.
    """

    def __init__(self, name: str | None = None, *, pty: bool = True, tick_s: float = 0.01):
        with _REGISTRY_LOCK:
            _COUNTER[0] += 1
            self.name = name or f"{type(self).__name__.lower()}-{os.getpid()}-{_COUNTER[0]}"
            if self.name in _REGISTRY:
                raise ValueError(f"an emulator named {self.name!r} is already running")
            _REGISTRY[self.name] = self
        self._tick_s = tick_s
        self._from_host = _HostInput()
        self._host_writes: HostWriteLog | None = None
        self._pty_read_bytes = 0  # bytes read from the pty so far
        self._pty_handled_bytes = 0  # of those, handled (or dropped by a silent unit)
        self._pty_reading = False  # between a read of the pty and its chunk being queued
        #: Time of the next discharge the unit's own timing owes (a hardware-timed
        #: train's next pulse), None when it owes none; the train's thread sets it.
        self._device_due_s: float | None = None
        self._to_url_host = ByteChannel()
        self._want_pty = pty and os.name == "posix"
        self._pty_master: int | None = None
        self._pty_slave: int | None = None
        self.pty_path: str | None = None
        self._reply_to = "url"
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._pty_lock = threading.Lock()
        #: When True the device neither reads nor answers: a pulled cable.
        self.silent = False
        self._held: list[list] = []
        #: Level of the TTL trigger input and rising edges seen on it.
        self.trigger_level = False
        self.trigger_edges = 0
        self._held_lock = threading.Lock()
        self._rx = threading.local()  # arrival time of the bytes the process thread handles
        if self._want_pty:
            self._open_pty()
        # a driver's timeout on these ports then names the simulator, not a cable
        served = tuple(p for p in (self.url, self.pty_path) if p is not None)
        for port in served:
            ports.declare_simulated(port, f"the simulated {self.display_name} emulator")
        weakref.finalize(self, _forget_ports, served)
        self.start()

    # ----------------------------------------------------------------- transports
    @property
    def display_name(self) -> str:
        """The emulated unit as the vendor registry names it (``"Magstim Rapid²"``)."""
        from labkit.stimulators.registry import MODELS

        vendor = type(self).__name__.removesuffix("Emulator").lower()
        for spec in MODELS.values():
            if spec.emulator == (vendor, getattr(self, "model", None)):
                return spec.abilities.model
        return type(self).__name__

    @property
    def url(self) -> str:
        """In-process pyserial URL of this emulator."""
        return f"{URL_SCHEME}://{self.name}"

    def _open_pty(self) -> None:
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self._pty_master, self._pty_slave = master, slave
        self.pty_path = os.ttyname(slave)

    def attach_host_writes(self, log: HostWriteLog) -> None:
        """Take the pty's arrival times from the host's announcements (see
        :mod:`labkit.sim.host_writes`); the emulator closes ``log`` when it stops."""
        self._host_writes = log

    def input_waiting(self) -> bool:
        """True when host bytes wait at the unit's input, not yet handled.

        Bytes the host wrote (URL) or that sit in the pseudo-terminal, not read yet, or
        being handled right now, or announced by the host (:meth:`attach_host_writes`)
        and not handled yet (on their way through the kernel's pty). A starved emulator
        (its threads woke late on a loaded host) finds them there: the host sent them
        while the emulator was not running. The simulated amplifiers hold their samples
        while this is true, so that a discharge those bytes cause is placed before its
        samples are streamed.
        """
        # in the order bytes move: pty -> pty thread -> queue -> processing thread; the
        # host's announcements (sent before its bytes) last, so that bytes on their way
        # through the kernel are seen and announced bytes that never came are given up
        master = self._pty_master
        if master is not None:
            try:
                if select.select([master], [], [], 0)[0]:
                    return True
            except (OSError, ValueError):
                pass
        if self._pty_reading or self._from_host.waiting():
            return True
        log = self._host_writes
        return log is not None and log.unhandled(self._pty_handled_bytes, input_idle=True)

    def holds_samples(self) -> bool:
        """True while the amplifiers must hold their samples: the emulator runs and has
        host bytes it has not handled (:meth:`input_waiting`), or its own timing owes a
        discharge whose time has passed (a train's thread that runs late)."""
        if not self._threads or self._stop.is_set():
            return False
        due = self._device_due_s
        if due is not None and due <= local_clock():
            return True
        return self.input_waiting()

    def host_write(self, data: bytes) -> None:
        """Bytes written by the in-process (URL) host."""
        self._reply_to = "url"
        if not self.silent:
            self._from_host.put(bytes(data))

    def host_read(self, size: int, timeout_s: float | None) -> bytes:
        """Bytes read by the in-process (URL) host."""
        return self._to_url_host.read(size, timeout_s)

    def host_in_waiting(self) -> int:
        """Number of reply bytes waiting for the in-process host."""
        return len(self._to_url_host)

    def host_reset_input(self) -> None:
        """The in-process host discards unread replies."""
        self._to_url_host.clear()

    def set_trigger_input(self, level: bool) -> None:
        """Drive the unit's TTL trigger input; a rising edge calls :meth:`on_trigger`.

        The in-process URL port wires its RTS line here (a pty has no modem lines), and
        any :class:`~labkit.stimulators.trigger.TriggerLine` can be pointed at it.
        """
        level = bool(level)
        rising = level and not self.trigger_level
        self.trigger_level = level
        if rising and not self.silent:
            self.trigger_edges += 1
            self.on_trigger()

    def on_trigger(self) -> None:  # noqa: B027 - optional hook
        """A rising edge on the trigger input (units that take TTL triggers override)."""

    def delay_replies(self, prefix: bytes, delay_s: float, count: int = 1) -> None:
        """Fault injection: send the next ``count`` replies that start with ``prefix``
        ``delay_s`` late (the device acts at once; only its answer is late)."""
        with self._held_lock:
            self._held.append([bytes(prefix), float(delay_s), int(count)])

    def reply(self, data: bytes) -> None:
        """Send bytes to the host that spoke last (dropped while :attr:`silent`)."""
        if self.silent or not data:
            return
        with self._held_lock:
            for rule in self._held:
                if data.startswith(rule[0]) and rule[2] > 0:
                    rule[2] -= 1
                    timer = threading.Timer(rule[1], self._deliver, (data, self._reply_to))
                    timer.daemon = True
                    timer.start()
                    return
        self._deliver(data, self._reply_to)

    def _deliver(self, data: bytes, target: str) -> None:
        if self.silent or self._stop.is_set():
            return
        if target == "pty" and self._pty_master is not None:
            with self._pty_lock:
                try:
                    os.write(self._pty_master, data)
                except OSError:
                    pass
        else:
            self._to_url_host.write(data)

    # ----------------------------------------------------------------- threads
    def start(self) -> None:
        """Start processing (called by the constructor)."""
        if self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._process_loop, daemon=True,
                                          name=f"{self.name}-process")]
        if self._pty_master is not None:
            self._threads.append(threading.Thread(target=self._pty_loop, daemon=True,
                                                  name=f"{self.name}-pty"))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the threads, close the pty and unregister."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
        _forget_ports((self.url, self.pty_path))
        for fd in (self._pty_master, self._pty_slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._pty_master = self._pty_slave = None
        if self._host_writes is not None:
            self._host_writes.close()
            self._host_writes = None
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.name) is self:
                del _REGISTRY[self.name]

    close = stop

    def __enter__(self) -> SerialEmulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _pty_loop(self) -> None:
        master = self._pty_master
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                self._pty_reading = True
                data = os.read(master, 4096)
            except OSError:
                self._pty_reading = False
                return
            try:
                if not data:
                    continue
                self._pty_read_bytes += len(data)
                log = self._host_writes
                written_s = None if log is None else log.arrival_s(self._pty_read_bytes)
                arrival_s = local_clock() if written_s is None else written_s
                if self.silent:  # a pulled cable: the bytes are lost (counted as handled)
                    self._from_host.put(b"", arrival_s, len(data))
                    continue
                self._reply_to = "pty"
                self._from_host.put(data, arrival_s, len(data))
            finally:
                self._pty_reading = False

    def _process_loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            chunks = self._from_host.take_all(self._tick_s)
            try:
                for data, arrived_s, pty_bytes in chunks:
                    self._rx.arrival_s = arrived_s
                    try:
                        if data:
                            self.handle_bytes(data)
                    finally:
                        self._rx.arrival_s = None
                        self._pty_handled_bytes += pty_bytes  # this thread only
            finally:
                self._from_host.handled()
            now = time.monotonic()
            if now >= next_tick:
                self.tick()
                next_tick = now + self._tick_s

    # ----------------------------------------------------------------- device logic
    def command_time_s(self) -> float:
        """When the device acts: arrival of the bytes being handled, else now.

        In the processing thread, while :meth:`handle_bytes` runs, this is the
        ``local_clock()`` time the host's bytes arrived; anywhere else (a device-timed
        train, a TTL edge) it is the current time.
        """
        arrived = getattr(self._rx, "arrival_s", None)
        return local_clock() if arrived is None else min(arrived, local_clock())

    #: The unit's command → discharge time, s (see :meth:`set_discharge_delay_ms`).
    discharge_delay_s: float = 0.0

    def set_discharge_delay_ms(self, delay_ms: float) -> None:
        """Make every discharge follow its command (or trigger edge) by ``delay_ms``.

        A real unit takes its own processing time, and the command its time on the wire
        (a 3-byte Magstim ``EH`` is 3.1 ms at 9600 baud); 0–100 ms, default 0.
        """
        value = float(delay_ms)
        if not 0.0 <= value <= 100.0:
            raise ConfigError(f"must be in 0–100 ms, got {delay_ms!r}",
                              field="discharge_delay_ms")
        self.discharge_delay_s = value / 1000.0

    def discharge_time_s(self) -> float:
        """When a discharge the device is making now happens: :meth:`command_time_s`
        plus the unit's command → discharge delay."""
        return self.command_time_s() + self.discharge_delay_s

    @abstractmethod
    def handle_bytes(self, data: bytes) -> None:
        """Consume bytes from the host; call :meth:`reply` with any answer."""

    def tick(self) -> None:  # noqa: B027 - optional hook
        """Time-driven behaviour, called every ``tick_s`` seconds."""
