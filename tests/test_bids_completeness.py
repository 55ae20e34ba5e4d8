"""BIDS export: no placeholders, unknown required values fail naming the field, labels
checked, sham never written, adverse events never "0" when nobody asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_bids import EMG, T0, log_setup, needs_validator, write_fake_recording

from labkit.bids import (
    AllocationKey,
    BIDSExportError,
    EMGSetup,
    export_bids,
    exported_pulses,
    find_placeholders,
    validate_bids,
)
from labkit.errors import ConfigError
from labkit.protocols import load_protocol
from labkit.session import Session


def small_session(root: Path, subject: str = "P007", *, device: bool = True,
                  emg_setup: bool = True, protocol: str | None = None,
                  asked: bool | None = None) -> Session:
    ses = Session(root, subject, 1, clock=lambda: T0)
    if emg_setup:
        ses.log_event("emg_setup", **EMG.to_log())
    if device:
        ses.log_device(model="Magstim Rapid2", manufacturer="Magstim",
                       coil="D70 figure-of-eight", target="M1", hemisphere="left")
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((2, 8000)), T0)
    sham = False
    if protocol:
        proto = load_protocol(protocol)
        sham = proto.sham
        ses.log_protocol(proto)
        ses.sink("run", {"protocol": proto.name, "sham": sham, "total_pulses": 3})
    ses.log_threshold(50, method="bayesian")
    for i in range(3):
        ses.sink("pulse", {"index": i, "time_s": T0 + 1 + 0.1 * i, "intensity_percent": 45,
                           "train": 0, "protocol": protocol or "single", "sham": sham})
    if asked is not None:
        ses.log_adverse_event_check(asked_by="operator A", none_reported=asked)
    ses.close()
    return ses


def test_the_placeholder_scan_finds_what_mne_bids_leaves_behind(tmp_path):
    ses = small_session(tmp_path / "data")
    export_bids(ses, tmp_path / "bids")
    assert find_placeholders(tmp_path / "bids") == []
    sidecar = next((tmp_path / "bids").rglob("*_emg.json"))
    values = json.loads(sidecar.read_text())
    values["EMGReference"] = "n/a"
    values["Manufacturer"] = "TODO FIXME please complete this field"
    sidecar.write_text(json.dumps(values))
    desc = tmp_path / "bids" / "dataset_description.json"
    desc.write_text(json.dumps({**json.loads(desc.read_text()),
                                "Authors": ["[Unspecified1]"]}))
    found = find_placeholders(tmp_path / "bids")
    assert any("required field EMGReference is 'n/a'" in f for f in found)
    assert any("'TODO'" in f for f in found) and any("'FIXME'" in f for f in found)
    assert any(f.startswith("dataset_description.json") for f in found)


@needs_validator
def test_no_file_of_a_full_export_holds_a_placeholder_and_the_validator_passes(tmp_path):
    ses = small_session(tmp_path / "data", protocol="m1_10hz_pain_1000", asked=True)
    export_bids(ses, tmp_path / "bids", license="CC0")
    bad = []
    for path in (tmp_path / "bids").rglob("*"):
        if path.suffix in (".json", ".tsv") or path.name == "README":
            text = path.read_text()
            bad += [f"{path.name}: {m}" for m in ("TODO", "FIXME", "please complete",
                                                  "Unspecified") if m in text]
    assert bad == []
    emg_json = json.loads(next((tmp_path / "bids").rglob("*_emg.json")).read_text())
    for required in ("EMGReference", "EMGPlacementScheme", "EMGPlacementSchemeDescription",
                     "TaskName", "SamplingFrequency", "PowerLineFrequency"):
        assert emg_json[required] not in (None, "", "n/a"), required
    assert json.loads((tmp_path / "bids" / "dataset_description.json").read_text())[
        "BIDSVersion"] == "1.11.0"
    report = validate_bids(tmp_path / "bids")
    assert report.errors == [], [str(e) for e in report.errors]


def test_without_an_emg_setup_the_export_fails_naming_emg_reference(tmp_path):
    ses = small_session(tmp_path / "data", emg_setup=False)
    with pytest.raises(BIDSExportError, match="EMGReference and EMGPlacementScheme are "
                                              "required by BIDS 1.11"):
        export_bids(ses, tmp_path / "bids")
    assert not (tmp_path / "bids").exists()  # refused before anything was written


def test_emg_setup_refuses_unknown_required_values():
    with pytest.raises(ConfigError, match="EMGReference is required") as info:
        EMGSetup(reference="n/a", placement_description="x")
    assert info.value.field == "reference"
    with pytest.raises(ConfigError, match="required by BIDS when the scheme is 'Other'"):
        EMGSetup(reference="belly-tendon")
    with pytest.raises(ConfigError, match="one of"):
        EMGSetup(reference="belly-tendon", placement_scheme="SENIAM")


def test_unknown_stimulator_fails_naming_the_nibs_field(tmp_path):
    ses = small_session(tmp_path / "data", device=False)
    with pytest.raises(BIDSExportError, match=r"StimulatorSet\.Manufacturer"):
        export_bids(ses, tmp_path / "bids")
    out = export_bids(ses, tmp_path / "bids", stimulator={
        "manufacturer": "Magstim", "stimulator": "Rapid2", "coil_id": "D70", "target": "M1"})
    assert out.n_pulses == 3


@pytest.mark.parametrize("label", [
    "Jöhn Doe", "a.b", "P001\u202e", "P\u202e100", "P00\u0661", "P001 ", "P-001", "P_001",
    "John", "19800101",
])
def test_subject_folders_that_are_not_pseudonymous_bids_labels_are_refused(tmp_path, label):
    ses = small_session(tmp_path / "data")
    bad = tmp_path / "data" / f"sub-{label}" / "ses-01"
    shutil.copytree(ses.path, bad)
    with pytest.raises(BIDSExportError, match="subject label .* refused"):
        export_bids(bad, tmp_path / "bids")
    assert not list((tmp_path / "bids").rglob("*.edf")) if (tmp_path / "bids").exists() \
        else True


def test_a_folder_renamed_away_from_its_log_is_refused(tmp_path):
    ses = small_session(tmp_path / "data")
    moved = tmp_path / "data" / "sub-P008" / "ses-01"
    shutil.copytree(ses.path, moved)
    with pytest.raises(BIDSExportError, match="folder says subject_id 'P008' but the session "
                                              "log says 'P007'"):
        export_bids(moved, tmp_path / "bids")


def test_a_sham_session_is_refused_without_a_key_and_exported_blinded_with_one(tmp_path):
    ses = small_session(tmp_path / "data", protocol="sham_m1_10hz_pain", asked=True)
    with pytest.raises(BIDSExportError, match="would unblind"):
        export_bids(ses, tmp_path / "bids")
    key = AllocationKey({"K": "active", "Q": "sham"})
    out = export_bids(ses, tmp_path / "bids", allocation=key)
    rows = exported_pulses(out.events_files[0])
    assert {r["arm"] for r in rows} == {"Q"} and {r["protocol"] for r in rows} == {"arm-Q"}
    leaks = [p.relative_to(tmp_path / "bids").as_posix() for p in (tmp_path / "bids").rglob("*")
             if p.is_file() and p.suffix in (".json", ".tsv", "")
             and any(w in p.read_text(errors="replace").lower() for w in ("sham", "placebo"))]
    assert leaks == []
    with pytest.raises(BIDSExportError, match="must not be stored inside the BIDS dataset"):
        key.write(tmp_path / "bids" / "code" / "allocation.json")
    kept = key.write(tmp_path / "key" / "allocation.json")
    assert json.loads(kept.read_text())["arms"] == {"K": "active", "Q": "sham"}


def test_active_session_of_a_blinded_study_gets_the_other_code(tmp_path):
    ses = small_session(tmp_path / "data", protocol="m1_10hz_pain_1000")
    out = export_bids(ses, tmp_path / "bids",
                      allocation=AllocationKey({"K": "active", "Q": "sham"}))
    assert {r["arm"] for r in exported_pulses(out.events_files[0])} == {"K"}


def test_allocation_codes_must_not_say_what_they_hide():
    with pytest.raises(ConfigError, match="neutral"):
        AllocationKey({"sham": "sham", "A": "active"})
    with pytest.raises(ConfigError, match="exactly one 'active' and one 'sham'"):
        AllocationKey({"A": "active", "B": "active"})


@pytest.mark.parametrize(("asked", "expected"), [(None, ["false", "n/a"]),
                                                 (True, ["true", "0"])])
def test_adverse_events_are_not_zero_when_nobody_asked(tmp_path, asked, expected):
    ses = small_session(tmp_path / "data", asked=asked)
    export_bids(ses, tmp_path / "bids")
    line = (tmp_path / "bids" / "sub-P007" / "sub-P007_sessions.tsv").read_text().splitlines()
    assert line[1].split("\t")[-2:] == expected


def test_emg_channels_without_a_named_muscle_are_refused(tmp_path):
    ses = Session(tmp_path / "data", "P007", 1, clock=lambda: T0)
    log_setup(ses, device=True)
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((1, 4000)), T0, ch_names=["ADM"])
    ses.close()
    with pytest.raises(BIDSExportError, match=r"no target muscle for channel\(s\) \['ADM'\]"):
        export_bids(ses, tmp_path / "bids")


def write_fake_markers(path: Path, markers: list[tuple[float, dict]]) -> None:
    """A pulse-marker recording in labkit's on-disk format (what StreamRecorder writes)."""
    path.mkdir(parents=True)
    header = {"format_version": 1, "name": "fake-pulses", "type": "Markers",
              "source_id": "fake", "hostname": "test", "sfreq": 0.0, "n_channels": 1,
              "ch_names": ["ch1"], "units": [""], "ch_types": ["misc"],
              "channel_format": "string", "sample_dtype": None, "time_dtype": "<f8",
              "created_local_clock_s": T0, "created_unix_s": 1.7e9}
    (path / "header.json").write_text(json.dumps(header))
    lines = [json.dumps({"time_s": t, "values": [json.dumps({"event": "pulse", **m})]})
             for t, m in markers]
    (path / "markers.jsonl").write_text("\n".join(lines) + "\n")


