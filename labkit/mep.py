"""Motor-evoked potentials: epochs and per-trial features from EMG and pulse markers.

Input is EMG as an :class:`mne.io.Raw` (volts, MNE's convention) or as an array in µV
with its sampling rate, plus the pulses: times in seconds on the data's time base,
:class:`~labkit.markers.PulseEvent` objects (their ``time_s`` on the LSL clock, minus
``time_offset_s`` = LSL time of the first EMG sample), or marker strings parsed with
:func:`parse_pulse_markers`.

Per trial (one row per pulse, :func:`mep_table`; the same table is the ``metadata`` of
:func:`mep_epochs`):

Every epoch is centred on its **discharge**: the stimulus artifact's onset where the EMG
shows one (``discharge_ms`` after the pulse marker), else the marker itself; windows,
baseline and latency all count from it, and the ``sample`` column is that time 0.

``amplitude_uv``
    The MEP amplitude: peak-to-peak (max - min) within ``window_ms`` (default 15-50 ms),
    µV (the same name as :attr:`labkit.acquisition.MEPTrial.amplitude_uv`).
``latency_ms``
    Onset latency by a sustained baseline-threshold rule on the raw (unfiltered, single
    trial) rectified, baseline-demeaned EMG: the first sample after the blanked artifact
    (and up to the end of ``window_ms``) from which the rectified EMG stays above
    ``mean + k * SD`` of the rectified pre-stimulus baseline (−100…0 ms) for at least
    ``onset_min_duration_ms``. Defaults ``k = 3``, 1 ms. This is the "mean + k·SD"
    family compared by Hodges & Bui (1996, Electroencephalogr Clin Neurophysiol
    101:511-519), without the low-pass filtering and moving-window averaging of the
    variants they recommend. Counted from the discharge: the artifact's onset where the
    EMG shows one (``discharge_ms``), else the pulse marker. NaN when no onset is found.
    ``onset_method="cusum"`` uses a one-sided CUSUM instead (Page 1954; as applied to
    EMG onsets by Staude et al. 2001, J Biomech 34:1425): see
    :func:`onset_latency_cusum_ms`.
``discharge_ms``
    Where the stimulus artifact starts after the pulse marker, ms (the fire command's
    transmission and the unit's reaction; NaN when the EMG shows no artifact).
``background_rms_uv``, ``rejected``
    RMS of the demeaned EMG over ``baseline_ms`` (default −100…0 ms), µV, and whether it
    exceeds ``rms_limit_uv`` (default 10 µV; 10-20 µV is typical at rest). The full
    criteria (peak-to-peak at rest, contraction band for an active threshold) are in
    :mod:`labkit.background`.
``intensity_percent``
    Pulse intensity, % MSO (NaN when unknown).

The stimulus artifact is blanked before any feature is computed. The blanked interval
starts at ``blank_ms[0]`` and ends, per trial, at the **measured** end of the artifact
(:func:`artifact_span_ms`: the first 0.5 ms after the artifact's spike in which the
rectified EMG is back within the baseline's ``mean + k * SD``), but never before
``blank_ms[1]`` (default 5 ms) nor after ``artifact_max_ms`` (default 10 ms; TMS
artifacts on EMG last ~2-10 ms). The onset search starts where the blanking ended.
Samples in the interval are replaced by the straight line between the last sample before
and the first sample after it.

Everything is in µV and ms, except :func:`mep_epochs`, which returns MNE epochs in volts
as MNE expects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mne
import numpy as np
import pandas as pd

from labkit.errors import LabkitError
from labkit.markers import PulseEvent

#: Latest end of a TMS artifact in the EMG (and latest discharge after its marker), ms.
ARTIFACT_MAX_MS = 10.0

__all__ = [
    "MEPInputError",
    "background_rms_uv",
    "artifact_span_ms",
    "blank_artifact",
    "mep_epochs",
    "mep_table",
    "onset_latency_cusum_ms",
    "onset_latency_ms",
    "parse_pulse_markers",
    "peak_to_peak_uv",
]

Pulses = Sequence[float] | Sequence[PulseEvent]


class MEPInputError(LabkitError, ValueError):
    """EMG, pulses or windows given to the MEP analysis are invalid."""


# -- pure array functions ----------------------------------------------------------------
def _mask(times_ms: np.ndarray, window_ms: tuple[float, float], name: str) -> np.ndarray:
    lo, hi = window_ms
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise MEPInputError(
            f"{name} must be (start, stop) in ms with start < stop, got {window_ms}"
        )
    if lo < times_ms[0] - 1e-9 or hi > times_ms[-1] + 1e-9:
        raise MEPInputError(
            f"{name}={window_ms} ms must lie within the epoch "
            f"[{times_ms[0]:.1f}, {times_ms[-1]:.1f}] ms"
        )
    m = (times_ms >= lo - 1e-9) & (times_ms <= hi + 1e-9)
    if not m.any():
        raise MEPInputError(f"{name}={window_ms} ms contains no sample")
    return m


def blank_artifact(
    epochs_uv: np.ndarray, times_ms: np.ndarray, blank_ms: tuple[float, float] = (0.0, 5.0)
) -> np.ndarray:
    """Replace the stimulus artifact by a straight line (returns a new array).

    Parameters
    ----------
    epochs_uv : ndarray, shape (..., n_times)
        Epoched EMG, µV.
    times_ms : ndarray, shape (n_times,)
        Time of each sample relative to the pulse, ms.
    blank_ms : (float, float)
        Interval to blank, ms; samples with ``start <= t < stop`` are replaced.

    Returns
    -------
    ndarray
        Copy with the interval linearly interpolated from its two neighbours.
    """
    out = np.array(epochs_uv, dtype=float, copy=True)
    lo, hi = blank_ms
    if hi <= lo:
        return out
    idx = np.flatnonzero((times_ms >= lo - 1e-9) & (times_ms < hi - 1e-9))
    if idx.size == 0:
        return out
    a, b = idx[0] - 1, idx[-1] + 1
    if a < 0 or b >= times_ms.size:
        raise MEPInputError(f"blank_ms={blank_ms} ms must lie strictly inside the epoch")
    frac = (idx - a) / (b - a)
    out[..., idx] = out[..., a, None] + (out[..., b, None] - out[..., a, None]) * frac
    return out


def artifact_span_ms(
    epochs_uv: np.ndarray,
    times_ms: np.ndarray,
    baseline_ms: tuple[float, float] = (-100.0, 0.0),
    *,
    start_ms: float = 0.0,
    max_ms: float = 10.0,
    k: float = 3.0,
    quiet_ms: float = 0.5,
    spike_k: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Measured onset and end of the stimulus artifact per epoch, ms.

    The EMG is demeaned by its baseline mean and rectified. The artifact's onset (the
    discharge as the EMG saw it) is the first sample in ``[start_ms, max_ms]`` above
    ``mean + spike_k * SD`` of the rectified baseline; it may come a few ms after the
    pulse marker (serial transmission of the fire command, a busy host). The artifact ends
    at the first sample after its largest value from which the rectified EMG stays at or
    below ``mean + k * SD`` for ``quiet_ms``. An epoch with nothing above the spike
    threshold (background EMG never reaches it) has no artifact: onset NaN, end
    ``start_ms``.

    Parameters
    ----------
    epochs_uv : ndarray, shape (n_epochs, n_times) or (n_times,)
        Epoched EMG, µV, not blanked.
    times_ms : ndarray, shape (n_times,)
        Sample times relative to the pulse marker, ms.
    baseline_ms : (float, float)
        Pre-stimulus interval for the thresholds, ms.
    start_ms : float
        Earliest possible artifact sample (the pulse marker), ms.
    max_ms : float
        Upper bound: an artifact still present here is reported as ending at ``max_ms``.
    k : float
        End threshold in baseline SDs above the baseline mean.
    quiet_ms : float
        How long the EMG must stay below the end threshold, ms (at least one sample).
    spike_k : float
        Onset threshold: the artifact's spike exceeds the baseline mean by this many SDs.

    Returns
    -------
    onset_ms, end_ms : ndarray, shape (n_epochs,) or ()
        Artifact onset (NaN when none) and end, ms, within ``[start_ms, max_ms]``.
    """
    x = np.atleast_2d(np.asarray(epochs_uv, dtype=float))
    base = _mask(times_ms, baseline_ms, "baseline_ms") & (times_ms < 0)
    idx = np.flatnonzero(_mask(times_ms, (start_ms, max_ms), "artifact interval"))
    fs_khz = 1.0 / np.median(np.diff(times_ms))
    n_quiet = max(1, int(round(quiet_ms * fs_khz)))
    onset = np.full(x.shape[0], np.nan)
    end = np.full(x.shape[0], float(max_ms))
    for i, row in enumerate(x):
        rect = np.abs(row - row[base].mean())
        rb = rect[base]
        segment = rect[idx[0]: idx[-1] + n_quiet]
        spikes = np.flatnonzero(segment[: idx.size] > rb.mean() + spike_k * rb.std())
        if spikes.size == 0:
            end[i] = times_ms[idx[0]]  # no artifact above the background
            continue
        onset[i] = times_ms[idx[spikes[0]]]
        peak = int(np.argmax(segment[: idx.size]))
        quiet = segment[peak:] <= rb.mean() + k * rb.std()
        csum = np.concatenate(([0], np.cumsum(quiet)))
        runs = np.flatnonzero((csum[n_quiet:] - csum[:-n_quiet]) == n_quiet) + peak
        runs = runs[runs < idx.size]
        if runs.size:
            end[i] = times_ms[idx[runs[0]]]
    if np.ndim(epochs_uv) > 1:
        return onset, end
    return onset[0], end[0]


