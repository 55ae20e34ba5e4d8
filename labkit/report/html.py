"""Render a :class:`~labkit.report.record.SessionRecord` as one self-contained HTML page.

No code, no notebook: sections a PI reads and signs, styles inline, figures embedded as
PNG data URIs, every path relative to the run folder. A fact the log does not hold is
shown as "not recorded" in red (class ``missing``) instead of a made-up value.
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Sequence
from html import escape
from typing import Any

from labkit.report.record import SessionRecord

MISSING = '<span class="missing">not recorded</span>'

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
color:#111;line-height:1.4;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:0}h2{font-size:1.15rem;border-bottom:1px solid #999;
margin-top:1.6rem}.sub{color:#444;margin-top:.2rem}
table{border-collapse:collapse;margin:.4rem 0;font-size:.92rem}
th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}table.kv th{width:16rem}
.missing{color:#b00000;font-weight:600}.ok{color:#0a5d00;font-weight:600}
.warn{color:#b00000;font-weight:600}figure{margin:.5rem 0}figure img{max-width:100%}
figcaption{font-size:.85rem;color:#444}
.sign td{height:2.6rem;min-width:12rem}
@media print{body{margin:0}h2{break-after:avoid}section{break-inside:avoid}}
"""


def _v(value: Any, unit: str = "") -> str:
    if value is None or value == "" or value == {}:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:g}"
    return escape(f"{value}{(' ' + unit) if unit else ''}")


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{body}</section>'


def _identity(rec: SessionRecord) -> str:
    return _kv([
        ("Subject (pseudonym)", _v(rec.subject_id)), ("Session", _v(rec.session_id)),
        ("Task", _v(rec.task)), ("Site", _v(rec.site)), ("Operator", _v(rec.operator)),
        ("Start (wall clock)", _v(rec.start_wall_clock)),
        ("End (wall clock)", _v(rec.end_wall_clock)),
        ("Start / end on the LSL clock", _v(
            f"{rec.start_lsl_s:.3f} s / {rec.end_lsl_s:.3f} s"
            if rec.start_lsl_s is not None and rec.end_lsl_s is not None else None)),
        ("Resumed after an interruption", _v(f"{rec.resumed} time(s)" if rec.resumed
                                             else "no")),
    ])


def _stimulator(d: dict) -> str | None:
    maker, model = d.get("manufacturer"), d.get("model")
    if maker and model and str(model).lower().startswith(str(maker).lower()):
        return str(model)
    return " ".join(str(x) for x in (maker, model) if x) or None


def _devices(rec: SessionRecord) -> str:
    d, e = rec.device, rec.emg_setup
    navigation = d.get("navigation")
    coords = d.get("hotspot_mm")
    return _kv([
        ("Stimulator", _v(_stimulator(d))),
        ("Stimulator serial number", _v(d.get("serial_number") or d.get("serial"))),
        ("Firmware", _v(d.get("firmware"))),
        ("Coil", _v(d.get("coil") or d.get("coil_model"))),
        ("Coil serial number", _v(d.get("coil_serial_number"))),
        ("Pulse waveform", _v(d.get("pulse_waveform"))),
        ("Target", _v(" ".join(str(x) for x in (d.get("target"), d.get("hemisphere"))
                               if x) or None)),
        ("Hotspot / coil position", _v(d.get("hotspot"))),
        ("Hotspot coordinates", _v(", ".join(f"{c:g}" for c in coords) + " mm")
         if isinstance(coords, list) else (MISSING if navigation else
                                           "none (no navigation; landmark above)")),
        ("Neuronavigation", _v(navigation) if navigation else "not used"),
        ("EMG amplifier", _v(e.get("amplifier"))),
        ("EMG montage (reference)", _v(e.get("reference"))),
        ("EMG muscles", _v(", ".join(f"{k}: {m}" for k, m in (e.get("muscles") or {}).items())
                           or None)),
    ])


