"""Virtual subject and simulated LSL amplifiers (labkit.sim.subject, labkit.sim.amplifier)."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pylsl
import pytest

from labkit.clock import local_clock
from labkit.sim.amplifier import EEGAmplifier, EMGAmplifier, tms_artifact
from labkit.sim.events import Discharge
from labkit.sim.subject import VirtualSubject, mep_waveform
from labkit.streams import LowLatencyInlet, connect_stream, epochs_around_pulses

FS = 5000.0


def _names(kind: str) -> dict:
    tag = uuid.uuid4().hex
    return {"name": f"test-{kind}-{tag[:10]}", "source_id": f"src-{tag}"}


def _discharge(intensity: float, time_s: float | None = None) -> Discharge:
    return Discharge(time_s=local_clock() if time_s is None else time_s,
                     intensity_percent=intensity, device="test")


def _wait_until(predicate, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# -- subject (no LSL) ----------------------------------------------------------------
@pytest.mark.parametrize("fs", [2000.0, 4096.0, 5000.0])
@pytest.mark.parametrize("amp", [0.0, 12.5, 50.0, 3210.0])
def test_mep_waveform_peak_to_peak_is_exact_and_biphasic(fs, amp):
    w = mep_waveform(amp, fs)
    assert w.max() - w.min() == pytest.approx(amp, rel=1e-12, abs=1e-12)
    assert w[0] == pytest.approx(0.0, abs=1e-9) and w[-1] == pytest.approx(0.0, abs=1e-9)
    if amp:
        assert np.argmax(w) < np.argmin(w)  # positive lobe first, then negative


def test_same_seed_and_pulses_give_same_meps_other_seed_differs():
    times = np.arange(10) * 0.2 + 100.0
    intensities = [40, 45, 50, 55, 60, 65, 70, 75, 80, 85]

    def run(seed):
        subject = VirtualSubject(seed=seed)
        return [subject.respond(_discharge(x, t)) for x, t in zip(intensities, times,
                                                                  strict=True)]

    a, b, c = run(4), run(4), run(5)
    assert [r.amplitudes_uv for r in a] == [r.amplitudes_uv for r in b]
    assert [r.latencies_ms for r in a] == [r.latencies_ms for r in b]
    assert [r.amplitudes_uv for r in a] != [r.amplitudes_uv for r in c]


def test_subject_records_ground_truth_per_channel():
    subject = VirtualSubject(seed=2)
    assert 35.0 <= subject.resting_motor_threshold_percent <= 65.0
    r = subject.respond(_discharge(90.0, 12.5))
    assert subject.responses == [r]
    assert r.time_s == 12.5 and r.intensity_percent == 90.0 and r.index == 0
    assert set(r.amplitudes_uv) == {"FDI", "APB"}
    assert r.amplitude_uv == r.amplitudes_uv["FDI"] > 100.0  # far above RMT
    for lat in r.latencies_ms.values():
        assert 19.0 <= lat <= 26.0
    with pytest.raises(ValueError, match="0-100 %MSO"):
        subject.respond(_discharge(130.0))


class _PhaseStub:
    def __init__(self, phase):
        self.phase = phase

    def phase_at(self, time_s):
        return self.phase


def test_mu_phase_sets_excitability_trough_above_peak():
    trough = VirtualSubject(seed=3, eeg=_PhaseStub(math.pi), phase_modulation_percent=4.0)
    peak = VirtualSubject(seed=3, eeg=_PhaseStub(0.0), phase_modulation_percent=4.0)
    rt = trough.respond(_discharge(55.0))
    rp = peak.respond(_discharge(55.0))
    assert rt.excitability == pytest.approx(4.0) and rt.phase_rad == pytest.approx(math.pi)
    assert rp.excitability == pytest.approx(-4.0)
    # same trial noise, shifted stimulus axis: trough MEP strictly larger
    assert rt.amplitudes_uv["FDI"] > rp.amplitudes_uv["FDI"]
    explicit = VirtualSubject(seed=3).respond(_discharge(55.0), excitability=4.0)
    assert explicit.amplitudes_uv == rt.amplitudes_uv


def test_amplifier_refuses_unknown_channel():
    with pytest.raises(ValueError, match="allowed: \\['FDI', 'APB'\\]"):
        EMGAmplifier(VirtualSubject(seed=0), channels=("FDI", "ADM"))


def test_tms_artifact_is_large_and_gone_before_mep_window():
    art = tms_artifact(60.0, FS, gain_uv_per_percent=50.0, tau_ms=1.0, duration_ms=6.0)
    assert art[0] == pytest.approx(3000.0)
    assert art.size == 30 and art[-1] == 0.0


# -- EMG amplifier over LSL -----------------------------------------------------------
def test_emg_stream_metadata():
    with EMGAmplifier(VirtualSubject(seed=0), **_names("emg-meta")) as amp:
        infos = pylsl.resolve_byprop("source_id", amp.source_id, timeout=5.0)
        assert len(infos) == 1
        inlet = pylsl.StreamInlet(infos[0])
        info = inlet.info(timeout=5.0)
        assert info.name() == amp.name and info.type() == "EMG"
        assert info.nominal_srate() == 5000.0 and info.channel_count() == 2
        assert info.channel_format() == pylsl.cf_float32
        ch = info.desc().child("channels").child("channel")
        found = []
        while not ch.empty():
            found.append((ch.child_value("label"), ch.child_value("unit"),
                          ch.child_value("type")))
            ch = ch.next_sibling()
        assert found == [("FDI", "microvolts", "EMG"), ("APB", "microvolts", "EMG")]
        inlet.close_stream()


def test_sample_locked_meps_measured_from_stream_equal_ground_truth():
    """Issue 2 acceptance: p-t-p in 15-50 ms of the streamed EMG == subject's truth (1 %)."""
    subject = VirtualSubject(seed=11)
    with EMGAmplifier(subject, noise_uv=0.0, **_names("emg-lock")) as amp:
        stream = connect_stream(amp.name, source_id=amp.source_id, bufsize_s=5.0)
        try:
            times = []
            for intensity in (50, 58, 66, 74, 82, 90):
                d = _discharge(intensity)
                amp(d)
                times.append(d.time_s)
                time.sleep(0.12)
            _wait_until(lambda: stream.get_data(winsize=0.05)[1][-1] > times[-1] + 0.08)
            epochs = epochs_around_pulses(stream, times, tmin_s=-0.02, tmax_s=0.08)
        finally:
            stream.disconnect()
    assert amp.late_discharges == 0
    data = epochs.get_data(units="uV")
    assert data.shape == (6, 2, int(round(0.1 * FS)) + 1)
    assert np.all(np.abs(epochs.metadata["offset_ms"]) <= 0.1 + 1e-9)
    win = (epochs.times >= 0.015) & (epochs.times <= 0.050)
    ptp = data[:, :, win].max(axis=-1) - data[:, :, win].min(axis=-1)
    truth = np.array([[r.amplitudes_uv["FDI"], r.amplitudes_uv["APB"]]
                      for r in subject.responses])
    np.testing.assert_allclose(ptp, truth, rtol=0.01)
    np.testing.assert_allclose(ptp, truth, rtol=1e-5, atol=1e-3)  # float32 on the wire
    # artifact at the pulse sample, and MEP onset exactly at the recorded latency
    zero = int(np.argmin(np.abs(epochs.times)))
    assert np.all(data[:, 0, zero] > 2000.0)
    for k, r in enumerate(subject.responses):
        onset = zero + int(round(r.latencies_ms["FDI"] * FS / 1000.0))
        assert np.all(data[k, 0, zero + 40:onset] == 0.0)  # quiet between artifact and MEP
        assert data[k, 0, onset + 1] > 0.0


