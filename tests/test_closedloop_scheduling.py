"""The loop thread's scheduling: asked for, reported, never fatal, always restored."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from labkit.closedloop import ClosedLoopConfig
from labkit.closedloop.scheduling import FIFO_PRIORITY, loop_scheduling
from labkit.errors import ConfigError

linux = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux scheduling")


def _in_thread(fn):
    out = {}

    def run():
        out["value"] = fn()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["value"]


def _fifo_permitted() -> bool:
    def probe():
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            return False
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True

    return _in_thread(probe)


@linux
def test_not_permitted_is_reported_not_raised(monkeypatch):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "sched_setaffinity", refuse)

    def run():
        with loop_scheduling(realtime=True, cpu=-1) as got:
            return got, os.sched_getscheduler(0)

    got, policy = _in_thread(run)
    assert got.policy == "SCHED_OTHER" and not got.realtime and policy == os.SCHED_OTHER
    assert got.cpus == tuple(sorted(os.sched_getaffinity(0)))  # unchanged
    assert any("SCHED_FIFO not permitted" in n and "Operation not permitted" in n
               for n in got.notes)
    assert any("CPU affinity not permitted" in n for n in got.notes)
    assert got.as_dict()["notes"] == list(got.notes)


@linux
def test_cpu_index_outside_the_allowed_set_is_a_note():
    def run():
        with loop_scheduling(realtime=False, cpu=4096) as got:
            return got

    got = _in_thread(run)
    assert got.cpus == tuple(sorted(os.sched_getaffinity(0)))
    assert any("CPU index 4096" in n for n in got.notes)


@linux
def test_granted_then_restored():
    if not _fifo_permitted():
        pytest.skip("SCHED_FIFO is not permitted here")
    allowed = sorted(os.sched_getaffinity(0))
    switch = sys.getswitchinterval()
    reset = getattr(os, "SCHED_RESET_ON_FORK", 0)
    release = threading.Event()
    helper = threading.Thread(target=release.wait)
    helper.start()
    # an inlet thread that has ended meanwhile is skipped: a thread id above the kernel's
    # largest pid (an id of a thread that just ended can be reused at once)
    gone_id = 2**22 + 1

    def run():
        with loop_scheduling(realtime=True, cpu=-1,
                             helpers=(helper.native_id, gone_id)) as got:
            inside = (os.sched_getscheduler(0) & ~reset, os.sched_getaffinity(0),
                      sys.getswitchinterval(), os.sched_getscheduler(helper.native_id) & ~reset,
                      os.sched_getparam(helper.native_id).sched_priority)
        after = (os.sched_getscheduler(0), sorted(os.sched_getaffinity(0)),
                 os.sched_getscheduler(helper.native_id))
        return got, inside, after

    try:
        got, inside, after = _in_thread(run)
    finally:
        release.set()
        helper.join()
    assert got.policy == "SCHED_FIFO" and got.priority == FIFO_PRIORITY and not got.notes
    assert got.cpus == (allowed[-1],) and got.helper_threads == 1
    assert inside == (os.SCHED_FIFO, {allowed[-1]}, 0.0005, os.SCHED_FIFO, FIFO_PRIORITY - 1)
    assert after == (os.SCHED_OTHER, allowed, os.SCHED_OTHER)
    assert sys.getswitchinterval() == switch


def test_cpu_option_is_checked():
    with pytest.raises(ConfigError, match="cpu"):
        ClosedLoopConfig.from_options(mu_hz=10.0, cpu="last")
    assert ClosedLoopConfig.from_options(mu_hz=10.0).run.cpu == -1
    assert ClosedLoopConfig.from_options(mu_hz=10.0).run.realtime is True
    assert ClosedLoopConfig.from_options(mu_hz=10.0, cpu=None).run.cpu is None
