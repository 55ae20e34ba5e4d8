"""The closed-loop controller: fire the stimulator at a target mu phase read from LSL EEG.

This is the only code in labkit that fires from network input. It does nothing until
:meth:`ClosedLoopController.start` is called, reads only the stream it was bound to (by
name **and** source id), and stops firing at :meth:`~ClosedLoopController.stop`, after
``max_pulses``, on any error, or when the EEG goes stale.

One background thread, per turn:

1. drains the :class:`~labkit.streams.LowLatencyInlet` (newest data, no lag);
2. cleans the chunk with :class:`~labkit.kernels.CleaningChain` (sample-and-hold blanking
   around the controller's own pulses, registered as it fires, then the spatial filter:
   Hjorth C3 by default);
3. feeds :class:`~labkit.phase.PhaseTracker` (blanked samples are bridged by prediction);
4. decides: ``"phase"`` fires when the pulse, issued now, would land on the target phase
   (time to target from the newest sample, minus the loop delay; a final wait of at most
   ``horizon_s`` is spun in the thread), ``"random"`` fires at seeded random times with
   the same minimum interval (the control condition); both only while the tracked mu
   amplitude is at or above ``amplitude_gate_uv`` and the newest sample is recent.

The loop delay (decision → pulse) is measured on every pulse as the time from the
``fire()`` call to the driver's time stamp of the write, and its running median is
compensated; give ``loop_delay_s`` to fix it instead (e.g. to include serial
transmission, ~3.1 ms for the 3-byte Magstim ``EH`` frame at 9600 baud).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labkit.checks import check_range
from labkit.clock import local_clock
from labkit.closedloop._input import (
    HJORTH_CENTER,
    HJORTH_NEIGHBOURS,
    as_chunk,
    channel_labels,
    montage,
    open_eeg,
)
from labkit.closedloop.records import Trigger, phase_error_stats, triggers_frame
from labkit.errors import ConfigError, LabkitError
from labkit.kernels import CleaningChain, warm_up
from labkit.phase import PhaseTracker
from labkit.safety import SafetyLimits
from labkit.safety.check import (
    ProtocolRefusedError,
    SafetyVerdict,
    check_closed_loop,
    longest_train_pulses,
)
from labkit.safety.guard import Permit
from labkit.streams import LowLatencyInlet

__all__ = ["CONDITIONS", "ClosedLoopController", "ClosedLoopError"]

CONDITIONS = ("phase", "random")
TWO_PI = 2.0 * math.pi


class ClosedLoopError(LabkitError):
    """The closed loop stopped on an error (the original is chained as ``__cause__``)."""


class ClosedLoopController:
    """Mu-phase-triggered (or random-timed) single pulses from a live EEG stream.

    Parameters
    ----------
    stimulator : Stimulator
        A connected driver (intensity already set). :meth:`start` arms it if needed;
        :meth:`stop` disarms it (``disarm_on_stop``).
    eeg : str | LowLatencyInlet
        The EEG stream: its LSL name (then ``source_id`` is required) or an open inlet.
    source_id : str | None
        Source id the stream must carry.
    stype : str | None
        Expected stream type (e.g. ``"EEG"``).
    mu_hz : float
        Individual mu peak, Hz (:func:`~labkit.closedloop.calibrate` on a resting segment).
    target_phase_rad : float
        Target phase, cosine convention: ``pi`` = trough, 0 = peak.
    condition : {"phase", "random"}
        Phase-locked triggering, or the random-timing control.
    min_interval_s : float
        Shortest time between pulses, s (0.1–60).
    amplitude_gate_uv : float
        Fire only while the tracked mu amplitude is at least this, µV (0 = no gate).
    loop_delay_s : float | None
        Decision → pulse delay to compensate, s; None: measured (see module docstring).
    scale_uv : float | None
        Typical amplitude of the filtered signal (tracker noise model); None: its SD over
        the settling period.
    weights : array_like, shape (n_channels,), optional
        Spatial filter over the stream's channels; default Hjorth ``center`` minus the
        mean of ``neighbours`` (C3 − ¼·(FC1+FC5+CP1+CP5)).
    center, neighbours : str, sequence of str
        Hjorth montage, by channel label.
    fs : float | None
        Expected sampling rate, Hz (checked against the stream's).
    max_pulses : int | None
        Stop firing after this many pulses (:meth:`wait` returns then). None: what is left
        of the session's pulse cap; a larger value is refused.
    limits : SafetyLimits | None
        Limits; default the stimulator's (``stimulator.guard.limits``: its rig profile's).
        Before arming, the worst case (every pulse ``min_interval_s`` apart, at the
        stimulator's intensity) must pass :func:`~labkit.safety.check_closed_loop`;
        during the run a rolling-window table check stops the loop before a pulse that
        would make the delivered train too long.
    rmt_percent : float | None
        Resting motor threshold, % MSO (the table is in % RMT); default the stimulator's
        (``rig.rmt_percent``). Without one the loop is refused.
    settle_s : float
        Tracking without firing after :meth:`start`, s (filter convergence).
    blank_pre_ms, blank_post_ms : float
        Sample-and-hold blanking around each own pulse, ms (the artifact lasts 2–10 ms
        plus decay).
    horizon_s : float
        Longest final wait before a phase-locked pulse, s (a bit over the chunk period).
    max_sample_age_s : float
        No pulse when the newest sample is older than this (stalled stream), s.
    random_intervals_s : sequence of float | None
        ``"random"``: intervals drawn from these (e.g. a phase run's intervals) instead of
        ``min_interval_s + U(0, 1/mu_hz)``.
    seed : int
        Seed of the random condition.
    truth : callable | None
        ``truth(time_s) -> phase_rad`` (ground truth from a simulator), recorded per pulse.
    log : callable | None
        Called with each trigger's dict (:meth:`Trigger.as_dict`); an object with a
        ``sink(kind, payload)`` method (a session) gets ``sink("closed_loop_pulse", ...)``.
    detect_uv : float | None
        Also blank pulses nobody announced when any channel exceeds this, µV.
    realtime : bool
        Try ``SCHED_FIFO`` for the loop thread (Linux, needs the privilege).
    poll_s : float
        Sleep when the inlet had nothing new, s (adds up to this much latency; shorter
        polls cost CPU and GIL time that the amplifier and the driver also need).
    timeout_s : float
        Stream resolve timeout, s.
    disarm_on_stop : bool
        Disarm the stimulator in :meth:`stop`.

    Attributes
    ----------
    triggers : list of Trigger
        One record per pulse (:meth:`frame` for a DataFrame).
    compute_s : numpy.ndarray
        Per-chunk compute time (clean + phase + decision), s, for the last chunks.
    """

    def __init__(
        self,
        stimulator: Any,
        eeg: str | LowLatencyInlet,
        *,
        mu_hz: float,
        source_id: str | None = None,
        stype: str | None = None,
        target_phase_rad: float = math.pi,
        condition: str = "phase",
        min_interval_s: float = 2.0,
        amplitude_gate_uv: float = 0.0,
        loop_delay_s: float | None = None,
        scale_uv: float | None = None,
        weights=None,
        center: str = HJORTH_CENTER,
        neighbours: Sequence[str] = HJORTH_NEIGHBOURS,
        fs: float | None = None,
        max_pulses: int | None = None,
        limits: SafetyLimits | None = None,
        rmt_percent: float | None = None,
        settle_s: float = 1.0,
        blank_pre_ms: float = 1.0,
        blank_post_ms: float = 20.0,
        horizon_s: float = 0.003,
        max_sample_age_s: float = 0.05,
        random_intervals_s: Sequence[float] | None = None,
        seed: int = 0,
        truth: Callable[[float], float | None] | None = None,
        log: Any = None,
        detect_uv: float | None = None,
        realtime: bool = False,
        poll_s: float = 0.0005,
        timeout_s: float = 5.0,
        disarm_on_stop: bool = True,
    ) -> None:
        if condition not in CONDITIONS:
            raise ConfigError(f"must be one of {list(CONDITIONS)}, got {condition!r}",
                              field="condition")
        self.condition = condition
        self.mu_hz = check_range(mu_hz, "mu_hz", 4.0, 30.0, "Hz")
        self.target_phase_rad = float(math.remainder(
            check_range(target_phase_rad, "target_phase_rad", -TWO_PI, TWO_PI, "rad"), TWO_PI))
        self.min_interval_s = check_range(min_interval_s, "min_interval_s", 0.1, 60.0, "s")
        self.amplitude_gate_uv = check_range(amplitude_gate_uv, "amplitude_gate_uv", 0.0,
                                              1e4, "µV")
        self.loop_delay_s = None if loop_delay_s is None else check_range(
            loop_delay_s, "loop_delay_s", 0.0, 0.1, "s")
        self.scale_uv = None if scale_uv is None else check_range(
            scale_uv, "scale_uv", 1e-3, 1e4, "µV")
        self.settle_s = check_range(settle_s, "settle_s", 0.2, 60.0, "s")
        self.horizon_s = check_range(horizon_s, "horizon_s", 0.0005, 0.02, "s")
        self.max_sample_age_s = check_range(max_sample_age_s, "max_sample_age_s", 0.001,
                                             1.0, "s")
        blank_pre_ms = check_range(blank_pre_ms, "blank_pre_ms", 0.0, 50.0, "ms")
        blank_post_ms = check_range(blank_post_ms, "blank_post_ms", 0.5, 200.0, "ms")
        if max_pulses is not None and not (isinstance(max_pulses, int) and max_pulses >= 1):
            raise ConfigError(f"must be a positive int or None, got {max_pulses!r}",
                              field="max_pulses")
        guard = stimulator.guard
        limits = limits if limits is not None else guard.limits
        cap = limits.max_pulses_per_session
        if max_pulses is not None and max_pulses > cap:
            raise ConfigError(f"{max_pulses} pulses exceed the session cap of {cap} "
                              f"({limits.source})", field="max_pulses")
        self._max_pulses_default = max_pulses is None
        #: Pulses the loop fires at most (default: set by :meth:`start` from the table at
        #: ``1 / min_interval_s`` and what is left of the session's cap).
        self.max_pulses = max_pulses if max_pulses is not None else 1
        self.limits = limits
        self.rmt_percent = None if rmt_percent is None else check_range(
            rmt_percent, "rmt_percent", 1.0, 100.0, "% MSO")
        self.verdict: SafetyVerdict | None = None
        self._permit: Permit | None = None
        if random_intervals_s is not None:
            iv = np.asarray(random_intervals_s, dtype=float).ravel()
            if iv.size == 0 or not np.all(np.isfinite(iv)) or iv.min() < self.min_interval_s:
                raise ConfigError(
                    f"must be a non-empty list of intervals >= min_interval_s = "
                    f"{self.min_interval_s:g} s", field="random_intervals_s")
            random_intervals_s = iv
        self.random_intervals_s = random_intervals_s
        self.stimulator = stimulator
        self.truth = truth
        self.log = log
        self.realtime = bool(realtime)
        self.poll_s = check_range(poll_s, "poll_s", 0.0, 0.01, "s")
        self.disarm_on_stop = bool(disarm_on_stop)
        self.seed = int(seed)

        self.inlet, self._owns_inlet = open_eeg(eeg, source_id, stype, timeout_s)
        try:
            self.fs = float(self.inlet.sfreq)
            if fs is not None and abs(float(fs) - self.fs) > 1e-6:
                raise ConfigError(f"stream {self.inlet.info.name()!r} runs at {self.fs:g} Hz, "
                                  f"expected {fs:g} Hz", field="fs")
            if not self.fs > 0:
                raise ConfigError(f"stream {self.inlet.info.name()!r} has no nominal rate",
                                  field="eeg")
            self.channels = channel_labels(self.inlet)
            self.weights = montage(self.channels, weights, center, neighbours)
        except BaseException:
            self.close()
            raise
        self._pre = int(round(blank_pre_ms * self.fs / 1000.0))
        self._post = max(int(round(blank_post_ms * self.fs / 1000.0)), 1)
        self._detect_uv = detect_uv
        self.triggers: list[Trigger] = []
        self.compute_s = np.zeros(0)
        self.warm_up_s: float | None = None
        self.error: BaseException | None = None
        self.skipped_stale = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle
    @property
    def running(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ClosedLoopController:
        """Warm the kernels up, arm the stimulator if needed and start the loop thread."""
        if self.running:
            raise ClosedLoopError("the closed loop is already running")
        if self._owns_inlet and self.inlet is None:
            raise ClosedLoopError("the controller was closed; create a new one")
        guard = self.stimulator.guard
        rmt = self.rmt_percent if self.rmt_percent is not None else guard.rmt_percent
        intensity = self.stimulator.intensity_percent
        if rmt is not None and guard.rmt_percent is None:
            guard.rmt_percent = rmt  # the rolling check during the run needs it too
        if self._max_pulses_default and rmt is not None:
            # as many as one continuous train at the shortest interval may have, within
            # what is left of the session's cap
            self.max_pulses = max(1, min(
                guard.pulses_left,
                longest_train_pulses(1.0 / self.min_interval_s, 100.0 * intensity / rmt,
                                     self.limits)))
        self.verdict = check_closed_loop(self.min_interval_s, self.max_pulses, intensity, rmt,
                                         self.limits, pulses_delivered=guard.count)
        if not self.verdict.ok:  # refused before anything is armed
            raise ProtocolRefusedError(self.verdict)
        self._permit = guard.permit(
            "closed loop", self.max_pulses, intensity, logs_pulses=self.log is not None,
            rolling=True, limits=self.limits)
        try:
            self.warm_up_s = warm_up()
            self.stimulator.prepare_single_pulses()  # triggers are single pulses
            if not self.stimulator.status().armed:
                self.stimulator.arm()
            self.stimulator.wait_ready()
        except BaseException:
            self._permit.release()
            raise
        self.error = None
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self._run, name="labkit-closed-loop",
                                        daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until ``max_pulses`` were fired (or the loop ended); True if it did."""
        done = self._done.wait(timeout_s)
        if self.error is not None:
            err, self.error = self.error, None  # reported once (here or by stop())
            raise ClosedLoopError(f"the closed loop stopped: {err}") from err
        return done

    def stop(self) -> None:
        """Stop firing and the loop thread; disarm (``disarm_on_stop``). Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        if self.disarm_on_stop and thread is not None:
            self.stimulator.disarm()
        if self.error is not None:
            err, self.error = self.error, None
            raise ClosedLoopError(f"the closed loop stopped: {err}") from err

    def close(self) -> None:
        """Stop, and close the inlet if the controller opened it."""
        try:
            if getattr(self, "_thread", None) is not None:
                self.stop()
        finally:
            if getattr(self, "_owns_inlet", False) and self.inlet is not None:
                self.inlet.close()
                self.inlet = None

    def __enter__(self) -> ClosedLoopController:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ results
    def frame(self):
        """The triggers as a :class:`pandas.DataFrame`."""
        return triggers_frame(self.triggers)

    def phase_error(self, use_truth: bool = True):
        """Circular stats of (true or estimated) phase at the pulses minus the target."""
        key = "true_phase_rad" if use_truth else "estimated_phase_rad"
        return phase_error_stats([getattr(t, key) for t in self.triggers],
                                 self.target_phase_rad)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        from labkit.runner import timing_priority

        self.stimulator.guard.adopt(self._permit)
        try:
            with timing_priority(realtime=self.realtime):
                self._loop()
        except BaseException as exc:  # reported by wait()/stop()
            self.error = exc
        finally:
            self._permit.release()
            self._done.set()

    def _loop(self) -> None:
        chain = CleaningChain(len(self.channels), self._pre, self._post,
                              weights=self.weights, detect_uv=self._detect_uv)
        rng = np.random.default_rng([self.seed, 11])
        inlet = self.inlet
        inlet.pull()  # drop what was buffered before start: decide on fresh data only
        n_seen = 0
        last_stamp = -math.inf
        settle_parts: list[np.ndarray] = []
        settle_valid: list[np.ndarray] = []
        settle_n = int(round(self.settle_s * self.fs))
        tracker: PhaseTracker | None = None
        compute = np.zeros(4096)
        n_compute = 0
        delays: deque[float] = deque(maxlen=25)
        last_fire = -math.inf
        random_due = math.nan
        while not self._stop.is_set():
            data, stamps = inlet.pull()
            n = stamps.shape[0]
            if n == 0:
                time.sleep(self.poll_s)
                continue
            t_begin = time.perf_counter()
            y = chain.process(as_chunk(data))[0]
            valid = chain.valid
            n_seen += n
            last_stamp = float(stamps[-1])
            if tracker is None:
                settle_parts.append(y.copy())
                settle_valid.append(valid.copy())
                if n_seen < settle_n:
                    continue
                x = np.concatenate(settle_parts)
                v = np.concatenate(settle_valid)
                scale = self.scale_uv
                if scale is None:
                    scale = float(np.std(x[v])) if v.any() else 10.0
                tracker = PhaseTracker(self.fs, self.mu_hz, scale)
                tracker.update(x, v)
                random_due = local_clock() + self._draw_interval(rng) - self.min_interval_s
                continue
            tracker.update(y, valid)

            # ---- decision
            now = local_clock()
            delay = self.loop_delay_s if self.loop_delay_s is not None else (
                float(np.median(delays)) if delays else 0.0)
            if self.max_pulses is not None and len(self.triggers) >= self.max_pulses:
                self._done.set()
                self._stop.set()
                break
            fire_at = None
            if now - last_stamp > self.max_sample_age_s:
                self.skipped_stale += 1
            elif now >= last_fire + self.min_interval_s - self.horizon_s:
                amp = tracker.amplitude
                if amp >= self.amplitude_gate_uv:
                    if self.condition == "phase":
                        t_target = last_stamp + tracker.time_to_phase(self.target_phase_rad)
                        wait = t_target - delay - now
                        if wait <= self.horizon_s:
                            fire_at = now + max(wait, 0.0)
                    elif now >= random_due:
                        fire_at = now
                    # the call itself comes no earlier than the minimum interval after
                    # the previous pulse's time stamp (the write follows the call)
                    if fire_at is not None and fire_at < last_fire + self.min_interval_s:
                        fire_at = None
            t_end = time.perf_counter()
            compute[n_compute % compute.shape[0]] = t_end - t_begin
            n_compute += 1
            if fire_at is None:
                continue

            # ---- fire
            phase0, freq = tracker.phase, tracker.freq_hz
            while local_clock() < fire_at:  # at most horizon_s
                pass
            t_call = local_clock()
            pulse = self.stimulator.fire()
            t_ret = local_clock()
            fire_s = float(pulse.time_s)
            delays.append(max(fire_s - t_call, 0.0))
            last_fire = fire_s
            # blank our own artifact: the pulse's sample index on the stream's clock
            chain.add_onset(n_seen - 1 + int(round((fire_s - last_stamp) * self.fs)))
            est = math.remainder(phase0 + TWO_PI * freq * (fire_s - last_stamp), TWO_PI)
            true = None
            if self.truth is not None:
                value = self.truth(fire_s)
                true = None if value is None else float(value)
            trig = Trigger(
                index=len(self.triggers), condition=self.condition,
                target_phase_rad=(self.target_phase_rad if self.condition == "phase"
                                  else math.nan),
                sample_time_s=last_stamp, decision_time_s=t_call, fire_time_s=fire_s,
                return_time_s=t_ret, estimated_phase_rad=est, true_phase_rad=true,
                amplitude_uv=float(amp), freq_hz=float(freq), loop_delay_s=float(delay),
            )
            with self._lock:
                self.triggers.append(trig)
                self.compute_s = compute[: min(n_compute, compute.shape[0])].copy()
            self._emit(trig)
            if self.condition == "random":
                random_due = fire_s + self._draw_interval(rng)
        with self._lock:
            self.compute_s = compute[: min(n_compute, compute.shape[0])].copy()

    def _draw_interval(self, rng: np.random.Generator) -> float:
        if self.random_intervals_s is not None:
            return float(rng.choice(self.random_intervals_s))
        return self.min_interval_s + float(rng.uniform(0.0, 1.0 / self.mu_hz))

    def _emit(self, trig: Trigger) -> None:
        if self.log is None:
            return
        sink = getattr(self.log, "sink", None)
        if sink is not None:
            sink("closed_loop_pulse", trig.as_dict())
        else:
            self.log(trig.as_dict())
