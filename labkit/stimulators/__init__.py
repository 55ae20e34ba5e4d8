"""Stimulator drivers: Magstim 200², BiStim², Rapid² and MagVenture MagPro."""

from labkit.stimulators.base import Stimulator, StimulatorStatus
from labkit.stimulators.magpro import MagPro
from labkit.stimulators.magstim import BiStim, Magstim, Rapid

__all__ = ["BiStim", "MagPro", "Magstim", "Rapid", "Stimulator", "StimulatorStatus"]
