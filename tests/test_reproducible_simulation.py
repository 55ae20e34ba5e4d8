"""The simulated lab reproduces with its noise on: same seed, same pulses, same numbers.

The amplifier streams in real time, so where a pulse lands on its sample clock changes
from run to run; the noise is keyed to the discharges (labkit.sim.noise) and the
simulated unit acts when a command's bytes arrive, not when its thread runs, so what is
measured around each pulse must come out bit-identical anyway.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from labkit.profiles import load_profile
from labkit.rig import open_rig
from labkit.sim.amplifier import EMGAmplifier
from labkit.sim.events import Discharge
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.sim.noise import DischargeLockedNoise
from labkit.sim.subject import VirtualSubject
from labkit.stimulators.magstim import Magstim

FS = 5000.0


def test_noise_does_not_depend_on_how_the_stream_is_cut_into_chunks():
    a = DischargeLockedNoise(4, 7, 2, lead_samples=100)
    b = DischargeLockedNoise(4, 7, 2, lead_samples=100)
    whole = a.draw(0, 5000)
    parts = np.concatenate([b.draw(first, n) for first, n in
                            ((0, 1), (1, 999), (1000, 1024), (2024, 2976))], axis=1)
    np.testing.assert_array_equal(whole, parts)
    assert abs(whole.std() - 1.0) < 0.05


def test_the_nth_discharge_sits_in_the_same_noise_wherever_it_lands():
    lead = 500
    runs = []
    for pulses in ((3000, 9000), (3777, 10213)):  # the host put the pulses elsewhere
        noise = DischargeLockedNoise(11, 7, 1, lead_samples=lead)
        sent = 0
        around = []
        for pulse in pulses:
            noise.discharge(pulse, first_unsent=sent)
            around.append(noise.draw(pulse - lead, lead + 2000)[0])
            sent = pulse + 2000
        runs.append(around)
    for first, second in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, second)
    # and different discharges get different noise
    assert not np.array_equal(runs[0][0], runs[0][1])


def test_samples_already_sent_keep_their_noise_when_a_discharge_is_reported_late():
    noise = DischargeLockedNoise(1, 7, 1, lead_samples=500)
    before = noise.draw(0, 1000)
    noise.discharge(900, first_unsent=1000)  # reported after its lead samples were sent
    np.testing.assert_array_equal(noise.draw(0, 1000), before)
    seg = list(noise.segments(0, 1200))
    assert [(s.start, s.stop, s.key) for s in seg] == [(0, 1000, 0), (1000, 1200, 1)]


def _epochs_offline(pulses: list[int], chunk: int, *, contraction: float) -> list[np.ndarray]:
    """Stream an amplifier sample-locked without its thread; the epochs around pulses."""
    subject = VirtualSubject(seed=5, contraction_percent_mvc=contraction)
    amp = EMGAmplifier(subject, noise_uv=3.0, seed=5, latency_ms=150.0)
    amp.t0, amp._thread = 0.0, threading.current_thread()  # a started clock, no push thread
    data = np.empty((len(amp.channels), pulses[-1] + 3000))
    pending = list(pulses)
    for first in range(0, data.shape[1], chunk):
        n = min(chunk, data.shape[1] - first)
        lead_in = first + n + int(0.15 * FS)  # discharges are known a latency ahead
        while pending and pending[0] < lead_in:
            amp(Discharge(pending.pop(0) / FS, 60.0, "test"))
        data[:, first:first + n] = amp._render(first, n)
    return [data[:, p - 500:p + 1000] for p in pulses]


@pytest.mark.parametrize("contraction", [0.0, 15.0])
def test_amplifier_epochs_are_identical_when_pulses_land_on_other_samples(contraction):
    one = _epochs_offline([5000, 11000, 14000], chunk=5, contraction=contraction)
    two = _epochs_offline([5123, 11431, 14402], chunk=37, contraction=contraction)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_a_busy_emulator_thread_does_not_move_the_discharge():
    emulator = MagstimEmulator("200", pty=False, arm_delay_s=0.0, recharge_s=0.0)
    handled = emulator.handle_bytes

    def slow(data: bytes) -> None:  # the emulator's thread runs 40 ms late
        time.sleep(0.04)
        handled(data)

    emulator.handle_bytes = slow
    seen: list[Discharge] = []
    emulator.coil = seen.append
    stim = Magstim(emulator.url).connect()
    try:
        stim.set_intensity(50)
        stim.arm()
        stim.wait_ready(timeout_s=5.0)
        pulse = stim.fire()
    finally:
        stim.close()
        emulator.stop()
    assert len(seen) == 1
    # stamped when the fire command's bytes arrived: right after the marker, not 40 ms on
    assert 0.0 <= seen[0].time_s - pulse.time_s < 0.005


def test_two_runs_of_a_seeded_rig_measure_identical_meps_with_noise_on():
    profile = load_profile("simulated")
    assert profile.simulation.emg_noise_uv > 0
    runs = []
    for _ in range(2):
        rig = open_rig(profile, seed=2)
        try:
            trials = [rig.pulse(x) for x in (45, 55, 60, 70, 52)]
        finally:
            rig.close()
        runs.append([(t.amplitude_uv, t.latency_ms, t.background_rms_uv, t.waveform_uv.tobytes())
                     for t in trials])
    assert runs[0] == runs[1]
