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
   steps 2 and 3 are two numba ``nogil`` kernels over preallocated buffers
   (:meth:`~labkit.kernels.CleaningChain.process_rows`,
   :meth:`~labkit.phase.PhaseTracker.step`): nothing is allocated per chunk;
4. asks the pure :class:`~labkit.closedloop.policy.TriggerPolicy` whether and when to
   fire (phase, random or mu-power condition, see :mod:`labkit.closedloop.policy`), spins
   the final wait of at most ``horizon_s``, fires and records the pulse.

The thread asks for ``SCHED_FIFO`` and a CPU of its own (``realtime``, ``cpu``) and runs
without them where they are not permitted; :attr:`ClosedLoopController.scheduling` says
what it got.

The controller is the I/O around the policy: inlet, clock, stimulator, records. Its
settings are a :class:`~labkit.closedloop.config.ClosedLoopConfig` (frozen dataclasses,
checked when built), given whole or as flat keyword options.

The loop delay (decision → pulse) is measured on every pulse as the time from the
``fire()`` call to the driver's time stamp of the write, and its running median is
compensated; give ``loop_delay_s`` to fix it instead — e.g. the sample → discharge delay
measured from the TMS artifact during calibration pulses, which also covers the
amplifier, serial transmission and the unit's own command → discharge time — or
``calibration_pulses`` to have the loop measure it on its own first pulses
(:class:`~labkit.closedloop.delay.DelayCalibration`, result in
:attr:`ClosedLoopController.discharge_delay`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit.clock import local_clock
from labkit.closedloop._input import as_chunk, channel_labels, montage, open_eeg
from labkit.closedloop.config import LOOP_DELAY_RANGE_S, ClosedLoopConfig
from labkit.closedloop.delay import DelayCalibration, DelayEstimate
from labkit.closedloop.policy import CONDITIONS, TriggerPolicy
from labkit.closedloop.records import Trigger, phase_error_stats, triggers_frame
from labkit.closedloop.scheduling import LoopScheduling, loop_scheduling, thread_ids
from labkit.errors import ConfigError, LabkitError
from labkit.kernels import CleaningChain, warm_up
from labkit.phase import PhaseTracker
from labkit.safety.check import (
    ProtocolRefusedError,
    SafetyVerdict,
    check_closed_loop,
    longest_train_pulses,
)
from labkit.safety.guard import Permit
from labkit.streams import LowLatencyInlet

__all__ = ["CONDITIONS", "ClosedLoopController", "ClosedLoopError"]

TWO_PI = 2.0 * math.pi


class ClosedLoopError(LabkitError):
    """The closed loop stopped on an error (the original is chained as ``__cause__``)."""


class ClosedLoopController:
    """EEG-state-triggered single pulses (mu phase, mu power, or random timing).

    Parameters
    ----------
    stimulator : Stimulator
        A connected driver (intensity already set). :meth:`start` arms it if needed;
        :meth:`stop` disarms it (``disarm_on_stop``).
    eeg : str | LowLatencyInlet
        The EEG stream: its LSL name (then ``source_id`` is required) or an open inlet.
    config : ClosedLoopConfig | None
        All settings (:mod:`labkit.closedloop.config`). None: built from ``options``.
    source_id : str | None
        Source id the stream must carry.
    stype : str | None
        Expected stream type (e.g. ``"EEG"``).
    fs : float | None
        Expected sampling rate, Hz (checked against the stream's).
    truth : callable | None
        ``truth(time_s) -> phase_rad`` (ground truth from a simulator), recorded per pulse.
    log : callable | None
        Called with each trigger's dict (:meth:`Trigger.as_dict`); an object with a
        ``sink(kind, payload)`` method (a session) gets ``sink("closed_loop_pulse", ...)``.
    timeout_s : float
        Stream resolve timeout, s.
    **options
        Flat settings (``mu_hz``, ``condition``, ``target_phase_rad``,
        ``min_interval_s``, ``amplitude_gate_uv``, ``max_pulses``, ...; see
        :meth:`ClosedLoopConfig.from_options`); with ``config`` they override its fields.

    Notes
    -----
    Safety: before arming, the worst case (every pulse ``min_interval_s`` apart, at the
    stimulator's intensity) must pass :func:`~labkit.safety.check_closed_loop` against
    ``limits`` (default the stimulator's) in % of ``rmt_percent`` (default the rig's;
    without one the loop is refused); during the run a rolling-window table check stops
    the loop before a pulse that would make the delivered train too long.

    Attributes
    ----------
    config : ClosedLoopConfig
        The settings in force.
    policy : TriggerPolicy
        The pure decision rule (fresh at every :meth:`start`).
    triggers : list of Trigger
        One record per pulse (:meth:`frame` for a DataFrame).
    compute_s : numpy.ndarray
        Per-chunk compute time (clean + phase + decision), s, for the last chunks.
    skipped : dict
        Turns without a pulse by reason (``"stale"``, ``"interval"``, ``"gate"``,
        ``"wait"``).
    discharge_delay : DelayEstimate | None
        The command → discharge delay measured on the calibration pulses (None before,
        or without ``calibration_pulses``).
    scheduling : LoopScheduling | None
        What the loop thread got from the operating system (``SCHED_FIFO``, its CPUs,
        and why a request was not granted); None before the first :meth:`start`.
    """

    def __init__(
        self,
        stimulator: Any,
        eeg: str | LowLatencyInlet,
        config: ClosedLoopConfig | None = None,
        *,
        source_id: str | None = None,
        stype: str | None = None,
        fs: float | None = None,
        truth: Callable[[float], float | None] | None = None,
        log: Any = None,
        timeout_s: float = 5.0,
        **options: Any,
    ) -> None:
        if config is None:
            config = ClosedLoopConfig.from_options(**options)
        elif options:
            config = config.replace(**options)
        self.config = config
        run = config.run
        guard = stimulator.guard
        limits = run.limits if run.limits is not None else guard.limits
        cap = limits.max_pulses_per_session
        if run.max_pulses is not None and run.max_pulses > cap:
            raise ConfigError(f"{run.max_pulses} pulses exceed the session cap of {cap} "
                              f"({limits.source})", field="max_pulses")
        self._max_pulses_default = run.max_pulses is None
        #: Pulses the loop fires at most (default: set by :meth:`start` from the table at
        #: ``1 / min_interval_s`` and what is left of the session's cap).
        self.max_pulses = run.max_pulses if run.max_pulses is not None else 1
        self.limits = limits
        self.verdict: SafetyVerdict | None = None
        self._permit: Permit | None = None
        self.stimulator = stimulator
        self.truth = truth
        self.log = log
        self.policy = TriggerPolicy(config.trigger, config.tracking.mu_hz)

        before = thread_ids()
        self.inlet, self._owns_inlet = open_eeg(eeg, source_id, stype, timeout_s)
        # LSL's receiver threads of our own inlet: favoured with the loop thread
        self._inlet_threads = tuple(sorted(thread_ids() - before)) if self._owns_inlet else ()
        try:
            self.fs = float(self.inlet.sfreq)
            if fs is not None and abs(float(fs) - self.fs) > 1e-6:
                raise ConfigError(f"stream {self.inlet.info.name()!r} runs at {self.fs:g} Hz, "
                                  f"expected {fs:g} Hz", field="fs")
            if not self.fs > 0:
                raise ConfigError(f"stream {self.inlet.info.name()!r} has no nominal rate",
                                  field="eeg")
            self.channels = channel_labels(self.inlet)
            cl = config.cleaning
            self.weights = montage(self.channels, cl.weights, cl.center, cl.neighbours)
        except BaseException:
            self.close()
            raise
        self._pre = int(round(config.cleaning.blank_pre_ms * self.fs / 1000.0))
        self._post = max(int(round(config.cleaning.blank_post_ms * self.fs / 1000.0)), 1)
        self.triggers: list[Trigger] = []
        self.compute_s = np.zeros(0)
        self.warm_up_s: float | None = None
        self.error: BaseException | None = None
        self.skipped: dict[str, int] = {}
        self.discharge_delay: DelayEstimate | None = None
        self.scheduling: LoopScheduling | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._ready = threading.Event()  # the unit is armed and ready: the loop may decide
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ settings
    @property
    def condition(self) -> str:
        """The trigger condition (``"phase"``, ``"random"`` or ``"power"``)."""
        return self.config.trigger.condition

    @property
    def target_phase_rad(self) -> float:
        """Target phase, radians (cosine convention)."""
        return self.config.trigger.target_phase_rad

    @property
    def min_interval_s(self) -> float:
        """Shortest time between pulses, s."""
        return self.config.trigger.min_interval_s

    @property
    def mu_hz(self) -> float:
        """Individual mu peak the tracker starts from, Hz."""
        return self.config.tracking.mu_hz

    @property
    def skipped_stale(self) -> int:
        """Turns without a pulse because the newest sample was too old."""
        return self.skipped.get("stale", 0)

    # ------------------------------------------------------------------ life cycle
    @property
    def running(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ClosedLoopController:
        """Warm the kernels up, start the loop thread, arm the stimulator if needed.

        Returns once the unit is ready. The loop settles its tracker (``settle_s`` of
        fresh EEG) while the unit charges and decides nothing before it is ready, so the
        first pulse can come ``max(arming, settle_s)`` after the call, not their sum. If
        arming fails, the loop is stopped and the error raised.
        """
        if self.running:
            raise ClosedLoopError("the closed loop is already running")
        if self._owns_inlet and self.inlet is None:
            raise ClosedLoopError("the controller was closed; create a new one")
        guard = self.stimulator.guard
        rmt = self.config.run.rmt_percent
        rmt = rmt if rmt is not None else guard.rmt_percent
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
            arming = not self.stimulator.status().armed
        except BaseException:
            self._permit.release()
            raise
        self.error = None
        self.policy = TriggerPolicy(self.config.trigger, self.config.tracking.mu_hz)
        self._stop.clear()
        self._done.clear()
        self._ready.clear()
        # the loop settles its tracker on fresh EEG while the unit charges (about 1 s on
        # a Magstim); it decides nothing before the unit is ready
        self._thread = threading.Thread(target=self._run, name="labkit-closed-loop",
                                        daemon=True)
        self._thread.start()
        try:
            if arming:
                self.stimulator.start_arming()
            self.stimulator.wait_ready()
        except BaseException:
            self._stop.set()
            thread, self._thread = self._thread, None
            thread.join(timeout=5.0)
            self._permit.release()  # the loop released it too; a second release is a no-op
            raise
        self._ready.set()
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
        if self.config.run.disarm_on_stop and thread is not None:
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
        return phase_error_stats([getattr(t, key) for t in self.triggers if not t.calibration],
                                 self.target_phase_rad)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        run = self.config.run
        self.stimulator.guard.adopt(self._permit)
        try:
            with loop_scheduling(run.realtime, run.cpu, self._inlet_threads) as scheduling:
                self.scheduling = scheduling
                self._loop()
        except BaseException as exc:  # reported by wait()/stop()
            self.error = exc
        finally:
            self._permit.release()
            self._done.set()

    def _loop(self) -> None:
        cfg = self.config
        chain = CleaningChain(len(self.channels), self._pre, self._post,
                              weights=self.weights, detect_uv=cfg.cleaning.detect_uv)
        policy = self.policy
        poll_s = cfg.run.poll_s
        inlet = self.inlet
        inlet.pull()  # drop what was buffered before start: decide on fresh data only
        n_seen = 0
        last_stamp = -math.inf
        settle_parts: list[np.ndarray] = []
        settle_valid: list[np.ndarray] = []
        settle_n = int(round(cfg.tracking.settle_s * self.fs))
        tracker: PhaseTracker | None = None
        estimate: _Readout | None = None
        ready = self._ready
        begun = False
        compute = np.zeros(4096)
        n_compute = 0
        delays: deque[float] = deque(maxlen=25)
        median_delay = 0.0
        skipped = self.skipped
        # command -> discharge delay: given, measured on the first pulses, or unknown
        measured = cfg.run.loop_delay_s
        calib = None
        if measured is None and cfg.run.calibration_pulses:
            calib = DelayCalibration(cfg.run.calibration_pulses)
        self.discharge_delay = None
        while not self._stop.is_set():
            data, stamps = inlet.pull()
            n = stamps.shape[0]
            if n == 0:
                time.sleep(poll_s)
                continue
            t_begin = time.perf_counter()
            if calib is not None:
                calib.feed(as_chunk(data), stamps)  # raw: the blanking below leaves data
                if calib.complete:
                    measured = self._finish_calibration(calib)
                    calib = None
            y, valid = chain.process_rows(data)  # views into reused buffers
            n_seen += n
            last_stamp = float(stamps[-1])
            if tracker is None:
                settle_parts.append(y.copy())
                settle_valid.append(valid.copy())
                if n_seen < settle_n:
                    continue
                x = np.concatenate(settle_parts)
                v = np.concatenate(settle_valid)
                scale = cfg.tracking.scale_uv
                if scale is None:
                    scale = float(np.std(x[v])) if v.any() else 10.0
                tracker = PhaseTracker(self.fs, cfg.tracking.mu_hz, scale)
                tracker.step(x, v)
                estimate = _Readout(tracker.readout)
                continue
            tracker.step(y, valid)  # one nogil kernel, no allocation
            if not begun:  # settled: decide once the unit is ready (start() arms it)
                if not ready.is_set():
                    continue
                policy.begin(local_clock())
                begun = True

            # ---- decision (pure)
            if len(self.triggers) >= self.max_pulses:
                self._done.set()
                self._stop.set()
                break
            now = local_clock()
            delay = measured if measured is not None else median_delay
            decision = policy.decide(now, last_stamp, estimate, delay)
            t_end = time.perf_counter()
            compute[n_compute % compute.shape[0]] = t_end - t_begin
            n_compute += 1
            if decision.fire_at_s is None:
                skipped[decision.reason] = skipped.get(decision.reason, 0) + 1
                continue

            # ---- fire
            phase0, amp, freq = estimate.phase, estimate.amplitude, estimate.freq_hz
            fire_at = decision.fire_at_s
            while local_clock() < fire_at:  # at most horizon_s
                pass
            t_call = local_clock()
            pulse = self.stimulator.fire()
            t_ret = local_clock()
            fire_s = float(pulse.time_s)
            delays.append(max(fire_s - t_call, 0.0))
            median_delay = float(np.median(delays))  # once per pulse, not per chunk
            policy.fired(fire_s)
            is_calibration = calib is not None
            if is_calibration:
                calib.add_command(t_call)
            # the discharge: a measured command -> discharge delay places it after the
            # call; without one the write time stamp is the best guess
            discharge_s = t_call + measured if measured is not None else fire_s
            # blank our own artifact: the discharge's sample index on the stream's clock
            chain.add_onset(n_seen - 1 + int(round((discharge_s - last_stamp) * self.fs)))
            est = math.remainder(phase0 + TWO_PI * freq * (discharge_s - last_stamp), TWO_PI)
            true = None
            if self.truth is not None:
                value = self.truth(discharge_s)
                true = None if value is None else float(value)
            trig = Trigger(
                index=len(self.triggers), condition=self.condition,
                target_phase_rad=policy.target_phase_rad,
                sample_time_s=last_stamp, decision_time_s=t_call, fire_time_s=fire_s,
                return_time_s=t_ret, estimated_phase_rad=est, true_phase_rad=true,
                amplitude_uv=float(amp), freq_hz=float(freq), loop_delay_s=float(delay),
                discharge_time_s=discharge_s, calibration=is_calibration,
            )
            with self._lock:
                self.triggers.append(trig)
                self.compute_s = compute[: min(n_compute, compute.shape[0])].copy()
            self._emit(trig)
        with self._lock:
            self.compute_s = compute[: min(n_compute, compute.shape[0])].copy()

    def _finish_calibration(self, calib: DelayCalibration) -> float:
        """Measure the delay on the calibration pulses; stop the loop if none was found."""
        est = calib.estimate()
        self.discharge_delay = est
        if est.n_found == 0:
            raise ClosedLoopError(
                f"no TMS artifact in the EEG within {calib.max_delay_s * 1000:.0f} ms after "
                f"any of the {calib.n_pulses} calibration pulses: the command -> discharge "
                f"delay cannot be measured (check the EEG stream, or give loop_delay_s)")
        low, high = LOOP_DELAY_RANGE_S
        if not low <= est.delay_s <= high:
            raise ClosedLoopError(
                f"the measured command -> discharge delay {est.delay_s * 1000:.1f} ms is "
                f"outside {low * 1000:.0f}-{high * 1000:.0f} ms (calibration_pulses); check "
                f"the EEG time stamps")
        return est.delay_s

    def _emit(self, trig: Trigger) -> None:
        if self.log is None:
            return
        sink = getattr(self.log, "sink", None)
        if sink is not None:
            sink("closed_loop_pulse", trig.as_dict())
        else:
            self.log(trig.as_dict())


class _Readout:
    """The tracker's read-out after its last step, as the policy reads it."""

    __slots__ = ("_values",)

    def __init__(self, values: np.ndarray) -> None:
        self._values = values  # the tracker's readout array, updated in place

    @property
    def phase(self) -> float:
        return float(self._values[0])

    @property
    def amplitude(self) -> float:
        return float(self._values[1])

    @property
    def freq_hz(self) -> float:
        return float(self._values[2])
