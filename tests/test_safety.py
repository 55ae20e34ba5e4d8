"""Safety: the Rossi 2009 table cells, the ITI rule, lab limits and overrides, TBS."""

from __future__ import annotations

import pytest

from labkit.errors import ConfigError, SafetyError
from labkit.profiles import load_profile
from labkit.protocols import Protocol, load_protocol
from labkit.safety import (
    ROSSI_2009,
    SafetyLimits,
    SafetyOverride,
    check_protocol,
    require_safe,
)

RMT = 50.0  # % MSO: 1 % MSO = 2 % RMT, so every test intensity lands exactly on the grid


def rtms(frequency_hz: float, train_s: float, *, rel: float, trains: int = 2,
         iti_s: float = 30.0) -> Protocol:
    """A plain rTMS protocol at ``rel`` % RMT."""
    per_train = round(frequency_hz * train_s)
    return Protocol.model_validate({
        "name": f"{frequency_hz:g}Hz-{train_s:g}s", "description": "test", "references": ["t"],
        "target": "M1", "coil": "figure-of-eight", "total_pulses": per_train * trains,
        "intensity": {"unit": "% RMT", "value": rel},
        "timing": {"bursts_per_train": per_train, "inter_burst_interval_ms": 1000 / frequency_hz,
                   "trains": trains, "inter_train_interval_s": iti_s},
    })


def test_table_is_the_published_one_with_its_citation():
    assert ROSSI_2009.frequencies_hz == (1, 5, 10, 20, 25)
    assert ROSSI_2009.intensities_rmt_percent == (90, 100, 110, 120, 130)
    assert ROSSI_2009.max_train_s[2] == (5, 5, 5, 4.2, 2.9)
    assert ROSSI_2009.max_train_s[3] == (2.05, 2.05, 1.6, 1.0, 0.55)
    assert ROSSI_2009.max_train_s[0][3] == 360
    assert "Rossi S" in ROSSI_2009.citation and "2009" in ROSSI_2009.citation


def test_20_hz_2_s_at_120_percent_is_refused_naming_the_cell():
    verdict = check_protocol(rtms(20, 2.0, rel=120), RMT)
    assert not verdict.ok
    assert ("20 Hz at 120 % RMT: train 2.0 s > 1 s allowed "
            "(Rossi 2009 table, row 20 Hz, column 120 %)") in verdict.reasons
    assert verdict.cell.max_train_s == 1.0


def test_10_hz_5_s_at_90_percent_is_accepted():
    verdict = check_protocol(rtms(10, 5.0, rel=90), RMT)
    assert verdict.ok, verdict.reasons
    assert (verdict.cell.frequency_hz, verdict.cell.intensity_rmt_percent) == (10, 90)


def test_iti_1_s_at_110_percent_is_refused_but_5_s_is_fine():
    refused = check_protocol(rtms(10, 2.0, rel=110, iti_s=1.0), RMT)
    assert not refused.ok
    assert any(r.startswith("inter-train interval 1 s at 110 % RMT: must be >= 5 s") and
               "Chen" in r for r in refused.reasons)
    assert check_protocol(rtms(10, 2.0, rel=110, iti_s=5.0), RMT).ok


def test_iti_rule_applies_only_above_100_percent():
    assert check_protocol(rtms(10, 2.0, rel=100, iti_s=1.0), RMT).ok


def test_below_90_percent_uses_the_90_column():
    verdict = check_protocol(rtms(20, 2.0, rel=80), RMT)
    assert verdict.ok and verdict.cell.intensity_rmt_percent == 90


def test_between_columns_the_stricter_neighbour_applies():
    # 10 Hz at 116 % RMT lies between 110 % (5 s) and 120 % (4.2 s): 4.2 s governs
    refused = check_protocol(rtms(10, 4.5, rel=116), RMT)
    assert not refused.ok
    assert "row 10 Hz, column 120 %" in refused.reasons[0]
    assert check_protocol(rtms(10, 4.0, rel=116), RMT).ok


def test_between_rows_the_stricter_neighbour_applies():
    refused = check_protocol(rtms(15, 2.2, rel=90), RMT)  # 20 Hz row: 2.05 s
    assert not refused.ok and "row 20 Hz, column 90 %" in refused.reasons[0]


def test_outside_the_table_is_refused():
    too_fast = check_protocol(rtms(30, 0.2, rel=90), RMT)
    assert not too_fast.ok and "outside the Rossi 2009 table" in too_fast.reasons[0]
    too_strong = check_protocol(rtms(1, 10, rel=140), RMT)
    assert not too_strong.ok
    assert any("140.0 % RMT > 130 % RMT ceiling" in r for r in too_strong.reasons)


def test_delivered_intensity_after_rounding_is_what_is_checked():
    # 100 % of 55 % MSO is exact; 110 % of 55 = 60.5 -> 61 % MSO = 110.9 % RMT -> 120 column
    verdict = check_protocol(rtms(20, 1.5, rel=110), 55)
    assert verdict.intensity_percent == 61
    assert not verdict.ok and "column 120 %" in verdict.reasons[0]


