"""Getting one MEP out of an EMG stream, for display.

:class:`StreamEpochs` waits until the stream holds ``post_ms`` of EMG after a pulse, cuts
``[-pre_ms, +post_ms]`` around the pulse's LSL time and measures the peak-to-peak
amplitude in the MEP window and the pre-stimulus background (RMS, peak-to-peak, rectified
mean: :func:`labkit.background.measure_background`). The panels accept
any object with the same ``epoch(pulse_time_s) -> MEPTrial`` method, so tests and offline
replays can feed them without a stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from labkit.background import BackgroundEMG, measure_background
from labkit.clock import local_clock
from labkit.errors import StreamError
from labkit.mep import peak_to_peak_uv


@dataclass(frozen=True)
class MEPTrial:
    """One EMG sweep around a pulse.

    Attributes
    ----------
    times_ms : numpy.ndarray
        Sample times relative to the pulse, ms.
    emg_uv : numpy.ndarray
        EMG of the measured channel, µV.
    amplitude_uv : float
        Peak-to-peak amplitude inside the MEP window, µV.
    background_uv : float
        RMS of the demeaned EMG from -100 ms (or the sweep start) to -1 ms, µV. The last
        millisecond is left out: the pulse sample is rounded to the amplifier's grid, so
        the start of the TMS artifact can fall a fraction of a sample before 0.
    pulse_time_s : float
        LSL time of the pulse.
    background : BackgroundEMG | None
        The same pre-stimulus interval measured for a background criterion: RMS,
        peak-to-peak and rectified mean.
    """

    times_ms: np.ndarray
    emg_uv: np.ndarray
    amplitude_uv: float
    background_uv: float
    pulse_time_s: float
    background: BackgroundEMG | None = None


class EMGSource(Protocol):
    """Anything that returns the MEP following a pulse."""

    def epoch(self, pulse_time_s: float) -> MEPTrial:  # pragma: no cover - protocol
        ...


def measure(
    times_ms: np.ndarray, emg_uv: np.ndarray, window_ms: tuple[float, float], pulse_time_s: float
) -> MEPTrial:
    """Peak-to-peak in ``window_ms`` and the background in ``[-100, -1)`` ms.

    The amplitude comes from :func:`labkit.mep.peak_to_peak_uv`, the background from
    :func:`labkit.background.measure_background`.

    Parameters
    ----------
    times_ms, emg_uv : numpy.ndarray
        One sweep, times relative to the pulse.
    window_ms : (float, float)
        MEP window after the pulse, ms.
    pulse_time_s : float
        LSL time of the pulse (kept on the trial).

    Returns
    -------
    MEPTrial
        The sweep with its features.
    """
    times_ms = np.asarray(times_ms, float)
    emg_uv = np.asarray(emg_uv, float)
    amplitude = float(peak_to_peak_uv(emg_uv, times_ms, window_ms))
    start_ms = max(-100.0, float(times_ms[0]))
    background = measure_background(times_ms, emg_uv, (start_ms, -1.0))
    return MEPTrial(times_ms, emg_uv, amplitude, background.rms_uv, pulse_time_s, background)


class StreamEpochs:
    """Cut MEP sweeps out of a connected mne-lsl ``StreamLSL``.

    Parameters
    ----------
    stream : mne_lsl.stream.StreamLSL
        A connected EMG stream (``get_data``, ``info["sfreq"]``, ``ch_names``).
    channel : str | None
        Channel to measure (default: the first one).
    pre_ms, post_ms : float
        Sweep extent around the pulse, ms.
    window_ms : (float, float)
        MEP window for the peak-to-peak amplitude, ms after the pulse.
    scale_to_uv : float | None
        Factor from stream units to µV; ``None`` reads it from the stream's channel units
        (``get_channel_units()``: volts with a 10^k multiplier), else assumes µV.
    timeout_s : float
        How long to wait for the post-pulse data before raising
        :class:`~labkit.errors.StreamError`.
    """

    def __init__(
        self,
        stream: Any,
        *,
        channel: str | None = None,
        pre_ms: float = 100.0,
        post_ms: float = 100.0,
        window_ms: tuple[float, float] = (15.0, 50.0),
        scale_to_uv: float | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self.stream = stream
        names = list(stream.ch_names)
        self.channel = channel or names[0]
        if self.channel not in names:
            raise StreamError(
                f"EMG channel {self.channel!r} is not in the stream; available: {names}"
            )
        self.pre_ms = float(pre_ms)
        self.post_ms = float(post_ms)
        self.window_ms = (float(window_ms[0]), float(window_ms[1]))
        self.scale_to_uv = (_stream_scale_to_uv(stream, self.channel) if scale_to_uv is None
                            else float(scale_to_uv))
        self.timeout_s = float(timeout_s)
        #: Longest window asked of the stream (its ring buffer holds a few seconds).
        self.max_window_s = 4.0

    def epoch(self, pulse_time_s: float) -> MEPTrial:
        """Wait for the sweep after ``pulse_time_s`` and measure it."""
        deadline = local_clock() + self.timeout_s
        need_until = pulse_time_s + self.post_ms / 1000.0
        while True:
            span_s = max(local_clock() - pulse_time_s, 0.0) + self.pre_ms / 1000.0 + 0.25
            span_s = min(span_s, self.max_window_s)
            data, ts = self.stream.get_data(winsize=span_s, picks=[self.channel])
            if ts.size and ts[-1] >= need_until:
                break
            if local_clock() > deadline:
                raise StreamError(
                    f"EMG stream has no data up to {self.post_ms:.0f} ms after the pulse "
                    f"within {self.timeout_s:.1f} s (stream stopped or clocks differ?)"
                )
            time.sleep(0.01)
        rel_ms = (ts - pulse_time_s) * 1000.0
        keep = (rel_ms >= -self.pre_ms) & (rel_ms <= self.post_ms)
        return measure(rel_ms[keep], data[0, keep] * self.scale_to_uv, self.window_ms,
                       pulse_time_s)


def _stream_scale_to_uv(stream: Any, channel: str) -> float:
    """µV per stream unit from mne-lsl's ``get_channel_units`` (1.0 if it is not there)."""
    getter = getattr(stream, "get_channel_units", None)
    if getter is None:
        return 1.0
    try:
        units = getter(picks=[channel])
        _unit, multiplier = units[0]
        return float(10.0 ** (int(multiplier) + 6))
    except Exception:
        return 1.0


def as_emg_source(source: Any, **options: Any) -> EMGSource:
    """Wrap a ``StreamLSL`` in :class:`StreamEpochs`; pass anything with ``epoch`` through."""
    if hasattr(source, "epoch"):
        return source
    if hasattr(source, "get_data") and hasattr(source, "ch_names"):
        return StreamEpochs(source, **options)
    raise TypeError(
        "emg_source must have an epoch(pulse_time_s) method or be a connected StreamLSL; "
        f"got {type(source).__name__}"
    )
