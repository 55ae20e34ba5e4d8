"""The simulated rig: device emulators, a virtual subject and an LSL amplifier.

Importing this package registers the ``labkitsim://`` pyserial URL scheme.
"""

from __future__ import annotations

import serial

if "labkit.sim.urlhandlers" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("labkit.sim.urlhandlers")

from labkit.sim.events import Coil, Discharge  # noqa: E402
from labkit.sim.transport import SerialEmulator  # noqa: E402

__all__ = ["Coil", "Discharge", "SerialEmulator"]
