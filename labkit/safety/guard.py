"""The firing guard: every pulse of one stimulator is checked here before it is sent.

A driver owns one :class:`FiringGuard` and asks it before each pulse or train; the guard
refuses with a :class:`~labkit.errors.SafetyError` that names the rule, the number and
where the limit comes from, and nothing is sent. Protocol runners and the closed loop
take a :class:`Permit` for the pulses a passing safety verdict allowed; every other pulse
is a single pulse and keeps the single-pulse interval. The guard counts every delivered
pulse (it listens to the driver's pulse events), so the per-session cap applies to the
sum of protocol runs, device trains, threshold hunts, manual pulses and the closed loop.

The decision functions here take the time as an argument; only the driver that calls
them reads the clock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import SafetyError
from labkit.safety.limits import DEFAULT_LIMITS, ITI_CITATION, SafetyLimits

__all__ = ["FiringGuard", "Permit", "RollingTrainCheck"]

class RollingTrainCheck:
    """Rolling-window table check for pulses whose timing is not known in advance.

    Pulses closer together than ``limits.min_inter_train_interval_s`` form one continuous
    train (whoever fired them); before a pulse, the train it would extend is looked up in
    the table at its mean rate (first to this pulse) and the subject's intensity in % RMT,
    and refused when it would last longer than the cell allows (duration in the table's
    convention: pulses x period).

    Parameters
    ----------
    limits : SafetyLimits
        The table and the inter-train interval.
    """

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self._times_s: deque[float] = deque()

    def check(self, now_s: float, intensity_percent: float, rmt_percent: float,
              limits: SafetyLimits | None = None) -> None:
        """Raise :class:`SafetyError` when a pulse now would break the table.

        ``limits`` (default: the ones given at construction) may be stricter for one run.
        """
        limits = limits or self.limits
        times = list(self._times_s)
        if times and now_s - times[-1] >= limits.min_inter_train_interval_s:
            times = []
        times.append(now_s)
        if len(times) < 2:
            return
        span_s = times[-1] - times[0]
        rate_hz = (len(times) - 1) / span_s if span_s > 0 else float("inf")
        rel_rmt = 100.0 * intensity_percent / rmt_percent
        table = limits.table
        cell = table.cell(rate_hz, rel_rmt)
        if cell is None:
            raise SafetyError(
                f"rolling check: {len(times)} pulses at {rate_hz:.2f} Hz, {rel_rmt:.0f} % RMT "
                f"lie outside the {table.short_name}; refused")
        train_s = len(times) / rate_hz
        if train_s > cell.max_train_s + 1e-9:
            raise SafetyError(
                f"rolling check: a continuous train of {len(times)} pulses at "
                f"{rate_hz:.2f} Hz would last {train_s:.1f} s > {cell.max_train_s:g} s "
                f"allowed ({cell.describe(table.short_name)}; pulses less than "
                f"{limits.min_inter_train_interval_s:g} s apart count as one train, "
                f"{ITI_CITATION}); refused")

    def record(self, time_s: float) -> None:
        """Add a delivered pulse."""
        if self._times_s and time_s - self._times_s[-1] >= self.limits.min_inter_train_interval_s:
            self._times_s.clear()  # a long enough pause ends the continuous train
        self._times_s.append(time_s)


@dataclass
class Permit:
    """Pulses a passing safety verdict allowed to one owner (a runner, the closed loop).

    Attributes
    ----------
    label : str
        What the pulses are for (``"protocol m1_10hz_pain_1000"``, ``"closed loop"``).
    pulses : int
        How many pulses the verdict allowed.
    intensity_percent : float
        The highest intensity the verdict was given for, % MSO (above it: refused).
    logs_pulses : bool
        The owner writes its pulses to the session log itself.
    rolling : bool
        Check each pulse against the table as it comes (pulses not scheduled in advance:
        the closed loop). Needs the guard's RMT.
    limits : SafetyLimits | None
        Limits of the rolling check (default: the guard's); may only be stricter.
    used : int
        Pulses delivered under this permit.
    """

    label: str
    pulses: int
    intensity_percent: float
    logs_pulses: bool = True
    rolling: bool = False
    limits: SafetyLimits | None = None
    used: int = 0
    owner_thread: int = field(default_factory=threading.get_ident)
    _guard: FiringGuard | None = field(default=None, repr=False)

    def release(self) -> None:
        """End the permit (pulses are single pulses again)."""
        if self._guard is not None:
            self._guard._release(self)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FiringGuard:
    """The limits every pulse of one stimulator obeys, and the session's pulse count.

    Parameters
    ----------
    limits : SafetyLimits
        Ceilings, per-session cap, table (published by default).
    min_single_interval_s : float
        Shortest time between two single pulses (device profile ``[limits]``).
    rmt_percent : float | None
        The subject's resting motor threshold, % MSO, once known (enables the % RMT
        ceiling).
    pulses_delivered : int
        Pulses already delivered in this session (e.g. rebuilt from its log).
    source : str
        Where ``min_single_interval_s`` comes from, for refusals.
    """

    def __init__(
        self,
        limits: SafetyLimits = DEFAULT_LIMITS,
        *,
        min_single_interval_s: float = 0.0,
        rmt_percent: float | None = None,
        pulses_delivered: int = 0,
        source: str | None = None,
    ) -> None:
        self.limits = limits
        self.min_single_interval_s = float(min_single_interval_s)
        self.source = source or limits.source
        self.rmt_percent = rmt_percent
        self.count = int(pulses_delivered)
        self.last_pulse_s: float | None = None
        #: Called with each delivered pulse that no permit owner logs (the rig's session).
        self.on_unlogged_pulse: Callable[[Any], None] | None = None
        self._permit: Permit | None = None
        self._lock = threading.RLock()
        #: Every delivered pulse of the current continuous train (rolling checks).
        self.train = RollingTrainCheck(limits)

    # ------------------------------------------------------------------ state
    @property
    def permit_active(self) -> Permit | None:
        """The permit in force, if any."""
        return self._permit

    @property
    def pulses_left(self) -> int:
        """Pulses this session may still deliver."""
        return max(0, self.limits.max_pulses_per_session - self.count)

    def single_pulse_wait_s(self, now_s: float) -> float:
        """Seconds until a single pulse is allowed by the minimum interval (0: now)."""
        if self.last_pulse_s is None:
            return 0.0
        return max(0.0, self.last_pulse_s + self.min_single_interval_s - now_s)

    def ceiling_percent(self) -> float:
        """The intensity ceiling in force, % MSO (profile, and % RMT once RMT is known)."""
        ceiling = float(self.limits.max_intensity_percent)
        if self.rmt_percent is not None:
            ceiling = min(ceiling, self.limits.max_intensity_rmt_percent * self.rmt_percent
                          / 100.0)
        return ceiling

    # ------------------------------------------------------------------ checks
    def check_intensity(self, percent: float) -> None:
        """Refuse an intensity above the ceilings or below 1 % MSO."""
        if percent > self.limits.max_intensity_percent + 1e-9:
            raise SafetyError(
                f"intensity {percent:g} % MSO > {self.limits.max_intensity_percent:g} % MSO "
                f"ceiling (limits.max_intensity_percent, {self.limits.source}); refused")
        if self.rmt_percent is not None:
            rel = 100.0 * percent / self.rmt_percent
            if rel > self.limits.max_intensity_rmt_percent + 1e-9:
                raise SafetyError(
                    f"intensity {percent:g} % MSO = {rel:.0f} % RMT > "
                    f"{self.limits.max_intensity_rmt_percent:g} % RMT ceiling "
                    f"(limits.max_intensity_rmt_percent, {self.limits.source}; RMT "
                    f"{self.rmt_percent:g} % MSO); refused")

    def before_pulses(self, n: int, intensity_percent: float, now_s: float) -> None:
        """Refuse ``n`` pulses at ``intensity_percent`` starting at ``now_s``, or pass.

        Called by the driver, with its port lock held, just before the trigger is sent.
        """
        with self._lock:
            self.check_intensity(intensity_percent)
            cap = self.limits.max_pulses_per_session
            if self.count + n > cap:
                raise SafetyError(
                    f"per-session cap: {self.count} pulses delivered + {n} > {cap} "
                    f"(limits.max_pulses_per_session, {self.limits.source}); refused")
            permit = self._permit
            if permit is not None and permit.owner_thread == threading.get_ident():
                if permit.used + n > permit.pulses:
                    raise SafetyError(
                        f"{permit.label}: {permit.used} + {n} pulses > the {permit.pulses} "
                        "its safety verdict allowed; refused")
                if intensity_percent > permit.intensity_percent + 1e-9:
                    raise SafetyError(
                        f"{permit.label}: {intensity_percent:g} % MSO > the "
                        f"{permit.intensity_percent:g} % MSO its safety verdict checked; "
                        "refused")
                if permit.rolling:
                    if self.rmt_percent is None:
                        raise SafetyError(f"{permit.label}: the rolling table check needs "
                                          "the subject's RMT (hunt or enter the RMT "
                                          "first); refused")
                    self.train.check(now_s, intensity_percent, self.rmt_percent,
                                     permit.limits)
                return
            if permit is not None:
                raise SafetyError(f"{permit.label} is running: other pulses are refused "
                                  "until it ends")
            if n != 1:
                raise SafetyError(f"{n} pulses at once need a protocol's safety verdict "
                                  "(a runner); refused")
            if self.last_pulse_s is not None:
                since = now_s - self.last_pulse_s
                if since < self.min_single_interval_s - 1e-9:
                    raise SafetyError(
                        f"single pulses {since * 1000:.0f} ms apart < "
                        f"{self.min_single_interval_s:g} s minimum "
                        f"(limits.min_single_pulse_interval_s, {self.source}); refused")

    def delivered(self, event: Any) -> None:
        """Count one delivered pulse (the driver's pulse listener)."""
        with self._lock:
            self.count += 1
            self.last_pulse_s = float(event.time_s)
            self.train.record(float(event.time_s))
            permit = self._permit
            logged = False
            if permit is not None:
                permit.used += 1
                logged = permit.logs_pulses
            sink = self.on_unlogged_pulse
        if sink is not None and not logged:
            sink(event)

    # ------------------------------------------------------------------ permits
    def permit(
        self,
        label: str,
        pulses: int,
        intensity_percent: float,
        *,
        logs_pulses: bool = True,
        rolling: bool = False,
        limits: SafetyLimits | None = None,
    ) -> Permit:
        """Allow ``pulses`` pulses at ``intensity_percent`` to the calling thread.

        Only for pulses a passing safety verdict covers. Refused when another permit is
        in force or when they would exceed the session cap.
        """
        with self._lock:
            if self._permit is not None:
                raise SafetyError(f"{self._permit.label} is running; {label} is refused "
                                  "until it ends")
            cap = self.limits.max_pulses_per_session
            if self.count + pulses > cap:
                raise SafetyError(
                    f"per-session cap: {self.count} pulses delivered + {pulses} for {label} "
                    f"> {cap} (limits.max_pulses_per_session, {self.limits.source}); "
                    "refused")
            self.check_intensity(intensity_percent)
            if rolling and self.rmt_percent is None:
                raise SafetyError(f"{label}: the rolling table check needs the subject's "
                                  "RMT (hunt or enter the RMT first); refused")
            self._permit = Permit(label, int(pulses), float(intensity_percent),
                                  logs_pulses=logs_pulses, rolling=rolling, limits=limits,
                                  _guard=self)
            return self._permit

    def adopt(self, permit: Permit) -> None:
        """Hand the permit to the calling thread (a runner's worker thread)."""
        with self._lock:
            if permit is self._permit:
                permit.owner_thread = threading.get_ident()

    def _release(self, permit: Permit) -> None:
        with self._lock:
            if self._permit is permit:
                self._permit = None