def peak_to_peak_uv(
    epochs_uv: np.ndarray, times_ms: np.ndarray, window_ms: tuple[float, float] = (15.0, 50.0)
) -> np.ndarray:
    """Peak-to-peak amplitude (max - min) within a window after the pulse, µV."""
    seg = np.asarray(epochs_uv)[..., _mask(times_ms, window_ms, "window_ms")]
    return seg.max(axis=-1) - seg.min(axis=-1)


def background_rms_uv(
    epochs_uv: np.ndarray, times_ms: np.ndarray, baseline_ms: tuple[float, float] = (-100.0, 0.0)
) -> np.ndarray:
    """RMS of the demeaned pre-stimulus EMG, µV (a DC offset does not count)."""
    seg = np.asarray(epochs_uv)[..., _mask(times_ms, baseline_ms, "baseline_ms") & (times_ms < 0)]
    seg = seg - seg.mean(axis=-1, keepdims=True)
    return np.sqrt(np.mean(seg * seg, axis=-1))


def onset_latency_ms(
    epochs_uv: np.ndarray,
    times_ms: np.ndarray,
    search_ms: tuple[float, float] = (5.0, 50.0),
    baseline_ms: tuple[float, float] = (-100.0, 0.0),
    k: float = 3.0,
    min_duration_ms: float = 1.0,
) -> np.ndarray:
    """Onset latency by a sustained ``mean + k * SD`` baseline-threshold rule, ms.

    The EMG is demeaned by its baseline mean and rectified, with no filtering or
    averaging; the threshold is ``mean + k * SD`` of the rectified baseline (the family of
    rules compared by Hodges & Bui 1996, without their low-pass filter). The onset is the
    first sample in ``search_ms`` from which the rectified EMG stays above the threshold
    for at least ``min_duration_ms`` (at least one sample).

    Parameters
    ----------
    epochs_uv : ndarray, shape (n_epochs, n_times) or (n_times,)
        Epoched EMG (artifact already blanked), µV.
    times_ms : ndarray, shape (n_times,)
        Sample times relative to the pulse, ms.
    search_ms, baseline_ms : (float, float)
        Search interval and baseline interval, ms.
    k : float
        Number of baseline SDs above the baseline mean.
    min_duration_ms : float
        Minimum time above threshold, ms.

    Returns
    -------
    ndarray, shape (n_epochs,) or ()
        Latency per epoch, ms; NaN where no onset is found.
    """
    x = np.atleast_2d(np.asarray(epochs_uv, dtype=float))
    base = _mask(times_ms, baseline_ms, "baseline_ms") & (times_ms < 0)
    search = np.flatnonzero(_mask(times_ms, search_ms, "search_ms"))
    fs_khz = 1.0 / np.median(np.diff(times_ms))
    n_min = max(1, int(round(min_duration_ms * fs_khz)))
    out = np.full(x.shape[0], np.nan)
    for i, row in enumerate(x):
        rect = np.abs(row - row[base].mean())
        b = rect[base]
        thr = b.mean() + k * b.std()
        above = rect[search] > thr
        if n_min > 1:
            # run[j] = True when samples j .. j+n_min-1 are all above.
            csum = np.concatenate(([0], np.cumsum(above)))
            run = np.zeros_like(above)
            run[: above.size - n_min + 1] = (csum[n_min:] - csum[:-n_min]) == n_min
        else:
            run = above
        hit = np.flatnonzero(run)
        if hit.size:
            out[i] = times_ms[search[hit[0]]]
    return out if np.ndim(epochs_uv) > 1 else out[0]


