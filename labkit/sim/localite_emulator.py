"""An emulator of the Localite TMS Navigator's JSON interface, for the simulated rig.

A TCP server (loopback, an ephemeral port unless told otherwise; the real navigator uses
6666) that writes JSON objects back to back, as the navigator does:

* every ``1 / rate_hz`` s the coil pose, ``{"coil_0_position": {"q0", "qx", "qy", "qz",
  "x", "y", "z"}}`` (mm, unit quaternion) taken from a coil holder's ``pose_at(t)`` — or
  ``{"coil_0_position": "None"}`` while the tracker cannot see the coil — and, when a
  target is selected, ``{"coil_0_position_control": {"position_reached": "TRUE"|"FALSE",
  "index": n}}``;
* once a second ``{"coil_0_status": "OK"}`` (``"BLOCKED"`` while not visible);
* after each discharge of the emulated stimulator (the emulator is a coil: call it with
  a :class:`~labkit.sim.events.Discharge`), ``{"coil_0_didt": n}``;
* answers to requests: ``{"get": key}`` → ``{key: value}``; ``{"coil_0_target_index":
  n}``, ``{"coil_0_amplitude": n}`` (1-99) and ``{"current_instrument": "COIL_0"}`` are
  applied and echoed; ``{"single_pulse": "COIL_0"}`` calls the trigger hook;
  ``{"coil_0_response": {...}}`` (an MEP for the map) is stored in ``responses``. Anything
  else, or a value out of range, is answered with ``{"error": <request>}``.

Selecting a target tells the simulated operator (``on_target``) to move the coil there.
Faults for tests: :meth:`LocaliteEmulator.drop_clients` (cable pulled),
:meth:`LocaliteEmulator.refuse` (navigator PC gone: connections refused until
:meth:`LocaliteEmulator.accept`), ``visible = False`` (coil out of the camera's view).
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from labkit.clock import local_clock
from labkit.navigation.framing import JSONStreamDecoder
from labkit.navigation.pose import CoilPose
from labkit.sim.events import Discharge

__all__ = ["LocaliteEmulator", "VALID_GET_KEYS"]

#: Keys the navigator answers to ``{"get": key}`` (coil 0 and 1), after ctrl-localite.
VALID_GET_KEYS = frozenset(
    [f"coil_{c}_{k}" for c in (0, 1) for k in (
        "amplitude", "didt", "position", "position_control", "response", "status",
        "stimulator_connected", "stimulator_mode", "stimulator_model", "stimulator_status",
        "target_index", "temperature", "type", "waveform")]
    + ["current_instrument", "navigation_mode", "patient_registration_status",
       "pointer_position", "pointer_position_control", "pointer_status",
       "pointer_target_index", "reference_status"]
)
_INSTRUMENTS = ("NONE", "POINTER", "COIL_0", "COIL_1")


class LocaliteEmulator:
    """A simulated TMS Navigator.

    Parameters
    ----------
    holder : object | None
        Gives the true coil pose: ``pose_at(time_s) -> CoilPose`` (e.g.
        :class:`labkit.sim.coil_hand.HandHeldCoil`). None: the coil is never visible.
    host : str
        Address to listen on (loopback only in tests and simulation).
    port : int
        TCP port; 0 picks a free one (see ``.port`` after :meth:`start`).
    rate_hz : float
        Pose messages per second.
    reach_mm : float
        Distance (in the target's plane) under which ``position_reached`` is ``TRUE``.
    trigger : callable | None
        Called (from the server thread) for ``{"single_pulse": "COIL_N"}``.
    on_target : callable | None
        Called with ``(index, CoilPose, time_s)`` when a known target is selected.
    clock : callable
        Time source (LSL ``local_clock``).

    Attributes
    ----------
    targets : dict[int, CoilPose]
        Target poses planned in the navigator, by index.
    received : list of (float, dict)
        Every message received, with its time.
    responses : list of (float, dict)
        The MEPs sent back (``coil_N_response`` values), with their time.
    visible : bool
        Whether the tracker sees the coil.
    """

    def __init__(
        self,
        holder: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_hz: float = 20.0,
        reach_mm: float = 3.0,
        trigger: Callable[[int], None] | None = None,
        on_target: Callable[[int, CoilPose, float], None] | None = None,
        clock: Callable[[], float] = local_clock,
    ) -> None:
        if not (0.5 <= rate_hz <= 200.0):
            raise ValueError(f"LocaliteEmulator rate_hz = {rate_hz!r} is outside 0.5-200 Hz")
        self.holder = holder
        self.host = host
        self._requested_port = int(port)
        self.port: int | None = None
        self.rate_hz = float(rate_hz)
        self.reach_mm = float(reach_mm)
        self.trigger = trigger
        self.on_target = on_target
        self.clock = clock
        self.targets: dict[int, CoilPose] = {}
        self.received: list[tuple[float, dict]] = []
        self.responses: list[tuple[float, dict]] = []
        self.visible = holder is not None
        self.amplitude = 30
        self.target_index: dict[int, int | None] = {0: None, 1: None}
        self.instrument = "COIL_0"
        self.didt: int = 0
        self.pulses = 0
        self._lock = threading.Lock()
        self._outbox: list[dict] = []
        self._clients: dict[socket.socket, JSONStreamDecoder] = {}
        self._drop = threading.Event()
        self._refusing = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> LocaliteEmulator:
        """Listen and start streaming (idempotent)."""
        if self._thread is not None:
            return self
        self._listen()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="localite-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port or self._requested_port))
        listener.listen(4)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def stop(self) -> None:
        """Close every connection and stop (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)

    def __enter__(self) -> LocaliteEmulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to connect to."""
        if self.port is None:
            raise RuntimeError("LocaliteEmulator is not started: no port yet")
        return self.host, self.port

    @property
    def n_clients(self) -> int:
        """Connected clients."""
        return len(self._clients)

    # -- faults ----------------------------------------------------------------------------
    def drop_clients(self) -> None:
        """Close every client connection (as if the cable were pulled)."""
        self._drop.set()

    def refuse(self) -> None:
        """Drop every client and refuse new connections until :meth:`accept`."""
        self._refusing.set()
        self._drop.set()

    def accept(self) -> None:
        """Accept connections again after :meth:`refuse`."""
        self._refusing.clear()

    # -- the coil ----------------------------------------------------------------------------
    def __call__(self, discharge: Discharge) -> None:
        """A discharge of the stimulator: report its dI/dt as the navigator does."""
        intensity = max(discharge.intensity_percent, discharge.intensity_b_percent or 0.0)
        self.didt = int(round(1.5 * intensity))  # A/µs, roughly a figure-8 coil's
        self.pulses += 1
        self.post({"coil_0_didt": self.didt})

    def post(self, message: dict) -> None:
        """Queue one message for every connected client."""
        with self._lock:
            self._outbox.append(message)

    # -- server thread -------------------------------------------------------------------
    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        assert self._listener is not None
        sel.register(self._listener, selectors.EVENT_READ, None)
        period = 1.0 / self.rate_hz
        next_tick = self.clock()
        next_status = next_tick
        try:
            while not self._stop.is_set():
                if self._refusing.is_set() and self._listener is not None:
                    sel.unregister(self._listener)
                    self._listener.close()
                    self._listener = None
                elif not self._refusing.is_set() and self._listener is None:
                    self._listen()
                    sel.register(self._listener, selectors.EVENT_READ, None)
                if self._drop.is_set():
                    self._drop.clear()
                    for client in list(self._clients):
                        self._close(sel, client)
                timeout = max(0.0, min(next_tick - self.clock(), 0.05))
                for key, _ in sel.select(timeout):
                    if key.data is None:
                        self._accept(sel)
                    else:
                        self._read(sel, key.fileobj)
                now = self.clock()
                if now >= next_tick:
                    next_tick += period * max(1, int((now - next_tick) / period) + 1)
                    self._stream(now, now >= next_status)
                    if now >= next_status:
                        next_status = now + 1.0
                self._flush(sel)
        finally:
            for client in list(self._clients):
                self._close(sel, client)
            sel.close()
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._clients[client] = JSONStreamDecoder()
        sel.register(client, selectors.EVENT_READ, "client")

    def _close(self, sel: selectors.BaseSelector, client: socket.socket) -> None:
        self._clients.pop(client, None)
        try:
            sel.unregister(client)
        except (KeyError, ValueError):
            pass
        try:
            client.close()
        except OSError:
            pass

    def _read(self, sel: selectors.BaseSelector, client: Any) -> None:
        try:
            data = client.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(sel, client)
            return
        decoder = self._clients.get(client)
        if decoder is None:
            return
        for message in decoder.feed(data):
            reply = self.handle(message)
            if reply is not None:
                self._send(sel, client, reply)

    def _send(self, sel: selectors.BaseSelector, client: socket.socket, message: dict) -> None:
        data = json.dumps(message).encode("utf-8")
        try:
            client.setblocking(True)
            client.settimeout(0.5)
            client.sendall(data)
            client.setblocking(False)
        except OSError:
            self._close(sel, client)

    def _flush(self, sel: selectors.BaseSelector) -> None:
        with self._lock:
            messages, self._outbox = self._outbox, []
        for message in messages:
            for client in list(self._clients):
                self._send(sel, client, message)

    def _stream(self, now: float, with_status: bool) -> None:
        pose = self.holder.pose_at(now) if (self.visible and self.holder is not None) else None
        self.post({"coil_0_position": pose.to_localite() if pose is not None else "None"})
        index = self.target_index[0]
        if index is not None and index in self.targets:
            self.post({"coil_0_position_control": {
                "position_reached": "TRUE" if self._reached(pose, index) else "FALSE",
                "index": index}})
        if with_status:
            self.post({"coil_0_status": "OK" if pose is not None else "BLOCKED"})

    def _reached(self, pose: CoilPose | None, index: int) -> bool:
        target = self.targets.get(index)
        return (pose is not None and target is not None
                and pose.tangential_distance_mm(target) <= self.reach_mm)

    # -- requests --------------------------------------------------------------------------
    def handle(self, message: Any) -> dict | None:
        """Apply one request and return the reply (None: no reply)."""
        now = self.clock()
        if not isinstance(message, dict) or len(message) != 1:
            return {"error": message}
        self.received.append((now, message))
        key, value = next(iter(message.items()))
        if key == "get":
            if value not in VALID_GET_KEYS:
                return {"error": message}
            return {value: self._value(value, now)}
        if key == "current_instrument":
            if value not in _INSTRUMENTS:
                return {"error": message}
            self.instrument = value
            return {key: value}
        for coil in (0, 1):
            prefix = f"coil_{coil}_"
            if key == prefix + "target_index":
                if type(value) is not int or value < 0:
                    return {"error": message}
                self.target_index[coil] = value
                if coil == 0 and value in self.targets and self.on_target is not None:
                    self.on_target(value, self.targets[value], now)
                return {key: value}
            if key == prefix + "amplitude":
                if type(value) is not int or not (0 < value < 100):
                    return {"error": message}
                self.amplitude = value
                return {key: value}
            if key == prefix + "response":
                if not _valid_response(value):
                    return {"error": message}
                self.responses.append((now, dict(value)))
                return None
        if key == "single_pulse":
            if value not in ("COIL_0", "COIL_1"):
                return {"error": message}
            if self.trigger is not None:
                self.trigger(int(value[-1]))
            return None  # the didt message follows the discharge
        return {"error": message}

    def _value(self, key: str, now: float) -> Any:
        if key in ("coil_0_position", "coil_1_position"):
            if key == "coil_0_position" and self.visible and self.holder is not None:
                return self.holder.pose_at(now).to_localite()
            return "None"
        if key.endswith("_status"):
            return "OK" if (self.visible and self.holder is not None) else "BLOCKED"
        if key.endswith("_position_control"):
            index = self.target_index[int(key[5])] if key.startswith("coil_") else None
            pose = self.holder.pose_at(now) if (self.visible and self.holder) else None
            reached = index is not None and self._reached(pose, index)
            return {"position_reached": "TRUE" if reached else "FALSE", "index": index or 0}
        if key.endswith("_target_index"):
            return self.target_index.get(int(key[5]), None) if key.startswith("coil_") else 0
        if key.endswith("_amplitude"):
            return self.amplitude
        if key.endswith("_didt"):
            return self.didt
        if key.endswith("_response"):
            return self.responses[-1][1] if self.responses else None
        if key.endswith("_temperature"):
            return 25
        if key == "current_instrument":
            return self.instrument
        return "NONE"


def _valid_response(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        if not (0 <= value["mepmaxtime"] <= 100_000):
            return False
        return all(-51_200 <= value[k] <= 51_200 for k in ("mepamplitude", "mepmin", "mepmax"))
    except (KeyError, TypeError):
        return False
