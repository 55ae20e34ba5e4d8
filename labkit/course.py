"""Summarise a course of rTMS sessions from their session logs (pure: reads files only).

A course is the ``ses-*`` folders of one subject under a session root (as written by
:class:`labkit.session.Session`). From each log: the resting motor threshold (the last
``threshold`` record with ``threshold_kind == "rmt"``), the pulses delivered (one
``pulse`` record per delivered pulse), the protocol and sham flag of the run, NRS pain
ratings ``before``/``after``, adverse events and the screening verdict. A folder whose
only ratings are ``follow-up`` ones (no pulses) is a follow-up visit.

Responder status follows the usual definitions for chronic pain (IMMPACT, Dworkin et al.
2008; used by the rTMS guidelines, Lefaucheur 2014/2020): the percent reduction of the
NRS from **baseline** is at least 30 % ("moderate", clinically meaningful) or at least
50 % ("substantial"). **Baseline** here is the ``before`` rating of the first stimulation
session of the course (before any rTMS). Status is reported at the **end of the course**
(the ``after`` rating of the last stimulation session, or its ``before`` rating when it
has no ``after``) and at each follow-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.session.ids import check_subject_id
from labkit.session.log import LOG_FILE, LogRecord, read_log

if TYPE_CHECKING:
    import pandas

#: How :attr:`CourseSummary.baseline_nrs` is defined (shown in reports).
BASELINE_DEFINITION = "NRS before the first stimulation session of the course"
#: Reduction thresholds of the responder definitions, percent of baseline.
RESPONDER_THRESHOLDS_PERCENT = (30.0, 50.0)


@dataclass(frozen=True)
class SessionSummary:
    """What one session folder says.

    Attributes
    ----------
    session_id : str
        The ``ses-`` label.
    day : int | None
        Course day (``course_day`` in the pain ratings' payload), when recorded.
    rmt_percent : float | None
        Resting motor threshold, % MSO.
    rmt_method : str | None
        Estimator that measured it.
    protocol : str | None
        Name of the protocol run (``run`` record).
    shortened_from : str | None
        The full protocol a shortened demo variant was cut from.
    sham : bool
        The run was sham.
    intensity_percent : int | None
        Stimulation intensity, % MSO.
    pulses_planned : int | None
        Pulses the run set out to deliver.
    pulses_delivered : int
        ``pulse`` records in the log.
    run_state : str | None
        How the run ended: ``"finished"``, ``"stopped"``, ``"error"``, or ``None``
        when no run ended in the log (crash, or no run).
    nrs_before, nrs_after : int | None
        Pain ratings before and after stimulation (the last of each kind).
    follow_up_nrs : int | None
        A ``follow-up`` rating (follow-up visits).
    adverse_events : tuple of dict
        ``{"event", "severity", "description"}`` per adverse event.
    screening_cleared : bool | None
        The screening verdict, when screening was logged in this session.
    """

    session_id: str
    day: int | None = None
    rmt_percent: float | None = None
    rmt_method: str | None = None
    protocol: str | None = None
    shortened_from: str | None = None
    sham: bool = False
    intensity_percent: int | None = None
    pulses_planned: int | None = None
    pulses_delivered: int = 0
    run_state: str | None = None
    nrs_before: int | None = None
    nrs_after: int | None = None
    follow_up_nrs: int | None = None
    adverse_events: tuple[dict, ...] = field(default_factory=tuple)
    screening_cleared: bool | None = None

    @property
    def is_follow_up(self) -> bool:
        """True for a visit with a follow-up rating and no stimulation."""
        return self.follow_up_nrs is not None and self.pulses_delivered == 0


def summarize_session(path: str | os.PathLike) -> SessionSummary:
    """Summarise one session folder (``sub-*/ses-*`` holding ``log.jsonl``).

    Parameters
    ----------
    path : str | os.PathLike
        The session folder.

    Returns
    -------
    SessionSummary

    Raises
    ------
    ConfigError
        The folder has no session log.
    """
    path = Path(path)
    log_path = path / LOG_FILE
    if not log_path.is_file():
        raise ConfigError(f"no session log ({LOG_FILE}) in this folder", file=str(path))
    return _summarize(path.name.removeprefix("ses-"), read_log(log_path))


def _summarize(session_id: str, records: list[LogRecord]) -> SessionSummary:
    values: dict[str, Any] = {"session_id": session_id}
    pulses, adverse = 0, []
    for rec in records:
        p = rec.payload
        if rec.kind == "pulse":
            pulses += 1
        elif rec.kind == "threshold" and p.get("threshold_kind", "rmt") == "rmt":
            values["rmt_percent"] = float(p["threshold_percent"])
            values["rmt_method"] = p.get("method")
        elif rec.kind == "run":
            values.update(protocol=p.get("protocol"), shortened_from=p.get("shortened_from"),
                          sham=bool(p.get("sham", False)),
                          intensity_percent=p.get("intensity_percent"),
                          pulses_planned=p.get("total_pulses"))
        elif rec.kind in ("finish", "stop", "error"):
            values["run_state"] = {"finish": "finished", "stop": "stopped"}.get(rec.kind,
                                                                                 rec.kind)
        elif rec.kind == "pain_rating":
            key = {"before": "nrs_before", "after": "nrs_after",
                   "follow-up": "follow_up_nrs"}.get(p.get("when"))
            if key is not None:
                values[key] = int(p["nrs"])
            if p.get("course_day") is not None:
                values["day"] = int(p["course_day"])
        elif rec.kind == "adverse_event":
            adverse.append({"event": p.get("event"), "severity": p.get("severity"),
                            "description": p.get("description", "")})
        elif rec.kind == "screening":
            values["screening_cleared"] = bool(p.get("eligible"))
    return SessionSummary(pulses_delivered=pulses, adverse_events=tuple(adverse), **values)


def percent_reduction(baseline_nrs: float, nrs: float) -> float:
    """Reduction of pain from baseline, percent of baseline (negative when worse).

    Raises
    ------
    ConfigError
        ``baseline_nrs`` is 0 (no reduction can be defined) or a rating is outside 0–10.
    """
    for name, value in (("baseline_nrs", baseline_nrs), ("nrs", nrs)):
        if not 0 <= value <= 10:
            raise ConfigError(f"must be in 0–10, got {value!r}", field=name)
    if baseline_nrs == 0:
        raise ConfigError("baseline NRS is 0: percent reduction is undefined",
                          field="baseline_nrs")
    return 100.0 * (baseline_nrs - nrs) / baseline_nrs


@dataclass(frozen=True)
class Outcome:
    """Responder status at one time point.

    Attributes
    ----------
    label : str
        ``"end of course"`` or ``"follow-up day N"``.
    day : int | None
        Course day.
    nrs : int
        The rating.
    reduction_percent : float
        Reduction from baseline, percent.
    responder_30, responder_50 : bool
        Reduction ≥ 30 % / ≥ 50 %.
    """

    label: str
    day: int | None
    nrs: int
    reduction_percent: float
    responder_30: bool
    responder_50: bool


def _outcome(label: str, day: int | None, baseline: int, nrs: int) -> Outcome:
    reduction = percent_reduction(baseline, nrs)
    low, high = RESPONDER_THRESHOLDS_PERCENT
    # round first so that e.g. 7 → 4.9 is not lost to binary float error
    r = round(reduction, 9)
    return Outcome(label, day, nrs, reduction, r >= low, r >= high)


@dataclass(frozen=True)
class CourseSummary:
    """One subject's course: stimulation sessions, follow-ups and outcomes.

    Attributes
    ----------
    subject_id : str
        Pseudonymous subject code.
    sessions : tuple of SessionSummary
        Stimulation sessions (and any other non-follow-up session), in session order.
    follow_ups : tuple of SessionSummary
        Follow-up visits, in session order.
    """

    subject_id: str
    sessions: tuple[SessionSummary, ...]
    follow_ups: tuple[SessionSummary, ...] = ()

    @property
    def baseline_nrs(self) -> int | None:
        """NRS before the first stimulation session (see :data:`BASELINE_DEFINITION`)."""
        for s in self.sessions:
            if s.pulses_delivered > 0 and s.nrs_before is not None:
                return s.nrs_before
        return None

    @property
    def pulses_delivered(self) -> int:
        """Pulses over the whole course."""
        return sum(s.pulses_delivered for s in self.sessions)

    @property
    def adverse_events(self) -> list[dict]:
        """Every adverse event, with its session id."""
        return [{"session_id": s.session_id, **e} for s in (*self.sessions, *self.follow_ups)
                for e in s.adverse_events]

    def outcomes(self) -> list[Outcome]:
        """Responder status at the end of the course and at each follow-up.

        Raises
        ------
        ConfigError
            No baseline (no stimulation session with a ``before`` rating).
        """
        baseline = self.baseline_nrs
        if baseline is None:
            raise ConfigError(f"subject {self.subject_id}: no stimulation session with an "
                              "NRS 'before' rating, so no baseline", field="nrs_before")
        out = []
        stimulated = [s for s in self.sessions if s.pulses_delivered > 0]
        last = stimulated[-1]
        end_nrs = last.nrs_after if last.nrs_after is not None else last.nrs_before
        if end_nrs is not None:
            out.append(_outcome("end of course", last.day, baseline, end_nrs))
        for f in self.follow_ups:
            label = f"follow-up day {f.day}" if f.day is not None else \
                f"follow-up ses-{f.session_id}"
            out.append(_outcome(label, f.day, baseline, f.follow_up_nrs))
        return out

    def table(self) -> pandas.DataFrame:
        """One row per visit (sessions, then follow-ups) as a ``pandas.DataFrame``.

        Columns: session, day, rmt_percent, intensity_percent, protocol, sham,
        pulses_delivered, nrs_before, nrs_after, reduction_percent (of the ``after``
        rating, or of the follow-up rating, from baseline), adverse_events.
        """
        import pandas as pd

        baseline = self.baseline_nrs
        rows = []
        for s in (*self.sessions, *self.follow_ups):
            nrs = s.follow_up_nrs if s.is_follow_up else s.nrs_after
            reduction = (round(percent_reduction(baseline, nrs), 1)
                         if baseline and nrs is not None else None)
            rows.append({
                "session": s.session_id, "day": s.day,
                "visit": "follow-up" if s.is_follow_up else ("sham" if s.sham else "rTMS"),
                "rmt_percent": s.rmt_percent, "intensity_percent": s.intensity_percent,
                "pulses_delivered": s.pulses_delivered,
                "nrs_before": s.follow_up_nrs if s.is_follow_up else s.nrs_before,
                "nrs_after": s.nrs_after, "reduction_percent": reduction,
                "adverse_events": ", ".join(e["event"] for e in s.adverse_events),
            })
        return pd.DataFrame(rows)


def summarize_course(root: str | os.PathLike, subject_id: str) -> CourseSummary:
    """Read every session of ``subject_id`` under the session ``root``.

    Parameters
    ----------
    root : str | os.PathLike
        The session root (holds ``sub-<subject_id>/ses-*``).
    subject_id : str
        Pseudonymous subject code.

    Returns
    -------
    CourseSummary

    Raises
    ------
    ConfigError
        The subject has no session folder with a log.
    """
    subject_id = check_subject_id(subject_id)
    subject_dir = Path(root) / f"sub-{subject_id}"
    folders = sorted(p for p in subject_dir.glob("ses-*") if (p / LOG_FILE).is_file())
    if not folders:
        raise ConfigError(f"no session with a {LOG_FILE} for subject {subject_id}",
                          file=str(subject_dir))
    summaries = [summarize_session(p) for p in folders]
    key = _session_order
    sessions = tuple(sorted((s for s in summaries if not s.is_follow_up), key=key))
    follow_ups = tuple(sorted((s for s in summaries if s.is_follow_up), key=key))
    return CourseSummary(subject_id, sessions, follow_ups)


def _session_order(s: SessionSummary) -> tuple:
    day = s.day if s.day is not None else float("inf")
    label = s.session_id
    return (day, int(label) if label.isdigit() else float("inf"), label)