def onset_latency_cusum_ms(
    epochs_uv: np.ndarray,
    times_ms: np.ndarray,
    search_ms: tuple[float, float] = (5.0, 50.0),
    baseline_ms: tuple[float, float] = (-100.0, 0.0),
    drift_sd: float = 1.0,
    h_sd: float = 10.0,
) -> np.ndarray:
    """Onset latency by a one-sided CUSUM on the rectified EMG, ms.

    With ``r`` the rectified, baseline-demeaned EMG and ``m``, ``s`` the mean and SD of
    ``r`` over the baseline, the statistic ``g[i] = max(0, g[i-1] + r[i] - m - drift_sd·s)``
    runs over ``search_ms``; the alarm is the first ``g > h_sd·s`` and the onset is the
    last sample before the alarm at which ``g`` was still 0 (the change point), plus one.

    Returns
    -------
    ndarray
        Latency per epoch, ms; NaN where no alarm is raised.
    """
    x = np.atleast_2d(np.asarray(epochs_uv, dtype=float))
    base = _mask(times_ms, baseline_ms, "baseline_ms") & (times_ms < 0)
    search = np.flatnonzero(_mask(times_ms, search_ms, "search_ms"))
    out = np.full(x.shape[0], np.nan)
    for i, row in enumerate(x):
        rect = np.abs(row - row[base].mean())
        m, s = rect[base].mean(), max(rect[base].std(), 1e-12)
        g, last_zero = 0.0, search[0] - 1
        for j in search:
            g = max(0.0, g + rect[j] - m - drift_sd * s)
            if g == 0.0:
                last_zero = j
            elif g > h_sd * s:
                out[i] = times_ms[last_zero + 1]
                break
    return out if np.ndim(epochs_uv) > 1 else out[0]


