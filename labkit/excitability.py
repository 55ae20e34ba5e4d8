"""Delivering paired-pulse blocks and silent-period pulses on a rig.

The plans and analyses are pure (:mod:`labkit.pairedpulse`, :mod:`labkit.silent_period`);
this module fires them and measures the EMG.

Paired pulses use a BiStim² (output A = conditioning, output B = test, ``set_ipi``); the
test MEP is measured in the profile's MEP window after the *test* pulse (the pulse
marker's time plus the interval). The conditioning pulse's artifact lies before that
window for every interval the protocols use. The rig's own single-pulse path
(``rig.pulse``) has no paired-pulse form yet, so this module enforces the same spacing
(``mep.min_interval_s``) and the profile's intensity ceiling itself.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from labkit.acquisition import MEPMeter
from labkit.clock import local_clock
from labkit.errors import ConfigError
from labkit.pairedpulse import PairedPulseProtocol, check_ipi
from labkit.silent_period import SilentPeriod, measure_silent_period

__all__ = ["fire_paired", "run_paired_pulse", "run_silent_periods"]


def _wait_interval(rig: Any, last_s: float | None) -> None:
    if last_s is None:
        return
    wait_s = last_s + rig.profile.mep.min_interval_s - local_clock()
    if wait_s > 0:
        time.sleep(wait_s)


def fire_paired(rig: Any, conditioning_percent: int, test_percent: int, ipi_ms: float,
                unit: str = "magstim-bistim") -> tuple[Any, float]:
    """Fire one paired pulse (A = conditioning, B = test) on a BiStim rig.

    Returns
    -------
    (PulseEvent, float)
        The pulse event (time of output A) and the LSL time of the test pulse, s.

    Raises
    ------
    ConfigError
        When the rig has no paired-pulse stimulator, an intensity exceeds the profile's
        ceiling, or the interval is outside the unit's range (named).
    """
    stim = rig.stimulator
    if not hasattr(stim, "set_ipi"):
        raise ConfigError(f"{type(stim).__name__} cannot deliver paired pulses (needs a "
                          "BiStim)", field="stimulator.model")
    ceiling = rig.profile.limits.max_intensity_percent
    for name, value in (("conditioning_percent", conditioning_percent),
                        ("test_percent", test_percent)):
        if value > ceiling:
            raise ConfigError(f"{name} = {value} exceeds the profile's "
                              f"max_intensity_percent = {ceiling}", field=name)
    ipi = check_ipi(ipi_ms, unit)
    fractional = not float(ipi).is_integer()
    switch = (fractional and not stim.high_resolution) or (ipi > 99.9 and stim.high_resolution)
    if switch and stim.status().armed:
        stim.disarm()  # the unit refuses a change of IPI resolution while armed
    stim.set_intensity(int(conditioning_percent), int(test_percent))
    stim.set_ipi(ipi if fractional else int(ipi))
    if not stim.status().armed:
        stim.arm()
    wait_ready = getattr(stim, "wait_ready", None)
    if wait_ready is not None:
        wait_ready()
    pulse = stim.fire()
    return pulse, pulse.time_s + ipi / 1000.0


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
    meter = rig.mep_meter
    rows: list[dict[str, Any]] = []
    last_s = None
    default_ipi = next(c.ipi_ms for c in protocol.conditions if c.paired)
    while not protocol.done:
        c = protocol.next_condition()
        _wait_interval(rig, last_s)
        cs = c.conditioning_percent if c.paired else 0
        ipi = c.ipi_ms if c.paired else default_ipi
        pulse, test_s = fire_paired(rig, cs, c.test_percent, ipi, protocol.unit)
        last_s = pulse.time_s
        trial = meter.measure(dataclasses.replace(pulse, time_s=test_s))
        protocol.record(trial.ptp_uv)
        rows.append({"condition": c.name, "conditioning_percent": cs,
                     "test_percent": c.test_percent, "ipi_ms": ipi,
                     "pulse_time_s": pulse.time_s, "test_time_s": test_s,
                     "mep_ptp_uv": float(trial.ptp_uv)})
    return rows


def run_silent_periods(rig: Any, intensity_percent: int, n: int, *,
                       epoch_ms: tuple[float, float] = (-200.0, 400.0),
                       **rule: Any) -> list[tuple[Any, SilentPeriod | None]]:
    """Fire ``n`` single pulses during a contraction and measure each silent period.

    The subject must hold the contraction (a real subject is instructed; the simulated
    one has ``contraction_percent_mvc`` set). On a BiStim, output B is set to 0 first so
    that each pulse is a single pulse from output A. Keyword arguments go to
    :func:`labkit.silent_period.measure_silent_period`.

    Returns
    -------
    list of (MEPTrial, SilentPeriod | None)
        The long epoch of each pulse and its silent period.
    """
    mep = rig.profile.mep
    if hasattr(rig.stimulator, "set_ipi"):
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
