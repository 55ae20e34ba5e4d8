"""Background EMG criteria: at rest (RMS and peak-to-peak), active (contraction band)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.background import (
    BackgroundCriterion,
    BackgroundEMG,
    measure_background,
    mep_criterion_uv,
    mvc_uv,
)
from labkit.errors import ConfigError
from labkit.mep import peak_to_peak_uv

FS = 5000.0
T_MS = np.arange(-100.0, 100.0, 1000.0 / FS)


def _noise_sweep(rms_uv: float, seed: int) -> np.ndarray:
    """White noise of a given RMS over the whole sweep (no MEP at all)."""
    return np.random.default_rng(seed).normal(0.0, rms_uv, T_MS.size)


def test_criteria_per_mode_are_the_published_ones():
    assert mep_criterion_uv("rest") == 50.0 and mep_criterion_uv("active") == 200.0
    rest = BackgroundCriterion.rest()
    assert (rest.rms_limit_uv, rest.ptp_limit_uv, rest.mep_criterion_uv) == (10.0, 50.0, 50.0)
    assert BackgroundCriterion.active((10, 20)).mep_criterion_uv == 200.0


def test_the_old_20_uv_rms_limit_lets_noise_alone_pass_the_50_uv_criterion():
    # Why 10 µV: noise at 20 µV RMS, with no MEP at all, already exceeds 50 µV
    # peak-to-peak in the 15-50 ms MEP window, so it would count as an MEP.
    sweeps = np.array([_noise_sweep(19.0, seed) for seed in range(50)])
    ptp = peak_to_peak_uv(sweeps, T_MS, (15.0, 50.0))
    assert np.all(ptp > 50.0)
    rms = np.array([measure_background(T_MS, s).rms_uv for s in sweeps])
    assert np.all(rms < 20.0)  # every one passed the old rule
    rest = BackgroundCriterion.rest()
    assert not any(rest.judge(measure_background(T_MS, s)).accepted for s in sweeps)


def test_a_rest_trial_with_noise_only_50_uv_peak_to_peak_is_rejected():
    # RMS under the 10 µV limit, but the background alone spans more than 50 µV: what
    # reaches 50 µV before the pulse would pass as an MEP after it.
    found = None
    for seed in range(200):
        background = measure_background(T_MS, _noise_sweep(8.5, seed))
        if background.ptp_uv > 50.0:
            found = background
            break
    assert found is not None and found.rms_uv < 10.0
    verdict = BackgroundCriterion.rest().judge(found)
    assert not verdict.accepted
    assert verdict.reason.startswith("background peak-to-peak")
    assert "> 50 µV (MEP criterion)" in verdict.reason
    # a relaxed muscle (amplifier noise 1 µV) passes; 12 µV RMS does not
    assert BackgroundCriterion.rest().judge(measure_background(T_MS, _noise_sweep(1.0, 0))
                                            ).accepted
    too_much = BackgroundCriterion.rest().judge(measure_background(T_MS, _noise_sweep(12, 0)))
    assert not too_much.accepted and "RMS" in too_much.reason and "> 10 µV" in too_much.reason


def test_measure_background_uses_only_the_pre_stimulus_window():
    emg = np.where(T_MS < 0, np.sign(np.sin(T_MS)) * 3.0, 0.0) + 7.0  # ±3 µV square + DC
    emg[T_MS >= 0] = 5000.0  # a huge artifact/MEP after the pulse must not count
    b = measure_background(T_MS, emg)
    assert b.rms_uv == pytest.approx(3.0, rel=0.01)
    assert b.ptp_uv == pytest.approx(6.0) and b.rectified_mean_uv == pytest.approx(3.0, rel=0.01)
    assert b.window_ms == (-100.0, 0.0)
    assert math.isnan(measure_background(T_MS, emg, (-0.1, 0.0)).rms_uv)


def test_active_band_from_a_measured_mvc():
    crit = BackgroundCriterion.active_from_mvc(150.0)  # 10-20 % MVC
    assert crit.band_uv == pytest.approx((15.0, 30.0))
    assert crit.describe_band() == "15.0-30.0 µV (10-20 % MVC)"
    inside = BackgroundEMG(rms_uv=22.0, ptp_uv=140.0, rectified_mean_uv=17.0)
    assert crit.judge(inside).accepted  # a large ptp is fine when contracting
    low = crit.judge(BackgroundEMG(2.0, 10.0, 1.6))
    high = crit.judge(BackgroundEMG(45.0, 300.0, 36.0))
    assert not low.accepted and "RMS 2.0 µV below the contraction band" in low.reason
    assert not high.accepted and "45.0 µV above" in high.reason
    rect = BackgroundCriterion.active((10.0, 20.0), measure="rectified_mean")
    assert rect.judge(inside).accepted and not rect.judge(BackgroundEMG(22, 140, 25)).accepted
    assert not crit.judge(BackgroundEMG(math.nan, math.nan, math.nan)).accepted


def test_mvc_is_the_highest_sliding_window_level():
    rng = np.random.default_rng(4)
    emg = np.concatenate([rng.normal(0, 40.0, int(FS)), rng.normal(0, 150.0, int(FS)),
                          rng.normal(0, 60.0, int(FS))]) + 25.0  # DC offset ignored
    assert mvc_uv(emg, FS) == pytest.approx(150.0, rel=0.05)
    assert mvc_uv(emg, FS, measure="rectified_mean") == pytest.approx(
        150.0 * math.sqrt(2.0 / math.pi), rel=0.05)
    with pytest.raises(ConfigError, match="at least window_s"):
        mvc_uv(emg[:100], FS)


def test_bad_criteria_name_the_field():
    with pytest.raises(ConfigError, match="field 'rms_limit_uv'.*> 0"):
        BackgroundCriterion.rest(rms_limit_uv=0)
    with pytest.raises(ConfigError, match="field 'band_uv'.*low < high"):
        BackgroundCriterion.active((30.0, 15.0))
    with pytest.raises(ConfigError, match="field 'band_percent_mvc'"):
        BackgroundCriterion.active_from_mvc(150.0, (0.0, 20.0))
    with pytest.raises(ConfigError, match="field 'mvc_uv'"):
        BackgroundCriterion.active_from_mvc(float("nan"))
    with pytest.raises(ConfigError, match="field 'mode'"):
        BackgroundCriterion("tonic", band_uv=(1, 2))
    with pytest.raises(ConfigError, match="field 'measure'"):
        BackgroundCriterion.active((10, 20), measure="peak")
