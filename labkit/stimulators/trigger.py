"""TTL trigger lines: fire a stimulator by a hardware edge instead of a serial command.

Many labs trigger the unit through its TTL input (lower and steadier latency than a
serial command) while intensity, arming and status still go over serial. A
:class:`TriggerLine` produces one pulse on a digital line and returns the
``local_clock()`` time of its rising edge; a driver uses it for :meth:`fire` after
:meth:`~labkit.stimulators.base.Stimulator.use_trigger`, so runners and the closed loop
need no change.

Lines provided:

* :class:`SerialLineTrigger` — the RTS (or DTR) modem line of a serial port, as MagPy's
  ``quickFire`` does on the Magstim's own port with a suitable cable, or of a separate
  USB-serial adapter wired to the unit's trigger input;
* :class:`ParallelPortTrigger` — a data bit of a parallel port (``pyparallel``, as
  magicpy's ``TriggerPort`` uses), the classic EEG-lab trigger.

A TTL pulse has no reply: the driver checks the unit is armed before the edge and, where
the unit reports discharges (MagPro di/dt, DuoMAG omitted-pulse count), confirms after it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import serial

from labkit.clock import local_clock
from labkit.errors import ConfigError, StimulatorError
from labkit.stimulators import ports

__all__ = ["ParallelPortTrigger", "SerialLineTrigger", "TriggerLine", "open_trigger_line"]

#: Default pulse width, s (TTL inputs of TMS units accept pulses from a few µs).
DEFAULT_WIDTH_S = 0.001


class TriggerLine(ABC):
    """One digital output line that can be pulsed.

    Parameters
    ----------
    width_s : float
        How long the line stays high, s (0 < width ≤ 0.1).
    """

    def __init__(self, width_s: float = DEFAULT_WIDTH_S) -> None:
        if isinstance(width_s, bool) or not isinstance(width_s, (int, float)) or not (
                0 < width_s <= 0.1):
            raise ConfigError(f"width_s must be a number in (0, 0.1] s, got {width_s!r}",
                              field="width_s")
        self.width_s = float(width_s)
        #: Pulses sent on this line.
        self.pulses = 0

    def pulse(self) -> float:
        """Raise the line, hold it ``width_s``, lower it.

        Returns
        -------
        float
            ``local_clock()`` taken just before the rising edge, s.
        """
        edge_s = local_clock()
        self._set(True)
        try:
            end = edge_s + self.width_s
            while (remaining := end - local_clock()) > 0:
                time.sleep(min(remaining, 0.0005))
        finally:
            self._set(False)
        self.pulses += 1
        return edge_s

    @abstractmethod
    def _set(self, level: bool) -> None:
        """Drive the line high (True) or low (False)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the hardware (lines that own it)."""

    def __enter__(self) -> TriggerLine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SerialLineTrigger(TriggerLine):
    """Pulse the RTS or DTR line of a serial port.

    Parameters
    ----------
    port : str | serial.SerialBase
        A device path / pyserial URL (opened exclusively here), or an open port shared
        with a driver (see :meth:`sharing`).
    line : {"rts", "dtr"}
        Which modem line.
    width_s : float
        Pulse width, s.
    """

    def __init__(self, port: str | serial.SerialBase, line: str = "rts",
                 width_s: float = DEFAULT_WIDTH_S) -> None:
        if line not in ("rts", "dtr"):
            raise ConfigError(f"line must be 'rts' or 'dtr', got {line!r}", field="line")
        super().__init__(width_s)
        self.line = line
        self._owned = isinstance(port, str)
        self._name = port if isinstance(port, str) else getattr(port, "port", repr(port))
        self._port = ports.open_exclusive(port, self) if isinstance(port, str) else port
        try:
            self._set(False)
        except StimulatorError:
            self.close()
            raise

    @classmethod
    def sharing(cls, stimulator, line: str = "rts",
                width_s: float = DEFAULT_WIDTH_S) -> SerialLineTrigger:
        """A line on the connected ``stimulator``'s own port (MagPy's ``quickFire`` way)."""
        port = getattr(stimulator, "_serial", None)
        if port is None:
            raise StimulatorError(f"{type(stimulator).__name__} is not connected: connect() "
                                  "before sharing its port for a trigger line")
        return cls(port, line=line, width_s=width_s)

    def _set(self, level: bool) -> None:
        try:
            setattr(self._port, self.line, level)
        except (serial.SerialException, OSError) as exc:
            raise StimulatorError(f"cannot drive {self.line.upper()} on {self._name!r} "
                                  f"({exc}); a pty has no modem lines") from exc

    def close(self) -> None:
        """Close the port if this line opened it."""
        if self._owned and self._port is not None:
            try:
                self._port.close()
            finally:
                ports.release(self._name, self)
                self._port = None


class ParallelPortTrigger(TriggerLine):
    """Pulse one data bit of a parallel port through ``pyparallel``.

    Parameters
    ----------
    port : int | str
        Parallel port number or device (``0``, ``"/dev/parport0"``).
    bit : int
        Data bit 0–7.
    width_s : float
        Pulse width, s.

    Raises
    ------
    StimulatorError
        If ``pyparallel`` is not installed or the port cannot be opened.
    """

    def __init__(self, port: int | str = 0, bit: int = 0,
                 width_s: float = DEFAULT_WIDTH_S) -> None:
        if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= 7:
            raise ConfigError(f"bit must be an integer 0..7, got {bit!r}", field="bit")
        super().__init__(width_s)
        try:
            import parallel
        except ImportError as exc:
            raise StimulatorError("ParallelPortTrigger needs the 'pyparallel' package "
                                  "(pip install pyparallel)") from exc
        try:
            self._port = parallel.Parallel(port)
        except Exception as exc:  # noqa: BLE001 - pyparallel raises bare OSError/IOError
            raise StimulatorError(f"cannot open parallel port {port!r}: {exc}") from exc
        self._mask = 1 << bit
        self._set(False)

    def _set(self, level: bool) -> None:
        self._port.setData(self._mask if level else 0)


def open_trigger_line(section, stimulator) -> TriggerLine:
    """The trigger line a profile's ``[stimulator.trigger]`` section describes.

    Parameters
    ----------
    section : labkit.profiles.TriggerSection
        The validated section.
    stimulator : Stimulator
        The connected driver, whose port an ``rts``/``dtr`` line without a ``port`` shares.

    Returns
    -------
    TriggerLine
        The open line, held low.

    Raises
    ------
    StimulatorError
        The line cannot be driven (for example a modem line of a pseudo-terminal, which
        has none) or its port cannot be opened.
    """
    width_s = section.width_ms / 1000.0
    if section.line == "parallel":
        return ParallelPortTrigger(section.port, bit=section.bit, width_s=width_s)
    if section.port is None:
        return SerialLineTrigger.sharing(stimulator, line=section.line, width_s=width_s)
    return SerialLineTrigger(section.port, line=section.line, width_s=width_s)
