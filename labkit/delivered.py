"""Every pulse the unit delivered in a session, each once: the session log and the markers.

The session log holds the pulses of a protocol run (``pulse`` records) and of the
closed-loop controller (``closed_loop_pulse``, timed by ``fire_time_s``); the recorded
pulse-marker stream (``recordings/markers*``) holds every pulse any driver fired,
including the single pulses of a threshold hunt or a panel that nobody logged.
:func:`delivered_pulses` matches the two within 2 ms and returns one
:class:`DeliveredPulse` per pulse with its source; BIDS export and the session record
both count from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.recording import RecordingError, read_markers
from labkit.session.log import LogRecord

__all__ = ["PULSE_LOG_KINDS", "DeliveredPulse", "delivered_pulses", "marker_pulses"]


@dataclass(frozen=True)
class DeliveredPulse:
    """One pulse the unit delivered, from the session log, the marker stream, or both.

    Attributes
    ----------
    time_s : float
        LSL time of the pulse.
    source : str
        ``protocol`` (a protocol run), ``closed_loop``, ``paired_pulse``, ``single`` (a
        single pulse: threshold hunt, panel, manual) or what the marker itself says.
    params : dict
        Exported parameters (log payload, completed by the marker's fields).
    in_markers : bool | None
        Found in the recorded pulse-marker stream (``None``: no marker recording).
    logged : bool
        Found in the session log.
    """

    time_s: float
    source: str
    params: dict
    in_markers: bool | None
    logged: bool = True


#: Log kinds that are delivered pulses, with the payload key holding the pulse time.
PULSE_LOG_KINDS = {"pulse": None, "closed_loop_pulse": "fire_time_s"}
#: Closed-loop payload keys renamed in events.tsv (its index is not the driver's count).
_CLOSED_LOOP_ALIASES = {"index": "closed_loop_index"}
_CLOSED_LOOP_DROP = ("sample_time_s", "decision_time_s", "fire_time_s", "return_time_s")


def _log_source(kind: str, payload: dict) -> str:
    if kind == "closed_loop_pulse":
        return "closed_loop"
    if any(k in payload for k in ("train", "train_index")):
        return "protocol"
    if payload.get("ipi_ms") is not None:
        return "paired_pulse"
    return str(payload.get("source") or "single")


def marker_pulses(rec_dir: str | os.PathLike) -> list[tuple[float, dict]] | None:
    """``(time, marker dict)`` of every recorded pulse marker; ``None`` without a recording."""
    rec_dir = Path(rec_dir)
    if not rec_dir.is_dir():
        return None
    found: list[tuple[float, dict]] | None = None
    for path in sorted(rec_dir.iterdir()):
        if not (path / "header.json").exists():
            continue
        try:
            values, stamps, _ = read_markers(path)
        except RecordingError:
            continue  # not a marker recording
        found = found or []
        for value, stamp in zip(values, stamps, strict=True):
            try:
                marker = json.loads(value)
            except json.JSONDecodeError:
                continue
            if isinstance(marker, dict) and marker.get("event") == "pulse":
                found.append((float(stamp), marker))
    return None if found is None else sorted(found, key=lambda m: m[0])


def delivered_pulses(records: list[LogRecord], markers: list[tuple[float, dict]] | None,
                     tolerance_s: float = 0.002) -> list[DeliveredPulse]:
    """Every delivered pulse exactly once: log pulses matched to recorded markers.

    Pulses of a protocol run get ``run``: the 1-based number of the run in the session
    (counted from the log's ``run`` records, so a retried run is the next number), and
    their ``index`` counts from 0 within that run.

    Each log pulse (``pulse`` and ``closed_loop_pulse`` records) is matched to the nearest
    unmatched marker within ``tolerance_s``; markers nobody logged (a threshold hunt, a
    panel's Fire button) are pulses too and are added from the marker alone; log pulses
    without a marker are kept (``in_markers`` False).
    """
    log_pulses = []
    run = 0  # protocol runs so far: each runner logs one "run" record before its pulses
    for r in records:
        if r.kind == "run":
            run += 1
        if r.kind not in PULSE_LOG_KINDS:
            continue
        key = PULSE_LOG_KINDS[r.kind]
        t = r.payload.get(key) if key else r.time_s
        if not isinstance(t, (int, float)):
            continue
        params = {}
        for k, v in r.payload.items():
            if r.kind == "closed_loop_pulse":
                if k in _CLOSED_LOOP_DROP:
                    continue
                k = _CLOSED_LOOP_ALIASES.get(k, k)
            params[k] = v
        source = _log_source(r.kind, r.payload)
        if source == "protocol" and run and r.kind == "pulse":
            params.setdefault("run", run)
        log_pulses.append((float(t), source, params))
    times = np.array([m[0] for m in markers or []], dtype=np.float64)
    used = np.zeros(len(times), dtype=bool)
    out = []
    for t, source, params in sorted(log_pulses, key=lambda x: x[0]):
        in_markers: bool | None = None if markers is None else False
        if len(times):
            lo = int(np.searchsorted(times, t - tolerance_s))
            hi = int(np.searchsorted(times, t + tolerance_s, side="right"))
            free = [i for i in range(lo, hi) if not used[i]]
            if free:
                best = min(free, key=lambda i: abs(times[i] - t))
                used[best] = True
                in_markers = True
                for k, v in markers[best][1].items():
                    if k != "event":
                        params.setdefault(k, v)
        out.append(DeliveredPulse(t, source, params, in_markers))
    for i in np.flatnonzero(~used):
        marker = {k: v for k, v in markers[i][1].items() if k != "event"}
        source = "paired_pulse" if marker.get("ipi_ms") is not None else str(
            marker.get("source") or "single")
        out.append(DeliveredPulse(float(times[i]), source, marker, True, logged=False))
    return sorted(out, key=lambda p: p.time_s)
