"""NIBS-BIDS (BEP037) stimulation sidecars, after the newest draft (NIBS-BIDS v6.3, 2026).

BEP037 is a BIDS extension *proposal*: the files go under ``nibs/`` (listed in
``.bidsignore``) and the draft's version is written into every sidecar and the dataset
description, so a reader knows which draft they follow. What v6.3 asks, and what this
module writes for one session:

- ``*_nibs.tsv``: one row per unique stimulation parameter set, keyed by
  ``nibs_event_id`` (unique in the file) with ``nibs_type`` (``TMS``),
  ``stimulator_id`` and ``nibs_element_id`` (links into the sidecar),
  ``stimulus_shape``, ``stimulus_intensity`` (% MSO), and how the intensity was chosen
  (``intensity_reference`` ``rMT``/``aMT``/``absolute`` and ``intensity_scaling``).
  A delivered pulse is one row of the recording's ``*_events.tsv`` referring to its set
  through ``nibs_event_id``; the protocol's grouping in trains is given by the
  ``pattern1_*``/``pattern2_*`` columns of a set only when the events refer to trains,
  which labkit's per-pulse timeline does not, so the protocol is described in
  ``NIBSDescription`` instead.
- ``*_nibs.json``: column descriptions and units, ``StimulatorSet``, ``ElementSet``
  (the coil), ``IntensitySet`` (the measured motor threshold with its method),
  ``NavigationSystem``, ``IntendedFor`` (the events files), ``ConcurrentModalities``.
- ``*_markers.tsv`` (+ ``.json``): the coil placement, one row per position
  (``nibs_position_id``, ``nibs_element_id``, ``position_label``,
  ``position_description`` and coordinates when known); events refer to it through
  ``nibs_position_id``. The ``stimsys`` entity of older drafts is gone. With
  neuronavigation, every pulse logged with a fresh coil pose (``pose_status`` "ok") gets
  a row of its own (``pose<N>``, N = the pulse's number in the session): the coil centre
  in the navigator's coordinates (mm), its orientation as a unit quaternion (the
  navigator's ``q0``/``qx``/``qy``/``qz``) and its distance to the planned target. Pulses
  without one refer to the planned target's row.

Nothing is written as a placeholder: a value the session does not know is left out when
the draft makes it optional, and the export fails naming the field when it is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import LabkitError

#: The draft followed, written into the sidecars and the dataset description.
NIBS_SPEC_VERSION = "NIBS-BIDS (BEP037) draft v6.3"
STIMULATOR_ID = "stimulator1"
ELEMENT_ID = "coil1"
POSITION_ID = "target1"

#: Pulse shapes of the supported stimulators (v6.3 closed vocabulary).
WAVEFORMS = {"monophasic": "Monophasic", "biphasic": "Biphasic", "halfsine": "Halfsine"}

NIBS_COLUMNS: dict[str, dict[str, Any]] = {
    "nibs_event_id": {"LongName": "NIBS event identifier", "Description":
                      "Stimulation parameter set; events.tsv rows refer to it"},
    "nibs_type": {"Description": "Stimulation modality", "Levels": {
        "TMS": "Transcranial magnetic stimulation"}},
    "stimulator_id": {"Description": "StimulatorSet.StimulatorID of the device"},
    "nibs_element_id": {"Description": "ElementSet.ElementID of the coil"},
    "stimulus_shape": {"Description": "Waveform of one pulse", "Levels": {
        "Monophasic": "Monophasic pulse", "Biphasic": "Biphasic pulse",
        "Halfsine": "Half-sine pulse"}},
    "stimulus_intensity": {"Description": "Delivered intensity (output A)",
                           "Units": "% Maximum Stimulator Output"},
    "intensity_reference": {"Description": "What the intensity was scaled from; links to "
                                           "IntensitySet.IntensityID", "Levels": {
        "rMT": "Resting motor threshold", "aMT": "Active motor threshold",
        "absolute": "Set directly in % MSO"}},
    "intensity_scaling": {"Description": "Intensity divided by the reference value "
                                         "(0.9 = 90 % of the reference)"},
    "stimulus_count": {"Description": "Pulses delivered with this parameter set (counting "
                                      "only, not for synchronisation)"},
}

MARKER_COLUMNS: dict[str, dict[str, Any]] = {
    "nibs_position_id": {"Description": "Identifier of this position; events.tsv rows refer "
                                        "to it"},
    "nibs_element_id": {"Description": "ElementSet.ElementID of the coil at this position"},
    "position_label": {"Description": "Site label"},
    "position_description": {"Description": "How the site was found"},
    "position_x": {"Description": "Target x", "Units": "mm"},
    "position_y": {"Description": "Target y", "Units": "mm"},
    "position_z": {"Description": "Target z", "Units": "mm"},
    "orientation_q0": {"Description": "Coil orientation, unit quaternion (scalar part), in "
                                      "the navigator's coordinate system"},
    "orientation_qx": {"Description": "Coil orientation, unit quaternion x"},
    "orientation_qy": {"Description": "Coil orientation, unit quaternion y"},
    "orientation_qz": {"Description": "Coil orientation, unit quaternion z"},
    "target_distance_mm": {"Description": "Distance of the coil centre from the planned "
                                          "target in the target's coil plane",
                           "Units": "mm"},
    "pose_age_ms": {"Description": "Age of the navigator's pose at the pulse",
                    "Units": "ms"},
}

#: Pulse-log columns of a coil pose (:meth:`labkit.navigation.gate.PulsePose.as_record`)
#: and the markers.tsv columns they become.
_POSE_COLUMNS = {"coil_x_mm": "position_x", "coil_y_mm": "position_y",
                 "coil_z_mm": "position_z", "coil_q0": "orientation_q0",
                 "coil_qx": "orientation_qx", "coil_qy": "orientation_qy",
                 "coil_qz": "orientation_qz", "target_distance_mm": "target_distance_mm",
                 "pose_age_ms": "pose_age_ms"}


def has_pose(params: dict) -> bool:
    """True when a logged pulse carries a fresh measured coil pose."""
    return params.get("pose_status") == "ok" and all(
        isinstance(params.get(k), (int, float)) for k in ("coil_x_mm", "coil_y_mm",
                                                         "coil_z_mm"))


def pose_position_id(ordinal: int) -> str:
    """The ``nibs_position_id`` of the pose of the session's ``ordinal``-th pulse (1-based)."""
    return f"pose{int(ordinal)}"


