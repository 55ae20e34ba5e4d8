"""XDF out (checked with pyxdf) and in (a file written here, from the XDF specification)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from labkit.bids import EMGSetup, export_bids
from labkit.mep import mep_table
from labkit.recording import read_clock_offsets, read_markers, read_recording, to_raw
from labkit.report import session_record, write_session_report
from labkit.session import Session, read_log
from labkit.xdf import XDFError, export_xdf, import_xdf, read_xdf

pyxdf = pytest.importorskip("pyxdf")

FS = 5000.0
EMG = EMGSetup(reference="bipolar belly-tendon montage", placement_scheme="Other",
               placement_description="belly over the muscle, reference on the tendon")

STIMULATOR = {"manufacturer": "Magstim", "stimulator": "Rapid2", "coil_id": "D70",
              "target": "M1", "hemisphere": "left", "pulse_waveform": "biphasic"}


# -- an independent minimal XDF writer, from the specification ------------------------------
# https://github.com/sccn/xdf/wiki/Specifications: after "XDF:", chunks of
# [NumLengthBytes][Length][Tag uint16][Content]; Length counts tag + content.
def varlen(n: int) -> bytes:
    if n <= 0xFF:
        return bytes([1, n])
    if n <= 0xFFFFFFFF:
        return bytes([4]) + n.to_bytes(4, "little")
    return bytes([8]) + n.to_bytes(8, "little")


class SpecWriter:
    def __init__(self) -> None:
        self.buf = bytearray(b"XDF:")

    def chunk(self, tag: int, content: bytes) -> None:
        self.buf += varlen(len(content) + 2) + tag.to_bytes(2, "little") + content

    def file_header(self, when: str) -> None:
        self.chunk(1, f'<?xml version="1.0"?><info><version>1.0</version>'
                      f"<datetime>{when}</datetime></info>".encode())

    def stream_header(self, sid: int, name: str, kind: str, n_ch: int, srate: float, fmt: str,
                      labels: list[str] = ()) -> None:
        chans = "".join(f"<channel><label>{lab}</label><unit>microvolts</unit><type>EMG</type>"
                        "</channel>" for lab in labels)
        xml = (f'<?xml version="1.0"?><info><name>{name}</name><type>{kind}</type>'
               f"<channel_count>{n_ch}</channel_count><nominal_srate>{srate}</nominal_srate>"
               f"<channel_format>{fmt}</channel_format><source_id>{name}-1</source_id>"
               f"<hostname>amp-pc</hostname><desc><channels>{chans}</channels></desc></info>")
        self.chunk(2, sid.to_bytes(4, "little") + xml.encode())

    def samples(self, sid: int, stamps, rows, *, deduce_after_first: bool = False,
                code: str = "f") -> None:
        body = bytearray(sid.to_bytes(4, "little") + varlen(len(rows)))
        for k, (t, row) in enumerate(zip(stamps, rows, strict=True)):
            if deduce_after_first and k > 0:
                body += b"\x00"  # TimeStampBytes = 0: previous + 1/srate
            else:
                body += b"\x08" + struct.pack("<d", t)
            if isinstance(row[0], str):
                for value in row:
                    raw = value.encode()
                    body += varlen(len(raw)) + raw
            else:
                body += struct.pack(f"<{len(row)}{code}", *row)
        self.chunk(3, bytes(body))

    def clock_offset(self, sid: int, collection_s: float, offset_s: float) -> None:
        self.chunk(4, sid.to_bytes(4, "little") + struct.pack("<dd", collection_s, offset_s))

    def footer(self, sid: int, n: int) -> None:
        self.chunk(6, sid.to_bytes(4, "little")
                   + f'<?xml version="1.0"?><info><sample_count>{n}</sample_count></info>'.encode())


def mep_wave(ptp_uv: float) -> np.ndarray:
    """A biphasic 10 ms MEP of peak-to-peak ``ptp_uv`` (sampled at FS)."""
    t = np.arange(int(0.010 * FS)) / FS
    return 0.5 * ptp_uv * np.sin(2 * np.pi * t / 0.010)


def labrecorder_file(path: Path) -> dict:
    """4 s of 5 kHz EMG from a machine whose clock is 3600.5 s behind ours, pulses as
    labkit markers from the recording PC, clock offsets every 0.5 s (LabRecorder style)."""
    rng = np.random.default_rng(7)
    behind_s, t0 = 3600.5, 1000.0  # local (recording PC) time of the first sample
    n = int(4 * FS)
    local = t0 + np.arange(n) / FS
    emg = np.zeros((n, 2), dtype=np.float32)
    pulses_local = [t0 + 1.0, t0 + 2.0, t0 + 3.0]
    amplitudes = [100.0, 400.0, 800.0]
    for t, amp in zip(pulses_local, amplitudes, strict=True):
        start = int(round((t - t0) * FS)) + int(0.022 * FS)  # 22 ms latency
        emg[start:start + int(0.010 * FS), 0] = mep_wave(amp)
    w = SpecWriter()
    w.file_header("2026-03-02T10:00:00+00:00")
    w.stream_header(1, "amp-EMG", "EMG", 2, FS, "float32", ["FDI", "APB"])
    w.stream_header(2, "labkit-pulses", "Markers", 1, 0, "string")
    remote = local - behind_s
    for k in range(0, n, 1000):  # the second chunk carries deduced timestamps
        w.samples(1, remote[k:k + 1000], emg[k:k + 1000].tolist(), deduce_after_first=k == 1000)
        w.clock_offset(1, local[k] - behind_s, behind_s + rng.uniform(-1e-5, 1e-5))
        w.clock_offset(2, local[k], rng.uniform(-3e-5, 0))
    markers = [json.dumps({"event": "pulse", "intensity_percent": 55, "device": "Magstim",
                           "index": i}) for i in range(3)]
    w.samples(2, [t0 + 0.5], [["experiment start"]])
    w.samples(2, pulses_local, [[m] for m in markers])
    w.footer(1, n)
    w.footer(2, 4)
    path.write_bytes(bytes(w.buf))
    sampled = [float(np.ptp(mep_wave(a).astype(np.float32))) for a in amplitudes]
    return {"local": local, "emg": emg, "pulses": pulses_local, "amplitudes": sampled}


def test_labrecorder_style_xdf_imports_into_a_session_that_meps_and_bids_use(tmp_path):
    src = tmp_path / "labrecorder.xdf"
    truth = labrecorder_file(src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    ses_dir = import_xdf(src, tmp_path / "data", "X01", 1)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # only read
    data, stamps, info = read_recording(ses_dir / "recordings" / "emg")
    np.testing.assert_array_equal(data.T, truth["emg"])
    np.testing.assert_allclose(stamps, truth["local"], rtol=0, atol=2e-5)  # onto our clock
    assert info["ch_names"] == ["FDI", "APB"] and info["ch_types"] == ["emg", "emg"]
    assert info["clock_sync"]["n_offsets"] == 20
    pulses = read_log(ses_dir, kind="pulse")
    np.testing.assert_allclose([p.time_s for p in pulses], truth["pulses"], atol=3e-5)
    assert [p.payload["intensity_percent"] for p in pulses] == [55, 55, 55]
    assert read_markers(ses_dir / "recordings" / "markers")[0][0] == "experiment start"
    assert read_log(ses_dir, kind="import")[0].payload["sha256"] == digest
    # the MEP analysis sees the MEPs where they were put, at their amplitudes
    raw = to_raw(ses_dir / "recordings" / "emg")
    table = mep_table(raw, [p.time_s for p in pulses], time_offset_s=raw.first_time_s,
                      channel="FDI")
    np.testing.assert_allclose(table["amplitude_uv"], truth["amplitudes"], rtol=1e-6)
    assert np.allclose(table["latency_ms"], 22.0, atol=0.5)
    out = export_bids(ses_dir, tmp_path / "bids", emg_setup=EMG, stimulator=STIMULATOR)
    assert out.n_pulses == 3 and out.pulses_outside == 0
    report = write_session_report(ses_dir, tmp_path / "report.html")  # the signed record
    assert Path(report).exists() and session_record(read_log(ses_dir)).n_pulses == 3


def _recorded_session(tmp_path) -> Session:
    """A session with EMG (a 'remote' clock 250 s ahead, drifting 20 ppm), markers, log."""
    from labkit.recording import write_recording

    ses = Session(tmp_path / "data", "R01", 1)
    n = 12_345
    rng = np.random.default_rng(1)
    remote = 5000.0 + np.arange(n) / FS
    samples = rng.normal(0, 30, (n, 2)).astype(np.float32)
    local_meas = 4750.0 + np.linspace(0, n / FS, 5)
    offsets = -250.0 + 20e-6 * (local_meas - local_meas[0])
    header = {"name": "amp-EMG", "type": "EMG", "source_id": "amp-1", "sfreq": FS,
              "n_channels": 2, "ch_names": ["FDI", "APB"], "units": ["microvolts"] * 2,
              "ch_types": ["emg", "emg"], "hostname": "amp-pc"}
    write_recording(ses.recordings_dir / "emg", header, remote, samples=samples,
                    clock_offsets=(local_meas, offsets))
    marks = ['{"event": "pulse", "index": 0}', '{"event": "pulse", "index": 1}', "naïve ✓"]
    write_recording(ses.recordings_dir / "markers",
                    {"name": "labkit-pulses", "type": "Markers", "source_id": "m-1",
                     "sfreq": 0.0, "n_channels": 1, "ch_names": ["m"], "units": [""],
                     "ch_types": ["misc"]},
                    np.array([4750.5, 4751.0, 4751.5]), values=marks,
                    clock_offsets=(np.array([4750.0, 4752.0]), np.array([-2e-5, -3e-5])))
    ses.log_pulse(time_s=4750.5, intensity_percent=50, index=0)
    ses.close()
    return ses


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_reads_back_in_pyxdf_with_identical_samples_times_and_offsets(tmp_path):
    ses = _recorded_session(tmp_path)
    before = _tree_digest(ses.path)
    out = export_xdf(ses, tmp_path / "session.xdf")
    assert _tree_digest(ses.path) == before  # the session is only read
    streams, header = pyxdf.load_xdf(str(out), synchronize_clocks=False,
                                     dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert set(by_name) == {"amp-EMG", "labkit-pulses", "labkit-session-log"}
    emg = by_name["amp-EMG"]
    data, stored, _ = read_recording(ses.path / "recordings" / "emg", sync=False)
    np.testing.assert_array_equal(emg["time_stamps"], stored)
    np.testing.assert_array_equal(emg["time_series"].T, data.astype(np.float32))
    labels = [c["label"][0] for c in emg["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels == ["FDI", "APB"] and emg["info"]["nominal_srate"][0] == "5000.0"
    local, offsets = read_clock_offsets(ses.path / "recordings" / "emg")
    np.testing.assert_array_equal(emg["clock_values"], offsets)
    np.testing.assert_array_equal(emg["clock_times"], local - offsets)
    mk = by_name["labkit-pulses"]
    assert [v[0] for v in mk["time_series"]] == read_markers(
        ses.path / "recordings" / "markers", sync=False)[0]
    np.testing.assert_array_equal(mk["time_stamps"], [4750.5, 4751.0, 4751.5])
    log = [json.loads(v[0]) for v in by_name["labkit-session-log"]["time_series"]]
    assert [r["kind"] for r in log] == [r.kind for r in read_log(ses.path)]
    # pyxdf's clock synchronisation lands where labkit's does
    synced = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(
        str(out), dejitter_timestamps=False)[0]}
    ours = read_recording(ses.path / "recordings" / "emg")[1]
    np.testing.assert_allclose(synced["amp-EMG"]["time_stamps"], ours, rtol=0, atol=1e-7)
    # and labkit's own reader and importer take it back unchanged
    again = import_xdf(out, tmp_path / "again", "R01", 1)
    d2, s2, _ = read_recording(again / "recordings" / "emg", sync=False)
    np.testing.assert_array_equal(s2, stored)
    np.testing.assert_array_equal(d2, data)
    np.testing.assert_array_equal(read_recording(again / "recordings" / "emg")[1], ours)
    assert [s.name for s in read_xdf(out)] == ["amp-EMG", "labkit-pulses", "labkit-session-log"]


def test_export_refuses_to_overwrite_and_writes_nothing_partial(tmp_path):
    ses = _recorded_session(tmp_path)
    out = export_xdf(ses.path, tmp_path / "s.xdf")
    with pytest.raises(XDFError, match="exists; pass overwrite=True"):
        export_xdf(ses.path, out)
    assert not (tmp_path / "s.xdf.part").exists()
    assert export_xdf(ses.path, out, overwrite=True) == out


def test_corrupt_or_truncated_xdf_names_file_and_chunk_and_imports_nothing(tmp_path):
    src = tmp_path / "good.xdf"
    labrecorder_file(src)
    data = src.read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(XDFError, match=r"cut\.xdf: chunk \d+ \(Samples\) at byte \d+: "
                                       r"truncated: declares \d+ bytes"):
        read_xdf(cut)
    with pytest.raises(XDFError, match="cut.xdf: chunk"):
        import_xdf(cut, tmp_path / "data", "X02", 1)
    assert not (tmp_path / "data").exists()  # no session was started
    bad = bytearray(data)
    first_chunk_len = bad[5]  # FileHeader: NumLengthBytes 1, then its length
    bad[4 + 2 + first_chunk_len] = 3  # next chunk's NumLengthBytes: 3 is not allowed
    (tmp_path / "bad.xdf").write_bytes(bytes(bad))
    with pytest.raises(XDFError, match=r"bad\.xdf: chunk 2 \(\?\) at byte \d+: variable-length "
                                       r"integer of 3 bytes \(allowed 1, 4, 8\)"):
        read_xdf(tmp_path / "bad.xdf")
    (tmp_path / "not.xdf").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(XDFError, match=r"not\.xdf: not an XDF file"):
        read_xdf(tmp_path / "not.xdf")
    xml_bad = SpecWriter()
    xml_bad.chunk(2, (1).to_bytes(4, "little") + b"<info><name>x</nam></info>")
    (tmp_path / "xml.xdf").write_bytes(bytes(xml_bad.buf))
    with pytest.raises(XDFError, match=r"xml\.xdf: chunk 1 \(StreamHeader\) .*not well-formed"):
        read_xdf(tmp_path / "xml.xdf")


def test_several_streams_of_a_type_and_other_formats_become_labelled_recordings(tmp_path):
    w = SpecWriter()
    w.stream_header(1, "left-EMG", "EMG", 1, FS, "float32", ["FDI"])
    w.stream_header(2, "right-EMG", "EMG", 1, FS, "double64", ["FDI"])
    w.stream_header(3, "eye tracker", "Gaze", 2, 60.0, "int16")
    stamps = 10.0 + np.arange(5) / FS
    w.samples(1, stamps, [[float(k)] for k in range(5)])
    w.samples(2, stamps, [[0.1 * k] for k in range(5)], deduce_after_first=True, code="d")
    w.samples(3, [10.0, 10.5], [[1, -2], [3, -4]], code="h")
    (tmp_path / "multi.xdf").write_bytes(bytes(w.buf))
    streams = read_xdf(tmp_path / "multi.xdf")
    np.testing.assert_allclose(streams[1].time_stamps, stamps, rtol=0, atol=1e-12)  # deduced
    np.testing.assert_array_equal(streams[1].time_series[:, 0], 0.1 * np.arange(5))
    ses_dir = import_xdf(tmp_path / "multi.xdf", tmp_path / "data", "M01", 1)
    assert sorted(p.name for p in (ses_dir / "recordings").iterdir()) == [
        "emg", "emg-2", "eye_tracker"]
    gaze, _, info = read_recording(ses_dir / "recordings" / "eye_tracker")
    np.testing.assert_array_equal(gaze, [[1, 3], [-2, -4]])
    assert info["ch_types"] == ["misc", "misc"] and info["sfreq"] == 60.0
