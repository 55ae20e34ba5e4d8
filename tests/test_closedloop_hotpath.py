"""The loop's allocation-free per-chunk path equals the reference path it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.kernels import CleaningChain, hjorth_weights
from labkit.phase import PhaseTracker
from labkit.sim.eeg import CHANNELS, MuEEGSource

FS = 5000.0


def _chunks(n_total: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n_total:
        sizes.append(int(rng.integers(1, 23)))
    return sizes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_process_rows_equals_blank_then_spatial(dtype):
    data = MuEEGSource(seed=3, snr_db=5.0).generate(6000).astype(dtype)  # (n_ch, n)
    data[:, 2000:2003] += 5000.0  # an artifact inside the first window
    weights = hjorth_weights(CHANNELS)
    fast = CleaningChain(len(CHANNELS), 10, 50, weights=weights)
    ref = CleaningChain(len(CHANNELS), 10, 50, weights=weights)
    onsets = {0: [2001], 40: [4000, 4030], 300: [5990]}  # announced at these chunk numbers
    pos = 0
    n_blanked = 0
    for k, size in enumerate(_chunks(data.shape[1], 1)):
        for onset in onsets.get(k, []):
            fast.add_onset(onset)
            ref.add_onset(onset)
        rows = np.ascontiguousarray(data[:, pos:pos + size].T)  # as the inlet gives them
        y, valid = fast.process_rows(rows)
        expect = ref.process(np.ascontiguousarray(rows.T, dtype=np.float64))[0]
        np.testing.assert_array_equal(y, expect)
        np.testing.assert_array_equal(valid, ref.valid)
        n_blanked += int((~valid).sum())
        pos += rows.shape[0]
    # windows (onset - 10, onset + 50) exclusive: 59; 4000 and 4030 merged: 89; the last cut
    # at the end of the data: 19
    assert n_blanked == 59 + 89 + 19
    assert np.abs(y).max() < 1000.0


def test_process_rows_with_detection_takes_the_reference_path():
    data = MuEEGSource(seed=4, snr_db=5.0).generate(3000)
    data[:, 1500] += 5000.0  # nobody announced this one
    weights = hjorth_weights(CHANNELS)
    fast = CleaningChain(len(CHANNELS), 10, 50, weights=weights, detect_uv=1000.0)
    ref = CleaningChain(len(CHANNELS), 10, 50, weights=weights, detect_uv=1000.0)
    valid_all = []
    for pos in range(0, 3000, 5):
        rows = np.ascontiguousarray(data[:, pos:pos + 5].T)
        y, valid = fast.process_rows(rows)
        np.testing.assert_array_equal(y, ref.process(np.ascontiguousarray(rows.T))[0])
        valid_all.append(valid.copy())
    assert not np.concatenate(valid_all)[1500:1550].any()


def test_tracker_step_equals_update():
    x = MuEEGSource(seed=5, snr_db=0.0).generate(20000)
    y = (hjorth_weights(CHANNELS) @ x)[0]
    valid = np.ones(y.shape[0], bool)
    valid[7000:7300] = False
    y[12000] = np.nan
    fast = PhaseTracker(FS, 10.5, 8.0)
    ref = PhaseTracker(FS, 10.5, 8.0)
    pos = 0
    worst = 0.0
    for size in _chunks(y.shape[0], 2):
        seg, ok = y[pos:pos + size], valid[pos:pos + size]
        fast.step(np.ascontiguousarray(seg), np.ascontiguousarray(ok))
        ref.update(seg, ok)
        dphi = abs(np.angle(np.exp(1j * (fast.readout[0] - ref.phase))))
        worst = max(worst, dphi)
        assert fast.readout[1] == pytest.approx(ref.amplitude, rel=1e-9, abs=1e-12)
        assert fast.readout[2] == pytest.approx(ref.freq_hz, rel=1e-12)
        pos += size
    assert worst < 1e-9
    # and the read-out is the tracker's own
    assert fast.readout[0] == pytest.approx(fast.phase, abs=1e-12)
    assert fast.readout[2] == pytest.approx(fast.freq_hz, rel=1e-12)
