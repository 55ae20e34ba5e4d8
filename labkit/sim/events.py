"""What an emulated stimulator hands to the virtual subject: one discharge of the coil."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Discharge:
    """One discharge of the coil.

    Attributes
    ----------
    time_s : float
        LSL ``local_clock()`` time of the discharge, in seconds.
    intensity_percent : float
        Output A (or the single output) in % MSO.
    device : str
        Emulated model, e.g. ``"magstim-200"``, ``"magpro-x100"``.
    intensity_b_percent : float | None
        Output B of a BiStim, % MSO, when it discharged too.
    ipi_ms : float | None
        Delay of output B after output A (paired pulse), ms.
    """

    time_s: float
    intensity_percent: float
    device: str
    intensity_b_percent: float | None = None
    ipi_ms: float | None = None


#: A coil: anything that receives discharges (the virtual subject's amplifier).
Coil = Callable[[Discharge], None]
