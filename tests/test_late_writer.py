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


def test_a_blocking_port_that_is_full_times_out_instead_of_hanging():
    """pyserial opens POSIX ports non-blocking; a port handed over blocking must still
    time out while it cannot take bytes (the writer must not hang in the system call).

    The full port is one end of a socket pair whose other end nobody reads: unlike a pty,
    where a kernel worker moves bytes on and frees room at its own pace, it stays full.
    """
    import socket
    import threading

    import serial

    from labkit.stimulators.base import write_all

    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        for chunk in (b"x" * 1024, b"x"):  # nobody reads the other end: fill the line
            try:
                while True:
                    ours.send(chunk)
            except BlockingIOError:
                pass
        ours.setblocking(True)
        assert os.get_blocking(ours.fileno())

        class BlockingPort:
            def fileno(self) -> int:
                return ours.fileno()

        outcome = []

        def write() -> None:
            try:
                write_all(BlockingPort(), b"Q@n", 0.2)
            except serial.SerialTimeoutException as error:
                outcome.append(str(error))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout=3.0)
        assert not writer.is_alive(), "write_all hung on a full blocking port"
        assert outcome and "3 of 3 bytes unsent" in outcome[0]
    finally:
        theirs.close()
        ours.close()


def test_the_drivers_ports_are_non_blocking():
    """What write_all's fast path relies on: pyserial opens a POSIX port non-blocking."""
    emulator = MagstimEmulator("200", pty=True)
    stim = Magstim(emulator.pty_path, keepalive=False, timeout_s=0.3).connect()
    try:
        assert not os.get_blocking(stim._serial.fileno())
    finally:
        stim.close()
        emulator.stop()
