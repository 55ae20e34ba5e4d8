"""Summarise a course of rTMS sessions from their session logs and the patient's pain diary.

A course is the ``ses-*`` folders of one subject under a session root (as written by
:class:`labkit.session.Session`) plus the subject's daily pain diary
(``sub-<id>/pain_diary.tsv``, :func:`write_diary`). From each log: the resting motor
threshold (the last ``threshold`` record with ``threshold_kind == "rmt"``), the pulses
delivered (one ``pulse`` record per delivered pulse), the protocol of the run, in-clinic
NRS ratings ``before``/``after``, PGIC ratings (``pgic`` records), adverse events and
the screening verdict. A folder whose only ratings are ``follow-up`` ones (no pulses) is
a follow-up visit.

Responder status is **not** taken from in-clinic ratings around a session (they include
the acute, minutes-long relief): :meth:`CourseSummary.outcomes` follows IMMPACT, Farrar
2001 and Klein 2015 (see :mod:`labkit.outcomes`): baseline = mean of the diary's week
before the first session, endpoint = mean of the last week of treatment, follow-ups =
the week ending on each follow-up day; 30 % / 50 % reduction, ≥ 2-point change, PGIC.

The course table never says "sham": with an allocation key it gives the blinded arm code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.outcomes import (
    BASELINE_DEFINITION,
    PGIC_LABELS,
    RESPONDER_THRESHOLDS_PERCENT,
    Diary,
    PatientOutcomes,
    patient_outcomes,
)
from labkit.session.ids import check_subject_id
from labkit.session.log import LOG_FILE, LogRecord, read_log

if TYPE_CHECKING:
    import pandas

    from labkit.bids import AllocationKey

__all__ = [
    "BASELINE_DEFINITION",
    "DIARY_FILE",
    "RESPONDER_THRESHOLDS_PERCENT",
    "CourseSummary",
    "SessionSummary",
    "percent_reduction",
    "read_diary",
    "summarize_course",
    "summarize_session",
    "write_diary",
]

#: The daily pain diary of a subject, ``sub-<id>/pain_diary.tsv`` (columns day, nrs).
DIARY_FILE = "pain_diary.tsv"


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
    pgic : tuple of (str, int)
        PGIC ratings asked at this visit: ``(time point, score 1–7)``.
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
    pgic: tuple[tuple[str, int], ...] = ()

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
    pulses, adverse, pgic = 0, [], []
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
        elif rec.kind == "pgic":
            if p.get("score") not in PGIC_LABELS or not p.get("timepoint"):
                raise ConfigError(f"log line {rec.seq}: a pgic record needs a timepoint and a "
                                  f"score 1–7, got {p!r}", field="pgic")
            pgic.append((str(p["timepoint"]), int(p["score"])))
    return SessionSummary(pulses_delivered=pulses, adverse_events=tuple(adverse),
                          pgic=tuple(pgic), **values)


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
class CourseSummary:
    """One subject's course: stimulation sessions, follow-ups, diary and outcomes.

    Attributes
    ----------
    subject_id : str
        Pseudonymous subject code.
    sessions : tuple of SessionSummary
        Stimulation sessions (and any other non-follow-up session), in session order.
    follow_ups : tuple of SessionSummary
        Follow-up visits, in session order.
    diary : Diary | None
        The daily pain diary, when the subject has one.
    """

    subject_id: str
    sessions: tuple[SessionSummary, ...]
    follow_ups: tuple[SessionSummary, ...] = ()
    diary: Diary | None = None

    @property
    def pulses_delivered(self) -> int:
        """Pulses over the whole course."""
        return sum(s.pulses_delivered for s in self.sessions)

    @property
    def adverse_events(self) -> list[dict]:
        """Every adverse event, with its session id."""
        return [{"session_id": s.session_id, **e} for s in (*self.sessions, *self.follow_ups)
                for e in s.adverse_events]

    @property
    def pgic(self) -> dict[str, int]:
        """PGIC score by time point, from every visit (the last rating of a time point wins)."""
        return {label: score for s in (*self.sessions, *self.follow_ups)
                for label, score in s.pgic}

    @property
    def last_session_day(self) -> int:
        """Course day of the last stimulation session.

        Raises
        ------
        ConfigError
            No stimulation session carries its course day.
        """
        days = [s.day for s in self.sessions if s.pulses_delivered > 0 and s.day is not None]
        if not days:
            raise ConfigError(f"subject {self.subject_id}: no stimulation session records "
                              "its course_day", field="course_day")
        return max(days)

    def outcomes(self, follow_up_days: tuple[int, ...] | None = None) -> PatientOutcomes:
        """Baseline, end-of-treatment and follow-up outcomes from the daily diary.

        Parameters
        ----------
        follow_up_days : tuple of int | None
            Follow-ups in days after the last session; default: the follow-up visits'
            days, or 1 and 3 months (30, 90) when there are none.

        Raises
        ------
        ConfigError
            No diary (a single in-clinic rating is not a baseline), or no baseline week.
        """
        if self.diary is None:
            raise ConfigError(
                f"subject {self.subject_id}: no daily pain diary ({DIARY_FILE}); responder "
                "status needs weekly means of daily ratings (IMMPACT), not one rating",
                field="diary")
        last = self.last_session_day
        if follow_up_days is None:
            follow_up_days = tuple(f.day - last for f in self.follow_ups
                                   if f.day is not None and f.day > last) or (30, 90)
        return patient_outcomes(self.subject_id, self.diary, last, follow_up_days, self.pgic)

    def table(self, allocation: AllocationKey | None = None) -> pandas.DataFrame:
        """One row per visit (sessions, then follow-ups) as a ``pandas.DataFrame``.

        Columns: session, day, visit (``stimulation``/``follow-up``), rmt_percent,
        intensity_percent, pulses_delivered, nrs_before, nrs_after (in-clinic ratings),
        adverse_events; and ``arm`` (the blinded code) when ``allocation`` is given.
        Sham is never named.
        """
        import pandas as pd

        rows = []
        for s in (*self.sessions, *self.follow_ups):
            row = {
                "session": s.session_id, "day": s.day,
                "visit": "follow-up" if s.is_follow_up else "stimulation",
                "rmt_percent": s.rmt_percent, "intensity_percent": s.intensity_percent,
                "pulses_delivered": s.pulses_delivered,
                "nrs_before": s.follow_up_nrs if s.is_follow_up else s.nrs_before,
                "nrs_after": s.nrs_after,
                "adverse_events": ", ".join(e["event"] for e in s.adverse_events),
            }
            if allocation is not None:
                row["arm"] = None if s.is_follow_up else allocation.code_for(sham=s.sham)
            rows.append(row)
        return pd.DataFrame(rows)


def write_diary(root: str | os.PathLike, subject_id: str, days: list[int] | tuple[int, ...],
                nrs: list[float] | tuple[float, ...]) -> Path:
    """Write a subject's daily pain diary to ``sub-<id>/pain_diary.tsv``.

    Days are counted from the first session (day 0; the baseline week is negative), so
    no calendar date of the patient is stored.

    Raises
    ------
    ConfigError
        A rating outside 0–10, a repeated day, or a bad subject id.
    """
    subject_id = check_subject_id(subject_id)
    diary = Diary.from_pairs(zip(days, nrs, strict=True))
    path = Path(root) / f"sub-{subject_id}" / DIARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["day\tnrs"] + [f"{d}\t{v:g}" for d, v in zip(diary.days, diary.nrs, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_diary(root: str | os.PathLike, subject_id: str) -> Diary | None:
    """A subject's daily pain diary, or ``None`` when there is none.

    Raises
    ------
    ConfigError
        The file is malformed (naming the file and line).
    """
    subject_id = check_subject_id(subject_id)
    path = Path(root) / f"sub-{subject_id}" / DIARY_FILE
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["day", "nrs"]:
        raise ConfigError("header must be 'day<TAB>nrs'", file=str(path))
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            day, value = line.split("\t")
            pairs.append((int(day), float(value)))
        except ValueError as exc:
            raise ConfigError(f"line {number}: expected '<day>\t<nrs>', got {line!r}",
                              file=str(path)) from exc
    try:
        return Diary.from_pairs(pairs)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=str(path)) from exc


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
    return CourseSummary(subject_id, sessions, follow_ups, read_diary(root, subject_id))


def _session_order(s: SessionSummary) -> tuple:
    day = s.day if s.day is not None else float("inf")
    label = s.session_id
    return (day, int(label) if label.isdigit() else float("inf"), label)
