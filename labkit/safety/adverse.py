"""Adverse-event log (pure: times are passed in, never read from a clock).

The kinds are the side effects of TMS listed by Rossi et al. (2009, Clin Neurophysiol
120:2008, Table 1: seizure, transient acute hypomania, syncope, transient headache, local
pain, neck pain, toothache, paresthesia, transient hearing changes, transient
cognitive/neuropsychological changes, burns from scalp electrodes), a list Rossi et al.
(2021, Clin Neurophysiol 132:269) keep valid; plus tinnitus, facial twitch and fatigue,
which sessions also report. Hypomania is logged as ``mood_change``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from labkit.errors import ConfigError

#: Adverse events to look for after rTMS (Rossi 2009, Table 1; Rossi 2021).
#: ``burn_under_electrode``: a skin burn under a scalp (EEG) or EMG electrode, heated by
#: the coil's field.
AdverseEventKind = Literal[
    "seizure", "syncope", "headache", "neck_pain", "scalp_pain", "toothache",
    "hearing_change", "tinnitus", "facial_twitch", "paresthesia", "fatigue", "mood_change",
    "cognitive_change", "burn_under_electrode", "other",
]
ADVERSE_EVENT_KINDS: tuple[str, ...] = get_args(AdverseEventKind)

#: Severity grades (as in the session log). Seriousness (must be reported) is a separate flag.
Severity = Literal["mild", "moderate", "severe"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


@dataclass(frozen=True)
class AdverseEvent:
    """One adverse event.

    Attributes
    ----------
    kind : str
        One of :data:`ADVERSE_EVENT_KINDS`.
    severity : str
        One of :data:`SEVERITIES`.
    time_s : float
        When it started (LSL ``local_clock()`` or any session clock), s.
    note : str
        Description; required for ``kind="other"``.
    action : str
        What was done (stopped the session, paracetamol...).
    resolved_s : float | None
        When it resolved, s.
    serious : bool
        A serious adverse event (must be reported); a seizure always is.
    """

    kind: str
    severity: str
    time_s: float
    note: str = ""
    action: str = ""
    resolved_s: float | None = None
    serious: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ADVERSE_EVENT_KINDS:
            raise ConfigError(f"unknown adverse event {self.kind!r}; allowed: "
                              f"{', '.join(ADVERSE_EVENT_KINDS)}", field="kind")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"unknown severity {self.severity!r}; allowed: "
                              f"{', '.join(SEVERITIES)}", field="severity")
        if self.kind == "seizure" and not self.serious:
            raise ConfigError("a seizure is always a serious adverse event (serious=True)",
                              field="serious")
        if self.kind == "other" and not self.note.strip():
            raise ConfigError("an 'other' adverse event needs a note", field="note")
        if self.resolved_s is not None and self.resolved_s < self.time_s:
            raise ConfigError(f"resolved_s {self.resolved_s} is before time_s {self.time_s}",
                              field="resolved_s")

    @property
    def stops_session(self) -> bool:
        """Seizure, syncope, severe and serious events end the session."""
        return self.kind in ("seizure", "syncope") or self.severity == "severe" or self.serious

    def to_log(self) -> dict:
        """Payload for ``log("adverse_event", ...)`` (field names of the session log)."""
        return {"event": self.kind, "severity": self.severity, "time_s": self.time_s,
                "description": self.note, "action": self.action,
                "resolved_s": self.resolved_s, "serious": self.serious}


class AdverseEventLog:
    """The adverse events of one session, optionally mirrored into the session log.

    Parameters
    ----------
    log : callable | None
        ``log("adverse_event", payload)`` for every recorded event.
    """

    def __init__(self, log: Callable[[str, dict], None] | None = None) -> None:
        self._events: list[AdverseEvent] = []
        self._log = log

    def record(self, kind: str, severity: str, time_s: float, *, note: str = "",
               action: str = "", resolved_s: float | None = None,
               serious: bool = False) -> AdverseEvent:
        """Validate, store and log one event; return it."""
        event = AdverseEvent(kind, severity, float(time_s), note, action, resolved_s, serious)
        self._events.append(event)
        if self._log is not None:
            self._log("adverse_event", event.to_log())
        return event

    @property
    def events(self) -> tuple[AdverseEvent, ...]:
        """Recorded events in order."""
        return tuple(self._events)

    @property
    def must_stop(self) -> bool:
        """True once an event that ends the session was recorded."""
        return any(e.stops_session for e in self._events)

    def to_records(self) -> list[dict]:
        """One dict per event."""
        return [asdict(e) for e in self._events]

    def __len__(self) -> int:
        return len(self._events)