def _screening(rec: SessionRecord) -> str:
    s = rec.screening
    if s is None:
        return f"<p>Screening questionnaire: {MISSING}</p>"
    result = s.get("result") if isinstance(s.get("result"), dict) else {}
    cleared = s.get("eligible")
    rows = [("Cleared", '<span class="ok">yes</span>' if cleared else
             '<span class="warn">NO</span>'),
            ("Questionnaire", _v(result.get("citation")))]
    yes = [k for k, v in (s.get("answers") or {}).items() if v]
    rows.append(("Items answered yes", _v(", ".join(yes)) if yes else "none"))
    for key, dec in (result.get("decisions") or {}).items():
        rows.append((f"Physician decision: {key}", _v(
            f"{'cleared' if dec.get('cleared') else 'not cleared'} by {dec.get('physician')}"
            f" ({dec.get('note', '')})"
            + (f", implant location: {dec['location']}" if dec.get("location") else ""))))
    return _kv(rows)


def _thresholds(rec: SessionRecord) -> str:
    if not rec.thresholds:
        return f"<p>Motor threshold: {MISSING}</p>"
    rows = [[escape(t.kind.upper()), _v(t.value_percent, "% MSO"), _v(t.method),
             _v(t.n_pulses), _v(t.estimate_percent, "% MSO"),
             _v(f"{t.interval_percent[0]:.1f}–{t.interval_percent[1]:.1f} % MSO"
                if t.interval_percent else None)] for t in rec.thresholds]
    return _table(["Threshold", "Value used", "Method", "Pulses", "Estimate",
                   "95 % credible interval"], rows)


def _verdict(safety: dict | None) -> str | None:
    if not safety:
        return None
    lines = safety.get("passed") or safety.get("reasons") or []
    return ("SAFE" if safety.get("ok") else "REFUSED") + (": " + "; ".join(lines) if lines
                                                          else "")


def _protocol(rec: SessionRecord) -> str:
    p = rec.protocol or {}
    run = rec.run or {}
    timing = p.get("timing") or {}
    end = rec.run_end
    state = {"finish": '<span class="ok">finished</span>',
             "stop": '<span class="warn">stopped</span>',
             "error": '<span class="warn">ended with an error</span>'}.get(
        end[0] if end else "", '<span class="warn">no end of run logged</span>')
    planned = run.get("total_pulses") or p.get("total_pulses")
    rows = [
        ("Protocol", _v(p.get("name") or run.get("protocol"))),
        ("Shortened from", _v(p.get("shortened_from") or run.get("shortened_from"))
         if (p.get("shortened_from") or run.get("shortened_from")) else "not shortened"),
        ("Description", _v(p.get("description"))),
        ("Timing", _v(", ".join(f"{k.replace('_', ' ')} {v:g}" if isinstance(v, float) else
                                f"{k.replace('_', ' ')} {v}" for k, v in timing.items()
                                if v is not None) or None)),
        ("Intensity", _v(rec.intensity_statement())),
        ("Pulses planned / delivered", _v(f"{planned} / {rec.n_pulses}" if planned is not None
                                          else f"? / {rec.n_pulses}")),
        ("Run", state),
        ("Safety verdict", _v(_verdict(rec.safety))),
        ("References", _v("; ".join(p.get("references") or []) or None)),
    ]
    out = _kv(rows)
    if rec.incidents:
        inc = [[_v(f"{t - (rec.start_lsl_s or t):.1f} s"), escape(kind),
                escape(", ".join(f"{k}={v}" for k, v in payload.items()))]
               for t, kind, payload in rec.incidents]
        out += "<h3>Pauses, stops, faults and overrides</h3>" + _table(
            ["Time from session start", "What", "Details (who approved an override)"], inc)
    else:
        out += "<p>No pause, stop, fault or override was logged.</p>"
    return out


