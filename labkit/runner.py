"""Deliver a protocol on a stimulator: safety gate, timing, pause/resume/stop, logging.

:class:`ProtocolRunner` refuses an unsafe protocol before it arms anything, expands the
protocol into a pulse schedule, and delivers it either with the stimulator's own train
mode (the driver's :class:`~labkit.stimulators.capabilities.DeviceTrain` ability) or
with software timing (sleep until ~2 ms before each pulse, then spin on ``local_clock()``).
Every pulse goes to the session log (``log("pulse", {...})``) with its LSL time and
intensity. ``pause()``, ``resume()`` and ``stop()`` may be called from any thread; stop
disarms the unit within one serial transaction (well under 100 ms).

The log callback is the session's event sink: ``log(kind, payload)`` with ``kind`` one of
``"safety"``, ``"override"``, ``"run"``, ``"train"``, ``"pulse"``, ``"pause"``,
``"resume"``, ``"stop"``, ``"finish"``, ``"error"``, ``"refused"`` (a trigger the
unit refused while recharging; retried once, nothing was delivered).
"""

from __future__ import annotations

import os
import sys
import threading
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from labkit.checks import check_range
from labkit.clock import local_clock
from labkit.errors import ConfigError, LabkitError, SettingsConflictError
from labkit.protocols.model import Protocol
from labkit.protocols.schedule import PulseSchedule
from labkit.safety.check import (
    ProtocolRefusedError,
    SafetyVerdict,
    check_protocol,
    log_verdict,
)
from labkit.safety.guard import Permit
from labkit.safety.limits import SafetyLimits, SafetyOverride


class EventLog(typing.Protocol):
    """Where every pulse and event of a run goes: ``log(kind, payload)``.

    :meth:`labkit.session.Session.sink` is one; so is ``lambda kind, payload: ...``.
    A ``time_s`` in the payload is the event's LSL time.
    """

    def __call__(self, kind: str, payload: dict, /) -> None:  # pragma: no cover - protocol
        ...


LogFn = EventLog
#: ``check(next_index) -> None | True`` to go on, ``False`` or a reason string to pause.
PrePulseCheck = Callable[[int], "bool | str | None"]

RunnerState = Literal["idle", "running", "paused", "stopped", "finished", "failed"]
TrainMode = Literal["auto", "software", "hardware"]

#: Software timing: stop sleeping this long before a pulse and spin on the clock.
SPIN_S = 0.002
#: During a device-timed train: how often the driver's latched fault is checked, s.
FAULT_POLL_S = 0.05
#: Software timing: longest wait for a refusing (recharging) unit to be ready again, s.
RECHARGE_WAIT_S = 0.5


def wait_until(
    deadline_s: float,
    wake: threading.Event | None = None,
    *,
    spin_s: float = SPIN_S,
    clock: Callable[[], float] = local_clock,
) -> bool:
    """Wait until ``clock() >= deadline_s``: sleep, then spin for the last ``spin_s``.

    Parameters
    ----------
    deadline_s : float
        Target time on ``clock``, s.
    wake : threading.Event | None
        When set, the wait ends early (pause/stop from another thread).
    spin_s : float
        How long before the deadline to stop sleeping and busy-wait, s.
    clock : callable
        The time base (LSL ``local_clock`` by default).

    Returns
    -------
    bool
        True when the deadline was reached, False when ``wake`` interrupted the wait.
    """
    wake = wake or threading.Event()
    while True:
        remaining = deadline_s - clock()
        if remaining <= 0:
            return True
        if wake.is_set():
            return False
        if remaining > spin_s:
            if wake.wait(remaining - spin_s):
                return False
        else:
            while clock() < deadline_s:
                if wake.is_set():
                    return False
            return True