def test_timestamps_follow_the_sample_clock_and_late_discharges():
    subject = VirtualSubject(seed=1)
    # 50 ms hold-back: a discharge reported 3 ms late is placed even if this thread is
    # descheduled for tens of ms on a loaded host between reading the clock and reporting
    with EMGAmplifier(subject, noise_uv=0.0, latency_ms=50.0, **_names("emg-clock")) as amp:
        inlet = LowLatencyInlet(amp.name, source_id=amp.source_id, clocksync=False,
                                max_samples=20000)
        time.sleep(0.2)
        on_time = _discharge(80.0, local_clock() - 0.003)   # reported 3 ms late: still placed
        amp(on_time)
        with pytest.warns(RuntimeWarning, match="arrived"):
            amp(_discharge(80.0, local_clock() - 0.3))      # 300 ms late: start lost
        _wait_until(lambda: amp.samples_pushed > amp.sample_index(on_time.time_s) + 400)
        time.sleep(0.05)
        data, stamps = inlet.pull()
        inlet.close()
    assert amp.late_discharges == 1
    k = np.round((stamps - amp.t0) * FS)
    np.testing.assert_allclose(stamps, amp.t0 + k / FS, atol=1e-9)
    assert np.all(np.diff(k) == 1)
    pulse = amp.sample_index(on_time.time_s)
    row = int(np.flatnonzero(k == pulse)[0])
    assert data[row, 0] == pytest.approx(4000.0)  # artifact peak: 50 µV/% × 80 %
    r = subject.responses[0]
    seg = data[row + int(0.015 * FS):row + int(0.050 * FS) + 1, 0]
    assert seg.max() - seg.min() == pytest.approx(r.amplitudes_uv["FDI"], rel=1e-5)


