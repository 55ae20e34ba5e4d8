"""Trigger policies and closed-loop configuration, without LSL or a stimulator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from labkit.closedloop import (
    ClosedLoopConfig,
    Estimate,
    TrackingConfig,
    TriggerConfig,
    TriggerPolicy,
)
from labkit.errors import ConfigError

F_HZ = 10.0


def _sine_estimate(t_s: float, amplitude: float = 5.0) -> Estimate:
    """A perfect tracker on cos(2 pi f t): phase 0 (peak) at t = 0."""
    return Estimate(math.remainder(2 * math.pi * F_HZ * t_s, 2 * math.pi), F_HZ, amplitude)


def _policy(**options) -> TriggerPolicy:
    options.setdefault("min_interval_s", 0.5)
    policy = TriggerPolicy(TriggerConfig(**options), mu_hz=F_HZ)
    policy.begin(0.0)
    return policy


def test_phase_fires_so_that_the_pulse_lands_on_the_target():
    # newest sample at t = 100.0 s is a peak; the trough comes 50 ms later; 4 ms delay
    policy = _policy(target_phase_rad=math.pi, horizon_s=0.003)
    est = _sine_estimate(100.0)
    assert policy.decide(100.040, 100.0, est, 0.004).reason == "wait"  # 6 ms to go
    d = policy.decide(100.045, 100.0, est, 0.004)
    assert d.fire and d.fire_at_s == pytest.approx(100.046)
    # the trough has passed for a pulse issued now: wait for the next one, never fire late
    assert policy.decide(100.049, 100.0, est, 0.004).reason == "wait"
    assert policy.decide(100.1455, 100.1, _sine_estimate(100.1), 0.004).fire_at_s == (
        pytest.approx(100.146))


@pytest.mark.parametrize("target", [math.pi, 0.0, math.pi / 2, -2.0])
def test_phase_policy_on_a_clean_sinusoid_hits_every_target(target):
    """1 ms turns, 5 ms transport lag, 7 ms loop delay: the pulse (fire_at + delay)
    lands on the target phase of the sinusoid, pulse after pulse."""
    policy = _policy(target_phase_rad=target, horizon_s=0.003, min_interval_s=0.3)
    lag, delay = 0.005, 0.007
    pulses = []
    for k in range(3000):
        now = 10.0 + k * 0.001
        d = policy.decide(now, now - lag, _sine_estimate(now - lag), delay)
        if d.fire:
            policy.fired(d.fire_at_s)
            pulses.append(d.fire_at_s + delay)
    assert len(pulses) >= 8
    err = [math.remainder(2 * math.pi * F_HZ * t - target, 2 * math.pi) for t in pulses]
    assert max(abs(e) for e in err) < 1e-6
    assert min(np.diff(pulses)) >= 0.3


def test_stale_interval_and_gate_block_every_condition():
    for cond, extra in (("phase", {}), ("random", {}), ("power", {"power_threshold_uv": 1.0})):
        policy = _policy(condition=cond, amplitude_gate_uv=2.0, max_sample_age_s=0.05, **extra)
        est = _sine_estimate(0.0)
        assert policy.decide(10.0, 9.9, est).reason == "stale"
        policy.fired(9.8)
        assert policy.decide(10.0, 9.999, est).reason == "interval"
        assert policy.decide(20.0, 19.999, _sine_estimate(0.0, amplitude=1.0)).reason == "gate"


def test_random_condition_is_seeded_and_draws_from_the_given_intervals():
    def run(seed):
        policy = TriggerPolicy(TriggerConfig(condition="random", min_interval_s=1.0,
                                             random_intervals_s=(1.0, 1.5, 2.25), seed=seed),
                               mu_hz=F_HZ)
        policy.begin(0.0)
        fired = []
        for k in range(20000):
            now = k * 0.001
            d = policy.decide(now, now - 0.001, _sine_estimate(now))
            if d.fire:
                policy.fired(d.fire_at_s)
                fired.append(d.fire_at_s)
        return np.array(fired)

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.round(np.diff(a), 3)) <= {1.0, 1.5, 2.25}
    assert len(set(np.round(np.diff(a), 3))) >= 2


def test_random_default_intervals_span_one_mu_period():
    policy = _policy(condition="random", min_interval_s=1.0)
    fired = []
    for k in range(30000):
        now = k * 0.001
        d = policy.decide(now, now, _sine_estimate(now))
        if d.fire:
            policy.fired(d.fire_at_s)
            fired.append(d.fire_at_s)
    iv = np.diff(fired)
    assert iv.min() >= 1.0 and iv.max() <= 1.0 + 1 / F_HZ + 0.001


@pytest.mark.parametrize(("state", "amplitude", "fires"),
                         [("high", 6.0, True), ("high", 4.0, False),
                          ("low", 4.0, True), ("low", 6.0, False)])
def test_power_condition_fires_in_its_state_at_any_phase(state, amplitude, fires):
    policy = _policy(condition="power", power_threshold_uv=5.0, power_state=state)
    d = policy.decide(3.0, 2.999, _sine_estimate(0.123, amplitude))
    assert d.fire is fires
    if fires:
        assert d.fire_at_s == 3.0
    assert math.isnan(policy.target_phase_rad)


def test_power_condition_needs_a_threshold():
    with pytest.raises(ConfigError) as err:
        TriggerConfig(condition="power")
    assert err.value.field == "power_threshold_uv"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"condition": "sometimes"}, "condition"), ({"min_interval_s": 0.01}, "min_interval_s"),
     ({"horizon_s": 1.0}, "horizon_s"), ({"random_intervals_s": [0.05]}, "random_intervals_s"),
     ({"power_state": "medium"}, "power_state"), ({"target_phase_rad": 9.0}, "target_phase_rad")],
)
def test_trigger_config_errors_name_the_field(options, field):
    with pytest.raises(ConfigError) as err:
        TriggerConfig(**options)
    assert err.value.field == field


def test_config_is_frozen_and_built_from_flat_options():
    cfg = ClosedLoopConfig.from_options(mu_hz=10.5, condition="random", blank_post_ms=15.0,
                                        max_pulses=20, target_phase_rad=-math.pi)
    assert cfg.tracking == TrackingConfig(10.5)
    assert cfg.trigger.condition == "random" and cfg.trigger.target_phase_rad == math.pi
    assert cfg.cleaning.blank_post_ms == 15.0 and cfg.run.max_pulses == 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trigger.min_interval_s = 0.1  # type: ignore[misc]
    other = cfg.replace(min_interval_s=3.0, mu_hz=9.0)
    assert other.trigger.min_interval_s == 3.0 and other.tracking.mu_hz == 9.0
    assert cfg.trigger.min_interval_s == 2.0  # the original is unchanged
    with pytest.raises(ConfigError, match="unknown closed-loop option 'min_interval'"):
        ClosedLoopConfig.from_options(mu_hz=10.5, min_interval=1.0)
    with pytest.raises(ConfigError) as err:
        ClosedLoopConfig.from_options(condition="phase")
    assert err.value.field == "mu_hz"
