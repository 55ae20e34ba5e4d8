"""Client of the Localite TMS Navigator's JSON interface (TCP, port 6666).

The navigator writes JSON objects back to back on one TCP connection: the coil pose
(``{"coil_0_position": {"q0", "qx", "qy", "qz", "x", "y", "z"}}``, mm and a unit
quaternion; the string ``"None"`` while the tracker cannot see the coil), the coil status
(``{"coil_0_status": "OK"}`` or ``"BLOCKED"``), whether the target is reached
(``{"coil_0_position_control": {"position_reached": "TRUE", "index": n}}``), ``coil_0_didt``
after each pulse, and the answers to requests. Requests are single objects:
``{"get": key}``, ``{"coil_0_target_index": n}``, ``{"coil_0_amplitude": n}`` (1-99),
``{"single_pulse": "COIL_0"}``, and an MEP sent back for the navigator's map as
``{"coil_0_response": {"mepmaxtime": µs, "mepamplitude": µV, "mepmin": µV, "mepmax": µV}}``
(time 0-100000 µs, voltages within ±51200 µV). Invalid requests come back as
``{"error": <request>}``. Facts from the public ctrl-localite client (pyreiz); no code of
it is used here.

:class:`LocaliteClient` owns the socket and a reader thread; everything it decides
(pose age, distance to target, gate) is done by the pure modules :mod:`.pose` and
:mod:`.gate`.
"""

from __future__ import annotations

import collections
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.clock import local_clock
from labkit.errors import NavigationError
from labkit.navigation.framing import JSONStreamDecoder
from labkit.navigation.gate import PulsePose, pulse_pose
from labkit.navigation.pose import CoilPose

__all__ = ["DEFAULT_PORT", "LocaliteClient", "NavigationEvent", "mep_response_message"]

#: The navigator's TCP port.
DEFAULT_PORT = 6666
#: Range of ``mepmaxtime`` (µs) and of the voltages (µV) the navigator accepts.
MEP_TIME_RANGE_US = (0, 100_000)
MEP_VOLTAGE_LIMIT_UV = 51_200


@dataclass(frozen=True)
class NavigationEvent:
    """Something that happened on the navigator link (for the session log).

    Attributes
    ----------
    time_s : float
        LSL time, s.
    kind : str
        ``"connected"``, ``"disconnected"``, ``"reconnect-failed"``, ``"error-reply"``,
        ``"invalid-message"`` or ``"tracking-lost"``.
    detail : str
        What exactly.
    """

    time_s: float
    kind: str
    detail: str = ""


def mep_response_message(
    coil: int, amplitude_uv: float, latency_ms: float, min_uv: float, max_uv: float
) -> dict[str, Any]:
    """The ``coil_N_response`` message sending one MEP back to the navigator.

    Parameters
    ----------
    coil : int
        Coil 0 or 1.
    amplitude_uv : float
        Peak-to-peak amplitude, µV.
    latency_ms : float
        Time of the MEP's extreme (or onset) after the pulse, ms; sent in µs.
    min_uv, max_uv : float
        The MEP's minimum and maximum, µV.

    Raises
    ------
    ValueError
        When a value is outside what the navigator accepts (named, with the range).
    """
    time_us = int(round(float(latency_ms) * 1000.0))
    lo, hi = MEP_TIME_RANGE_US
    if not (lo <= time_us <= hi):
        raise ValueError(f"MEP latency {latency_ms!r} ms is outside 0-{hi // 1000} ms "
                         "(the navigator's mepmaxtime range)")
    values = {"mepamplitude": amplitude_uv, "mepmin": min_uv, "mepmax": max_uv}
    out: dict[str, Any] = {"mepmaxtime": time_us}
    for key, value in values.items():
        v = float(value)
        if not (math.isfinite(v) and -MEP_VOLTAGE_LIMIT_UV <= v <= MEP_VOLTAGE_LIMIT_UV):
            raise ValueError(f"MEP {key} = {value!r} µV is outside ±{MEP_VOLTAGE_LIMIT_UV} µV "
                             "(the navigator's range)")
        out[key] = int(round(v))
    return {f"coil_{int(coil)}_response": out}


@dataclass
class _Waiter:
    key: str
    event: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: Any = None