def test_every_marker_stream_pulse_is_exported_exactly_once_with_its_source(tmp_path):
    """Hunt pulses (never logged), closed-loop pulses (logged as closed_loop_pulse) and a
    protocol train (logged as pulse) all reach events.tsv, each once."""
    ses = Session(tmp_path / "data", "P007", 1, clock=lambda: T0)
    log_setup(ses, device=True)
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((2, 20000)), T0)
    ses.log_threshold(50, method="bayesian")
    markers = []
    for k in range(3):  # threshold hunt through rig.pulse: markers only
        markers.append((T0 + 0.5 + k * 0.3, {"device": "Magstim", "index": k,
                                             "intensity_percent": 48 + k}))
    for k in range(4):  # closed loop: the controller logs its own records
        t = T0 + 2.0 + k * 0.7 + 1e-5  # the recorder's stamp differs by microseconds
        markers.append((t, {"device": "Magstim", "index": 3 + k, "intensity_percent": 60}))
        ses.sink("closed_loop_pulse", {
            "index": k, "condition": "phase" if k % 2 else "random", "target_phase_rad": 0.0,
            "sample_time_s": t - 0.004, "decision_time_s": t - 0.001, "fire_time_s": t - 1e-5,
            "return_time_s": t + 0.002, "estimated_phase_rad": 0.1, "true_phase_rad": None,
            "amplitude_uv": 3.0, "freq_hz": 10.5, "loop_delay_s": 0.001})
    for k in range(5):  # a protocol train: runner pulses
        t = T0 + 6.0 + k * 0.1
        markers.append((t, {"device": "Magstim", "index": 7 + k, "intensity_percent": 45}))
        ses.sink("pulse", {"index": 7 + k, "time_s": t, "intensity_percent": 45, "train": 0,
                           "protocol": "m1_10hz_pain_1000"})
    ses.sink("pulse", {"index": 99, "time_s": T0 + 8.0, "intensity_percent": 45, "train": 1,
                       "protocol": "m1_10hz_pain_1000"})  # its marker was lost
    write_fake_markers(ses.recordings_dir / "markers", markers)
    ses.close()
    out = export_bids(ses, tmp_path / "bids")
    rows = exported_pulses(out.events_files[0])
    assert out.n_pulses == len(rows) == 13
    assert out.pulses_not_logged == 3 and out.pulses_without_marker == 1
    marker_times = sorted(round(t, 6) for t, _ in markers)
    exported = sorted(float(r["lsl_time_s"]) for r in rows if r["in_marker_stream"] == "true")
    assert exported == pytest.approx(marker_times, abs=2e-5)  # every marker, once
    assert [r["source"] for r in rows] == ["single"] * 3 + ["closed_loop"] * 4 + [
        "protocol"] * 6
    hunt = rows[:3]
    assert [r["intensity_percent"] for r in hunt] == ["48", "49", "50"]
    loop = rows[3:7]
    assert [r["condition"] for r in loop] == ["random", "phase", "random", "phase"]
    assert {r["intensity_percent"] for r in loop} == {"60"}  # from the marker
    assert [r["closed_loop_index"] for r in loop] == ["0", "1", "2", "3"]
    assert [r["pulse_index"] for r in loop] == ["3", "4", "5", "6"]  # the driver's count
    assert rows[-1]["in_marker_stream"] == "false"
    nibs = exported_pulses(next(p for p in out.nibs_files if p.name.endswith("_nibs.tsv")))
    assert sorted(r["nibs_event_id"] for r in nibs) == [
        "closed_loop_60pct", "protocol_45pct", "single_48pct", "single_49pct", "single_50pct"]
    sessions = (tmp_path / "bids" / "sub-P007" / "sub-P007_sessions.tsv").read_text()
    assert sessions.splitlines()[1].split("\t")[4] == "13"


