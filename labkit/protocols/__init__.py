"""rTMS protocols: the validated file model, pulse schedules and the shipped library.

>>> from labkit.protocols import load_protocol
>>> p = load_protocol("m1_10hz_pain_1000")
>>> p.total_pulses, int(p.schedule(rmt_percent=55).intensity_percent[0])
(1000, 44)
"""

from labkit.protocols.loader import list_protocols, load_protocol, protocols_dir
from labkit.protocols.model import (
    Intensity,
    IntensityUnit,
    Protocol,
    Timing,
    format_validation_error,
)
from labkit.protocols.schedule import PulseSchedule, expand

__all__ = [
    "Intensity",
    "IntensityUnit",
    "Protocol",
    "PulseSchedule",
    "Timing",
    "expand",
    "format_validation_error",
    "list_protocols",
    "load_protocol",
    "protocols_dir",
]