@contextmanager
def timing_priority(
    *, switch_interval_s: float | None = 0.0005, realtime: bool = False
) -> Iterator[bool]:
    """Favour the calling thread's timing for the duration of a run.

    Parameters
    ----------
    switch_interval_s : float | None
        Temporarily lower Python's GIL switch interval (default 5 ms) so that a waking
        timing thread gets the interpreter back quickly from other Python threads
        (keep-alive, emulator, LSL). Process-wide; restored afterwards. ``None``: leave it.
    realtime : bool
        Also try ``SCHED_FIFO`` (priority 10) for the calling thread (Linux, needs the
        privilege); silently skipped where not allowed.

    Yields
    ------
    bool
        True when real-time scheduling is in effect.
    """
    old_switch = sys.getswitchinterval()
    old_policy = None
    if switch_interval_s:
        sys.setswitchinterval(switch_interval_s)
    if realtime and hasattr(os, "sched_setscheduler"):
        try:
            old_policy = (os.sched_getscheduler(0), os.sched_getparam(0))
            # threads started meanwhile (log writers, reconnects) must not inherit it
            policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
            os.sched_setscheduler(0, policy, os.sched_param(10))
        except (OSError, AttributeError):
            old_policy = None
    try:
        yield old_policy is not None
    finally:
        if old_policy is not None:
            try:
                os.sched_setscheduler(0, old_policy[0], old_policy[1])
            except OSError:  # pragma: no cover - restoring a lower priority always works
                pass
        if switch_interval_s:
            sys.setswitchinterval(old_switch)


