"""numba kernels against their references (MNE, scipy, numpy), offline and chunked."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy import signal
from scipy.interpolate import CubicHermiteSpline

from labkit.errors import ConfigError
from labkit.kernels import (
    Blanker,
    CleaningChain,
    Decimator,
    Flagger,
    SosFilter,
    SpatialFilter,
    StreamInterpolator,
    amplitude_flags,
    antialias_sos,
    apply_weights,
    artifact,
    blank,
    decimate,
    gradient_flags,
    hjorth_weights,
    interpolate,
    sosfilt,
    warm_up,
)

FS = 5000.0


def _chunks(n, rng, max_len=23):
    """Random chunk boundaries covering 0..n, including empty chunks."""
    edges = [0]
    while edges[-1] < n:
        edges.append(min(n, edges[-1] + int(rng.integers(0, max_len))))
    return list(zip(edges[:-1], edges[1:], strict=True))


@pytest.fixture()
def data():
    return np.random.default_rng(0).standard_normal((4, 4000)) * 20.0


# ------------------------------------------------------------------ artifact
@pytest.mark.parametrize(("pre", "post"), [(10, 50), (0, 25), (4, 1)])
def test_linear_matches_mne_fix_stim_artifact(data, pre, post):
    onsets = np.array([500, 1700, 3333])
    ours = data.copy()
    interpolate(ours, onsets, pre, post, "linear")
    raw = mne.io.RawArray(data.copy(), mne.create_info(4, FS, "eeg"), verbose=False)
    events = np.c_[onsets, np.zeros(3, int), np.ones(3, int)]
    mne.preprocessing.fix_stim_artifact(raw, events, 1, tmin=-pre / FS, tmax=post / FS)
    np.testing.assert_array_equal(ours, raw.get_data())  # bit for bit
    # and something was actually replaced (the window interior), nothing else
    changed = np.flatnonzero(np.any(ours != data, axis=0))
    assert changed.size > 0
    allowed = np.concatenate([np.arange(o - pre + 1, o + post) for o in onsets])
    assert set(changed) <= set(allowed)


def test_linear_equals_a_plain_numpy_reference_on_many_windows():
    """Many windows of several lengths (incl. a one-sample interior), odd channel count:
    the vectorised kernel gives what a straight numpy formula gives."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 20000)) * 50.0
    onsets = np.sort(rng.choice(np.arange(300, 19000, 97), 60, replace=False))
    for pre, post in ((5, 50), (0, 1), (13, 77)):
        ours = interpolate(x.copy(), onsets, pre, post, "linear")
        ref = x.copy()
        for o in onsets:  # 97-sample grid: windows never overlap
            a, b = o - pre, o + post
            y0, y1 = ref[:, a : a + 1], ref[:, b : b + 1]
            ref[:, a + 1 : b] = y0 + np.arange(1, b - a) * ((y1 - y0) / (b - a))
        np.testing.assert_array_equal(ours, ref)
        assert np.any(ours != x) or post == 1


def _mne_linear(x, onsets, pre, post):
    """``mne.preprocessing.fix_stim_artifact`` (linear) on a copy of ``x``."""
    raw = mne.io.RawArray(x.copy(), mne.create_info(x.shape[0], FS, "eeg"), verbose=False)
    events = np.c_[onsets, np.zeros(len(onsets), int), np.ones(len(onsets), int)]
    mne.preprocessing.fix_stim_artifact(raw, events, 1, tmin=-pre / FS, tmax=post / FS)
    return raw.get_data()


def test_recording_large_enough_for_streaming_stores_is_bit_identical_to_mne():
    """Above STREAMING_MIN_BYTES whole cache lines are written with streaming stores;
    the output is still MNE's, bit for bit, and nothing outside the windows changes."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 270_000)) * 30.0
    assert x.nbytes >= artifact.STREAMING_MIN_BYTES
    onsets = np.sort(rng.choice(np.arange(1000, 269_000, 911), 45, replace=False))
    for pre, post in ((5, 50), (4, 17)):  # times exact at 5 kHz (see the module docstring)
        ours = interpolate(x.copy(), onsets, pre, post, "linear")
        np.testing.assert_array_equal(ours, _mne_linear(x, onsets, pre, post))


@pytest.mark.parametrize("n_times", [3000, 2999])  # rows at the same line offset, or not
def test_streaming_stores_equal_ordinary_stores_at_every_line_offset(n_times):
    """Interiors of 1..41 samples starting at every offset within a 64-byte line."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, n_times)) * 40.0
    i = np.arange(41)
    starts = 20 + 64 * i + i % 8  # 41 windows, every start offset mod 8
    stops = starts + 2 + i  # b - a = 2..42: interiors of 1..41 samples
    assert stops[-1] < n_times
    streamed, ordinary = x.copy(), x.copy()
    artifact._repair(streamed, starts, stops, False, True)
    artifact._repair(ordinary, starts, stops, False, False)
    ref = x.copy()
    for a, b in zip(starts, stops, strict=True):
        y0 = ref[:, a : a + 1]
        ref[:, a + 1 : b] = (ref[:, b : b + 1] - y0) / (b - a) * np.arange(1, b - a) + y0
    np.testing.assert_array_equal(streamed, ref)
    np.testing.assert_array_equal(ordinary, ref)


