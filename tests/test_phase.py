"""Phase estimators: accuracy on sinusoids, convention, tracker, prediction, errors."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.closedloop import PhaseTracker, estimate_mu_peak, phase_now, time_to_phase
from labkit.errors import ConfigError
from labkit.kernels import Blanker, SpatialFilter, hjorth_weights
from labkit.phase import (
    EtpModel,
    KalmanParams,
    fit_etp,
    fit_kalman,
    kalman_phase,
    zrenner_ar_phase,
)
from labkit.sim.eeg import MuEEGSource

FS = 5000.0
FREQS = (8.0, 9.0, 10.5, 12.0, 13.0)
PHASES = np.linspace(-np.pi, np.pi, 9)[:-1]


def _sinusoid(freq_hz, phase_at_end, fs=FS, n=2500, amp=10.0):
    t = (np.arange(n) - (n - 1)) / fs
    return amp * np.cos(2 * np.pi * freq_hz * t + phase_at_end)


def _err_deg(est, true):
    return float(np.degrees(np.angle(np.exp(1j * (est - true)))))


def _circ_sd_deg(err_rad):
    r = abs(np.mean(np.exp(1j * np.asarray(err_rad))))
    return float(np.degrees(np.sqrt(-2 * np.log(r))))


@pytest.mark.parametrize("freq", FREQS)
def test_default_method_within_5_degrees_on_clean_sinusoids(freq):
    errs = [_err_deg(phase_now(_sinusoid(freq, p), FS), p) for p in PHASES]
    assert max(abs(e) for e in errs) <= 5.0, errs


@pytest.mark.parametrize("freq", FREQS)
def test_kalman_with_known_peak_is_within_1_degree(freq):
    errs = [_err_deg(phase_now(_sinusoid(freq, p), FS, mu_hz=freq), p) for p in PHASES]
    assert max(abs(e) for e in errs) <= 1.0, errs


# Maximum |error| (degrees) of the published Zrenner 2018 recipe over the 8 PHASES, measured
# against the known phase of the clean cosine (500 ms windows at 5 kHz); see labkit.phase.
ZRENNER_CLEAN_MAX_DEG = {8.0: 19.2, 9.0: 12.8, 10.5: 13.9, 12.0: 10.8, 13.0: 7.6}


def _zrenner_errors_deg(freq):
    return [_err_deg(phase_now(_sinusoid(freq, p), FS, method="zrenner-ar"), p) for p in PHASES]


@pytest.mark.parametrize("freq", FREQS)
def test_zrenner_baseline_on_clean_sinusoids(freq):
    """The published AR(30) baseline on noise-free cosines, against their known phase.

    Its error (up to ~19° at 8 Hz) comes from the published recipe itself (biased
    Yule-Walker fit on 3-5 cycles; see ``labkit.phase``), so it is pinned here: at most
    1° above the documented maximum, and repeating every pi of input phase.
    """
    errs = _zrenner_errors_deg(freq)
    assert max(abs(e) for e in errs) <= ZRENNER_CLEAN_MAX_DEG[freq] + 1.0, errs
    assert np.allclose(errs[:4], errs[4:], atol=0.5), errs


def _phastimate_recipe(x, fs=1000.0, edge=64, order=30, hilbert_n=128):
    """The phastimate steps with the Zrenner 2018 parameters, written out from their
    published description: demean; two-pass 129-tap Hamming FIR 8-13 Hz with odd
    reflection of 3*(taps-1) samples; drop ``edge`` samples at both ends; AR(order) by
    Levinson recursion on the biased autocorrelation (aryule); predict
    ``edge + ceil(hilbert_n / 2)`` samples; phase of the analytic signal of the last
    ``hilbert_n`` samples at 1-based index ``hilbert_n - iterations + edge``."""
    from scipy.signal import filtfilt, firwin, hilbert

    taps = firwin(129, (8.0, 13.0), pass_zero=False, fs=fs)
    y = filtfilt(taps, [1.0], x - x.mean(), padlen=3 * (taps.size - 1))[edge:-edge]
    r = np.array([np.dot(y[: y.size - k], y[k:]) / y.size for k in range(order + 1)])
    a, err = np.array([1.0]), r[0]
    for i in range(1, order + 1):
        k = -(r[i] + np.dot(a[1:], r[i - 1 : 0 : -1])) / err
        a = np.append(a, 0.0) + k * np.append(a, 0.0)[::-1]
        err *= 1 - k * k
    iterations = edge + int(np.ceil(hilbert_n / 2))
    z = np.concatenate((y, np.zeros(iterations)))
    for j in range(y.size, z.size):
        z[j] = -np.dot(a[1:], z[j - 1 : j - order - 1 : -1])
    return float(np.angle(hilbert(z[-hilbert_n:])[hilbert_n - iterations + edge - 1]))


def test_zrenner_is_the_published_phastimate_recipe():
    """At 1 kHz (no resampling) labkit's baseline equals the recipe step by step, on
    clean and noisy windows alike."""
    rng = np.random.default_rng(7)
    for trial in range(20):
        x = _sinusoid(rng.uniform(7.0, 14.0), rng.uniform(-np.pi, np.pi), fs=1000.0, n=500)
        if trial % 2:
            x = x + 5.0 * rng.standard_normal(x.size)
        got = zrenner_ar_phase(x, 1000.0)[0]
        assert abs(_err_deg(got, _phastimate_recipe(x))) < 1e-6


@pytest.mark.parametrize("freq", FREQS)
def test_etp_within_5_degrees_on_clean_sinusoids(freq):
    """ETP trained on 12 s of the same rhythm (Shirinpour 2020), and untrained with the
    known frequency: the phase since the last peak of the window."""
    rest = _sinusoid(freq, 0.7, n=int(12 * FS))
    model = fit_etp(rest, FS)
    assert isinstance(model, EtpModel)
    assert model.period_s == pytest.approx(1 / freq, rel=0.02)
    for kw in ({"model": model}, {"mu_hz": freq}):
        errs = [_err_deg(phase_now(_sinusoid(freq, p), FS, method="etp", **kw), p)
                for p in PHASES]
        assert max(abs(e) for e in errs) <= 5.0, (kw, errs)


@pytest.mark.parametrize("freq", FREQS)
def test_fitted_kalman_within_5_degrees_on_clean_sinusoids(freq):
    """Parameters fitted per subject on a resting recording (Wodeyar 2021 recipe)."""
    rng = np.random.default_rng(int(freq * 10))
    rest = _sinusoid(freq, 0.2, n=int(8 * FS)) + rng.standard_normal(int(8 * FS))
    model = fit_kalman(rest, FS, mu_hz=freq)
    assert isinstance(model, KalmanParams) and model.mu_hz == freq
    errs = [_err_deg(phase_now(_sinusoid(freq, p), FS, model=model), p) for p in PHASES]
    assert max(abs(e) for e in errs) <= 5.0, errs
    tracker = PhaseTracker(FS, freq, 10.0, params=model)
    x = _sinusoid(freq, 1.0, n=int(3 * FS))
    for a in range(0, x.size, 5):
        ph = tracker.update(x[a : a + 5])
    assert abs(_err_deg(ph, 1.0)) <= 5.0


def test_fitted_models_are_refused_by_the_wrong_method():
    x = _sinusoid(10.0, 0.0)
    with pytest.raises(ConfigError) as err:
        phase_now(x, FS, method="etp", model=KalmanParams())
    assert err.value.field == "model"
    with pytest.raises(ConfigError):
        phase_now(x, FS, method="kalman", model=EtpModel(0.1, 0.1))


def test_phase_convention_peak_zero_trough_pi():
    assert abs(phase_now(_sinusoid(10.0, 0.0), FS)) < np.radians(5)
    assert abs(abs(phase_now(_sinusoid(10.0, np.pi), FS)) - np.pi) < np.radians(5)
    # rising zero crossing: cos(-pi/2)
    assert abs(phase_now(_sinusoid(10.0, -np.pi / 2), FS) + np.pi / 2) < np.radians(5)


def test_works_at_1khz_and_at_other_rates():
    for fs in (1000.0, 2048.0):
        x = _sinusoid(11.0, 1.0, fs=fs, n=int(0.5 * fs))
        assert abs(_err_deg(phase_now(x, fs), 1.0)) < 5
        assert abs(_err_deg(phase_now(x, fs, method="zrenner-ar"), 1.0)) < 20


def test_estimated_frequency():
    _, f = kalman_phase(_sinusoid(12.0, 0.3), FS)
    assert abs(f - 12.0) < 0.1
    _, f = zrenner_ar_phase(_sinusoid(9.0, 0.3), FS)
    assert abs(f - 9.0) < 0.5


@pytest.mark.parametrize(("phase", "target"), [(0.0, np.pi), (2.0, np.pi), (-1.0, 0.0)])
def test_time_to_phase(phase, target):
    freq = 10.0
    expected = ((target - phase) % (2 * np.pi)) / (2 * np.pi * freq)
    got = time_to_phase(_sinusoid(freq, phase), FS, target)
    assert abs(got - expected) < 0.0015  # 1.5 ms ~ 5.4° at 10 Hz
    assert 0 <= got < 1 / freq + 1e-3


def test_tracker_locks_on_and_does_not_depend_on_chunking():
    f, p0 = 9.3, 0.3
    n = 40000  # starts 1.2 Hz off: the frequency loop (tau 1 s) settles in ~4 s
    x = 10 * np.cos(2 * np.pi * f * np.arange(n) / FS + p0)
    results = []
    for chunk in (1, 7, 50):
        tr = PhaseTracker(FS, mu_hz=10.5, scale_uv=10.0)
        errs = []
        for a in range(0, n, chunk):
            ph = tr.update(x[a : a + chunk])
            last = min(a + chunk, n) - 1
            if last > 25000 and last % 50 == 49:
                errs.append(_err_deg(ph, 2 * np.pi * f * last / FS + p0))
        assert max(abs(e) for e in errs) < 3.0
        assert abs(tr.freq_hz - f) < 0.1
        assert abs(tr.amplitude - 10.0) < 0.5
        results.append(tr.phase)
        # next trough from the end of the stream
        t_end = (n - 1) / FS
        expected = ((np.pi - (2 * np.pi * f * t_end + p0)) % (2 * np.pi)) / (2 * np.pi * f)
        assert abs(tr.time_to_phase(np.pi) - expected) < 0.001
    assert np.ptp(results) < 1e-6


def test_tracker_bridges_a_blanked_artifact_by_prediction():
    f = 10.0
    n = 20000
    x = 10 * np.cos(2 * np.pi * f * np.arange(n) / FS)
    held = x.copy()
    held[15000:15100] = held[14999]  # 20 ms sample-and-hold blanking
    valid = np.ones(n, bool)
    valid[15000:15100] = False
    bridged = PhaseTracker(FS, mu_hz=f, scale_uv=10.0)
    naive = PhaseTracker(FS, mu_hz=f, scale_uv=10.0)
    for a in range(0, 15100, 5):
        bridged.update(held[a : a + 5], valid[a : a + 5])
        naive.update(held[a : a + 5])
    truth = 2 * np.pi * f * 15099 / FS
    assert abs(_err_deg(bridged.phase, truth)) < 3.0
    assert abs(_err_deg(naive.phase, truth)) > 3 * abs(_err_deg(bridged.phase, truth))


def test_realtime_chain_on_artifact_laden_eeg():
    """Blank -> Hjorth -> tracker (gap bridged) on EEG with a TMS pulse every 0.5 s:
    the phase 20 ms after each pulse is as good as without pulses; unprotected, it is not.
    """
    n, chunk = int(FS * 30), 5
    onsets = np.arange(int(FS * 5), n - 1000, int(FS / 2))

    def stream(with_pulses, protect):
        src = MuEEGSource(21, snr_db=10.0, mu_hz=10.0)
        if with_pulses:
            for o in onsets:
                src.add_pulse(int(o), 1.0)
        blanker = Blanker(5, 5, 60)
        if protect:
            for o in onsets:
                blanker.add_onset(int(o))
        spatial = SpatialFilter.hjorth(src.channel_names)
        tracker = PhaseTracker(FS, mu_hz=10.0, scale_uv=20.0)
        probes = set((onsets + 100 - 1).tolist())  # 20 ms after each pulse
        got = {}
        for a in range(0, n, chunk):
            x = blanker.process(src.generate(chunk))
            tracker.update(spatial.process(x)[0], blanker.valid if protect else None)
            if a + chunk - 1 in probes:
                got[a + chunk - 1] = tracker.phase
        idx = np.array(sorted(got))
        return _circ_sd_deg(np.array([got[i] for i in idx]) - src.true_phases(idx))

    clean = stream(False, True)  # measured: ~41°
    protected = stream(True, True)  # ~43°
    naive = stream(True, False)  # ~63°
    assert protected < clean + 4, (protected, clean)
    assert naive > protected + 10, (naive, protected)


def test_beats_the_baseline_on_synthetic_eeg():
    src = MuEEGSource(11, snr_db=5.0, mu_hz=10.0)
    x = src.generate(int(FS * 20))
    h = (hjorth_weights(src.channel_names) @ x)[0]
    idx = np.random.default_rng(0).integers(int(FS), h.size, 60)
    truth = src.true_phases(idx)
    est_k = [phase_now(h[i - 2499 : i + 1], FS) for i in idx]
    est_ar = [phase_now(h[i - 2499 : i + 1], FS, method="zrenner-ar") for i in idx]
    sd_k = _circ_sd_deg(np.array(est_k) - truth)
    sd_ar = _circ_sd_deg(np.array(est_ar) - truth)
    assert sd_k < sd_ar, (sd_k, sd_ar)
    assert sd_k < 60, sd_k


def test_estimate_mu_peak():
    src = MuEEGSource(5, snr_db=0.0, mu_hz=11.7)
    h = (hjorth_weights(src.channel_names) @ src.generate(int(FS * 20)))[0]
    assert abs(estimate_mu_peak(h, FS) - 11.7) < 0.3


def test_errors_name_the_argument():
    with pytest.raises(ConfigError, match="method.*'kalman', 'zrenner-ar'.*'hilbert'"):
        phase_now(np.zeros(2500), FS, method="hilbert")
    with pytest.raises(ConfigError, match="window.*1-D"):
        phase_now(np.zeros((2, 2500)), FS)
    with pytest.raises(ConfigError, match="window.*200 ms"):
        phase_now(np.ones(100), FS)
    with pytest.raises(ConfigError, match="window.*NaN"):
        phase_now(np.full(2500, np.nan), FS)
    with pytest.raises(ConfigError, match="window.*constant"):
        phase_now(np.zeros(2500), FS)
    with pytest.raises(ConfigError, match="fs"):
        phase_now(np.ones(2500), -1.0)
    with pytest.raises(ConfigError, match="mu_hz.*4–30"):
        PhaseTracker(FS, mu_hz=50.0)
