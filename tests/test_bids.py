"""BIDS export: EMG/EEG + events with pulse parameters + BEP037 sidecars, validator clean."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from labkit.bids import (
    BIDSExportError,
    BIDSValidationError,
    EMGSetup,
    ValidationReport,
    export_bids,
    exported_pulses,
    find_placeholders,
    validate_bids,
)
from labkit.markers import PulseEvent
from labkit.session import Session

FS_HZ = 2000.0
T0 = 1000.0  # LSL time of the first sample in the synthetic recordings

needs_validator = pytest.mark.skipif(
    shutil.which("bids-validator-deno") is None
    and not (Path(__import__("sys").executable).parent / "bids-validator-deno").exists(),
    reason="bids-validator-deno is not installed",
)


def write_fake_recording(path: Path, data_uv: np.ndarray, t0: float, *, stream_type="EMG",
                         ch_names=None, clock_ratio: float = 1.0) -> None:
    """Write a recording in labkit's on-disk format (what StreamRecorder produces)."""
    n_ch, n = data_uv.shape
    path.mkdir(parents=True)
    header = {
        "format_version": 1, "name": f"fake-{stream_type}", "type": stream_type,
        "source_id": "fake", "hostname": "test", "sfreq": FS_HZ, "n_channels": n_ch,
        "ch_names": ch_names or (["FDI", "APB"][:n_ch] if stream_type == "EMG" else
                                 [f"{stream_type}{i + 1}" for i in range(n_ch)]),
        "units": ["microvolts"] * n_ch, "ch_types": [stream_type.lower()] * n_ch,
        "channel_format": "float32", "sample_dtype": "<f4", "time_dtype": "<f8",
        "created_local_clock_s": t0, "created_unix_s": 1.7e9,
    }
    (path / "header.json").write_text(json.dumps(header))
    (path / "data.f32").write_bytes(np.ascontiguousarray(data_uv.T, dtype="<f4").tobytes())
    stamps = t0 + np.arange(n) / FS_HZ * clock_ratio
    (path / "times.f64").write_bytes(stamps.astype("<f8").tobytes())


EMG = EMGSetup(
    reference="bipolar belly-tendon montage: reference electrode over each muscle's tendon",
    placement_scheme="Other",
    placement_description="belly electrode over the muscle belly found by palpation during "
                          "a brief contraction, reference on the tendon",
    muscles={"FDI": "right first dorsal interosseous", "APB": "right abductor pollicis brevis"},
    ground="right ulnar styloid process", electrode_type="disposable surface",
    electrode_material="Ag/AgCl",
)


DEVICE = {"model": "Magstim Rapid2", "manufacturer": "Magstim", "coil": "D70 figure-of-eight",
          "target": "M1", "hemisphere": "left"}


def log_setup(ses: Session, *, eeg: bool = False, device: bool = False) -> None:
    """What a lab logs about its rig at the start of a session."""
    ses.log_event("emg_setup", **EMG.to_log())
    if device:
        ses.log_device(**DEVICE)
    if eeg:
        ses.log_event("eeg_setup", reference="Cz", ground="AFz")


def make_session(root: Path, session: int = 1, *, eeg: bool = False,
                 duration_s: float = 6.0) -> Session:
    rng = np.random.default_rng(session)
    ses = Session(root, "P007", session, clock=lambda: T0)
    log_setup(ses, eeg=eeg)
    n = int(duration_s * FS_HZ)
    write_fake_recording(ses.recordings_dir / "emg", rng.normal(0, 10, (2, n)), T0,
                         ch_names=["FDI", "APB"])
    if eeg:
        write_fake_recording(ses.recordings_dir / "eeg", rng.normal(0, 5, (4, n)), T0,
                             stream_type="EEG", ch_names=["C3", "FC1", "FC5", "CP1"])
    ses.log_device(model="Magstim Rapid2", manufacturer="Magstim", coil="D70 figure-of-eight",
                   serial_number="SN-1234", hotspot="FDI hotspot, 5 cm lateral to Cz")
    ses.log_protocol({"name": "m1_10hz_demo", "target": "M1", "hemisphere": "left",
                      "sham": False, "timing": {"trains": 2, "inter_train_interval_s": 1.0,
                                                "pulses_per_burst": 1}})
    ses.log_threshold(52, method="MLPest", n_pulses=18)
    ses.log_pain_rating(6, when="before")
    k = 0
    for train in range(2):
        for j in range(5):
            t = T0 + 1.0 + train * 1.5 + j * 0.1 + 0.00013  # not on the sample grid
            ses.log_pulse(PulseEvent(time_s=t, intensity_percent=47, device="Rapid", index=k,
                                     extra={"train_index": train, "pulse_in_train": j}),
                          intensity_rmt_percent=90, protocol="m1_10hz_demo")
            k += 1
    ses.log_pulse(time_s=T0 + 100.0, intensity_percent=47, index=k)  # after the recording
    ses.log_pain_rating(3, when="after")
    ses.log_adverse_event("headache")
    return ses


