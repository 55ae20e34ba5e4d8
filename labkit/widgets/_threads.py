"""Threads for the panels: background work and rate-limited redraws.

Why threads: a widget callback runs on the kernel's main thread, and while that thread is
busy (a cell still executing, a callback blocked on the serial port) no other callback
runs, not even STOP. So every operation that may take longer than a few milliseconds
(arming takes ~1 s, a protocol runs for minutes, an MEP needs 100 ms of EMG after the
pulse) runs in a :class:`Worker` thread, and its results reach the page by *setting widget
values* from that thread. Under ipykernel >= 7 ``print`` from a thread lands in whichever
cell happens to be the parent, so panels never print: they write labels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Worker:
    """Run one job at a time in a daemon thread; report failures through a callback.

    Parameters
    ----------
    name : str
        Thread name prefix.
    on_error : callable
        Called with the exception when a job raises (e.g. writes it to a status label).
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self.name = name
        self._on_error = on_error
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def submit(self, job: Callable[[], Any], *, label: str = "job") -> bool:
        """Start ``job`` unless another one is still running.

        Returns
        -------
        bool
            True if the job was started, False if the worker was busy.
        """
        with self._lock:
            if self.busy:
                return False
            self._thread = threading.Thread(
                target=self._run, args=(job,), name=f"{self.name}-{label}", daemon=True
            )
            self._thread.start()
        return True

    def _run(self, job: Callable[[], Any]) -> None:
        try:
            job()
        except BaseException as exc:  # reported on the panel, never lost in a thread
            self._on_error(exc)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the running job; return True if no job is running afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return not self.busy


class RenderThrottle:
    """Coalesce redraw requests to at most ``max_rate_hz`` renders per second.

    A request either renders at once (if the last render is old enough) or schedules
    one trailing render, so the newest data is always drawn and bursts cost one render.
    Renders are serialised by a lock; they may run on any thread.

    Parameters
    ----------
    render : callable
        Draws the current state (no arguments).
    max_rate_hz : float | None
        Upper bound of renders per second; ``None`` renders on every request.
    """

    def __init__(self, render: Callable[[], None], max_rate_hz: float | None = 30.0) -> None:
        self._render = render
        self.interval_s = 0.0 if not max_rate_hz else 1.0 / float(max_rate_hz)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._last_s = -float("inf")
        self._timer: threading.Timer | None = None
        #: Number of renders done so far.
        self.renders = 0

    def request(self) -> None:
        """Ask for a redraw of the current state."""
        with self._lock:
            if self._timer is not None:  # the pending trailing render will draw this state
                return
            now = time.monotonic()
            wait_s = self._last_s + self.interval_s - now
            if wait_s > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait_s, self._trailing)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last_s = now
        self._do_render()

    def flush(self) -> None:
        """Render now and drop any scheduled render."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last_s = time.monotonic()
        self._do_render()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self._last_s = time.monotonic()
        self._do_render()

    def _do_render(self) -> None:
        with self._render_lock:
            self._render()
            self.renders += 1


class Ticker:
    """Call ``tick()`` every ``period_s`` in a daemon thread until stopped.

    Used by panels that mirror a state owned by someone else (a runner's progress).
    Exceptions from ``tick`` are passed to ``on_error`` and the ticker keeps going.
    """

    def __init__(
        self,
        tick: Callable[[], None],
        period_s: float,
        on_error: Callable[[BaseException], None],
        name: str = "labkit-ticker",
    ) -> None:
        self._tick = tick
        self.period_s = float(period_s)
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Ticker:
        """Start ticking; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking (returns without waiting longer than one period)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.period_s + 1.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._tick()
            except Exception as exc:  # keep mirroring; show the problem
                self._on_error(exc)
