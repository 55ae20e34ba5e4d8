"""The parent's side of a simulated lab running in its own process.

:func:`start_simulator_process` starts ``python -m labkit.sim.server`` with one end of a
socket pair, waits until its hardware runs and returns a :class:`SimulatorProcess`. The
rig reaches the child exactly as it reaches real devices: the stimulator through the
emulator's pseudo-terminal, the amplifiers through LSL. Ground truth (the virtual
subject's threshold and responses, an amplifier's late discharges, the emulator's pulse
count, ...) is read through :class:`RemoteObject` proxies over the connection, so code
written for an inline rig (``rig.subject.responses``, ``rig.hardware.emulator.recharge_s
= 0``) runs unchanged: data comes back as copies, live objects stay in the child.

The child dies with the parent (see :mod:`labkit.sim.server`); :meth:`SimulatorProcess.close`
stops it and keeps the hardware's final state: after ``rig.close()`` the proxies read it
(the subject's responses, the emulator's pulse count, ...) as an inline rig's objects
would be read after closing; calls and writes then raise. When the stimulator does not
answer, :meth:`SimulatorProcess.diagnose` says why in the driver's error: the child has
exited (with its code), is stopped, or is behind.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from labkit.errors import LabkitError
from labkit.sim.host_writes import HostWriteAnnouncer, host_write_channel
from labkit.stimulators import ports

__all__ = ["RemoteObject", "SimulatorProcess", "SimulatorProcessError",
           "start_simulator_process"]

#: Seconds the child may take to import, build the hardware and answer (loaded machines).
START_TIMEOUT_S = 120.0
#: Seconds a ground-truth request may take before the child is declared unresponsive.
REQUEST_TIMEOUT_S = 30.0
#: Extra seconds a driver waits for the simulated unit while the child runs (it may be
#: behind on a loaded machine; a real unit never is, so hardware rigs get none).
GRACE_S = 5.0
#: Seconds a diagnosis waits for the child's answer to a ping.
PING_TIMEOUT_S = 1.0

_LOCAL_NAMES = ("_rpc_", "_repr_", "_ipython_", "_root", "__")


class SimulatorProcessError(LabkitError):
    """The simulator process exited, stopped or does not answer."""


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _state(pid: int) -> str | None:
    """The process state letter from ``/proc`` (``T`` = stopped), when there is one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class SimulatorProcess:
    """The running child process and the hardware facts it reported.

    Attributes
    ----------
    pid : int
        Process id of the child.
    port, pty_path : str
        The emulator's pseudo-terminal (what the driver opens).
    emg_stream, eeg_stream, marker_stream : StreamSection
        Stream names and source ids in use.
    emulator, subject, emg_amplifier, eeg_amplifier : RemoteObject | None
        Proxies of the child's objects (ground truth and fault injection).
    """

    def __init__(self, popen: subprocess.Popen, conn: Connection, facts: dict,
                 host_writes: HostWriteAnnouncer | None = None) -> None:
        self._popen = popen
        self._conn = conn
        self._lock = threading.Lock()
        self._closed = False
        self._final: dict[int, dict[str, tuple]] = {}
        self._proxies: dict[int, RemoteObject] = {}  # one proxy per child object: `is` holds
        #: Extra seconds the rig's driver waits for a late reply while the child runs.
        self.grace_s = GRACE_S
        self.pid: int = facts["pid"]
        #: True when the child's threads run with SCHED_FIFO (ahead of ordinary processes).
        self.realtime: bool = facts["realtime"]
        self.port: str = facts["pty_path"]
        self.pty_path: str = facts["pty_path"]
        self.emg_stream = facts["emg_stream"]
        self.eeg_stream = facts["eeg_stream"]
        self.marker_stream = facts["marker_stream"]
        #: (host, port) of the child's navigator emulator (profiles with [navigation]).
        self.navigation_address: tuple[str, int] | None = facts.get("navigation_address")
        #: Announces the drivers' writes to the pty (:mod:`labkit.sim.host_writes`).
        self.host_writes = host_writes
        self._root = root = self.proxy(0, "SimulatedHardware")
        self.emulator = root.emulator
        self.subject = root.subject
        self.emg_amplifier = root.emg_amplifier
        self.eeg_amplifier = root.eeg_amplifier
        if facts.get("device"):  # the driver's errors name the simulator, not a cable
            ports.declare_simulated(self.pty_path, facts["device"])
        if host_writes is not None:
            ports.observe_writes(self.pty_path, host_writes)

    def __getattr__(self, name: str) -> Any:
        """Any other attribute of the child's hardware (``navigation``, ...), read there."""
        if name.startswith(_LOCAL_NAMES):
            raise AttributeError(name)
        root = self.__dict__.get("_root")
        if root is None:
            raise AttributeError(name)
        return root.__getattr__(name)

    # ----------------------------------------------------------------- state
    @property
    def name(self) -> str:
        """How errors name the child: ``simulator process (pid N)``."""
        return f"the simulator process (pid {self.pid})"

    @property
    def exitcode(self) -> int | None:
        """The child's exit code (negative: killed by that signal), ``None`` while it runs."""
        return self._popen.poll()

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self.exitcode is None

    def runs(self) -> bool:
        """True while the child runs and is not stopped (a late answer may still come)."""
        return self.exitcode is None and _state(self.pid) != "T"

    def diagnose(self) -> str:
        """Why the simulated stimulator may not have answered: exited, stopped or behind."""
        code = self.exitcode
        if code is None and _state(self.pid) == "T":
            return f"{self.name} is stopped (SIGSTOP or a debugger): the simulator is paused"
        if code is None:
            started = time.monotonic()
            try:
                self.request(("ping",), timeout_s=PING_TIMEOUT_S)
            except SimulatorProcessError:
                code = self._wait_exit(0.5)  # a dying child closes its pty before it exits
                if code is None:
                    return (f"{self.name} is behind or stopped: no answer to a ping within "
                            f"{PING_TIMEOUT_S:.1f} s (machine overloaded?)")
            else:
                ping_ms = (time.monotonic() - started) * 1000.0
                return (f"{self.name} is behind: it runs and answered a ping in "
                        f"{ping_ms:.0f} ms, so its emulator did not get the CPU in time "
                        "(machine loaded?)")
        return f"{self.name} {_exit_text(code)}: the simulated lab is gone"

    # ----------------------------------------------------------------- requests
    def request(self, message: tuple, *, timeout_s: float = REQUEST_TIMEOUT_S) -> Any:
        """Send one request and return the decoded result (raises the child's exception)."""
        if self._closed:
            raise SimulatorProcessError(f"{self.name} was closed with its rig")
        if not self._lock.acquire(timeout=timeout_s):
            raise SimulatorProcessError(f"{self.name} is busy with another request for more "
                                        f"than {timeout_s:.1f} s")
        try:
            try:
                self._conn.send(message)
                deadline = time.monotonic() + timeout_s
                while not self._conn.poll(0.05):
                    if self.exitcode is not None:
                        raise SimulatorProcessError(
                            f"{self.name} {_exit_text(self.exitcode)}")
                    if time.monotonic() >= deadline:
                        raise SimulatorProcessError(
                            f"{self.name} did not answer {message[0]!r} within "
                            f"{timeout_s:.1f} s (behind or stopped)")
                status, payload = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise SimulatorProcessError(
                    f"{self.name} closed its connection ({self._exit_or_running()})") from exc
        finally:
            self._lock.release()
        if status == "err":
            if isinstance(payload, BaseException):
                payload.add_note(f"raised in {self.name}")
            raise payload
        return self._decode(payload)

    def _exit_or_running(self) -> str:
        code = self._wait_exit(1.0)
        return "still running" if code is None else _exit_text(code)

    def _wait_exit(self, timeout_s: float) -> int | None:
        try:
            return self._popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kept(self, handle: int, type_name: str, name: str) -> Any:
        """Attribute ``name`` of object ``handle`` as it was when the child closed.

        Raises
        ------
        AttributeError
            When the final state has no such attribute (the child was killed, or the
            attribute is a method or could not be read).
        """
        encoded = self._final.get(handle, {}).get(name)
        if encoded is None:
            raise AttributeError(
                f"{type_name}.{name} is not readable: {self.name} was closed with its rig "
                "and its final state does not hold it (read it before rig.close())")
        return self._decode(encoded)

    def _decode(self, payload: tuple) -> Any:
        kind = payload[0]
        if kind == "value":
            return pickle.loads(payload[1])
        if kind == "container":
            value = pickle.loads(payload[1])
            return _WRITE_THROUGH[type(value)](value, self, payload[2], payload[3])
        if kind == "method":
            return RemoteMethod(self, payload[1], payload[2])
        return self.proxy(payload[1], payload[2])

    def proxy(self, handle: int, type_name: str) -> RemoteObject:
        """The one proxy of the child's object ``handle`` (the same object, the same proxy)."""
        proxy = self._proxies.get(handle)
        if proxy is None:
            proxy = self._proxies[handle] = RemoteObject(self, handle, type_name)
        return proxy

    def apply(self, where: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``module:function`` in the child with the hardware as first argument.

        Parameters
        ----------
        where : str
            ``"module:function"``, importable in the child.
        *args, **kwargs
            Further arguments (pickled to the child).

        Returns
        -------
        object
            The result, decoded like an attribute read (data or a proxy).
        """
        return self.request(("apply", where, args, kwargs))

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Stop the hardware and the child (killed if it does not exit within 5 s)."""
        if self._closed:
            return
        if self.host_writes is not None:  # before the child frees the pty for another
            ports.stop_observing_writes(self.pty_path, self.host_writes)
        try:
            if self.alive:
                self._final = self.request(("close",), timeout_s=10.0) or {}
        except (SimulatorProcessError, OSError, EOFError):
            pass
        finally:
            self._closed = True
            ports.forget_simulated(self.pty_path)
            if self.host_writes is not None:
                self.host_writes.close()
            self._conn.close()
            if self._wait_exit(5.0) is None:
                self._popen.kill()
                self._wait_exit(5.0)

    def __repr__(self) -> str:
        state = "running" if self.alive else _exit_text(self.exitcode or 0)
        return f"<SimulatorProcess pid {self.pid} {state}, port {self.pty_path}>"


class RemoteObject:
    """A live object of the simulator process: attribute reads come back as data (copies)
    or further proxies, attribute writes and calls run in the child."""

    def __init__(self, process: SimulatorProcess, handle: int, type_name: str) -> None:
        object.__setattr__(self, "_rpc_process", process)
        object.__setattr__(self, "_rpc_handle", handle)
        object.__setattr__(self, "_rpc_type", type_name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith(_LOCAL_NAMES):
            raise AttributeError(name)
        process = self._rpc_process
        if process._closed:  # the child is gone: its final state
            return process.kept(self._rpc_handle, self._rpc_type, name)
        return process.request(("get", self._rpc_handle, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith(_LOCAL_NAMES):
            raise AttributeError(f"cannot set {name!r} on a proxy of the simulator process")
        self._rpc_process.request(("set", self._rpc_handle, name, value))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rpc_process.request(("call", self._rpc_handle, None, args, kwargs))

    def __reduce__(self):
        raise TypeError(f"a proxy of {self._rpc_process.name} cannot be pickled")

    def __repr__(self) -> str:
        return f"<{self._rpc_type} in {self._rpc_process.name}>"


class RemoteMethod:
    """A method (or function) of the simulator process; calling it runs it in the child."""

    def __init__(self, process: SimulatorProcess, handle: int, name: str | None) -> None:
        self._process, self._handle, self._name = process, handle, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._process.request(("call", self._handle, self._name, args, kwargs))

    def __repr__(self) -> str:
        return f"<method {self._name or 'function'} in {self._process.name}>"


def _writes_through(*methods: str):
    """Class decorator: each of ``methods`` changes the copy, then the child's original."""

    def decorate(cls):
        base = next(b for b in cls.__mro__ if b in (list, dict, set))
        for method in methods:
            def forward(self, *args, _method=method):
                result = getattr(base, _method)(self, *args)
                self._rpc_origin[0].request(("mutate", *self._rpc_origin[1:], _method, args))
                return result

            forward.__name__ = method
            setattr(cls, method, forward)
        return cls

    return decorate


class _Copy:
    """A copy of a container attribute of a child's object that remembers where it lives."""

    def __init__(self, value: Any, process: SimulatorProcess, handle: int, name: str) -> None:
        super().__init__(value)
        self._rpc_origin = (process, handle, name)

    def __reduce__(self):  # pickled (or deep-copied) as the plain container it holds
        base = next(b for b in type(self).__mro__ if b in (list, dict, set))
        return (base, (base(self),))


@_writes_through("append", "extend", "insert", "pop", "remove", "clear", "__setitem__",
                 "__delitem__", "sort", "reverse")
class RemoteList(_Copy, list):
    """A list attribute of a child's object: a copy whose changes are made there too."""


@_writes_through("__setitem__", "__delitem__", "pop", "popitem", "clear", "update",
                 "setdefault")
class RemoteDict(_Copy, dict):
    """A dict attribute of a child's object: a copy whose changes are made there too."""


@_writes_through("add", "discard", "remove", "pop", "clear", "update")
class RemoteSet(_Copy, set):
    """A set attribute of a child's object: a copy whose changes are made there too."""


_WRITE_THROUGH = {list: RemoteList, dict: RemoteDict, set: RemoteSet}


def start_simulator_process(profile: Any, *, seed: int | None = None,
                            timeout_s: float = START_TIMEOUT_S) -> SimulatorProcess:
    """Start the simulated hardware of ``profile`` in a child process.

    Parameters
    ----------
    profile : DeviceProfile
        A profile with ``rig.simulated = true``.
    seed : int | None
        Seed of the virtual subject; default the profile's.
    timeout_s : float
        How long the child may take to start.

    Returns
    -------
    SimulatorProcess
        The running child; :meth:`SimulatorProcess.close` stops it.

    Raises
    ------
    SimulatorProcessError
        The child exited or did not report ready in time (the reason is in the message).
    """
    if os.name != "posix":
        raise SimulatorProcessError("the simulator process needs POSIX pseudo-terminals; use "
                                    "[simulation] process = \"inline\" on this system")
    ours, theirs = socket.socketpair()
    ours.set_inheritable(False)
    writes_ours, writes_theirs = host_write_channel()
    writes_ours.set_inheritable(False)
    command = [sys.executable, "-m", "labkit.sim.server", "--fd", str(theirs.fileno()),
               "--writes-fd", str(writes_theirs.fileno()), "--parent", str(os.getpid())]
    if threading.current_thread() is threading.main_thread():
        # the parent-death signal follows the thread that forks: only the main thread's
        # lifetime is the process's
        command.append("--pdeathsig")
    try:
        # same process group: a kernel manager that signals the kernel's group reaches it
        popen = subprocess.Popen(command, pass_fds=(theirs.fileno(), writes_theirs.fileno()),
                                 stdin=subprocess.DEVNULL)
    except BaseException:
        writes_ours.close()
        ours.close()
        raise
    finally:
        theirs.close()
        writes_theirs.close()
    conn = Connection(ours.detach())
    try:
        conn.send(("start", profile, seed))
        deadline = time.monotonic() + timeout_s
        while not conn.poll(0.05):
            code = popen.poll()
            if code is not None:
                raise SimulatorProcessError(
                    f"the simulator process (pid {popen.pid}) {_exit_text(code)} while "
                    "starting (its error is above, on stderr)")
            if time.monotonic() >= deadline:
                raise SimulatorProcessError(
                    f"the simulator process (pid {popen.pid}) did not start within "
                    f"{timeout_s:.0f} s")
        status, payload = conn.recv()
        if status != "ready":
            raise payload
        return SimulatorProcess(popen, conn, payload, HostWriteAnnouncer(writes_ours))
    except BaseException:
        conn.close()
        writes_ours.close()
        popen.kill()
        popen.wait(5.0)
        raise