class LocaliteClient:
    """A connection to a Localite TMS Navigator (or its emulator).

    Parameters
    ----------
    host : str
        The navigator PC's address.
    port : int
        TCP port (6666).
    coil : int
        Which coil the client follows (0 or 1).
    max_pose_age_s : float
        A pose older than this at the moment of a pulse is not taken as the pulse's pose.
    auto_reconnect : bool
        After a lost connection, try again every ``reconnect_interval_s``.
    reconnect_interval_s : float
        Seconds between reconnection attempts.
    history_s : float
        How long received poses are kept (to find the pose at a pulse time).
    clock : callable
        Time source (LSL ``local_clock``).

    Attributes
    ----------
    events : list of NavigationEvent
        Everything that happened on the link, in order.
    targets : dict[int, CoilPose]
        Target poses by navigator target index, as labkit defined them (for distances).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        coil: int = 0,
        max_pose_age_s: float = 0.5,
        auto_reconnect: bool = True,
        reconnect_interval_s: float = 0.5,
        history_s: float = 10.0,
        clock: Callable[[], float] = local_clock,
    ) -> None:
        if coil not in (0, 1):
            raise ValueError(f"LocaliteClient coil = {coil!r}; allowed: 0 or 1")
        if not (0 < max_pose_age_s <= 60):
            raise ValueError(f"LocaliteClient max_pose_age_s = {max_pose_age_s!r} is outside "
                             "(0, 60] s")
        if not (1 <= int(port) <= 65535):
            raise ValueError(f"LocaliteClient port = {port!r} is outside 1-65535")
        self.host, self.port, self.coil = host, int(port), coil
        self.max_pose_age_s = float(max_pose_age_s)
        self.auto_reconnect = auto_reconnect
        self.reconnect_interval_s = float(reconnect_interval_s)
        self.clock = clock
        self.events: list[NavigationEvent] = []
        self.targets: dict[int, CoilPose] = {}
        self.target_index: int | None = None
        self.messages_received = 0
        self._prefix = f"coil_{coil}_"
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._latest: dict[str, tuple[Any, float]] = {}
        self._poses: collections.deque[CoilPose] = collections.deque()
        self._history_s = float(history_s)
        self._waiters: list[_Waiter] = []
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[NavigationEvent], None]] = []

    # -- life cycle ------------------------------------------------------------------------
    def connect(self, timeout_s: float = 2.0) -> LocaliteClient:
        """Open the connection and start reading.

        Raises
        ------
        NavigationError
            When the navigator does not accept the connection within ``timeout_s``.
        """
        if self._thread is not None:
            return self
        self._open(timeout_s)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="localite-reader", daemon=True)
        self._thread.start()
        return self

    def _open(self, timeout_s: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except OSError as exc:
            raise NavigationError(
                f"cannot connect to the navigator at {self.host}:{self.port}: {exc}"
            ) from exc
        sock.settimeout(0.1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._decoder = JSONStreamDecoder()
        self._connected.set()
        self._event("connected", f"{self.host}:{self.port}")

    def close(self) -> None:
        """Stop reading and close the connection (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        self._drop_socket()

    def __enter__(self) -> LocaliteClient:
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True while the TCP connection is up."""
        return self._connected.is_set()

    def add_listener(self, callback: Callable[[NavigationEvent], None]) -> None:
        """Call ``callback(event)`` (from the reader thread) for every link event."""
        self._listeners.append(callback)

    # -- reading ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            sock = self._sock
            if sock is None:
                if not self.auto_reconnect:
                    return
                self._stop.wait(self.reconnect_interval_s)
                if self._stop.is_set():
                    return
                try:
                    self._open(timeout_s=self.reconnect_interval_s)
                except NavigationError as exc:
                    self._event("reconnect-failed", str(exc))
                continue
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self._lost(f"read failed: {exc}")
                continue
            if not data:
                self._lost("the navigator closed the connection")
                continue
            now = self.clock()
            for message in self._decoder.feed(data):
                self._handle(message, now)

    def _lost(self, why: str) -> None:
        self._drop_socket()
        self._event("disconnected", why)
        with self._state_lock:
            waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.error = NavigationError(f"navigator disconnected while waiting for {w.key!r}")
            w.event.set()

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        self._connected.clear()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _event(self, kind: str, detail: str = "") -> None:
        event = NavigationEvent(self.clock(), kind, detail)
        self.events.append(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a listener must not stop the reader
                pass

    def _handle(self, message: Any, now: float) -> None:
        if not isinstance(message, dict) or len(message) == 0:
            self._event("invalid-message", repr(message)[:200])
            return
        self.messages_received += 1
        for key, value in message.items():
            if key == self._prefix + "position":
                if isinstance(value, dict):
                    try:
                        pose = CoilPose.from_localite(value, now)
                    except ValueError as exc:
                        self._event("invalid-message", str(exc))
                        continue
                    with self._state_lock:
                        self._poses.append(pose)
                        while self._poses and self._poses[0].time_s < now - self._history_s:
                            self._poses.popleft()
                else:
                    self._event("tracking-lost", f"{key} = {value!r}")
            with self._state_lock:
                self._latest[key] = (value, now)
                waiters = [w for w in self._waiters if w.key == key or key == "error"]
                for w in waiters:
                    self._waiters.remove(w)
            if key == "error":
                self._event("error-reply", json.dumps(value)[:200])
            for w in waiters:
                if key == "error":
                    w.error = NavigationError(f"the navigator refused {json.dumps(value)}")
                else:
                    w.value = value
                w.event.set()

    # -- requests --------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON object to the navigator.

        Raises
        ------
        NavigationError
            When not connected or the write fails.
        """
        data = json.dumps(message).encode("utf-8")
        with self._send_lock:
            sock = self._sock
            if sock is None:
                raise NavigationError(
                    f"not connected to the navigator at {self.host}:{self.port}; "
                    f"{json.dumps(message)} not sent")
            try:
                sock.sendall(data)
            except OSError as exc:
                raise NavigationError(f"sending {json.dumps(message)} failed: {exc}") from exc

    def request(self, key: str, timeout_s: float = 1.0) -> Any:
        """Ask for ``key`` (``{"get": key}``) and return the value of the reply.

        Raises
        ------
        NavigationError
            On an ``error`` reply, a disconnect, or no reply within ``timeout_s``.
        """
        waiter = _Waiter(key)
        with self._state_lock:
            self._waiters.append(waiter)
        try:
            self.send({"get": key})
        except NavigationError:
            with self._state_lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise
        if not waiter.event.wait(timeout_s):
            with self._state_lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise NavigationError(f"no answer to {{'get': {key!r}}} within {timeout_s} s")
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def latest(self, key: str) -> tuple[Any, float] | None:
        """Last value received for ``key`` and its receive time (LSL s), or None."""
        with self._state_lock:
            return self._latest.get(key)

    def set_target(self, index: int, pose: CoilPose | None = None) -> None:
        """Select navigator target ``index``; ``pose`` is its position for distances."""
        if not (isinstance(index, int) and index >= 0):
            raise ValueError(f"target index {index!r} must be an integer >= 0")
        if pose is not None:
            self.targets[index] = pose
        self.send({self._prefix + "target_index": index})
        self.target_index = index

    def set_amplitude(self, percent: int) -> None:
        """Set the stimulator amplitude through the navigator (1-99 %)."""
        if not (isinstance(percent, int) and 1 <= percent <= 99):
            raise ValueError(f"navigator amplitude {percent!r} is outside 1-99 % "
                             "(whole numbers)")
        self.send({self._prefix + "amplitude": percent})

    def send_mep(self, amplitude_uv: float, latency_ms: float, min_uv: float,
                 max_uv: float) -> None:
        """Send one MEP back to the navigator (shown on its map at the pulse's pose)."""
        self.send(mep_response_message(self.coil, amplitude_uv, latency_ms, min_uv, max_uv))

    # -- poses -----------------------------------------------------------------------------
    def pose(self) -> CoilPose | None:
        """The last pose received (whatever its age), or None."""
        with self._state_lock:
            return self._poses[-1] if self._poses else None

    def pose_at(self, time_s: float) -> CoilPose | None:
        """The last pose received at or before ``time_s``, or None."""
        with self._state_lock:
            for pose in reversed(self._poses):
                if pose.time_s <= time_s:
                    return pose
        return None

    def pulse_pose(self, time_s: float | None = None) -> PulsePose:
        """The coil pose to log for a pulse at ``time_s`` (now when None).

        The last pose received at or before the pulse, kept only if it is at most
        ``max_pose_age_s`` old and the link was up; with the distance and rotation to the
        current target when labkit knows the target's pose.
        """
        t = self.clock() if time_s is None else float(time_s)
        target = self.targets.get(self.target_index) if self.target_index is not None else None
        return pulse_pose(self.pose_at(t), t, self.max_pose_age_s, target,
                          self.target_index, connected=self.connected)

    def wait_for_pose(self, timeout_s: float = 2.0) -> CoilPose:
        """Block until a pose newer than the age limit arrives; return it.

        Raises
        ------
        NavigationError
            When none arrives within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            p = self.pose()
            if p is not None and self.clock() - p.time_s <= self.max_pose_age_s:
                return p
            time.sleep(0.01)
        raise NavigationError(f"no coil pose from the navigator within {timeout_s} s")
