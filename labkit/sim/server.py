"""The simulated lab as its own process: ``python -m labkit.sim.server --fd N --parent PID``.

Started by :func:`labkit.sim.process.start_simulator_process` (``open_rig`` of a profile
with ``[simulation] process = "child"``). The child builds the simulated hardware (device
emulator on a pseudo-terminal, virtual subject, LSL amplifiers) exactly as an inline rig
does, then answers requests for ground truth on the connection ``--fd``: attribute reads
and writes and method calls on the hardware's objects (see :mod:`labkit.sim.process` for
the parent's proxy). It dies with its parent: the parent-death signal (Linux) when the
parent's main thread started it, and in every case as soon as the connection reaches end
of file (the parent exited or was killed).

``--writes-fd N`` (optional) is the simulator's end of
:func:`labkit.sim.host_writes.host_write_channel`: the rig announces there when it writes
to the emulator's pty, and the emulator dates the bytes it reads by those writes.

Requests (tuples) and replies
-----------------------------
``("start", profile, seed)``
    ``("ready", facts)``: pid, pty path, stream sections and whether the simulator's
    threads run with ``SCHED_FIFO`` (see :func:`favour_simulator_threads`), or
    ``("error", exc)``.
``("get", handle, name)`` / ``("set", handle, name, value)``
    ``("ok", encoded)``.
``("mutate", handle, name, method, args)``
    Calls ``method`` (``append``, ``__setitem__``, ``clear``, ...) on the list, dict or
    set held in attribute ``name`` (the parent's copy changed the same way).
``("call", handle, name, args, kwargs)``
    Calls ``name`` on the object (``name=None`` calls the object itself).
``("apply", "module:function", args, kwargs)``
    Calls ``function(hardware, *args, **kwargs)`` (e.g. attach navigation).
``("ping",)``
    ``("ok", ("value", pickled local_clock()))``.
``("close",)``
    Stops the hardware, answers with its final state (see :meth:`Handles.final_state`),
    exits.

An encoded result is ``("value", pickled bytes)`` for data (numbers, strings, arrays,
containers, dataclasses, pydantic models, objects whose class sets ``rpc_by_value = True``),
``("ref", handle, type name)`` for a live object that stays in the child, or
``("method", handle, name)`` for a bound method. A list, dict or set read as an attribute
comes as ``("container", pickled bytes, handle, name)``: the parent's copy writes its
changes through to the child's.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import os
import pickle
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

_PLAIN = (type(None), bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset,
          enum.Enum)
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, *, signal_on_death: bool) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), then check that
    the parent is still the one that started it (it may have died before the request)."""
    if signal_on_death and sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the end of file on the connection still stops the child
    if os.getppid() != parent_pid:
        os._exit(3)


def _is_data(obj: Any) -> bool:
    if isinstance(obj, _PLAIN):
        return True
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return True
    if getattr(type(obj), "rpc_by_value", False) is True:  # a pure model (no live state)
        return True
    module = type(obj).__module__
    return module.startswith(("numpy", "pydantic")) or hasattr(obj, "model_dump")


class Handles:
    """Live objects of the child, numbered for the parent (object identity keeps the number)."""

    def __init__(self, root: Any) -> None:
        self._objects: dict[int, Any] = {0: root}
        self._by_id: dict[int, int] = {id(root): 0}

    def number(self, obj: Any) -> int:
        """The handle of ``obj`` (registered on first use; kept alive while the child runs)."""
        handle = self._by_id.get(id(obj))
        if handle is None:
            handle = len(self._objects)
            self._objects[handle] = obj
            self._by_id[id(obj)] = handle
        return handle

    def __getitem__(self, handle: int) -> Any:
        return self._objects[handle]

    def final_state(self) -> dict[int, dict[str, tuple]]:
        """Encoded attributes of the objects the parent knows, read once the hardware stopped.

        The hardware's own pieces (emulator, subject, amplifiers, navigation) and every
        object the parent holds a proxy of: their instance attributes and properties,
        encoded like attribute reads (methods left out), so that ground truth stays
        readable after ``rig.close()`` as it does on an inline rig. An attribute that
        cannot be read is left out.

        Returns
        -------
        dict
            Handle -> attribute name -> encoded value.
        """
        root = self._objects[0]
        for name in _attribute_names(root):  # the hardware's pieces get handles
            try:
                self.encode(getattr(root, name))
            except Exception:
                continue
        state: dict[int, dict[str, tuple]] = {}
        for handle in list(self._objects):
            obj = self._objects[handle]
            kept: dict[str, tuple] = {}
            for name in _attribute_names(obj):
                try:
                    encoded = self.encode(getattr(obj, name))
                except Exception:
                    continue
                if encoded[0] != "method":
                    kept[name] = encoded
            state[handle] = kept
        return state

    def encode(self, obj: Any) -> tuple:
        """What the parent receives for ``obj`` (see the module docstring)."""
        if inspect.ismethod(obj) and not isinstance(obj.__self__, type):
            return ("method", self.number(obj.__self__), obj.__name__)
        if inspect.isroutine(obj):  # a function: called by its own handle
            return ("method", self.number(obj), None)
        if _is_data(obj):
            try:
                return ("value", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception:  # holds a lock, a thread, a socket: stays in the child
                pass
        return ("ref", self.number(obj), type(obj).__name__)


def _attribute_names(obj: Any) -> list[str]:
    """Instance attributes and properties of ``obj`` (no dunder names)."""
    names = [n for n in getattr(obj, "__dict__", {}) if not n.startswith("__")]
    for cls in type(obj).__mro__:
        for name, member in vars(cls).items():
            if isinstance(member, property) and not name.startswith("__") and name not in names:
                names.append(name)
    return names


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles, else a RuntimeError carrying its type, message and traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return RuntimeError(f"in the simulator process: {text}")


def favour_simulator_threads(priority: int = 10) -> bool:
    """Give every thread of this process ``SCHED_FIFO`` (Linux, where permitted).

    A real unit answers on its own processor whatever the host does; the simulator stands
    in for it, so its threads (emulator, amplifiers, LSL) run ahead of ordinary processes
    when the system allows it, at the priority the protocol runner uses for its timing
    thread. Threads started later inherit the policy.

    Returns
    -------
    bool
        True when every thread got it.
    """
    sys.setswitchinterval(0.0005)  # the emulator's thread gets the interpreter back quickly
    if not (hasattr(os, "sched_setscheduler") and os.path.isdir("/proc/self/task")):
        return False
    granted = True
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, ValueError):
            granted = False
    return granted


