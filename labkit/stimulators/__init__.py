"""Stimulator drivers: Magstim 200², BiStim², Rapid², MagVenture MagPro, Deymed DuoMAG."""

from labkit.stimulators.base import Stimulator, StimulatorStatus
from labkit.stimulators.duomag import DuoMAG
from labkit.stimulators.magpro import MagPro
from labkit.stimulators.magstim import BiStim, Magstim, Rapid

__all__ = ["BiStim", "DuoMAG", "MagPro", "Magstim", "Rapid", "Stimulator", "StimulatorStatus"]
