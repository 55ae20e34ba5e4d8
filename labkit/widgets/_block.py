"""A panel that delivers a block of trials (a hotspot map, a paired-pulse block).

The block runs trial by trial in a :class:`~labkit.widgets._threads.Worker` thread, so
the page and STOP stay responsive; Stop (or the emergency STOP) ends it between trials.
Buttons follow the state (:func:`block_buttons`): Start once, Stop while running, New
block after it ended. The status bar (:class:`~labkit.widgets.status_bar.StatusBar`)
with the emergency STOP is at the top.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from labkit.widgets._threads import Worker
from labkit.widgets.estop import EmergencyStop
from labkit.widgets.status_bar import StatusBar

__all__ = ["BlockPanel", "block_buttons"]


def block_buttons(state: str, *, stop_latched: bool, can_renew: bool) -> dict[str, bool]:
    """Which block buttons are enabled (True) in ``state``. Pure.

    ``state`` is ``"idle"``, ``"running"``, ``"stopped"``, ``"finished"`` or ``"failed"``.
    """
    ended = state in ("stopped", "finished", "failed")
    return {"start": state == "idle" and not stop_latched,
            "stop": state == "running",
            "new": ended and can_renew}


class BlockPanel(widgets.VBox):
    """Base of the block panels; subclasses implement the trial and the drawing.

    Parameters
    ----------
    rig : Rig
        Fires the pulses (its limits, session and navigator apply).
    title : str
        Heading.
    body : list of widgets
        The subclass's plots and labels (under the buttons).
    estop : EmergencyStop | None
        Shared STOP latch (a new one for the rig's stimulator by default).
    make_block : callable | None
        Makes the next block for **New block** (None: no New block).
    poll_s : float | None
        Status bar refresh period.
    """

    css_class = "labkit-block-panel"

    def __init__(self, rig: Any, title: str, body: list, *, estop: EmergencyStop | None = None,
                 make_block: Callable[[], Any] | None = None,
                 poll_s: float | None = 1.0) -> None:
        self.rig = rig
        self.estop = estop or EmergencyStop(rig.stimulator)
        self.estop.watch(self)
        self.make_block = make_block
        self.state = "idle"
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.worker = Worker(f"{self.css_class}", self._fail)
        self.status_bar = StatusBar(rig.stimulator, self.estop, rig=rig, poll_s=poll_s)
        self.start_button = self._button("Start", "labkit-block-start", self.start, "success")
        self.stop_button = self._button("Stop", "labkit-block-stop", self.stop, "warning")
        self.new_button = self._button("New block", "labkit-block-new", self.new_block, "info")
        self.state_label = widgets.Label("")
        self.state_label.add_class("labkit-block-state")
        self.message = widgets.Label("")
        self.message.add_class("labkit-block-message")
        self.estop.add_listener(lambda _state: self._update())
        super().__init__(children=[
            self.status_bar, widgets.HTML(title),
            widgets.HBox([self.start_button, self.stop_button, self.new_button,
                          self.state_label]),
            self.message, *body])
        self.add_class(self.css_class)
        self._update()

    # ------------------------------------------------------------------ subclass hooks
    @property
    def done(self) -> bool:  # pragma: no cover - abstract
        """True when every trial of the block is recorded."""
        raise NotImplementedError

    def _trial(self) -> None:  # pragma: no cover - abstract
        """Deliver and record one trial (worker thread)."""
        raise NotImplementedError

    def _render(self) -> None:  # pragma: no cover - abstract
        """Redraw the plots from the block."""
        raise NotImplementedError

    def _finished(self) -> None:
        """Called once when the block completes (log the result...)."""

    def _use_block(self, block: Any) -> None:  # pragma: no cover - abstract
        """Take a new block (New block)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ public
    def start(self) -> bool:
        """Start the block (background thread); False when not possible now."""
        if self.estop.active:
            self.message.value = "emergency STOP is latched: press Reset STOP first"
            return False
        if self.state != "idle":
            self.message.value = "this block has run; press New block for another"
            return False
        self._stop.clear()
        self.state = "running"
        self._update()
        return self.worker.submit(self._loop, label="block")

    def stop(self) -> None:
        """End the block before the next trial (also what STOP does)."""
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the block's thread; True when it is no longer running."""
        return self.worker.join(timeout_s)

    def new_block(self) -> bool:
        """Put a fresh block on the panel after this one ended."""
        if not block_buttons(self.state, stop_latched=self.estop.active,
                             can_renew=self.make_block is not None)["new"]:
            self.message.value = "New block is possible once this block has ended"
            return False
        self._use_block(self.make_block())
        self.state, self.error = "idle", None
        self.message.value = "new block ready"
        self._render()
        self._update()
        return True

    def close(self) -> None:
        """Stop the block and the status bar."""
        self.stop()
        self.status_bar.close()
        super().close()

    # ------------------------------------------------------------------ internals
    def _loop(self) -> None:
        try:
            while not self.done and not self._stop.is_set():
                self.estop.check()
                self._trial()
                self._render()
                self.status_bar.refresh(query=False)
        except BaseException:
            self.state = "failed"
            raise
        finally:
            if self.state == "running":
                self.state = "finished" if self.done else "stopped"
                if self.done:
                    self._finished()
            self._update()
            self.status_bar.refresh(query=False)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.state = "failed"
        self.message.value = f"{type(exc).__name__}: {exc}"
        self._update()

    def _update(self) -> None:
        states = block_buttons(self.state, stop_latched=self.estop.active,
                               can_renew=self.make_block is not None)
        self.start_button.disabled = not states["start"]
        self.stop_button.disabled = not states["stop"]
        self.new_button.disabled = not states["new"]
        self.state_label.value = f"state: {self.state}"

    @staticmethod
    def _button(text: str, css: str, action: Callable[[], Any], style: str) -> widgets.Button:
        button = widgets.Button(description=text, button_style=style)
        button.add_class(css)
        button.on_click(lambda _b: action())
        return button
