"""pyserial handler for ``labkitsim://<name>``: a port wired to a running emulator.

pyserial finds this module through ``serial.protocol_handler_packages`` (labkit.sim
registers ``labkit.sim.urlhandlers`` on import), so ``serial.serial_for_url`` and every
driver accept the emulator's :attr:`~labkit.sim.transport.SerialEmulator.url` as a port.
"""

from __future__ import annotations

from urllib.parse import urlparse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from labkit.sim.transport import URL_SCHEME, lookup


class Serial(SerialBase):
    """A serial port whose other end is an in-process emulator."""

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port is already open")
        self._emulator = lookup(self.from_url(self._port))
        self.is_open = True
        self._reconfigure_port()
        self._update_rts_state()  # like a real port: RTS takes its level when it opens

    def from_url(self, url: str) -> str:
        """Extract the emulator name from ``labkitsim://name``."""
        parts = urlparse(url)
        if parts.scheme != URL_SCHEME or not parts.netloc:
            raise SerialException(f"expected a URL of the form {URL_SCHEME}://<name>, got {url!r}")
        return parts.netloc

    def _reconfigure_port(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False
        self._emulator = None

    @property
    def in_waiting(self) -> int:
        self._check_open()
        return self._emulator.host_in_waiting()

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        return self._emulator.host_read(size, self._timeout)

    def write(self, data: bytes) -> int:
        self._check_open()
        data = bytes(data)
        self._emulator.host_write(data)
        return len(data)

    def flush(self) -> None:
        self._check_open()

    def reset_input_buffer(self) -> None:
        self._check_open()
        self._emulator.host_reset_input()

    def reset_output_buffer(self) -> None:
        self._check_open()

    def _update_rts_state(self) -> None:
        # RTS is wired to the emulated unit's TTL trigger input (MagPy's quickFire wiring)
        if self.is_open and self._emulator is not None:
            self._emulator.set_trigger_input(self._rts_state)

    def _update_dtr_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def _check_open(self) -> None:
        if not self.is_open or self._emulator is None:
            raise PortNotOpenError()
