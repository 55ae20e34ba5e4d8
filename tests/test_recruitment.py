"""Tests of IO-curve planning and the Boltzmann fit (labkit.recruitment)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from labkit.recruitment import (
    IDENTIFIED,
    NOT_IDENTIFIED,
    BoltzmannFit,
    RecruitmentInputError,
    boltzmann,
    fit_boltzmann,
    plan_io_curve,
)


def test_plan_levels_counts_and_grid():
    plan = plan_io_curve(47, n_per_level=5, seed=1)
    # 47 % MSO x (0.9, 1.0, ..., 1.5) rounded to the 1 % grid
    assert Counter(plan) == {42: 5, 47: 5, 52: 5, 56: 5, 61: 5, 66: 5, 70: 5}
    assert all(isinstance(v, int) for v in plan)
    assert plan != sorted(plan)


def test_plan_is_seeded():
    assert plan_io_curve(50, seed=3) == plan_io_curve(50, seed=3)
    assert plan_io_curve(50, seed=3) != plan_io_curve(50, seed=4)
    rng = np.random.default_rng(9)
    assert len(plan_io_curve(50, (100, 120), 4, rng)) == 8


def test_plan_errors_name_the_level_and_range():
    with pytest.raises(RecruitmentInputError, match=r"level 150 % RMT = 105 % MSO .* \[1, 100\]"):
        plan_io_curve(70)
    with pytest.raises(RecruitmentInputError, match="rmt_percent"):
        plan_io_curve(float("nan"))
    with pytest.raises(RecruitmentInputError, match="n_per_level"):
        plan_io_curve(50, n_per_level=0)


def synthetic_curve(seed, x_levels, mep_max=2000.0, s50=62.0, slope=4.0, n=10, cv=0.25):
    rng = np.random.default_rng(seed)
    x = np.repeat(np.asarray(x_levels, float), n)
    y = boltzmann(x, mep_max, s50, slope) * rng.lognormal(0.0, cv, x.size) + rng.uniform(0, 20,
                                                                                        x.size)
    return x, y


def test_fit_recovers_a_known_curve_with_its_interval_covering_the_truth():
    x, y = synthetic_curve(1, np.arange(45, 86, 5))
    fit = fit_boltzmann(x, y)
    assert isinstance(fit, BoltzmannFit)
    assert fit.status == IDENTIFIED and fit.identified and fit.reason is None
    assert fit.mep_max_identified
    assert fit.mep_max_uv == pytest.approx(2000.0, rel=0.1)
    assert fit.s50 == pytest.approx(62.0, abs=1.5)
    assert fit.slope == pytest.approx(4.0, rel=0.3)
    assert 0 <= fit.baseline_uv <= 20  # the additive noise is uniform on [0, 20] µV
    for name, truth in (("mep_max_uv", 2000.0), ("s50", 62.0), ("slope", 4.0)):
        lo, hi = fit.ci[name]
        assert lo < truth < hi, name
        assert lo < getattr(fit, name) < hi
        assert fit.se[name] > 0
    table = fit.to_frame()
    assert list(table.index) == ["mep_max_uv", "s50", "slope", "baseline_uv"]
    assert fit.predict(fit.s50) == pytest.approx(fit.baseline_uv + fit.mep_max_uv / 2,
                                                 rel=1e-9)


def test_bootstrap_is_seeded():
    x, y = synthetic_curve(4, np.arange(45, 86, 5))
    a, b = fit_boltzmann(x, y, n_boot=60, seed=7), fit_boltzmann(x, y, n_boot=60, seed=7)
    assert a.ci == b.ci and a.se == b.se
    assert fit_boltzmann(x, y, n_boot=60, seed=8).ci != a.ci


def test_ci_coverage_is_reasonable():
    hits = {"mep_max_uv": 0, "s50": 0, "slope": 0}
    for seed in range(20):
        x, y = synthetic_curve(seed, np.arange(45, 86, 5), cv=0.2)
        fit = fit_boltzmann(x, y, n_boot=100, seed=seed)
        assert fit.identified, seed
        for name, truth in (("mep_max_uv", 2000.0), ("s50", 62.0), ("slope", 4.0)):
            lo, hi = fit.ci[name]
            hits[name] += lo < truth < hi
    # nominal 95 %; measured 18, 18 and 19 of 20 (percentile bootstrap, 100 refits)
    assert min(hits.values()) >= 16, hits


def test_non_saturating_curve_is_flagged():
    x, y = synthetic_curve(1, np.arange(45, 66, 5))  # stops near s50 = 62
    fit = fit_boltzmann(x, y)
    assert fit.identified  # S50 and its interval lie inside the tested range
    assert not fit.mep_max_identified
    assert np.isfinite([fit.mep_max_uv, fit.s50, fit.slope]).all()
    assert fit.mep_max_uv <= 20 * y.max()


def test_fit_in_rmt_units():
    x, y = synthetic_curve(2, np.arange(90, 151, 10), s50=120.0, slope=8.0)
    fit = fit_boltzmann(x, y)
    assert fit.s50 == pytest.approx(120.0, abs=4.0)


def assert_not_identified(fit, reason):
    assert fit.status == NOT_IDENTIFIED and not fit.identified
    assert re.search(reason, fit.reason), fit.reason
    assert np.isnan([fit.mep_max_uv, fit.s50, fit.slope, fit.baseline_uv]).all()
    assert np.isnan([v for pair in fit.ci.values() for v in pair]).all()
    assert np.isnan(fit.predict(60.0))
    assert not fit.mep_max_identified


X_LEVELS = np.repeat(np.arange(45.0, 86.0, 5.0), 6)


def test_flat_data_are_not_identified():
    assert_not_identified(fit_boltzmann(X_LEVELS, np.full(X_LEVELS.size, 80.0)),
                          "do not vary")
    noisy = np.random.default_rng(1).lognormal(np.log(80.0), 0.5, X_LEVELS.size)
    assert_not_identified(fit_boltzmann(X_LEVELS, noisy), "no increasing trend")


def test_all_zero_data_are_not_identified():
    assert_not_identified(fit_boltzmann(X_LEVELS, np.zeros(X_LEVELS.size)), "do not vary")


def test_decreasing_data_are_not_identified():
    rng = np.random.default_rng(2)
    y = boltzmann(X_LEVELS, 2000.0, 62.0, -4.0) * rng.lognormal(0.0, 0.25, X_LEVELS.size)
    assert_not_identified(fit_boltzmann(X_LEVELS, y), "no increasing trend")


@pytest.mark.parametrize("seed", range(6))
def test_s50_beyond_the_tested_range_is_not_identified(seed):
    x, y = synthetic_curve(seed, np.arange(40, 56, 5))  # true S50 62 % above the top level
    assert_not_identified(fit_boltzmann(x, y, n_boot=100), "S50 .*(outside|beyond) the tested "
                                                           r"range \[40, 55\]")


def test_noise_free_data_have_zero_standard_error_and_are_not_identified():
    x = np.repeat(np.arange(45.0, 86.0, 5.0), 4)
    assert_not_identified(fit_boltzmann(x, boltzmann(x, 2000.0, 62.0, 4.0), n_boot=50),
                          "standard error .* zero or undefined")


def test_a_step_between_two_levels_is_not_identified():
    x = np.repeat(np.arange(45.0, 86.0, 5.0), 6)
    y = np.where(x >= 65, 1500.0, 20.0) * np.random.default_rng(0).lognormal(0, 0.2, x.size)
    assert_not_identified(fit_boltzmann(x, y, n_boot=50), "no tested intensity on the rise")


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([50, 60, 70, 80], [10, 20, float("nan"), 40], "amplitude_uv must be finite"),
        ([50, 60, 70, 80], [10, -20, 30, 40], "amplitude_uv must be finite"),
        ([50, 60, 70], [10, 20, 30, 40], "intensity has 3 values but amplitude_uv has 4"),
        ([50, 50, 60, 60], [10, 20, 30, 40], "at least 3 intensities"),
    ],
)
def test_fit_bad_input(x, y, match):
    with pytest.raises(RecruitmentInputError, match=match):
        fit_boltzmann(x, y)


def test_fit_bad_options():
    x, y = [50, 60, 70, 80], [10, 20, 30, 40]
    with pytest.raises(RecruitmentInputError, match="n_boot must be an integer >= 50"):
        fit_boltzmann(x, y, n_boot=10)
    with pytest.raises(RecruitmentInputError, match="floor_uv must be > 0"):
        fit_boltzmann(x, y, floor_uv=0.0)
