"""Safety: train-duration table, limits and overrides, protocol check, screening, adverse events.

>>> from labkit.protocols import load_protocol
>>> from labkit.safety import check_protocol
>>> check_protocol(load_protocol("m1_20hz"), rmt_percent=50).ok
True
"""

from labkit.safety.adverse import (
    ADVERSE_EVENT_KINDS,
    SEVERITIES,
    AdverseEvent,
    AdverseEventLog,
)
from labkit.safety.check import (
    ProtocolRefusedError,
    SafetyVerdict,
    categorize,
    check_closed_loop,
    check_protocol,
    log_verdict,
    require_safe,
)
from labkit.safety.limits import (
    DEFAULT_LIMITS,
    SafetyLimits,
    SafetyOverride,
    ThetaBurstLimits,
)
from labkit.safety.screening import (
    SCREENING_ITEMS,
    PhysicianDecision,
    ScreeningItem,
    ScreeningResult,
    screen,
)
from labkit.safety.table import ROSSI_2009, TableCell, TrainDurationTable, load_table

__all__ = [
    "ADVERSE_EVENT_KINDS",
    "DEFAULT_LIMITS",
    "ROSSI_2009",
    "SCREENING_ITEMS",
    "SEVERITIES",
    "AdverseEvent",
    "AdverseEventLog",
    "PhysicianDecision",
    "ProtocolRefusedError",
    "SafetyLimits",
    "SafetyOverride",
    "SafetyVerdict",
    "ScreeningItem",
    "ScreeningResult",
    "TableCell",
    "ThetaBurstLimits",
    "TrainDurationTable",
    "categorize",
    "check_closed_loop",
    "check_protocol",
    "load_table",
    "log_verdict",
    "require_safe",
    "screen",
]
