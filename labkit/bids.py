"""Export a session to BIDS (mne-bids) with BEP037 stimulation sidecars, and validate it.

What :func:`export_bids` writes for ``sub-<s>/ses-<n>``:

- every EMG recording (``recordings/emg*``) as ``emg/…_emg.edf`` and every EEG recording
  (``recordings/eeg*``) as ``eeg/…_eeg.edf``, one ``run`` per recording when a session
  has several (a resumed session). EMG is written as the native BIDS ``emg`` datatype
  (BIDS 1.11, supported by mne-bids ≥ 0.17 for EDF/BDF only), not disguised as EEG;
  EDF is used for both because it needs no extra writer beyond ``edfio``.
- ``…_events.tsv`` (+ ``.json``): one row per pulse of the session log inside the
  recording, ``trial_type`` ``tms_pulse``, exact onset (not rounded to a sample; the LSL
  time mapped onto the file's sample axis through the recorded timestamps) and every
  logged parameter (``intensity_percent``, ``intensity_rmt_percent``, ``protocol``,
  ``train_index``…); missing values are ``n/a``.
- ``nibs/…_nibs.tsv`` and ``…_nibs.json``: the stimulation set-up after the NIBS BIDS
  extension proposal (BEP037, ``stimsys-tms`` vocabulary: stimulator, coil, target,
  intensity, pulse/burst/train timing). BEP037 is not in the standard yet, so ``nibs/``
  is listed in ``.bidsignore``.
- ``sub-<s>_sessions.tsv`` (+ ``.json``): per session the RMT, NRS pain before/after,
  pulses delivered and the number of adverse events (rows of earlier exports are kept).
- ``dataset_description.json``, ``participants.tsv``, ``README`` (mne-bids, then
  completed here).

:func:`validate_bids` runs the official schema-based validator (``bids-validator-deno``
from PyPI, offline) with ``--json`` and returns its errors and warnings.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabkitError
from labkit.recording import read_recording, to_raw
from labkit.session import LogRecord, Session, read_log

__all__ = [
    "BIDSExport",
    "BIDSExportError",
    "BIDSValidationError",
    "ValidationIssue",
    "ValidationReport",
    "export_bids",
    "exported_pulses",
    "validate_bids",
]

NA = "n/a"
PULSE_TRIAL_TYPE = "tms_pulse"
# no trailing slash: bids-validator-deno 3 does not match "dir/" patterns
BIDSIGNORE_LINES = ("**/nibs",)

#: Descriptions (and units) of the events.tsv columns labkit knows.
EVENT_COLUMNS: dict[str, dict[str, str]] = {
    "onset": {"Description": "Pulse time from the first sample of the recording",
              "Units": "s"},
    "duration": {"Description": "Zero: a TMS pulse is an instantaneous event", "Units": "s"},
    "trial_type": {"Description": "Kind of event", "Levels": {
        PULSE_TRIAL_TYPE: "A delivered transcranial magnetic stimulation pulse"}},
    "sample": {"Description": "Nearest sample index (0-based) of the pulse"},
    "pulse_index": {"Description": "Running pulse count of the stimulator driver"},
    "intensity_percent": {"Description": "Output A intensity", "Units": "% MSO"},
    "intensity_b_percent": {"Description": "Output B intensity (BiStim)", "Units": "% MSO"},
    "ipi_ms": {"Description": "Inter-pulse interval of a paired pulse", "Units": "ms"},
    "intensity_rmt_percent": {"Description": "Intensity relative to resting motor threshold",
                              "Units": "% RMT"},
    "protocol": {"Description": "Protocol name (labkit protocols/)"},
    "train_index": {"Description": "0-based train number within the protocol"},
    "pulse_in_train": {"Description": "0-based pulse number within its train"},
    "burst_index": {"Description": "0-based burst number within its train"},
    "device": {"Description": "Stimulator driver class"},
    "train": {"Description": "0-based train number within the protocol (runner)"},
    "burst": {"Description": "0-based burst number within its train (runner)"},
    "pulse_in_burst": {"Description": "0-based pulse number within its burst (runner)"},
    "scheduled_s": {"Description": "Planned pulse time from the start of the run",
                    "Units": "s"},
    "late_ms": {"Description": "Delivery time minus planned time (software timing)",
                "Units": "ms"},
    "timing": {"Description": "Who timed the pulse: software loop or the stimulator's "
                              "train mode"},
    "sham": {"Description": "Sham stimulation"},
    "lsl_time_s": {"Description": "Pulse time on the LSL local_clock", "Units": "s"},
}
_EVENT_KEY_ALIASES = {"index": "pulse_index"}


class BIDSExportError(LabkitError):
    """The session could not be exported (missing recordings, bad layout...)."""


class BIDSValidationError(LabkitError):
    """The BIDS validator reported errors, or could not be run."""


# -- validation ----------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationIssue:
    """One validator finding (``code``, ``sub_code``, ``severity``, ``location``)."""

    code: str
    severity: str
    location: str = ""
    sub_code: str = ""
    message: str = ""

    def __str__(self) -> str:
        sub = f"[{self.sub_code}]" if self.sub_code else ""
        return f"{self.severity.upper()} {self.code}{sub} {self.location}".strip()


@dataclass
class ValidationReport:
    """What ``bids-validator-deno --json`` said about a dataset.

    Attributes
    ----------
    root : pathlib.Path
        The dataset validated.
    errors, warnings : list of ValidationIssue
        Findings by severity.
    summary : dict
        The validator's summary (subjects, sessions, modalities, schema version...).
    """

    root: Path
    errors: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise :class:`BIDSValidationError` listing the errors, if any."""
        if self.errors:
            listed = "; ".join(str(e) for e in self.errors[:20])
            raise BIDSValidationError(
                f"{self.root}: {len(self.errors)} BIDS validator error(s): {listed}"
            )