def test_export_layout_events_and_sidecars(tmp_path):
    ses = make_session(tmp_path / "data")
    ses.close()
    out = export_bids(ses, tmp_path / "bids", stimulator={"pulse_waveform": "biphasic"})
    root = tmp_path / "bids"
    base = root / "sub-P007" / "ses-01"
    assert out.data_files == [base / "emg" / "sub-P007_ses-01_task-rtms_emg.edf"]
    assert out.n_pulses == 10 and out.pulses_outside == 1
    rows = exported_pulses(base / "emg" / "sub-P007_ses-01_task-rtms_events.tsv")
    assert len(rows) == 10
    first = rows[0]
    assert first["trial_type"] == "tms_pulse" and first["duration"] == "0"
    assert float(first["onset"]) == pytest.approx(1.00013, abs=1e-6)  # exact, not rounded
    assert first["sample"] == str(round(1.00013 * FS_HZ))
    assert first["intensity_percent"] == "47" and first["intensity_rmt_percent"] == "90"
    assert first["protocol"] == "m1_10hz_demo" and first["device"] == "Rapid"
    assert [r["train_index"] for r in rows] == ["0"] * 5 + ["1"] * 5
    assert [r["pulse_index"] for r in rows] == [str(i) for i in range(10)]
    events_json = json.loads((base / "emg" / "sub-P007_ses-01_task-rtms_events.json")
                             .read_text())
    assert events_json["intensity_rmt_percent"]["Units"] == "% RMT"
    assert {r["nibs_event_id"] for r in rows} == {"protocol_47pct"}
    assert {r["nibs_position_id"] for r in rows} == {"target1"}
    # NIBS-BIDS v6.3: one row per parameter set, linked to the events by nibs_event_id
    nibs_tsv = base / "nibs" / "sub-P007_ses-01_task-rtms_nibs.tsv"
    header, values = nibs_tsv.read_text().splitlines()
    nibs = dict(zip(header.split("\t"), values.split("\t"), strict=True))
    assert header.split("\t")[:2] == ["nibs_event_id", "nibs_type"]
    assert nibs["nibs_event_id"] == "protocol_47pct" and nibs["nibs_type"] == "TMS"
    assert nibs["stimulus_intensity"] == "47" and nibs["stimulus_shape"] == "Biphasic"
    assert nibs["intensity_reference"] == "rMT" and nibs["intensity_scaling"] == "0.904"
    assert nibs["stimulus_count"] == "10"
    nibs_json = json.loads((base / "nibs" / "sub-P007_ses-01_task-rtms_nibs.json").read_text())
    assert nibs_json["StimulatorSet"] == [{
        "StimulatorID": "stimulator1", "Manufacturer": "Magstim",
        "ManufacturerModelName": "Magstim Rapid2", "ManufacturerSerialNumber": "SN-1234"}]
    assert nibs_json["ElementSet"][0]["ModelName"] == "D70 figure-of-eight"
    (rmt,) = nibs_json["IntensitySet"]
    assert (rmt["IntensityID"], rmt["Value"], rmt["Algorithm"]) == ("rMT", 52.0, "MLPest")
    assert nibs_json["IntendedFor"] == [
        "bids::sub-P007/ses-01/emg/sub-P007_ses-01_task-rtms_events.tsv"]
    assert nibs_json["NIBSSpecification"] == "NIBS-BIDS (BEP037) draft v6.3"
    assert "stimsys" not in json.dumps(nibs_json)
    markers_tsv = base / "nibs" / "sub-P007_ses-01_task-rtms_markers.tsv"
    header, values = markers_tsv.read_text().splitlines()
    marker = dict(zip(header.split("\t"), values.split("\t"), strict=True))
    assert marker["nibs_position_id"] == "target1" and marker["position_label"] == "M1_left"
    assert "FDI hotspot, 5 cm lateral to Cz" in marker["position_description"]
    assert "no neuronavigation" in marker["position_description"]
    # BIDS 1.11 EMG: required fields from the EMG set-up, muscles in channels.tsv
    emg_json = json.loads((base / "emg" / "sub-P007_ses-01_task-rtms_emg.json").read_text())
    assert emg_json["EMGReference"] == EMG.reference
    assert emg_json["EMGPlacementScheme"] == "Other"
    assert emg_json["EMGPlacementSchemeDescription"] == EMG.placement_description
    assert emg_json["EMGGround"] == "right ulnar styloid process"
    channels = exported_pulses(base / "emg" / "sub-P007_ses-01_task-rtms_channels.tsv")
    assert [c["target_muscle"] for c in channels] == [EMG.muscles["FDI"], EMG.muscles["APB"]]
    assert "**/nibs" in (root / ".bidsignore").read_text().splitlines()
    sessions = (root / "sub-P007" / "sub-P007_sessions.tsv").read_text().splitlines()
    assert sessions[0].split("\t")[-2:] == ["adverse_events_asked", "adverse_events_reported"]
    assert sessions[1].split("\t") == ["ses-01", "52", "6", "3", "11", "true", "1"]
    assert find_placeholders(root) == []
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["GeneratedBy"][0]["Name"] == "labkit"


