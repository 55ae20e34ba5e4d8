"""Command → discharge delay measured from the TMS artifact (known injected delays)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.closedloop import (
    DelayCalibration,
    Estimate,
    TriggerConfig,
    TriggerPolicy,
    artifact_onset,
    estimate_discharge_delay,
)
from labkit.errors import ConfigError
from labkit.sim.eeg import MuEEGSource

T0 = 1234.5  # LSL time of sample 0


def _recording(fs, delay_s, n_pulses=12, seed=0, place=round, jitter_s=0.0004):
    """EEG (5 channels, 20 s) with an artifact ``delay_s`` (± jitter) after each command;
    each artifact starts at the sample ``place((discharge - T0) * fs)``."""
    rng = np.random.default_rng(seed)
    src = MuEEGSource(seed, snr_db=0.0, fs=fs)
    commands = T0 + 2.0 + np.arange(n_pulses) * 1.3 + rng.uniform(0, 0.1, n_pulses)
    discharges = commands + delay_s + rng.uniform(-jitter_s, jitter_s, n_pulses)
    for d in discharges:
        src.add_pulse(int(place((d - T0) * fs)), float(rng.uniform(0.3, 1.0)))
    data = src.generate(int(20 * fs))
    times = T0 + np.arange(data.shape[1]) / fs
    return commands, discharges, data, times


@pytest.mark.parametrize("delay_ms", [3.1, 7.4, 18.0])
def test_recovers_an_injected_delay_at_5khz(delay_ms):
    commands, discharges, data, times = _recording(5000.0, delay_ms / 1000)
    est = estimate_discharge_delay(commands, data, times)
    assert est.n_found == len(commands)
    assert abs(est.delay_s - delay_ms / 1000) < 0.0005
    truth = np.asarray(discharges) - commands
    assert np.max(np.abs(np.asarray(est.per_pulse_s) - truth)) < 0.0005


def test_recovers_an_injected_delay_at_1khz_from_a_single_channel():
    # an amplifier shows a discharge first in the sample after it (ceil), 1 ms apart
    commands, _, data, times = _recording(1000.0, 0.0063, n_pulses=15, seed=3,
                                          place=math.ceil, jitter_s=0.0005)
    est = estimate_discharge_delay(commands, data[0], times)
    assert abs(est.delay_s - 0.0063) < 0.0005


def test_no_artifact_gives_nan_and_never_a_spurious_delay():
    src = MuEEGSource(1, snr_db=0.0)
    data = src.generate(int(5 * src.fs))
    times = T0 + np.arange(data.shape[1]) / src.fs
    est = estimate_discharge_delay([T0 + 1.0, T0 + 2.5], data, times)
    assert est.n_found == 0 and math.isnan(est.delay_s)
    assert math.isnan(artifact_onset(data, times, T0 - 5.0))  # no baseline before it


def test_argument_errors_name_the_field():
    with pytest.raises(ConfigError) as err:
        estimate_discharge_delay([1.0], np.zeros(10), np.arange(10.0), max_delay_s=2.0)
    assert err.value.field == "max_delay_s"
    with pytest.raises(ConfigError) as err:
        artifact_onset(np.zeros(10), np.arange(9.0), 1.0)
    assert err.value.field == "signal"


def test_compensating_the_measured_delay_puts_the_discharge_on_target():
    """The policy aims the discharge (call + measured delay) at the target: with the
    delay measured from the artifact, the discharge phase error is within the estimate's
    error (7 ms at 10 Hz would otherwise be 25 degrees)."""
    commands, _, data, times = _recording(5000.0, 0.007)
    measured = estimate_discharge_delay(commands, data, times).delay_s
    f = 10.0
    policy = TriggerPolicy(TriggerConfig(target_phase_rad=math.pi, min_interval_s=0.3), f)
    policy.begin(0.0)
    n_fired = 0
    for k in range(2000):
        now = 5.0 + k * 0.001
        est = Estimate(math.remainder(2 * math.pi * f * (now - 0.004), 2 * math.pi), f, 5.0)
        d = policy.decide(now, now - 0.004, est, measured)
        if d.fire:
            policy.fired(d.fire_at_s)
            discharge = d.fire_at_s + 0.007  # the real delay
            err = math.remainder(2 * math.pi * f * discharge - math.pi, 2 * math.pi)
            assert abs(math.degrees(err)) < 360 * f * 0.0005  # 0.5 ms at 10 Hz = 1.8 deg
            n_fired += 1
    assert n_fired >= 5


def _stream_through(calib, commands, data, times, chunk=25):
    """Feed a recording chunk by chunk, announcing each command when the stream has
    passed it (as the loop does: it fires on the newest sample)."""
    pending = list(commands)
    for a in range(0, data.shape[1], chunk):
        calib.feed(data[:, a:a + chunk], times[a:a + chunk])
        while pending and calib.pending and pending[0] <= times[min(a + chunk, len(times)) - 1]:
            calib.add_command(pending.pop(0))
        if calib.complete:
            return calib.estimate()
    return None


def test_streamed_calibration_recovers_the_injected_delay():
    commands, _, data, times = _recording(5000.0, 0.0074)
    calib = DelayCalibration(5)
    est = _stream_through(calib, commands, data, times)
    assert est is not None and est.n_found == 5
    assert abs(est.delay_s * 1000 - 7.4) < 0.5, est
    # it kept only what the measurement needs: from the baseline before the first pulse
    assert len(calib.command_times_s) == 5


def test_streamed_calibration_without_artifacts_finds_nothing():
    src = MuEEGSource(3, snr_db=0.0)
    data = src.generate(int(12 * src.fs))
    times = T0 + np.arange(data.shape[1]) / src.fs
    est = _stream_through(DelayCalibration(3), [T0 + 2.0, T0 + 4.0, T0 + 6.0], data, times)
    assert est is not None and est.n_found == 0 and math.isnan(est.delay_s)


def test_calibration_size_is_checked():
    with pytest.raises(ConfigError) as err:
        DelayCalibration(0)
    assert err.value.field == "n_pulses"