def test_onsets_in_any_integer_form_give_the_same_output(data):
    onsets = [3333, 500, 1700]
    ref = interpolate(data.copy(), np.array(sorted(onsets)), 10, 50)
    for form in (onsets, np.array(onsets, np.int32), np.array(onsets)[::-1], tuple(onsets)):
        np.testing.assert_array_equal(interpolate(data.copy(), form, 10, 50), ref)
    np.testing.assert_array_equal(interpolate(data.copy(), onsets, np.int32(10), 50), ref)


def test_cubic_is_hermite_with_one_sided_slopes(data):
    on, pre, post = 2000, 5, 40
    ours = data.copy()
    interpolate(ours, [on], pre, post, "cubic")
    a, b = on - pre, on + post
    for c in range(data.shape[0]):
        m0 = data[c, a] - data[c, a - 1]
        m1 = data[c, b + 1] - data[c, b]
        spline = CubicHermiteSpline([a, b], data[c, [a, b]], [m0, m1])
        np.testing.assert_allclose(ours[c, a + 1 : b], spline(np.arange(a + 1, b)), atol=1e-9)
    np.testing.assert_array_equal(ours[:, : a + 1], data[:, : a + 1])
    np.testing.assert_array_equal(ours[:, b:], data[:, b:])


def test_windows_at_the_array_ends_hold_the_available_anchor(data):
    ours = data.copy()
    interpolate(ours, [2, 3990], 5, 20, "linear")
    np.testing.assert_array_equal(ours[:, :22], np.repeat(data[:, 22:23], 22, axis=1))
    np.testing.assert_array_equal(ours[:, 3986:], np.repeat(data[:, 3985:3986], 14, axis=1))


def test_overlapping_windows_are_merged(data):
    ours = data.copy()
    interpolate(ours, [1000, 1030], 10, 50, "linear")
    ref = data.copy()
    a, b = 990, 1080
    for c in range(4):
        ref[c, a + 1 : b] = np.interp(np.arange(a + 1, b), [a, b], data[c, [a, b]])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_interpolate_argument_errors_name_the_argument(data):
    with pytest.raises(ConfigError, match="method.*'linear', 'cubic'.*'spline'"):
        interpolate(data.copy(), [100], 2, 5, "spline")
    with pytest.raises(ConfigError, match="data.*C-contiguous"):
        interpolate(np.asfortranarray(data), [100], 2, 5)
    with pytest.raises(ConfigError, match="data.*float64"):
        interpolate(data.astype(np.float32), [100], 2, 5)
    with pytest.raises(ConfigError, match="post.*>= 1"):
        interpolate(data.copy(), [100], 2, 0)
    with pytest.raises(ConfigError, match="pre.*>= 0"):
        interpolate(data.copy(), [100], -1, 5)
    with pytest.raises(ConfigError, match="pre.*integer"):
        interpolate(data.copy(), [100], 2.5, 5)
    with pytest.raises(ConfigError, match="post.*integer"):
        interpolate(data.copy(), [100], 2, True)
    with pytest.raises(ConfigError, match="onsets.*integer"):
        interpolate(data.copy(), [100.5], 2, 5)
    frozen = data.copy()
    frozen.flags.writeable = False
    with pytest.raises(ConfigError, match="data.*writeable"):
        interpolate(frozen, [100], 2, 5)
    raw = np.zeros(data.size * 8 + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, np.float64, data.size, offset=1).reshape(data.shape)
    with pytest.raises(ConfigError, match="data.*aligned"):
        interpolate(unaligned, [100], 2, 5)


def test_blank_holds_the_last_clean_sample(data):
    ours = blank(data.copy(), [1000], 4, 30)
    np.testing.assert_array_equal(ours[:, 997:1030], np.repeat(data[:, 996:997], 33, axis=1))
    np.testing.assert_array_equal(ours[:, 1030:], data[:, 1030:])
    np.testing.assert_array_equal(ours[:, :997], data[:, :997])


