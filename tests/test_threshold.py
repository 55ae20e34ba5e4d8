"""Tests of the motor-threshold estimators (labkit.threshold)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from labkit.errors import LabkitError
from labkit.threshold import (
    DEFAULT_ESTIMATOR,
    METHODS,
    BayesianAdaptive,
    MLPest,
    RelativeFrequency,
    StochasticApproximation,
    ThresholdInputError,
    ThresholdStateError,
    Trial,
    make_estimator,
)


class Oracle:
    """Synthetic subject with a known threshold.

    ``log10(amp / criterion) = k * (x - t + e)``, ``e ~ N(0, (r t)^2)``, floored at a
    noise level: P(amp >= criterion | x) = Phi((x - t) / (r t)) exactly, so ``t`` is the
    true threshold in the sense of the estimators.
    """

    def __init__(self, t, rng, r=0.07, k=0.15, criterion_uv=50.0, floor_uv=8.0):
        self.t, self.rng, self.r, self.k = t, rng, r, k
        self.c, self.floor = criterion_uv, floor_uv

    def __call__(self, x):
        e = self.rng.normal(0.0, self.r * self.t)
        amp = self.c * 10 ** (self.k * (x - self.t + e))
        return float(min(max(amp, self.floor + self.rng.random()), 5000.0))


def run(est, oracle):
    while not est.done:
        x = est.next_intensity()
        est.update(x, oracle(x))
    return est


def errors(method, n=24, seed=11, **kwargs):
    errs, pulses = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        t = rng.uniform(38.0, 68.0)
        est = run(make_estimator(method, start=60, **kwargs), Oracle(t, rng))
        errs.append(est.threshold - t)
        pulses.append(est.n_trials)
    return np.abs(np.array(errs)), np.array(pulses)


@pytest.mark.parametrize(
    ("method", "median_tol", "max_tol"),
    [("bayesian", 1.5, 4.0), ("mlpest", 1.5, 4.0), ("relative_frequency", 1.5, 4.0),
     ("stochastic", 2.0, 5.0)],
)
def test_each_method_recovers_known_thresholds(method, median_tol, max_tol):
    abs_err, pulses = errors(method)
    assert np.median(abs_err) <= median_tol, (method, np.median(abs_err))
    assert abs_err.max() <= max_tol, (method, abs_err.max())
    assert pulses.min() >= 1


def test_bayesian_uses_fewer_pulses_than_rr():
    assert issubclass(DEFAULT_ESTIMATOR, BayesianAdaptive)
    _, bayes = errors("bayesian", n=12)
    _, rr = errors("relative_frequency", n=12)
    assert bayes.mean() < 0.6 * rr.mean()
    assert bayes.max() <= 25


@pytest.mark.parametrize("method", sorted(METHODS))
def test_deterministic_for_a_seed(method):
    def history(seed):
        rng = np.random.default_rng(seed)
        return run(make_estimator(method, start=55), Oracle(47.3, rng)).history

    assert history(5) == history(5)
    assert history(5) != history(6)


def test_relative_frequency_follows_the_step_down_procedure_exactly():
    # Deterministic subject: MEP iff x >= 47.
    est = RelativeFrequency(start=60, coarse_step_percent=4)
    run(est, lambda x: 80.0 if x >= 47 else 10.0)
    assert est.threshold == 47.0
    levels = [tr.intensity_percent for tr in est.history]
    # 5 hits close a passing level, 6 misses a failing one.
    expected = [60] * 5 + [56] * 5 + [52] * 5 + [48] * 5 + [44] * 6 + [47] * 5 + [46] * 6
    assert levels == expected
    assert est.levels[47] == (5, 0, True) and est.levels[46] == (0, 6, False)


def test_relative_frequency_counts_five_of_ten():
    # Alternating responses: at a level, 5 hits among 9 pulses -> pass (early stop).
    seq = iter([True, False] * 200)
    est = RelativeFrequency(start=50, coarse_step_percent=1, max_trials=9)
    run(est, lambda x: 60.0 if next(seq) else 5.0)
    assert est.levels[50] == (5, 4, True)


def test_relative_frequency_steps_up_when_start_is_subthreshold():
    est = run(RelativeFrequency(start=30, coarse_step_percent=5), lambda x: 90 if x >= 42 else 0)
    assert est.threshold == 42.0


def test_threshold_above_range_gives_nan_and_stays_in_range():
    est = run(RelativeFrequency(start=90, max_percent=95), lambda x: 0.0)
    assert math.isnan(est.threshold)
    assert max(tr.intensity_percent for tr in est.history) == 95
    bay = run(BayesianAdaptive(start=90, max_percent=95), lambda x: 0.0)
    assert all(tr.intensity_percent <= 95 for tr in bay.history)
    assert bay.threshold > 90


def test_mlpest_ci_stop_and_interval():
    rng = np.random.default_rng(3)
    est = run(MLPest(start=60, ci_width_percent=8.0, max_trials=60), Oracle(50.0, rng))
    lo, hi = est.confidence_interval()
    assert hi - lo <= 8.0
    assert est.n_trials < 60
    assert lo <= est.threshold <= hi
    fixed = run(MLPest(start=60), Oracle(50.0, np.random.default_rng(3)))
    assert fixed.n_trials == 20  # MTAT 2.0 default count


def test_mlpest_first_stimulus_is_start_then_ml_estimate():
    est = MLPest(start=62)
    assert est.next_intensity() == 62
    est.update(62, 300.0)
    x = est.next_intensity()
    assert x < 62  # a hit moves the ML estimate down
    assert x == round(est.threshold)


def test_active_mode_uses_200_uv():
    est = make_estimator("mlpest", start=40, mode="active")
    assert est.criterion_uv == 200.0
    est.update(est.next_intensity(), 150.0)
    assert est.history[0].hit is False
    assert make_estimator("mlpest", criterion_uv=100.0).criterion_uv == 100.0


def test_history_records_trials():
    est = BayesianAdaptive(start=55)
    x = est.next_intensity()
    assert x == 55 and est.next_intensity() == 55  # idempotent until update
    est.update(x, 120.5)
    tr = est.history[0]
    assert isinstance(tr, Trial)
    assert (tr.index, tr.intensity_percent, tr.amplitude_uv, tr.hit) == (0, 55, 120.5, True)
    assert tr.estimate_percent == est.threshold
    with pytest.raises(dataclasses.FrozenInstanceError):
        tr.hit = False  # type: ignore[misc]


def test_bayesian_posterior_summaries():
    est = run(BayesianAdaptive(start=60), Oracle(45.0, np.random.default_rng(1)))
    assert est.posterior_sd() <= 2.0 or est.n_trials == est.max_trials
    lo, hi = est.credible_interval()
    assert lo < est.threshold < hi
    assert est.marginal_threshold().sum() == pytest.approx(1.0)
    binary = run(BayesianAdaptive(start=60, use_amplitudes=False),
                 Oracle(45.0, np.random.default_rng(1)))
    assert abs(binary.threshold - 45.0) < 4.0


@pytest.mark.parametrize("cls", [RelativeFrequency, MLPest, BayesianAdaptive,
                                 StochasticApproximation])
def test_update_without_next_intensity(cls):
    est = cls(start=50)
    with pytest.raises(ThresholdStateError, match="next_intensity"):
        est.update(50, 10.0)


@pytest.mark.parametrize(
    ("x", "amp", "match"),
    [
        (50, float("nan"), "amplitude_uv must be finite"),
        (50, -3.0, r"amplitude_uv must be a peak-to-peak value >= 0"),
        (50.5, 10.0, "intensity_percent must be on the 1 % MSO grid"),
        (120, 10.0, r"intensity_percent must be within \[1, 100\]"),
        (51, 10.0, "must be the proposed 50 % MSO, got 51"),
        ("abc", 10.0, "intensity_percent must be a number"),
    ],
)
def test_bad_update_arguments(x, amp, match):
    est = MLPest(start=50)
    est.next_intensity()
    with pytest.raises(ThresholdInputError, match=match):
        est.update(x, amp)
    est.update(50, 10.0)  # the pending stimulus survives a rejected update
    assert est.n_trials == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(start=0), r"start must be within \[1, 100\]"),
        (dict(start=101), r"start must be within \[1, 100\]"),
        (dict(start=60.5), "start must be on the 1 % MSO grid"),
        (dict(start=50, min_percent=60, max_percent=40), "min_percent"),
        (dict(start=50, mode="sleepy"), r"mode must be one of \['active', 'resting'\]"),
        (dict(start=50, criterion_uv=-1), "criterion_uv must be > 0"),
        (dict(start=50, max_trials=0), r"max_trials must be within \[1, 10000\]"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ThresholdInputError, match=match):
        BayesianAdaptive(**kwargs)


def test_errors_are_labkit_errors_and_value_errors():
    with pytest.raises(LabkitError):
        make_estimator("quest")
    with pytest.raises(ValueError, match="method must be one of"):
        make_estimator("quest")


def test_next_intensity_after_done_raises():
    est = MLPest(start=50, max_trials=2)
    run(est, lambda x: 100.0)
    assert est.done
    with pytest.raises(ThresholdStateError, match="done after 2 trials"):
        est.next_intensity()


def test_stimulus_grid_and_limits():
    for method in METHODS:
        est = make_estimator(method, start=40, min_percent=30, max_percent=70)
        run(est, Oracle(80.0, np.random.default_rng(0)))  # threshold above the range
        xs = [tr.intensity_percent for tr in est.history]
        assert all(isinstance(x, int) and 30 <= x <= 70 for x in xs), method


def test_history_frame_and_likelihood():
    est = run(MLPest(start=60, max_trials=6), Oracle(50.0, np.random.default_rng(2)))
    df = est.history_frame()
    assert list(df.columns) == ["index", "intensity_percent", "amplitude_uv", "hit",
                                "estimate_percent"]
    assert len(df) == 6 and list(df["intensity_percent"]) == [t.intensity_percent
                                                               for t in est.history]
    lik = est.likelihood()
    assert lik.max() == 1.0
    assert est.t_grid[np.argmax(lik)] == pytest.approx(est.threshold, abs=0.1)


def test_default_method_on_virtual_population():
    # The statistical MEP model of the simulated rig (Goetz et al. structure); a small
    # version of benchmarks/threshold_study.py.
    from labkit.sim.mep_model import sample_population

    errs, pulses = [], []
    for i, model in enumerate(sample_population(30, seed=99)):
        rng = np.random.default_rng([99, i])
        est = make_estimator(start=60)
        while not est.done:
            x = est.next_intensity()
            est.update(x, model.amplitude_uv(x, rng))
        errs.append(est.threshold - model.true_threshold_percent())
        pulses.append(est.n_trials)
    assert np.median(np.abs(errs)) <= 1.5
    assert np.mean(pulses) <= 17


def _expected_entropy_by_loops(est: BayesianAdaptive, x: float) -> float:
    """Expected entropy of the threshold posterior after one amplitude at ``x``, summed
    bin by bin with scipy's normal CDF over the whole grid: the quantity that
    ``placement="information"`` minimises, written out independently of it."""
    from scipy.stats import norm

    edges = np.linspace(np.log10(est.floor_fraction), np.log10(est.ceiling_factor),
                        est.information_bins + 1)
    bounds = [-np.inf, *edges, np.inf]
    t = est.t_grid[:, None, None]
    s = est.r_grid[None, :, None] * t
    k = est.k_grid[None, None, :]
    total = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        p_bin = norm.cdf((hi / k - (x - t)) / s) - norm.cdf((lo / k - (x - t)) / s)
        joint_t = (p_bin * est.joint_posterior).sum(axis=(1, 2))
        mass = joint_t.sum()
        if mass > 0:
            q = joint_t[joint_t > 0] / mass
            total += mass * float(-(q * np.log(q)).sum())
    return total


@pytest.mark.parametrize("responses", [[(10.0,)], [(900.0,), (12.0,)], [(30.0,), (70.0,)]])
def test_information_placement_minimises_the_expected_entropy_after_an_amplitude(responses):
    est = BayesianAdaptive(start=60, placement="information")
    for (amp,) in responses:
        est.update(est.next_intensity(), amp)
    x = est.next_intensity()
    centre = round(est.threshold)
    below, above = est.information_window_percent
    candidates = range(max(centre + below, 1), min(centre + above, 100) + 1)
    scores = {c: _expected_entropy_by_loops(est, c) for c in candidates}
    assert scores[x] == pytest.approx(min(scores.values()), rel=1e-6)


def test_information_placement_differs_from_the_median_and_is_deterministic():
    def hunt(placement):
        est = BayesianAdaptive(start=60, placement=placement)
        return [tr.intensity_percent for tr in run(est, Oracle(47.0, np.random.default_rng(4))
                                                    ).history]

    info = hunt("information")
    assert info == hunt("information")
    assert info != hunt("median")
    assert info[0] == 60


def test_information_placement_needs_the_amplitudes():
    with pytest.raises(ThresholdInputError, match="placement='information' needs use_amp"):
        BayesianAdaptive(placement="information", use_amplitudes=False)
    with pytest.raises(ThresholdInputError,
                       match=r"placement must be one of \('psi', 'median', 'information'\)"):
        BayesianAdaptive(placement="entropy")
