"""A TTL box wired to an emulated unit's trigger input (the simulated USB-TTL/parallel line)."""

from __future__ import annotations

from labkit.sim.transport import SerialEmulator
from labkit.stimulators.trigger import DEFAULT_WIDTH_S, TriggerLine

__all__ = ["WiredTrigger"]


class WiredTrigger(TriggerLine):
    """A trigger line whose other end is ``emulator``'s TTL input.

    Stands for a parallel port or USB-TTL box cabled to the unit's trigger input: the
    driver keeps its serial port for intensity, arming and status.

    Parameters
    ----------
    emulator : SerialEmulator
        The emulated unit.
    width_s : float
        Pulse width, s.
    """

    def __init__(self, emulator: SerialEmulator, width_s: float = DEFAULT_WIDTH_S) -> None:
        super().__init__(width_s)
        self.emulator = emulator

    def _set(self, level: bool) -> None:
        self.emulator.set_trigger_input(level)
