"""ProtocolRunnerPanel: progress, start, pause, resume, stop, and the safety verdict.

The runner owns the pulse timing in its own thread; the panel only mirrors its state.
A :class:`~labkit.widgets._threads.Ticker` reads the runner a few times a second and
writes the widgets, so the page follows the run while the kernel stays free. Buttons call
the runner's own ``start``/``pause``/``resume``/``stop``, which return at once, and are
enabled only when valid in the run's state (:func:`run_buttons`). A runner runs once:
after it ends, **New run** puts a fresh one (same protocol and settings, its safety
verdict checked anew against the session's count) on the panel.
The emergency STOP (in the status bar) also stops the runner (see
:mod:`labkit.widgets.estop`).
"""

from __future__ import annotations

import threading
from html import escape
from typing import Any

import ipywidgets as widgets

from labkit.runner import ProtocolRunner
from labkit.widgets._threads import Ticker
from labkit.widgets.estop import EmergencyStop
from labkit.widgets.status_bar import StatusBar

_DELIVERED = ("pulses_delivered", "delivered", "n_delivered", "pulse_count", "pulses_done")
_TOTAL = ("total_pulses", "n_pulses", "pulses_total")
_OK = ("ok", "allowed", "safe", "passed", "approved")


def _number(obj: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(obj, name, None)
        if callable(value):
            value = value()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def delivered_pulses(runner: Any) -> int:
    """Pulses the runner has delivered so far (0 if it does not say)."""
    value = _number(runner, _DELIVERED)
    if value is None:
        progress = getattr(runner, "progress", None)
        value = _number(progress, _DELIVERED) if progress is not None else None
    return value or 0


def total_pulses(runner: Any) -> int | None:
    """Pulses the run will deliver, from the runner, its schedule or its protocol."""
    value = _number(runner, _TOTAL)
    if value is not None:
        return value
    for holder in ("progress", "schedule"):
        obj = getattr(runner, holder, None)
        if obj is None:
            continue
        value = _number(obj, _TOTAL)
        if value is not None:
            return value
        if holder == "schedule" and hasattr(obj, "__len__"):
            return len(obj)
    protocol = getattr(runner, "protocol", None)
    timing = getattr(protocol, "timing", None)
    return _number(timing, _TOTAL) if timing is not None else None


def state_name(runner: Any) -> str:
    """The runner's state as lower-case text (enum name or value)."""
    state = getattr(runner, "state", "unknown")
    for attr in ("value", "name"):
        inner = getattr(state, attr, None)
        if isinstance(inner, str):
            return inner.lower()
    return str(state).lower()


def run_buttons(state: str, *, started: bool, ok: bool | None, stop_latched: bool,
                can_renew: bool) -> dict[str, bool]:
    """Which run buttons are enabled (True) in ``state``. Pure.

    Start: once, before the run, when the verdict is not a refusal and no STOP is
    latched. Pause: while running. Resume: while paused and no STOP is latched. Stop:
    while running or paused. New run: after the run ended (stopped, finished, failed),
    when the panel can make a fresh runner.
    """
    ended = state in ("stopped", "finished", "failed")
    live = state in ("running", "paused") or (started and not ended)
    return {
        "start": not started and state == "idle" and ok is not False and not stop_latched,
        "pause": state == "running",
        "resume": state == "paused" and not stop_latched,
        "stop": live,
        "new_run": ended and can_renew,
    }


def verdict_html(report: Any) -> tuple[str, bool | None]:
    """Render a dry-run / safety report; return (html, ok or None if unknown)."""
    ok = None
    if isinstance(report, bool):
        ok = report
    else:
        for name in _OK:
            value = getattr(report, name, None)
            if callable(value):
                value = value()
            if isinstance(value, bool):
                ok = value
                break
    text = report.summary() if callable(getattr(report, "summary", None)) else str(report)
    colour = {True: "#2ca02c", False: "#d1451f", None: "#555"}[ok]
    head = {True: "SAFE", False: "REFUSED", None: "verdict"}[ok]
    html = (f'<div class="labkit-verdict" data-ok="{"?" if ok is None else int(ok)}">'
            f'<b style="color:{colour}">{head}</b> '
            f'<span style="white-space:pre-wrap">{escape(text)}</span></div>')
    return html, ok


class ProtocolRunnerPanel(widgets.VBox):
    """Mirror and control a protocol runner.

    Parameters
    ----------
    runner : ProtocolRunner
        Object with ``start()``, ``pause()``, ``resume()``, ``stop()``, ``state`` and
        ``dry_run()`` (the safety check), counting delivered pulses.
    estop : EmergencyStop | None
        Shared STOP latch (a new one by default); every runner shown is registered so
        STOP stops it.
    poll_s : float | None
        Refresh period of the mirrored state; ``None`` for manual :meth:`refresh`.
    make_runner : callable | None
        Makes the next run's runner for **New run**; default ``runner.fresh`` for a
        :class:`~labkit.runner.ProtocolRunner`.
    rig, session, navigation
        Shown in the status bar (:class:`~labkit.widgets.status_bar.StatusBar`).
    """

    def __init__(self, runner: Any, *, estop: EmergencyStop | None = None,
                 poll_s: float | None = 0.2, make_runner: Any = None, rig: Any = None,
                 session: Any = None, navigation: Any = None) -> None:
        self.runner = runner
        self.estop = estop or EmergencyStop(runner.stimulator)
        self.estop.watch(runner)
        self.make_runner = make_runner
        self._started = False
        self.verdict = widgets.HTML("")
        self.verdict.add_class("labkit-safety-verdict")
        self.progress = widgets.IntProgress(value=0, min=0, max=max(total_pulses(runner) or 1, 1),
                                            description="pulses")
        self.progress.add_class("labkit-protocol-progress")
        self.progress_label = widgets.Label("")
        self.progress_label.add_class("labkit-protocol-count")
        self.state_label = widgets.Label("")
        self.state_label.add_class("labkit-protocol-state")
        self.message = widgets.Label("")
        self.message.add_class("labkit-protocol-message")
        self.start_button = self._button("Start", "labkit-protocol-start", self.start, "success")
        self.pause_button = self._button("Pause", "labkit-protocol-pause", self.pause, "warning")
        self.resume_button = self._button("Resume", "labkit-protocol-resume", self.resume, "")
        self.stop_button = self._button("Stop", "labkit-protocol-stop", self.stop, "danger")
        self.new_run_button = self._button("New run", "labkit-protocol-new-run", self.new_run,
                                           "info")
        name = getattr(getattr(runner, "protocol", None), "name", type(runner).__name__)
        self.status_bar = StatusBar(runner.stimulator, self.estop, rig=rig, session=session,
                                    navigation=navigation, poll_s=1.0 if poll_s else None)
        self.estop.add_listener(lambda _state: self._update_buttons())
        super().__init__(children=[
            self.status_bar,
            widgets.HTML(f"<b>Protocol</b> {escape(str(name))}"),
            self.verdict,
            widgets.HBox([self.start_button, self.pause_button, self.resume_button,
                          self.stop_button, self.new_run_button]),
            widgets.HBox([self.progress, self.progress_label, self.state_label]),
            self.message,
        ])
        self.add_class("labkit-protocol-panel")
        self.ok: bool | None = None
        self.check_safety()
        self.refresh()
        self._ticker = (Ticker(self.refresh, poll_s, self._report, "labkit-protocol").start()
                        if poll_s else None)

    def __repr__(self) -> str:
        return f"<ProtocolRunnerPanel: {state_name(self.runner)}>"

    def check_safety(self) -> bool | None:
        """Run the runner's dry run and show the verdict; return ok (None if unknown)."""
        try:
            try:
                report = self.runner.dry_run(print_summary=False)  # panels never print
            except TypeError:
                report = self.runner.dry_run()
        except Exception as exc:  # a refusal raised as an error is a verdict too
            self.verdict.value, self.ok = verdict_html(f"{type(exc).__name__}: {exc}")[0], False
            self.verdict.value = self.verdict.value.replace('data-ok="?"', 'data-ok="0"') \
                .replace(">verdict<", ">REFUSED<")
            self._update_buttons()
            return False
        self.verdict.value, self.ok = verdict_html(report)
        self._update_buttons()
        return self.ok

    def start(self) -> None:
        """Start the run (refused while the emergency STOP is latched)."""
        if self.estop.active:
            self.message.value = "emergency STOP is latched: press Reset STOP first"
            return
        if self._started:
            self.message.value = "this run has started; press New run for another"
            return
        self._started = True
        self._call("start")

    def pause(self) -> None:
        """Pause between pulses."""
        self._call("pause")

    def resume(self) -> None:
        """Resume a paused run."""
        self._call("resume")

    def stop(self) -> threading.Thread:
        """Stop the run from a helper thread (a runner's stop may wait for its thread)."""
        thread = threading.Thread(target=self._call, args=("stop",), daemon=True,
                                  name="labkit-protocol-stop")
        thread.start()
        return thread

    def new_run(self) -> bool:
        """Put a fresh runner on the panel once the run ended; False if not possible."""
        if not run_buttons(state_name(self.runner), started=self._started, ok=self.ok,
                           stop_latched=self.estop.active,
                           can_renew=self._renewer() is not None)["new_run"]:
            self.message.value = "New run is possible once this run has ended"
            return False
        try:
            runner = self._renewer()()
        except Exception as exc:
            self._report(exc)
            return False
        self.runner = runner
        self.estop.watch(runner)
        self._started = False
        self.check_safety()
        self.refresh()
        self.message.value = "new run ready: check the verdict, then Start"
        return True

    def refresh(self) -> None:
        """Copy the runner's progress and state into the widgets."""
        done = delivered_pulses(self.runner)
        total = total_pulses(self.runner)
        if total:
            self.progress.max = max(total, 1)
        self.progress.value = min(done, self.progress.max)
        self.progress_label.value = f"{done} / {total if total is not None else '?'}"
        state = state_name(self.runner)
        self.state_label.value = f"state: {state}"
        error = getattr(self.runner, "error", None)
        if state == "failed" and isinstance(error, BaseException):
            self.message.value = f"run failed: {type(error).__name__}: {error}"
        self._update_buttons()
        self.status_bar.refresh(query=False)

    def close(self) -> None:
        """Stop mirroring (the runner is left alone)."""
        if self._ticker is not None:
            self._ticker.stop()
        self.status_bar.close()
        super().close()

    def _renewer(self) -> Any:
        if self.make_runner is not None:
            return self.make_runner
        return self.runner.fresh if isinstance(self.runner, ProtocolRunner) else None

    def _update_buttons(self) -> None:
        states = run_buttons(state_name(self.runner), started=self._started, ok=self.ok,
                             stop_latched=self.estop.active,
                             can_renew=self._renewer() is not None)
        for name, enabled in states.items():
            getattr(self, f"{name}_button").disabled = not enabled

    def _call(self, name: str) -> None:
        try:
            getattr(self.runner, name)()
            self.message.value = name
        except Exception as exc:
            self._report(exc)
        self.refresh()

    def _button(self, text: str, css: str, action, style: str) -> widgets.Button:
        button = widgets.Button(description=text, button_style=style)
        button.add_class(css)
        button.on_click(lambda _b: action())
        return button

    def _report(self, exc: BaseException) -> None:
        self.message.value = f"{type(exc).__name__}: {exc}"