def test_onsets_follow_recorded_timestamps_under_clock_drift(tmp_path):
    ses = Session(tmp_path / "data", "01", 1)
    log_setup(ses, device=True)
    # the amplifier's clock runs 1 % slow: 2000 samples span 2.02 s of LSL time
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((1, 20000)), T0,
                         clock_ratio=1.01)
    ses.log_pulse(time_s=T0 + 5000 / FS_HZ * 1.01, intensity_percent=50, index=0)
    ses.close()
    out = export_bids(ses, tmp_path / "bids")
    (row,) = exported_pulses(out.events_files[0])
    assert row["sample"] == "5000"
    assert float(row["onset"]) == pytest.approx(5000 / FS_HZ, abs=1e-6)  # not 2.525 s


def test_runner_style_pulses_via_sink_get_rmt_percent_and_described_columns(tmp_path):
    ses = Session(tmp_path / "data", "01", 1)
    log_setup(ses, device=True)
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((1, 10000)), T0)
    ses.log_threshold(40, method="MLPest")
    for i in range(3):  # what labkit.runner.ProtocolRunner hands its log callback
        ses.sink("pulse", {"index": i, "time_s": T0 + 1 + i * 0.1, "intensity_percent": 44,
                           "train": 0, "burst": i, "pulse_in_burst": 0,
                           "scheduled_s": i * 0.1, "late_ms": None, "timing": "software",
                           "sham": False})
    ses.sink("finish", {"pulses_delivered": 3})
    ses.close()
    out = export_bids(ses, tmp_path / "bids")
    rows = exported_pulses(out.events_files[0])
    assert [r["intensity_rmt_percent"] for r in rows] == ["110"] * 3  # 44 / 40
    assert [r["burst"] for r in rows] == ["0", "1", "2"]
    assert [r["late_ms"] for r in rows] == ["n/a"] * 3
    assert [float(r["onset"]) for r in rows] == pytest.approx([1.0, 1.1, 1.2], abs=1e-6)
    described = json.loads(out.events_files[0].with_suffix(".json").read_text())
    assert described["late_ms"]["Units"] == "ms" and "runner" in described["burst"]["Description"]


def test_nibs_sidecar_from_a_shipped_protocol(tmp_path):
    from labkit.protocols import load_protocol

    protocol = load_protocol("m1_10hz_pain_1000")
    ses = Session(tmp_path / "data", "01", 1)
    log_setup(ses)
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((1, 4000)), T0)
    ses.log_protocol(protocol)
    ses.log_threshold(50, method="MLPest")
    for i in range(3):
        ses.sink("pulse", {"index": i, "time_s": T0 + 0.5 + i * 0.1, "intensity_percent": 45,
                           "train": 0, "protocol": protocol.name})
    ses.close()
    out = export_bids(ses, tmp_path / "bids", stimulator={
        "manufacturer": "Magstim", "stimulator": "Magstim Rapid2"})
    nibs_tsv, nibs_json, markers_tsv, _ = out.nibs_files
    header, values = nibs_tsv.read_text().splitlines()
    nibs = dict(zip(header.split("\t"), values.split("\t"), strict=True))
    assert nibs["nibs_event_id"] == "protocol_45pct" and nibs["stimulus_count"] == "3"
    assert nibs["intensity_reference"] == "rMT" and nibs["intensity_scaling"] == "0.9"
    sidecar = json.loads(nibs_json.read_text())
    assert sidecar["ElementSet"][0]["ModelName"] == "figure-of-eight"  # from the protocol
    assert sidecar["NIBSDescription"] == (
        "protocol m1_10hz_pain_1000, 10 Hz, 20 train(s), 50 bursts per train, 1 pulse(s) per "
        "burst, 55 s between trains, planned at 80 % RMT, 1000 pulses planned")
    assert "path" not in json.dumps(sidecar)  # no local paths in a shared dataset
    assert "M1" in markers_tsv.read_text()