def pose_markers(rows: list[dict], navigation: str | None) -> list[dict]:
    """One markers.tsv row per distinct pose id in the events ``rows``, in pulse order."""
    out: dict[str, dict] = {}
    for row in rows:
        pid = row.get("nibs_position_id")
        if not isinstance(pid, str) or not pid.startswith("pose") or pid in out:
            continue
        marker = {"nibs_position_id": pid, "nibs_element_id": ELEMENT_ID,
                  "position_label": "measured",
                  "position_description": "coil pose measured at the pulse"
                  + (f" by {navigation}" if navigation else " by the navigator")}
        for src, dst in _POSE_COLUMNS.items():
            value = row.get(src)
            if isinstance(value, (int, float)) and math.isfinite(value):
                marker[dst] = round(float(value), 3)
        out[pid] = marker
    return list(out.values())


class NIBSMetadataError(LabkitError):
    """A value NIBS-BIDS needs is not known for this session."""


@dataclass(frozen=True)
class StimulationSetup:
    """What the stimulation sidecars say about the set-up (from the log and the caller).

    Attributes
    ----------
    manufacturer, model : str | None
        The stimulator (``StimulatorSet.Manufacturer`` / ``ManufacturerModelName``).
    serial_number, software_version : str | None
        Optional stimulator facts.
    coil_model, coil_serial_number, coil_shape : str | None
        The coil (``ElementSet``).
    waveform : str | None
        ``monophasic``/``biphasic``/``halfsine``.
    target, hemisphere, hotspot : str | None
        Where the coil was (``*_markers.tsv``).
    hotspot_mm : tuple of float | None
        Coordinates of the target, when a navigation system gave them.
    navigation : str | None
        Navigation system used, or ``None`` for none.
    """

    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    software_version: str | None = None
    coil_model: str | None = None
    coil_serial_number: str | None = None
    coil_shape: str | None = None
    waveform: str | None = None
    target: str | None = None
    hemisphere: str | None = None
    hotspot: str | None = None
    hotspot_mm: tuple[float, float, float] | None = None
    navigation: str | None = None

    @classmethod
    def from_facts(cls, device: dict, protocol: dict, overrides: dict) -> StimulationSetup:
        """Merge the logged ``device`` record, the protocol and caller-given facts."""
        def pick(*keys: str, scopes: tuple[dict, ...]) -> Any:
            for scope in scopes:
                for k in keys:
                    v = scope.get(k)
                    if v not in (None, "") and not isinstance(v, (dict, list)):
                        return v
            return None

        everywhere = (overrides, device, protocol)
        mm = pick("hotspot_mm", scopes=(overrides,)) or device.get("hotspot_mm")
        return cls(
            manufacturer=pick("manufacturer", scopes=(overrides, device)),
            model=pick("stimulator", "model", scopes=(overrides, device)),
            serial_number=pick("serial_number", "serial", scopes=(overrides, device)),
            software_version=pick("firmware", "software_version", scopes=(overrides, device)),
            coil_model=pick("coil_id", "coil_model", "coil", scopes=everywhere),
            coil_serial_number=pick("coil_serial_number", scopes=(overrides, device)),
            coil_shape=pick("coil_shape", scopes=(overrides, device)),
            waveform=pick("pulse_waveform", "waveform", scopes=everywhere),
            target=pick("target", scopes=(overrides, protocol, device)),
            hemisphere=pick("hemisphere", scopes=(overrides, protocol, device)),
            hotspot=pick("hotspot", scopes=(overrides, device)),
            hotspot_mm=tuple(float(x) for x in mm) if isinstance(mm, (list, tuple)) and len(
                mm) == 3 else None,
            navigation=pick("navigation", scopes=(overrides, device)),
        )


