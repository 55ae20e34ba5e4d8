"""Tests of MEP epochs and features (labkit.mep) on synthetic EMG with known MEPs."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from labkit.markers import PulseEvent
from labkit.mep import (
    MEPInputError,
    blank_artifact,
    mep_epochs,
    mep_table,
    onset_latency_ms,
    parse_pulse_markers,
    peak_to_peak_uv,
)

FS = 5000.0
PERIOD = 40  # samples of the MEP wave: sin(2 pi n / 40) peaks exactly at n=10 and n=30


def synthetic(n_pulses=12, seed=0, noise_uv=0.5, noisy_trials=(), artifact_uv=0.0):
    """EMG (µV) with one MEP after each pulse: amplitude, onset latency known exactly."""
    rng = np.random.default_rng(seed)
    spacing = int(0.5 * FS)
    n = spacing * (n_pulses + 1)
    emg = rng.normal(0.0, noise_uv, n)
    pulses = (np.arange(n_pulses) + 1) * spacing
    amps = rng.uniform(20.0, 2000.0, n_pulses)           # half peak-to-peak, µV
    lat_samples = rng.integers(90, 125, n_pulses)        # 18-25 ms at 5 kHz
    wave = np.sin(2 * np.pi * np.arange(PERIOD) / PERIOD)
    for p, a, lat in zip(pulses, amps, lat_samples, strict=True):
        emg[p + lat: p + lat + PERIOD] += a * wave
        if artifact_uv:
            emg[p: p + 10] += artifact_uv * np.hanning(10)    # 0-2 ms artifact
    for k in noisy_trials:
        p = pulses[k]
        emg[p - int(0.1 * FS): p] += rng.normal(0, 40.0, int(0.1 * FS))
    return emg, pulses / FS, 2 * amps, lat_samples * 1000.0 / FS


def test_peak_to_peak_and_latency_exact():
    emg, t_s, ptp, lat_ms = synthetic()
    table = mep_table(emg, t_s, fs=FS)
    assert list(table["trial"]) == list(range(len(t_s)))
    np.testing.assert_allclose(table["amplitude_uv"], ptp, atol=3.0)  # 0.5 µV noise
    np.testing.assert_allclose(table["amplitude_uv"], ptp, rtol=0.02)
    # onset within one sample (0.2 ms at 5 kHz)
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)
    assert not table["rejected"].any()
    assert (table["background_rms_uv"] < 1.0).all()


def test_noiseless_latency_and_amplitude_exact():
    emg, t_s, ptp, lat_ms = synthetic(noise_uv=0.0)
    table = mep_table(emg, t_s, fs=FS)
    np.testing.assert_allclose(table["amplitude_uv"], ptp, rtol=1e-12)
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)


def test_background_rejection_flags_noisy_trials():
    emg, t_s, _, _ = synthetic(noisy_trials=(2, 7))
    table = mep_table(emg, t_s, fs=FS, rms_limit_uv=20.0)
    assert list(np.flatnonzero(table["rejected"])) == [2, 7]
    assert table.loc[2, "background_rms_uv"] == pytest.approx(40.0, rel=0.15)
    loose = mep_table(emg, t_s, fs=FS, rms_limit_uv=100.0)
    assert not loose["rejected"].any()


def test_artifact_blanking():
    emg, t_s, ptp, lat_ms = synthetic(artifact_uv=8000.0)
    # A window that starts inside the artifact still measures the MEP after blanking.
    table = mep_table(emg, t_s, fs=FS, window_ms=(1.0, 50.0))
    np.testing.assert_allclose(table["amplitude_uv"], ptp, atol=3.0)
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)
    unblanked = mep_table(emg, t_s, fs=FS, window_ms=(1.0, 50.0), blank_ms=(0.0, 0.0))
    assert (unblanked["amplitude_uv"] > ptp).any()


def test_blank_artifact_interpolates_linearly():
    times = np.arange(-5, 10, dtype=float)
    x = np.arange(15, dtype=float) * 2.0
    x[5:8] = 1e4  # samples at 0, 1, 2 ms
    out = blank_artifact(x, times, (0.0, 3.0))
    np.testing.assert_allclose(out, np.arange(15) * 2.0)
    assert x[5] == 1e4  # input untouched


def test_pure_feature_functions():
    times = np.arange(-100, 60, 0.2)
    x = np.zeros((2, times.size))
    x[1, (times >= 20) & (times < 30)] = 100.0
    x[1, (times >= 30) & (times < 40)] = -50.0
    np.testing.assert_allclose(peak_to_peak_uv(x, times), [0.0, 150.0])
    lat = onset_latency_ms(x, times)
    assert np.isnan(lat[0]) and lat[1] == pytest.approx(20.0)


def test_raw_input_with_pulse_events_and_epochs():
    emg, t_s, ptp, lat_ms = synthetic(n_pulses=6)
    info = mne.create_info(["ECG", "FDI"], FS, ch_types=["ecg", "emg"])
    raw = mne.io.RawArray(np.vstack([np.zeros_like(emg), emg * 1e-6]), info, verbose="error")
    offset = 1000.0  # LSL time of the first EMG sample
    events = [PulseEvent(time_s=t + offset, intensity_percent=50 + i, device="Magstim", index=i)
              for i, t in enumerate(t_s)]
    epochs = mep_epochs(raw, events, time_offset_s=offset)
    assert isinstance(epochs, mne.BaseEpochs)
    assert len(epochs) == 6
    md = epochs.metadata
    assert list(md["channel"].unique()) == ["FDI"]
    assert list(md["intensity_percent"]) == [50, 51, 52, 53, 54, 55]
    np.testing.assert_allclose(md["amplitude_uv"], ptp, atol=3.0)
    assert epochs.tmin == pytest.approx(-0.1)
    data = epochs.get_data(picks="FDI") * 1e6
    np.testing.assert_allclose(np.ptp(data[:, 0, :], axis=1), ptp, atol=3.0)


def test_parse_pulse_markers_round_trip():
    ev = PulseEvent(time_s=3.5, intensity_percent=62.0, device="MagPro", index=4)
    parsed = parse_pulse_markers([ev.to_json(), '{"event": "note"}'], [3.5, 4.0])
    assert parsed == [ev]
    with pytest.raises(MEPInputError, match="marker 0 is not JSON"):
        parse_pulse_markers(["pulse!"], [1.0])


def test_errors():
    emg, t_s, _, _ = synthetic(n_pulses=3)
    with pytest.raises(MEPInputError, match="pulses is empty"):
        mep_table(emg, [], fs=FS)
    with pytest.raises(MEPInputError, match=r"1 pulse\(s\) outside the data, first pulse 0"):
        mep_table(emg, [0.05], fs=FS)
    with pytest.raises(MEPInputError, match="outside the data"):
        mep_table(emg, [len(emg) / FS + 1.0], fs=FS)
    bad = emg.copy()
    bad[int(t_s[1] * FS) + 100] = np.nan
    with pytest.raises(MEPInputError, match="NaN/inf around 1 pulse.*pulse 1"):
        mep_table(bad, t_s, fs=FS)
    with pytest.raises(MEPInputError, match="fs .* is required"):
        mep_table(emg, t_s)
    with pytest.raises(MEPInputError, match=r"window_ms=\(15.0, 150.0\) ms must lie within"):
        mep_table(emg, t_s, fs=FS, window_ms=(15.0, 150.0))
    with pytest.raises(MEPInputError, match="channel 'APB' not found"):
        mep_table(emg, t_s, fs=FS, channel="APB")
    with pytest.raises(MEPInputError, match="intensities_percent has 2 values for 3 pulses"):
        mep_table(emg, t_s, fs=FS, intensities_percent=[50, 60])


def test_cusum_onset_within_one_sample():
    emg, t_s, _, lat_ms = synthetic(noise_uv=0.5)
    table = mep_table(emg, t_s, fs=FS, onset_method="cusum")
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)
    with pytest.raises(MEPInputError, match="onset_method must be one of"):
        mep_table(emg, t_s, fs=FS, onset_method="eyeball")


def _with_decaying_artifact(emg, t_s, *, peak_uv=3000.0, tau_ms=1.2, length_ms=8.0):
    """Add a spike + exponential tail lasting ``length_ms`` (longer than the 5 ms minimum)."""
    out = emg.copy()
    n = int(length_ms * FS / 1000)
    tail = 0.15 * peak_uv * np.exp(-np.arange(n) * 1000.0 / FS / tau_ms)
    tail[0], tail[1] = peak_uv, -0.6 * peak_uv
    for p in np.round(t_s * FS).astype(int):
        out[p: p + n] += tail
    return out


def test_blanking_follows_an_artifact_longer_than_the_minimum():
    emg, t_s, _, lat_ms = synthetic(seed=4)
    dirty = _with_decaying_artifact(emg, t_s)
    table = mep_table(dirty, t_s, fs=FS)
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)
    # a fixed 0-5 ms blank leaves the tail in place: the onset rule fires on it
    fixed = mep_table(dirty, t_s, fs=FS, artifact_max_ms=None)
    assert np.all(fixed["latency_ms"] < 6.0)


def test_artifact_span_is_measured_per_trial_and_bounded():
    from labkit.mep import artifact_span_ms

    emg, t_s, _, _ = synthetic(seed=5, n_pulses=4)
    dirty = _with_decaying_artifact(emg, t_s)
    times_ms = np.arange(-500, 501) * 1000.0 / FS
    onsets = np.round(t_s * FS).astype(int)
    epochs = np.stack([dirty[p - 500: p + 501] for p in onsets])
    onsets, ends = artifact_span_ms(epochs, times_ms)
    assert np.all(onsets == 0.0)
    # the tail falls below 3 SD of 0.5 µV noise (~1.3 µV) at ~7 ms and is cut at 8 ms
    assert np.all((ends > 6.0) & (ends <= 8.2))
    assert np.all(artifact_span_ms(epochs, times_ms, max_ms=6.0)[1] == 6.0)


def test_latency_counts_from_a_discharge_that_follows_the_marker():
    # the discharge follows the fire command by its serial transmission (~3 ms at 9600
    # baud): artifact and MEP both come 2.6 ms after the marker
    emg, discharge_s, _, lat_ms = synthetic(seed=6)
    dirty = _with_decaying_artifact(emg, discharge_s, length_ms=6.0)
    markers_s = discharge_s - 0.0026
    table = mep_table(dirty, markers_s, fs=FS)
    np.testing.assert_allclose(table["discharge_ms"], 2.6, atol=1e-9)
    assert np.all(np.abs(table["latency_ms"] - lat_ms) <= 1000.0 / FS + 1e-9)
    # without an artifact there is nothing to measure from but the marker
    clean = mep_table(emg, markers_s, fs=FS)
    assert clean["discharge_ms"].isna().all()
    np.testing.assert_allclose(clean["latency_ms"], lat_ms + 2.6, atol=1000.0 / FS + 1e-9)
