"""Python-level tests of the notebook panels: clicks, trait changes, threads, STOP."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from labkit.errors import StimulatorError
from labkit.markers import PulseEvent
from labkit.safety import SafetyLimits
from labkit.safety.guard import FiringGuard
from labkit.stimulators.capabilities import Abilities
from labkit.threshold import MLPest, make_estimator
from labkit.widgets import (
    ClosedLoopMonitor,
    EmergencyStop,
    MEPTrial,
    MEPView,
    ProtocolRunnerPanel,
    StimulatorPanel,
    ThresholdHunter,
    as_emg_source,
    circular_stats_deg,
    measure,
)
from labkit.widgets._svg import series_svg, traces_svg
from labkit.widgets._threads import RenderThrottle


# ---------------------------------------------------------------------------- fakes
@dataclass(frozen=True)
class FakeStatus:
    armed: bool
    ready: bool
    remote_control: bool
    error: bool = False
    raw: bytes = b""


class FakeStimulator:
    """Public API of a labkit driver; ``arm()`` holds the lock for ``arm_s``."""

    port = "fake://0"

    def __init__(self, arm_s: float = 0.0):
        self.arm_s = arm_s
        self._lock = threading.RLock()
        self.connected = False
        self.armed = False
        self.intensity = 0
        self.pulse_count = 0
        self.fault = None
        self.calls: list[str] = []
        self._listeners = []
        self.guard = FiringGuard()  # what every labkit driver carries: published limits
        self.abilities = Abilities("Fake", coil_temperature=True)

    def connect(self):
        with self._lock:
            self.connected = True
            self.calls.append("connect")
        return self

    def close(self):
        with self._lock:
            self.armed = False
            self.connected = False
            self.calls.append("close")

    def arm(self):
        with self._lock:
            self.calls.append("arm")
            time.sleep(self.arm_s)
            self.armed = True

    def disarm(self):
        with self._lock:
            self.calls.append("disarm")
            self.armed = False

    def set_intensity(self, percent):
        with self._lock:
            self.calls.append(f"intensity {percent}")
            self.intensity = int(percent)

    def status(self):
        with self._lock:
            return FakeStatus(self.armed, self.armed, self.connected)

    @property
    def intensity_percent(self):
        return float(self.intensity)

    def coil_temperature_c(self):
        return 24.6

    def prepare_single_pulses(self):
        pass

    def fire(self):
        with self._lock:
            if not self.armed:
                raise StimulatorError("fire while disarmed")
            event = PulseEvent(time_s=time.monotonic(), intensity_percent=self.intensity,
                               device="Fake", index=self.pulse_count)
            self.pulse_count += 1
            self.calls.append("fire")
        self.guard.delivered(event)
        for listener in list(self._listeners):
            listener(event)
        return event

    def add_pulse_listener(self, listener):
        self._listeners.append(listener)

    def remove_pulse_listener(self, listener):
        self._listeners.remove(listener)


class FakeSource:
    """MEP sweeps whose amplitude is a step at ``threshold`` %MSO of the fake stimulator."""

    window_ms = (15.0, 50.0)

    def __init__(self, stim: FakeStimulator, threshold: int = 45, background_uv: float = 2.0):
        self.stim = stim
        self.threshold = threshold
        self.background_uv = background_uv

    def epoch(self, pulse_time_s: float) -> MEPTrial:
        t = np.arange(-50.0, 100.0, 0.2)
        amp = 400.0 if self.stim.intensity >= self.threshold else 10.0
        emg = np.where((t > 20) & (t < 30), amp / 2 * np.sin((t - 20) / 10 * 2 * np.pi), 0.0)
        emg = emg + np.where(t < 0, self.background_uv * np.sign(np.sin(t)), 0.0)
        return measure(t, emg, self.window_ms, pulse_time_s)


class FakeRunner:
    """A runner firing at ``rate_hz`` in its own thread, checking a stop flag per pulse."""

    def __init__(self, stim: FakeStimulator, n_pulses: int = 200, rate_hz: float = 20.0,
                 verdict=True):
        self.stim = self.stimulator = stim
        self.total_pulses = n_pulses
        self.pulses_delivered = 0
        self.rate_hz = rate_hz
        self.state = "idle"
        self.verdict = verdict
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._thread = None

    def dry_run(self):
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict

    def start(self):
        self.state = "running"
        self.stim.arm()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while self.pulses_delivered < self.total_pulses and not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                break
            self.stim.fire()
            self.pulses_delivered += 1
            time.sleep(1.0 / self.rate_hz)
        self.state = "stopped" if self._stop.is_set() else "finished"

    def pause(self):
        self._resume.clear()
        self.state = "paused"

    def resume(self):
        self._resume.set()
        self.state = "running"

    def stop(self):
        self._stop.set()
        self._resume.set()


class FakeSession:
    def __init__(self):
        self.thresholds = []

    def log_threshold(self, value, *, method, kind="rmt", n_pulses=None, **extra):
        self.thresholds.append((value, method, kind, n_pulses))
        self.extra = extra

    def check_storage(self, action):
        """Storage is fine (see test_hunter_refuses_to_fire_while_storage_is_faulted)."""


def wait_for(predicate, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---------------------------------------------------------------------------- SVG
def test_traces_svg_marks_last_trace_and_counts_them():
    t = np.linspace(-50, 100, 5000)
    traces = [(t, np.sin(t / 5) * k) for k in (1.0, 2.0, 3.0)]
    svg = traces_svg(traces, window_ms=(15, 50), max_points=200)
    assert 'data-n-traces="3"' in svg
    assert svg.count('class="last"') == 1 and svg.count('class="old"') == 2
    last = re.search(r'class="last"[^>]*points="([^"]+)"', svg).group(1)
    assert len(last.split()) <= 200  # decimated
    assert "3 µV" in svg  # y scale follows the largest trace


def test_series_svg_draws_the_one_trial_code_and_labels_its_axes():
    from labkit.trialstyle import ABOVE, BELOW, PENDING, REJECTED, trial_style

    styles = [trial_style(False, False), trial_style(True, True), trial_style(None, False),
              trial_style(True, False)]
    assert styles == [REJECTED, ABOVE, PENDING, BELOW]
    svg = series_svg([10.0, 80.0, 30.0, 20.0], styles=styles, reference=50.0, unit=" µV")
    assert 'data-n-points="4"' in svg and 'data-last="20.0"' in svg
    assert svg.count("<circle") == 3 and svg.count('<g class="rejected"') == 1  # grey x
    assert re.search(r'class="above"[^>]*fill="#1f6fd1"', svg)  # filled
    assert re.search(r'class="below"[^>]*fill="white"', svg)  # hollow
    assert 'class="reference"' in svg
    assert "trial number" in svg and "µV</text>" in svg


def test_mep_overlay_marks_the_pulse_and_labels_time_and_emg():
    t = np.linspace(-20, 80, 500)
    svg = traces_svg([(t, np.sin(t))], window_ms=(15, 50))
    assert svg.count('class="pulse"') == 1 and "time from pulse (ms)" in svg
    assert "EMG (µV)" in svg
    x_pulse = float(re.search(r'class="pulse" x1="([\d.]+)"', svg).group(1))
    assert x_pulse == pytest.approx(40 + 20 / 100 * (420 - 48), abs=0.2)  # at 0 ms
    after = traces_svg([(t[t > 5], np.sin(t[t > 5]))])
    assert 'class="pulse"' not in after  # 0 ms is not on that axis


# ---------------------------------------------------------------------------- MEP view
def test_measure_peak_to_peak_in_window_and_background():
    t = np.arange(-100.0, 100.0, 1.0)
    emg = np.zeros_like(t)
    emg[t == 20] = 150.0
    emg[t == 25] = -50.0
    emg[t == 60] = 1000.0  # outside the 15-50 ms window
    emg[t < 0] = np.where(np.arange(100) % 2, 3.0, -3.0)
    trial = measure(t, emg, (15.0, 50.0), 12.5)
    assert trial.amplitude_uv == pytest.approx(200.0)
    assert trial.background_uv == pytest.approx(3.0, rel=1e-3)  # [-100, -1) ms
    assert trial.background.ptp_uv == pytest.approx(6.0)
    assert trial.pulse_time_s == 12.5


def test_mep_view_shows_each_trial_and_summary():
    view = MEPView(max_rate_hz=None, max_traces=2)
    t = np.linspace(-50, 100, 300)
    for amp in (100.0, 250.0, 75.5):
        view.add_sweep(t, np.sin(t) * amp / 2, amp)
    assert view.n_trials == 3
    assert view.amplitudes_uv == [100.0, 250.0, 75.5]
    assert 'data-n-traces="2"' in view.overlay.value  # only max_traces kept
    assert 'data-n-points="3"' in view.amplitude_plot.value
    assert view.summary.value == "MEP 3: 75.5 µV peak-to-peak"
    assert repr(view) == "<MEPView: 3 trials>"


def test_mep_view_blanks_the_artifact_for_display_only():
    t = np.arange(-50.0, 100.0, 0.2)
    emg = np.zeros_like(t)
    emg[(t >= 0) & (t < 3)] = 2000.0  # artifact
    emg[(t > 20) & (t < 25)] = 100.0
    view = MEPView(max_rate_hz=None)
    view.add_trial(measure(t, emg, (15.0, 50.0), 0.0))
    assert view.amplitudes_uv == [100.0]
    assert "100 µV" in view.overlay.value  # y scale set by the MEP, not the 2000 µV artifact
    raw = MEPView(max_rate_hz=None, blank_ms=None)
    raw.add_trial(measure(t, emg, (15.0, 50.0), 0.0))
    assert "2000 µV" in raw.overlay.value


class FakeStream:
    """What StreamEpochs needs of an mne-lsl StreamLSL: 5 kHz, data in volts (1e-6 V units)."""

    ch_names = ["FDI", "APB"]
    info = {"sfreq": 5000.0}

    def __init__(self, pulse_s):
        self.pulse_s = pulse_s

    def get_channel_units(self, picks=None):
        return [(107, 0)] * len(picks or self.ch_names)  # volts, multiplier 10^0

    def get_data(self, winsize, picks):
        from labkit.clock import local_clock

        ts = np.arange(local_clock() - winsize, local_clock(), 1 / 5000.0)
        data = np.where((ts > self.pulse_s + 0.020) & (ts < self.pulse_s + 0.025), 1e-4, 0.0)
        return data[None, :], ts


def test_stream_epochs_waits_for_post_pulse_data_and_scales_to_uv():
    from labkit.clock import local_clock
    from labkit.errors import StreamError
    from labkit.widgets import StreamEpochs

    pulse = local_clock()
    source = StreamEpochs(FakeStream(pulse), channel="FDI", pre_ms=20, post_ms=60)
    assert source.scale_to_uv == pytest.approx(1e6)
    trial = source.epoch(pulse)
    assert trial.times_ms[0] >= -20 and trial.times_ms[-1] <= 60 and trial.times_ms[-1] > 59
    assert trial.amplitude_uv == pytest.approx(100.0)
    assert local_clock() >= pulse + 0.06  # it waited for the post-pulse data
    with pytest.raises(StreamError, match="'EMG'.*available: \\['FDI', 'APB'\\]"):
        StreamEpochs(FakeStream(pulse), channel="EMG")


def test_render_throttle_coalesces_and_draws_the_last_state():
    drawn = []
    state = {"n": 0}
    throttle = RenderThrottle(lambda: drawn.append(state["n"]), max_rate_hz=20)
    for i in range(1, 101):
        state["n"] = i
        throttle.request()
    assert wait_for(lambda: drawn and drawn[-1] == 100, 1.0)
    assert len(drawn) <= 3  # one immediate, one trailing (plus slack)


def test_as_emg_source_names_what_it_needs():
    with pytest.raises(TypeError, match="epoch\\(pulse_time_s\\)"):
        as_emg_source(object())


# ---------------------------------------------------------------------------- stimulator panel
def make_panel(arm_s=0.0):
    stim = FakeStimulator(arm_s=arm_s).connect()
    panel = StimulatorPanel(stim, emg_source=FakeSource(stim), poll_s=None)
    return stim, panel


def test_panel_arm_intensity_fire_records_an_mep():
    stim, panel = make_panel()
    panel.intensity.value = 60  # trait change -> set_intensity in the job thread
    panel.arm_button.click()
    panel.fire_button.click()
    panel.wait_idle(5.0)
    assert stim.calls[1:] == ["intensity 60", "arm", "intensity 60", "fire"]
    line = panel.status_bar.line.value
    assert "pulses 1 / 3000 (session cap)" in line
    assert panel.mep_view.n_trials == 1
    assert panel.mep_view.amplitudes_uv[0] == pytest.approx(400.0, rel=0.01)
    assert 'data-name="armed" data-on="1"' in line
    assert "coil 25 °C" in line and "60 %MSO" in line and "NO RIG" in line
    assert panel.message.value == "pulse 1 at 60 %MSO"
    assert repr(panel) == "<StimulatorPanel: FakeStimulator>"
    panel.close()


def test_panel_fire_uses_the_slider_intensity_after_a_runner_changed_it():
    stim, panel = make_panel()
    panel.intensity.value = 70
    panel.arm_button.click()
    panel.wait_idle(5.0)
    stim.set_intensity(31)  # e.g. a protocol ran at 80 % RMT in between
    panel.fire_button.click()
    panel.wait_idle(5.0)
    assert panel.last_pulse.intensity_percent == 70
    assert panel.message.value == "pulse 1 at 70 %MSO"
    panel.close()


def test_panel_fire_when_disarmed_says_so_and_does_not_fire():
    stim, panel = make_panel()
    panel.fire_button.click()
    panel.wait_idle(5.0)
    assert "fire" not in stim.calls
    assert panel.message.value == "StimulatorError: not armed: press Arm before Fire"
    panel.close()


def test_stop_returns_at_once_while_the_driver_lock_is_held_then_disarms():
    stim, panel = make_panel(arm_s=1.0)
    panel.arm_button.click()
    assert wait_for(lambda: "arm" in stim.calls)  # arm() now holds the lock for 1 s
    panel.fire_button.click()  # queued behind the arm
    t0 = time.perf_counter()
    panel.stop_button.click()
    click_s = time.perf_counter() - t0
    assert click_s < 0.2  # the callback did not wait for the lock
    assert panel.stop_state.value == "STOP: stopping"
    assert panel.estop.wait(5.0)
    assert panel.stop_state.value == "STOP: disarmed"
    panel.wait_idle(5.0)
    assert stim.armed is False
    assert "fire" not in stim.calls  # the queued Fire was refused by the latch
    # still latched: arming is refused until Reset
    panel.arm_button.click()
    panel.wait_idle(5.0)
    assert stim.calls.count("arm") == 1
    assert "emergency STOP is latched" in panel.message.value
    panel.reset_button.click()
    assert panel.stop_state.value == "STOP: ready"
    panel.close()


def test_stop_stops_a_running_protocol_and_disarms():
    stim, panel = make_panel()
    runner = FakeRunner(stim, n_pulses=500, rate_hz=50)
    rpanel = ProtocolRunnerPanel(runner, estop=panel.estop, poll_s=None)
    assert 'data-ok="1"' in rpanel.verdict.value
    rpanel.start_button.click()
    assert wait_for(lambda: runner.pulses_delivered >= 5)
    panel.stop_button.click()
    assert panel.estop.wait(3.0)
    assert wait_for(lambda: runner.state == "stopped")
    count = runner.pulses_delivered
    time.sleep(0.1)
    assert runner.pulses_delivered == count < 500
    assert stim.armed is False and stim.calls[-1] != "fire"
    rpanel.refresh()
    assert rpanel.state_label.value == "state: stopped"
    assert rpanel.progress.value == count and rpanel.progress.max == 500
    rpanel.start_button.click()  # refused while latched
    assert "latched" in rpanel.message.value
    rpanel.close()
    panel.close()


# ---------------------------------------------------------------------------- protocol panel
def test_protocol_panel_pause_resume_and_progress():
    stim = FakeStimulator().connect()
    runner = FakeRunner(stim, n_pulses=30, rate_hz=100)
    rpanel = ProtocolRunnerPanel(runner, poll_s=0.05)
    rpanel.start_button.click()
    assert wait_for(lambda: runner.pulses_delivered >= 3)
    rpanel.pause_button.click()
    assert rpanel.state_label.value == "state: paused"
    paused_at = runner.pulses_delivered
    time.sleep(0.1)
    assert runner.pulses_delivered <= paused_at + 1
    rpanel.resume_button.click()
    assert wait_for(lambda: runner.state == "finished")
    assert wait_for(lambda: rpanel.progress_label.value == "30 / 30")
    assert rpanel.progress.value == 30
    rpanel.close()


def test_protocol_panel_shows_a_refusal_and_blocks_start():
    stim = FakeStimulator().connect()
    refused = FakeRunner(stim, verdict=StimulatorError("10 Hz x 6 s exceeds 5 s at 100 % RMT"))
    rpanel = ProtocolRunnerPanel(refused, poll_s=None)
    assert rpanel.ok is False and rpanel.start_button.disabled
    assert 'data-ok="0"' in rpanel.verdict.value and "exceeds 5 s" in rpanel.verdict.value

    @dataclass
    class Report:
        ok: bool

        def summary(self):
            return "train 4.2 s <= 5 s limit"

    good = FakeRunner(stim, verdict=Report(True))
    rpanel2 = ProtocolRunnerPanel(good, poll_s=None)
    assert rpanel2.ok is True and not rpanel2.start_button.disabled
    assert "SAFE" in rpanel2.verdict.value and "train 4.2 s" in rpanel2.verdict.value


# ---------------------------------------------------------------------------- threshold hunter
def test_a_hunter_whose_construction_failed_is_collected_without_an_error(monkeypatch):
    """Bad input raises the clear error; the half-built widget's close() (run by the
    garbage collector) does not add an AttributeError of its own."""
    import gc
    import sys

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    stim = FakeStimulator().connect()
    with pytest.raises(TypeError, match="epoch"):
        ThresholdHunter(stim, MLPest(start=60), object())
    gc.collect()
    assert [u.exc_value for u in unraisable] == []


def test_hunter_reject_keeps_the_intensity_accept_feeds_the_estimator():
    stim = FakeStimulator().connect()
    est = MLPest(start=60)
    hunter = ThresholdHunter(stim, est, FakeSource(stim), interval_s=0.0)
    assert "60 %MSO" in hunter.next_label.value
    hunter.fire_button.click()
    assert hunter.wait(5.0)
    assert stim.intensity == 60 and stim.pulse_count == 1
    assert not hunter.accept_button.disabled
    assert hunter.trial_label.value.startswith("trial 1: 60 %MSO -> 399.2 µV")
    hunter.reject_button.click()
    assert est.n_trials == 0 and "60 %MSO" in hunter.next_label.value
    hunter.fire_button.click()
    assert hunter.wait(5.0)
    hunter.accept_button.click()
    assert est.n_trials == 1 and est.history[0].hit
    assert hunter.mep_view.n_trials == 2
    assert 'data-n-points="1"' in hunter.staircase.value


def test_hunter_auto_finds_the_threshold_and_logs_it_to_the_session():
    stim = FakeStimulator().connect()
    session = FakeSession()
    found = []
    hunter = ThresholdHunter(stim, MLPest(start=60), FakeSource(stim, threshold=45),
                             session=session, interval_s=0.0, on_threshold=found.append)
    hunter.auto_button.click()
    assert hunter.wait(30.0)
    assert hunter.done
    assert abs(hunter.result - 45) <= 2
    assert session.thresholds == [(hunter.result, "mlpest", "rmt", len(hunter.trials))]
    assert found == [hunter.result]
    assert f"RMT = {hunter.result:.0f} %MSO" in hunter.result_label.value
    assert stim.armed is False  # disarmed at the end
    assert hunter.fire_button.disabled


def test_hunter_refuses_to_fire_while_storage_is_faulted(tmp_path):
    from labkit.recording import LowDiskSpaceError
    from labkit.session import Session, read_log

    stim = FakeStimulator().connect()
    with Session(tmp_path, "01") as session:
        session.storage.trip(LowDiskSpaceError("2.0 MiB free"), "emg")
        hunter = ThresholdHunter(stim, MLPest(start=60), FakeSource(stim), session=session,
                                 interval_s=0.0)
        hunter.fire_button.click()
        assert hunter.wait(5.0)
        assert stim.pulse_count == 0
        assert hunter.trial_label.value.startswith("StorageFaultError: low disk space (emg)")
    refused = read_log(session.path, kind="fault")[-1].payload
    assert refused["what"] == "low disk space" and refused["refused"] == "threshold hunt"


def test_hunter_auto_rejects_noisy_background_and_stop_ends_it():
    stim = FakeStimulator().connect()
    estop = EmergencyStop(stim)
    hunter = ThresholdHunter(stim, MLPest(start=60), FakeSource(stim, background_uv=40.0),
                             estop=estop, interval_s=0.05)
    hunter.run_auto()
    assert wait_for(lambda: stim.pulse_count >= 3)
    assert hunter.fire_button.disabled and hunter.accept_button.disabled  # auto decides
    estop.trigger()
    assert estop.wait(3.0) and hunter.wait(3.0)
    n = stim.pulse_count
    time.sleep(0.15)
    assert stim.pulse_count == n
    assert hunter.estimator.n_trials == 0  # every trial rejected (background 40 µV > 10)
    assert all(accepted is False for _, _, accepted in hunter.trials)
    assert hunter.fire_button.disabled  # no firing while STOP is latched
    estop.reset()
    assert not hunter.fire_button.disabled  # manual control is back after the reset


# ---------------------------------------------------------------------------- closed loop
def test_closed_loop_monitor_histogram_rate_latency():
    mon = ClosedLoopMonitor(max_rate_hz=None, rate_window_s=10.0, n_bins=4)
    rng = np.random.default_rng(0)
    for i, phase in enumerate(rng.normal(0.0, 0.3, 40)):
        mon.record(phase, latency_ms=5.0 + (i % 5), time_s=100.0 + i * 0.5)
    counts = mon.phase_counts()
    assert counts.sum() == 40 and counts[1] + counts[2] == 40  # all within ±π/2
    assert mon.trigger_rate_hz(now_s=119.5) == pytest.approx(2.0)
    assert 'data-total="40"' in mon.histogram.value
    assert "-180°" in mon.histogram.value and "rad" not in mon.histogram.value
    assert mon.latency_label.value == "latency: median 7.0 ms, p95 9.0 ms, max 9.0 ms"
    mean_deg, sd_deg = circular_stats_deg(np.full(5, math.pi / 2))
    assert mean_deg == pytest.approx(90.0) and sd_deg == pytest.approx(0.0, abs=1e-3)
    mon.record(3.5 * math.pi)  # wrapped to -π/2
    assert mon.phase_counts()[1] == counts[1] + 1


@pytest.mark.parametrize(("typed", "match"), [
    ("150", "outside \\[1, 100\\]"), ("-5", "outside"), ("0", "outside"),
    ("55.7", "not a whole % MSO"), ("abc", "not a number"), ("nan", "not a whole"),
])
def test_typed_intensities_are_refused_not_clamped(typed, match):
    from labkit.errors import ConfigError
    from labkit.widgets.stimulator_panel import parse_intensity

    with pytest.raises(ConfigError, match=match):
        parse_intensity(typed, 1, 100)
    assert parse_intensity(" 55 % ", 1, 100) == 55


def test_panel_shows_a_refused_intensity_and_the_unit_keeps_its_value():
    stim = FakeStimulator().connect()
    panel = StimulatorPanel(stim, poll_s=None)
    try:
        panel.intensity_text.value = "60"
        panel.wait_idle()
        assert stim.intensity == 60
        panel.intensity_text.value = "150"
        panel.wait_idle()
        assert stim.intensity == 60 and panel.intensity.value == 60
        assert "refused" in panel.intensity_error.value and "150" in panel.intensity_error.value
        assert panel.intensity_text.value == "60"
    finally:
        panel.close()


def test_panel_slider_stops_at_the_guard_ceiling_and_fire_waits_for_the_interval():
    stim = FakeStimulator().connect()
    stim.guard = FiringGuard(SafetyLimits(max_intensity_percent=40), min_single_interval_s=5.0)
    stim.add_pulse_listener(stim.guard.delivered)
    panel = StimulatorPanel(stim, poll_s=None)
    try:
        assert panel.intensity.max == 40
        stim.arm()
        panel.refresh_status()
        assert not panel.fire_button.disabled
        panel.fire_button.click()
        panel.wait_idle()
        assert stim.pulse_count == 1 and panel.fire_button.disabled
        panel.refresh_status()
        assert panel.fire_button.disabled  # 5 s have not passed
        panel.fire_button.click()  # a click that gets through anyway is refused
        panel.wait_idle()
        assert stim.pulse_count == 1 and "not fired" in panel.message.value
    finally:
        panel.close()


def test_every_panel_that_can_fire_shows_the_shared_stop_and_a_latched_banner():
    stim = FakeStimulator().connect()
    panel = StimulatorPanel(stim, poll_s=None)
    hunter = ThresholdHunter(stim, make_estimator("mlpest", start=50), FakeSource(stim),
                             estop=panel.estop)
    try:
        bars = [w.stop for w in hunter.children if "labkit-status-bar" in w._dom_classes]
        assert len(bars) == 1
        bars[0].button.click()
        panel.estop.wait(5.0)
        assert "STOP latched" in bars[0].banner.value and "STOP latched" in panel.stop_banner.value
        assert panel.fire_button.disabled
        panel.reset_stop()
        assert bars[0].banner.value == "" and panel.stop_banner.value == ""
    finally:
        hunter.stop()
        panel.close()


# ---------------------------------------------------------------------------- status bar
def test_status_line_says_simulated_or_real_session_cap_and_target_distance():
    from labkit.widgets.status_bar import PanelStatus, status_html

    sim = status_html(PanelStatus(simulated=True, subject_id="P01", session_id="02",
                                  connected=True, remote=True, armed=False, ready=False,
                                  intensity_percent=55, temperature_declared=True,
                                  coil_temperature_c=31.4, pulses_delivered=120,
                                  pulse_cap=3000, navigation=True, target_distance_mm=2.46,
                                  pose_status="ok"))
    assert 'data-value="simulated"' in sim and "SIMULATED" in sim
    assert "sub-P01 ses-02" in sim and "55 %MSO" in sim and "coil 31 °C" in sim
    assert "pulses 120 / 3000 (session cap)" in sim
    assert "coil to target 2.5 mm" in sim
    assert 'data-name="remote" data-on="1"' in sim and 'data-name="armed" data-on="0"' in sim
    real = status_html(PanelStatus(simulated=False, pulses_delivered=2950, pulse_cap=3000,
                                   navigation=True, pose_status="stale"))
    assert 'data-value="real"' in real and "REAL" in real
    assert "no session: pulses are not logged" in real and "not connected" in real
    assert "coil to target: -- (stale)" in real
    assert "coil" not in real.replace("coil to target", "")  # no temperature declared
    assert "font-weight:bold" in real.split("labkit-status-pulses")[1].split(">")[0]


def test_stimulator_buttons_are_enabled_only_when_valid():
    from labkit.widgets.stimulator_panel import button_states

    off = button_states(False, None, False, 0.0)
    assert off == {"connect": True, "disconnect": False, "arm": False, "disarm": False,
                   "fire": False}
    idle = button_states(True, FakeStatus(False, False, True), False, 0.0)
    assert idle["arm"] and not idle["disarm"] and not idle["fire"] and not idle["connect"]
    ready = button_states(True, FakeStatus(True, True, True), False, 0.0)
    assert ready["fire"] and ready["disarm"] and not ready["arm"]
    assert not button_states(True, FakeStatus(True, True, True), False, 2.0)["fire"]
    latched = button_states(True, FakeStatus(True, True, True), True, 0.0)
    assert not latched["fire"] and not latched["arm"] and latched["disarm"]


def test_run_buttons_follow_the_run_state():
    from labkit.widgets.protocol_panel import run_buttons

    def enabled(state, started=False, ok=True, latched=False, renew=True):
        states = run_buttons(state, started=started, ok=ok, stop_latched=latched,
                             can_renew=renew)
        return {name for name, on in states.items() if on}

    assert enabled("idle") == {"start"}
    assert enabled("idle", ok=False) == set()
    assert enabled("idle", latched=True) == set()
    assert enabled("idle", started=True) == {"stop"}  # started, thread not yet running
    assert enabled("running", started=True) == {"pause", "stop"}
    assert enabled("paused", started=True) == {"resume", "stop"}
    assert enabled("paused", started=True, latched=True) == {"stop"}
    for ended in ("stopped", "finished", "failed"):
        assert enabled(ended, started=True) == {"new_run"}
        assert enabled(ended, started=True, renew=False) == set()


def test_protocol_panel_new_run_after_the_run_ends():
    stim = FakeStimulator().connect()
    made = []

    def make_runner():
        made.append(FakeRunner(stim, n_pulses=5, rate_hz=200))
        return made[-1]

    rpanel = ProtocolRunnerPanel(make_runner(), poll_s=None, make_runner=make_runner)
    assert not rpanel.start_button.disabled and rpanel.new_run_button.disabled
    assert rpanel.pause_button.disabled and rpanel.stop_button.disabled
    rpanel.start_button.click()
    assert rpanel.start_button.disabled  # a runner runs once
    assert wait_for(lambda: made[0].state == "finished")
    rpanel.refresh()
    assert rpanel.start_button.disabled and not rpanel.new_run_button.disabled
    assert rpanel.stop_button.disabled and rpanel.pause_button.disabled
    rpanel.start_button.click()  # a stale click is refused with a hint, not an error
    assert "New run" in rpanel.message.value
    rpanel.new_run_button.click()
    assert rpanel.runner is made[1] and "new run ready" in rpanel.message.value
    assert not rpanel.start_button.disabled and rpanel.new_run_button.disabled
    assert rpanel.progress_label.value == "0 / 5"
    rpanel.start_button.click()
    assert wait_for(lambda: made[1].state == "finished")
    assert stim.pulse_count == 10
    assert rpanel.status_bar.refresh(query=False).pulses_delivered == 10
    assert "pulses 10 / 3000 (session cap)" in rpanel.status_bar.line.value
    rpanel.close()
