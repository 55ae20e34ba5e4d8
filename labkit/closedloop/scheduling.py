"""How the loop thread is scheduled: SCHED_FIFO and a CPU of its own, where permitted.

The closed loop's thread asks the operating system for real-time scheduling
(``SCHED_FIFO``: it runs as soon as it wakes, ahead of every ordinary process) and for
one CPU (no migration between polls), and lowers Python's GIL switch interval so that it
gets the interpreter back quickly from the process's other threads. Each request is
granted or not (Linux needs ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` for the first; other
systems have neither call); the loop runs either way and :class:`LoopScheduling` says
what it got and why not. The threads that bring the EEG in (LSL's receiver threads of
the loop's inlet, found as the threads its opening started) get ``SCHED_FIFO`` with it:
a loop that wakes at once is no use if its data waits behind ordinary processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["FIFO_PRIORITY", "LoopScheduling", "loop_scheduling", "thread_ids"]

#: SCHED_FIFO priority of the loop thread (above the protocol runner's 10: a pulse
#: decided on the EEG must not wait for anything else the host does).
FIFO_PRIORITY = 20
#: SCHED_FIFO priority of the inlet's receiver threads (just below the loop's).
HELPER_PRIORITY = FIFO_PRIORITY - 1
#: GIL switch interval while the loop runs, s (Python's default is 5 ms).
SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class LoopScheduling:
    """What the loop thread got from the operating system.

    Attributes
    ----------
    policy : str
        ``"SCHED_FIFO"`` or ``"SCHED_OTHER"`` (the ordinary time-sharing policy).
    priority : int
        Real-time priority (0 for ``SCHED_OTHER``).
    cpus : tuple of int
        CPUs the thread may run on (empty where the system does not say).
    notes : tuple of str
        Each request that was not granted, and why.
    helper_threads : int
        Threads of the EEG inlet that run with ``SCHED_FIFO`` too.
    """

    policy: str
    priority: int
    cpus: tuple[int, ...]
    notes: tuple[str, ...] = ()
    helper_threads: int = 0

    @property
    def realtime(self) -> bool:
        """True under ``SCHED_FIFO``."""
        return self.policy == "SCHED_FIFO"

    def as_dict(self) -> dict:
        """Plain types, for JSON records."""
        return {"policy": self.policy, "priority": self.priority, "cpus": list(self.cpus),
                "helper_threads": self.helper_threads, "notes": list(self.notes)}


def thread_ids() -> set[int]:
    """Ids of this process's threads (Linux ``/proc``; empty elsewhere)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _current(notes: list[str], helpers: int) -> LoopScheduling:
    policy, priority, cpus = "SCHED_OTHER", 0, ()
    if hasattr(os, "sched_getscheduler"):
        reset_flag = getattr(os, "SCHED_RESET_ON_FORK", 0)
        if os.sched_getscheduler(0) & ~reset_flag == os.SCHED_FIFO:
            policy, priority = "SCHED_FIFO", os.sched_getparam(0).sched_priority
    if hasattr(os, "sched_getaffinity"):
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    return LoopScheduling(policy, priority, cpus, tuple(notes), helpers)


@contextlib.contextmanager
def loop_scheduling(realtime: bool = True, cpu: int | None = -1,
                    helpers: tuple[int, ...] = ()) -> Iterator[LoopScheduling]:
    """Favour the calling thread while the block runs; restore everything afterwards.

    Parameters
    ----------
    realtime : bool
        Ask for ``SCHED_FIFO`` at :data:`FIFO_PRIORITY` (threads started meanwhile do not
        inherit it).
    cpu : int | None
        Pin the thread to this CPU (an index into the CPUs the process may use; ``-1``:
        the last one). None: leave the affinity alone.
    helpers : tuple of int
        Thread ids that get ``SCHED_FIFO`` at :data:`HELPER_PRIORITY` along with the
        calling thread (threads that have ended meanwhile are skipped).

    Yields
    ------
    LoopScheduling
        What was obtained (never raises because something was not permitted).
    """
    notes: list[str] = []
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    old_policy = old_cpus = None
    if cpu is not None:
        if hasattr(os, "sched_setaffinity"):
            allowed = sorted(os.sched_getaffinity(0))
            try:
                chosen = allowed[cpu]
            except IndexError:
                notes.append(f"CPU affinity not set: CPU index {cpu} is not among the "
                             f"{len(allowed)} this process may use {allowed}")
            else:
                try:
                    os.sched_setaffinity(0, {chosen})
                    old_cpus = set(allowed)
                except OSError as exc:
                    notes.append(f"CPU affinity not permitted: {exc}")
        else:
            notes.append("CPU affinity not available on this system")
    if realtime:
        if hasattr(os, "sched_setscheduler"):
            try:
                previous = (os.sched_getscheduler(0), os.sched_getparam(0))
                os.sched_setscheduler(0, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0),
                                      os.sched_param(FIFO_PRIORITY))
                old_policy = previous
            except OSError as exc:
                notes.append(f"SCHED_FIFO not permitted: {exc}")
        else:
            notes.append("SCHED_FIFO not available on this system")
    favoured = []
    if old_policy is not None:
        for tid in helpers:
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0),
                                      os.sched_param(HELPER_PRIORITY))
                favoured.append(tid)
            except ProcessLookupError:
                continue
            except OSError as exc:
                notes.append(f"SCHED_FIFO for the inlet's thread {tid} not permitted: {exc}")
    try:
        yield _current(notes, len(favoured))
    finally:
        for tid in favoured:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        if old_policy is not None:
            with contextlib.suppress(OSError):  # lowering a priority always works
                os.sched_setscheduler(0, old_policy[0], old_policy[1])
        if old_cpus is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, old_cpus)
        sys.setswitchinterval(old_switch)
