"""Configuration of the closed loop: frozen dataclasses, checked when built.

:class:`ClosedLoopConfig` groups what the controller needs:

* :class:`TrackingConfig` — the mu rhythm to track (peak, scale, settling time);
* :class:`~labkit.closedloop.policy.TriggerConfig` — when to fire (condition, target,
  minimum interval, gates);
* :class:`CleaningConfig` — spatial filter and artifact blanking;
* :class:`RunConfig` — pulse budget, safety limits, delay compensation, thread options.

Each field is checked in its dataclass (errors name the field and the allowed range).
:meth:`ClosedLoopConfig.from_options` builds one from flat keyword names (``mu_hz=...,
condition=..., blank_post_ms=...``) — the names are unique across the groups — and
:meth:`ClosedLoopConfig.replace` returns a copy with some of them changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.checks import check_range
from labkit.closedloop._input import HJORTH_CENTER, HJORTH_NEIGHBOURS
from labkit.closedloop.policy import TriggerConfig
from labkit.errors import ConfigError
from labkit.safety import SafetyLimits

__all__ = ["CleaningConfig", "ClosedLoopConfig", "RunConfig", "TrackingConfig"]


@dataclass(frozen=True)
class TrackingConfig:
    """The rhythm to track.

    Attributes
    ----------
    mu_hz : float
        Individual mu peak, Hz (4–30; :func:`~labkit.closedloop.calibrate`).
    scale_uv : float | None
        Typical amplitude of the filtered signal (tracker noise model), µV; None: its SD
        over the settling period.
    settle_s : float
        Tracking without firing after start, s (filter convergence).
    """

    mu_hz: float
    scale_uv: float | None = None
    settle_s: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu_hz", check_range(self.mu_hz, "mu_hz", 4.0, 30.0, "Hz"))
        object.__setattr__(self, "scale_uv", check_range(self.scale_uv, "scale_uv", 1e-3, 1e4,
                                                         "µV", optional=True))
        object.__setattr__(self, "settle_s", check_range(self.settle_s, "settle_s", 0.2, 60.0,
                                                         "s"))


@dataclass(frozen=True)
class CleaningConfig:
    """Spatial filter and blanking of the controller's own pulse artifacts.

    Attributes
    ----------
    weights : tuple of float | None
        Spatial filter over the stream's channels; None: Hjorth ``center`` minus the mean
        of ``neighbours`` (C3 − ¼·(FC1+FC5+CP1+CP5)).
    center : str
        Hjorth centre channel label.
    neighbours : tuple of str
        Hjorth neighbour labels.
    blank_pre_ms, blank_post_ms : float
        Sample-and-hold blanking around each own pulse, ms (the artifact lasts 2–10 ms
        plus decay).
    detect_uv : float | None
        Also blank pulses nobody announced when any channel exceeds this, µV.
    """

    weights: tuple[float, ...] | None = None
    center: str = HJORTH_CENTER
    neighbours: tuple[str, ...] = HJORTH_NEIGHBOURS
    blank_pre_ms: float = 1.0
    blank_post_ms: float = 20.0
    detect_uv: float | None = None

    def __post_init__(self) -> None:
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64).ravel()
            if not np.all(np.isfinite(w)):
                raise ConfigError("must be finite numbers", field="weights")
            object.__setattr__(self, "weights", tuple(float(v) for v in w))
        object.__setattr__(self, "neighbours", tuple(str(n) for n in self.neighbours))
        object.__setattr__(self, "blank_pre_ms", check_range(self.blank_pre_ms, "blank_pre_ms",
                                                             0.0, 50.0, "ms"))
        object.__setattr__(self, "blank_post_ms", check_range(
            self.blank_post_ms, "blank_post_ms", 0.5, 200.0, "ms"))
        object.__setattr__(self, "detect_uv", check_range(self.detect_uv, "detect_uv", 1.0, 1e6,
                                                          "µV", optional=True))


#: Allowed decision → discharge delay, s (given as ``loop_delay_s`` or measured).
LOOP_DELAY_RANGE_S = (0.0, 0.1)


@dataclass(frozen=True)
class RunConfig:
    """Pulse budget, limits, delay compensation and how the loop thread runs.

    Attributes
    ----------
    max_pulses : int | None
        Stop firing after this many pulses. None: as many as one continuous train at
        ``min_interval_s`` may have, within what is left of the session's cap.
    limits : SafetyLimits | None
        Limits; default the stimulator's (its rig profile's).
    rmt_percent : float | None
        Resting motor threshold, % MSO; default the stimulator's (``rig.rmt_percent``).
    loop_delay_s : float | None
        Decision → discharge delay to compensate, s (0–0.1); None: the running median of
        the measured ``fire()`` → write delay. A delay measured from the TMS artifact
        (:func:`~labkit.closedloop.delay.estimate_discharge_delay`) belongs here.
    calibration_pulses : int
        Without ``loop_delay_s``: the first this many pulses (0–50; 0 = none) measure the
        real command → discharge delay from their TMS artifact in the EEG, and every
        later pulse aims, blanks and reports its phase at ``fire()`` call + that delay.
        They are fired by the same rule, count toward ``max_pulses`` and are marked
        ``calibration`` in the records.
    realtime : bool
        Ask for ``SCHED_FIFO`` for the loop thread (Linux, needs the privilege; the loop
        runs without it where it is not granted, and says so in
        :attr:`~labkit.closedloop.ClosedLoopController.scheduling`).
    cpu : int | None
        Pin the loop thread to this CPU where permitted: an index into the CPUs the
        process may use (``-1``, the default: the last one); None: any CPU.
    poll_s : float
        Sleep when the inlet had nothing new, s (0–0.01).
    disarm_on_stop : bool
        Disarm the stimulator at stop.
    """

    max_pulses: int | None = None
    limits: SafetyLimits | None = None
    rmt_percent: float | None = None
    loop_delay_s: float | None = None
    calibration_pulses: int = 0
    realtime: bool = True
    cpu: int | None = -1
    poll_s: float = 0.0005
    disarm_on_stop: bool = True

    def __post_init__(self) -> None:
        mp = self.max_pulses
        if mp is not None and (isinstance(mp, bool) or not isinstance(mp, int) or mp < 1):
            raise ConfigError(f"must be a positive int or None, got {mp!r}", field="max_pulses")
        if self.limits is not None and not isinstance(self.limits, SafetyLimits):
            raise ConfigError(f"must be a SafetyLimits, got {type(self.limits).__name__}",
                              field="limits")
        object.__setattr__(self, "rmt_percent", check_range(
            self.rmt_percent, "rmt_percent", 1.0, 100.0, "% MSO", optional=True))
        object.__setattr__(self, "loop_delay_s", check_range(
            self.loop_delay_s, "loop_delay_s", *LOOP_DELAY_RANGE_S, "s", optional=True))
        cp = self.calibration_pulses
        if isinstance(cp, bool) or not isinstance(cp, int) or not 0 <= cp <= 50:
            raise ConfigError(f"must be an int in 0–50, got {cp!r}", field="calibration_pulses")
        if mp is not None and cp >= mp:
            raise ConfigError(f"{cp} calibration pulses leave none of max_pulses = {mp} to aim",
                              field="calibration_pulses")
        object.__setattr__(self, "poll_s", check_range(self.poll_s, "poll_s", 0.0, 0.01, "s"))
        object.__setattr__(self, "realtime", bool(self.realtime))
        c = self.cpu
        if c is not None and (isinstance(c, bool) or not isinstance(c, int)):
            raise ConfigError(f"must be a CPU index (int, -1 = the last CPU) or None, got "
                              f"{c!r}", field="cpu")
        object.__setattr__(self, "disarm_on_stop", bool(self.disarm_on_stop))


_GROUPS = {"tracking": TrackingConfig, "trigger": TriggerConfig, "cleaning": CleaningConfig,
           "run": RunConfig}


def _option_groups() -> dict[str, str]:
    names = {}
    for group, cls in _GROUPS.items():
        for f in dataclasses.fields(cls):
            names[f.name] = group
    return names


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Everything :class:`~labkit.closedloop.ClosedLoopController` is told, in four groups.

    Attributes
    ----------
    tracking : TrackingConfig
    trigger : TriggerConfig
    cleaning : CleaningConfig
    run : RunConfig
    """

    tracking: TrackingConfig
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def from_options(cls, **options: Any) -> ClosedLoopConfig:
        """Build from flat option names (``mu_hz`` is required).

        Parameters
        ----------
        **options
            Fields of :class:`TrackingConfig`, :class:`TriggerConfig`,
            :class:`CleaningConfig` and :class:`RunConfig` by name (unique across them).

        Returns
        -------
        ClosedLoopConfig

        Raises
        ------
        ConfigError
            An unknown option (named, with the allowed ones) or an invalid value.
        """
        if "mu_hz" not in options:
            raise ConfigError("is required (the individual mu peak, Hz)", field="mu_hz")
        parts = _split(options)
        return cls(**{g: _GROUPS[g](**kw) for g, kw in parts.items()})

    def replace(self, **options: Any) -> ClosedLoopConfig:
        """A copy with the given flat options changed.

        Parameters
        ----------
        **options
            Field names of the four groups, as for :meth:`from_options`.

        Returns
        -------
        ClosedLoopConfig
        """
        parts = _split(options)
        return dataclasses.replace(self, **{
            g: dataclasses.replace(getattr(self, g), **kw) for g, kw in parts.items()})


def _split(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = _option_groups()
    parts: dict[str, dict[str, Any]] = {}
    for name, value in options.items():
        if name not in groups:
            raise ConfigError(f"unknown closed-loop option {name!r}; allowed: "
                              f"{sorted(groups)}", field=name)
        parts.setdefault(groups[name], {})[name] = value
    return parts
