"""Pause a protocol while a stream is stale; resume when data flows again.

:class:`StreamWatchdog` watches the newest sample time of an acquisition stream (an
mne-lsl ``StreamLSL`` or any callable returning the newest LSL timestamp). It is a
:data:`labkit.runner.PrePulseCheck` (``runner = ProtocolRunner(..., pre_pulse_check=dog)``)
and, with :meth:`StreamWatchdog.watch`, also a small monitor thread that pauses a running
:class:`~labkit.runner.ProtocolRunner` as soon as the stream goes stale (even between
pulses or during a device-timed train) and resumes it once samples have been arriving
again for ``resume_after_s``. The runner logs both (``pause`` with the reason, ``resume``)
and exposes ``state``/``pause_reason``.

Example
-------
>>> dog = StreamWatchdog(rig.emg, stale_s=0.3)                     # doctest: +SKIP
>>> runner = ProtocolRunner(rig.stimulator, protocol, rmt, pre_pulse_check=dog,
...                         log=session.sink)                         # doctest: +SKIP
>>> dog.watch(runner); runner.start()                                # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from labkit.clock import local_clock
from labkit.errors import ConfigError

__all__ = ["StreamWatchdog", "newest_sample_time"]

#: Runner states after which the monitor thread ends.
_FINAL_STATES = ("stopped", "finished", "failed")


def newest_sample_time(stream: Any) -> float | None:
    """LSL time of the newest sample in an mne-lsl ``StreamLSL`` buffer (None: none yet).

    Parameters
    ----------
    stream : mne_lsl.stream.StreamLSL
        A connected stream.
    """
    fs = float(stream.info["sfreq"]) or 1000.0
    _, stamps = stream.get_data(winsize=2.0 / fs)
    if stamps.size == 0 or not stamps[-1] > 0:  # an unfilled ring buffer holds zeros
        return None
    return float(stamps[-1])


class StreamWatchdog:
    """Is a stream still delivering samples? A pre-pulse check and a runner monitor.

    Parameters
    ----------
    stream : StreamLSL or callable
        The stream to watch, or ``latest() -> float | None`` returning the LSL time of the
        newest sample received.
    stale_s : float
        The stream counts as stopped when its newest sample is older than this, s
        (0.01-60). Keep it above the stream's chunk period plus its transport latency.
    resume_after_s : float
        After a stall, samples must arrive for this long before the run resumes, s.
    name : str | None
        Name used in the pause reason (default: the stream's name).
    clock : callable
        ``local_clock`` (LSL time) by default.

    Attributes
    ----------
    resumes : int
        How many times the monitor resumed the watched runner after a stall.
    """

    def __init__(
        self,
        stream: Any,
        *,
        stale_s: float = 0.25,
        resume_after_s: float = 0.2,
        name: str | None = None,
        clock: Callable[[], float] = local_clock,
    ) -> None:
        for field, value, low, high in (("stale_s", stale_s, 0.01, 60.0),
                                        ("resume_after_s", resume_after_s, 0.0, 60.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and low <= value <= high):
                raise ConfigError(f"must be a number of seconds in [{low:g}, {high:g}], "
                                  f"got {value!r}", field=field)
        if callable(stream) and not hasattr(stream, "get_data"):
            self._latest = stream
            self.name = name or getattr(stream, "__name__", "stream")
        else:
            self._latest = lambda: newest_sample_time(stream)
            self.name = name or str(getattr(stream, "name", "stream"))
        self.stale_s = float(stale_s)
        self.resume_after_s = float(resume_after_s)
        self._clock = clock
        self._since = clock()  # before the first sample: stale only after stale_s
        self._fresh_since: float | None = None
        self._reasons: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.resumes = 0

    # ------------------------------------------------------------------ queries
    def age_s(self) -> float:
        """Seconds since the newest sample (since construction when none arrived yet)."""
        latest = self._latest()
        reference = self._since if latest is None else float(latest)
        return max(0.0, self._clock() - reference)

    def reason(self) -> str | None:
        """Why the stream counts as stopped, or None while it delivers samples."""
        age = self.age_s()
        if age <= self.stale_s:
            return None
        return (f"stream {self.name!r} stopped: no sample for {age:.2f} s "
                f"(limit stale_s = {self.stale_s:g} s)")

    def __call__(self, index: int = 0) -> str | None:
        """Pre-pulse check: None to go on, a reason string to pause the runner."""
        why = self.reason()
        if why is not None:
            self._reasons.add(why)
        return why

    def paused_by_me(self, runner: Any) -> bool:
        """True when ``runner`` is paused for a reason this watchdog gave."""
        return runner.state == "paused" and runner.pause_reason in self._reasons

    # ------------------------------------------------------------------ monitor
    def watch(self, runner: Any, *, poll_s: float = 0.02) -> StreamWatchdog:
        """Pause ``runner`` whenever the stream goes stale; resume it when data is back.

        Only pauses this watchdog caused are resumed (a user's pause stays). The thread
        ends with the run (stopped, finished or failed) or with :meth:`stop`.

        Parameters
        ----------
        runner : ProtocolRunner
            The runner (started before or after this call).
        poll_s : float
            How often the stream is checked, s.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this watchdog already watches a runner; stop() it first")
        self._stop.clear()
        self._thread = threading.Thread(target=self._monitor, args=(runner, float(poll_s)),
                                        name=f"watchdog-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the monitor thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def _monitor(self, runner: Any, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            state = runner.state
            if state in _FINAL_STATES:
                return
            if state == "running":
                why = self(0)
                if why is not None and runner.pause_reason not in self._reasons:
                    runner.pause(reason=why)  # once per stall: the reason stays until resumed
                    self._fresh_since = None
            elif self.paused_by_me(runner):
                if self.reason() is not None:
                    self._fresh_since = None
                    continue
                now = self._clock()
                if self._fresh_since is None:
                    self._fresh_since = now
                if now - self._fresh_since >= self.resume_after_s:
                    self._fresh_since = None
                    self._reasons.clear()
                    self.resumes += 1
                    runner.resume()
