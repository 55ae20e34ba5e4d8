"""Stimulator drivers: Magstim 200², BiStim², Rapid² and MagVenture MagPro."""

from labkit.stimulators.base import Stimulator, StimulatorStatus

__all__ = ["Stimulator", "StimulatorStatus"]
