"""What a signed session record states, read from the session log (pure: records in, facts out).

:func:`session_record` turns the log of one session into a :class:`SessionRecord`: who,
when (wall clock with its zone), where, with which stimulator and coil, on which target;
screening; every threshold with its method; the protocol as planned and as delivered
(trains, pauses, stops, faults, overrides); pain ratings; adverse events **as asked**;
software versions. A fact the log does not hold is ``None`` and the report says "not
recorded"; nothing is invented.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from labkit.session.log import LogRecord

#: Kinds of records listed as incidents of the run.
INCIDENT_KINDS = ("pause", "resume", "stop", "error", "fault", "refused", "override")


@dataclass(frozen=True)
class Threshold:
    """One motor threshold as logged."""

    kind: str
    value_percent: float
    method: str | None
    n_pulses: int | None
    estimate_percent: float | None
    interval_percent: tuple[float, float] | None


@dataclass(frozen=True)
class TrainRow:
    """Pulses of one train as delivered."""

    train: int
    n_pulses: int
    start_s: float
    duration_s: float
    intensity_percent: tuple[float, ...]
    timing: str | None
    max_late_ms: float | None


@dataclass(frozen=True)
class AdverseEvents:
    """What the log says about adverse events."""

    asked: bool
    asked_by: tuple[str, ...]
    none_reported: bool
    events: tuple[dict, ...]

    @property
    def statement(self) -> str:
        """One line: never "0" when nobody asked."""
        if self.events:
            return f"{len(self.events)} adverse event(s) reported"
        if self.asked and self.none_reported:
            return "asked; none reported"
        if self.asked:
            return "asked; no answer recorded"
        return "not asked (no statement about adverse events is possible)"


@dataclass
class SessionRecord:
    """Facts of one session for the signed report (``None`` = not recorded)."""

    subject_id: str | None = None
    session_id: str | None = None
    task: str | None = None
    operator: str | None = None
    site: str | None = None
    start_wall_clock: str | None = None
    end_wall_clock: str | None = None
    start_lsl_s: float | None = None
    end_lsl_s: float | None = None
    resumed: int = 0
    device: dict = field(default_factory=dict)
    emg_setup: dict = field(default_factory=dict)
    screening: dict | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    protocol: dict | None = None
    protocol_intensity_rmt_percent: float | None = None
    run: dict | None = None
    run_end: tuple[str, dict] | None = None
    trains: list[TrainRow] = field(default_factory=list)
    n_pulses: int = 0
    pulse_intensities_percent: tuple[float, ...] = ()
    safety: dict | None = None
    incidents: list[tuple[float, str, dict]] = field(default_factory=list)
    pain: list[dict] = field(default_factory=list)
    adverse: AdverseEvents = field(default_factory=lambda: AdverseEvents(False, (), False, ()))
    versions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    delivered_by_source: dict[str, int] = field(default_factory=dict)
    markers_recorded: bool | None = None
    pulses_not_logged: int = 0
    pulses_without_marker: int = 0
    coil_poses: list[dict] = field(default_factory=list)

    def count_delivered(self, pulses: list) -> None:
        """Count every delivered pulse by source (:func:`labkit.delivered.delivered_pulses`)."""
        self.delivered_by_source = {}
        for p in pulses:
            self.delivered_by_source[p.source] = self.delivered_by_source.get(p.source, 0) + 1
        self.markers_recorded = any(p.in_markers is not None for p in pulses) or None
        self.pulses_not_logged = sum(not p.logged for p in pulses)
        self.pulses_without_marker = sum(p.in_markers is False for p in pulses)

    @property
    def rmt(self) -> Threshold | None:
        """The last resting motor threshold."""
        rmts = [t for t in self.thresholds if t.kind == "rmt"]
        return rmts[-1] if rmts else None

    def intensity_statement(self) -> str | None:
        """The delivered intensity in one consistent sentence (% MSO, % RMT, the plan)."""
        if not self.pulse_intensities_percent:
            return None
        values = sorted(set(self.pulse_intensities_percent))
        mso = (f"{values[0]:g} % MSO" if len(values) == 1
               else f"{values[0]:g}–{values[-1]:g} % MSO")
        parts = [f"delivered at {mso}"]
        rmt = self.rmt
        if rmt is not None:
            rel = [100.0 * v / rmt.value_percent for v in values]
            rel_text = (f"{rel[0]:.1f} %" if len(rel) == 1 else f"{rel[0]:.1f}–{rel[-1]:.1f} %")
            parts.append(f"= {rel_text} of today's RMT ({rmt.value_percent:g} % MSO)")
        if self.protocol_intensity_rmt_percent is not None:
            parts.append(f"chosen: {self.protocol_intensity_rmt_percent:g} % RMT, "
                         "rounded to the stimulator's 1 % MSO grid")
        planned = (self.protocol or {}).get("intensity") or {}
        if planned.get("min") is not None and planned.get("max") is not None:
            parts.append(f"protocol range {planned['min']:g}–{planned['max']:g} "
                         f"{planned.get('unit', '')}".rstrip())
        return "; ".join(parts)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _trains(pulses: list[LogRecord]) -> list[TrainRow]:
    groups: dict[int, list[LogRecord]] = {}
    for p in pulses:
        train = p.payload.get("train", p.payload.get("train_index"))
        if isinstance(train, int):
            groups.setdefault(train, []).append(p)
    if not groups:
        return []
    t0 = min(p.time_s for g in groups.values() for p in g)
    rows = []
    for train, group in sorted(groups.items()):
        late = [v for v in (_float(p.payload.get("late_ms")) for p in group) if v is not None]
        rows.append(TrainRow(
            train=train, n_pulses=len(group), start_s=group[0].time_s - t0,
            duration_s=group[-1].time_s - group[0].time_s,
            intensity_percent=tuple(sorted({float(p.payload.get("intensity_percent", 0))
                                            for p in group})),
            timing=group[0].payload.get("timing"), max_late_ms=max(late) if late else None,
        ))
    return rows


#: Pose columns a navigated pulse carries (:meth:`labkit.navigation.gate.PulsePose.as_record`).
POSE_KEYS = ("pose_status", "coil_x_mm", "coil_y_mm", "coil_z_mm", "target_index",
             "target_distance_mm", "target_rotation_deg", "pose_age_ms")


def _coil_poses(pulses: list[LogRecord]) -> list[dict]:
    """One row per pulse logged with navigation: number, time, intensity and its pose."""
    rows = []
    t0 = pulses[0].time_s if pulses else 0.0
    for number, p in enumerate(pulses, start=1):
        if "pose_status" not in p.payload:
            continue
        row = {"pulse": number, "time_s": p.time_s - t0,
               "intensity_percent": _float(p.payload.get("intensity_percent"))}
        row.update({k: p.payload.get(k) for k in POSE_KEYS})
        rows.append(row)
    return rows


def session_record(records: list[LogRecord]) -> SessionRecord:
    """Read the facts of one session from its log records.

    Parameters
    ----------
    records : list of LogRecord
        The whole log (:func:`labkit.session.read_log`).

    Returns
    -------
    SessionRecord
    """
    rec = SessionRecord()
    pulses: list[LogRecord] = []
    asked_by: list[str] = []
    asked = none_reported = False
    adverse: list[dict] = []
    for r in records:
        p = r.payload
        if r.kind == "session_start":
            rec.subject_id, rec.session_id = p.get("subject_id"), p.get("session_id")
            rec.task, rec.operator, rec.site = p.get("task"), p.get("operator"), p.get("site")
            rec.start_wall_clock, rec.start_lsl_s = p.get("wall_clock"), r.time_s
        elif r.kind == "session_resume":
            rec.resumed += 1
            rec.operator = rec.operator or p.get("operator")
        elif r.kind == "session_end":
            rec.end_wall_clock, rec.end_lsl_s = p.get("wall_clock"), r.time_s
        elif r.kind == "device":
            rec.device.update(p)
        elif r.kind == "emg_setup":
            rec.emg_setup = dict(p)
        elif r.kind == "screening":
            rec.screening = dict(p)
        elif r.kind == "threshold":
            ci = p.get("credible_interval_percent")
            rec.thresholds.append(Threshold(
                kind=str(p.get("threshold_kind", "rmt")),
                value_percent=float(p["threshold_percent"]), method=p.get("method"),
                n_pulses=p.get("n_pulses"), estimate_percent=_float(p.get("estimate_percent")),
                interval_percent=(float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(
                    ci) == 2 else None))
        elif r.kind == "protocol":
            rec.protocol = p.get("protocol") if isinstance(p.get("protocol"), dict) else None
            rec.protocol_intensity_rmt_percent = _float(p.get("intensity_rmt_percent"))
        elif r.kind == "run":
            rec.run = dict(p)
        elif r.kind in ("finish", "stop", "error"):
            rec.run_end = (r.kind, dict(p))
            if r.kind != "finish":
                rec.incidents.append((r.time_s, r.kind, dict(p)))
        elif r.kind == "safety":
            rec.safety = dict(p)
        elif r.kind in INCIDENT_KINDS:
            rec.incidents.append((r.time_s, r.kind, dict(p)))
        elif r.kind == "pulse":
            pulses.append(r)
        elif r.kind == "pain_rating":
            rec.pain.append({"when": p.get("when"), "nrs": p.get("nrs"), "time_s": r.time_s})
        elif r.kind == "adverse_event_check":
            asked = True
            none_reported = bool(p.get("none_reported")) or none_reported
            if p.get("asked_by"):
                asked_by.append(str(p["asked_by"]))
        elif r.kind == "adverse_event":
            adverse.append({k: p.get(k) for k in ("event", "severity", "description")})
        elif r.kind == "versions":
            rec.versions = dict(p)
        elif r.kind == "note":
            rec.notes.append(str(p.get("text", "")))
    rec.n_pulses = len(pulses)
    rec.pulse_intensities_percent = tuple(
        v for v in (_float(p.payload.get("intensity_percent")) for p in pulses) if v is not None)
    rec.trains = _trains(pulses)
    rec.coil_poses = _coil_poses(pulses)
    rec.adverse = AdverseEvents(asked or bool(adverse), tuple(asked_by),
                                none_reported and not adverse, tuple(adverse))
    return rec


#: What a blinded record shows instead of facts that would reveal the arm.
WITHHELD = "withheld (blinded study)"


def _redact(value: Any, names: list[str], code: str) -> Any:
    if isinstance(value, str):
        for name in names:
            value = value.replace(name, f"arm {code}")
        return WITHHELD if any(w in value.lower() for w in ("sham", "placebo")) else value
    if isinstance(value, dict):
        return {k: _redact(v, names, code) for k, v in value.items() if k != "sham"}
    if isinstance(value, (list, tuple)):
        return [_redact(v, names, code) for v in value]
    return value


def blinded(rec: SessionRecord, arm_code: str) -> SessionRecord:
    """A copy that names the arm by its code and withholds what would reveal it.

    The protocol becomes ``arm <code>`` (timing, intensity and pulse counts stay: both arms
    share them), its description, references and the coil model are withheld, and any
    text that still says sham or placebo is replaced by :data:`WITHHELD`.
    """
    proto = rec.protocol or {}
    names = sorted({str(n) for n in (proto.get("name"), proto.get("shortened_from"),
                                     (rec.run or {}).get("protocol"),
                                     (rec.run or {}).get("shortened_from")) if n},
                   key=len, reverse=True)
    kept = {k: proto[k] for k in ("timing", "intensity", "total_pulses") if k in proto}
    kept.update(description=WITHHELD, references=[WITHHELD])
    if proto.get("shortened_from"):
        kept["shortened_from"] = WITHHELD
    device = {k: (WITHHELD if k in ("coil", "coil_model") else v)
              for k, v in rec.device.items()}
    return dataclasses.replace(
        rec, protocol={"name": f"arm {arm_code}", **kept},
        run=_redact(rec.run, names, arm_code) if rec.run else None,
        device=_redact(device, names, arm_code),
        safety=_redact(rec.safety, names, arm_code) if rec.safety else None,
        incidents=[(t, k, _redact(p, names, arm_code)) for t, k, p in rec.incidents],
        notes=_redact(rec.notes, names, arm_code),
    )