def test_background_noise_is_seeded_and_has_the_requested_rms():
    amp_a = EMGAmplifier(VirtualSubject(seed=0), noise_uv=5.0, seed=9)
    amp_b = EMGAmplifier(VirtualSubject(seed=0), noise_uv=5.0, seed=9)
    a, b = amp_a._background(0, 20000), amp_b._background(0, 20000)
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(5.0, rel=0.03)


# -- EEG amplifier --------------------------------------------------------------------
class _SineSource:
    """A trivial EEG source: 10 Hz cosine on C3 with known phase, neighbours at zero."""

    channels = ("C3", "FC1", "FC5", "CP1", "CP5")
    fs = FS

    def __init__(self):
        self.n = 0

    def generate(self, n_samples):
        k = np.arange(self.n, self.n + n_samples)
        self.n += n_samples
        out = np.zeros((5, n_samples))
        out[0] = 20.0 * np.cos(self.true_phase(k))
        return out

    def true_phase(self, sample_index):
        return np.angle(np.exp(1j * 2 * np.pi * 10.0 * np.asarray(sample_index) / FS))


def test_eeg_amplifier_streams_source_with_artifact_and_true_phase():
    source = _SineSource()
    subject = VirtualSubject(seed=0, eeg=source)
    with EEGAmplifier(source, noise_uv=0.0, **_names("eeg")) as amp:
        stream = connect_stream(amp.name, source_id=amp.source_id, stype="EEG")
        try:
            assert stream.ch_names == list(_SineSource.channels)
            assert stream.info["sfreq"] == FS
            time.sleep(0.15)
            d = _discharge(60.0)
            amp(d)
            resp = subject.respond(d)  # finds the amplifier's clock by itself
            _wait_until(lambda: stream.get_data(winsize=0.05)[1][-1] > d.time_s + 0.05)
            epochs = epochs_around_pulses(stream, [d.time_s], tmin_s=-0.05, tmax_s=0.04)
        finally:
            stream.disconnect()
    pulse = amp.sample_index(d.time_s)
    assert resp.phase_rad == pytest.approx(float(source.true_phase(pulse)))
    data = epochs.get_data(units="uV")[0]
    zero = int(np.argmin(np.abs(epochs.times)))
    assert data[0, zero] == pytest.approx(20 * math.cos(source.true_phase(pulse)) + 6000.0,
                                          rel=1e-5)
    # before the pulse: the clean source, sample for sample
    pre = np.arange(pulse - zero, pulse)
    np.testing.assert_allclose(data[0, :zero], 20 * np.cos(source.true_phase(pre)), atol=1e-4)
    # 10 ms after the pulse the artifact is gone
    after = zero + int(0.011 * FS)
    np.testing.assert_allclose(data[1:, after:], 0.0, atol=1e-6)


def test_eeg_amplifier_with_mu_source_artifact_and_phase_modulated_meps():
    eeg = pytest.importorskip("labkit.sim.eeg")
    source = eeg.MuEEGSource(seed=4)
    subject = VirtualSubject(seed=4, eeg=source)  # as labkit.sim.rig wires it
    with EEGAmplifier(source, noise_uv=0.0, **_names("eeg-mu")) as amp:
        assert amp.channels == tuple(source.channel_names)
        inlet = LowLatencyInlet(amp.name, source_id=amp.source_id, clocksync=False,
                                max_samples=20000)
        time.sleep(0.1)
        d = _discharge(80.0)
        amp(d)
        resp = subject.respond(d)
        _wait_until(lambda: amp.samples_pushed > amp.sample_index(d.time_s) + 100)
        time.sleep(0.05)
        data, stamps = inlet.pull()
        inlet.close()
    pulse = amp.sample_index(d.time_s)
    assert resp.phase_rad == pytest.approx(source.true_phase(pulse))
    assert resp.excitability == pytest.approx(
        -subject.phase_modulation_percent * math.cos(resp.phase_rad))
    row = int(np.flatnonzero(np.round((stamps - amp.t0) * FS) == pulse)[0])
    c3 = data[:, 0]
    before = np.abs(c3[row - 200:row]).max()
    assert abs(c3[row]) > 20 * before  # the artifact towers over the EEG at the pulse
    assert before < 500.0


