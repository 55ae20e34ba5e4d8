"""Paired pulse (SICI, ICF, LICI): plan, interval checks, ratios and CIs, recovery."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.errors import ConfigError
from labkit.excitability import run_paired_pulse
from labkit.pairedpulse import (
    Condition,
    PairedPulseProtocol,
    TestIntensitySearch,
    check_ipi,
    standard_conditions,
)
from labkit.profiles import load_profile
from labkit.sim.events import Discharge
from labkit.sim.subject import VirtualSubject


def test_intervals_outside_the_unit_are_refused_naming_it():
    assert check_ipi(2.5, "magstim-bistim") == 2.5  # high-resolution mode
    assert check_ipi(150, "magstim-bistim") == 150.0
    for bad in (0.05, 2.55, 120.5, 1000, float("nan"), "3"):
        with pytest.raises(ConfigError, match="magstim-bistim's range"):
            check_ipi(bad, "magstim-bistim")
    with pytest.raises(ConfigError, match="unknown paired-pulse unit"):
        check_ipi(3, "duomag")
    with pytest.raises(ConfigError, match="magstim-bistim's range"):
        PairedPulseProtocol([Condition("test", 60), Condition("X", 60, 40, 1500.0)])


def test_standard_conditions_and_randomised_order():
    conds = standard_conditions(62, rmt_percent=50.0, amt_percent=40.0)
    assert [(c.name, c.conditioning_percent, c.ipi_ms) for c in conds] == [
        ("test", None, None), ("SICI", 32, 2.5), ("ICF", 32, 12.0), ("LICI", 62, 100.0)]
    assert standard_conditions(62, rmt_percent=50.0)[1].conditioning_percent == 35
    a = PairedPulseProtocol(conds, n_per_condition=10, seed=4)
    b = PairedPulseProtocol(conds, n_per_condition=10, seed=4)
    assert a.order == b.order and sorted(a.order) == sorted(list(range(4)) * 10)
    assert a.order != sorted(a.order)
    with pytest.raises(ConfigError, match="exactly one test-alone"):
        PairedPulseProtocol(conds[1:])


def test_ratios_and_bootstrap_ci_on_known_data():
    proto = PairedPulseProtocol([Condition("test", 60), Condition("SICI", 60, 35, 2.5)],
                                n_per_condition=4, seed=0)
    values = {"test": [900.0, 1100.0, 1000.0, 1000.0], "SICI": [400.0, 600.0, 500.0, 500.0]}
    seen = {"test": 0, "SICI": 0}
    while not proto.done:
        name = proto.next_condition().name
        proto.record(values[name][seen[name]])
        seen[name] += 1
    r = proto.result()
    assert r.means_uv == {"test": 1000.0, "SICI": 500.0}
    est = r.ratios["SICI"]
    assert est.ratio == pytest.approx(0.5) and est.n == 4
    # resampled means lie within [min, max] of each group: 400/1100 ... 600/900
    assert 400 / 1100 <= est.ci_low < 0.5 < est.ci_high <= 600 / 900


def test_test_intensity_search_reaches_the_band():
    search = TestIntensitySearch(50, target_uv=1000.0, step_percent=2, block=3)
    while not search.done:
        x = search.next_intensity()
        search.update(1000.0 * 2 ** ((x - 60) / 4))  # 1 mV at 60 %MSO, doubles per 4 %
    assert abs(search.intensity - 60) <= 1
    assert search.blocks[0] == (50, pytest.approx(1000.0 * 2 ** -2.5))


def _run_offline(subject: VirtualSubject, n_per_condition: int, seed: int):
    rmt = subject.resting_motor_threshold_percent
    search = TestIntensitySearch(min(100, round(1.2 * rmt)))
    t = 0.0
    while not search.done:
        x = search.next_intensity()
        search.update(subject.respond(Discharge(t, x, "offline")).amplitude_uv)
        t += 5.0
    proto = PairedPulseProtocol(
        standard_conditions(search.intensity, rmt, subject.active_motor_threshold_percent),
        n_per_condition=n_per_condition, seed=seed)
    while not proto.done:
        c = proto.next_condition()
        d = (Discharge(t, c.conditioning_percent, "offline", c.test_percent, c.ipi_ms)
             if c.paired else Discharge(t, c.test_percent, "offline"))
        proto.record(subject.respond(d).amplitude_uv)
        t += 5.0
    return proto


def test_ratios_recovered_against_the_subjects_truth():
    """30 subjects, 15 trials per condition, TS at ~1 mV: CIs cover the true ratio."""
    covered = {"SICI": 0, "ICF": 0, "LICI": 0}
    errors = {k: [] for k in covered}
    for seed in range(30):
        subject = VirtualSubject(seed=seed)
        proto = _run_offline(subject, 15, seed)
        result = proto.result()
        for c in proto.conditions:
            if not c.paired:
                continue
            truth = subject.paired_pulse_ratio(c.ipi_ms, c.conditioning_percent, c.test_percent)
            est = result.ratios[c.name]
            covered[c.name] += est.ci_low <= truth <= est.ci_high
            errors[c.name].append(est.ratio - truth)
    for name in covered:
        assert covered[name] >= 24, (name, covered[name])  # >= 80 % of nominal-95 % CIs
        assert abs(np.mean(errors[name])) <= 0.1, (name, np.mean(errors[name]))
    assert np.median(errors["SICI"]) < 0.1 and np.median(errors["LICI"]) < 0.1


def test_paired_pulse_block_on_the_simulated_bistim_rig():
    profile = load_profile("simulated")
    profile = profile.model_copy(update={"stimulator": profile.stimulator.model_copy(
        update={"model": "magstim-bistim"})})
    with labkit.open_rig(profile, seed=3) as rig:
        subject = rig.subject
        rmt = subject.resting_motor_threshold_percent
        proto = PairedPulseProtocol(standard_conditions(round(1.3 * rmt), rmt),
                                    n_per_condition=2, seed=1)
        rows = run_paired_pulse(rig, proto)
        truth = subject.responses
    assert len(rows) == len(truth) == 8
    for row, response in zip(rows, truth, strict=True):
        assert row["mep_ptp_uv"] == pytest.approx(response.amplitude_uv, rel=0.05, abs=5.0)
        expected = {"test": 1.0}.get(row["condition"])
        if expected is not None:
            assert response.paired_factor == expected
        else:
            assert response.paired_factor != 1.0


def test_paired_pulse_needs_a_paired_pulse_stimulator_and_respects_the_ceiling():
    with labkit.open_rig("simulated", seed=1) as rig:  # a Magstim 200²
        with pytest.raises(ConfigError, match="cannot deliver paired pulses"):
            rig.paired_pulse(30, 60, 2.5)
        with pytest.raises(ConfigError, match="max_intensity_percent"):
            from labkit.excitability import fire_paired

            limits = rig.profile.limits.model_copy(update={"max_intensity_percent": 50})
            rig.profile = rig.profile.model_copy(update={"limits": limits})
            fire_paired(rig, 30, 60, 2.5)
        assert rig.subject.responses == []  # nothing fired
