"""MEPMeter on a stream it reads late: the epoch is found however far the stream ran on."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.acquisition import MEPMeter
from labkit.clock import local_clock
from labkit.markers import PulseEvent

FS = 5000.0


class RunAheadStream:
    """An EMG stream (µV) whose newest sample is always ``ahead_s`` past the pulse, as when
    the reading thread got the CPU late while the amplifier (its own process) went on."""

    ch_names = ["FDI"]
    info = {"sfreq": FS}
    n_buffer = int(10 * FS)

    def __init__(self, pulse_s: float, ahead_s: float) -> None:
        self.pulse_s, self.ahead_s = pulse_s, ahead_s

    def get_data(self, winsize, picks):
        newest = self.pulse_s + self.ahead_s
        n = int(np.ceil(min(winsize * FS, self.n_buffer)))
        ts = newest - np.arange(n)[::-1] / FS
        mep = (ts > self.pulse_s + 0.020) & (ts < self.pulse_s + 0.025)
        data = np.where(mep, 80.0, 0.0) - np.where(mep & (ts > self.pulse_s + 0.0225), 160, 0)
        return data[None, :], ts


@pytest.mark.parametrize("ahead_s", [0.3, 2.0, 8.0])
def test_an_epoch_read_late_is_still_measured(ahead_s):
    pulse_s = local_clock()
    meter = MEPMeter(RunAheadStream(pulse_s, ahead_s), "FDI", timeout_s=0.5)
    pulse = PulseEvent(time_s=pulse_s, intensity_percent=50, device="Magstim", index=1)
    trial = meter.measure(pulse)
    assert trial.amplitude_uv == pytest.approx(160.0)
