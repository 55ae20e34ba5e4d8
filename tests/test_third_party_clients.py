"""Unmodified third-party clients (from PyPI) drive the emulators over their pty.

* MagPy (``magpy-tms`` 1.4, N. McNair) talks to the Magstim emulator as to a 200², a
  BiStim² and a Rapid². MagPy clears RTS when it opens the port; a pty has no modem
  lines, so that ioctl fails there. The fixture guards pyserial's RTS call on ptys only
  (MagPy's serial process is forked and inherits the guard); MagPy itself is untouched.
* magicpy 0.1.6 (O. Numssen, the Python port of MAGIC) talks to the MagPro emulator. It
  reads a fixed byte count after each command (8 after 0x06, 24 after enable): a unit
  answering the MAGIC way (``MagProEmulator.magic_style()``) satisfies it; the 0x0B
  timing-menu answer to 0x06 does not parse in magicpy, which the last test pins down.
"""

from __future__ import annotations

import os
import time

import pytest
import serial
import serial.serialposix
from third_party import require

import labkit.sim  # noqa: F401
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.sim.magstim_emulator import MagstimEmulator

pytestmark = [pytest.mark.skipif(os.name != "posix", reason="needs a pty"),
              pytest.mark.timeout(120)]


@pytest.fixture
def rts_guard(monkeypatch):
    """pyserial's RTS ioctl fails on a pty (no modem lines): ignore that, on ptys only."""
    original = serial.serialposix.Serial._update_rts_state

    def guarded(self):
        try:
            original(self)
        except OSError:
            if not os.path.basename(str(self.port)).isdigit():  # /dev/pts/N only
                raise

    monkeypatch.setattr(serial.serialposix.Serial, "_update_rts_state", guarded)


@pytest.fixture
def magstim_emulator():
    made = []

    def factory(model, **options):
        # MagPy pokes every 5 s while disarmed: give remote control 10 s.
        discharges = []
        emulator = MagstimEmulator(model, pty=True, keepalive_timeout_s=10.0,
                                   arm_delay_s=0.2, coil=discharges.append, **options)
        emulator.discharges = discharges
        made.append(emulator)
        return emulator

    yield factory
    for emulator in made:
        emulator.stop()


def _wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ----------------------------------------------------------------------------- MagPy
def test_magpy_drives_a_200(rts_guard, magstim_emulator):
    magstim = require("magpy.magstim")
    emulator = magstim_emulator("200")
    unit = magstim.Magstim(emulator.pty_path)
    unit.connect()
    try:
        assert unit.setPower(55, receipt=True)[0] == 0
        error, params = unit.getParameters()
        assert error == 0 and params["magstimParam"]["power"] == 55
        assert unit.arm(receipt=True)[0] == 0
        assert _wait_for(unit.isReadyToFire)
        error, reply = unit.fire(receipt=True)
        assert error == 0 and reply["instr"]["armed"] == 1
        assert emulator.pulses_delivered == 1
        assert emulator.discharges[-1].intensity_percent == 55.0
        error, temperature = unit.getTemperature()
        assert error == 0 and "magstimTemp" in temperature
    finally:
        unit.disconnect()
    assert not emulator.armed and not emulator.remote_control


def test_magpy_drives_a_bistim(rts_guard, magstim_emulator):
    magstim = require("magpy.magstim")
    emulator = magstim_emulator("bistim")
    unit = magstim.BiStim(emulator.pty_path)
    unit.connect()
    try:
        assert unit.setPowerA(60, receipt=True)[0] == 0
        assert unit.setPowerB(40, receipt=True)[0] == 0
        assert unit.setPulseInterval(15, receipt=True)[0] == 0
        error, params = unit.getParameters()
        assert error == 0
        assert (params["bistimParam"]["powerA"], params["bistimParam"]["powerB"],
                params["bistimParam"]["ppOffset"]) == (60, 40, 15)
        assert (emulator.intensity_percent, emulator.intensity_b_percent) == (60, 40)
    finally:
        unit.disconnect()


def test_magpy_drives_a_rapid_including_b_at(rts_guard, magstim_emulator):
    magstim = require("magpy.magstim")
    # MagPy 1.4 queries a Rapid's status with x@ only when it has an unlock code (without
    # one, its isEnhanced() reads a Rapid-status byte from the Q@ reply, which has none).
    emulator = magstim_emulator("rapid", unlock_code="1234-5678abcd-ef")
    unit = magstim.Rapid(emulator.pty_path, superRapid=0, voltage=240,
                         unlockCode="1234-5678abcd-ef")
    unit.connect()
    try:
        assert unit._version == emulator.software_version
        assert unit.setPower(40, receipt=True)[0] == 0
        assert unit.setFrequency(10, receipt=True)[0] == 0
        assert unit.setNPulses(20, receipt=True)[0] == 0
        error, params = unit.getParameters()
        assert error == 0
        assert (params["rapidParam"]["power"], params["rapidParam"]["frequency"],
                params["rapidParam"]["nPulses"]) == (40, 10.0, 20)
        # b@ (ignore coil safety switch): MagPy reads a 3-byte reply
        error, reply = unit.ignoreCoilSafetySwitch(receipt=True)
        assert error == 0 and "instr" in reply
        error, status = unit.getSystemStatus()
        assert error == 0 and "extInstr" in status
    finally:
        unit.disconnect()


# ----------------------------------------------------------------------------- magicpy
def test_magicpy_drives_a_magpro_answering_the_magic_way():
    magicpy = require("magicpy")
    emulator = MagProEmulator.magic_style(pty=True, seed=11)
    stim = magicpy.MagVenture(emulator.pty_path, wait_s=0.2, wait_l=0.2)
    stim.connect()
    try:
        status, error = stim.get_status()
        assert error == 0
        assert (status["Model"], status["Status"]) == ("X100", "Disabled")
        response, error = stim.set_amplitude(55, get_response=True)
        assert error == 0 and response["amplitudePercentage_A"] == 55
        response, error = stim.arm(get_response=True)  # reads 24 bytes: 3 messages
        assert error == 0 and response["Status"] == "Enabled"
        assert emulator.enabled and emulator.amplitude_percent == 55
        stim.fire(use_ttl=False)
        assert _wait_for(lambda: emulator.pulses_delivered == 1)
        response, error = stim.set_train(10, 20, 1, 2, get_response=True)  # reads 8 bytes
        assert error == 0 and response["amplitudePercentage_A"] == 55
        assert (emulator.train.rep_rate_hz, emulator.train.pulses_in_train) == (10.0, 20)
        status2, error = stim.get_status2()
        assert error == 0 and status2["amplitudePercentage_A"] == 55
        stim.disarm()
        assert _wait_for(lambda: not emulator.enabled)
    finally:
        stim.disconnect()
        emulator.stop()


def test_magicpy_cannot_parse_a_timing_menu_answer_to_0x06():
    # Why the driver accepts either answer to 0x06: a unit that answers with the 0x0B
    # timing menu (MagventurePyTMS's reading) breaks magicpy's 8-byte reader.
    magicpy = require("magicpy")
    emulator = MagProEmulator(pty=True, seed=11)
    stim = magicpy.MagVenture(emulator.pty_path, wait_s=0.2, wait_l=0.2)
    stim.connect()
    try:
        with pytest.raises(ValueError, match="unknown"):
            stim.set_train(10, 20, 1, 2, get_response=True)
        assert emulator.train.pulses_in_train == 20  # the unit took the settings
    finally:
        stim.disconnect()
        emulator.stop()
