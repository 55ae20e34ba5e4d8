"""Export a session to BIDS 1.11 (mne-bids) with NIBS-BIDS stimulation sidecars, and validate.

What :func:`export_bids` writes for ``sub-<s>/ses-<n>``:

- every EMG recording (``recordings/emg*``) as ``emg/…_emg.edf`` and every EEG recording
  (``recordings/eeg*``) as ``eeg/…_eeg.edf``, one ``run`` per recording when a session
  has several (a resumed session). EMG is the native BIDS ``emg`` datatype (BIDS 1.11);
  its sidecar carries what BIDS requires of EMG (``EMGReference``,
  ``EMGPlacementScheme`` and, for ``"Other"``, ``EMGPlacementSchemeDescription``) from
  the session's :class:`EMGSetup`, and ``channels.tsv`` names each channel's muscle.
- ``…_events.tsv`` (+ ``.json``): one row per pulse of the session log inside the
  recording, ``trial_type`` ``tms_pulse``, exact onset (the LSL time mapped onto the
  file's sample axis through the recorded timestamps), every logged parameter, and the
  NIBS-BIDS links ``nibs_event_id``/``nibs_position_id``.
- ``nibs/…_nibs.tsv``/``.json`` and ``nibs/…_markers.tsv``/``.json`` after the newest
  NIBS-BIDS draft (:mod:`labkit.nibs`); ``nibs/`` is listed in ``.bidsignore`` until
  BEP037 is part of BIDS.
- ``sub-<s>_sessions.tsv`` (+ ``.json``): per session the RMT, NRS before/after, pulses
  delivered, whether adverse events were asked about and how many were reported.
- ``dataset_description.json``, ``participants.tsv``, ``README``.

Nothing is left as a placeholder: a value BIDS requires that the session does not know
fails the export with :class:`BIDSExportError` naming the field, and the finished dataset
is scanned for placeholder text (:func:`find_placeholders`). Subject and session labels
are checked (pseudonymous, BIDS-legal, matching the log). Sham allocation is never
written: with an :class:`AllocationKey` the events carry a blinded arm code, and the key
stays outside the dataset.

:func:`validate_bids` runs the official schema-based validator (``bids-validator-deno``
from PyPI, offline) with ``--json`` and returns its errors and warnings.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from labkit.delivered import DeliveredPulse, delivered_pulses, marker_pulses
from labkit.errors import ConfigError, LabkitError
from labkit.nibs import (
    NIBS_SPEC_VERSION,
    POSITION_ID,
    IntensityReference,
    NIBSMetadataError,
    StimulationSetup,
    build_tables,
    event_id,
    has_pose,
    pose_position_id,
)
from labkit.recording import read_recording, to_raw
from labkit.session import LogRecord, Session, check_session_id, check_subject_id, read_log

__all__ = [
    "AllocationKey",
    "BIDSExport",
    "BIDSExportError",
    "BIDSValidationError",
    "EMGSetup",
    "ValidationIssue",
    "ValidationReport",
    "export_bids",
    "exported_pulses",
    "find_placeholders",
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
    "pulse_index": {"Description": "0-based pulse number within its protocol run (see run) "
                                   "for protocol pulses; for other pulses the stimulator "
                                   "driver's running pulse count"},
    "run": {"Description": "1-based number of the protocol run within the session (a "
                           "retried or resumed protocol is the next run; pulse_index starts "
                           "at 0 in each); not the BIDS run of this file"},
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
    "arm": {"Description": "Blinded arm code of the allocation (the key that maps codes to "
                           "arms is kept outside this dataset)"},
    "nibs_event_id": {"Description": "Stimulation parameter set (nibs/*_nibs.tsv, NIBS-BIDS "
                                     "draft)"},
    "nibs_position_id": {"Description": "Coil position (nibs/*_markers.tsv, NIBS-BIDS draft)"},
    "lsl_time_s": {"Description": "Pulse time on the LSL local_clock", "Units": "s"},
    "source": {"Description": "What delivered the pulse", "Levels": {
        "protocol": "a protocol run (labkit runner)",
        "closed_loop": "the EEG-phase-triggered controller",
        "paired_pulse": "a paired pulse (two outputs, ipi_ms apart)",
        "single": "a single pulse outside a protocol (threshold hunt, panel, manual)"}},
    "in_marker_stream": {"Description": "The pulse is in the recorded pulse-marker stream "
                                        "(false: logged but its marker was not recorded)"},
    "condition": {"Description": "Closed-loop condition (phase-locked or random timing)"},
    "closed_loop_index": {"Description": "0-based pulse number within the closed-loop run"},
    "target_phase_rad": {"Description": "Targeted mu phase (cosine convention)",
                         "Units": "rad"},
    "estimated_phase_rad": {"Description": "Mu phase the controller predicted at the pulse",
                            "Units": "rad"},
    "true_phase_rad": {"Description": "Simulated ground-truth phase at the pulse",
                       "Units": "rad"},
    "amplitude_uv": {"Description": "Tracked mu amplitude at the decision", "Units": "uV"},
    "freq_hz": {"Description": "Tracked mu frequency at the decision", "Units": "Hz"},
    "loop_delay_s": {"Description": "Decision-to-pulse delay the controller compensated",
                     "Units": "s"},
    "decision_to_return_ms": {"Description": "Driver round trip of the fire command",
                              "Units": "ms"},
    "sample_to_fire_ms": {"Description": "Newest EEG sample to pulse", "Units": "ms"},
}
_EVENT_KEY_ALIASES = {"index": "pulse_index"}
#: Log keys never exported, because they would unblind a sham-controlled study.
UNBLINDING_KEYS = ("sham",)
#: Text that marks an unfinished value (mne-bids' templates, editors' markers).
PLACEHOLDER_MARKERS = ("TODO", "FIXME", "please complete", "[Unspecified")


def _has_placeholder(text: str) -> list[str]:
    """Markers found in ``text``: TODO/FIXME as upper-case words, the others in any case."""
    found = [m for m in ("TODO", "FIXME") if re.search(rf"\b{m}\b", text)]
    return found + [m for m in PLACEHOLDER_MARKERS[2:] if m.lower() in text.lower()]
#: Sidecar fields BIDS requires, by suffix, whose value must be known (not "n/a").
#: SoftwareFilters is left out: BIDS defines "n/a" there as "no software filter".
REQUIRED_SIDECAR_FIELDS = {
    "emg": ("TaskName", "EMGReference", "EMGPlacementScheme", "SamplingFrequency",
            "PowerLineFrequency", "RecordingType"),
    "eeg": ("TaskName", "EEGReference", "SamplingFrequency", "PowerLineFrequency"),
}
EMG_PLACEMENT_SCHEMES = ("Measured", "ChannelSpecific", "Other")
BIDS_VERSION = "1.11.0"
EDF_FIRST_YEAR = 1985
MAX_DATE_SHIFT_DAYS = 36500
_LABEL_RULE = "letters and digits only (BIDS label), e.g. 'P007'"


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


# -- what the export needs to know ---------------------------------------------------
@dataclass(frozen=True)
class EMGSetup:
    """How the EMG was recorded: what BIDS 1.11 requires of an EMG sidecar, and more.

    Log it once per session (``session.log_event("emg_setup", **setup.to_log())``) or
    pass it to :func:`export_bids`.

    Attributes
    ----------
    reference : str
        ``EMGReference``: e.g. ``"bipolar: belly-tendon montage, reference electrode on
        the tendon of each muscle"``.
    placement_scheme : str
        ``EMGPlacementScheme``: ``"Measured"``, ``"ChannelSpecific"`` or ``"Other"``.
    placement_description : str | None
        ``EMGPlacementSchemeDescription`` (required for ``"Other"``): how the sites were
        found, not just the muscle names.
    muscles : dict
        Channel name → target muscle (``channels.tsv`` ``target_muscle``).
    ground : str | None
        ``EMGGround`` (e.g. ``"right ulnar styloid process"``).
    electrode_type, electrode_material : str | None
        ``ElectrodeType`` (``"disposable surface"``), ``ElectrodeMaterial`` (``"Ag/AgCl"``).
    amplifier : str | None
        ``ManufacturersModelName`` of the amplifier.
    """

    reference: str
    placement_scheme: str = "Other"
    placement_description: str | None = None
    muscles: dict[str, str] = field(default_factory=dict)
    ground: str | None = None
    electrode_type: str | None = None
    electrode_material: str | None = None
    amplifier: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reference, str) or not self.reference.strip() or \
                self.reference.strip().lower() == NA:
            raise ConfigError("EMGReference is required by BIDS: describe the reference "
                              "electrode(s), e.g. 'bipolar belly-tendon'", field="reference")
        if self.placement_scheme not in EMG_PLACEMENT_SCHEMES:
            raise ConfigError(f"must be one of {EMG_PLACEMENT_SCHEMES}, got "
                              f"{self.placement_scheme!r}", field="placement_scheme")
        if self.placement_scheme == "Other" and not (self.placement_description or "").strip():
            raise ConfigError("EMGPlacementSchemeDescription is required by BIDS when the "
                              "scheme is 'Other': say how the electrode sites were found",
                              field="placement_description")

    def to_log(self) -> dict:
        """Payload of an ``emg_setup`` log record."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, "")}

    @classmethod
    def from_log(cls, payload: dict) -> EMGSetup:
        """Rebuild from an ``emg_setup`` log record."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in payload.items() if k in known})


@dataclass(frozen=True)
class AllocationKey:
    """The blinding key of a sham-controlled study: arm code → ``"active"``/``"sham"``.

    The export writes only the code (``arm`` column); :meth:`write` stores the key for
    the unblinded statistician, and refuses a place inside a BIDS dataset.

    Examples
    --------
    >>> key = AllocationKey({"A": "sham", "B": "active"})
    >>> key.code_for(sham=True)
    'A'
    """

    arms: dict[str, str]

    def __post_init__(self) -> None:
        values = sorted(self.arms.values())
        if values != ["active", "sham"]:
            raise ConfigError(f"needs exactly one 'active' and one 'sham' arm, got "
                              f"{self.arms!r}", field="arms")
        for code in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9]{1,8}", str(code)) or code.lower() in (
                    "sham", "active", "real", "placebo"):
                raise ConfigError(f"arm codes must be short neutral letters/digits, got "
                                  f"{code!r}", field="arms")

    def code_for(self, *, sham: bool) -> str:
        """The arm code of an active (``sham=False``) or sham session."""
        want = "sham" if sham else "active"
        return next(code for code, arm in self.arms.items() if arm == want)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the key as JSON to ``path`` (outside any BIDS dataset)."""
        path = Path(path).resolve()
        for parent in path.parents:
            if (parent / "dataset_description.json").exists():
                raise BIDSExportError(f"{path}: the allocation key must not be stored inside "
                                      f"the BIDS dataset {parent} (it would unblind it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, {"arms": self.arms, "note": "blinding key; keep apart from data"})
        return path


def _check_label(value: str, field_name: str, checker: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]+", value):
        raise BIDSExportError(f"{field_name} {value!r} refused: {_LABEL_RULE}")
    try:
        label = checker(value)
    except ConfigError as exc:
        raise BIDSExportError(f"{field_name} {value!r} refused: {exc}") from exc
    if label != value:
        raise BIDSExportError(f"{field_name} {value!r} refused: {_LABEL_RULE}")
    return label


def _check_ids(ses_path: Path, sub: str, ses: str, records: list[LogRecord]) -> None:
    """Labels must be BIDS-legal pseudonymous codes and match the session log."""
    _check_label(sub, "subject label", check_subject_id)
    _check_label(ses, "session label", check_session_id)
    start = next((r.payload for r in records
                  if r.kind in ("session_start", "session_resume")), {})
    for key, folder_value in (("subject_id", sub), ("session_id", ses)):
        logged = start.get(key)
        if logged is not None and str(logged) != folder_value:
            raise BIDSExportError(f"{ses_path}: folder says {key} {folder_value!r} but the "
                                  f"session log says {logged!r}")


def find_placeholders(root: str | os.PathLike) -> list[str]:
    """Placeholder text and unknown required values in a BIDS dataset.

    Scans every ``.json``, ``.tsv`` and ``README`` file under ``root`` for
    :data:`PLACEHOLDER_MARKERS` and every EMG/EEG sidecar for required fields that are
    missing or ``"n/a"`` (:data:`REQUIRED_SIDECAR_FIELDS`).

    Returns
    -------
    list of str
        ``"<relative path>: <what>"`` per finding; empty when the dataset is complete.
    """
    root = Path(root)
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not (path.suffix in (".json", ".tsv") or path.name in (
                "README", "README.md", "CHANGES")):
            continue
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{rel}: contains {marker!r}" for marker in _has_placeholder(text)]
        suffix = path.stem.rsplit("_", 1)[-1]
        if path.suffix == ".json" and suffix in REQUIRED_SIDECAR_FIELDS:
            sidecar = json.loads(text)
            for name in REQUIRED_SIDECAR_FIELDS[suffix]:
                value = sidecar.get(name)
                if value is None or (isinstance(value, str) and value.strip().lower() in (
                        "", NA)):
                    found.append(f"{rel}: required field {name} is {value!r}")
            if suffix == "emg" and sidecar.get("EMGPlacementScheme") == "Other" and not \
                    sidecar.get("EMGPlacementSchemeDescription"):
                found.append(f"{rel}: required field EMGPlacementSchemeDescription missing")
    return found


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
        Delivered pulses (log and pulse markers, each once) inside at least one
        recording, so in the events files.
    pulses_outside : int
        Delivered pulses outside every recording (not in any events file).
    pulses_not_logged : int
        Pulses found only in the marker stream (e.g. a threshold hunt outside a runner).
    pulses_without_marker : int
        Logged pulses missing from a recorded marker stream (0 without a marker recording).
    """

    root: Path
    data_files: list[Path] = field(default_factory=list)
    events_files: list[Path] = field(default_factory=list)
    nibs_files: list[Path] = field(default_factory=list)
    n_pulses: int = 0
    pulses_outside: int = 0
    pulses_not_logged: int = 0
    pulses_without_marker: int = 0


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


def _pulse_rows(pulses: list[DeliveredPulse], stamps: np.ndarray, sfreq: float,
                rmt_percent: float | None = None, *, arm: str | None = None,
                protocol_label: str | None = None) -> list[dict]:
    """Events rows for the pulses inside the recording.

    ``intensity_rmt_percent`` is taken from the pulse when logged, else computed from
    ``intensity_percent`` and the session's last logged RMT. The onset is placed on the
    file's time axis (sample index / nominal rate) by interpolating the pulse's LSL time
    between the recorded sample timestamps, so that amplifier clock drift or dropped
    samples do not shift pulses against the data. Keys that would unblind
    (:data:`UNBLINDING_KEYS`) are dropped; ``arm`` and ``protocol_label`` replace them.
    """
    rows = []
    index = np.arange(len(stamps), dtype=np.float64)
    for ordinal, p in enumerate(pulses, start=1):
        if p.time_s < stamps[0] or p.time_s > stamps[-1]:
            continue
        position = float(np.interp(p.time_s, stamps, index))
        onset = position / sfreq
        row: dict[str, Any] = {
            "onset": round(onset, 6), "duration": 0, "trial_type": PULSE_TRIAL_TYPE,
            "sample": int(round(position)), "source": p.source,
            "lsl_time_s": round(p.time_s, 6),
        }
        if p.in_markers is not None:
            row["in_marker_stream"] = p.in_markers
        for key, value in p.params.items():
            if isinstance(value, (dict, list)) or key in UNBLINDING_KEYS:
                continue
            name = _EVENT_KEY_ALIASES.get(key, key)
            if name in ("onset", "duration", "trial_type", "sample", "source"):
                name = f"pulse_{name}"
            row[name] = value
        if protocol_label is not None and "protocol" in row:
            row["protocol"] = protocol_label
        if arm is not None:
            row["arm"] = arm
        mso = row.get("intensity_percent")
        if ("intensity_rmt_percent" not in row and rmt_percent
                and isinstance(mso, (int, float)) and not isinstance(mso, bool)):
            row["intensity_rmt_percent"] = round(100.0 * mso / rmt_percent, 1)
        row["nibs_event_id"] = event_id(p.source, mso)
        # a pulse with its own measured coil pose has its own placement in markers.tsv
        row["nibs_position_id"] = (pose_position_id(ordinal) if has_pose(p.params)
                                   else POSITION_ID)
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
                             "amt_percent": None, "rmt_method": None, "amt_method": None,
                             "nrs": {}, "adverse_events": 0, "adverse_asked": False,
                             "n_pulses": 0, "versions": {}, "emg_setup": None,
                             "eeg_setup": None, "sham": None}
    for r in records:
        p = r.payload
        if r.kind in ("session_start", "session_resume") and facts["task"] is None:
            facts["task"] = p.get("task")
        elif r.kind == "protocol":
            facts["protocol"] = p.get("protocol", p)
            proto = facts["protocol"]
            if isinstance(proto, dict) and "sham" in proto:
                facts["sham"] = bool(proto["sham"]) or bool(facts["sham"])
        elif r.kind == "device":
            facts["device"].update(p)
        elif r.kind == "threshold":
            kind = "amt" if p.get("threshold_kind") == "amt" else "rmt"
            facts[f"{kind}_percent"] = p.get("threshold_percent")
            facts[f"{kind}_method"] = p.get("method")
        elif r.kind == "pain_rating":
            facts["nrs"].setdefault(p.get("when"), p.get("nrs"))
            if p.get("when") == "after":
                facts["nrs"]["after"] = p.get("nrs")  # the last 'after' rating wins
        elif r.kind == "adverse_event":
            facts["adverse_events"] += 1
            facts["adverse_asked"] = True  # someone asked, or it was seen
        elif r.kind == "adverse_event_check":
            facts["adverse_asked"] = True
        elif r.kind in ("emg_setup", "eeg_setup"):
            facts[r.kind] = p
        elif r.kind == "run" and "sham" in p:
            facts["sham"] = bool(p["sham"]) or bool(facts["sham"])
        elif r.kind == "pulse":
            facts["n_pulses"] += 1
            if "sham" in p:
                facts["sham"] = bool(p["sham"]) or bool(facts["sham"])
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


def _protocol_description(proto: Any, label: str | None) -> str:
    """``NIBSDescription``: the protocol's timing and intensity in one sentence."""
    if not isinstance(proto, dict):
        return "Single TMS pulses (no protocol logged)"
    timing = proto.get("timing") if isinstance(proto.get("timing"), dict) else {}
    parts = [f"protocol {label or proto.get('name', 'unnamed')}"]
    ibi = timing.get("inter_burst_interval_ms")
    if isinstance(ibi, (int, float)) and ibi > 0:
        parts.append(f"{1000.0 / ibi:g} Hz")
    for key, unit in (("trains", "train(s)"), ("bursts_per_train", "bursts per train"),
                      ("pulses_per_burst", "pulse(s) per burst")):
        if timing.get(key) is not None:
            parts.append(f"{timing[key]} {unit}")
    if timing.get("inter_train_interval_s") is not None:
        parts.append(f"{timing['inter_train_interval_s']:g} s between trains")
    intensity = proto.get("intensity") if isinstance(proto.get("intensity"), dict) else {}
    if intensity.get("value") is not None:
        parts.append(f"planned at {intensity['value']:g} {intensity.get('unit', '')}".strip())
    if proto.get("total_pulses") is not None:
        parts.append(f"{proto['total_pulses']} pulses planned")
    return ", ".join(parts)


def _pulse_sets(rows: list[dict], facts: dict) -> dict[str, dict]:
    """``nibs_event_id`` → parameter values, from the exported pulse rows."""
    sets: dict[str, dict] = {}
    rmt = facts["rmt_percent"]
    unique = {row["lsl_time_s"]: row for row in rows}  # EMG and EEG share the pulses
    for row in unique.values():
        eid = row["nibs_event_id"]
        entry = sets.setdefault(eid, {"stimulus_intensity": row.get("intensity_percent"),
                                      "stimulus_count": 0})
        entry["stimulus_count"] += 1
        mso = entry["stimulus_intensity"]
        if rmt and isinstance(mso, (int, float)):
            entry["intensity_reference"] = "rMT"
            entry["intensity_scaling"] = round(float(mso) / float(rmt), 3)
        elif isinstance(mso, (int, float)):
            entry["intensity_reference"] = "absolute"
            entry["intensity_scaling"] = "absolute"
    return sets


def _write_nibs(ses_dir: Path, stem: str, facts: dict, rows: list[dict], stimulator: dict,
                intended_for: list[str], concurrent: list[str],
                protocol_label: str | None) -> list[Path]:
    proto = facts["protocol"] if isinstance(facts["protocol"], dict) else {}
    if protocol_label is not None:  # blinded: a sham protocol names its sham coil
        proto = {k: proto[k] for k in ("target", "hemisphere") if k in proto}
    setup = StimulationSetup.from_facts(facts["device"], proto, stimulator)
    refs = []
    for kind, key in (("rMT", "rmt"), ("aMT", "amt")):
        if facts[f"{key}_percent"] is not None:
            refs.append(IntensityReference(
                kind, float(facts[f"{key}_percent"]), method=facts[f"{key}_method"],
                criterion="50 uV peak-to-peak MEP at rest" if key == "rmt" else
                "200 uV peak-to-peak MEP during contraction"))
    try:
        tables = build_tables(setup, _pulse_sets(rows, facts), refs, poses=rows,
                              description=_protocol_description(facts["protocol"],
                                                                protocol_label),
                              intended_for=intended_for, concurrent=concurrent)
    except NIBSMetadataError as exc:
        raise BIDSExportError(f"{ses_dir}: {exc}") from exc
    nibs_dir = ses_dir / "nibs"
    nibs_dir.mkdir(parents=True, exist_ok=True)
    for old in nibs_dir.glob(f"{stem}_*"):
        old.unlink()  # files of an earlier draft's layout
    written = []
    for suffix, table_rows, sidecar in (("nibs", tables.nibs_rows, tables.nibs_sidecar),
                                        ("markers", tables.marker_rows,
                                         tables.marker_sidecar)):
        if not table_rows:
            continue
        columns = list(table_rows[0])
        tsv = nibs_dir / f"{stem}_{suffix}.tsv"
        _write_tsv(tsv, columns, table_rows)
        js = tsv.with_suffix(".json")
        _write_json(js, sidecar)
        written += [tsv, js]
    return written


def _update_sessions_tsv(sub_dir: Path, sub: str, ses: str, facts: dict) -> None:
    path = sub_dir / f"sub-{sub}_sessions.tsv"
    columns = ["session_id", "rmt_percent", "nrs_before", "nrs_after", "pulses_delivered",
               "adverse_events_asked", "adverse_events_reported"]
    rows: list[dict] = []
    if path.exists():
        _, rows = _read_tsv(path)
        rows = [r for r in rows if r.get("session_id") != f"ses-{ses}"]
    asked = facts["adverse_asked"]
    rows.append({
        "session_id": f"ses-{ses}", "rmt_percent": facts["rmt_percent"],
        "nrs_before": facts["nrs"].get("before"), "nrs_after": facts["nrs"].get("after"),
        "pulses_delivered": facts["n_pulses"], "adverse_events_asked": asked,
        "adverse_events_reported": facts["adverse_events"] if asked else None,
    })
    rows.sort(key=lambda r: r["session_id"])
    _write_tsv(path, columns, rows)
    _write_json(sub_dir / f"sub-{sub}_sessions.json", {
        "rmt_percent": {"Description": "Resting motor threshold", "Units": "% MSO"},
        "nrs_before": {"Description": "Pain, numeric rating scale 0-10, before stimulation"},
        "nrs_after": {"Description": "Pain, numeric rating scale 0-10, after stimulation"},
        "pulses_delivered": {"Description": "TMS pulses delivered in the session"},
        "adverse_events_asked": {"Description": "The subject was asked about adverse events "
                                                "(or one was logged)",
                                 "Levels": {"true": "asked", "false": "not asked"}},
        "adverse_events_reported": {"Description": "Adverse events reported; n/a when nobody "
                                                   "asked"},
    })


def _labkit_version() -> str:
    try:
        return metadata.version("labkit")
    except metadata.PackageNotFoundError:
        return "unknown"


def _complete_sidecar(path: Path, datatype: str, facts: dict, info: dict,
                      emg_setup: EMGSetup | None, eeg_setup: dict | None,
                      blinded: bool) -> None:
    """Fill the ``_emg.json``/``_eeg.json`` written by mne-bids from the log; drop unknowns.

    mne-bids writes ``"n/a"`` or template text for what it does not know; required
    fields are filled from the set-up (or the export failed before), optional ones that
    are still unknown are removed rather than shipped as placeholders.
    """
    sidecar = json.loads(path.read_text(encoding="utf-8"))
    proto = facts["protocol"] if isinstance(facts["protocol"], dict) else {}
    name = _get(proto, "name")
    if blinded:
        sidecar["TaskDescription"] = ("Repetitive TMS session of a blinded study (arm given "
                                      "as a code in events.tsv)")
    else:
        sidecar["TaskDescription"] = _get(proto, "description") or (
            f"Repetitive TMS session (protocol {name})" if name else "TMS session")
    sidecar["SoftwareVersions"] = f"labkit {_labkit_version()}; LSL stream '{info['name']}'"
    amp = (emg_setup.amplifier if emg_setup and datatype == "emg" else None) or _get(
        facts["device"], "amplifier")
    if amp:
        sidecar["ManufacturersModelName"] = amp
    if datatype == "emg" and emg_setup is not None:
        sidecar["EMGReference"] = emg_setup.reference
        sidecar["EMGPlacementScheme"] = emg_setup.placement_scheme
        optional = {"EMGPlacementSchemeDescription": emg_setup.placement_description,
                    "EMGGround": emg_setup.ground, "ElectrodeType": emg_setup.electrode_type,
                    "ElectrodeMaterial": emg_setup.electrode_material}
        sidecar.update({k: v for k, v in optional.items() if v})
    if datatype == "eeg" and eeg_setup:
        sidecar["EEGReference"] = eeg_setup["reference"]
        if eeg_setup.get("ground"):
            sidecar["EEGGround"] = eeg_setup["ground"]
        if eeg_setup.get("placement_scheme"):
            sidecar["EEGPlacementScheme"] = eeg_setup["placement_scheme"]
    required = set(REQUIRED_SIDECAR_FIELDS.get(datatype, ())) | {"SoftwareFilters"}
    for key in list(sidecar):
        value = sidecar[key]
        if key not in required and isinstance(value, str) and (
                value.strip().lower() in (NA, "") or _has_placeholder(value)):
            del sidecar[key]
    _write_json(path, sidecar)


def _complete_channels(path: Path, emg_setup: EMGSetup | None) -> None:
    """Add ``target_muscle`` to an EMG ``channels.tsv`` (every channel must be named)."""
    if emg_setup is None or not emg_setup.muscles or not path.exists():
        return
    columns, rows = _read_tsv(path)
    missing = [r["name"] for r in rows if r.get("type") == "EMG"
               and r["name"] not in emg_setup.muscles]
    if missing:
        raise BIDSExportError(f"{path.name}: EMGSetup.muscles names no target muscle for "
                              f"channel(s) {missing}")
    for r in rows:
        r["target_muscle"] = emg_setup.muscles.get(r["name"])
    if "target_muscle" not in columns:
        columns.append("target_muscle")
    _write_tsv(path, columns, rows)


def _emg_setup(facts: dict, given: EMGSetup | dict | None, where: Path) -> EMGSetup:
    source = given if given is not None else facts["emg_setup"]
    if source is None:
        raise BIDSExportError(
            f"{where}: EMGReference and EMGPlacementScheme are required by BIDS 1.11 but the "
            "session logs no EMG set-up: log one with session.log_event('emg_setup', "
            "**EMGSetup(...).to_log()) or pass emg_setup=EMGSetup(...) to export_bids")
    if isinstance(source, EMGSetup):
        return source
    try:
        return EMGSetup.from_log(dict(source))
    except (ConfigError, TypeError) as exc:
        raise BIDSExportError(f"{where}: EMG set-up incomplete: {exc}") from exc


def _eeg_setup(facts: dict, given: dict | None, where: Path) -> dict:
    source = given if given is not None else facts["eeg_setup"]
    if not source or not str(source.get("reference") or "").strip() or str(
            source.get("reference")).strip().lower() == NA:
        raise BIDSExportError(
            f"{where}: EEGReference is required by BIDS but unknown: log an 'eeg_setup' "
            "record with reference=... or pass eeg_setup={'reference': ...} to export_bids")
    return dict(source)


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
    desc["Name"] = name
    desc["BIDSVersion"] = BIDS_VERSION  # EMG is part of BIDS since 1.11
    if license:
        desc["License"] = license
    for key in list(desc):  # mne-bids' template values are placeholders, not facts
        value = desc[key]
        if (isinstance(value, list) and value and all(
                isinstance(v, str) and "[Unspecified" in v for v in value)) or (
                isinstance(value, str) and "[Unspecified" in value):
            del desc[key]
    desc["GeneratedBy"] = [{"Name": "labkit", "Version": _labkit_version(),
                            "Description": "Closed-loop rTMS lab kit: session export. "
                                           f"nibs/ follows {NIBS_SPEC_VERSION}."}]
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
        f"- `nibs/`: stimulation parameters and coil placement after {NIBS_SPEC_VERSION}; "
        "listed in `.bidsignore` until it is part of BIDS. Events refer to them through "
        "`nibs_event_id` and `nibs_position_id`.\n"
        "- `sub-*_sessions.tsv`: resting motor threshold, NRS pain before/after, pulses, "
        "whether adverse events were asked about and how many were reported.\n"
        "- Blinded studies: the arm is a code (`arm` in events); the allocation key is not "
        "part of this dataset.\n\n"
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
    emg_setup: EMGSetup | dict | None = None,
    eeg_setup: dict | None = None,
    allocation: AllocationKey | None = None,
    dataset_name: str = "labkit rTMS sessions",
    license: str | None = None,
    overwrite: bool = True,
    date_shift_days: int = 0,
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
        Facts for the NIBS sidecars that the log's ``device`` record may lack:
        ``manufacturer``, ``stimulator`` (model), ``serial_number``, ``coil_id``,
        ``coil_serial_number``, ``target``, ``hemisphere``, ``hotspot``,
        ``hotspot_mm``, ``navigation``, ``pulse_waveform``.
    emg_setup : EMGSetup | dict | None
        How the EMG was recorded; default: the session's last ``emg_setup`` record.
    eeg_setup : dict | None
        ``{"reference": ..., "ground": ...}`` for EEG; default: the ``eeg_setup`` record.
    allocation : AllocationKey | None
        Blinding key of a sham-controlled study: the events get the session's arm code
        and the protocol is named by it. A sham session without a key is refused.
    dataset_name : str
        ``Name`` in ``dataset_description.json``.
    license : str | None
        ``License`` in ``dataset_description.json`` (e.g. ``"CC0"``); the lab decides.
    overwrite : bool
        Replace files of this session that an earlier export wrote.
    date_shift_days : int
        Move every recording date this many days into the past (for sharing: the same
        offset for all sessions of a dataset keeps the intervals between sessions). The
        offset itself is not written anywhere in the dataset. EDF cannot hold dates
        before 1985.

    Returns
    -------
    BIDSExport
        The files written and pulse counts.

    Raises
    ------
    BIDSExportError
        No EMG/EEG recording; the directory is not a session; a label is not a BIDS-legal
        pseudonymous code or disagrees with the log; a value BIDS requires is unknown
        (the message names the field); a sham session without an allocation key; or
        placeholder text left in the dataset.
    """
    import mne
    import mne_bids

    if isinstance(date_shift_days, bool) or not isinstance(date_shift_days, int) or not (
            0 <= date_shift_days <= MAX_DATE_SHIFT_DAYS):
        raise BIDSExportError(f"date_shift_days must be a whole number of days in "
                              f"[0, {MAX_DATE_SHIFT_DAYS}], got {date_shift_days!r}")
    try:
        import edfio  # noqa: F401 - mne-bids writes EDF through it
    except ImportError as exc:
        raise BIDSExportError(
            "BIDS export writes EDF (the only EMG format mne-bids supports) and needs the "
            "'edfio' package: pip install edfio"
        ) from exc
    ses_path, sub, ses, task = _session_parts(session)
    records = read_log(ses_path)
    _check_ids(ses_path, sub, ses, records)
    facts = _session_facts(records)
    task = task or facts["task"] or "rtms"
    _check_label(task, "task label", lambda v: v)
    root = Path(bids_root)
    groups = _recording_groups(ses_path / "recordings", emg, eeg)
    if not groups:
        raise BIDSExportError(
            f"{ses_path / 'recordings'}: no recording labelled '{emg}' or '{eeg}' to export"
        )
    datatypes = {d for d, _ in groups}
    emg_info = _emg_setup(facts, emg_setup, ses_path) if "emg" in datatypes else None
    eeg_info = _eeg_setup(facts, eeg_setup, ses_path) if "eeg" in datatypes else None
    arm = protocol_label = None
    if allocation is not None:
        arm = allocation.code_for(sham=bool(facts["sham"]))
        protocol_label = f"arm-{arm}"
    elif facts["sham"]:
        raise BIDSExportError(
            f"{ses_path}: sham session: exporting it would unblind the study; pass "
            "allocation=AllocationKey({...}) so events carry a blinded arm code (keep the "
            "key outside the dataset)")
    root.mkdir(parents=True, exist_ok=True)
    pulses = delivered_pulses(records, marker_pulses(ses_path / "recordings"))
    facts["n_pulses"] = len(pulses)
    result = BIDSExport(root=root)
    counted: set[int] = set()
    by_type: dict[str, list[Path]] = {}
    for datatype, path in groups:
        by_type.setdefault(datatype, []).append(path)
    all_rows: list[dict] = []
    for datatype, paths in by_type.items():
        for run, rec_path in enumerate(paths, start=1):
            data, stamps, info = read_recording(rec_path)
            if data.shape[1] < 2:
                continue
            raw = to_raw(data, stamps, info)
            raw.info["line_freq"] = line_freq_hz
            start_unix = info.get("created_unix_s", 0.0) + (
                stamps[0] - info.get("created_local_clock_s", stamps[0]))
            start = datetime.fromtimestamp(start_unix, tz=UTC) - timedelta(days=date_shift_days)
            if start.year < EDF_FIRST_YEAR:
                raise BIDSExportError(f"date_shift_days={date_shift_days} moves {rec_path.name} "
                                      f"to {start.date()}, before {EDF_FIRST_YEAR} (EDF's "
                                      "first year)")
            raw.set_meas_date(start)
            sfreq = raw.info["sfreq"]
            rows = _pulse_rows(pulses, stamps, sfreq, facts["rmt_percent"], arm=arm,
                               protocol_label=protocol_label)
            for k, p in enumerate(pulses):
                if stamps[0] <= p.time_s <= stamps[-1]:
                    counted.add(k)
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
                kwargs["emg_placement"] = emg_info.placement_scheme
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                # labkit writes BIDSVersion 1.11 (EMG); mne-bids would keep its own 1.9
                warnings.filterwarnings("ignore", message="Conflicting BIDSVersion")
                written = mne_bids.write_raw_bids(
                    raw, bpath, allow_preload=True, format="EDF", overwrite=overwrite,
                    event_id={PULSE_TRIAL_TYPE: 1} if rows else None, verbose="error",
                    **kwargs,
                )
            result.data_files.append(Path(written.fpath))
            _complete_sidecar(Path(written.fpath).with_suffix(".json"), datatype, facts, info,
                              emg_info, eeg_info, blinded=arm is not None)
            if datatype == "emg":
                channels = written.copy().update(suffix="channels", extension=".tsv")
                _complete_channels(Path(channels.fpath), emg_info)
            ev = written.copy().update(suffix="events", extension=".tsv")
            if rows:
                columns = _event_columns(rows)
                _write_tsv(Path(ev.fpath), columns, rows)
                _write_json(Path(ev.fpath).with_suffix(".json"), _events_json(columns))
                result.events_files.append(Path(ev.fpath))
                all_rows += rows
    result.n_pulses = len(counted)
    result.pulses_outside = len(pulses) - len(counted)
    result.pulses_not_logged = sum(not p.logged for p in pulses)
    result.pulses_without_marker = sum(p.in_markers is False for p in pulses)
    stem = f"sub-{sub}_ses-{ses}_task-{task}"
    ses_dir = root / f"sub-{sub}" / f"ses-{ses}"
    intended = [f"bids::{p.relative_to(root).as_posix()}" for p in result.events_files]
    result.nibs_files = _write_nibs(ses_dir, stem, facts, all_rows, dict(stimulator or {}),
                                    intended, sorted(by_type), protocol_label)
    _update_sessions_tsv(root / f"sub-{sub}", sub, ses, facts)
    _update_bidsignore(root)
    _complete_description(root, dataset_name, license)
    _write_readme(root, dataset_name)
    leftovers = find_placeholders(root)
    if leftovers:
        raise BIDSExportError(f"{root}: placeholder values left in the dataset: "
                              + "; ".join(leftovers[:10]))
    return result


def exported_pulses(events_tsv: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of an exported ``events.tsv`` as dicts of strings (for checks and notebooks)."""
    return _read_tsv(Path(events_tsv))[1]
