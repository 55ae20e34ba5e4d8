"""phastimate: the published 2018 parameter set and the per-subject fit (Zrenner 2020)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, filtfilt, firwin, sosfiltfilt

from labkit.errors import ConfigError
from labkit.phase import PhastimateParams, fit_phastimate, phase_now
from labkit.phastimate import (
    ZRENNER_2018,
    fir_filtfilt,
    phastimate_phase,
    true_phase_at_centre,
)

FS = 5000.0
FREQS = (8.0, 9.0, 10.5, 12.0, 13.0)
PHASES = np.linspace(-np.pi, np.pi, 9)[:-1]


def _cosine(freq_hz, phase_at_end, n=2500, fs=FS):
    return 10.0 * np.cos(2 * np.pi * freq_hz * (np.arange(n) - (n - 1)) / fs + phase_at_end)


def _wandering_cosine(freq_hz, seconds, seed, fs=FS):
    """Noise-free cosine whose frequency wanders by ~0.1 Hz (slower than 0.3 Hz), so
    that the calibration epochs (0.5 s apart) start at different phases."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    slow = sosfiltfilt(butter(2, 0.3, fs=fs, output="sos"), rng.standard_normal(n))
    freq = freq_hz + 0.1 * slow / slow.std()
    return 10.0 * np.cos(np.cumsum(2 * np.pi * freq / fs))


def _err_deg(est, true):
    return float(np.degrees(np.angle(np.exp(1j * (est - true)))))


@pytest.fixture(scope="module")
def fits():
    return {f: fit_phastimate(_wandering_cosine(f, 30.0, seed=int(10 * f)), FS, f,
                              max_window_s=0.5) for f in FREQS}


def test_zrenner_2018_is_the_reference_parameter_set():
    """bnplab/phastimate main_script.m, "phastimates with parameters used in Zrenner2018
    paper": 500 ms window, designfilt bandpassfir order 128, 8-13 Hz, window method;
    phastimate(..., D, 64, 30, HILBERTWIN) with HILBERTWIN = 128."""
    assert (ZRENNER_2018.window, ZRENNER_2018.fir_order, ZRENNER_2018.band_hz,
            ZRENNER_2018.edge, ZRENNER_2018.ar_order, ZRENNER_2018.hilbert) == (
        500, 128, (8.0, 13.0), 64, 30, 128)


@pytest.mark.parametrize("freq", FREQS)
def test_fitted_phastimate_within_5_degrees_on_clean_sinusoids(freq, fits):
    model = fits[freq]
    errs = [_err_deg(phase_now(_cosine(freq, p), FS, method="phastimate", model=model), p)
            for p in PHASES]
    assert max(abs(e) for e in errs) <= 5.0, (model, errs)


def test_fit_stays_in_the_published_search_space(fits):
    """Bounds of the reference's optimisation at 1 kHz: window 400-750 (here at most the
    500 ms given), FIR order 100-250 with window >= 3 * order + 1, edge 30-120, AR 5-60,
    pass band = peak +- 1 Hz, Hilbert window 128."""
    for freq, m in fits.items():
        assert 400 <= m.window <= 500
        assert 100 <= m.fir_order <= 250 and m.window >= 3 * m.fir_order + 1
        assert 30 <= m.edge <= 120 and 5 <= m.ar_order <= 60
        assert m.band_hz == (freq - 1.0, freq + 1.0) and m.hilbert == 128
        assert m.n_epochs >= 15 and m.calibration_score < 0.01


def test_fit_is_deterministic_per_seed():
    rest = _wandering_cosine(10.0, 14.0, seed=3) + np.random.default_rng(4).normal(0, 5, 70000)
    a = fit_phastimate(rest, FS, 10.0, seed=11, maxiter=8)
    b = fit_phastimate(rest, FS, 10.0, seed=11, maxiter=8)
    assert a == b


@pytest.mark.parametrize(("n", "order"), [(500, 128), (451, 150), (301, 100), (750, 249)])
def test_fft_filtfilt_equals_scipy_filtfilt(n, order):
    """The batched FFT two-pass FIR is scipy's filtfilt (odd extension, steady-state
    start), row by row, to rounding."""
    b = firwin(order + 1, (9.0, 11.0), pass_zero=False, fs=1000.0)
    x = np.random.default_rng(order).normal(3.0, 10.0, (5, n))
    want = filtfilt(b, [1.0], x, axis=1, padlen=3 * order)
    assert np.max(np.abs(fir_filtfilt(b, x, 3 * order) - want)) < 1e-10
    assert np.max(np.abs(fir_filtfilt(b, x[0], 3 * order) - want[0])) < 1e-10


def test_true_phase_of_the_ensemble_is_the_cosines_phase():
    """Every filter of the ensemble is zero-phase: at an epoch's centre the phase of a
    clean cosine comes out (the analytic phase, independent of labkit)."""
    fs_w, n = 1000.0, 2000
    centre = n // 2 - 1
    phases = np.linspace(-3.0, 3.0, 7)
    epochs = np.stack([np.cos(2 * np.pi * 10.0 * (np.arange(n) - centre) / fs_w + p)
                       for p in phases])
    truth, amplitude = true_phase_at_centre(epochs, fs_w, 10.0)
    assert np.max(np.abs(np.degrees(np.angle(np.exp(1j * (truth - phases)))))) < 0.5
    assert np.allclose(amplitude, 1.0, atol=0.05)


def test_phastimate_needs_a_fitted_model():
    with pytest.raises(ConfigError) as err:
        phase_now(_cosine(10.0, 0.0), FS, method="phastimate")
    assert err.value.field == "model" and "fit_phastimate" in str(err.value)


def test_window_shorter_than_the_model_is_refused():
    model = PhastimateParams(window=700, fir_order=200, band_hz=(9.0, 11.0), edge=60,
                             ar_order=20)
    with pytest.raises(ConfigError) as err:
        phastimate_phase(_cosine(10.0, 0.0, n=2500), FS, model)
    assert err.value.field == "window" and "700" in str(err.value)


@pytest.mark.parametrize(("kw", "field"), [
    ({"window": 300}, "window"),          # not more than 3 x fir_order (= 300)
    ({"edge": 240}, "edge"),              # nothing left for the AR fit
    ({"band_hz": (11.0, 9.0)}, "band_hz"),
    ({"hilbert": 127}, "hilbert"),
    ({"ar_order": 0}, "ar_order"),
])
def test_invalid_parameter_sets_name_the_field(kw, field):
    base = {"window": 500, "fir_order": 100, "band_hz": (9.0, 11.0), "edge": 50,
            "ar_order": 20}
    with pytest.raises(ConfigError) as err:
        PhastimateParams(**{**base, **kw})
    assert err.value.field == field


@pytest.mark.parametrize(("args", "kw", "field"), [
    ((np.zeros(5 * 5000), FS, 10.0), {}, "rest"),           # 5 s: too few epochs
    ((np.zeros(30 * 5000), FS, 20.0), {}, "mu_hz"),         # beta is outside the space
    ((np.zeros(30 * 5000), FS, 10.0), {"max_window_s": 1.0}, "max_window_s"),
    ((np.full(30 * 5000, np.nan), FS, 10.0), {}, "rest"),
    ((np.zeros(30 * 250), 250.0, 10.0), {}, "fs"),
])
def test_bad_calibration_input_names_the_field(args, kw, field):
    with pytest.raises(ConfigError) as err:
        fit_phastimate(*args, **kw)
    assert err.value.field == field
