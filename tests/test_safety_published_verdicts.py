"""Protocols with a verdict the literature gives, checked against labkit's safety check.

Each case cites where its verdict comes from. "safe" cases are regimens published and
used without the adverse events the rules guard against; "unsafe" ones are what Chen
1997 found unsafe, what lies beyond a Rossi 2009 table cell, or a loophole (a short pause
splitting one long train) that must not pass.
"""

from __future__ import annotations

import pytest

from labkit.errors import ConfigError
from labkit.protocols import Protocol, load_protocol
from labkit.safety import check_protocol
from labkit.stimulators.registry import MODELS

RMT = 50.0  # % MSO: 1 % MSO = 2 % RMT, every intensity below lands on the 1 % grid

ROSSI_2009 = "Rossi et al. 2009, Clin Neurophysiol 120:2008, Table 3"
CHEN_1997 = "Chen et al. 1997, Electroencephalogr Clin Neurophysiol 105:415"
LEFAUCHEUR = "Lefaucheur et al. 2014/2020 (10 Hz M1, 20 x 5 s trains, 1000 pulses)"
HOSOMI = "Hosomi et al. 2013, Pain 154:1065 (5 Hz, 10 x 10 s trains, 500 pulses)"
HUANG = "Huang et al. 2005, Neuron 45:201 (cTBS 40 s, iTBS 2 s on / 8 s off, 600 pulses)"


def protocol(*, hz: float, per_train: int, trains: int, iti_s: float, rel: float,
             pulses_per_burst: int = 1, ipi_ms: float | None = None,
             unit: str = "% RMT") -> Protocol:
    timing = {"bursts_per_train": per_train, "trains": trains, "inter_train_interval_s": iti_s,
              "pulses_per_burst": pulses_per_burst}
    if per_train > 1:
        timing["inter_burst_interval_ms"] = 1000.0 / hz
    if ipi_ms is not None:
        timing["inter_pulse_interval_ms"] = ipi_ms
    return Protocol.model_validate({
        "name": "case", "description": "published case", "references": ["see test"],
        "target": "M1", "coil": "figure-of-eight",
        "total_pulses": per_train * trains * pulses_per_burst,
        "intensity": {"unit": unit, "value": rel}, "timing": timing,
    })


CASES = [
    # (id, protocol kwargs, expected ok, text that must appear in a reason, source)
    ("10Hz-pain-20x5s-55s-90%", dict(hz=10, per_train=50, trains=20, iti_s=55, rel=90),
     True, None, LEFAUCHEUR),
    ("5Hz-hosomi-10x10s-50s-90%", dict(hz=5, per_train=50, trains=10, iti_s=50, rel=90),
     True, None, HOSOMI),
    ("20Hz-110%-5s-between", dict(hz=20, per_train=32, trains=10, iti_s=5, rel=110),
     True, None, f"{CHEN_1997}: 5 s between 20 Hz trains at 110 % MT was safe"),
    ("20Hz-110%-1s-between", dict(hz=20, per_train=32, trains=10, iti_s=1, rel=110),
     False, "must be >= 5 s", f"{CHEN_1997}: 1 s between trains unsafe above 100 % MT"),
    ("20Hz-110%-1.1s-between", dict(hz=20, per_train=32, trains=10, iti_s=1.1, rel=110),
     False, "must be >= 5 s", f"{CHEN_1997}: nothing between 1 and 5 s was shown safe"),
    ("20Hz-110%-2s-between", dict(hz=20, per_train=32, trains=10, iti_s=2, rel=110),
     False, "must be >= 5 s", f"{CHEN_1997}: nothing between 1 and 5 s was shown safe"),
    ("10Hz-5s-trains-0.1s-pauses", dict(hz=10, per_train=50, trains=60, iti_s=0.1, rel=90),
     False, "one continuous train", f"{ROSSI_2009} row 10 Hz (5 s) with {CHEN_1997}"),
    ("10Hz-4s-trains-4s-pauses-90%", dict(hz=10, per_train=40, trains=10, iti_s=4, rel=90),
     False, "one continuous train", f"{CHEN_1997}: pauses < 5 s not shown safe"),
    ("20Hz-2s-at-120%", dict(hz=20, per_train=40, trains=2, iti_s=30, rel=120),
     False, "row 20 Hz, column 120 %", f"{ROSSI_2009}: 1.0 s at 20 Hz, 120 % MT"),
    ("25Hz-1.28s-at-100%", dict(hz=25, per_train=32, trains=2, iti_s=30, rel=100),
     True, None, f"{ROSSI_2009}: 1.28 s at 25 Hz, 100 % MT"),
    ("25Hz-1.28s-at-110%", dict(hz=25, per_train=32, trains=2, iti_s=30, rel=110),
     False, "row 25 Hz, column 110 %", f"{ROSSI_2009}: 0.84 s at 25 Hz, 110 % MT"),
    ("1Hz-15min-110%", dict(hz=1, per_train=900, trains=1, iti_s=0, rel=110),
     True, None, f"{ROSSI_2009}: >1800 s at 1 Hz up to 110 % MT"),
    ("1Hz-15min-120%", dict(hz=1, per_train=900, trains=1, iti_s=0, rel=120),
     False, "row 1 Hz, column 120 %", f"{ROSSI_2009}: 360 s at 1 Hz, 120 % MT"),
    ("cTBS-40s-600", dict(hz=5, per_train=200, trains=1, iti_s=0, rel=80, pulses_per_burst=3,
                          ipi_ms=20), True, None, HUANG),
    ("iTBS-20x2s-8s-600", dict(hz=5, per_train=10, trains=20, iti_s=8, rel=80,
                               pulses_per_burst=3, ipi_ms=20), True, None, HUANG),
    ("TBS-as-200-one-burst-trains-0.04s-pauses",
     dict(hz=5, per_train=1, trains=200, iti_s=0.04, rel=80, pulses_per_burst=3, ipi_ms=20),
     False, "burst period across trains", f"{HUANG}: bursts at 5 Hz (200 ms) at most"),
    ("cTBS-split-into-trains-0.2s-apart-beyond-40s",
     dict(hz=5, per_train=100, trains=3, iti_s=0.2, rel=80, pulses_per_burst=3, ipi_ms=20),
     False, "one continuous train", f"{HUANG}: continuous TBS tested up to 40 s"),
]