def test_date_shifting_moves_every_date_by_the_same_days_and_keeps_no_offset(tmp_path):
    ses = small_session(tmp_path / "data")
    export_bids(ses, tmp_path / "plain")
    export_bids(ses, tmp_path / "shared", date_shift_days=400)

    def acq_time(root: Path) -> str:
        return exported_pulses(next(root.rglob("*_scans.tsv")))[0]["acq_time"]

    from datetime import datetime

    plain, shared = (datetime.fromisoformat(acq_time(tmp_path / r).replace("Z", "+00:00"))
                     for r in ("plain", "shared"))
    assert (plain - shared).total_seconds() == 400 * 86400
    # every text file but scans.tsv is identical: the offset is written nowhere
    for path in (tmp_path / "plain").rglob("*"):
        if path.is_file() and path.suffix != ".edf" and not path.name.endswith("_scans.tsv"):
            twin = tmp_path / "shared" / path.relative_to(tmp_path / "plain")
            assert twin.read_text() == path.read_text(), path.name
    with pytest.raises(BIDSExportError, match="before 1985"):
        export_bids(ses, tmp_path / "old", date_shift_days=36000)
    with pytest.raises(BIDSExportError, match="whole number of days"):
        export_bids(ses, tmp_path / "bad", date_shift_days=-1)


@pytest.mark.parametrize("label", ["01.b", "0\u202e1", "eins zwei", "01\n"])
def test_session_folders_that_are_not_bids_labels_are_refused(tmp_path, label):
    ses = small_session(tmp_path / "data")
    bad = tmp_path / "data" / "sub-P007" / f"ses-{label}"
    shutil.copytree(ses.path, bad)
    with pytest.raises(BIDSExportError, match="session label .* refused"):
        export_bids(bad, tmp_path / "bids")