def _start(profile: Any, seed: int | None, writes_fd: int | None = None) -> tuple[Any, dict]:
    from labkit.sim.rig import start_simulated_hardware

    hardware = start_simulated_hardware(profile, seed=seed, process="inline")
    if hardware.pty_path is None:
        hardware.close()
        raise RuntimeError("the simulator process needs a pseudo-terminal (POSIX only)")
    if writes_fd is not None:  # the rig announces when it writes to the pty
        import socket

        from labkit.sim.host_writes import HostWriteLog

        try:
            hardware.emulator.attach_host_writes(HostWriteLog(socket.socket(fileno=writes_fd)))
        except BaseException:
            hardware.close()
            raise
    from labkit.stimulators import ports

    facts = {"pid": os.getpid(), "pty_path": hardware.pty_path,
             "device": ports.simulated_device(hardware.pty_path),
             "realtime": favour_simulator_threads(),
             "emulator_url": hardware.port, "emg_stream": hardware.emg_stream,
             "eeg_stream": hardware.eeg_stream, "marker_stream": hardware.marker_stream,
             "navigation_address": hardware.navigation_address}
    return hardware, facts


def _handle(request: tuple, handles: Handles) -> tuple:
    from labkit.clock import local_clock

    op = request[0]
    if op == "ping":
        return handles.encode(local_clock())
    if op == "get":
        _, handle, name = request
        value = getattr(handles[handle], name)
        encoded = handles.encode(value)
        if encoded[0] == "value" and type(value) in (list, dict, set):
            return ("container", encoded[1], handle, name)  # the parent writes through
        return encoded
    if op == "mutate":  # a list, dict or set attribute changed through its parent copy
        _, handle, name, method, args = request
        return handles.encode(getattr(getattr(handles[handle], name), method)(*args))
    if op == "set":
        _, handle, name, value = request
        setattr(handles[handle], name, value)
        return handles.encode(None)
    if op == "call":
        _, handle, name, args, kwargs = request
        target = handles[handle] if name is None else getattr(handles[handle], name)
        return handles.encode(target(*args, **kwargs))
    if op == "apply":
        _, where, args, kwargs = request
        module_name, _, attr = where.partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        return handles.encode(function(handles[0], *args, **kwargs))
    raise ValueError(f"unknown simulator request {op!r}")


def serve(conn: Connection, writes_fd: int | None = None) -> int:
    """Start the hardware the first request asks for and answer requests until closed.

    Returns
    -------
    int
        Exit code: 0 after ``close`` or end of file, 2 when the hardware did not start.
    """
    try:
        op, profile, seed = conn.recv()
    except EOFError:
        return 0
    if op != "start":
        return 2
    try:
        hardware, facts = _start(profile, seed, writes_fd)
    except BaseException as exc:  # report why, then exit
        conn.send(("error", _portable(exc)))
        return 2
    handles = Handles(hardware)
    conn.send(("ready", facts))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return 0
            if request[0] == "close":
                hardware.close()
                hardware = None
                conn.send(("ok", handles.encode(handles.final_state())))
                return 0
            try:
                reply = ("ok", _handle(request, handles))
            except Exception as exc:
                reply = ("err", _portable(exc))
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return 0
    finally:
        if hardware is not None:
            hardware.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(prog="python -m labkit.sim.server",
                                     description="the simulated lab of one rig")
    parser.add_argument("--fd", type=int, required=True, help="connection to the parent")
    parser.add_argument("--writes-fd", type=int, default=None,
                        help="datagrams announcing the rig's writes to the pty")
    parser.add_argument("--parent", type=int, required=True, help="pid of the parent")
    parser.add_argument("--pdeathsig", action="store_true",
                        help="die by SIGKILL when the parent dies (Linux)")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt of the kernel is not for us
    args = parser.parse_args(argv)
    die_with_parent(args.parent, signal_on_death=args.pdeathsig)
    conn = Connection(args.fd)
    code = serve(conn, args.writes_fd)
    conn.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
