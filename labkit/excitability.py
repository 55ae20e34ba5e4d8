"""Delivering paired-pulse blocks and silent-period pulses on a rig.

The plans and analyses are pure (:mod:`labkit.pairedpulse`, :mod:`labkit.silent_period`);
this module fires them and measures the EMG.

Paired pulses use a BiStim² (output A = conditioning, output B = test, ``set_ipi``); the
test MEP is measured in the profile's MEP window after the *test* pulse (the pulse
marker's time plus the interval). The conditioning pulse's artifact lies before that
window for every interval the protocols use. Every pulse goes through the rig
(:meth:`labkit.rig.Rig.pulse`, :meth:`labkit.rig.Rig.paired_pulse`); this module checks
the interval against the unit and the intensities against the profile's ceiling first.
"""

from __future__ import annotations

from typing import Any

from labkit.acquisition import MEPMeter
from labkit.errors import ConfigError
from labkit.pairedpulse import PairedPulseProtocol, check_ipi
from labkit.silent_period import SilentPeriod, measure_silent_period

__all__ = ["fire_paired", "run_paired_pulse", "run_silent_periods"]


def fire_paired(rig: Any, conditioning_percent: int, test_percent: int, ipi_ms: float,
                unit: str = "magstim-bistim") -> Any:
    """Fire one paired pulse through the rig (A = conditioning, B = test).

    Returns
    -------
    MEPTrial
        The test MEP; its ``pulse`` is the test pulse (marker time + interval).

    Raises
    ------
    ConfigError
        When an intensity exceeds the profile's ceiling or the interval is outside the
        unit's range (named); the rig refuses a stimulator without paired pulses.
    """
    ceiling = rig.profile.limits.max_intensity_percent
    for name, value in (("conditioning_percent", conditioning_percent),
                        ("test_percent", test_percent)):
        if value > ceiling:
            raise ConfigError(f"{name} = {value} exceeds the profile's "
                              f"max_intensity_percent = {ceiling}", field=name)
    return rig.paired_pulse(int(conditioning_percent), int(test_percent),
                            check_ipi(ipi_ms, unit))


def run_paired_pulse(rig: Any, protocol: PairedPulseProtocol) -> list[dict[str, Any]]:
    """Deliver a randomised paired-pulse block; record each test MEP into ``protocol``.

    The test-alone condition fires output B alone (output A at 0 %MSO) with the same
    interval, so every MEP is measured in the same window after the test pulse.

    Returns
    -------
    list of dict
        One row per trial: condition, intensities, interval, pulse and test times,
        peak-to-peak test MEP (µV).
    """
    rows: list[dict[str, Any]] = []
    default_ipi = next(c.ipi_ms for c in protocol.conditions if c.paired)
    while not protocol.done:
        c = protocol.next_condition()
        cs = c.conditioning_percent if c.paired else 0
        ipi = c.ipi_ms if c.paired else default_ipi
        trial = fire_paired(rig, cs, c.test_percent, ipi, protocol.unit)
        protocol.record(trial.amplitude_uv)
        rows.append({"condition": c.name, "conditioning_percent": cs,
                     "test_percent": c.test_percent, "ipi_ms": ipi,
                     "test_time_s": trial.pulse.time_s, "mep_ptp_uv": float(trial.amplitude_uv)})
    return rows


def run_silent_periods(rig: Any, intensity_percent: int, n: int, *,
                       epoch_ms: tuple[float, float] = (-200.0, 400.0),
                       **rule: Any) -> list[tuple[Any, SilentPeriod | None]]:
    """Fire ``n`` single pulses during a contraction and measure each silent period.

    The subject must hold the contraction (a real subject is instructed; the simulated
    one has ``contraction_percent_mvc`` set). On a BiStim, output B is set to 0 first so
    that each pulse is a single pulse from output A. ``**rule`` goes to
    :func:`labkit.silent_period.measure_silent_period` (its onset/offset rule options).

    Returns
    -------
    list of (MEPTrial, SilentPeriod | None)
        The long epoch of each pulse and its silent period.
    """
    mep = rig.profile.mep
    if rig.stimulator.abilities.separate_outputs:
        # a BiStim fires output B too whenever it is set: silence it for single pulses
        rig.stimulator.set_intensity(int(intensity_percent), 0)
    meter = MEPMeter(rig.emg, mep.channel, window_ms=mep.window_ms, rms_limit_uv=1e6,
                     tmin_ms=epoch_ms[0], tmax_ms=epoch_ms[1])
    out = []
    for _ in range(int(n)):
        trial = rig.pulse(intensity_percent)
        long = meter.measure(trial.pulse)
        sp = measure_silent_period(long.times_ms, long.waveform_uv,
                                   mep_window_ms=mep.window_ms, **rule)
        out.append((long, sp))
    return out