# -- pulses ------------------------------------------------------------------------------
def parse_pulse_markers(
    markers: Iterable[str], timestamps_s: Iterable[float]
) -> list[PulseEvent]:
    """Turn LSL marker strings (see :mod:`labkit.markers`) into pulse events.

    Non-pulse markers (``"event"`` other than ``"pulse"``) are skipped.

    Parameters
    ----------
    markers : iterable of str
        JSON marker strings.
    timestamps_s : iterable of float
        Their LSL timestamps, seconds.
    """
    import json

    out = []
    for k, (text, ts) in enumerate(zip(markers, timestamps_s, strict=True)):
        try:
            payload = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise MEPInputError(f"marker {k} is not JSON: {text!r} ({exc})") from None
        if not isinstance(payload, dict) or payload.get("event") != "pulse":
            continue
        try:
            out.append(PulseEvent.from_json(text, float(ts)))
        except TypeError as exc:
            raise MEPInputError(f"marker {k} is not a pulse marker: {text!r} ({exc})") from None
    return out


# -- EMG + pulses -> epochs and table --------------------------------------------------------
@dataclass(frozen=True)
class _Prepared:
    epochs_uv: np.ndarray        # (n_pulses, n_channels, n_times), blanked
    times_ms: np.ndarray
    fs: float
    ch_names: list[str]
    channel: int
    onsets: np.ndarray           # sample of time 0: the discharge where seen, else the marker
    times_s: np.ndarray          # pulse times on the data time base
    intensities: np.ndarray
    blank_end_ms: np.ndarray     # where each trial's blanking ended
    discharge_ms: np.ndarray     # artifact onset after the marker (NaN: none seen)


