"""What a stimulator model can do, declared once per model (pure; no I/O).

Consumers (the safety check, the protocol runner, panels, the simulator) read these
declarations instead of probing a driver for method names:

``single_pulse``
    Fires one pulse on command (:meth:`~labkit.stimulators.base.Stimulator.fire`).
``repetitive``
    Can deliver rTMS: pulses at a set rate, timed by the host or by the unit. A unit
    without it (Magstim 200², BiStim²) recharges between pulses and is refused every
    protocol.
``device_train``
    Paces a train on its own clock (:class:`DeviceTrain`).
``paired_pulse``
    Two outputs at a set inter-pulse interval (BiStim²; DuoMAG MP-Dual).
``ttl_trigger``
    Takes a TTL edge on its trigger input: :class:`TTLTrigger` (``use_trigger``) makes
    ``fire()`` pulse a :class:`~labkit.stimulators.trigger.TriggerLine` instead of
    sending the serial fire command.
``coil_temperature``
    Reports its coil's temperature in °C
    (:meth:`~labkit.stimulators.base.Stimulator.coil_temperature_c`).
``max_rate_hz``
    The highest repetition rate at a given power, % MSO (the unit's own ceiling table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Abilities", "DeviceTrain", "PairedPulse", "SinglePulse", "TTLTrigger"]


@dataclass(frozen=True)
class Abilities:
    """The declared abilities of one stimulator model.

    Attributes
    ----------
    model : str
        How messages name the unit (``"Magstim 200²"``).
    single_pulse, repetitive, device_train, paired_pulse, ttl_trigger : bool
    coil_temperature : bool
        See the module docstring.
    max_rate : callable | None
        ``max_rate(power_percent) -> Hz`` for repetitive units; ``None`` otherwise.
    rate_source : str
        Where the rate ceiling comes from (for refusals).
    """

    model: str
    single_pulse: bool = True
    repetitive: bool = False
    device_train: bool = False
    paired_pulse: bool = False
    separate_outputs: bool = False
    max_rate: Callable[[int], float] | None = None
    rate_source: str = ""
    ttl_trigger: bool = True
    coil_temperature: bool = False

    def max_rate_hz(self, power_percent: int) -> float | None:
        """Highest repetition rate at ``power_percent`` % MSO (``None``: not repetitive)."""
        if not self.repetitive or self.max_rate is None:
            return None
        return float(self.max_rate(int(power_percent)))

    def describe(self) -> str:
        """``"Magstim Rapid²: single pulse, repetitive, device-timed trains"``."""
        can = [name.replace("_", " ") for name in
               ("single_pulse", "repetitive", "device_train", "paired_pulse")
               if getattr(self, name)]
        return f"{self.model}: {', '.join(can) or 'nothing'}"


@runtime_checkable
class SinglePulse(Protocol):
    """Fires one pulse on command."""

    def fire(self): ...  # noqa: D102


@runtime_checkable
class DeviceTrain(Protocol):
    """Delivers one train paced by the unit's own clock."""

    def deliver_train(self, frequency_hz: float, n_pulses: int, *,  # noqa: D102
                      iti_s: float = 1.0) -> float: ...


@runtime_checkable
class PairedPulse(Protocol):
    """Two outputs at a set inter-pulse interval."""

    def set_ipi(self, ms: float) -> None: ...  # noqa: D102


@runtime_checkable
class TTLTrigger(Protocol):
    """Fires through a TTL trigger line once one is set (``None``: serial again)."""

    def use_trigger(self, line) -> None: ...  # noqa: D102
