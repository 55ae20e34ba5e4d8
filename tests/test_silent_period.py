"""Cortical silent period: the onset/offset rule against the subject's generated truth."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.silent_period import measure_silent_period, summarise
from labkit.sim.amplifier import EMGAmplifier
from labkit.sim.events import Discharge
from labkit.sim.subject import VirtualSubject

FS = 5000.0


def _trials(seed: int, level: float, rmt_fraction: float, n: int = 6):
    """Render EMG offline (the amplifier's own rendering path) around ``n`` pulses."""
    subject = VirtualSubject(seed=seed, contraction_percent_mvc=level)
    amp = EMGAmplifier(subject, noise_uv=0.5, seed=seed)
    x = round(rmt_fraction * subject.resting_motor_threshold_percent)
    pulses = [int((1.0 + k) * FS) for k in range(n)]
    total = int((n + 1.5) * FS)
    data = np.empty((2, total))
    block = 50
    for first in range(0, total, block):
        for p in pulses:
            if first <= p < first + block:
                amp._pending.extend(amp._additions(Discharge(p / FS, x, "t"), p))
        data[:, first:first + block] = amp._render(first, block)
    pre, post = int(0.2 * FS), int(0.5 * FS)
    times = np.arange(-pre, post) / FS * 1000.0
    return subject, [(times, data[0, p - pre:p + post]) for p in pulses]


def test_silent_period_recovered_within_tolerance_across_subjects():
    """10 subjects × 6 trials at 15 % MVC, 130 % RMT: bias <= 2 ms, every error <= 8 ms."""
    errors = []
    for seed in range(10):
        subject, trials = _trials(seed, 15.0, 1.3)
        for (times, emg), response in zip(trials, subject.responses, strict=True):
            sp = measure_silent_period(times, emg)
            assert sp is not None
            assert sp.onset_ms > response.latencies_ms["FDI"]  # after the MEP
            errors.append(sp.duration_ms - response.silent_period_ms)
    errors = np.array(errors)
    assert abs(errors.mean()) <= 2.0 and np.abs(errors).max() <= 8.0, errors.round(1)


def test_silent_period_grows_with_intensity_as_generated():
    means = []
    for fraction in (1.1, 1.3, 1.5):
        subject, trials = _trials(2, 20.0, fraction, n=4)
        found = [measure_silent_period(t, e) for t, e in trials]
        means.append(summarise(found)["mean_duration_ms"])
        truth = np.mean([r.silent_period_ms for r in subject.responses])
        assert means[-1] == pytest.approx(truth, abs=4.0)
    assert means[0] < means[1] < means[2]


def test_rest_is_refused_and_bad_input_named():
    _, trials = _trials(1, 0.0, 1.3, n=1)
    times, emg = trials[0]
    with pytest.raises(ValueError, match="no contraction"):
        measure_silent_period(times, emg)
    with pytest.raises(ValueError, match="equal length"):
        measure_silent_period(times[:-1], emg)
    with pytest.raises(ValueError, match="baseline window"):
        measure_silent_period(times[times > 0], emg[times > 0])
    assert summarise([None])["n_found"] == 0.0


def test_silent_periods_measured_live_on_the_simulated_rig():
    import time

    import labkit
    from labkit.excitability import run_silent_periods

    with labkit.open_rig("simulated", seed=3) as rig:
        rig.subject.contraction_percent_mvc = 15.0
        time.sleep(0.5)  # the EMG envelope follows the new level within ~150 ms
        results = run_silent_periods(rig, round(1.3 * rig.subject.resting_motor_threshold_percent),
                                     3)
        truth = [r.silent_period_ms for r in rig.subject.responses]
    for (_, sp), expected in zip(results, truth, strict=True):
        assert sp is not None and sp.duration_ms == pytest.approx(expected, abs=6.0)