def test_discharges_before_start_are_counted_and_keep_the_trial_sequence():
    subject = VirtualSubject(seed=6)
    amp = EMGAmplifier(subject)
    amp(_discharge(70.0, 1.0))
    assert amp.dropped_discharges == 1 and len(subject.responses) == 1
    ref = VirtualSubject(seed=6).respond(_discharge(70.0, 1.0))
    assert subject.responses[0].amplitudes_uv == ref.amplitudes_uv


def test_pause_leaves_a_gap_and_restart_resumes_same_stream():
    """Fault hooks for issue 7: a stalled amplifier, and an amplifier that comes back."""
    subject = VirtualSubject(seed=0)
    amp = EMGAmplifier(subject, noise_uv=1.0, **_names("emg-fault"))
    amp.start()
    try:
        inlet = LowLatencyInlet(amp.name, source_id=amp.source_id, clocksync=False,
                                max_samples=20000)
        time.sleep(0.15)
        amp.pause()
        assert amp.paused
        time.sleep(0.2)
        amp.resume()
        time.sleep(0.15)
        _, stamps = inlet.pull()
        gaps = np.diff(stamps)
        assert gaps.max() > 0.15 and amp.samples_dropped >= 0.15 * FS
        assert np.sum(gaps > 1.5 / FS) == 1  # one gap, otherwise contiguous
        amp.stop()
        assert not amp.running
        time.sleep(0.05)
        inlet.pull()  # what was sent before the stop
        amp.start()  # same name and source_id: the inlet recovers by itself
        got: list = []
        _wait_until(lambda: got.append(inlet.pull()[1].copy()) or got[-1].size > 0,
                    timeout_s=8.0)
        assert got[-1][0] >= amp.t0 - 1e-9  # new sample clock, new data
        inlet.close()
    finally:
        amp.stop()


def test_paired_pulses_sici_icf_and_timing():
    from labkit.sim.subject import PairedPulseParams, paired_pulse_factor

    p = PairedPulseParams(sici_ratio=0.4, icf_ratio=1.5, lici_ratio=0.3)
    assert paired_pulse_factor(2.5, 0.8, p) == pytest.approx(0.4)
    assert paired_pulse_factor(2.5, 0.4, p) == 1.0  # conditioning too weak
    assert paired_pulse_factor(13.5, 0.9, p) == pytest.approx(1.5)
    assert paired_pulse_factor(50.0, 0.9, p) == 1.0  # LICI needs a suprathreshold pulse
    assert paired_pulse_factor(110.0, 1.2, p) == pytest.approx(0.3)
    assert paired_pulse_factor(30.0, 1.2, p) == 1.0
    subject = VirtualSubject(seed=8)
    rmt = subject.resting_motor_threshold_percent
    test_x = round(1.2 * rmt)
    sici = Discharge(time_s=5.0, intensity_percent=round(0.8 * rmt), device="bistim",
                     intensity_b_percent=test_x, ipi_ms=2.5)
    r = subject.respond(sici)
    assert r.intensity_percent == test_x
    assert r.paired_factor == pytest.approx(subject.paired.sici_ratio)
    assert 2.5 + 19.0 <= r.latencies_ms["FDI"] <= 2.5 + 26.0
    # same trial noise as an unconditioned test pulse: the evoked part is scaled
    ref = VirtualSubject(seed=8).respond(_discharge(test_x, 5.0))
    assert r.amplitudes_uv["FDI"] < ref.amplitudes_uv["FDI"]
    together = subject.respond(Discharge(time_s=6.0, intensity_percent=40.0, device="bistim",
                                         intensity_b_percent=70.0, ipi_ms=0.0))
    assert together.intensity_percent == 70.0 and together.paired_factor == 1.0
    b_idle = subject.respond(Discharge(time_s=7.0, intensity_percent=65.0, device="bistim",
                                       intensity_b_percent=0.0, ipi_ms=10.0))
    assert b_idle.intensity_percent == 65.0 and b_idle.latencies_ms["FDI"] < 26.0
