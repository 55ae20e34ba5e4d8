"""Every firing path of a rig obeys its profile's limits and the session's pulse count.

The limits come from a device profile (20 pulses per session, 40 % MSO); each path is
tried the way a lab would use it, without passing any limits, and the pulses are counted
at the emulator (what the unit delivered), not in labkit's own bookkeeping.
"""

from __future__ import annotations

import time

import pytest
from runner_helpers import rtms

import labkit
from labkit.errors import SafetyError
from labkit.profiles import LimitsSection, load_profile
from labkit.runner import ProtocolRunner
from labkit.safety import ProtocolRefusedError
from labkit.session import Session
from labkit.threshold import make_estimator
from labkit.widgets import ThresholdHunter

RMT = 50.0


def strict_profile(**limits):
    base = load_profile("simulated")
    section = LimitsSection(**{"max_pulses_per_session": 20, "max_intensity_percent": 40,
                               "min_single_pulse_interval_s": 0.3, **limits})
    return base.model_copy(update={"limits": section})


@pytest.fixture
def strict_rig():
    with labkit.open_rig(strict_profile(), seed=1) as rig:
        rig.hardware.emulator.recharge_s = 0.0
        yield rig


def delivered(rig) -> int:
    return rig.hardware.emulator.pulses_delivered


def test_profile_ceiling_refuses_rig_pulse_and_driver_alike(strict_rig):
    rig = strict_rig
    with pytest.raises(SafetyError, match=r"90 % MSO > 40 % MSO ceiling .*simulated"):
        rig.pulse(90)
    with pytest.raises(SafetyError, match="40 % MSO ceiling"):
        rig.stimulator.set_intensity(41)  # the bare driver of a rig keeps the ceiling
    assert delivered(rig) == 0 and not rig.hardware.emulator.armed
    assert rig.pulse(40).pulse.intensity_percent == 40
    assert delivered(rig) == 1


def test_runner_without_limits_uses_the_profile_and_nothing_is_armed(strict_rig):
    rig = strict_rig
    # 50 pulses at 60 % MSO (120 % of an RMT of 50): over the cap and the ceiling
    runner = ProtocolRunner(rig.stimulator, rtms(per_train=25, trains=2, rel=120), RMT,
                            progress=False)
    assert not runner.verdict.ok
    reasons = " ".join(runner.verdict.reasons)
    assert "50 pulses > 20 allowed per session" in reasons
    assert "60 % MSO > 40 % MSO ceiling" in reasons
    with pytest.raises(ProtocolRefusedError):
        runner.start()
    assert delivered(rig) == 0 and not rig.hardware.emulator.armed


def test_single_pulses_closer_than_the_profile_interval_are_refused(strict_rig):
    rig = strict_rig
    stim = rig.stimulator
    stim.set_intensity(30)
    stim.arm()
    stim.wait_ready()
    stim.fire()
    with pytest.raises(SafetyError, match=r"single pulses \d+ ms apart < 0.3 s minimum"):
        stim.fire()
    time.sleep(0.35)
    stim.fire()
    assert delivered(rig) == 2


def test_the_session_cap_counts_hunts_runners_device_trains_and_a_resume(tmp_path):
    profile = strict_profile(max_intensity_percent=100)
    with Session.open(tmp_path, "S01", 1) as session, \
            labkit.open_rig(profile, seed=1, session=session) as rig:
        rig.hardware.emulator.recharge_s = 0.0
        est = make_estimator("mlpest", start=50)
        for _ in range(4):  # four hunt pulses
            x = est.next_intensity()
            est.update(x, rig.pulse(x).amplitude_uv)
        rig.rmt_percent = RMT
        runner = rig.runner(rtms(per_train=5, trains=2, iti_s=5.0), progress=False)
        assert runner.run() == "finished"  # device-timed trains on the Rapid²
        assert runner.train_mode == "hardware"
        assert rig.pulses_delivered == 14 == delivered(rig)
        # another runner asking for 10 more is over the cap of 20 before anything is armed
        second = rig.runner(rtms(per_train=5, trains=2, iti_s=5.0), progress=False)
        assert not second.verdict.ok
        assert "24 pulses this session (10 + 14 already) > 20" in second.verdict.reasons[0]
        with pytest.raises(ProtocolRefusedError):
            second.start()
        assert delivered(rig) == 14
    # the log holds every pulse: hunt pulses as single pulses, runner pulses with the run
    with Session.resume(tmp_path, "S01", 1) as resumed:
        assert resumed.pulses_delivered == 14
        with labkit.open_rig(profile, seed=1, session=resumed) as rig:
            rig.hardware.emulator.recharge_s = 0.0
            assert rig.pulses_delivered == 14
            refused = ProtocolRunner(rig.stimulator, rtms(per_train=5, trains=2, iti_s=5.0),
                                     RMT, progress=False)  # no limits, no count passed
            assert not refused.verdict.ok
            for _ in range(6):
                rig.pulse(40)
            with pytest.raises(SafetyError, match=r"per-session cap: 20 pulses delivered"):
                rig.pulse(40)
            assert delivered(rig) == 6