def _emg_array(emg, fs, ch_names):
    if isinstance(emg, mne.io.BaseRaw):
        if fs is not None and not math.isclose(float(fs), emg.info["sfreq"]):
            raise MEPInputError(f"fs={fs} Hz contradicts the Raw's sfreq={emg.info['sfreq']} Hz")
        return emg.get_data() * 1e6, float(emg.info["sfreq"]), list(emg.ch_names)
    data = np.asarray(emg, dtype=float)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise MEPInputError(f"emg array must be 1-D or (n_channels, n_times), got {data.shape}")
    if fs is None or not (np.isfinite(fs) and fs > 0):
        raise MEPInputError(f"fs (Hz, > 0) is required with an array, got {fs!r}")
    names = list(ch_names) if ch_names is not None else [f"EMG{i:02d}" for i in range(len(data))]
    if len(names) != data.shape[0]:
        raise MEPInputError(f"ch_names has {len(names)} names for {data.shape[0]} channels")
    return data, float(fs), names


def _blank_measured(ep, times_ms, blank_ms, baseline_ms, artifact_max_ms):
    """Blank each trial from ``blank_ms[0]`` to its measured artifact end.

    Returns the blanked epochs, the blank end per trial and the artifact onset per trial
    (NaN where none was found, or when the artifact is not measured).
    """
    lo, hi = blank_ms
    n = ep.shape[0]
    if artifact_max_ms is None or hi <= lo:
        return (blank_artifact(ep, times_ms, blank_ms), np.full(n, float(max(hi, lo))),
                np.full(n, np.nan))
    if not (np.isfinite(artifact_max_ms) and artifact_max_ms >= hi):
        raise MEPInputError(
            f"artifact_max_ms={artifact_max_ms!r} ms must be >= blank_ms[1]={hi} ms"
        )
    spans = [artifact_span_ms(ep[:, c, :], times_ms, baseline_ms, start_ms=lo,
                              max_ms=artifact_max_ms) for c in range(ep.shape[1])]
    onsets = np.stack([on for on, _ in spans])
    onsets = np.where(np.isnan(onsets).all(axis=0), np.nan,
                      np.nanmin(np.where(np.isnan(onsets), np.inf, onsets), axis=0))
    ends = np.maximum(np.stack([e for _, e in spans]).max(axis=0), hi)
    out = np.empty_like(ep)
    for i, end in enumerate(ends):
        out[i] = blank_artifact(ep[i], times_ms, (lo, float(end)))
    return out, ends, onsets


