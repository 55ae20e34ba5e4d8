"""Pure trigger policies of the closed loop: when to fire, given what the tracker says.

A policy sees only what it is handed — the time now, the time stamp of the newest EEG
sample, the tracker's estimate (phase, frequency, mu amplitude) and the loop delay to
compensate — and answers with a :class:`Decision`. It opens no stream, reads no clock
and fires nothing; :class:`~labkit.closedloop.ClosedLoopController` does the I/O around
it. So a policy can be tested on synthetic inputs, replayed offline, or reused by
another loop.

Conditions (:attr:`TriggerConfig.condition`):

``"phase"``
    Fire so that the discharge lands on ``target_phase_rad``: the phase is extrapolated
    from the newest sample at the tracked frequency to the moment a pulse issued now
    would discharge (now + loop delay); the policy waits for the next time that phase is
    the target (never fires late on a target already passed) and leaves a final wait of
    at most ``horizon_s`` to the caller.
``"random"``
    The control condition: fire at seeded random times, each interval drawn from
    ``random_intervals_s`` (e.g. a phase run's intervals) or ``min_interval_s + U(0,
    1/mu_hz)``; the same minimum interval, amplitude gate and staleness rule.
``"power"``
    Fire on the mu-power state: as soon as the tracked mu amplitude is at or above
    ``power_threshold_uv`` (``power_state="high"``) or below it (``"low"``), at any
    phase — the amplitude-state conditions of closed-loop studies that compare high- and
    low-mu states.

Every condition fires only when the newest sample is at most ``max_sample_age_s`` old,
at least ``min_interval_s`` after the previous pulse, and while the amplitude is at or
above ``amplitude_gate_uv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from labkit.checks import check_range
from labkit.errors import ConfigError

__all__ = [
    "CONDITIONS",
    "Decision",
    "Estimate",
    "PhaseEstimate",
    "TriggerConfig",
    "TriggerPolicy",
]

CONDITIONS = ("phase", "random", "power")
POWER_STATES = ("high", "low")
TWO_PI = 2.0 * math.pi


class PhaseEstimate(Protocol):
    """What a policy reads from the tracker (:class:`~labkit.phase.PhaseTracker` fits)."""

    @property
    def phase(self) -> float: ...  # radians at the newest sample, cosine convention

    @property
    def freq_hz(self) -> float: ...

    @property
    def amplitude(self) -> float: ...  # µV


@dataclass(frozen=True)
class Estimate:
    """A fixed tracker read-out (for tests and offline replay).

    Attributes
    ----------
    phase : float
        Phase at the newest sample, radians (cosine convention).
    freq_hz : float
        Mu frequency, Hz.
    amplitude : float
        Mu amplitude, µV.
    """

    phase: float
    freq_hz: float
    amplitude: float


@dataclass(frozen=True)
class Decision:
    """A policy's answer for one turn of the loop.

    Attributes
    ----------
    fire_at_s : float | None
        When to call ``fire()`` (same clock as ``now_s``; at most ``horizon_s`` ahead),
        or None for no pulse this turn.
    reason : str
        ``"fire"``, or why not: ``"stale"`` (newest sample too old), ``"interval"``
        (within the minimum interval), ``"gate"`` (mu amplitude below the gate),
        ``"wait"`` (the condition is not met yet).
    """

    fire_at_s: float | None
    reason: str

    @property
    def fire(self) -> bool:
        """True when the decision is to fire."""
        return self.fire_at_s is not None


@dataclass(frozen=True)
class TriggerConfig:
    """When to fire (checked on construction; errors name the field and its range).

    Attributes
    ----------
    condition : {"phase", "random", "power"}
        See the module docstring.
    target_phase_rad : float
        ``"phase"``: target, cosine convention (``pi`` = trough, 0 = peak), wrapped to
        ``(-pi, pi]``.
    min_interval_s : float
        Shortest time between pulses, s (0.1–60).
    amplitude_gate_uv : float
        Fire only while the tracked mu amplitude is at least this, µV (0 = no gate).
    horizon_s : float
        Longest final wait before a phase-locked pulse, s (a bit over the chunk period).
    max_sample_age_s : float
        No pulse when the newest sample is older than this (stalled stream), s.
    random_intervals_s : tuple of float | None
        ``"random"``: intervals drawn from these instead of ``min_interval_s + U(0,
        1/mu_hz)``; each at least ``min_interval_s``.
    seed : int
        Seed of the random condition.
    power_threshold_uv : float | None
        ``"power"``: mu amplitude threshold, µV (required there; e.g. a quartile from
        :func:`~labkit.closedloop.calibrate`).
    power_state : {"high", "low"}
        ``"power"``: fire at or above the threshold, or below it.
    """

    condition: str = "phase"
    target_phase_rad: float = math.pi
    min_interval_s: float = 2.0
    amplitude_gate_uv: float = 0.0
    horizon_s: float = 0.003
    max_sample_age_s: float = 0.05
    random_intervals_s: tuple[float, ...] | None = None
    seed: int = 0
    power_threshold_uv: float | None = None
    power_state: str = "high"

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ConfigError(f"must be one of {list(CONDITIONS)}, got {self.condition!r}",
                              field="condition")
        target = check_range(self.target_phase_rad, "target_phase_rad", -TWO_PI, TWO_PI, "rad")
        wrapped = float(math.remainder(target, TWO_PI))
        object.__setattr__(self, "target_phase_rad", math.pi if wrapped <= -math.pi else wrapped)
        for name, low, high, unit in (("min_interval_s", 0.1, 60.0, "s"),
                                      ("amplitude_gate_uv", 0.0, 1e4, "µV"),
                                      ("horizon_s", 0.0005, 0.02, "s"),
                                      ("max_sample_age_s", 0.001, 1.0, "s")):
            object.__setattr__(self, name, check_range(getattr(self, name), name, low, high,
                                                       unit))
        if self.random_intervals_s is not None:
            iv = np.asarray(self.random_intervals_s, dtype=float).ravel()
            if iv.size == 0 or not np.all(np.isfinite(iv)) or iv.min() < self.min_interval_s:
                raise ConfigError(
                    f"must be a non-empty list of intervals >= min_interval_s = "
                    f"{self.min_interval_s:g} s", field="random_intervals_s")
            object.__setattr__(self, "random_intervals_s", tuple(float(v) for v in iv))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ConfigError(f"must be an integer, got {self.seed!r}", field="seed")
        if self.power_state not in POWER_STATES:
            raise ConfigError(f"must be one of {list(POWER_STATES)}, got "
                              f"{self.power_state!r}", field="power_state")
        threshold = check_range(self.power_threshold_uv, "power_threshold_uv", 0.0, 1e4, "µV",
                                optional=True)
        if self.condition == "power" and threshold is None:
            raise ConfigError("the power condition needs a threshold (µV), e.g. "
                              "calibration.amplitude_median_uv", field="power_threshold_uv")
        object.__setattr__(self, "power_threshold_uv", threshold)


#: The answers without a pulse, built once (the loop asks every millisecond).
_NO_PULSE = {reason: Decision(None, reason) for reason in ("stale", "interval", "gate", "wait")}


class TriggerPolicy:
    """Decides, turn by turn, whether and when to fire (pure: no I/O, no clock).

    Parameters
    ----------
    config : TriggerConfig
        The condition and its limits.
    mu_hz : float
        Individual mu peak, Hz (the default random intervals span one mu period).

    Notes
    -----
    Life cycle: :meth:`begin` once tracking has settled, then :meth:`decide` every turn
    and :meth:`fired` with the time stamp of every pulse actually given. The only state
    is the last pulse's time and, for ``"random"``, the next due time and the seeded
    generator, so two policies fed the same inputs decide the same.
    """

    def __init__(self, config: TriggerConfig, mu_hz: float):
        self.config = config
        self.mu_hz = check_range(mu_hz, "mu_hz", 4.0, 30.0, "Hz")
        self.last_fire_s = -math.inf
        self.random_due_s = math.nan
        self._rng = np.random.default_rng([config.seed, 11])

    @property
    def target_phase_rad(self) -> float:
        """The target phase for ``"phase"``, else NaN (as recorded per trigger)."""
        return self.config.target_phase_rad if self.config.condition == "phase" else math.nan

    def begin(self, now_s: float) -> None:
        """Tracking has settled at ``now_s``: the random condition's first pulse is due
        one drawn interval minus the minimum interval from now."""
        self.random_due_s = now_s + self._draw_interval() - self.config.min_interval_s

    def fired(self, fire_time_s: float) -> None:
        """A pulse was given at ``fire_time_s`` (the driver's time stamp)."""
        self.last_fire_s = float(fire_time_s)
        if self.config.condition == "random":
            self.random_due_s = self.last_fire_s + self._draw_interval()

    def decide(self, now_s: float, sample_time_s: float, estimate: PhaseEstimate,
               loop_delay_s: float = 0.0) -> Decision:
        """Whether and when to fire.

        Parameters
        ----------
        now_s : float
            The time now (the clock of the sample time stamps).
        sample_time_s : float
            Time stamp of the newest sample the estimate includes.
        estimate : PhaseEstimate
            The tracker's phase (at ``sample_time_s``), frequency and amplitude; read
            lazily (the amplitude only outside the minimum interval).
        loop_delay_s : float
            Decision → pulse delay to compensate, s.

        Returns
        -------
        Decision
        """
        cfg = self.config
        if now_s - sample_time_s > cfg.max_sample_age_s:
            return _NO_PULSE["stale"]
        earliest = self.last_fire_s + cfg.min_interval_s
        if now_s < earliest - cfg.horizon_s:
            return _NO_PULSE["interval"]
        amplitude = estimate.amplitude
        if amplitude < cfg.amplitude_gate_uv:
            return _NO_PULSE["gate"]
        fire_at = None
        if cfg.condition == "phase":
            # phase the discharge would have if fired now, extrapolated from the newest
            # sample; wait until it is the target (the next time it is, never a late one)
            omega = TWO_PI * estimate.freq_hz
            at_pulse = estimate.phase + omega * (now_s + loop_delay_s - sample_time_s)
            wait = ((cfg.target_phase_rad - at_pulse) % TWO_PI) / omega
            if wait <= cfg.horizon_s:
                fire_at = now_s + wait
        elif cfg.condition == "random":
            if now_s >= self.random_due_s:
                fire_at = now_s
        elif (amplitude >= cfg.power_threshold_uv) == (cfg.power_state == "high"):
            fire_at = now_s
        if fire_at is None:
            return _NO_PULSE["wait"]
        # the call comes no earlier than the minimum interval after the previous pulse's
        # time stamp (the write follows the call)
        if fire_at < earliest:
            return _NO_PULSE["interval"]
        return Decision(fire_at, "fire")

    def _draw_interval(self) -> float:
        cfg = self.config
        if cfg.random_intervals_s is not None:
            return float(self._rng.choice(np.asarray(cfg.random_intervals_s)))
        return cfg.min_interval_s + float(self._rng.uniform(0.0, 1.0 / self.mu_hz))