def test_threshold_hunter_on_a_rig_obeys_the_ceiling(strict_rig):
    rig = strict_rig
    est = make_estimator("mlpest", start=60)  # its first pulse is above the 40 % ceiling
    hunter = ThresholdHunter(rig.stimulator, est, rig.emg, interval_s=0.3)
    try:
        hunter.fire()
        hunter.wait(10.0)
        assert "40 % MSO ceiling" in hunter.trial_label.value
        assert delivered(rig) == 0
    finally:
        hunter.stop()


def test_a_single_pulse_unit_refuses_a_protocol_naming_the_model():
    profile = load_profile("simulated")
    profile = profile.model_copy(update={
        "stimulator": profile.stimulator.model_copy(update={"model": "magstim-200"})})
    with labkit.open_rig(profile, seed=0) as rig:
        rig.rmt_percent = RMT
        runner = rig.runner(rtms(), progress=False)
        assert not runner.verdict.ok
        assert any("Magstim 200² cannot deliver" in r for r in runner.verdict.reasons)
        with pytest.raises(ProtocolRefusedError):
            runner.start()
        assert delivered(rig) == 0 and not rig.hardware.emulator.armed


def test_a_single_pulse_on_a_bistim_rig_is_output_a_alone():
    profile = load_profile("simulated")
    profile = profile.model_copy(update={
        "stimulator": profile.stimulator.model_copy(update={"model": "magstim-bistim"})})
    with labkit.open_rig(profile, seed=0) as rig:
        rig.hardware.emulator.recharge_s = 0.0
        assert rig.hardware.emulator.intensity_b_percent == 30  # the unit's B after power-up
        trial = rig.pulse(45)
        assert rig.hardware.emulator.intensity_b_percent == 0  # what the unit was told
        assert trial.pulse.intensity_percent == 45 and trial.pulse.intensity_b_percent == 0


# one vendor per driver class is enough: the Rapid variants share the Rapid driver
CONFORMANCE_MODELS = ["magstim-200", "magstim-bistim", "magstim-rapid2", "magventure-r30",
                      "magventure-x100", "deymed-duomag-mp", "deymed-duomag-mp-dual"]


@pytest.mark.parametrize("model", CONFORMANCE_MODELS)
def test_every_driver_on_its_emulator_obeys_the_profile_ceiling_and_interval(model):
    # rig.pulse returns once the MEP is measured (> 0.26 s with the amplifier's hold-back),
    # so the interval must be longer than that for the "at once" fire below to be early
    profile = strict_profile(min_single_pulse_interval_s=2.0)
    profile = profile.model_copy(update={
        "stimulator": profile.stimulator.model_copy(update={"model": model})})
    with labkit.open_rig(profile, seed=0) as rig:
        emulator = rig.hardware.emulator
        if hasattr(emulator, "recharge_s"):
            emulator.recharge_s = 0.0
        with pytest.raises(SafetyError, match="40 % MSO ceiling"):
            rig.stimulator.set_intensity(41)
        rig.pulse(40)
        stim = rig.stimulator
        with pytest.raises(SafetyError, match="single pulses .* apart < 2 s minimum"):
            stim.fire()  # at once, without waiting out the profile's interval
        assert emulator.pulses_delivered == 1 == rig.pulses_delivered
