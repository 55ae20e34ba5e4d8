"""labkit.streams: safe binding, pulse markers, epochs around pulses, low-latency inlet."""

from __future__ import annotations

import ast
import dataclasses
import time
import uuid
from pathlib import Path

import mne
import numpy as np
import pylsl
import pytest

from labkit.errors import StreamError
from labkit.markers import PulseEvent
from labkit.streams import (
    LowLatencyInlet,
    PulseMarkerInlet,
    PulseMarkerOutlet,
    connect_stream,
    epochs_around_pulses,
    local_clock,
    parse_pulse_markers,
    resolve_stream,
)


def _uid() -> str:
    return uuid.uuid4().hex


def _outlet(name: str, source_id: str, n_ch: int = 2, fs: float = 1000.0,
            stype: str = "EMG", labels=None) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stype, n_ch, fs, pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for label in labels or [f"ch{i}" for i in range(n_ch)]:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", stype)
    return pylsl.StreamOutlet(info)


def test_core_module_does_not_import_sim_or_widgets():
    tree = ast.parse(Path("labkit/streams.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.startswith(("labkit.sim", "labkit.widgets"))]


def test_resolve_refuses_duplicate_name_and_lists_both_sources():
    name = f"test-spoof-{_uid()[:10]}"
    src_a, src_b = f"real-{_uid()}", f"spoof-{_uid()}"
    a = _outlet(name, src_a)
    b = _outlet(name, src_b)
    with pytest.raises(StreamError, match="2 LSL streams are named") as err:
        resolve_stream(name, source_id=src_a, timeout_s=3.0, settle_s=0.5)
    message = str(err.value)
    assert src_a in message and src_b in message and "host=" in message
    with pytest.raises(StreamError, match="spoofing"):
        connect_stream(name, source_id=src_b, timeout_s=3.0)
    del a, b


def test_resolve_binds_by_name_and_source_id():
    name, src = f"test-bind-{_uid()[:10]}", f"src-{_uid()}"
    outlet = _outlet(name, src)
    info = resolve_stream(name, source_id=src, stype="EMG", timeout_s=3.0)
    assert (info.name(), info.source_id(), info.type()) == (name, src, "EMG")
    with pytest.raises(StreamError, match=f"expected 'other-src'.*{src}|{src}.*expected"):
        resolve_stream(name, source_id="other-src", timeout_s=3.0)
    with pytest.raises(StreamError, match="type 'EMG', expected 'EEG'"):
        resolve_stream(name, stype="EEG", timeout_s=3.0)
    del outlet


def test_resolve_reports_missing_stream_quickly():
    name = f"test-absent-{_uid()[:10]}"
    t = time.monotonic()
    with pytest.raises(StreamError, match=f"no LSL stream found with name='{name}'"):
        resolve_stream(name, timeout_s=0.3)
    assert time.monotonic() - t < 2.0


def test_connect_stream_picks_and_rejects_unknown_pick():
    name, src = f"test-picks-{_uid()[:10]}", f"src-{_uid()}"
    outlet = _outlet(name, src, n_ch=3, labels=["FDI", "APB", "ADM"])
    stream = connect_stream(name, source_id=src, picks=["APB"], bufsize_s=1.0)
    try:
        assert stream.connected and stream.ch_names == ["APB"]
    finally:
        stream.disconnect()
    with pytest.raises(StreamError, match=r"no channel\(s\) \['XYZ'\]"):
        connect_stream(name, source_id=src, picks=["XYZ"])
    del outlet


def test_pulse_markers_are_collected_with_their_times():
    name, src = f"test-markers-{_uid()[:10]}", f"src-{_uid()}"
    out = PulseMarkerOutlet(name, src)
    raw_outlet = out._outlet
    inlet = PulseMarkerInlet(name, source_id=src, timeout_s=3.0)
    time.sleep(0.3)
    t0 = local_clock()
    events = [PulseEvent(time_s=t0 + 0.01 * i, intensity_percent=50 + i, device="Magstim",
                         index=i) for i in range(3)]
    out.push(events[0])
    raw_outlet.push_sample(["not json"], t0 + 0.015)
    out.push(events[1])
    out.push(events[2])
    got = []
    deadline = time.monotonic() + 3.0
    while len(got) < 3 and time.monotonic() < deadline:
        got += inlet.pull(timeout_s=0.2)
    inlet.close()
    # same parameters and times (same host: no clock correction applied)
    assert [dataclasses.replace(e, time_s=0.0) for _, e in got] == [
        dataclasses.replace(e, time_s=0.0) for e in events]
    assert [t for t, _ in got] == pytest.approx([e.time_s for e in events], abs=1e-4)
    assert all(t == e.time_s for t, e in got)
    assert [text for _, text in inlet.other] == ["not json"]


def test_parse_pulse_markers_skips_foreign_markers():
    other: list = []
    good = PulseEvent(time_s=1.0, intensity_percent=60, device="MagPro", index=4)
    parsed = parse_pulse_markers([(good.to_json(), 1.0), ('{"event": "rating"}', 2.0),
                                  ("[1, 2]", 3.0)], other=other)
    assert parsed == [(1.0, good)]
    assert [t for t, _ in other] == [2.0, 3.0]


# -- epochs ---------------------------------------------------------------------------
def _raw_with_impulses(fs=1000.0, first_time_s=500.0, pulses_s=(0.5, 1.2, 2.0)):
    n = int(3 * fs)
    data = np.zeros((2, n))
    for p in pulses_s:
        data[0, int(round(p * fs))] = 1e-3  # 1 mV impulse at each pulse, V
        data[1, int(round((p + 0.02) * fs))] = 2e-3  # "MEP" 20 ms later
    info = mne.create_info(["FDI", "APB"], fs, "emg")
    raw = mne.io.RawArray(data, info, verbose=False)
    return raw, first_time_s + np.asarray(pulses_s)


def test_epochs_around_pulses_on_raw_shapes_and_timing():
    raw, pulses = _raw_with_impulses()
    epochs = epochs_around_pulses(raw, pulses, tmin_s=-0.1, tmax_s=0.1, first_time_s=500.0)
    assert epochs.get_data().shape == (3, 2, 201)
    zero = int(np.argmin(np.abs(epochs.times)))
    assert epochs.times[zero] == 0.0
    data = epochs.get_data(units="uV")
    np.testing.assert_allclose(data[:, 0, zero], 1000.0)
    assert np.count_nonzero(data[:, 0]) == 3
    at20 = int(np.argmin(np.abs(epochs.times - 0.02)))
    np.testing.assert_allclose(data[:, 1, at20], 2000.0)
    np.testing.assert_allclose(epochs.metadata["offset_ms"], 0.0, atol=1e-6)


def test_epochs_nearest_sample_offsets_and_skipped_pulses():
    raw, pulses = _raw_with_impulses()
    raw.first_time_s = 500.0
    jittered = pulses + np.array([0.0004, -0.0003, 0.0])
    outside = np.concatenate([jittered, [500.05, 503.5]])  # too early for tmin; after data
    epochs = epochs_around_pulses(raw, outside, picks=["FDI"])
    assert len(epochs) == 3 and epochs.ch_names == ["FDI"]
    np.testing.assert_allclose(epochs.metadata["offset_ms"], [-0.4, 0.3, 0.0], atol=1e-6)
    np.testing.assert_allclose(epochs.metadata["pulse_time_s"], jittered)


def test_epochs_errors_name_the_problem():
    raw, pulses = _raw_with_impulses()
    with pytest.raises(StreamError, match="first_time_s"):
        epochs_around_pulses(raw, pulses)
    with pytest.raises(StreamError, match="none of the 1 pulse"):
        epochs_around_pulses(raw, [10.0], first_time_s=500.0)
    with pytest.raises(ValueError, match="tmin_s"):
        epochs_around_pulses(raw, pulses, tmin_s=0.1, tmax_s=0.0, first_time_s=500.0)


def test_epochs_from_stream_buffer_use_sample_timestamps():
    name, src = f"test-epochs-{_uid()[:10]}", f"src-{_uid()}"
    fs = 1000.0
    outlet = _outlet(name, src, n_ch=1, fs=fs, labels=["FDI"])
    stream = connect_stream(name, source_id=src, bufsize_s=4.0)
    try:
        t0 = local_clock()
        data = np.zeros((2000, 1), np.float32)
        data[700, 0] = 100.0  # µV on the wire
        data[1500, 0] = 100.0
        outlet.push_chunk(data, (t0 + np.arange(2000) / fs).tolist())
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            _, ts = stream.get_data()
            if ts.size and ts[-1] >= t0 + 1.999 - 1e-6:
                break
            time.sleep(0.02)
        epochs = epochs_around_pulses(stream, [t0 + 0.7, t0 + 1.5], tmin_s=-0.05,
                                      tmax_s=0.05)
    finally:
        stream.disconnect()
    d = epochs.get_data()  # volts
    zero = int(np.argmin(np.abs(epochs.times)))
    np.testing.assert_allclose(d[:, 0, zero], 100e-6, rtol=1e-6)
    assert np.count_nonzero(d) == 2


# -- low-latency inlet -----------------------------------------------------------------
def test_low_latency_inlet_drains_everything_newest_last():
    name, src = f"test-ll-{_uid()[:10]}", f"src-{_uid()}"
    outlet = _outlet(name, src, n_ch=2, fs=5000.0)
    inlet = LowLatencyInlet(name, source_id=src, max_samples=1000, clocksync=False)
    time.sleep(0.2)
    t0 = local_clock()
    for c in range(40):  # 40 chunks of 5 samples, values = running sample number
        k = np.arange(5 * c, 5 * c + 5)
        outlet.push_chunk(np.column_stack([k, -k]).astype(np.float32),
                          (t0 + k / 5000.0).tolist())
    time.sleep(0.3)
    data, stamps = inlet.pull()
    assert data.shape == (200, 2)
    np.testing.assert_array_equal(data[:, 0], np.arange(200))
    np.testing.assert_allclose(stamps, t0 + np.arange(200) / 5000.0, atol=1e-9)
    assert inlet.pull()[0].shape == (0, 2)
    # more than capacity: the newest max_samples are kept, in order
    big = np.arange(1500, dtype=np.float32)
    outlet.push_chunk(np.column_stack([big, big]), (t0 + 1 + np.arange(1500) / 5000.0).tolist())
    time.sleep(0.3)
    data, stamps = inlet.pull()
    assert data.shape == (1000, 2) and inlet.overflow_samples == 500
    np.testing.assert_array_equal(data[:, 0], big[500:])
    np.testing.assert_allclose(stamps, t0 + 1 + np.arange(500, 1500) / 5000.0, atol=1e-9)
    inlet.close()
