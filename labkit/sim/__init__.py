"""The simulated rig: device emulators, a virtual subject and an LSL amplifier.

Importing this package registers the ``labkitsim://`` pyserial URL scheme.
"""

from __future__ import annotations

import serial

if "labkit.sim.urlhandlers" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("labkit.sim.urlhandlers")

from labkit.sim.amplifier import EEGAmplifier, EMGAmplifier  # noqa: E402
from labkit.sim.duomag_emulator import DuoMAGEmulator  # noqa: E402
from labkit.sim.eeg import MuEEGSource  # noqa: E402
from labkit.sim.events import Coil, Discharge  # noqa: E402
from labkit.sim.magpro_emulator import MagProEmulator  # noqa: E402
from labkit.sim.magstim_emulator import MagstimEmulator  # noqa: E402
from labkit.sim.mep_model import StatisticalMEPModel, sample_population  # noqa: E402
from labkit.sim.subject import VirtualSubject  # noqa: E402
from labkit.sim.transport import SerialEmulator  # noqa: E402
from labkit.sim.ttl import WiredTrigger  # noqa: E402

__all__ = [
    "Coil", "Discharge", "DuoMAGEmulator", "EEGAmplifier", "EMGAmplifier", "MagProEmulator",
    "MagstimEmulator", "MuEEGSource", "SerialEmulator", "StatisticalMEPModel", "VirtualSubject",
    "WiredTrigger", "sample_population",
]