def _prepare(
    emg, pulses, fs, *, channel, ch_names, tmin_ms, tmax_ms, blank_ms, time_offset_s,
    intensities_percent, baseline_ms=(-100.0, 0.0), artifact_max_ms=ARTIFACT_MAX_MS,
) -> _Prepared:
    data, fs, names = _emg_array(emg, fs, ch_names)
    if isinstance(channel, str):
        if channel not in names:
            raise MEPInputError(f"channel {channel!r} not found; channels are {names}")
        ch = names.index(channel)
    elif channel is None:
        ch = 0
        if isinstance(emg, mne.io.BaseRaw):
            emg_idx = mne.pick_types(emg.info, emg=True)
            ch = int(emg_idx[0]) if len(emg_idx) else 0
    else:
        ch = int(channel)
        if not 0 <= ch < len(names):
            raise MEPInputError(f"channel index must be in [0, {len(names) - 1}], got {channel}")
    pulses = list(pulses)
    if not pulses:
        raise MEPInputError("pulses is empty: need at least one pulse time or PulseEvent")
    if all(isinstance(p, PulseEvent) for p in pulses):
        t_s = np.array([p.time_s for p in pulses], dtype=float) - time_offset_s
        inten = np.array([p.intensity_percent for p in pulses], dtype=float)
    else:
        try:
            t_s = np.asarray(pulses, dtype=float) - time_offset_s
        except (TypeError, ValueError):
            raise MEPInputError(
                "pulses must be all floats (seconds) or all PulseEvent; for marker strings "
                "use parse_pulse_markers()"
            ) from None
        inten = np.full(t_s.size, np.nan)
    if intensities_percent is not None:
        inten = np.asarray(intensities_percent, dtype=float)
        if inten.shape != t_s.shape:
            raise MEPInputError(
                f"intensities_percent has {inten.size} values for {t_s.size} pulses"
            )
    if not np.all(np.isfinite(t_s)):
        raise MEPInputError("pulse times must be finite seconds")
    if tmin_ms > -1 or tmax_ms <= 0:
        raise MEPInputError(f"epoch must span the pulse: tmin_ms < 0 < tmax_ms, got "
                            f"{tmin_ms}, {tmax_ms}")
    n0 = int(math.floor(tmin_ms * fs / 1000 + 1e-9))
    n1 = int(math.ceil(tmax_ms * fs / 1000 - 1e-9))
    onsets = np.round(t_s * fs).astype(int)
    n_times = data.shape[1]
    outside = np.flatnonzero((onsets + n0 < 0) | (onsets + n1 >= n_times))
    if outside.size:
        first = outside[0]
        raise MEPInputError(
            f"{outside.size} pulse(s) outside the data, first pulse {first} at "
            f"{t_s[first]:.4f} s; pulses must lie in [{-tmin_ms / 1000:.3f}, "
            f"{(n_times - 1) / fs - tmax_ms / 1000:.3f}] s of the data time base "
            f"(check time_offset_s={time_offset_s})"
        )
    rel = np.arange(n0, n1 + 1)
    ep = data[:, onsets[:, None] + rel[None, :]].transpose(1, 0, 2)  # (n, ch, t)
    bad = np.flatnonzero(~np.isfinite(ep).all(axis=(1, 2)))
    if bad.size:
        raise MEPInputError(
            f"EMG contains NaN/inf around {bad.size} pulse(s) (first: pulse {bad[0]} at "
            f"{t_s[bad[0]]:.4f} s); repair or drop those pulses"
        )
    times_ms = rel * 1000.0 / fs
    ep, ends, discharge = _blank_measured(ep, times_ms, blank_ms, baseline_ms, artifact_max_ms)
    # re-cut each epoch around its discharge (the artifact's onset) where one was seen, so
    # that windows, baseline and latency all count from the pulse the muscle received
    shift = np.where(np.isnan(discharge), 0.0, np.round(discharge * fs / 1000.0)).astype(int)
    shift[onsets + shift + n1 >= n_times] = 0
    if shift.any():
        onsets = onsets + shift
        ep = data[:, onsets[:, None] + rel[None, :]].transpose(1, 0, 2)
        ep, ends, _ = _blank_measured(ep, times_ms, blank_ms, baseline_ms, artifact_max_ms)
    return _Prepared(ep, times_ms, fs, names, ch, onsets, t_s, inten, ends, discharge)