@dataclass(frozen=True)
class IntensityReference:
    """A measured motor threshold (an ``IntensitySet`` entry)."""

    kind: str  # "rMT" or "aMT"
    value_percent: float
    method: str | None = None
    criterion: str | None = None


@dataclass
class NIBSTables:
    """The rows and sidecars of ``*_nibs.tsv`` and ``*_markers.tsv`` for one session."""

    nibs_rows: list[dict] = field(default_factory=list)
    nibs_sidecar: dict = field(default_factory=dict)
    marker_rows: list[dict] = field(default_factory=list)
    marker_sidecar: dict = field(default_factory=dict)


def event_id(source: str, intensity_percent: Any) -> str:
    """The ``nibs_event_id`` of a pulse: its source and its intensity (``rtms_35pct``)."""
    if isinstance(intensity_percent, (int, float)) and math.isfinite(intensity_percent):
        value = f"{float(intensity_percent):g}".replace(".", "p")
        return f"{source}_{value}pct"
    return source


def _require(value: Any, name: str, how: str) -> Any:
    if value in (None, ""):
        raise NIBSMetadataError(f"NIBS-BIDS needs {name}, which this session does not "
                                f"record: {how}")
    return value


def build_tables(setup: StimulationSetup, pulse_sets: dict[str, dict],
                 references: list[IntensityReference], *, description: str,
                 intended_for: list[str], concurrent: list[str],
                 poses: list[dict] = ()) -> NIBSTables:
    """Rows and sidecars for one session.

    Parameters
    ----------
    setup : StimulationSetup
        Stimulator, coil and target.
    pulse_sets : dict
        ``nibs_event_id`` → ``{"stimulus_intensity", "intensity_reference",
        "intensity_scaling", "stimulus_count"}``.
    references : list of IntensityReference
        Measured thresholds that intensities were scaled from.
    description : str
        ``NIBSDescription`` (what the protocol was).
    intended_for : list of str
        BIDS URIs of the events files the stimulation is time-locked to.
    concurrent : list of str
        Recorded datatypes (``["emg"]``).
    poses : list of dict
        Events rows; those referring to a ``pose<N>`` position add its markers row
        (:func:`pose_markers`).

    Raises
    ------
    NIBSMetadataError
        The stimulator manufacturer or model, the coil, the target, or a threshold an
        intensity refers to is unknown.
    """
    hint = ("log it with session.log_device(...) or pass stimulator={...} to export_bids")
    _require(setup.manufacturer, "StimulatorSet.Manufacturer", hint)
    _require(setup.model, "StimulatorSet.ManufacturerModelName", hint)
    _require(setup.coil_model, "ElementSet.ModelName (the coil)", hint)
    _require(setup.target, "markers position_label (the target)", hint)
    shape = WAVEFORMS.get(str(setup.waveform or "").lower())
    known = {r.kind for r in references}
    rows = []
    for eid, values in pulse_sets.items():
        ref = values.get("intensity_reference")
        if ref not in (None, "absolute") and ref not in known:
            raise NIBSMetadataError(f"NIBS-BIDS row {eid!r} is scaled from {ref} but the "
                                    f"session logs no {ref} value (IntensitySet.Value)")
        row = {"nibs_event_id": eid, "nibs_type": "TMS", "stimulator_id": STIMULATOR_ID,
               "nibs_element_id": ELEMENT_ID}
        if shape:
            row["stimulus_shape"] = shape
        row.update({k: v for k, v in values.items() if v is not None})
        rows.append(row)
    columns = [c for c in NIBS_COLUMNS if any(c in r for r in rows)]
    stimulator = {"StimulatorID": STIMULATOR_ID, "Manufacturer": setup.manufacturer,
                  "ManufacturerModelName": setup.model,
                  "ManufacturerSerialNumber": setup.serial_number,
                  "SoftwareVersion": setup.software_version}
    element = {"ElementID": ELEMENT_ID, "ElementType": "coil", "ModelName": setup.coil_model,
               "SerialNumber": setup.coil_serial_number, "CoilShape": setup.coil_shape}
    intensity_set = [
        {"IntensityID": r.kind, "Value": r.value_percent, "Units": "% Maximum Stimulator Output",
         "Type": "resting_motor" if r.kind == "rMT" else "active_motor",
         "Criterion": r.criterion, "Algorithm": r.method, "MeasurementMethod": "EMG MEP"}
        for r in references
    ]
    sidecar: dict[str, Any] = {
        "NIBSSpecification": NIBS_SPEC_VERSION,
        "NIBSDescription": description,
        "ConcurrentModalities": concurrent or ["none"],
        "IntendedFor": intended_for,
        "StimulatorSet": [_compact(stimulator)],
        "ElementSet": [_compact(element)],
        "IntensitySet": [_compact(e) for e in intensity_set],
        "NavigationSystem": _compact({"Navigation": setup.navigation is not None,
                                      "NavigationModelName": setup.navigation}),
    }
    if not intended_for:
        del sidecar["IntendedFor"]
    sidecar.update({c: NIBS_COLUMNS[c] for c in columns})
    marker = {"nibs_position_id": POSITION_ID, "nibs_element_id": ELEMENT_ID,
              "position_label": _label(setup.target, setup.hemisphere),
              "position_description": _placement_text(setup)}
    if setup.hotspot_mm is not None:
        marker.update(zip(("position_x", "position_y", "position_z"), setup.hotspot_mm,
                          strict=True))
    markers = [marker, *pose_markers(list(poses), setup.navigation)]
    marker_cols = [c for c in MARKER_COLUMNS if any(c in m for m in markers)]
    return NIBSTables(
        nibs_rows=[{c: r.get(c) for c in columns} for r in rows],
        nibs_sidecar=sidecar,
        marker_rows=[{c: m.get(c, "n/a") for c in marker_cols} for m in markers],
        marker_sidecar={"NIBSSpecification": NIBS_SPEC_VERSION,
                        **{c: MARKER_COLUMNS[c] for c in marker_cols}},
    )


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (None, "")}


def _label(target: str, hemisphere: str | None) -> str:
    text = str(target).strip()
    if hemisphere and str(hemisphere).lower() in ("left", "right"):
        text = f"{text}_{str(hemisphere).lower()}"
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def _placement_text(setup: StimulationSetup) -> str:
    parts = [f"target {setup.target}"]
    if setup.hemisphere:
        parts.append(f"hemisphere: {setup.hemisphere}")
    parts.append(f"hotspot: {setup.hotspot}" if setup.hotspot else
                 "hotspot: not recorded")
    parts.append(f"navigated with {setup.navigation}" if setup.navigation else
                 "no neuronavigation")
    return "; ".join(parts)
