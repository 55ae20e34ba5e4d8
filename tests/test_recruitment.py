"""Tests of IO-curve planning and the Boltzmann fit (labkit.recruitment)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from labkit.recruitment import (
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


def test_fit_recovers_parameters_from_noisy_data():
    x, y = synthetic_curve(0, np.arange(45, 86, 5))
    fit = fit_boltzmann(x, y)
    assert isinstance(fit, BoltzmannFit)
    assert fit.mep_max_identified
    assert fit.mep_max_uv == pytest.approx(2000.0, rel=0.1)
    assert fit.s50 == pytest.approx(62.0, abs=1.5)
    assert fit.slope == pytest.approx(4.0, rel=0.3)
    for name, truth in (("mep_max_uv", 2000.0), ("s50", 62.0), ("slope", 4.0)):
        lo, hi = fit.ci[name]
        assert lo < truth < hi, name
        assert lo < getattr(fit, name) < hi
    table = fit.to_frame()
    assert list(table.index) == ["mep_max_uv", "s50", "slope"]
    assert fit.predict(fit.s50) == pytest.approx(fit.mep_max_uv / 2, rel=1e-9)


def test_ci_coverage_is_reasonable():
    hits = 0
    for seed in range(40):
        x, y = synthetic_curve(seed, np.arange(45, 86, 5), cv=0.2)
        lo, hi = fit_boltzmann(x, y).ci["s50"]
        hits += lo < 62.0 < hi
    assert hits >= 32  # nominal 95 %; Wald intervals on this design cover ~90 % or more


def test_non_saturating_curve_is_flagged():
    x, y = synthetic_curve(1, np.arange(45, 66, 5))  # stops near s50 = 62
    fit = fit_boltzmann(x, y)
    assert not fit.mep_max_identified
    assert np.isfinite([fit.mep_max_uv, fit.s50, fit.slope]).all()
    assert fit.mep_max_uv <= 20 * y.max()


def test_fit_in_rmt_units():
    x, y = synthetic_curve(2, np.arange(90, 151, 10), s50=120.0, slope=8.0)
    fit = fit_boltzmann(x, y)
    assert fit.s50 == pytest.approx(120.0, abs=4.0)


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