_DOC_PARAMS = """
    Parameters
    ----------
    emg : mne.io.Raw | array_like
        EMG. A Raw is in volts (MNE's convention); an array, shape (n_times,) or
        (n_channels, n_times), is in µV and needs ``fs``.
    pulses : sequence of float | sequence of PulseEvent
        Pulse times in seconds on the data's time base (0 = first sample), or pulse
        events whose ``time_s`` minus ``time_offset_s`` is on that time base.
    fs : float | None
        Sampling rate, Hz (arrays only).
    channel : str | int | None
        Channel whose features are computed (default: the first EMG channel).
    ch_names : list of str | None
        Channel names of an array.
    window_ms : (float, float)
        Peak-to-peak window after the pulse, ms (default 15-50).
    blank_ms : (float, float)
        Artifact blanking: start and shortest end, ms (default 0-5); the end follows the
        measured artifact (:func:`artifact_span_ms`) up to ``artifact_max_ms``.
    artifact_max_ms : float | None
        Longest blanking, ms (default 10); ``None`` blanks exactly ``blank_ms``.
    baseline_ms : (float, float)
        Pre-stimulus interval for background RMS and the onset threshold (−100…0).
    rms_limit_uv : float
        Trials whose background RMS exceeds this are flagged ``rejected``, µV.
    onset_k : float
        Onset threshold in baseline SDs.
    onset_min_duration_ms : float
        Time the rectified EMG must stay above threshold, ms.
    onset_method : {"threshold", "cusum"}
        Onset rule: sustained ``mean + k * SD`` threshold (default) or CUSUM.
    tmin_ms, tmax_ms : float
        Epoch limits around each pulse, ms (default −100, 100).
    time_offset_s : float
        Subtracted from ``PulseEvent.time_s`` / pulse times (LSL time of sample 0).
    intensities_percent : array_like | None
        Pulse intensities, % MSO (default: from the pulse events, else NaN).
"""


def _table(prep: _Prepared, window_ms, blank_ms, baseline_ms, rms_limit_uv, onset_k,
           onset_min_duration_ms, onset_method="threshold") -> pd.DataFrame:
    if not (np.isfinite(rms_limit_uv) and rms_limit_uv > 0):
        raise MEPInputError(f"rms_limit_uv must be > 0 µV, got {rms_limit_uv!r}")
    x = prep.epochs_uv[:, prep.channel, :]
    ptp = peak_to_peak_uv(x, prep.times_ms, window_ms)
    rms = background_rms_uv(x, prep.times_ms, baseline_ms)
    if onset_method not in ("threshold", "cusum"):
        raise MEPInputError(
            f"onset_method must be one of ['cusum', 'threshold'], got {onset_method!r}"
        )
    lat = np.full(x.shape[0], np.nan)
    for end in np.unique(prep.blank_end_ms):  # search from where each trial's blank ended
        rows = prep.blank_end_ms == end
        search = (max(float(end), 0.0), window_ms[1])
        if onset_method == "threshold":
            lat[rows] = onset_latency_ms(x[rows], prep.times_ms, search, baseline_ms, onset_k,
                                         onset_min_duration_ms)
        else:
            lat[rows] = onset_latency_cusum_ms(x[rows], prep.times_ms, search, baseline_ms)
    return pd.DataFrame({
        "trial": np.arange(len(ptp)),
        "time_s": prep.times_s,
        "sample": prep.onsets,
        "intensity_percent": prep.intensities,
        "amplitude_uv": ptp,
        "latency_ms": lat,
        "discharge_ms": prep.discharge_ms,
        "background_rms_uv": rms,
        "rejected": rms > rms_limit_uv,
        "channel": prep.ch_names[prep.channel],
    })


