"""Voluntary contraction of the virtual subject: tonic EMG, AMT and silent period."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from labkit.sim.amplifier import EMGAmplifier
from labkit.sim.contraction import ActiveStateParams, TonicEMG
from labkit.sim.events import Discharge
from labkit.sim.subject import VirtualSubject

FS = 5000.0


def _discharge(intensity: float, time_s: float = 0.0) -> Discharge:
    return Discharge(time_s=time_s, intensity_percent=intensity, device="test")


def _offline(amp: EMGAmplifier, n: int, pulses: dict[int, float]) -> np.ndarray:
    """Render ``n`` samples of ``amp`` without a clock, with discharges at sample keys."""
    out = np.empty((len(amp.channels), n))
    block = 50
    for first in range(0, n, block):
        for pulse, intensity in pulses.items():
            if first <= pulse < first + block:
                amp._pending.extend(amp._additions(_discharge(intensity), pulse))
        out[:, first:first + block] = amp._render(first, min(block, n - first))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_amt_is_below_rmt_and_has_half_200uv_meps_in_monte_carlo(seed):
    subject = VirtualSubject(seed=seed)
    rmt = subject.resting_motor_threshold_percent
    amt = subject.active_motor_threshold_percent
    assert amt == pytest.approx(subject.active.amt_ratio * rmt, abs=1e-4)
    assert 0.70 * rmt <= amt <= 0.90 * rmt
    # independent of the threshold solver: draw trials at 15 % MVC and count 200 µV MEPs
    rng = np.random.default_rng(100 + seed)
    shift = subject.contraction_shift_percent(15.0)
    for x, low, high in ((amt, 0.46, 0.54), (amt - 8.0, 0.0, 0.25), (amt + 8.0, 0.75, 1.0)):
        amps = subject.model.amplitudes_uv(np.full(20000, x), rng, shift)
        assert low <= np.mean(amps >= 200.0) <= high, (x, np.mean(amps >= 200.0))


def test_amt_is_nearly_flat_over_10_to_20_percent_mvc():
    subject = VirtualSubject(seed=3)
    amts = [subject.active_motor_threshold_at(c) for c in (10.0, 15.0, 20.0)]
    assert max(amts) - min(amts) < 1.0
    assert subject.active_motor_threshold_at(2.0) > amts[0] + 1.0  # weak drive: less facilitation


def test_contraction_level_is_validated():
    subject = VirtualSubject(seed=0)
    for bad in (-1.0, 100.5, float("nan"), "much"):
        with pytest.raises(ValueError, match="0-100 % MVC"):
            subject.contraction_percent_mvc = bad
    with pytest.raises(ValueError, match="0-100 % MVC"):
        VirtualSubject(seed=0, contraction_percent_mvc=150)
    subject.contraction_percent_mvc = 12
    assert subject.contraction_percent_mvc == 12.0


def test_rest_trials_are_unchanged_by_an_earlier_contraction():
    plain, tired = VirtualSubject(seed=5), VirtualSubject(seed=5)
    intensities = [50, 55, 60, 65, 70, 75]
    tired.contraction_percent_mvc = 15.0
    active = [tired.respond(_discharge(x)) for x in intensities]
    tired.contraction_percent_mvc = 0.0
    [plain.respond(_discharge(x)) for x in intensities]
    later_plain = [plain.respond(_discharge(x)).amplitudes_uv for x in intensities]
    later_tired = [tired.respond(_discharge(x)).amplitudes_uv for x in intensities]
    assert later_plain == later_tired
    assert all(r.silent_period_ms is not None and r.contraction_percent_mvc == 15.0
               for r in active)
    assert tired.responses[-1].silent_period_ms is None


def test_contraction_facilitates_meps():
    subject = VirtualSubject(seed=2)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    x = np.full(4000, subject.resting_motor_threshold_percent)
    rest = subject.model.amplitudes_uv(x, rng_a)
    active = subject.model.amplitudes_uv(x, rng_b, subject.contraction_shift_percent(15.0))
    assert np.median(active) > 3.0 * np.median(rest)


def test_silent_period_grows_with_intensity_and_trials_scatter_around_the_mean():
    subject = VirtualSubject(seed=4)
    amt, rmt = subject.active_motor_threshold_percent, subject.resting_motor_threshold_percent
    curve = [subject.silent_period_ms_at(amt + d) for d in range(0, 40, 5)]
    assert np.all(np.diff(curve) > 0)
    assert curve[0] < 30.0  # at AMT hidden under the MEP
    assert 100.0 <= subject.silent_period_ms <= 280.0
    assert subject.silent_period_ms == subject.silent_period_ms_at(1.3 * rmt)
    subject.contraction_percent_mvc = 20.0
    x = round(1.3 * rmt)
    draws = np.array([subject.respond(_discharge(x)).silent_period_ms for _ in range(400)])
    mean = subject.silent_period_ms_at(x)
    assert np.mean(draws) == pytest.approx(mean, rel=0.02)
    assert np.std(draws) / mean == pytest.approx(subject.active.sp_cv, rel=0.15)


def test_tonic_emg_rms_follows_level_and_band():
    subject = VirtualSubject(seed=1)
    tonic = TonicEMG(subject, ("FDI", "APB"), FS, seed=3)
    rest = tonic.add_to(np.zeros((2, 5000)), 0)
    assert not rest.any()
    subject.contraction_percent_mvc = 15.0
    data = np.concatenate([tonic.add_to(np.zeros((2, 500)), k * 500) for k in range(40)],
                          axis=1)
    settled = data[:, 5000:]  # after 1 s (level lag 150 ms)
    expected = 0.15 * subject.active.emg_rms_at_mvc_uv
    assert np.sqrt(np.mean(settled[0] ** 2)) == pytest.approx(expected, rel=0.05)
    assert np.sqrt(np.mean(settled[1] ** 2)) == pytest.approx(0.6 * expected, rel=0.05)
    f, pxx = signal.welch(settled[0], fs=FS, nperseg=1024)
    in_band = pxx[(f >= 20) & (f <= 450)].sum() / pxx.sum()
    assert in_band > 0.9
    median_hz = f[np.searchsorted(np.cumsum(pxx) / pxx.sum(), 0.5)]
    assert 60.0 <= median_hz <= 130.0  # surface EMG median frequency
    # ramps up with the level lag: the first 50 ms are well below the settled level
    assert np.sqrt(np.mean(data[0, :250] ** 2)) < 0.5 * expected


def test_amplifier_cuts_the_silent_period_out_of_the_voluntary_emg():
    subject = VirtualSubject(seed=6, contraction_percent_mvc=20.0)
    amp = EMGAmplifier(subject, noise_uv=0.5, seed=2)
    pulse = int(1.0 * FS)
    x = round(1.3 * subject.resting_motor_threshold_percent)
    data = _offline(amp, int(1.6 * FS), {pulse: x})
    r = subject.responses[0]
    assert r.silent_period_ms is not None and r.silent_period_ms > 60.0
    fdi = data[0]
    pre = fdi[pulse - 1000:pulse]
    rms_pre = np.sqrt(np.mean(pre ** 2))
    assert rms_pre == pytest.approx(0.2 * subject.active.emg_rms_at_mvc_uv, rel=0.15)
    mep_end = pulse + int((r.latencies_ms["FDI"] + 13.0) * FS / 1000)
    resume = pulse + int(round(r.silent_period_ms * FS / 1000))
    silent = fdi[mep_end:resume - 20]
    assert np.sqrt(np.mean(silent ** 2)) < 1.0  # only the 0.5 µV amplifier noise
    after = fdi[resume + 20:resume + 520]
    assert np.sqrt(np.mean(after ** 2)) == pytest.approx(rms_pre, rel=0.25)


def test_active_state_parameters_are_seeded():
    a = ActiveStateParams.sample(np.random.default_rng(1))
    b = ActiveStateParams.sample(np.random.default_rng(1))
    assert a == b
    assert VirtualSubject(seed=9).active == VirtualSubject(seed=9).active
    assert VirtualSubject(seed=9).active != VirtualSubject(seed=10).active