def _delivered(rec: SessionRecord) -> str:
    total = sum(rec.delivered_by_source.values())
    by_source = ", ".join(f"{n} {src.replace('_', ' ')}" for src, n in
                          sorted(rec.delivered_by_source.items()))
    checked = ("yes" if rec.markers_recorded else
               '<span class="warn">no marker recording: counted from the log only</span>')
    return _kv([
        ("Pulses delivered in the session", escape(f"{total} ({by_source})" if total
                                                   else "0")),
        ("Checked against the recorded pulse markers", checked),
        ("Pulses not in the session log (threshold hunt, panel)", str(rec.pulses_not_logged)),
        ("Logged pulses missing from the marker stream",
         (f'<span class="warn">{rec.pulses_without_marker}</span>'
          if rec.pulses_without_marker else "0")),
    ])


def _pulses(rec: SessionRecord) -> str:
    head = _delivered(rec) + _poses(rec)
    if not rec.trains:
        return head + f"<p>{rec.n_pulses} logged pulse(s) outside any train.</p>"
    rows = [[str(t.train + 1), str(t.n_pulses), f"{t.start_s:.2f}", f"{t.duration_s:.2f}",
             escape(", ".join(f"{v:g}" for v in t.intensity_percent)), _v(t.timing),
             _v(f"{t.max_late_ms:.2f}" if t.max_late_ms is not None else "n/a (device timed)")]
            for t in rec.trains]
    total = sum(t.n_pulses for t in rec.trains)
    header = ["Train", "Pulses", "Start (s from first pulse)", "Duration (s)",
              "Intensity (% MSO)", "Timing", "Latest pulse (ms)"]
    return head + "<h3>Protocol trains</h3>" + (_table(header, rows)
            + f"<p>{total} pulses in {len(rec.trains)} train(s); every pulse with its LSL "
              "time is in the session log and in the BIDS <code>events.tsv</code>.</p>")


#: Longest pose table in the report (the rest is in the log and in markers.tsv).
MAX_POSE_ROWS = 200


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "n/a"


def _poses(rec: SessionRecord) -> str:
    """The coil pose of every navigated pulse, with a summary of distances to the target."""
    poses = rec.coil_poses
    if not poses:
        return ""
    fresh = [p for p in poses if p.get("pose_status") == "ok"]
    dist = [p["target_distance_mm"] for p in fresh
            if isinstance(p.get("target_distance_mm"), int | float)]
    other = len(poses) - len(fresh)
    summary = (f"{len(poses)} pulse(s) logged with navigation; {len(fresh)} with a fresh coil "
               "pose")
    if other:
        summary += (f', <span class="warn">{other} without one (stale, no pose or '
                    "navigator disconnected)</span>")
    if dist:
        summary += (f"; distance to target median {statistics.median(dist):.1f} mm, max "
                    f"{max(dist):.1f} mm")
    rows = [[str(p["pulse"]), f"{p['time_s']:.2f}", _num(p.get("intensity_percent"), "g"),
             escape(str(p.get("pose_status"))),
             ", ".join(_num(p.get(k), ".1f") for k in ("coil_x_mm", "coil_y_mm", "coil_z_mm")),
             _num(p.get("target_index"), "d"), _num(p.get("target_distance_mm"), ".1f"),
             _num(p.get("target_rotation_deg"), ".1f"), _num(p.get("pose_age_ms"), ".0f")]
            for p in poses[:MAX_POSE_ROWS]]
    header = ["Pulse", "Time (s from first pulse)", "Intensity (% MSO)", "Pose",
              "Coil centre x, y, z (mm)", "Target", "To target (mm)", "Turn (°)",
              "Pose age (ms)"]
    more = (f"<p>{len(poses) - MAX_POSE_ROWS} more in the session log and in "
            "<code>markers.tsv</code>.</p>" if len(poses) > MAX_POSE_ROWS else "")
    return ("<h3>Coil placement (neuronavigation)</h3>"
            f'<p class="coil-pose-summary">{summary}.</p>' + _table(header, rows) + more
            + "<p>Each fresh pose is a placement of its own in the BIDS "
              "<code>nibs/*_markers.tsv</code>.</p>")


