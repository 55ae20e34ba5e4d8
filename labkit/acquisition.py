"""Measure the MEP of a pulse from a live EMG stream.

:class:`MEPMeter` waits until the EMG stream has delivered the samples after a pulse,
cuts the epoch at the pulse's LSL timestamp and computes the features of
:mod:`labkit.mep` (artifact blanking, peak-to-peak, onset latency, background RMS) and the
pre-stimulus EMG of :mod:`labkit.background`, judged by a
:class:`~labkit.background.BackgroundCriterion` (default: at rest).
It only reads the stream's buffer; it never touches the stimulator.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from labkit.background import BackgroundCriterion, BackgroundEMG, measure_background
from labkit.errors import StreamError
from labkit.markers import PulseEvent
from labkit.mep import ARTIFACT_MAX_MS, mep_table


@dataclass(frozen=True)
class MEPTrial:
    """One pulse and the MEP it evoked.

    Attributes
    ----------
    pulse : PulseEvent
        The pulse (LSL time, intensity).
    channel : str
        EMG channel measured.
    times_ms : numpy.ndarray
        Epoch time axis, ms from the pulse.
    waveform_uv : numpy.ndarray
        The epoch of ``channel``, µV (as recorded, artifact included).
    amplitude_uv : float
        The MEP amplitude: peak-to-peak in the MEP window, µV (``ptp_uv`` is its old,
        deprecated name).
    latency_ms : float
        Onset latency (NaN when no onset was found), ms.
    background_rms_uv : float
        Pre-stimulus EMG RMS, µV.
    rejected : bool
        The background failed the meter's :class:`~labkit.background.BackgroundCriterion`
        (at rest: RMS above its limit or peak-to-peak above the MEP criterion).
    background : BackgroundEMG | None
        Pre-stimulus EMG in −100…0 ms: RMS, peak-to-peak, rectified mean.
    """

    pulse: PulseEvent
    channel: str
    times_ms: np.ndarray
    waveform_uv: np.ndarray
    amplitude_uv: float
    latency_ms: float
    background_rms_uv: float
    rejected: bool
    background: BackgroundEMG | None = None

    @property
    def intensity_percent(self) -> float:
        """Intensity of the pulse, % MSO."""
        return self.pulse.intensity_percent

    @property
    def ptp_uv(self) -> float:
        """Deprecated name of :attr:`amplitude_uv` (warns)."""
        warnings.warn("MEPTrial.ptp_uv is deprecated: use MEPTrial.amplitude_uv (the same "
                      "peak-to-peak MEP amplitude, µV)", DeprecationWarning, stacklevel=2)
        return self.amplitude_uv

    @property
    def background_ptp_uv(self) -> float:
        """Pre-stimulus peak-to-peak, µV (NaN when not measured)."""
        return self.background.ptp_uv if self.background is not None else float("nan")


class MEPMeter:
    """Cuts and measures MEPs from a connected EMG stream.

    Parameters
    ----------
    stream : mne_lsl.stream.StreamLSL
        Connected EMG stream (data in µV).
    channel : str
        Channel to measure.
    window_ms : tuple of float
        MEP window after the pulse, ms.
    rms_limit_uv : float
        Background RMS above which a trial is flagged as rejected, µV (used when no
        ``background`` criterion is given: :meth:`BackgroundCriterion.rest`).
    background : BackgroundCriterion | None
        What a trial's pre-stimulus EMG must satisfy; ``rejected`` follows its verdict.
    tmin_ms, tmax_ms : float
        Epoch limits around the pulse, ms.
    timeout_s : float
        How long to wait for the samples after a pulse before concluding that the stream
        stopped.
    """

    def __init__(
        self,
        stream,
        channel: str,
        *,
        window_ms: tuple[float, float] = (15.0, 50.0),
        rms_limit_uv: float = 10.0,
        background: BackgroundCriterion | None = None,
        tmin_ms: float = -100.0,
        tmax_ms: float = 100.0,
        timeout_s: float = 2.0,
    ) -> None:
        if channel not in stream.ch_names:
            raise StreamError(f"EMG stream {stream.name!r} has no channel {channel!r}; "
                              f"channels: {list(stream.ch_names)}")
        self.stream = stream
        self.channel = channel
        self.window_ms = tuple(window_ms)
        self.rms_limit_uv = float(rms_limit_uv)
        self.background = background or BackgroundCriterion.rest(self.rms_limit_uv)
        self.tmin_ms, self.tmax_ms = float(tmin_ms), float(tmax_ms)
        self.timeout_s = float(timeout_s)
        self._fs = float(stream.info["sfreq"])

    def _wait_for(self, from_s: float, until_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples from ``from_s`` (or earlier) to ``until_s`` (or later), once they arrived.

        The window reaches back to ``from_s`` however late this thread looks (a loaded
        host, a simulator running ahead in its own process), within the stream's buffer.
        """
        deadline = time.monotonic() + self.timeout_s + max(0.0, self.tmax_ms / 1000.0)
        span_s = (self.tmax_ms - self.tmin_ms) / 1000.0 + 0.5
        while True:
            data, stamps = self.stream.get_data(winsize=span_s + 0.5, picks=[self.channel])
            if stamps.size and stamps[-1] >= until_s:
                if stamps[0] > from_s:  # looked late: the epoch's start left this window
                    back_s = stamps[-1] - from_s + 0.5
                    data, stamps = self.stream.get_data(
                        winsize=min(back_s, self.stream.n_buffer / self._fs),
                        picks=[self.channel])
                return data[0], stamps
            if time.monotonic() > deadline:
                last = f"{stamps[-1]:.3f}" if stamps.size and stamps[-1] > 0 else "none"
                raise StreamError(
                    f"EMG stream {self.stream.name!r} delivered no samples up to "
                    f"{until_s:.3f} s within {self.timeout_s:.1f} s (last sample: {last}); "
                    "is the amplifier still streaming?"
                )
            time.sleep(0.005)

    def measure(self, pulse: PulseEvent) -> MEPTrial:
        """Wait for the epoch after ``pulse`` and measure it (centred on its discharge)."""
        # up to ARTIFACT_MAX_MS more: the epoch is re-centred on the discharge the EMG shows
        samples_uv, stamps = self._wait_for(
            pulse.time_s + (self.tmin_ms - ARTIFACT_MAX_MS) / 1000.0,
            pulse.time_s + (self.tmax_ms + ARTIFACT_MAX_MS) / 1000.0)
        valid = stamps > 0
        samples_uv, stamps = samples_uv[valid], stamps[valid]
        table = mep_table(
            samples_uv[np.newaxis, :], [pulse], self._fs, channel=0, ch_names=[self.channel],
            window_ms=self.window_ms, rms_limit_uv=self.rms_limit_uv, tmin_ms=self.tmin_ms,
            tmax_ms=self.tmax_ms, time_offset_s=float(stamps[0]),
        )
        row = table.iloc[0]
        start = int(row["sample"]) + int(round(self.tmin_ms * self._fs / 1000.0))
        n = int(round((self.tmax_ms - self.tmin_ms) * self._fs / 1000.0)) + 1
        times_ms = self.tmin_ms + np.arange(n) * 1000.0 / self._fs
        waveform_uv = samples_uv[start:start + n].copy()
        background = measure_background(times_ms, waveform_uv,
                                        (max(self.tmin_ms, -100.0), 0.0))
        return MEPTrial(
            pulse=pulse, channel=self.channel, times_ms=times_ms, waveform_uv=waveform_uv,
            amplitude_uv=float(row["amplitude_uv"]), latency_ms=float(row["latency_ms"]),
            background_rms_uv=float(row["background_rms_uv"]),
            rejected=not self.background.judge(background).accepted, background=background,
        )
