"""A starved Magstim emulator: whose gap is it when the keep-alive timeout is judged late?

A real unit drops remote control (and disarms) ``keepalive_timeout_s`` after the host's
last valid command. The emulator judges that in its own threads; on a loaded host they
may wake late and find the host's next command already waiting at the input. That gap
is the simulator's, not the host's: the unit must not disarm for it. A host that really
stayed silent still loses the unit.
"""

from __future__ import annotations

import os
import time

import pytest
import serial

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.sim.magstim_emulator import MagstimEmulator


def _frame(body: bytes) -> bytes:
    return body + bytes([(~sum(body)) & 0xFF])


def _pause(emulator: MagstimEmulator) -> None:
    """Stop the emulator's threads without closing its ports: a starved emulator."""
    emulator._stop.set()
    for thread in emulator._threads:
        thread.join(timeout=2.0)
    emulator._threads = []


def _resume(emulator: MagstimEmulator) -> None:
    emulator.start()


def _armed_unit(transport: str):
    """An armed, remote-controlled unit and a host port on ``transport`` ("url"/"pty")."""
    emulator = MagstimEmulator("bistim", pty=transport == "pty", arm_delay_s=0.0)
    if transport == "pty":
        port = serial.Serial(emulator.pty_path, timeout=0.5)
    else:
        port = serial.serial_for_url(emulator.url, timeout=0.5)
    for command in (b"Q@", b"EB"):
        port.reset_input_buffer()
        port.write(_frame(command))
        assert len(port.read(3)) == 3
    assert emulator.remote_control and emulator.armed
    return emulator, port


def _transports() -> list[str]:
    return ["url", "pty"] if os.name == "posix" else ["url"]


@pytest.mark.parametrize("transport", _transports())
def test_a_starved_emulator_with_a_command_waiting_does_not_disarm(transport):
    emulator, port = _armed_unit(transport)
    try:
        _pause(emulator)
        port.reset_input_buffer()
        port.write(_frame(b"Q@"))  # the host's keep-alive, sent in time
        deadline = time.monotonic() + 1.0
        while not emulator.input_waiting():  # the pty hands the bytes over
            assert time.monotonic() < deadline, "the command never reached the unit's input"
            time.sleep(0.005)
        # the emulator wakes 1.5 s after the last command it handled (its own gap)
        emulator._last_valid = time.monotonic() - 1.5 * emulator.keepalive_timeout_s
        emulator.tick()
        assert emulator.remote_control and emulator.armed
        _resume(emulator)
        assert port.read(3)[:1] == b"Q"  # the waiting command is answered
        assert emulator.remote_control and emulator.armed
    finally:
        port.close()
        emulator.stop()


@pytest.mark.parametrize("transport", _transports())
def test_a_starved_emulator_with_nothing_waiting_disarms(transport):
    """The host really went silent past the timeout: the unit lets go, as a real one."""
    emulator, port = _armed_unit(transport)
    try:
        _pause(emulator)
        assert not emulator.input_waiting()
        emulator._last_valid = time.monotonic() - 1.5 * emulator.keepalive_timeout_s
        emulator.tick()
        assert not emulator.remote_control and not emulator.armed
    finally:
        port.close()
        emulator.stop()