def _pain(rec: SessionRecord) -> str:
    if not rec.pain:
        return f"<p>Pain ratings: {MISSING}</p>"
    return _table(["When", "NRS (0–10)"], [[_v(p["when"]), _v(p["nrs"])] for p in rec.pain])


def _adverse(rec: SessionRecord) -> str:
    a = rec.adverse
    cls = "ok" if a.asked and a.none_reported else "warn"
    out = f'<p class="{cls}" id="adverse-statement">{escape(a.statement)}</p>'
    if a.asked_by:
        out += f"<p>Asked by: {escape(', '.join(a.asked_by))}</p>"
    if a.events:
        out += _table(["Event", "Severity", "Description"],
                      [[_v(e.get("event")), _v(e.get("severity")), _v(e.get("description"))]
                       for e in a.events])
    return out


def _versions(rec: SessionRecord) -> str:
    v = rec.versions
    if not v:
        return f"<p>Software versions: {MISSING}</p>"
    rows = [("Python", _v(v.get("python"))), ("Platform", _v(v.get("platform")))]
    rows += [(name, _v(ver) if ver else "not installed")
             for name, ver in (v.get("packages") or {}).items()]
    return _kv(rows)


def _files(files: Sequence[tuple[str, int, str]]) -> str:
    if not files:
        return f"<p>Data files: {MISSING}</p>"
    return _table(["File (relative to the run folder)", "Bytes", "SHA-256"],
                  [[escape(p), str(n), f"<code>{escape(h)}</code>"] for p, n, h in files])


def _figures(figures: Sequence[tuple[str, bytes]]) -> str:
    if not figures:
        return f"<p>MEP figure: {MISSING}</p>"
    out = []
    for caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{escape(caption)}</figcaption></figure>")
    return "".join(out)


SIGN_OFF = """<table class="sign"><thead><tr><th>Role</th><th>Name</th><th>Signature</th>
<th>Date</th></tr></thead><tbody><tr><td>Operator</td><td></td><td></td><td></td></tr>
<tr><td>Principal investigator</td><td></td><td></td><td></td></tr></tbody></table>
<p>By signing, the principal investigator confirms having reviewed this record; labkit is
research software, not a medical device.</p>"""


def render_html(rec: SessionRecord, *, figures: Sequence[tuple[str, bytes]] = (),
                files: Sequence[tuple[str, int, str]] = (), generated: str = "") -> str:
    """The report as one HTML document (UTF-8 text, no external resources).

    Parameters
    ----------
    rec : SessionRecord
        Facts of the session.
    figures : sequence of (caption, PNG bytes)
        Figures to embed (the MEP figure).
    files : sequence of (relative path, size in bytes, SHA-256 hex)
        Data files of the session with their checksums.
    generated : str
        When and by what the report was generated (shown in the footer).
    """
    title = (f"rTMS session record — subject {rec.subject_id or '?'}, "
             f"session {rec.session_id or '?'}")
    sections = [
        _section("identity", "Session", _identity(rec)),
        _section("devices", "Stimulator, coil, target and EMG", _devices(rec)),
        _section("screening", "Screening", _screening(rec)),
        _section("thresholds", "Motor thresholds", _thresholds(rec)),
        _section("protocol", "Protocol as planned and as delivered", _protocol(rec)),
        _section("pulses", "Delivered pulses", _pulses(rec)),
        _section("mep", "MEPs and the threshold hunt", _figures(figures)),
        _section("pain", "Pain ratings", _pain(rec)),
        _section("adverse", "Adverse events", _adverse(rec)),
        _section("versions", "Software and versions", _versions(rec)),
        _section("files", "Data files", _files(files)),
        _section("signoff", "Sign-off", SIGN_OFF),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>"
            f'<p class="sub">{escape(generated)}</p>' + "".join(sections)
            + "</body></html>\n")
