"""Synthetic mu EEG: determinism, streaming continuity, ground truth, SNR, artifact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from labkit.errors import ConfigError
from labkit.kernels import hjorth_weights
from labkit.sim.eeg import CHANNELS, MuEEGSource, add_artifact, tms_artifact

FS = 5000.0


def _hjorth(src, x):
    return (hjorth_weights(src.channel_names) @ x)[0]


def test_same_seed_same_signal_whatever_the_chunking():
    a = MuEEGSource(3, snr_db=2.0)
    whole = a.generate(12345)
    b = MuEEGSource(3, snr_db=2.0)
    sizes = [1, 0, 7, 333, 4000, 5000, 3004]
    parts = np.concatenate([b.generate(n) for n in sizes], axis=1)
    assert whole.shape == (5, 12345) and whole.dtype == np.float64
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-9)
    assert b.n_samples == 12345
    other = MuEEGSource(4, snr_db=2.0).generate(12345)
    assert np.abs(other - whole).max() > 10.0


def test_channels_and_units():
    src = MuEEGSource(1)
    assert src.channel_names == list(CHANNELS)
    x = src.generate(int(FS * 10))
    rms = x.std(axis=1)
    assert np.all((rms > 5) & (rms < 100)), rms  # EEG-like µV


def test_mu_component_is_amplitude_times_cos_of_true_phase():
    src = MuEEGSource(2)
    idx = np.arange(0, 50000, 7)
    np.testing.assert_allclose(
        src.mu(idx),
        src.mu_amplitude_uv * src.envelope(idx) * np.cos(src.true_phases(idx)),
        atol=1e-9,
    )
    assert src.true_phase(1234) == pytest.approx(float(src.true_phases([1234])[0]))
    ph = src.true_phases(idx)
    assert ph.min() > -np.pi - 1e-12 and ph.max() <= np.pi


def test_true_phase_matches_the_data_at_high_snr():
    """Zero-phase band-pass of the Hjorth signal recovers the true phase."""
    src = MuEEGSource(6, snr_db=20.0, mu_hz=10.0)
    x = src.generate(int(FS * 20))
    h = _hjorth(src, x)
    sos = signal.butter(3, [8, 12], "bandpass", fs=FS, output="sos")
    est = np.angle(signal.hilbert(signal.sosfiltfilt(sos, h)))
    idx = np.arange(int(FS * 2), int(FS * 18), 97)
    err = np.angle(np.exp(1j * (est[idx] - src.true_phases(idx))))
    assert abs(np.degrees(np.angle(np.mean(np.exp(1j * err))))) < 3
    assert np.degrees(np.sqrt(-2 * np.log(abs(np.mean(np.exp(1j * err)))))) < 15


def test_frequency_wanders_around_the_peak():
    src = MuEEGSource(7, mu_hz=11.0)
    inst = np.diff(np.unwrap(src.true_phases(np.arange(int(FS * 60))))) * FS / (2 * np.pi)
    assert abs(inst.mean() - 11.0) < 0.2
    assert 0.2 < inst.std() < 1.0


@pytest.mark.parametrize("snr_db", [-5.0, 5.0])
def test_snr_is_calibrated_on_the_hjorth_signal_in_8_13_hz(snr_db):
    src = MuEEGSource(8, snr_db=snr_db)
    n = int(FS * 60)
    idx = np.arange(n)
    h = _hjorth(src, src.generate(n))
    mu = 0.7 * src.mu(idx)  # Hjorth keeps 1 - neighbour_gain of the mu
    f, p = signal.welch(h - mu, FS, nperseg=int(FS * 2))
    band = (f >= 8) & (f <= 13)
    bg = np.trapezoid(p[band], f[band])
    # the mu amplitude is set so that mu power / background power is snr_db on average
    expected_mu_power = bg * 10 ** (snr_db / 10)
    predicted = (0.7 * src.mu_amplitude_uv) ** 2 / 2
    assert predicted == pytest.approx(expected_mu_power, rel=0.15)


def test_background_is_roughly_one_over_f():
    src = MuEEGSource(9, snr_db=-40.0, common_gain=0.0, white_uv=0.0)
    f, p = signal.welch(src.generate(int(FS * 60))[0], FS, nperseg=int(FS * 4))
    sel = (f >= 2) & (f <= 60)
    slope = np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0]
    assert -1.3 < slope < -0.7, slope


def test_hjorth_cancels_the_common_component():
    a = MuEEGSource(10, common_gain=0.0).generate(20000)
    b = MuEEGSource(10, common_gain=50.0).generate(20000)
    src = MuEEGSource(10)
    assert np.abs(b - a).max() > 100
    np.testing.assert_allclose(_hjorth(src, a), _hjorth(src, b), atol=1e-9)


def test_artifact_is_added_at_the_pulse_sample_across_chunks():
    clean = MuEEGSource(12).generate(10000)
    src = MuEEGSource(12)
    src.add_pulse(4990)
    x = np.concatenate([src.generate(n) for n in (3000, 1995, 5, 5000)], axis=1)
    tpl = src.artifact_template
    diff = x - clean
    np.testing.assert_allclose(diff[:, :4990], 0, atol=1e-9)
    np.testing.assert_allclose(
        diff[:, 4990 : 4990 + tpl.size], np.outer(src.artifact_gains, tpl), atol=1e-9
    )
    np.testing.assert_allclose(diff[:, 4990 + tpl.size :], 0, atol=1e-9)
    assert np.abs(diff).max() > 5000  # multi-millivolt spike


def test_artifact_template_shape():
    tpl = tms_artifact(FS)
    assert tpl[0] > 9000 and tpl[1] < -5000  # biphasic spike
    assert 0 < tpl[25] < 400 and tpl[-1] < 1  # exponential tail, 5 ms and 40 ms
    data = np.zeros((2, 10))
    add_artifact(data, 8, tpl, np.array([1.0, 0.5]))
    np.testing.assert_allclose(data[:, 8:], np.outer([1.0, 0.5], tpl[:2]))


def test_configuration_errors():
    with pytest.raises(ConfigError, match="mu_hz.*8–13"):
        MuEEGSource(1, mu_hz=20.0)
    with pytest.raises(ConfigError, match="channel_names.*CP5"):
        MuEEGSource(1, channel_names=["C3", "FC1", "FC5", "CP1"])
    with pytest.raises(ConfigError, match="n_samples"):
        MuEEGSource(1).generate(-1)
