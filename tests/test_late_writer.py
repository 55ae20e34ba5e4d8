"""A driver whose thread is late after writing a command must not report a link fault.

On a loaded machine the thread that wrote a command may wait for the CPU when the write
returns. pyserial's POSIX write then raises ``Write timeout`` though every byte went out
(it checks its deadline after the system call), and the driver would latch a fault for
a command the unit received. Seen with the simulated lab in its own process beside two
busy processes: ``writing b'x@G' to '/dev/pts/0' failed: Write timeout``.
"""

from __future__ import annotations

import os
import time

import pytest

from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators.magstim import Magstim

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")


def test_a_command_written_by_a_late_thread_is_not_a_write_timeout(monkeypatch):
    emulator = MagstimEmulator("200", pty=True, arm_delay_s=0.0)
    stim = Magstim(emulator.pty_path, keepalive=False, timeout_s=0.3).connect()
    try:
        driver_fd = stim._serial.fileno()
        real_write = os.write
        late = []

        def write_then_wait(fd, data):
            written = real_write(fd, data)
            if fd == driver_fd:
                late.append(bytes(data[:written]))
                time.sleep(0.45)  # the writing thread waits for the CPU past the timeout
            return written

        monkeypatch.setattr(os, "write", write_then_wait)
        stim.set_intensity(42)
        monkeypatch.setattr(os, "write", real_write)
        assert late and stim.fault is None
        assert emulator.intensity_percent == 42  # the unit got the command
    finally:
        monkeypatch.undo()
        stim.close()
        emulator.stop()


def test_a_port_that_takes_no_bytes_still_times_out(monkeypatch):
    """The deadline still holds while bytes wait for a port that cannot take them."""
    import serial

    from labkit.stimulators.base import write_all

    emulator = MagstimEmulator("200", pty=True)
    port = serial.Serial(emulator.pty_path, timeout=0.1)
    try:
        def full(fd, data):
            raise BlockingIOError

        monkeypatch.setattr(os, "write", full)
        start = time.monotonic()
        with pytest.raises(serial.SerialTimeoutException, match="3 of 3 bytes unsent"):
            write_all(port, b"Q@n", 0.2)
        assert 0.15 <= time.monotonic() - start < 1.0
    finally:
        monkeypatch.undo()
        port.close()
        emulator.stop()