def test_round_trip_through_mne_bids(tmp_path):
    import mne_bids

    ses = make_session(tmp_path / "data")
    ses.close()
    export_bids(ses.path, tmp_path / "bids")  # from the directory alone
    bp = mne_bids.BIDSPath(subject="P007", session="01", task="rtms", datatype="emg",
                           root=tmp_path / "bids")
    raw = mne_bids.read_raw_bids(bp, verbose="error")
    assert raw.ch_names == ["FDI", "APB"] and raw.info["sfreq"] == FS_HZ
    assert raw.get_channel_types() == ["emg", "emg"]
    pulses = raw.annotations[raw.annotations.description == "tms_pulse"]
    expected = [1.0 + tr * 1.5 + j * 0.1 + 0.00013 for tr in range(2) for j in range(5)]
    np.testing.assert_allclose(pulses.onset, expected, atol=1e-5)
    # volts in the file, µV in the recording: EDF keeps ~16-bit resolution of the range
    data_uv = raw.get_data()[0] * 1e6
    assert 5 < data_uv.std() < 15


@needs_validator
def test_export_passes_official_validator(tmp_path):
    ses = make_session(tmp_path / "data", eeg=True)
    ses.close()
    export_bids(ses, tmp_path / "bids")
    second = make_session(tmp_path / "data", 2)  # another session of the same subject
    write_fake_recording(second.recordings_dir / "emg-2",  # recorded again after a resume
                         np.zeros((2, 4000)), T0 + 10.0, ch_names=["FDI", "APB"])
    second.log_pulse(time_s=T0 + 11.0, intensity_percent=47, index=99)
    second.close()
    out = export_bids(second, tmp_path / "bids", license="CC0")
    assert [p.name for p in out.data_files] == ["sub-P007_ses-02_task-rtms_run-1_emg.edf",
                                                "sub-P007_ses-02_task-rtms_run-2_emg.edf"]
    assert out.n_pulses == 11  # 10 in run 1, 1 in run 2
    run2 = exported_pulses(out.events_files[1])
    assert [(r["pulse_index"], r["onset"]) for r in run2] == [("99", "1")]
    report = validate_bids(tmp_path / "bids")
    assert isinstance(report, ValidationReport)
    assert report.errors == [], [str(e) for e in report.errors]
    assert report.ok
    assert set(report.summary["dataTypes"]) == {"emg", "eeg"}
    assert report.summary["sessions"] == ["01", "02"]
    assert not [w for w in report.warnings if w.sub_code in ("License", "TaskDescription",
                                                             "SoftwareVersions")]
    sessions = (tmp_path / "bids" / "sub-P007" / "sub-P007_sessions.tsv").read_text()
    assert [line.split("\t")[0] for line in sessions.splitlines()[1:]] == ["ses-01", "ses-02"]


@needs_validator
def test_validator_reports_errors(tmp_path):
    ses = make_session(tmp_path / "data")
    ses.close()
    export_bids(ses, tmp_path / "bids")
    (tmp_path / "bids" / "dataset_description.json").unlink()
    (tmp_path / "bids" / "sub-P007" / "ses-01" / "emg" / "stray_file.txt").write_text("x")
    report = validate_bids(tmp_path / "bids")
    assert not report.ok
    codes = {e.code for e in report.errors}
    assert "MISSING_DATASET_DESCRIPTION" in codes
    with pytest.raises(BIDSValidationError, match="BIDS validator error"):
        report.raise_for_errors()