def test_blanker_chunked_equals_offline(data):
    rng = np.random.default_rng(1)
    onsets = [700, 1500, 1510, 3900]
    blanker = Blanker(4, 5, 40)
    for o in onsets:
        blanker.add_onset(o)
    out = np.concatenate(
        [blanker.process(np.ascontiguousarray(data[:, a:b])) for a, b in _chunks(4000, rng)], 1
    )
    np.testing.assert_array_equal(out, blank(data.copy(), onsets, 5, 40))
    # the valid mask of a chunk marks exactly the blanked interior samples
    b2 = Blanker(4, 5, 40)
    b2.add_onset(700)
    b2.process(np.ascontiguousarray(data[:, 650:700]).copy())  # samples 0..49
    b2.process(np.ascontiguousarray(data[:, 0:700]).copy())  # samples 50..749
    assert np.array_equal(np.flatnonzero(~b2.valid) + 50, np.arange(696, 740))


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_stream_interpolator_is_offline_interpolation_delayed(data, method):
    rng = np.random.default_rng(2)
    onsets = [300, 1234, 1250, 3000]
    si = StreamInterpolator(4, 6, 30, method, extra_delay=16)  # 1234/1250 merge: +16
    for o in onsets:
        si.add_onset(o)
    out = np.concatenate(
        [si.process(np.ascontiguousarray(data[:, a:b])) for a, b in _chunks(4000, rng)], 1
    )
    ref = interpolate(data.copy(), onsets, 6, 30, method)
    d = si.delay
    assert d == 6 + 30 + 2 + 16
    np.testing.assert_array_equal(out[:, :d], 0.0)
    np.testing.assert_array_equal(out[:, d:], ref[:, :-d])
    with pytest.raises(ConfigError, match="chunk.*1 channels.*4"):
        si.process(np.zeros((1, 10)))


# ------------------------------------------------------------------ flags
def test_flags_match_numpy_across_chunks(data):
    rng = np.random.default_rng(3)
    flagger = Flagger(4, amplitude_uv=45.0, gradient_uv=60.0)
    amp, grad = [], []
    for a, b in _chunks(4000, rng):
        fa, fg = flagger.process(np.ascontiguousarray(data[:, a:b]))
        amp.append(fa.copy())
        grad.append(fg.copy())
    amp, grad = np.concatenate(amp), np.concatenate(grad)
    ref_amp = np.any(np.abs(data) > 45.0, axis=0)
    ref_grad = np.r_[False, np.any(np.abs(np.diff(data, axis=1)) > 60.0, axis=0)]
    assert ref_amp.sum() > 5 and ref_grad.sum() > 5
    np.testing.assert_array_equal(amp, ref_amp)
    np.testing.assert_array_equal(grad, ref_grad)
    np.testing.assert_array_equal(amplitude_flags(data, 45.0), ref_amp)
    np.testing.assert_array_equal(gradient_flags(data, 60.0), ref_grad)


def test_flag_threshold_must_be_positive():
    with pytest.raises(ConfigError, match="amplitude_uv.*positive"):
        Flagger(2, amplitude_uv=0)


