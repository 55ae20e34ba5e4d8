"""ThresholdHunter: drive any threshold estimator from the notebook, pulse by pulse.

The operator sees the next intensity, fires, looks at the MEP and accepts or rejects it
(reject e.g. when the background EMG shows the muscle was not at rest). Accepted trials
go to the estimator; the staircase and the running estimate update; when the estimator
is done, the threshold is logged to the session (``Session.log_threshold``) and handed to
``on_threshold``. "Auto" accepts every trial whose background passes the hunt's
:class:`~labkit.background.BackgroundCriterion` (a resting hunt: relaxed muscle; an
active hunt: the contraction within its target band) and fires the next one after
``interval_s``, off the kernel's main thread; STOP ends it between pulses.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from labkit.background import (
    BackgroundCriterion,
    BackgroundEMG,
    BackgroundVerdict,
    mep_criterion_uv,
)
from labkit.clock import local_clock
from labkit.errors import ConfigError, StimulatorError
from labkit.trialstyle import trial_style
from labkit.widgets._emg import MEPTrial, as_emg_source
from labkit.widgets._svg import series_svg
from labkit.widgets._threads import Worker
from labkit.widgets.estop import EmergencyStop
from labkit.widgets.mep_view import MEPView
from labkit.widgets.status_bar import StatusBar


class ThresholdHunter(widgets.VBox):
    """Interactive motor-threshold hunt.

    Parameters
    ----------
    stimulator : Stimulator
        Connected driver.
    estimator : ThresholdEstimator
        Any :mod:`labkit.threshold` estimator (``next_intensity``/``update``/``done``).
    emg_source : StreamLSL | EMGSource
        Where MEP sweeps come from.
    session : Session | None
        Receives ``log_threshold(...)`` when the hunt ends, with the MEP criterion, the
        background criterion (:meth:`BackgroundCriterion.describe`) and the number of
        rejected trials.
    estop : EmergencyStop | None
        Shared STOP latch (e.g. ``StimulatorPanel.estop``).
    on_threshold : callable | None
        Called with the threshold (% MSO) when the hunt ends.
    kind : {"rmt", "amt"}
        Resting or active motor threshold: the estimator's criterion must be the one of
        that kind (50 µV resting, 200 µV active; ``make_estimator(..., mode="active")``).
    interval_s : float
        Minimum time between pulses in auto mode (use >= 4 s on a person).
    background : BackgroundCriterion | None
        Which pre-stimulus EMG lets a trial count (auto mode rejects the others; manual
        mode flags them). Default for ``kind="rmt"``:
        ``BackgroundCriterion.rest(ptp_limit_uv=<the estimator's criterion>)`` (RMS
        <= 10 µV, peak-to-peak <= 50 µV). ``kind="amt"`` needs one:
        ``BackgroundCriterion.active_from_mvc(mvc_uv)`` or ``.active((low, high))``.
    mep_options : dict | None
        Passed to :class:`~labkit.widgets._emg.StreamEpochs`.
    rig, navigation
        Shown in the status bar (:class:`~labkit.widgets.status_bar.StatusBar`).
    poll_s : float | None
        Status bar refresh period (``None``: refreshed after each pulse only).
    """

    def __init__(
        self,
        stimulator: Any,
        estimator: Any,
        emg_source: Any,
        session: Any = None,
        *,
        estop: EmergencyStop | None = None,
        on_threshold: Callable[[float], None] | None = None,
        kind: str = "rmt",
        interval_s: float = 5.0,
        background: BackgroundCriterion | None = None,
        mep_options: dict | None = None,
        rig: Any = None,
        navigation: Any = None,
        poll_s: float | None = 1.0,
    ) -> None:
        # first: close() (also called by the garbage collector) must work on a hunter
        # whose construction failed below
        self._stop = threading.Event()
        self.status_bar: StatusBar | None = None
        criterion = float(getattr(estimator, "criterion_uv", 50.0))
        self.background = _hunt_background(kind, criterion, background)
        self.stimulator = stimulator
        self.estimator = estimator
        self.source = as_emg_source(emg_source, **(mep_options or {}))
        self.session = session
        self.estop = estop or EmergencyStop(stimulator)
        self.estop.watch(self)
        self.on_threshold = on_threshold
        self.kind = kind
        self.interval_s = float(interval_s)
        self.worker = Worker("labkit-hunter", self._report)
        self._pending: tuple[int, MEPTrial] | None = None
        self._last_pulse_s = -math.inf
        #: Every fired trial: (intensity %MSO, MEPTrial, accepted or None).
        self.trials: list[tuple[int, MEPTrial, bool | None]] = []
        #: Final threshold, % MSO, once done.
        self.result: float | None = None

        self.next_label = widgets.HTML()
        self.next_label.add_class("labkit-next-intensity")
        self.fire_button = widgets.Button(description="Fire", button_style="danger")
        self.fire_button.add_class("labkit-hunter-fire")
        self.fire_button.on_click(lambda _b: self.fire())
        self.accept_button = widgets.Button(description="Accept", button_style="success",
                                            disabled=True)
        self.accept_button.add_class("labkit-accept")
        self.accept_button.on_click(lambda _b: self.accept())
        self.reject_button = widgets.Button(description="Reject", disabled=True)
        self.reject_button.add_class("labkit-reject")
        self.reject_button.on_click(lambda _b: self.reject())
        self.auto_button = widgets.Button(description="Auto to end", button_style="info")
        self.auto_button.add_class("labkit-auto")
        self.auto_button.on_click(lambda _b: self.run_auto())
        self.trial_label = widgets.Label("")
        self.trial_label.add_class("labkit-trial")
        self.estimate_label = widgets.Label("estimate: --")
        self.estimate_label.add_class("labkit-estimate")
        self.result_label = widgets.HTML("")
        self.result_label.add_class("labkit-threshold-result")
        self.staircase = widgets.HTML(series_svg([], title="staircase", unit=" %MSO"))
        self.staircase.add_class("labkit-staircase")
        self.mep_view = MEPView(window_ms=getattr(self.source, "window_ms", (15.0, 50.0)),
                                criterion_uv=criterion)
        self.status_bar = StatusBar(stimulator, self.estop, rig=rig, session=session,
                                    navigation=navigation, poll_s=poll_s)
        self.estop.add_listener(self._on_stop_state)
        super().__init__(children=[
            self.status_bar,
            widgets.HTML(f"<b>Threshold hunt</b> ({type(estimator).__name__}, "
                         f"criterion {criterion:.0f} µV; {self.background.describe()})"),
            widgets.HBox([self.next_label, self.fire_button, self.accept_button,
                          self.reject_button, self.auto_button]),
            self.trial_label, self.estimate_label, self.result_label,
            widgets.HBox([self.staircase, self.mep_view]),
        ])
        self.add_class("labkit-threshold-hunter")
        self._refresh()

    def __repr__(self) -> str:
        return f"<ThresholdHunter: {type(self.estimator).__name__}>"

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        """True when the estimator has finished."""
        return bool(self.estimator.done)

    @property
    def n_accepted(self) -> int:
        """Trials given to the estimator."""
        return len(self.estimator.history)

    def fire(self) -> bool:
        """Fire one pulse at the next intensity (background thread); False if busy."""
        return self.worker.submit(self._fire_once, label="fire")

    def accept(self) -> None:
        """Give the pending MEP to the estimator."""
        self._decide(True)

    def reject(self) -> None:
        """Discard the pending MEP; the same intensity is proposed again."""
        self._decide(False)

    def run_auto(self) -> bool:
        """Fire, accept (background permitting) and repeat until done or stopped."""
        self._stop.clear()
        return self.worker.submit(self._auto_loop, label="auto")

    def stop(self) -> None:
        """End auto mode before the next pulse (called by STOP)."""
        self._stop.set()

    def judge(self, trial: MEPTrial) -> BackgroundVerdict:
        """The background verdict of a trial (:meth:`BackgroundCriterion.judge`)."""
        background = trial.background
        if background is None:  # a source that measured only the RMS
            background = BackgroundEMG(trial.background_uv, math.nan, math.nan)
        return self.background.judge(background)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the running fire/auto job; True if none is running afterwards."""
        ok = self.worker.join(timeout_s)
        self.mep_view.throttle.flush()
        return ok

    # ------------------------------------------------------------------ jobs
    def _fire_once(self) -> MEPTrial:
        self.estop.check()
        self._check_storage()
        if self.done:
            raise StimulatorError("the hunt is over; the threshold is logged")
        if self._pending is not None:
            raise StimulatorError("accept or reject the last MEP before firing again")
        x = int(self.estimator.next_intensity())
        self.stimulator.set_intensity(x)
        self.stimulator.prepare_single_pulses()  # a unit left in train mode by a runner
        self._ensure_ready()
        wait_s = max(self._last_pulse_s + self.interval_s - time.monotonic(),
                     self.stimulator.guard.single_pulse_wait_s(local_clock()))
        if wait_s > 0 and self._stop.wait(wait_s):
            raise StimulatorError("stopped")
        self.estop.check()
        self._check_storage()
        event = self.stimulator.fire()
        self._last_pulse_s = time.monotonic()
        trial = self.source.epoch(event.time_s)
        self._pending = (x, trial)
        self.trials.append((x, trial, None))
        self.mep_view.add_trial(trial, accepted=None)
        self.status_bar.refresh(query=False)
        verdict = self.judge(trial)
        flag = "" if verdict.accepted else f" ({verdict.reason}: reject?)"
        self.trial_label.value = (f"trial {len(self.trials)}: {x} %MSO -> "
                                  f"{trial.amplitude_uv:.1f} µV{flag}")
        self.fire_button.disabled = True  # accept or reject it first
        self.accept_button.disabled = False
        self.reject_button.disabled = False
        return trial

    def _check_storage(self) -> None:
        """Refuse to fire while the session's storage is faulted (low disk space...)."""
        if self.session is not None:
            self.session.check_storage("threshold hunt")

    def _ensure_ready(self) -> None:
        status = self.stimulator.status()
        if not status.armed:
            self.stimulator.arm()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            self.estop.check()
            if self.stimulator.status().ready:
                return
            time.sleep(0.05)
        raise StimulatorError("stimulator not ready 3 s after arming; not fired")

    def _decide(self, accepted: bool, auto: bool = False) -> None:
        if self._pending is None:
            return
        x, trial = self._pending
        self._pending = None
        self.trials[-1] = (x, trial, accepted)
        self.accept_button.disabled = True
        self.reject_button.disabled = True
        if not auto:  # auto mode keeps the manual buttons off until it ends
            self.fire_button.disabled = self.estop.active
        self.mep_view.mark_last(accepted)
        if accepted:
            self.estimator.update(x, trial.amplitude_uv)
        if self.done:
            self._finish()
        self._refresh()

    def _auto_loop(self) -> None:
        manual = (self.fire_button, self.accept_button, self.reject_button, self.auto_button)
        for button in manual:  # auto decides; a click meanwhile would race it
            button.disabled = True
        try:
            while not self.done and not self._stop.is_set():
                trial = self._fire_once()
                self._decide(self.judge(trial).accepted, auto=True)
        finally:
            if not self.done:
                self.fire_button.disabled = self._pending is not None or self.estop.active
                self.auto_button.disabled = self.estop.active
                pending = self._pending is not None
                self.accept_button.disabled = not pending
                self.reject_button.disabled = not pending

    def _finish(self) -> None:
        value = float(self.estimator.threshold)
        self.result = value
        n = len(self.trials)
        try:
            self.stimulator.disarm()
        except StimulatorError:
            pass
        if self.session is not None:
            self.session.log_threshold(
                value, method=_method_label(self.estimator), kind=self.kind, n_pulses=n,
                criterion_uv=float(getattr(self.estimator, "criterion_uv", math.nan)),
                background=self.background.describe(),
                n_rejected=sum(1 for *_, accepted in self.trials if accepted is False))
        self.result_label.value = (f"<b>{self.kind.upper()} = {value:.0f} %MSO</b> "
                                   f"({type(self.estimator).__name__}, {n} pulses)")
        self.fire_button.disabled = True
        self.auto_button.disabled = True
        if self.on_threshold is not None:
            self.on_threshold(value)

    def _refresh(self) -> None:
        history = list(self.estimator.history)
        estimate = float(self.estimator.threshold) if history else math.nan
        self.staircase.value = series_svg(
            [t.intensity_percent for t in history],
            styles=[trial_style(True, bool(t.hit)) for t in history],
            reference=estimate if math.isfinite(estimate) else None,
            title="staircase (filled: MEP >= criterion; dashed: estimate)", unit=" %MSO",
            x_label="accepted trial number",
        )
        if math.isfinite(estimate):
            self.estimate_label.value = f"estimate: {estimate:.1f} %MSO after {len(history)}"
        if self.done:
            self.next_label.value = "next: <b>done</b>"
        else:
            self.next_label.value = f"next: <b>{self.estimator.next_intensity()} %MSO</b>"

    def _on_stop_state(self, state: str) -> None:
        """No firing while STOP is latched; manual control back once it is reset."""
        if state != "ready":
            self.fire_button.disabled = True
            self.auto_button.disabled = True
        elif not self.done and not self.worker.busy:
            self.fire_button.disabled = self._pending is not None
            self.auto_button.disabled = False

    def close(self) -> None:
        """Stop the hunt's auto mode and the status bar."""
        self.stop()
        if self.status_bar is not None:
            self.status_bar.close()
        super().close()

    def _report(self, exc: BaseException) -> None:
        self.trial_label.value = f"{type(exc).__name__}: {exc}"