def test_export_without_recordings_is_an_error(tmp_path):
    with Session(tmp_path / "data", "01") as ses:
        ses.note("no streams")
    with pytest.raises(BIDSExportError, match="no recording labelled 'emg' or 'eeg'"):
        export_bids(ses, tmp_path / "bids")


@needs_validator
def test_live_recording_exports_and_validates(tmp_path):
    """End to end: LSL outlet → Session.record → pulses logged → BIDS → validator."""
    name = f"bids-live-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EMG", 1, FS_HZ, pylsl.cf_float32, uuid.uuid4().hex)
    outlet = pylsl.StreamOutlet(info)
    with Session(tmp_path / "data", "02") as ses:
        log_setup(ses, device=True)
        rec = ses.record(name, "emg", duplicate_wait_s=0.0)
        end = time.monotonic() + 3.0
        while not outlet.have_consumers() and time.monotonic() < end:
            time.sleep(0.01)
        t_start = pylsl.local_clock()
        for k in range(20):  # 2 s of data, a pulse every 200 ms
            outlet.push_chunk(np.full((200, 1), k, dtype=np.float32),
                              t_start + (k + 1) * 0.1)
            if k % 2 == 1:
                ses.log_pulse(time_s=t_start + k * 0.1, intensity_percent=60, index=k // 2)
        end = time.monotonic() + 3.0
        while rec.n_samples < 4000 and time.monotonic() < end:
            time.sleep(0.01)
    setup = EMGSetup(reference=EMG.reference, placement_scheme="Other",
                     placement_description=EMG.placement_description,
                     muscles={"ch1": "right first dorsal interosseous"})
    out = export_bids(ses, tmp_path / "bids", emg_setup=setup)
    assert out.n_pulses == 10
    assert validate_bids(tmp_path / "bids").errors == []


@needs_validator
def test_navigated_pulses_get_their_own_placement_in_markers_tsv(tmp_path):
    ses = Session(tmp_path / "data", "P008", 1, clock=lambda: T0)
    log_setup(ses)
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((2, int(4 * FS_HZ))), T0,
                         ch_names=["FDI", "APB"])
    ses.log_device(model="Magstim Rapid2", manufacturer="Magstim", coil="D70 figure-of-eight",
                   navigation="Localite TMS Navigator", target="M1", hemisphere="left")
    ses.log_threshold(52, method="MLPest", n_pulses=18)
    pose = {"pose_status": "ok", "coil_x_mm": -38.12345, "coil_y_mm": -12.0, "coil_z_mm": 60.5,
            "coil_q0": 0.9, "coil_qx": 0.1, "coil_qy": -0.3, "coil_qz": 0.3,
            "pose_age_ms": 12.5, "target_index": 1, "target_distance_mm": 1.25}
    ses.log_pulse(PulseEvent(time_s=T0 + 1.0, intensity_percent=62, device="Rapid", index=0),
                  source="single", **pose)
    ses.log_pulse(PulseEvent(time_s=T0 + 2.0, intensity_percent=62, device="Rapid", index=1),
                  source="single", **{**pose, "coil_x_mm": -40.0})
    ses.log_pulse(PulseEvent(time_s=T0 + 3.0, intensity_percent=62, device="Rapid", index=2),
                  source="single", pose_status="stale", coil_x_mm=None)  # too old: no pose
    ses.close()
    out = export_bids(ses, tmp_path / "bids")
    rows = exported_pulses(out.events_files[0])
    assert [r["nibs_position_id"] for r in rows] == ["pose1", "pose2", "target1"]
    markers_tsv = [p for p in out.nibs_files if p.name.endswith("_markers.tsv")][0]
    lines = markers_tsv.read_text().splitlines()
    header = lines[0].split("\t")
    markers = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [m["nibs_position_id"] for m in markers] == ["target1", "pose1", "pose2"]
    assert markers[1]["position_x"] == "-38.123" and markers[2]["position_x"] == "-40"
    assert markers[1]["orientation_q0"] == "0.9" and markers[1]["target_distance_mm"] == "1.25"
    assert "Localite TMS Navigator" in markers[1]["position_description"]
    assert markers[0]["position_x"] == "n/a"  # the planned target has no measured coordinates
    sidecar = json.loads(markers_tsv.with_suffix(".json").read_text())
    assert sidecar["position_x"]["Units"] == "mm" and "quaternion" in sidecar[
        "orientation_q0"]["Description"]
    report = validate_bids(tmp_path / "bids")
    assert report.errors == [], [str(e) for e in report.errors]
