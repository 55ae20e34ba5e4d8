"""Protocol files: schema, shipped library, schedules, demo variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.protocols import Protocol, list_protocols, load_protocol, protocols_dir

REQUIRED = {
    "m1_10hz_pain_1000", "m1_10hz_pain_2000", "m1_10hz_pain_3000", "m1_5hz_hosomi_500",
    "m1_20hz", "m1_1hz_inhibitory", "itbs", "ctbs", "sham_m1_10hz_pain", "dlpfc_10hz",
}
#: Stated totals from the literature each file encodes.
STATED = {"m1_10hz_pain_1000": 1000, "m1_10hz_pain_2000": 2000, "m1_10hz_pain_3000": 3000,
          "m1_5hz_hosomi_500": 500, "itbs": 600, "ctbs": 600, "sham_m1_10hz_pain": 1000}

GOOD = (protocols_dir() / "m1_10hz_pain_1000.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_required_protocols_are_shipped():
    assert REQUIRED <= set(list_protocols())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_shipped_protocol_loads_and_its_pulse_count_matches(name):
    protocol = load_protocol(name)
    schedule = protocol.schedule(rmt_percent=50, amt_percent=40)
    assert len(schedule) == protocol.total_pulses == protocol.timing.total_pulses
    assert protocol.total_pulses == STATED.get(name, protocol.total_pulses)
    assert protocol.references and all(len(r) > 20 for r in protocol.references)
    assert protocol.name == name
    assert np.all(np.diff(schedule.times_s) > 0)


def test_classic_pain_protocol_is_20_trains_of_5_s_one_per_minute():
    p = load_protocol("m1_10hz_pain_1000")
    assert (p.timing.trains, p.timing.train_duration_s, p.timing.inter_train_interval_s) == (
        20, 5.0, 55.0)
    assert p.intensity.unit == "% RMT" and p.intensity.range == (80, 90)
    s = p.schedule(rmt_percent=55)
    assert s.times_s[49] == pytest.approx(4.9)
    assert s.times_s[50] == pytest.approx(60.0)  # 5 s train + 55 s pause
    assert s.times_s[-1] == pytest.approx(19 * 60 + 4.9)
    assert p.duration_s == pytest.approx(19 * 60 + 5)
    assert set(s.intensity_percent.tolist()) == {44}  # 80 % of 55 % MSO
    assert s.train[50] == 1 and s.burst[50] == 0


def test_sham_protocol_matches_real_timing_and_is_flagged():
    real, sham = load_protocol("m1_10hz_pain_1000"), load_protocol("sham_m1_10hz_pain")
    assert sham.sham and not real.sham
    assert sham.timing == real.timing
    assert "SHAM" in sham.summary()


def test_itbs_schedule_is_triplets_at_50_hz_in_bursts_at_5_hz():
    p = load_protocol("itbs")
    s = p.schedule(rmt_percent=60, amt_percent=50)
    np.testing.assert_allclose(s.times_s[:6], [0, 0.02, 0.04, 0.2, 0.22, 0.24])
    assert s.times_s[30] == pytest.approx(10.0)  # 2 s on + 8 s off
    assert p.duration_s == pytest.approx(192.0)
    assert set(s.intensity_percent.tolist()) == {40}  # 80 % AMT of 50 % MSO
    assert s.pulse_in_burst[:4].tolist() == [0, 1, 2, 0]


def test_ctbs_is_one_40_s_train():
    p = load_protocol("ctbs")
    assert p.timing.trains == 1 and p.timing.train_duration_s == pytest.approx(40.0)


def test_intensity_rounds_half_up_on_the_1_percent_grid():
    p = load_protocol("m1_10hz_pain_1000")
    assert p.intensity_percent(55, relative=90) == 50  # 49.5 -> 50
    assert p.intensity_percent(61) == 49  # 48.8 -> 49


def test_intensity_outside_the_protocol_range_is_refused():
    p = load_protocol("m1_10hz_pain_1000")
    with pytest.raises(ConfigError, match=r"95 % RMT is outside .* \[80, 90\] % RMT"):
        p.intensity_percent(50, relative=95)


def test_amt_protocol_needs_amt():
    with pytest.raises(ConfigError, match="amt_percent") as info:
        load_protocol("itbs").schedule(rmt_percent=50)
    assert info.value.field == "amt_percent"


def test_shortened_variant_is_clearly_labelled():
    p = load_protocol("m1_10hz_pain_1000")
    demo = p.shortened(trains=2, inter_train_interval_s=10)
    assert demo.name == "m1_10hz_pain_1000-demo-2of20trains"
    assert demo.description.startswith(
        "[SHORTENED FOR DEMO: 2 of 20 trains; 10 s instead of 55 s between trains; 100 of "
        "1000 pulses in all]")
    assert demo.shortened_from == "m1_10hz_pain_1000"
    assert demo.total_pulses == 100 and len(demo.schedule(50)) == 100
    assert demo.timing.inter_train_interval_s == 10
    with pytest.raises(ConfigError, match=r"trains must be in \[1, 20\]"):
        p.shortened(trains=21)


# ---------------------------------------------------------------------- schema errors
def test_wrong_total_names_file_field_and_computed_value(tmp_path):
    path = write(tmp_path, GOOD.replace("total_pulses = 1000", "total_pulses = 900"))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    text = str(info.value)
    assert str(path) in text
    assert "field 'total_pulses'" in text
    assert "says 900 but the timing gives 1000" in text
    assert info.value.field == "total_pulses"


def test_out_of_range_field_names_the_range(tmp_path):
    path = write(tmp_path, GOOD.replace("trains = 20", "trains = 0"))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    assert "field 'timing.trains': must be >= 1 (got 0)" in str(info.value)
    assert str(path) in str(info.value)


def test_bad_unit_lists_allowed_units(tmp_path):
    path = write(tmp_path, GOOD.replace('unit = "% RMT"', 'unit = "mT"'))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    text = str(info.value)
    assert "field 'intensity.unit'" in text and "'% RMT'" in text and "'% MSO'" in text
    assert "(got 'mT')" in text


def test_value_outside_its_own_range(tmp_path):
    path = write(tmp_path, GOOD.replace("value = 80", "value = 95"))
    with pytest.raises(ConfigError, match=r"field 'intensity': value 95 must lie in \[min, max\]"):
        load_protocol(path)


def test_typo_field_is_reported_not_ignored(tmp_path):
    path = write(tmp_path, GOOD.replace("trains = 20", "trains = 20\ntrian_count = 3"))
    with pytest.raises(ConfigError, match=r"field 'timing.trian_count': unknown field"):
        load_protocol(path)


def test_missing_field_and_no_pydantic_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace('target = "M1"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    assert "field 'target': required field is missing" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "pydantic" not in str(info.value) and "errors.pydantic.dev" not in str(info.value)


def test_overlapping_bursts_are_refused(tmp_path):
    text = (protocols_dir() / "itbs.toml").read_text().replace(
        "inter_burst_interval_ms = 200", "inter_burst_interval_ms = 30")
    with pytest.raises(ConfigError, match=r"bursts overlap: a burst spans 40 ms"):
        load_protocol(write(tmp_path, text))


def test_not_toml_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_protocol(write(tmp_path, "name = [unclosed"))
    with pytest.raises(ConfigError, match=r"no protocol named 'nope'(.|\n)*available: ctbs"):
        load_protocol("nope")


def test_model_validates_in_code_too():
    with pytest.raises(Exception, match="inter_burst_interval_ms is required"):
        Protocol.model_validate({
            "name": "x", "description": "x", "references": ["a reference"], "target": "M1",
            "coil": "fig8", "total_pulses": 10,
            "intensity": {"unit": "% RMT", "value": 90},
            "timing": {"bursts_per_train": 10, "trains": 1},
        })
