"""Errors written for the operator: a silent simulated unit is the simulator; a silent real
unit comes with the likely causes, most likely first."""

from __future__ import annotations

import os

import pytest

import labkit.sim  # noqa: F401 - registers the labkitsim:// URL scheme
from labkit.errors import StimulatorTimeoutError
from labkit.sim import MagProEmulator, MagstimEmulator
from labkit.stimulators import DuoMAG, MagPro, Magstim
from labkit.stimulators.ports import simulated_device

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")


@pytest.fixture
def silent_pty():
    """A serial port with nothing behind it: the unit is off, or it is the wrong port."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


def test_a_silent_simulated_unit_is_named_as_the_simulator():
    emulator = MagstimEmulator("200", pty=False)
    try:
        stim = Magstim(emulator.url, keepalive=False, timeout_s=0.2).connect()
        emulator.silent = True
        with pytest.raises(StimulatorTimeoutError) as info:
            stim.status()
        stim.close()
    finally:
        emulator.stop()
    message = str(info.value)
    assert message.startswith(
        f"the simulated Magstim 200² emulator did not answer within 0.20 s on "
        f"{emulator.url!r}: the simulator process is behind or stopped (a simulated rig; no "
        "cable or unit is involved)")
    assert "Likely causes" not in message
    assert simulated_device(emulator.url) is None  # forgotten once stopped


@posix_only
def test_the_simulators_pty_is_the_simulator_too():
    emulator = MagProEmulator("X100")
    try:
        assert (simulated_device(emulator.pty_path)
                == "the simulated MagVenture MagPro X100 emulator")
        stim = MagPro(emulator.pty_path, keepalive=False, timeout_s=0.2).connect()
        emulator.silent = True
        with pytest.raises(StimulatorTimeoutError, match=r"^the simulated MagVenture MagPro X100 "
                                                         r"emulator did not answer status "
                                                         r"\(0x00\) within 0.20 s"):
            stim.status()
        stim.close()
    finally:
        emulator.stop()


@posix_only
def test_a_silent_real_port_lists_the_likely_causes_in_order(silent_pty):
    stim = Magstim(silent_pty, keepalive=False, timeout_s=0.2)
    with pytest.raises(StimulatorTimeoutError) as info:
        stim.connect()
    message = str(info.value)
    assert message.startswith(f"Magstim on {silent_pty!r} did not answer within 0.20 s. "
                              "Likely causes, in order: (1) wrong port")
    order = [message.index(s) for s in ("(1) wrong port", "[stimulator] port",
                                        "python -m labkit.check", "(2) the serial cable",
                                        "(3) the unit is switched off",
                                        "(4) remote control is disabled on the unit's front "
                                        "panel")]
    assert order == sorted(order)
    assert "simulat" not in message
    assert not stim.connected


@posix_only
def test_a_duomag_has_no_remote_control_to_blame(silent_pty):
    stim = DuoMAG(silent_pty, keepalive=False, timeout_s=0.2)
    with pytest.raises(StimulatorTimeoutError) as info:
        stim.connect()
    message = str(info.value)
    assert f"DuoMAG on {silent_pty!r} sent no status frame" in message
    assert "(3) the unit is switched off" in message and "remote control" not in message