@pytest.mark.parametrize(("case", "kwargs", "ok", "reason", "source"), CASES,
                         ids=[c[0] for c in CASES])
def test_published_verdict(case, kwargs, ok, reason, source):
    verdict = check_protocol(protocol(**kwargs), RMT)
    assert verdict.ok is ok, f"{case} ({source}): {verdict.summary()}"
    if reason is not None:
        assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_longest_tested_cells_are_flagged_in_the_verdict():
    verdict = check_protocol(protocol(hz=10, per_train=50, trains=2, iti_s=30, rel=90), RMT)
    assert verdict.ok and verdict.cell.longest_tested
    assert any("the longest train tested, not a proven limit" in p for p in verdict.passed)
    proven = check_protocol(protocol(hz=20, per_train=20, trains=2, iti_s=30, rel=90), RMT)
    assert not proven.cell.longest_tested
    assert not any("longest train tested" in p for p in proven.passed)


@pytest.mark.parametrize("pause", ["0.0", "-1.0", "nan", "1e-300", "0.009", "0.05"])
def test_absurd_pauses_are_refused_when_loading(tmp_path, pause):
    # 10 Hz trains: a pause shorter than the 100 ms pulse period is no pause at all
    path = tmp_path / "pauses.toml"
    path.write_text(f"""name = "pauses"
description = "10 Hz trains with an absurd pause"
references = ["test"]
target = "M1"
coil = "figure-of-eight"
total_pulses = 100
[intensity]
unit = "% RMT"
value = 90
[timing]
bursts_per_train = 50
inter_burst_interval_ms = 100
trains = 2
inter_train_interval_s = {pause}
""", encoding="utf-8")
    with pytest.raises(ConfigError, match="inter_train_interval_s") as info:
        load_protocol(path)
    assert str(path) in str(info.value)


def test_a_single_pulse_unit_is_refused_every_protocol_naming_the_model():
    verdict = check_protocol(protocol(hz=10, per_train=50, trains=20, iti_s=55, rel=90), RMT,
                             abilities=MODELS["magstim-200"].abilities)
    assert not verdict.ok
    assert any("Magstim 200² cannot deliver" in r and "not a repetitive" in r
               for r in verdict.reasons)


def test_a_rate_above_the_units_ceiling_is_refused_naming_the_model_and_source():
    # MagPro R30: 30 pulses/s at most; theta burst needs 50 Hz inside the burst
    itbs = protocol(hz=5, per_train=10, trains=20, iti_s=8, rel=80, pulses_per_burst=3,
                    ipi_ms=20)
    verdict = check_protocol(itbs, RMT, abilities=MODELS["magventure-r30"].abilities)
    assert not verdict.ok
    assert any("MagPro R30 cannot deliver 50 Hz" in r for r in verdict.reasons)
    assert check_protocol(itbs, RMT, abilities=MODELS["magventure-x100"].abilities).ok


def test_theta_burst_limits_are_labelled_huang_2005_or_rossi_2021():
    from labkit.safety import SafetyLimits, ThetaBurstLimits

    itbs_120 = protocol(hz=5, per_train=10, trains=20, iti_s=8, rel=120, pulses_per_burst=3,
                        ipi_ms=20)
    default = check_protocol(itbs_120, RMT)
    assert not default.ok
    assert any("120.0 % RMT: must be <= 80 % RMT (theta-burst limits, Huang 2005)" in r
               for r in default.reasons)
    rossi = SafetyLimits(theta_burst=ThetaBurstLimits.rossi_2021())
    assert rossi.looser_than() == []  # a published envelope needs no override
    verdict = check_protocol(itbs_120, RMT, rossi)
    assert verdict.ok, verdict.reasons
    assert any("(theta-burst limits, Rossi 2021)" in p for p in verdict.passed)
    beyond = SafetyLimits(theta_burst=ThetaBurstLimits(max_pulses=2400))
    assert any("max_pulses = 2400" in item for item in beyond.looser_than())
