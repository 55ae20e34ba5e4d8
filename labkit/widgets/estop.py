"""The emergency STOP: a latch that always answers, and a dedicated disarm path.

How STOP stays responsive
-------------------------
A button callback runs on the kernel's main thread. If it called ``stimulator.disarm()``
directly it would block there until whoever holds the driver's lock (a protocol train,
an ``arm()`` waiting for the capacitor) lets go, and the page would look frozen. So
:meth:`EmergencyStop.trigger` does only three things that cannot block:

1. sets :attr:`EmergencyStop.event` (a ``threading.Event``); every panel checks it before
   each operation and each pulse, and a protocol runner that is registered with
   :meth:`EmergencyStop.watch` is told to stop, so the next pulse is never sent;
2. starts a dedicated daemon thread (not the panels' job queue, which may be busy) that
   calls ``runner.stop()`` on every watched object, then ``stimulator.disarm()``, and
   reads the status back until the unit reports disarmed;
3. writes "STOP: disarming..." into the status label (a trait assignment).

The disarm itself still needs the serial port, so it waits at most for the command in
flight (one pulse, or the ~1 s of an arm); the latch guarantees nothing new is queued in
front of it. The latch stays set until :meth:`EmergencyStop.reset`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from labkit.errors import StimulatorError

StateCallback = Callable[[str], None]


class EmergencyStop:
    """Latch + disarm path shared by the panels of one stimulator.

    Parameters
    ----------
    stimulator : Stimulator
        The driver to disarm.
    on_state : callable | None
        Called with a short text each time the stop state changes (from any thread).
    confirm_timeout_s : float
        How long the disarm thread keeps retrying until the unit reports disarmed.
    """

    def __init__(
        self,
        stimulator: Any,
        *,
        on_state: StateCallback | None = None,
        confirm_timeout_s: float = 5.0,
    ) -> None:
        self.stimulator = stimulator
        self.event = threading.Event()
        self.confirm_timeout_s = float(confirm_timeout_s)
        self._watched: list[Any] = []
        self._listeners: list[StateCallback] = [on_state] if on_state else []
        self._thread: threading.Thread | None = None
        #: True once the unit reported disarmed after the last trigger.
        self.disarmed = False
        #: Last state text ("ready", "stopping", "disarmed", "FAILED: ...").
        self.state = "ready"

    @property
    def active(self) -> bool:
        """True between :meth:`trigger` and :meth:`reset`."""
        return self.event.is_set()

    def watch(self, target: Any) -> None:
        """Call ``target.stop()`` when STOP is pressed (protocol runners, hunters)."""
        if target not in self._watched:
            self._watched.append(target)

    def add_listener(self, callback: StateCallback) -> None:
        """Also call ``callback(state_text)`` on every state change."""
        self._listeners.append(callback)

    def trigger(self) -> threading.Thread:
        """Latch STOP and start disarming in a dedicated thread; never blocks.

        Returns
        -------
        threading.Thread
            The disarm thread (join it to wait for the confirmed disarm).
        """
        self.event.set()
        self.disarmed = False
        self._set_state("stopping")
        thread = threading.Thread(target=self._stop_all, name="labkit-estop", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the disarm thread; return True if the unit reported disarmed."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return self.disarmed

    def reset(self) -> None:
        """Release the latch so that panels may arm and fire again."""
        self.event.clear()
        self._set_state("ready")

    def check(self) -> None:
        """Raise :class:`StopLatchedError` if STOP is latched (call before each pulse)."""
        if self.event.is_set():
            raise StopLatchedError("emergency STOP is latched; press Reset to continue")

    # ------------------------------------------------------------------ internals
    def _set_state(self, text: str) -> None:
        self.state = text
        for callback in list(self._listeners):
            try:
                callback(text)
            except Exception:  # a broken label must not stop the stop
                pass

    def _stop_all(self) -> None:
        for target in list(self._watched):
            try:
                target.stop()
            except Exception:  # the disarm below is what matters
                pass
        deadline = time.monotonic() + self.confirm_timeout_s
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                self.stimulator.disarm()
                if not self.stimulator.status().armed:
                    self.disarmed = True
                    self._set_state("disarmed")
                    return
            except (StimulatorError, OSError) as exc:
                last_error = exc
            time.sleep(0.05)
        self._set_state(f"FAILED to confirm disarm: {last_error or 'unit still armed'}")


class StopLatchedError(StimulatorError):
    """An operation was refused because the emergency STOP is latched."""