def _validator_command() -> str:
    local = Path(sys.executable).parent / "bids-validator-deno"
    if local.exists():
        return str(local)
    found = shutil.which("bids-validator-deno")
    if found:
        return found
    raise BIDSValidationError(
        "bids-validator-deno not found; install it with 'pip install bids-validator-deno'"
    )


def validate_bids(root: str | os.PathLike, *, raise_on_error: bool = False,
                  timeout_s: float = 300.0) -> ValidationReport:
    """Run the official BIDS validator on ``root``.

    Parameters
    ----------
    root : str | os.PathLike
        Dataset root.
    raise_on_error : bool
        Raise :class:`BIDSValidationError` when the validator reports errors.
    timeout_s : float
        Kill the validator after this long.

    Returns
    -------
    ValidationReport
    """
    root = Path(root)
    cmd = [_validator_command(), str(root), "--json"]
    env = dict(os.environ, NO_COLOR="1")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        raise BIDSValidationError(f"{root}: validator timed out after {timeout_s} s") from exc
    start = proc.stdout.find("{")
    try:
        result = json.loads(proc.stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or "issues" not in result:
        raise BIDSValidationError(
            f"{root}: validator gave no JSON report (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout)[-500:]}"
        )
    report = ValidationReport(root=root, summary=result.get("summary", {}))
    for item in result["issues"].get("issues", []):
        issue = ValidationIssue(
            code=str(item.get("code", "")), severity=str(item.get("severity", "")),
            location=str(item.get("location", "") or ""),
            sub_code=str(item.get("subCode", "") or ""),
            message=str(item.get("issueMessage", "") or ""),
        )
        (report.errors if issue.severity == "error" else report.warnings).append(issue)
    if raise_on_error:
        report.raise_for_errors()
    return report


# -- export helpers ------------------------------------------------------------------
@dataclass
class BIDSExport:
    """What :func:`export_bids` wrote.

    Attributes
    ----------
    root : pathlib.Path
        BIDS root.
    data_files : list of pathlib.Path
        The EMG/EEG data files.
    events_files : list of pathlib.Path
        One ``events.tsv`` per data file.
    nibs_files : list of pathlib.Path
        The BEP037 sidecars.
    n_pulses : int
        Logged pulses that fell inside at least one recording (so are in events files).
    pulses_outside : int
        Logged pulses that fell outside every recording (not in any events file).
    """

    root: Path
    data_files: list[Path] = field(default_factory=list)
    events_files: list[Path] = field(default_factory=list)
    nibs_files: list[Path] = field(default_factory=list)
    n_pulses: int = 0
    pulses_outside: int = 0


def _tsv_value(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return NA
        return f"{value:.10g}" if abs(value) >= 1e-4 or value == 0 else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True).replace("\t", " ")
    return str(value).replace("\t", " ").replace("\n", " ") or NA


def _write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    lines = ["\t".join(columns)]
    lines += ["\t".join(_tsv_value(row.get(c)) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read_tsv(path: Path) -> tuple[list[str], list[dict]]:
    text = path.read_text(encoding="utf-8").splitlines()
    if not text:
        return [], []
    columns = text[0].split("\t")
    return columns, [dict(zip(columns, line.split("\t"), strict=False)) for line in text[1:]
                     if line]


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _pulse_rows(pulses: list[LogRecord], stamps: np.ndarray, sfreq: float,
                rmt_percent: float | None = None) -> list[dict]:
    """Events rows for the pulses inside the recording.

    ``intensity_rmt_percent`` is taken from the pulse when logged, else computed from
    ``intensity_percent`` and the session's last logged RMT. The onset is placed on the
    file's time axis (sample index / nominal rate) by
    interpolating the pulse's LSL time between the recorded sample timestamps, so that
    amplifier clock drift or dropped samples do not shift pulses against the data.
    """
    rows = []
    index = np.arange(len(stamps), dtype=np.float64)
    for p in pulses:
        if p.time_s < stamps[0] or p.time_s > stamps[-1]:
            continue
        position = float(np.interp(p.time_s, stamps, index))
        onset = position / sfreq
        row: dict[str, Any] = {
            "onset": round(onset, 6), "duration": 0, "trial_type": PULSE_TRIAL_TYPE,
            "sample": int(round(position)), "lsl_time_s": round(p.time_s, 6),
        }
        for key, value in p.payload.items():
            if isinstance(value, (dict, list)):
                continue
            name = _EVENT_KEY_ALIASES.get(key, key)
            if name in ("onset", "duration", "trial_type", "sample"):
                name = f"pulse_{name}"
            row[name] = value
        mso = row.get("intensity_percent")
        if ("intensity_rmt_percent" not in row and rmt_percent
                and isinstance(mso, (int, float)) and not isinstance(mso, bool)):
            row["intensity_rmt_percent"] = round(100.0 * mso / rmt_percent, 1)
        rows.append(row)
    return rows


def _event_columns(rows: list[dict]) -> list[str]:
    cols = ["onset", "duration", "trial_type", "sample"]
    known = [c for c in EVENT_COLUMNS if c not in cols and any(c in r for r in rows)]
    other = sorted({k for r in rows for k in r} - set(cols) - set(known))
    return cols + known + other


def _events_json(columns: list[str]) -> dict:
    out = {}
    for c in columns:
        out[c] = EVENT_COLUMNS.get(c, {"Description": f"labkit pulse parameter '{c}'"})
    return out


def _session_facts(records: list[LogRecord]) -> dict[str, Any]:
    facts: dict[str, Any] = {"task": None, "protocol": None, "device": {}, "rmt_percent": None,
                             "amt_percent": None, "nrs": {}, "adverse_events": 0,
                             "n_pulses": 0, "versions": {}}
    for r in records:
        p = r.payload
        if r.kind in ("session_start", "session_resume") and facts["task"] is None:
            facts["task"] = p.get("task")
        elif r.kind == "protocol":
            facts["protocol"] = p.get("protocol", p)
        elif r.kind == "device":
            facts["device"].update(p)
        elif r.kind == "threshold":
            key = "amt_percent" if p.get("threshold_kind") == "amt" else "rmt_percent"
            facts[key] = p.get("threshold_percent")
        elif r.kind == "pain_rating":
            facts["nrs"].setdefault(p.get("when"), p.get("nrs"))
            if p.get("when") == "after":
                facts["nrs"]["after"] = p.get("nrs")  # the last 'after' rating wins
        elif r.kind == "adverse_event":
            facts["adverse_events"] += 1
        elif r.kind == "pulse":
            facts["n_pulses"] += 1
        elif r.kind == "versions":
            facts["versions"] = p
    return facts


def _get(d: Any, *keys: str) -> Any:
    """First value found under any of ``keys`` in ``d`` or its ``timing`` sub-dict."""
    if not isinstance(d, dict):
        return None
    for scope in (d, d.get("timing") if isinstance(d.get("timing"), dict) else {}):
        for k in keys:
            if k in scope and scope[k] is not None and not isinstance(scope[k], (dict, list)):
                return scope[k]
    return None


NIBS_COLUMNS: dict[str, dict[str, str]] = {
    "stim_id": {"Description": "Identifier of this stimulation condition"},
    "protocol": {"Description": "Protocol name"},
    "stimulation_system": {"Description": "Stimulation system (BEP037 StimulationSystemName)"},
    "stimulator": {"Description": "Stimulator model"},
    "coil_id": {"Description": "Coil model or identifier"},
    "target": {"Description": "Cortical target label (e.g. M1, DLPFC)"},
    "hemisphere": {"Description": "Stimulated hemisphere"},
    "pulse_waveform": {"Description": "Pulse waveform (monophasic, biphasic...)"},
    "sham": {"Description": "Sham stimulation"},
    "rmt_percent": {"Description": "Resting motor threshold", "Units": "% MSO"},
    "intensity_rmt_percent": {"Description": "Intensity relative to RMT", "Units": "% RMT"},
    "intensity_amt_percent": {"Description": "Intensity relative to active motor threshold",
                              "Units": "% AMT"},
    "intensity_percent": {"Description": "Median delivered intensity", "Units": "% MSO"},
    "burst_rate_hz": {"Description": "Rate of bursts (of single pulses when one pulse per "
                                     "burst) within a train", "Units": "Hz"},
    "intra_burst_rate_hz": {"Description": "Pulse rate within a burst", "Units": "Hz"},
    "pulses_per_burst": {"Description": "Pulses in one burst"},
    "inter_pulse_interval_ms": {"Description": "Interval between pulses", "Units": "ms"},
    "bursts_per_train": {"Description": "Bursts in one train"},
    "inter_burst_interval_ms": {"Description": "Interval between burst onsets", "Units": "ms"},
    "trains": {"Description": "Number of trains"},
    "inter_train_interval_s": {"Description": "Pause between trains", "Units": "s"},
    "pulses_planned": {"Description": "Pulses in the protocol"},
    "pulses_delivered": {"Description": "Pulses delivered and logged"},
}


def _rate_hz(interval_ms: Any) -> float | None:
    if isinstance(interval_ms, (int, float)) and interval_ms > 0:
        return round(1000.0 / interval_ms, 3)
    return None


def _nibs_row(facts: dict, rows_intensity: list[float], overrides: dict) -> dict:
    proto = facts["protocol"] if isinstance(facts["protocol"], dict) else {}
    dev = facts["device"]
    planned = proto.get("intensity") if isinstance(proto.get("intensity"), dict) else {}
    unit = str(planned.get("unit", "")).replace(" ", "").upper()
    row = {
        "stim_id": "stim1",
        "protocol": _get(proto, "name") or (facts["protocol"] if isinstance(
            facts["protocol"], str) else None),
        "stimulation_system": "TMS",
        "stimulator": _get(dev, "model", "stimulator", "driver", "name"),
        "coil_id": _get(dev, "coil") or _get(proto, "coil"),
        "target": _get(proto, "target"),
        "hemisphere": _get(proto, "hemisphere"),
        "pulse_waveform": _get(dev, "waveform") or _get(proto, "waveform"),
        "sham": _get(proto, "sham"),
        "rmt_percent": facts["rmt_percent"],
        "intensity_rmt_percent": (planned.get("value") if unit == "%RMT" else _get(
            proto, "intensity_rmt_percent", "intensity_percent_rmt")),
        "intensity_amt_percent": planned.get("value") if unit == "%AMT" else None,
        "intensity_percent": (float(np.median(rows_intensity)) if rows_intensity else (
            planned.get("value") if unit == "%MSO" else None)),
        "burst_rate_hz": _rate_hz(_get(proto, "inter_burst_interval_ms")),
        "intra_burst_rate_hz": _rate_hz(_get(proto, "inter_pulse_interval_ms")),
        "pulses_per_burst": _get(proto, "pulses_per_burst"),
        "inter_pulse_interval_ms": _get(proto, "inter_pulse_interval_ms"),
        "bursts_per_train": _get(proto, "bursts_per_train"),
        "inter_burst_interval_ms": _get(proto, "inter_burst_interval_ms"),
        "trains": _get(proto, "trains", "n_trains"),
        "inter_train_interval_s": _get(proto, "inter_train_interval_s"),
        "pulses_planned": _get(proto, "total_pulses", "n_pulses", "pulses"),
        "pulses_delivered": facts["n_pulses"],
    }
    row.update({k: v for k, v in overrides.items() if k in NIBS_COLUMNS})
    return row


def _write_nibs(ses_dir: Path, stem: str, facts: dict, intensities: list[float],
                stimulator: dict) -> list[Path]:
    nibs_dir = ses_dir / "nibs"
    nibs_dir.mkdir(parents=True, exist_ok=True)
    row = _nibs_row(facts, intensities, stimulator)
    columns = [c for c in NIBS_COLUMNS if row.get(c) is not None or c in ("stim_id",)]
    tsv = nibs_dir / f"{stem}_nibs.tsv"
    _write_tsv(tsv, columns, [row])
    sidecar = {
        "StimulationSystemName": "TMS",
        "Manufacturer": stimulator.get("manufacturer", _get(facts["device"], "manufacturer")),
        "ManufacturersModelName": row.get("stimulator"),
        "CoilID": row.get("coil_id"),
        "Target": row.get("target"),
        "Protocol": ({k: v for k, v in facts["protocol"].items() if k != "path"}
                     if isinstance(facts["protocol"], dict) else facts["protocol"]),
        "ExtensionProposal": "BEP037 (NIBS, stimsys-tms); not yet part of BIDS",
        "GeneratedBy": "labkit",
    }
    sidecar = {k: v for k, v in sidecar.items() if v is not None}
    sidecar.update({c: NIBS_COLUMNS[c] for c in columns})
    js = nibs_dir / f"{stem}_nibs.json"
    _write_json(js, sidecar)
    return [tsv, js]


def _update_sessions_tsv(sub_dir: Path, sub: str, ses: str, facts: dict) -> None:
    path = sub_dir / f"sub-{sub}_sessions.tsv"
    columns = ["session_id", "rmt_percent", "nrs_before", "nrs_after", "pulses_delivered",
               "adverse_events"]
    rows: list[dict] = []
    if path.exists():
        _, rows = _read_tsv(path)
        rows = [r for r in rows if r.get("session_id") != f"ses-{ses}"]
    rows.append({
        "session_id": f"ses-{ses}", "rmt_percent": facts["rmt_percent"],
        "nrs_before": facts["nrs"].get("before"), "nrs_after": facts["nrs"].get("after"),
        "pulses_delivered": facts["n_pulses"], "adverse_events": facts["adverse_events"],
    })
    rows.sort(key=lambda r: r["session_id"])
    _write_tsv(path, columns, rows)
    _write_json(sub_dir / f"sub-{sub}_sessions.json", {
        "rmt_percent": {"Description": "Resting motor threshold", "Units": "% MSO"},
        "nrs_before": {"Description": "Pain, numeric rating scale 0-10, before stimulation"},
        "nrs_after": {"Description": "Pain, numeric rating scale 0-10, after stimulation"},
        "pulses_delivered": {"Description": "TMS pulses delivered in the session"},
        "adverse_events": {"Description": "Adverse events logged in the session"},
    })


def _labkit_version() -> str:
    try:
        return metadata.version("labkit")
    except metadata.PackageNotFoundError:
        return "unknown"


def _complete_sidecar(path: Path, facts: dict, info: dict) -> None:
    """Add what the log knows to the ``_emg.json``/``_eeg.json`` written by mne-bids."""
    if not path.exists():
        return
    sidecar = json.loads(path.read_text(encoding="utf-8"))
    proto = facts["protocol"] if isinstance(facts["protocol"], dict) else {}
    name = _get(proto, "name")
    sidecar["TaskDescription"] = _get(proto, "description") or (
        f"Repetitive TMS session (protocol {name})" if name else "TMS session")
    sidecar["SoftwareVersions"] = f"labkit {_labkit_version()}; LSL stream '{info['name']}'"
    amp = _get(facts["device"], "amplifier")
    if amp:
        sidecar["ManufacturersModelName"] = amp
    _write_json(path, sidecar)


def _update_bidsignore(root: Path) -> None:
    path = root / ".bidsignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for entry in BIDSIGNORE_LINES:
        if entry not in lines:
            lines.append(entry)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _complete_description(root: Path, name: str, license: str | None) -> None:
    path = root / "dataset_description.json"
    desc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if desc.get("Name") in (None, "", "[Unspecified]", " "):
        desc["Name"] = name
    if license:
        desc["License"] = license
    desc["GeneratedBy"] = [{"Name": "labkit", "Version": _labkit_version(),
                            "Description": "Closed-loop rTMS lab kit: session export"}]
    desc.setdefault("DatasetType", "raw")
    _write_json(path, desc)


def _write_readme(root: Path, name: str) -> None:
    text = (
        f"# {name}\n\n"
        "Exported by labkit from crash-safe session recordings.\n\n"
        "- `emg/`, `eeg/`: continuous recordings (EDF), data in volts.\n"
        "- `*_events.tsv`: one row per delivered TMS pulse with its parameters "
        "(intensity in % MSO and % RMT, protocol, train position); onsets are seconds from "
        "the first sample, `lsl_time_s` is the LSL clock.\n"
        "- `nibs/`: stimulation set-up after the NIBS BIDS extension proposal (BEP037); "
        "listed in `.bidsignore` until it is part of BIDS.\n"
        "- `sub-*_sessions.tsv`: resting motor threshold, NRS pain before/after, pulses, "
        "adverse events per session.\n\n"
        "Subject ids are pseudonymous codes.\n"
    )
    (root / "README").write_text(text, encoding="utf-8")
    (root / "README.md").unlink(missing_ok=True)


def _session_parts(session: Session | str | os.PathLike) -> tuple[Path, str, str, str | None]:
    if isinstance(session, Session):
        return session.path, session.subject_id, session.session_id, session.task
    path = Path(session)
    if not (path.name.startswith("ses-") and path.parent.name.startswith("sub-")):
        raise BIDSExportError(f"{path}: not a session directory (…/sub-<id>/ses-<id>)")
    return path, path.parent.name[4:], path.name[4:], None


def _recording_groups(rec_dir: Path, emg: str, eeg: str) -> list[tuple[str, Path]]:
    groups = []
    if not rec_dir.is_dir():
        return groups
    for p in sorted(rec_dir.iterdir(), key=lambda q: (len(q.name), q.name)):
        if not (p / "header.json").exists():
            continue
        base = p.name.split("-")[0]
        if base == emg:
            groups.append(("emg", p))
        elif base == eeg:
            groups.append(("eeg", p))
    return groups


# -- export ---------------------------------------------------------------------------
def export_bids(
    session: Session | str | os.PathLike,
    bids_root: str | os.PathLike,
    *,
    emg: str = "emg",
    eeg: str = "eeg",
    line_freq_hz: float = 50.0,
    stimulator: dict | None = None,
    dataset_name: str = "labkit rTMS sessions",
    license: str | None = None,
    overwrite: bool = True,
) -> BIDSExport:
    """Export one session (recordings + log) to a BIDS dataset.

    Parameters
    ----------
    session : Session | str | os.PathLike
        An open or closed :class:`~labkit.session.Session`, or its directory.
    bids_root : str | os.PathLike
        BIDS dataset root (created; other subjects/sessions in it are kept).
    emg, eeg : str
        Recording labels (``recordings/<label>``, ``<label>-2``…) holding EMG / EEG.
    line_freq_hz : float
        Mains frequency, for the sidecars (50 or 60).
    stimulator : dict | None
        Fixed facts for the NIBS sidecar that the log may lack: ``manufacturer``,
        ``stimulator``, ``coil_id``, ``target``, ``hemisphere``, ``pulse_waveform``.
    dataset_name : str
        ``Name`` in ``dataset_description.json``.
    license : str | None
        ``License`` in ``dataset_description.json`` (e.g. ``"CC0"``); the lab decides.
    overwrite : bool
        Replace files of this session that an earlier export wrote.

    Returns
    -------
    BIDSExport
        The files written and pulse counts.

    Raises
    ------
    BIDSExportError
        No EMG/EEG recording, or the session directory is not recognised.
    """
    import mne
    import mne_bids

    try:
        import edfio  # noqa: F401 - mne-bids writes EDF through it
    except ImportError as exc:
        raise BIDSExportError(
            "BIDS export writes EDF (the only EMG format mne-bids supports) and needs the "
            "'edfio' package: pip install edfio"
        ) from exc
    ses_path, sub, ses, task = _session_parts(session)
    records = read_log(ses_path)
    facts = _session_facts(records)
    task = task or facts["task"] or "rtms"
    root = Path(bids_root)
    root.mkdir(parents=True, exist_ok=True)
    groups = _recording_groups(ses_path / "recordings", emg, eeg)
    if not groups:
        raise BIDSExportError(
            f"{ses_path / 'recordings'}: no recording labelled '{emg}' or '{eeg}' to export"
        )
    pulses = [r for r in records if r.kind == "pulse"]
    result = BIDSExport(root=root)
    counted: set[int] = set()
    by_type: dict[str, list[Path]] = {}
    for datatype, path in groups:
        by_type.setdefault(datatype, []).append(path)
    intensities: list[float] = []
    for datatype, paths in by_type.items():
        for run, rec_path in enumerate(paths, start=1):
            data, stamps, info = read_recording(rec_path)
            if data.shape[1] < 2:
                continue
            raw = to_raw(data, stamps, info)
            raw.info["line_freq"] = line_freq_hz
            start_unix = info.get("created_unix_s", 0.0) + (
                stamps[0] - info.get("created_local_clock_s", stamps[0]))
            raw.set_meas_date(datetime.fromtimestamp(start_unix, tz=UTC))
            sfreq = raw.info["sfreq"]
            rows = _pulse_rows(pulses, stamps, sfreq, facts["rmt_percent"])
            for p in pulses:
                if stamps[0] <= p.time_s <= stamps[-1]:
                    counted.add(p.seq)
            if rows:
                raw.set_annotations(mne.Annotations(
                    [r["onset"] for r in rows], [0.0] * len(rows), [PULSE_TRIAL_TYPE] * len(rows)
                ))
            bpath = mne_bids.BIDSPath(
                subject=sub, session=ses, task=task, datatype=datatype, root=root,
                run=run if len(paths) > 1 else None,
            )
            kwargs: dict[str, Any] = {}
            if datatype == "emg":
                kwargs["emg_placement"] = "Other"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                written = mne_bids.write_raw_bids(
                    raw, bpath, allow_preload=True, format="EDF", overwrite=overwrite,
                    event_id={PULSE_TRIAL_TYPE: 1} if rows else None, verbose="error",
                    **kwargs,
                )
            result.data_files.append(Path(written.fpath))
            _complete_sidecar(Path(written.fpath).with_suffix(".json"), facts, info)
            ev = written.copy().update(suffix="events", extension=".tsv")
            if rows:
                columns = _event_columns(rows)
                _write_tsv(Path(ev.fpath), columns, rows)
                _write_json(Path(ev.fpath).with_suffix(".json"), _events_json(columns))
                result.events_files.append(Path(ev.fpath))
                intensities += [float(r["intensity_percent"]) for r in rows
                                if isinstance(r.get("intensity_percent"), (int, float))]
    result.n_pulses = len(counted)
    result.pulses_outside = len(pulses) - len(counted)
    stem = f"sub-{sub}_ses-{ses}_task-{task}"
    result.nibs_files = _write_nibs(root / f"sub-{sub}" / f"ses-{ses}", stem, facts, intensities,
                                    dict(stimulator or {}))
    _update_sessions_tsv(root / f"sub-{sub}", sub, ses, facts)
    _update_bidsignore(root)
    _complete_description(root, dataset_name, license)
    _write_readme(root, dataset_name)
    return result


def exported_pulses(events_tsv: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of an exported ``events.tsv`` as dicts of strings (for checks and notebooks)."""
    return _read_tsv(Path(events_tsv))[1]