def mep_table(
    emg,
    pulses: Pulses,
    fs: float | None = None,
    *,
    channel: str | int | None = None,
    ch_names: list[str] | None = None,
    window_ms: tuple[float, float] = (15.0, 50.0),
    blank_ms: tuple[float, float] = (0.0, 5.0),
    artifact_max_ms: float | None = ARTIFACT_MAX_MS,
    baseline_ms: tuple[float, float] = (-100.0, 0.0),
    rms_limit_uv: float = 10.0,
    onset_k: float = 3.0,
    onset_min_duration_ms: float = 1.0,
    onset_method: str = "threshold",
    tmin_ms: float = -100.0,
    tmax_ms: float = 100.0,
    time_offset_s: float = 0.0,
    intensities_percent: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Per-trial MEP features: one row per pulse.

    Columns: ``trial``, ``time_s``, ``sample``, ``intensity_percent``, ``amplitude_uv``,
    ``latency_ms``, ``discharge_ms``, ``background_rms_uv``, ``rejected``, ``channel``
    (see the module docstring for the rules).
    """
    prep = _prepare(emg, pulses, fs, channel=channel, ch_names=ch_names, tmin_ms=tmin_ms,
                    tmax_ms=tmax_ms, blank_ms=blank_ms, time_offset_s=time_offset_s,
                    intensities_percent=intensities_percent, baseline_ms=baseline_ms,
                    artifact_max_ms=artifact_max_ms)
    return _table(prep, window_ms, blank_ms, baseline_ms, rms_limit_uv, onset_k,
                  onset_min_duration_ms, onset_method)


def mep_epochs(
    emg,
    pulses: Pulses,
    fs: float | None = None,
    *,
    channel: str | int | None = None,
    ch_names: list[str] | None = None,
    window_ms: tuple[float, float] = (15.0, 50.0),
    blank_ms: tuple[float, float] = (0.0, 5.0),
    artifact_max_ms: float | None = ARTIFACT_MAX_MS,
    baseline_ms: tuple[float, float] = (-100.0, 0.0),
    rms_limit_uv: float = 10.0,
    onset_k: float = 3.0,
    onset_min_duration_ms: float = 1.0,
    onset_method: str = "threshold",
    tmin_ms: float = -100.0,
    tmax_ms: float = 100.0,
    time_offset_s: float = 0.0,
    intensities_percent: Sequence[float] | None = None,
) -> mne.EpochsArray:
    """MNE epochs around each pulse (artifact blanked, volts) with the features as metadata.

    ``epochs.metadata`` is the table of :func:`mep_table`; the event id is ``"pulse"``.
    """
    prep = _prepare(emg, pulses, fs, channel=channel, ch_names=ch_names, tmin_ms=tmin_ms,
                    tmax_ms=tmax_ms, blank_ms=blank_ms, time_offset_s=time_offset_s,
                    intensities_percent=intensities_percent, baseline_ms=baseline_ms,
                    artifact_max_ms=artifact_max_ms)
    table = _table(prep, window_ms, blank_ms, baseline_ms, rms_limit_uv, onset_k,
                   onset_min_duration_ms, onset_method)
    if isinstance(emg, mne.io.BaseRaw):
        info = emg.info.copy()
    else:
        info = mne.create_info(prep.ch_names, prep.fs, ch_types="emg")
    events = np.column_stack(
        [prep.onsets, np.zeros(len(prep.onsets), int), np.ones(len(prep.onsets), int)]
    )
    return mne.EpochsArray(
        prep.epochs_uv * 1e-6, info, events=events, tmin=prep.times_ms[0] / 1000.0,
        event_id={"pulse": 1}, metadata=table, baseline=None, verbose="error",
    )


mep_table.__doc__ += _DOC_PARAMS + """
    Returns
    -------
    pandas.DataFrame
        One row per pulse.
    """
mep_epochs.__doc__ += _DOC_PARAMS + """
    Returns
    -------
    mne.EpochsArray
        Epochs from ``tmin_ms`` to ``tmax_ms``, in volts, with ``metadata``.
    """