def test_pulse_cap_and_mso_ceiling_from_the_device_profile():
    profile = load_profile("simulated")
    limits = SafetyLimits.from_profile(profile)
    assert limits.max_pulses_per_session == profile.limits.max_pulses_per_session
    p = load_protocol("m1_10hz_pain_1000")
    assert check_protocol(p, RMT, limits).ok
    capped = check_protocol(p, RMT, limits, pulses_delivered=2500)
    assert not capped.ok
    assert "3500 pulses this session (1000 + 2500 already) > 3000 allowed per session" in \
        capped.reasons[0]
    low_ceiling = limits.stricter(max_intensity_percent=40)
    refused = check_protocol(p, 60, low_ceiling)  # 80 % of 60 = 48 % MSO
    assert any("48 % MSO > 40 % MSO ceiling" in r for r in refused.reasons)


def test_stricter_lab_limits_apply_without_override():
    lab = SafetyLimits(table=ROSSI_2009.scaled(0.5), max_pulses_per_session=1500,
                       source="lab SOP 12")
    assert lab.looser_than() == []
    verdict = check_protocol(rtms(10, 5.0, rel=90), RMT, lab)
    assert not verdict.ok
    assert "train 5.0 s > 2.5 s allowed (Rossi 2009 table × 0.5, row 10 Hz" in verdict.reasons[0]
    capped = check_protocol(load_protocol("m1_10hz_pain_2000"), RMT, lab)
    assert any("2000 pulses > 1500 allowed per session (lab SOP 12)" in r for r in capped.reasons)


def test_looser_limits_need_an_override_and_it_is_logged():
    loose = SafetyLimits(max_pulses_per_session=5000, min_inter_train_interval_s=0.5)
    p = load_protocol("m1_10hz_pain_3000")
    refused = check_protocol(p, RMT, loose)
    assert not refused.ok
    assert "need a SafetyOverride(reason=..., approved_by=...)" in refused.reasons[0]
    assert "max_pulses_per_session = 5000 (published: 3000)" in refused.reasons[0]
    override = SafetyOverride(reason="ethics 2024-17 allows 5000 pulses", approved_by="Dr. A")
    events = []
    verdict = require_safe(p, RMT, loose, override=override, pulses_delivered=1500,
                           log=lambda kind, payload: events.append((kind, payload)))
    assert verdict.ok and verdict.override is override
    kinds = [k for k, _ in events]
    assert kinds == ["safety", "override"]
    assert events[1][1]["approved_by"] == "Dr. A"
    assert "max_pulses_per_session = 5000 (published: 3000)" in events[1][1]["looser_limits"]


def test_looser_table_is_detected():
    assert any("10 Hz at 90 % RMT: 10 s > 5 s" in item
               for item in SafetyLimits(table=ROSSI_2009.scaled(2)).looser_than())


def test_override_needs_reason_and_approver():
    with pytest.raises(ConfigError, match="override.approved_by"):
        SafetyOverride(reason="approved by ethics", approved_by=" ")
    with pytest.raises(ConfigError, match="override.reason"):
        SafetyOverride(reason="", approved_by="Dr. A")


def test_require_safe_raises_safety_error_with_the_cell():
    with pytest.raises(SafetyError, match=r"row 20 Hz, column 120 %") as info:
        require_safe(rtms(20, 2.0, rel=120), RMT)
    assert info.value.verdict.ok is False


def test_every_shipped_protocol_passes_at_a_typical_threshold():
    for name in ("m1_10hz_pain_1000", "m1_10hz_pain_2000", "m1_10hz_pain_3000", "m1_20hz",
                 "m1_5hz_hosomi_500", "m1_1hz_inhibitory", "sham_m1_10hz_pain", "dlpfc_10hz",
                 "itbs", "ctbs"):
        verdict = check_protocol(load_protocol(name), RMT, amt_percent=40)
        assert verdict.ok, (name, verdict.reasons)


def test_theta_burst_is_its_own_category():
    itbs = load_protocol("itbs")
    verdict = check_protocol(itbs, RMT, amt_percent=40)
    assert verdict.category == "theta-burst" and verdict.cell is None
    strong = itbs.model_copy(update={"intensity": itbs.intensity.model_copy(
        update={"value": 100, "max": 100})})
    refused = check_protocol(strong, RMT, amt_percent=45)  # 45 % MSO = 90 % RMT, 100 % AMT
    assert any("intensity 100.0 % AMT: must be <= 80 % AMT" in r for r in refused.reasons)
    assert any("intensity 90.0 % RMT: must be <= 80 % RMT" in r for r in refused.reasons)
    long_ctbs = load_protocol("ctbs")
    data = long_ctbs.model_dump()
    data["timing"]["bursts_per_train"] = 400
    data["total_pulses"] = 1200
    refused = check_protocol(Protocol.model_validate(data), RMT, amt_percent=40)
    assert any("train 80 s: must be <= 40 s" in r for r in refused.reasons)
    assert any("1200 pulses: must be <= 600" in r for r in refused.reasons)


def test_other_patterned_protocols_are_refused():
    data = load_protocol("itbs").model_dump()
    data["timing"]["pulses_per_burst"] = 4
    data["total_pulses"] = 800
    verdict = check_protocol(Protocol.model_validate(data), RMT, amt_percent=40)
    assert verdict.category == "patterned" and not verdict.ok
    assert "4-pulse bursts are neither plain rTMS" in verdict.reasons[-1]