def _method_label(estimator: Any) -> str:
    """The estimator's method name (``"mlpest"``); the class name for one labkit does not know."""
    from labkit.threshold import ThresholdInputError, method_name

    try:
        return method_name(estimator)
    except ThresholdInputError:
        return type(estimator).__name__


def _hunt_background(kind: str, criterion_uv: float,
                     background: BackgroundCriterion | None) -> BackgroundCriterion:
    """The hunt's background criterion, checked against its kind and MEP criterion."""
    modes = {"rmt": "rest", "amt": "active"}
    if kind not in modes:
        raise ConfigError(f"must be 'rmt' or 'amt', got {kind!r}", field="kind")
    mode = modes[kind]
    published = mep_criterion_uv(mode)
    if criterion_uv != published:
        raise ConfigError(
            f"a {kind.upper()} hunt uses the {published:g} µV MEP criterion (Rossini et al. "
            f"2015); the estimator has {criterion_uv:g} µV: build it with "
            f"mode={'resting' if mode == 'rest' else 'active'!r}", field="estimator")
    if background is None:
        if mode == "active":
            raise ConfigError(
                "an AMT hunt needs the target contraction band: background="
                "BackgroundCriterion.active_from_mvc(mvc_uv) (10-20 % MVC) or "
                "BackgroundCriterion.active((low_uv, high_uv))", field="background")
        return BackgroundCriterion.rest(ptp_limit_uv=criterion_uv)
    if background.mode != mode:
        raise ConfigError(f"a {kind.upper()} hunt needs a {mode!r} background criterion, got "
                          f"{background.mode!r}", field="background")
    return background