# ------------------------------------------------------------------ filters
def test_sos_filter_chunked_matches_scipy_with_carried_zi(data):
    rng = np.random.default_rng(4)
    sos = signal.butter(4, [8, 13], "bandpass", fs=FS, output="sos")
    filt = SosFilter(sos, 4)
    zi = np.zeros((sos.shape[0], 4, 2))
    for a, b in _chunks(4000, rng, max_len=40):
        chunk = np.ascontiguousarray(data[:, a:b])
        if b == a:
            assert filt.process(chunk).shape == (4, 0)
            continue
        ref, zi = signal.sosfilt(sos, chunk, axis=1, zi=zi)
        np.testing.assert_allclose(filt.process(chunk.copy()), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(filt.zi_scipy, zi, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sosfilt(sos, data), signal.sosfilt(sos, data, axis=1), atol=1e-10)


def test_sos_filter_reset_to_steady_state():
    sos = signal.butter(2, 40, fs=FS, output="sos")
    filt = SosFilter(sos, 2)
    filt.reset(level=np.array([5.0, -3.0]))
    out = filt.process(np.tile([[5.0], [-3.0]], (1, 50)))
    np.testing.assert_allclose(out, np.tile([[5.0], [-3.0]], (1, 50)), atol=1e-9)


def test_sos_must_be_normalised():
    with pytest.raises(ConfigError, match="sos.*shape \\(n_sections, 6\\)"):
        SosFilter(np.ones((2, 5)), 1)


# ------------------------------------------------------------------ spatial
def test_hjorth_weights_and_application(data):
    names = ["FC5", "C3", "FC1", "CP5", "CP1"]
    x = np.ascontiguousarray(np.vstack([data, data[:1] * 0.5]))
    w = hjorth_weights(names)
    np.testing.assert_array_equal(w, [[-0.25, 1.0, -0.25, -0.25, -0.25]])
    expected = x[1] - 0.25 * (x[0] + x[2] + x[3] + x[4])
    np.testing.assert_allclose(apply_weights(w, x)[0], expected, atol=1e-12)
    np.testing.assert_allclose(SpatialFilter.hjorth(names).process(x)[0], expected, atol=1e-12)


def test_arbitrary_weights_match_matmul(data):
    w = np.random.default_rng(5).standard_normal((3, 4))
    np.testing.assert_allclose(SpatialFilter(w).process(data), w @ data, atol=1e-10)


def test_hjorth_names_missing_channels():
    with pytest.raises(ConfigError, match=r"\['CP1', 'CP5'\]"):
        hjorth_weights(["C3", "FC1", "FC5"])


# ------------------------------------------------------------------ decimation
def test_decimator_chunked_equals_whole_array(data):
    rng = np.random.default_rng(6)
    dec = Decimator(4, 5)
    out = np.concatenate(
        [dec.process(np.ascontiguousarray(data[:, a:b])).copy() for a, b in _chunks(4000, rng)],
        1,
    )
    ref = signal.sosfilt(antialias_sos(5), data, axis=1)[:, ::5]
    assert out.shape == (4, 800)
    np.testing.assert_allclose(out, ref, atol=1e-10)
    np.testing.assert_allclose(decimate(data, 5), ref, atol=1e-10)


def test_antialias_filter_passes_mu_and_stops_above_nyquist():
    sos = antialias_sos(5)
    f, h = signal.sosfreqz(sos, worN=[10.0, 500.0, 700.0], fs=FS)
    assert abs(abs(h[0]) - 1) < 1e-3
    assert abs(h[2]) < 0.05


# ------------------------------------------------------------------ cleaning chain
def test_artifact_does_not_corrupt_filter_state():
    """Blank-then-filter: the artifact leaves no trace in the filter output."""
    rng = np.random.default_rng(7)
    n = 20000
    t = np.arange(n) / FS
    clean = np.vstack([20 * np.cos(2 * np.pi * 10 * t + p) for p in (0, 1)])
    clean += rng.standard_normal(clean.shape)
    onsets = [5000, 12000]
    dirty = clean.copy()
    art = 8000 * np.exp(-np.arange(100) / 8.0)
    for o in onsets:
        dirty[:, o : o + 100] += art
    sos = signal.butter(2, [8, 13], "bandpass", fs=FS, output="sos")

    def run(x):
        chain = CleaningChain(2, pre=2, post=125, sos=sos)
        for o in onsets:
            chain.add_onset(o)
        return np.concatenate(
            [chain.process(np.ascontiguousarray(x[:, a : a + 50])).copy() for a in range(0, n, 50)],
            1,
        )

    out = run(dirty)
    # the artifact-laden stream gives the same output as the artifact-free one
    np.testing.assert_allclose(out, run(clean), atol=1e-9)
    # and, outside the blanked windows plus 300 ms of settling, close to filtering the
    # clean stream with no blanking at all; an unprotected filter is far off
    ref = signal.sosfilt(sos, clean, axis=1)
    naive = signal.sosfilt(sos, dirty, axis=1)
    outside = np.ones(n, bool)
    for o in onsets:
        outside[o - 2 : o + 1500] = False
    err = np.abs(out - ref)[:, outside].max()
    naive_err = np.abs(naive - ref)[:, outside].max()
    assert err < 2.0, err  # µV, on a 20 µV rhythm
    assert naive_err > 10 * err, (naive_err, err)
    assert np.abs(out).max() < 40  # no multi-mV ringing anywhere


def test_chain_detects_unannounced_pulses():
    n = 5000
    x = np.zeros((1, n))
    x[0, 2000:2010] = 5000.0
    chain = CleaningChain(1, pre=0, post=40, detect_uv=1000.0)
    out = np.concatenate(
        [chain.process(x[:, a : a + 10].copy()).copy() for a in range(0, n, 10)], 1
    )
    assert np.abs(out).max() == 0.0


def test_warm_up_compiles_everything():
    assert warm_up() >= 0.0
