"""StimulatorPanel: connect, arm, set intensity, fire, watch status, and STOP.

Every button queues its operation on one background job thread, in order, so the
kernel's main thread (which handles all button clicks) is never blocked by the serial
port. STOP is different: it does not queue (see :mod:`labkit.widgets.estop`).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from labkit.clock import local_clock
from labkit.errors import ConfigError, SafetyError, StimulatorError
from labkit.widgets._emg import as_emg_source
from labkit.widgets._threads import Ticker
from labkit.widgets.estop import EmergencyStop
from labkit.widgets.mep_view import MEPCollector, MEPView
from labkit.widgets.status_bar import StatusBar


def button_states(connected: bool, status: Any, stop_latched: bool,
                  interval_wait_s: float) -> dict[str, bool]:
    """Which of the panel's buttons are enabled (True) in this state. Pure.

    Connect only while disconnected; Disconnect, Arm and Disarm only while connected; Arm
    only while disarmed and no STOP is latched; Disarm only while armed; Fire only when
    the unit is ready, no STOP is latched and the single-pulse interval has passed.
    """
    armed = bool(getattr(status, "armed", False)) if connected else False
    ready = bool(getattr(status, "ready", False)) if connected else False
    return {
        "connect": not connected,
        "disconnect": connected,
        "arm": connected and not armed and not stop_latched,
        "disarm": connected and (armed or status is None),
        "fire": connected and ready and not stop_latched and interval_wait_s <= 0,
    }


def parse_intensity(text: str, low: int, high: int) -> int:
    """The intensity typed in the panel as whole % MSO in ``[low, high]``, or refuse.

    Raises
    ------
    ConfigError
        Not a number, not a whole percent, or outside ``[low, high]`` (no clamping: the
        unit keeps its last valid value).
    """
    raw = str(text).strip().replace("%", "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number; type a whole % MSO in [{low}, {high}]",
                          field="intensity") from None
    if value != value or value != int(value):
        raise ConfigError(f"{text!r} is not a whole % MSO (the unit's 1 % grid); allowed "
                          f"{low}-{high}", field="intensity")
    if not low <= value <= high:
        raise ConfigError(f"{int(value)} % MSO is outside [{low}, {high}] % MSO "
                          "(1 % at least; the top is the rig's ceiling)", field="intensity")
    return int(value)


class StimulatorPanel(widgets.VBox):
    """Control panel of one stimulator.

    Parameters
    ----------
    stimulator : Stimulator
        A labkit driver (connected or not).
    emg_source : StreamLSL | EMGSource | None
        When given, every delivered pulse (from this panel, a runner or a hunter) gets
        its MEP sweep drawn in :attr:`mep_view`.
    max_intensity_percent : int
        Upper end of the intensity slider, % MSO; never above the stimulator's ceiling
        (its firing guard: the rig profile's limits).
    poll_s : float | None
        Status refresh period; ``None`` disables polling (tests call
        :meth:`refresh_status`).
    estop : EmergencyStop | None
        Share one STOP between panels; a new one is made by default.
    mep_options : dict | None
        Passed to :class:`~labkit.widgets._emg.StreamEpochs` (``channel``, ``window_ms``...).
    on_mep : callable | None
        Called (in the MEP thread) with every recorded :class:`~labkit.widgets.MEPTrial`,
        e.g. ``lambda t: session.log_event("mep", amplitude_uv=t.amplitude_uv)``.
    rig, session, navigation
        Shown in the status bar (:class:`~labkit.widgets.status_bar.StatusBar`): the
        SIMULATED/REAL badge, the session, the coil-to-target distance.

    Attributes
    ----------
    estop : EmergencyStop
        The STOP latch; give it to :class:`ProtocolRunnerPanel` / :class:`ThresholdHunter`.
    mep_view : MEPView | None
        The live MEP view, when an EMG source was given.
    """

    def __init__(
        self,
        stimulator: Any,
        *,
        emg_source: Any = None,
        max_intensity_percent: int = 100,
        poll_s: float | None = 0.5,
        estop: EmergencyStop | None = None,
        mep_options: dict | None = None,
        on_mep: Callable[[Any], None] | None = None,
        rig: Any = None,
        session: Any = None,
        navigation: Any = None,
    ) -> None:
        self.stimulator = stimulator
        self._jobs = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="labkit-stim")
        self._last_job: concurrent.futures.Future | None = None
        self.estop = estop or EmergencyStop(stimulator)
        self.estop.add_listener(self._on_stop_state)
        self.last_pulse = None

        name = type(stimulator).__name__
        self.title = widgets.HTML(f"<b>{escape(name)}</b> on <code>{escape(str(stimulator.port))}"
                                  "</code>")
        self.connect_button = self._button("Connect", "labkit-connect", self._connect_job)
        self.disconnect_button = self._button("Disconnect", "labkit-disconnect", self._close_job)
        self.arm_button = self._button("Arm", "labkit-arm", self._arm_job, style="warning")
        self.disarm_button = self._button("Disarm", "labkit-disarm", self._disarm_job)
        self.fire_button = self._button("Fire", "labkit-fire", self._fire_job, style="danger")
        guard = stimulator.guard
        self.max_intensity_percent = int(min(max_intensity_percent, guard.ceiling_percent()))
        start = min(50, self.max_intensity_percent)
        self.intensity = widgets.IntSlider(
            value=start, min=1, max=self.max_intensity_percent,
            description="%MSO", continuous_update=False, readout=False,
        )
        self.intensity.add_class("labkit-intensity")
        self.intensity.observe(self._on_intensity, names="value")
        # typed values are checked, never clamped: 150, 55.7, 0 or "abc" are refused
        self.intensity_text = widgets.Text(value=str(start), continuous_update=False,
                                           layout=widgets.Layout(width="70px"))
        self.intensity_text.add_class("labkit-intensity-input")
        self.intensity_text.observe(self._on_intensity_text, names="value")
        self.intensity_error = widgets.HTML("")
        self.intensity_error.add_class("labkit-intensity-error")
        # the status bar carries the STOP; this panel polls the unit and hands it the status
        self.status_bar = StatusBar(stimulator, self.estop, rig=rig, session=session,
                                    navigation=navigation, poll_s=None)
        self.stop_button = self.status_bar.stop.button
        self.reset_button = self.status_bar.stop.reset_button
        self.stop_state = self.status_bar.stop.state
        self.stop_banner = self.status_bar.stop.banner
        self.message = widgets.Label("")
        self.message.add_class("labkit-message")

        self.mep_view: MEPView | None = None
        self.collector: MEPCollector | None = None
        if emg_source is not None:
            source = as_emg_source(emg_source, **(mep_options or {}))
            window = getattr(source, "window_ms", (15.0, 50.0))
            self.mep_view = MEPView(window_ms=window)
            self.collector = MEPCollector(source, self.mep_view, on_error=self._report,
                                          on_trial=on_mep)
        stimulator.add_pulse_listener(self._on_pulse)

        rows: list[widgets.Widget] = [
            self.status_bar,
            self.title,
            widgets.HBox([self.connect_button, self.disconnect_button, self.arm_button,
                          self.disarm_button]),
            widgets.HBox([self.intensity, self.intensity_text, self.fire_button]),
            self.intensity_error,
            self.message,
        ]
        if self.mep_view is not None:
            rows.append(self.mep_view)
        super().__init__(children=rows)
        self.add_class("labkit-stimulator-panel")
        self._update_buttons(None)
        self._ticker = None
        if poll_s:
            self._ticker = Ticker(self._poll, poll_s, self._report, "labkit-stim-status").start()

    def __repr__(self) -> str:
        return f"<StimulatorPanel: {type(self.stimulator).__name__}>"

    # ------------------------------------------------------------------ public
    def stop(self) -> None:
        """Emergency STOP (what the red button does): latch, stop runs, disarm."""
        self.estop.trigger()

    def reset_stop(self) -> None:
        """Release the STOP latch (what Reset STOP does)."""
        self.estop.reset()

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait until queued button operations are done (and MEPs drawn); for scripts."""
        deadline = time.monotonic() + timeout_s
        job = self._last_job
        if job is not None:
            try:
                job.result(timeout=timeout_s)
            except Exception:  # already reported on the panel
                pass
        if self.collector is not None:
            self.collector.wait_idle(max(0.0, deadline - time.monotonic()))
        if self.mep_view is not None:
            self.mep_view.throttle.flush()

    def refresh_status(self) -> Any:
        """Query the unit, update the status bar and the buttons; returns the status."""
        status = self.stimulator.status()
        self._update_buttons(status)
        self.status_bar.refresh(status)
        return status

    def close(self) -> None:
        """Stop polling and background threads (the driver itself stays open)."""
        if self._ticker is not None:
            self._ticker.stop()
        if self.collector is not None:
            self.collector.close()
        self.status_bar.close()
        try:
            self.stimulator.remove_pulse_listener(self._on_pulse)
        except ValueError:
            pass
        self._jobs.shutdown(wait=False, cancel_futures=True)
        super().close()

    # ------------------------------------------------------------------ jobs
    def _button(self, text: str, css: str, job: Callable[[], Any] | None,
                style: str = "") -> widgets.Button:
        button = widgets.Button(description=text, button_style=style)
        button.add_class(css)
        if job is not None:
            button.on_click(lambda _b: self._submit(text, job))
        return button

    def _submit(self, label: str, job: Callable[[], Any]) -> concurrent.futures.Future:
        def run() -> None:
            try:
                job()
            except Exception as exc:
                self._report(exc)
                raise
            finally:
                try:
                    if self.stimulator.connected:
                        self.refresh_status()
                except Exception:
                    pass

        self.message.value = f"{label}..."
        self._last_job = self._jobs.submit(run)
        return self._last_job

    def _connect_job(self) -> None:
        self.stimulator.connect()
        self.message.value = "connected"

    def _close_job(self) -> None:
        self.stimulator.close()
        self._update_buttons(None)
        self.status_bar.refresh(query=False)
        self.message.value = "disconnected"

    def _arm_job(self) -> None:
        self.estop.check()
        self.stimulator.arm()
        self.message.value = "armed"

    def _disarm_job(self) -> None:
        self.stimulator.disarm()
        self.message.value = "disarmed"

    def _set_intensity_job(self, percent: int) -> None:
        self.stimulator.set_intensity(percent)
        self.message.value = f"intensity {percent} %MSO"

    def _fire_job(self) -> None:
        self.estop.check()
        wait_s = self.stimulator.guard.single_pulse_wait_s(local_clock())
        if wait_s > 0:
            raise SafetyError(f"the last pulse was less than "
                              f"{self.stimulator.guard.min_single_interval_s:g} s ago; not "
                              f"fired (wait {wait_s:.1f} s)")
        # a runner or a hunter may have changed the intensity since the slider moved:
        # Fire always means "one pulse at the intensity shown on the slider"
        self.stimulator.set_intensity(int(self.intensity.value))
        self.stimulator.prepare_single_pulses()  # a unit left in train mode by a runner
        deadline = time.monotonic() + 3.0
        status = self.stimulator.status()
        if not status.armed:
            raise StimulatorError("not armed: press Arm before Fire")
        while not status.ready and time.monotonic() < deadline:
            time.sleep(0.05)
            self.estop.check()
            status = self.stimulator.status()
        if not status.ready:
            raise StimulatorError("armed but not ready after 3 s; not fired")
        self.estop.check()
        event = self.stimulator.fire()
        self.message.value = f"pulse {event.index + 1} at {event.intensity_percent:.0f} %MSO"

    # ------------------------------------------------------------------ callbacks
    def _on_intensity(self, change: dict) -> None:
        percent = int(change["new"])
        if self.intensity_text.value != str(percent):
            self.intensity_text.value = str(percent)
        self._submit("set intensity", lambda: self._set_intensity_job(percent))

    def _on_intensity_text(self, change: dict) -> None:
        text = change["new"]
        if text == str(self.intensity.value):
            return
        try:
            percent = parse_intensity(text, 1, self.max_intensity_percent)
        except ConfigError as exc:
            self.intensity_error.value = (
                f'<span style="color:#c62828;font-weight:bold">refused: {escape(str(exc))}'
                f' — the unit stays at {self.intensity.value} % MSO</span>')
            self.intensity_text.value = str(self.intensity.value)
            return
        self.intensity_error.value = ""
        self.intensity.value = percent

    def _update_buttons(self, status: Any) -> None:
        """Enable only the buttons valid now (:func:`button_states`)."""
        wait_s = self.stimulator.guard.single_pulse_wait_s(local_clock())
        states = button_states(bool(self.stimulator.connected), status, self.estop.active,
                               wait_s)
        for name, enabled in states.items():
            getattr(self, f"{name}_button").disabled = not enabled

    def _on_pulse(self, event: Any) -> None:
        self.last_pulse = event
        self.fire_button.disabled = True  # until the next status poll finds it allowed
        self.status_bar.refresh(query=False)
        if self.collector is not None:
            self.collector.on_pulse(event)

    def _on_stop_state(self, state: str) -> None:
        if state != "ready":
            self.fire_button.disabled = True
            self.arm_button.disabled = True
        else:
            self.message.value = "STOP released"
        if state in ("disarmed", "ready"):
            try:
                self.refresh_status()
            except Exception:
                pass

    def _poll(self) -> None:
        if self.stimulator.connected and getattr(self.stimulator, "fault", None) is None:
            self.refresh_status()

    def _report(self, exc: BaseException) -> None:
        self.message.value = f"{type(exc).__name__}: {exc}"
