"""Resting-state calibration of the closed loop: mu peak, signal scale, amplitude levels."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit.closedloop._input import (
    HJORTH_CENTER,
    HJORTH_NEIGHBOURS,
    as_chunk,
    channel_labels,
    montage,
    open_eeg,
)
from labkit.errors import ConfigError, StreamError
from labkit.phase import PhaseTracker, estimate_mu_peak
from labkit.streams import LowLatencyInlet

__all__ = ["Calibration", "calibrate", "calibrate_signal"]


@dataclass(frozen=True)
class Calibration:
    """Resting-state parameters for :class:`~labkit.closedloop.ClosedLoopController`.

    Attributes
    ----------
    mu_hz : float
        Individual mu peak (:func:`labkit.phase.estimate_mu_peak`), Hz.
    scale_uv : float
        SD of the spatially filtered signal, µV (the tracker's ``scale_uv``).
    amplitude_median_uv : float
        Median tracked mu amplitude over the segment, µV (a natural amplitude gate).
    amplitude_p25_uv, amplitude_p75_uv : float
        Quartiles of the tracked amplitude, µV.
    duration_s : float
        Length of the segment used, s.
    """

    mu_hz: float
    scale_uv: float
    amplitude_median_uv: float
    amplitude_p25_uv: float
    amplitude_p75_uv: float
    duration_s: float


def calibrate_signal(signal_uv: np.ndarray, fs: float) -> Calibration:
    """Calibrate from an already spatially filtered resting signal (1-D, ≥ 4 s).

    Parameters
    ----------
    signal_uv : ndarray, shape (n_times,)
        E.g. Hjorth C3, µV.
    fs : float
        Sampling rate, Hz.

    Returns
    -------
    Calibration
    """
    x = np.asarray(signal_uv, dtype=np.float64)
    mu_hz = estimate_mu_peak(x, fs)
    scale = float(np.std(x))
    if not scale > 0:
        raise ConfigError("the resting signal is constant: no EEG?", field="signal_uv")
    tracker = PhaseTracker(fs, mu_hz, scale)
    step = max(int(round(fs / 100.0)), 1)  # read the amplitude every 10 ms
    amps = []
    settle = int(fs)  # skip the first second (filter settling)
    for i in range(0, x.shape[0] - step + 1, step):
        tracker.update(x[i : i + step])
        if i >= settle:
            amps.append(tracker.amplitude)
    a = np.asarray(amps) if amps else np.array([np.nan])
    return Calibration(
        mu_hz=float(mu_hz),
        scale_uv=scale,
        amplitude_median_uv=float(np.median(a)),
        amplitude_p25_uv=float(np.percentile(a, 25)),
        amplitude_p75_uv=float(np.percentile(a, 75)),
        duration_s=x.shape[0] / fs,
    )


def calibrate(
    eeg: str | LowLatencyInlet,
    duration_s: float = 10.0,
    *,
    source_id: str | None = None,
    stype: str | None = None,
    weights=None,
    center: str = HJORTH_CENTER,
    neighbours: Sequence[str] = HJORTH_NEIGHBOURS,
    timeout_s: float = 5.0,
) -> Calibration:
    """Record ``duration_s`` of resting EEG from the stream and calibrate on it.

    Parameters
    ----------
    eeg : str | LowLatencyInlet
        Stream name (with ``source_id``) or an open inlet.
    duration_s : float
        Resting segment, s (4–300; 10–30 s recommended).
    source_id, stype : str | None
        Binding of a stream given by name.
    weights, center, neighbours
        Spatial filter (default Hjorth C3), as for the controller.
    timeout_s : float
        Resolve timeout, and the longest gap in the data tolerated, s.

    Returns
    -------
    Calibration
    """
    if not 4.0 <= duration_s <= 300.0:
        raise ConfigError(f"must be in 4–300 s, got {duration_s!r}", field="duration_s")
    inlet, owned = open_eeg(eeg, source_id, stype, timeout_s)
    try:
        w = montage(channel_labels(inlet), weights, center, neighbours)
        fs = inlet.sfreq
        need = int(round(duration_s * fs))
        parts: list[np.ndarray] = []
        have = 0
        inlet.pull()  # start from now
        last_data = time.monotonic()
        while have < need:
            data, _ = inlet.pull()
            if data.shape[0] == 0:
                if time.monotonic() - last_data > timeout_s:
                    raise StreamError(
                        f"calibrate: no EEG from {inlet.info.name()!r} for {timeout_s:g} s"
                    )
                time.sleep(0.01)
                continue
            last_data = time.monotonic()
            parts.append((w @ as_chunk(data))[0])
            have += data.shape[0]
        return calibrate_signal(np.concatenate(parts)[:need], fs)
    finally:
        if owned:
            inlet.close()