@dataclass(frozen=True)
class DryRunReport:
    """What a run would do, without touching the stimulator.

    Attributes
    ----------
    protocol : Protocol
        The protocol.
    schedule : PulseSchedule | None
        The expanded schedule (``None`` if the intensity could not be computed).
    verdict : SafetyVerdict
        The safety check at this subject's thresholds.
    train_mode : str
        ``"hardware"`` or ``"software"``: how the pulses would be timed.
    intensity : float | None
        The intensity chosen for the run in the protocol's unit (``None``: the
        protocol's own value); the summary's header shows the one that will be used.
    """

    protocol: Protocol
    schedule: PulseSchedule | None
    verdict: SafetyVerdict
    train_mode: str
    intensity: float | None = None

    @property
    def ok(self) -> bool:
        """True when the run would be allowed."""
        return self.verdict.ok

    def summary(self) -> str:
        """Protocol, schedule figures, first pulses and the verdict, as text."""
        p = self.protocol
        chosen = p.intensity.value if self.intensity is None else self.intensity
        lines = [p.summary(intensity=chosen)]
        if p.shortened_from:
            what = f": {p.shortening}" if p.shortening else ""
            lines.append(f"SHORTENED DEMO VARIANT of {p.shortened_from}{what}")
        if self.schedule is not None and len(self.schedule):
            s = self.schedule
            lines.append(
                f"schedule: {len(s)} pulses in {s.n_trains} train(s) over {s.duration_s:.1f} s "
                f"at {int(s.intensity_percent[0])} % MSO (RMT {s.rmt_percent:g} % MSO), "
                f"{self.train_mode} timing"
            )
            first = ", ".join(f"{t:.3f}" for t in s.times_s[:5])
            lines.append(f"first pulses at [{first}{', ...' if len(s) > 5 else ''}] s")
        lines.append(self.verdict.summary())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class ProtocolRunner:
    """Run a protocol on a connected stimulator.

    Parameters
    ----------
    stimulator : Stimulator
        A connected driver (:class:`~labkit.stimulators.base.Stimulator`).
    protocol : Protocol
        The protocol to deliver.
    rmt_percent : float
        Today's resting motor threshold, % MSO.
    amt_percent : float | None
        Active motor threshold, % MSO (protocols in % AMT, theta-burst ceilings).
    intensity : float | None
        Intensity chosen within the protocol's range, in its unit.
    log : callable | None
        ``log(kind, payload)`` session-log sink; every pulse and event is written to it.
    limits : SafetyLimits | None
        Safety limits; by default the stimulator's own (``stimulator.guard.limits``: the
        device profile's when the stimulator belongs to a rig, the published ones for a
        bare driver).
    override : SafetyOverride | None
        Needed when ``limits`` are looser than published; written to ``log``.
    pulses_delivered_before : int | None
        Pulses already given this session (counted against the per-session cap); by
        default the stimulator's count (``stimulator.guard.count``: every pulse of the
        session, whatever fired it).
    progress : bool
        Show a ``tqdm.auto`` progress bar (pulses, train, time left).
    pre_pulse_check : callable | None
        Called before each pulse (software timing) or train (hardware timing) with the
        next pulse index; returning ``False`` or a reason string pauses the run (e.g.
        the EMG stream stopped).
    train_mode : {"auto", "software", "hardware"}
        ``"auto"`` uses the stimulator's own train mode for plain rTMS when it has one.
    arm_timeout_s : float
        How long to wait for the unit to report ready after arming.
    lead_s : float
        Delay between "ready" and the first pulse (and after a resume).
    realtime : bool
        Try ``SCHED_FIFO`` for the timing thread while it runs (see
        :func:`timing_priority`; skipped where not permitted, logged as ``"realtime"``
        when in effect). On a loaded 2-core machine this took software-timing p99 from
        ~3 ms to < 0.1 ms (``benchmarks/bench_train_jitter.py``). The GIL switch interval
        is lowered during every run regardless.
    """

    def __init__(
        self,
        stimulator: Any,
        protocol: Protocol,
        rmt_percent: float,
        *,
        amt_percent: float | None = None,
        intensity: float | None = None,
        log: LogFn | None = None,
        limits: SafetyLimits | None = None,
        override: SafetyOverride | None = None,
        pulses_delivered_before: int | None = None,
        progress: bool = True,
        pre_pulse_check: PrePulseCheck | None = None,
        train_mode: TrainMode = "auto",
        arm_timeout_s: float = 5.0,
        lead_s: float = 0.2,
        realtime: bool = True,
    ) -> None:
        if train_mode not in ("auto", "software", "hardware"):
            raise ConfigError(f"train_mode must be 'auto', 'software' or 'hardware' "
                              f"(got {train_mode!r})", field="train_mode")
        check_range(amt_percent, "amt_percent", 1.0, 100.0, "% MSO", optional=True)
        check_range(arm_timeout_s, "arm_timeout_s", 0.01, 600.0, "s")
        check_range(lead_s, "lead_s", 0.0, 60.0, "s")
        guard = stimulator.guard
        self._count_from_guard = pulses_delivered_before is None
        self._limits_from_guard = limits is None
        if pulses_delivered_before is None:
            pulses_delivered_before = guard.count
        if isinstance(pulses_delivered_before, bool) or not isinstance(
                pulses_delivered_before, (int, np.integer)) or pulses_delivered_before < 0:
            raise ConfigError(f"must be a whole number of pulses >= 0, got "
                              f"{pulses_delivered_before!r}", field="pulses_delivered_before")
        limits = guard.limits if limits is None else limits
        self.stimulator = stimulator
        self.protocol = protocol
        if rmt_percent is None:
            raise ConfigError("no resting motor threshold: hunt or enter the RMT first "
                              "(rmt_percent in % MSO, e.g. rig.rmt_percent = 45)",
                              field="rmt_percent")
        self.rmt_percent = check_range(rmt_percent, "rmt_percent", 1.0, 100.0, "% MSO")
        self.amt_percent = amt_percent
        self.intensity = intensity
        self.limits = limits
        self.override = override
        self.pulses_delivered_before = int(pulses_delivered_before)
        self.progress = progress
        self.pre_pulse_check = pre_pulse_check
        self.arm_timeout_s = float(arm_timeout_s)
        self.lead_s = float(lead_s)
        self.realtime = bool(realtime)
        self._log_fn = log
        self._options = {
            "amt_percent": amt_percent, "intensity": intensity, "log": log,
            "limits": None if self._limits_from_guard else limits, "override": override,
            "progress": progress, "pre_pulse_check": pre_pulse_check, "train_mode": train_mode,
            "arm_timeout_s": arm_timeout_s, "lead_s": lead_s, "realtime": realtime}
        self.verdict = check_protocol(
            protocol, self.rmt_percent, limits, override=override, amt_percent=amt_percent,
            intensity=intensity, pulses_delivered=self.pulses_delivered_before,
            abilities=stimulator.abilities,
        )
        self._permit: Permit | None = None
        self.schedule: PulseSchedule | None = (
            protocol.schedule(self.rmt_percent, amt_percent=amt_percent, relative=intensity)
            if self.verdict.intensity_percent is not None else None
        )
        self.train_mode = self._resolve_train_mode(train_mode)
        self.state: RunnerState = "idle"
        #: The exception that ended the run, when ``state == "failed"``.
        self.error: BaseException | None = None
        #: Pulses delivered by this run.
        self.pulses_delivered = 0
        #: Actual minus scheduled fire time per software-timed pulse, ms.
        self.timing_errors_ms: list[float] = []
        self.pause_reason: str | None = None
        self.stop_reason: str | None = None
        self._wake = threading.Event()
        self._resume_event = threading.Event()
        self._stop_flag = threading.Event()
        self._pause_flag = threading.Event()
        self._device_lock = threading.RLock()  # orders arm/fire against stop's disarm
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._next = 0
        self._bar: Any = None
        self._started = False

    # ------------------------------------------------------------------ figures
    @property
    def total_pulses(self) -> int:
        """Pulses the run will deliver."""
        return self.protocol.total_pulses

    @property
    def current_train(self) -> int:
        """Index of the train being (or next to be) delivered."""
        if self.schedule is None or not len(self.schedule):
            return 0
        return int(self.schedule.train[min(self._next, len(self.schedule) - 1)])

    @property
    def time_left_s(self) -> float:
        """Scheduled time from the next pulse to the last one, s."""
        return 0.0 if self.schedule is None else self.schedule.remaining_s(self._next)

    def jitter_ms(self) -> dict:
        """p50/p99/max of |actual − scheduled| for software-timed pulses, ms."""
        errs = np.abs(np.asarray(self.timing_errors_ms, dtype=float))
        if errs.size == 0:
            return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        return {"n": int(errs.size), "p50_ms": float(np.percentile(errs, 50)),
                "p99_ms": float(np.percentile(errs, 99)), "max_ms": float(errs.max())}

    # ------------------------------------------------------------------ dry run
    def dry_run(self, print_summary: bool = True) -> DryRunReport:
        """The schedule summary and the safety verdict; the stimulator is not touched.

        Parameters
        ----------
        print_summary : bool
            Also print the summary.
        """
        report = DryRunReport(self.protocol, self.schedule, self.verdict, self.train_mode,
                              intensity=self.intensity)
        if print_summary:
            print(report.summary())
        return report

    # ------------------------------------------------------------------ control
    def fresh(self) -> ProtocolRunner:
        """A new runner for the same protocol, settings and log (a runner runs once).

        Its pulse count starts from the session's count (the stimulator's firing guard),
        or, when this runner was given ``pulses_delivered_before``, from that plus the
        pulses this run delivered; its safety verdict is checked anew.
        """
        before = None if self._count_from_guard else (self.pulses_delivered_before
                                                      + self.pulses_delivered)
        return ProtocolRunner(self.stimulator, self.protocol, self.rmt_percent,
                              pulses_delivered_before=before, **self._options)

    def run(self) -> RunnerState:
        """Deliver the protocol in the calling thread; return the final state.

        Raises
        ------
        ProtocolRefusedError
            The safety check refused the protocol (nothing was armed).
        RuntimeError
            The runner was already started.
        """
        self._claim()
        self._execute()
        if self.state == "failed" and self.error is not None:
            raise self.error
        return self.state

    def start(self) -> ProtocolRunner:
        """Deliver the protocol in a background thread; return at once.

        A refused protocol raises here, before any thread starts.
        """
        self._claim()
        self._thread = threading.Thread(target=self._execute, name="labkit-protocol-runner",
                                        daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> RunnerState:
        """Wait for a background run to end; return the state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def pause(self, reason: str = "user") -> None:
        """Pause after the current pulse; the unit is disarmed while paused."""
        if self.state in ("running",) or (self.state == "idle" and self._started):
            self.pause_reason = reason
            self._resume_event.clear()
            self._pause_flag.set()
            self._wake.set()

    def resume(self) -> None:
        """Re-arm and continue; remaining pulses shift so that no interval gets shorter."""
        if self._pause_flag.is_set():
            self._pause_flag.clear()
            self._resume_event.set()

    def stop(self, reason: str = "user", *, wait: bool = True, timeout_s: float = 2.0) -> None:
        """Stop and disarm now (callable from any thread).

        The disarm command is sent from the calling thread, ordered after any pulse in
        flight, so the unit is disarmed within one serial transaction.
        """
        if self.state in ("stopped", "finished", "failed"):
            return
        self.stop_reason = reason
        self._stop_flag.set()
        self._wake.set()
        self._resume_event.set()
        if self._started:
            with self._device_lock:
                self._safe_disarm()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ internals
    def _claim(self) -> None:
        if self._started:
            raise RuntimeError("this runner was already started; make a new one")
        log_verdict(self.verdict, self._log_fn)
        if not self.verdict.ok:
            self.state = "failed"
            self.error = ProtocolRefusedError(self.verdict)
            raise self.error
        self._permit = self.stimulator.guard.permit(
            f"protocol {self.protocol.name!r}", len(self.schedule),
            float(np.max(self.schedule.intensity_percent)),
            logs_pulses=self._log_fn is not None)
        self._started = True
        # created in the caller's thread: in a notebook the bar is displayed in the cell
        # that started the run; the worker thread only updates its values
        self._open_bar()

    def _log(self, kind: str, payload: dict) -> None:
        if self._log_fn is not None:
            self._log_fn(kind, payload)

    def _resolve_train_mode(self, requested: str) -> str:
        abilities = self.stimulator.abilities
        capable = abilities.device_train and not self.protocol.is_patterned
        if requested == "hardware" and not capable:
            raise ConfigError(
                f"{abilities.model} has no train mode usable for {self.protocol.name!r} "
                f"({abilities.describe()}; device-timed trains need one pulse per burst)",
                field="train_mode")
        if requested == "software":
            return "software"
        return "hardware" if capable else "software"

    def _execute(self) -> None:
        schedule = self.schedule
        assert schedule is not None  # guaranteed by a passing verdict
        self.state = "running"
        self._log("run", {
            "protocol": self.protocol.name, "shortened_from": self.protocol.shortened_from,
            "sham": self.protocol.sham, "total_pulses": len(schedule),
            "intensity_percent": int(schedule.intensity_percent[0]),
            "rmt_percent": self.rmt_percent, "amt_percent": self.amt_percent,
            "train_mode": self.train_mode, "device": type(self.stimulator).__name__,
        })
        priority = timing_priority(realtime=self.realtime)
        self.stimulator.guard.adopt(self._permit)
        try:
            if priority.__enter__():
                self._log("realtime", {"policy": "SCHED_FIFO", "priority": 10})
            self._prepare()
            if not self._arm():
                return
            self._t0 = local_clock() + self.lead_s
            if self.train_mode == "hardware":
                self._deliver_hardware(schedule)
            else:
                self._deliver_software(schedule)
        except BaseException as exc:  # noqa: BLE001 - the unit must be disarmed whatever happens
            if self._stop_flag.is_set() and isinstance(exc, LabkitError):
                pass  # a command racing the stop's disarm: the stop wins
            else:
                self.error = exc
                self.state = "failed"
                try:
                    self._log("error", {"error": f"{type(exc).__name__}: {exc}",
                                        "pulses_delivered": self.pulses_delivered})
                except Exception:  # noqa: BLE001 - the log itself may be what failed
                    pass
        finally:
            with self._device_lock:
                self._safe_disarm()
            self._permit.release()
            priority.__exit__(None, None, None)
            self._close_bar()
            if self.state != "failed":
                if self._stop_flag.is_set():
                    self.state = "stopped"
                    self._log("stop", {"reason": self.stop_reason,
                                       "pulses_delivered": self.pulses_delivered,
                                       "next_index": self._next})
                else:
                    self.state = "finished"
                    self._log("finish", {"pulses_delivered": self.pulses_delivered,
                                         "jitter": self.jitter_ms()})

    def _prepare(self) -> None:
        stim = self.stimulator
        mso = int(self.schedule.intensity_percent[0])
        stim.set_intensity(mso)
        if self.train_mode == "software":
            stim.prepare_single_pulses()  # a Rapid left in train mode refuses single pulses

    def _arm(self) -> bool:
        """Arm and wait until ready, interruptibly; False when stopped meanwhile."""
        stim = self.stimulator
        with self._device_lock:
            if self._stop_flag.is_set():
                return False
            stim.start_arming()
        return self._wait_ready(self._stop_flag)

    def _wait_ready(self, wake: threading.Event) -> bool:
        """Poll the unit until ready (True) or ``wake`` is set (False)."""
        stim = self.stimulator
        deadline = local_clock() + self.arm_timeout_s
        while not wake.is_set():
            if stim.status().ready:
                return True
            if local_clock() > deadline:
                raise LabkitError(f"{type(stim).__name__} not ready {self.arm_timeout_s:g} s "
                                  "after arming or after its last train")
            wake.wait(0.02)
        return False

    def _safe_disarm(self) -> None:
        try:
            self.stimulator.disarm()
        except Exception:  # noqa: BLE001 - best effort; the fault is already latched/logged
            pass

    # ------------------------------------------------------------------ pausing
    def _check_before(self, index: int) -> None:
        if self.pre_pulse_check is None:
            return
        verdict = self.pre_pulse_check(index)
        if verdict is False or isinstance(verdict, str):
            self.pause(reason=verdict if isinstance(verdict, str) else "pre-pulse check failed")

    def _handle_interrupt(self, schedule: PulseSchedule) -> bool:
        """Deal with a pause/stop request; return False when the run must end."""
        if self._stop_flag.is_set():
            return False
        if not self._pause_flag.is_set():
            self._wake.clear()
            return True
        paused_at = local_clock()
        with self._device_lock:
            self._safe_disarm()
        self.state = "paused"
        self._log("pause", {"reason": self.pause_reason, "next_index": self._next,
                            "pulses_delivered": self.pulses_delivered, "time_s": paused_at})
        self._resume_event.wait()
        if self._stop_flag.is_set():
            return False
        self._wake.clear()
        self.state = "running"
        if not self._arm():
            return False
        now = local_clock()
        shift = max(0.0, now + self.lead_s - (self._t0 + float(schedule.times_s[self._next])))
        self._t0 += shift
        self._log("resume", {"next_index": self._next, "paused_s": now - paused_at,
                             "shift_s": shift, "time_s": now})
        self._refresh_bar()
        return True

    # ------------------------------------------------------------------ delivery
    def _deliver_software(self, schedule: PulseSchedule) -> None:
        stim = self.stimulator
        times = schedule.times_s
        current_mso = int(schedule.intensity_percent[0])
        n = len(schedule)
        while self._next < n:
            i = self._next
            if schedule.pulse_in_burst[i] == 0 and schedule.burst[i] == 0:
                self._log("train", {"train": int(schedule.train[i]), "first_index": i})
                self._refresh_bar()
            self._check_before(i)
            mso = int(schedule.intensity_percent[i])
            if mso != current_mso:
                stim.set_intensity(mso)
                current_mso = mso
            target = self._t0 + float(times[i])
            if not wait_until(target, self._wake):
                if not self._handle_interrupt(schedule):
                    return
                continue
            event = self._fire_once(i)
            if event is None:
                if not self._handle_interrupt(schedule):
                    return
                continue
            late_ms = (event.time_s - target) * 1000.0
            self.timing_errors_ms.append(late_ms)
            self._record(schedule, i, event.time_s, late_ms, timing="software")

    def _fire_once(self, index: int) -> Any:
        """Fire one software-timed pulse; ``None`` when a stop/pause came first.

        A unit still recharging refuses the trigger with "conflicts with settings" and
        delivers nothing (e.g. the previous pulse went out late under load). That refusal
        is safe to retry: wait until it reports ready again (at most ``RECHARGE_WAIT_S``)
        and trigger once more, logged as ``"refused"``. A corrupted or missing reply is
        never retried (the pulse may have gone out).
        """
        stim = self.stimulator
        for attempt in (0, 1):
            with self._device_lock:
                if self._stop_flag.is_set():
                    return None
                try:
                    return stim.fire()
                except SettingsConflictError as exc:
                    if attempt or not stim.status().armed:
                        raise
                    self._log("refused", {"index": index, "error": str(exc),
                                          "time_s": local_clock()})
            deadline = local_clock() + RECHARGE_WAIT_S
            while not stim.status().ready:
                if local_clock() > deadline or self._wake.wait(0.005):
                    if self._wake.is_set():
                        return None
                    raise LabkitError(f"{type(stim).__name__} refused pulse {index} and was "
                                      f"not ready again within {RECHARGE_WAIT_S:g} s")
        return None  # pragma: no cover - the loop returns or raises

    def _deliver_hardware(self, schedule: PulseSchedule) -> None:
        t = self.protocol.timing
        n = len(schedule)
        while self._next < n:
            i = self._next
            train = int(schedule.train[i])
            end = schedule.train_slice(train).stop
            self._check_before(i)
            target = self._t0 + float(schedule.times_s[i])
            if not wait_until(target, self._wake):
                if not self._handle_interrupt(schedule):
                    return
                continue
            if not self._wait_ready(self._wake):  # a Rapid recharges after each train
                if not self._handle_interrupt(schedule):
                    return
                continue
            frequency_hz = t.frequency_hz
            count = end - i
            start_s = self._trigger_train(frequency_hz, count)
            if start_s is None:
                if not self._handle_interrupt(schedule):
                    return
                continue
            self._log("train", {"train": train, "first_index": i, "pulses": count,
                                "frequency_hz": frequency_hz, "time_s": start_s,
                                "timing": "device"})
            offsets = schedule.times_s[i:end] - schedule.times_s[i]
            train_end = start_s + float(offsets[-1]) + 1.0 / frequency_hz
            k = 0
            finished = True
            while k < count:  # log each pulse as its (device-paced) time passes
                if not self._wait_device(start_s + float(offsets[k])):
                    finished = False
                    break
                self._record(schedule, i + k, start_s + float(offsets[k]), None,
                             timing="device")
                k += 1
            if finished:
                finished = self._wait_device(train_end)
            self._refresh_bar()
            if not finished:
                with self._device_lock:
                    self._safe_disarm()  # ends the device's train at once
                passed = int(np.searchsorted(offsets, local_clock() - start_s, side="right"))
                for j in range(k, min(passed, count)):
                    self._record(schedule, i + j, start_s + float(offsets[j]), None,
                                 timing="device")
                if not self._handle_interrupt(schedule):
                    return
            # the device paced the train; the schedule keeps the next train's start
            self._t0 = max(self._t0, start_s - float(schedule.times_s[i]))

    def _wait_device(self, deadline_s: float) -> bool:
        """Wait during a device-timed train, watching the driver for a latched fault.

        The host sends nothing while the unit paces a train; the driver's keep-alive is
        what notices a silent unit (pulled cable). Its fault ends the run here, so that no
        further pulses are logged as delivered.
        """
        while True:
            step = min(deadline_s, local_clock() + FAULT_POLL_S)
            if not wait_until(step, self._wake, spin_s=0.0):
                return False
            fault = getattr(self.stimulator, "fault", None)
            if fault is not None:
                raise fault
            if step >= deadline_s:
                return True

    def _trigger_train(self, frequency_hz: float, count: int) -> float | None:
        """Configure and start one device-timed train; ``None`` when interrupted.

        A unit still resting after its previous train answers "conflicts with settings";
        that is retried every 20 ms (the pause only grows) up to ``arm_timeout_s``.
        """
        stim = self.stimulator
        t = self.protocol.timing
        deadline = local_clock() + self.arm_timeout_s
        while True:
            with self._device_lock:
                if self._stop_flag.is_set():
                    return None
                try:
                    return stim.deliver_train(frequency_hz, count,
                                              iti_s=t.inter_train_interval_s)
                except SettingsConflictError:
                    if local_clock() > deadline:
                        raise
            if self._wake.wait(0.02):
                return None

    def _record(self, schedule: PulseSchedule, i: int, time_s: float, late_ms: float | None,
                *, timing: str) -> None:
        self.pulses_delivered += 1
        self._next = i + 1
        self._log("pulse", {
            "index": i, "time_s": time_s, "intensity_percent": int(schedule.intensity_percent[i]),
            "train": int(schedule.train[i]), "burst": int(schedule.burst[i]),
            "pulse_in_burst": int(schedule.pulse_in_burst[i]),
            "scheduled_s": float(schedule.times_s[i]), "late_ms": late_ms, "timing": timing,
            "sham": self.protocol.sham,
        })
        if self._bar is not None:
            self._bar.update(1)

    # ------------------------------------------------------------------ progress
    def _open_bar(self) -> None:
        if not self.progress:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=len(self.schedule), unit="pulse", desc=self.protocol.name,
                         leave=True)
        self._refresh_bar()

    def _refresh_bar(self) -> None:
        if self._bar is None:
            return
        left = self.time_left_s
        self._bar.set_postfix_str(
            f"train {self.current_train + 1}/{self.schedule.n_trains}, "
            f"{int(left // 60):d}:{int(left % 60):02d} left", refresh=False,
        )

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
