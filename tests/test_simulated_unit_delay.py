"""A simulated unit with a command -> discharge delay, measured by the closed loop's own
calibration pulses on the simulated rig (profile ``[simulation] discharge_delay_ms``)."""

from __future__ import annotations

import re

import pytest

import labkit
from labkit.closedloop import ClosedLoopController
from labkit.errors import ConfigError
from labkit.profiles import load_profile

UNIT_DELAY_MS = 4.0


def _profile_text(delay_ms: float) -> str:
    text = load_profile("simulated-eeg").path.read_text()
    return re.sub(r"(?m)^\[simulation\]$", f"[simulation]\ndischarge_delay_ms = {delay_ms}",
                  text, count=1)


def test_the_loop_measures_the_simulated_units_delay(tmp_path):
    path = tmp_path / "slow-unit.toml"
    path.write_text(_profile_text(UNIT_DELAY_MS))
    # inline: each discharge is checked against its command's write to the millisecond; a
    # simulator in its own process acts when the command's bytes come out of the pty, which
    # the kernel may deliver milliseconds later on a loaded machine (as a wire would)
    with labkit.open_rig(path, seed=3, sim_process="inline") as rig:
        rig.eeg.disconnect()
        eeg = rig.hardware.eeg_stream
        rmt = rig.subject.resting_motor_threshold_percent
        rig.stimulator.set_intensity(int(round(rmt)))
        rig.rmt_percent = rmt
        with ClosedLoopController(rig.stimulator, eeg.name, source_id=eeg.source_id,
                                  mu_hz=10.5, condition="random", min_interval_s=1.0,
                                  max_pulses=4, calibration_pulses=3) as ctl:
            ctl.start()
            assert ctl.wait(30.0)
            ctl.stop()
        placed = [d.time_s for d, _ in rig.hardware.eeg_amplifier.placed]
    est = ctl.discharge_delay
    assert est is not None and est.n_found == 3
    assert abs(est.delay_s * 1000 - UNIT_DELAY_MS) < 0.5, est
    # the discharges really came that long after the commands were written
    assert len(placed) == len(ctl.triggers) == 4
    for t, d in zip(ctl.triggers, placed, strict=True):
        assert abs(d - t.fire_time_s - UNIT_DELAY_MS / 1000) < 0.001


def test_the_profile_field_is_checked(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(_profile_text(150))
    with pytest.raises(ConfigError, match="discharge_delay_ms"):
        load_profile(path)
