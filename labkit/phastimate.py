"""phastimate: mu phase by AR forward prediction (Zrenner et al. 2018 and 2020).

The method, as in the phastimate reference implementation (bnplab/phastimate): demean
the window; band-pass it with a two-pass (zero-phase) windowed FIR; drop ``edge``
samples at both ends (the filter's edge transients); fit an AR model of order
``ar_order`` by Yule–Walker (biased autocorrelation, Levinson recursion) to the rest;
predict ``edge + hilbert / 2`` samples forward; take the Hilbert transform of the last
``hilbert`` samples; the phase at the sample that corresponds to "now".

Two parameter sources, both published:

* :data:`ZRENNER_2018` — the fixed set of Zrenner et al. 2018 (Brain Stimul 11:374):
  500 ms window, FIR order 128 with an 8–13 Hz pass band, edge 64, AR(30), Hilbert
  window 128 (the reference implementation's "Zrenner2018" set). ``labkit.phase`` offers
  it as ``method="zrenner-ar"``, the replication baseline. It is 7.6–19.2° off on clean
  8–13 Hz cosines (see ``labkit.phase``): the 64-sample trim is half the two-pass
  filter's transient, and Yule–Walker on 3–5 cycles misplaces the AR pole.
* :func:`fit_phastimate` — the per-subject optimisation of Zrenner et al. 2020 ("The
  shaky ground truth of real-time phase estimation", NeuroImage 214:116761), as in the
  reference implementation's optimisation step: on 2 s epochs of a resting recording
  (75 % overlap), the "true" phase at each epoch's centre is the circular mean over an
  ensemble of zero-phase filters applied to the whole epoch; phastimate sees only the
  epoch up to its centre. The window length (400–750 ms), the FIR order (100–250, pass
  band = individual mu peak ± 1 Hz), the edge (30–120 samples) and the AR order (5–60)
  are chosen on the epochs of above-median true amplitude, with the window longer than
  three filter orders; the Hilbert window stays 128. Zrenner et al. use MATLAB's genetic
  algorithm; here it is scipy's differential evolution (integer variables, seeded),
  another evolutionary search over the same space. One deviation: the published fitness
  is the circular variance of the error, which ignores a constant bias; labkit minimises
  1 − mean cos(error), which counts it, since a closed loop aims at an absolute phase.
  ``labkit.phase`` offers the result as ``method="phastimate"``.

Everything runs at a working rate near 1 kHz: the input in blocks of
``round(fs / 1000)`` samples (their means, the last block ending on the last sample), so
500–1250 Hz. The published numbers are samples at 1 kHz; the fit scales its search space
and Hilbert window to the working rate, :data:`ZRENNER_2018` is used as it is.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import LinearConstraint, differential_evolution
from scipy.signal import (
    butter,
    cheby1,
    fftconvolve,
    filtfilt,
    firls,
    firwin,
    hilbert,
    sosfiltfilt,
)

from labkit.checks import check_range
from labkit.errors import ConfigError

__all__ = [
    "ZRENNER_2018",
    "PhastimateParams",
    "block_mean_tail",
    "decimation_factor",
    "fir_bandpass",
    "fir_filtfilt",
    "fit_phastimate",
    "phastimate_phase",
    "true_phase_at_centre",
    "warm_up",
    "wrap_rad",
]

WORK_HZ = 1000.0
HILBERT_SAMPLES = 128  # "an appropriate window for alpha at 1000 Hz" (reference script)

# Search space of the per-subject optimisation (reference implementation, 1 kHz).
WINDOW_BOUNDS = (400, 750)
FIR_ORDER_BOUNDS = (100, 250)
EDGE_BOUNDS = (30, 120)
AR_ORDER_BOUNDS = (5, 60)
EPOCH_S = 2.0
EPOCH_HOP_S = 0.5  # 75 % overlap


@dataclass(frozen=True)
class PhastimateParams:
    """One phastimate parameter set, in samples at the working rate (~1 kHz).

    Attributes
    ----------
    window_samples : int
        Newest samples used, more than 3 × ``fir_order``.
    fir_order : int
        Order of the windowed (Hamming) FIR band-pass.
    band_hz : tuple of float
        FIR pass band, Hz.
    edge_samples : int
        Samples dropped at both ends after filtering.
    ar_order : int
        Yule–Walker AR order.
    hilbert_samples : int
        Samples of the Hilbert window, even, at most 2 × (``window_samples`` −
        ``edge_samples``); "now" is its middle.
    calibration_score : float | None
        A fit's score: 1 − mean cos(error) on the calibration epochs (0 = exact).
    n_epochs : int
        Calibration epochs the fit was scored on (0: not fitted).
    """

    window_samples: int
    fir_order: int
    band_hz: tuple[float, float]
    edge_samples: int
    ar_order: int
    hilbert_samples: int = HILBERT_SAMPLES
    calibration_score: float | None = None
    n_epochs: int = 0

    def __post_init__(self) -> None:
        try:
            lo, hi = (float(b) for b in self.band_hz)
        except (TypeError, ValueError):
            raise ConfigError(f"must be (low, high) in Hz, got {self.band_hz!r}",
                              field="band_hz") from None
        if not 0.5 <= lo < hi <= 100.0:
            raise ConfigError(f"must be 0.5 <= low < high <= 100 Hz, got {self.band_hz}",
                              field="band_hz")
        object.__setattr__(self, "band_hz", (lo, hi))
        for name in ("window_samples", "fir_order", "edge_samples", "ar_order",
                     "hilbert_samples"):
            value = getattr(self, name)
            if not (isinstance(value, int | float | np.number) and math.isfinite(value)
                    and int(value) == value and value >= 1):
                raise ConfigError(f"must be a positive integer, got {value!r}", field=name)
            object.__setattr__(self, name, int(value))
        if self.window_samples <= 3 * self.fir_order:
            raise ConfigError(f"must exceed 3 × fir_order = {3 * self.fir_order} samples, got "
                              f"{self.window_samples}", field="window_samples")
        kept = self.window_samples - 2 * self.edge_samples
        if kept <= 2 * self.ar_order:
            raise ConfigError(f"leaves {kept} samples after the edges; AR({self.ar_order}) "
                              f"needs more than {2 * self.ar_order}", field="edge_samples")
        if self.hilbert_samples % 2 or self.hilbert_samples < 8:
            raise ConfigError(f"must be an even number of samples >= 8, got "
                              f"{self.hilbert_samples}", field="hilbert_samples")
        if self.hilbert_samples > 2 * (self.window_samples - self.edge_samples):
            raise ConfigError(
                f"must be at most 2 × (window_samples − edge_samples) = "
                f"{2 * (self.window_samples - self.edge_samples)}, got {self.hilbert_samples} "
                "(the Hilbert window would reach before the data)", field="hilbert_samples")


ZRENNER_2018 = PhastimateParams(window_samples=500, fir_order=128, band_hz=(8.0, 13.0),
                                edge_samples=64, ar_order=30)


# ---------------------------------------------------------------- shared helpers
def block_mean_tail(x: np.ndarray, q: int) -> np.ndarray:
    """Means of consecutive blocks of ``q`` samples (last axis), the last ending on the
    last sample."""
    n = (x.shape[-1] // q) * q
    tail = x[..., x.shape[-1] - n :]
    return tail.reshape(*x.shape[:-1], -1, q).mean(axis=-1)


def decimation_factor(fs: float, target_hz: float = WORK_HZ) -> int:
    """Block length that brings ``fs`` closest to ``target_hz`` (at least 1)."""
    return max(1, int(round(fs / target_hz)))


def wrap_rad(phase: float) -> float:
    """Angle wrapped to ``(-pi, pi]``."""
    return float(math.atan2(math.sin(phase), math.cos(phase)))


_FIR_CACHE: dict[tuple, np.ndarray] = {}


def fir_bandpass(order: int, band_hz: tuple[float, float], fs_hz: float) -> np.ndarray:
    """Windowed-sinc (Hamming) FIR band-pass of ``order`` (``order + 1`` taps), cached.

    Parameters
    ----------
    order : int
        Filter order.
    band_hz : tuple of float
        Pass band, Hz.
    fs_hz : float
        Sampling rate, Hz.

    Returns
    -------
    ndarray, shape (order + 1,)
        Taps (``scipy.signal.firwin``, scaled to unit gain at the band centre).
    """
    key = (int(order), tuple(band_hz), float(fs_hz))
    if key not in _FIR_CACHE:
        _FIR_CACHE[key] = firwin(int(order) + 1, band_hz, pass_zero=False, fs=fs_hz)
    return _FIR_CACHE[key]


def _with_constant_past(b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """FIR ``b`` over the last axis of ``x``, as if ``x[..., 0]`` had held for ever
    (lfilter started at the steady state of its first sample)."""
    past = np.repeat(x[..., :1], b.shape[0] - 1, axis=-1)
    return fftconvolve(np.concatenate((past, x), axis=-1), b.reshape((1,) * (x.ndim - 1) + (-1,)),
                       mode="valid", axes=-1)


def fir_filtfilt(b: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.filtfilt(b, [1.0], x, axis=-1, padlen=padlen)`` for an FIR ``b``,
    by FFT convolution (same result to rounding, several times faster on batches).

    Odd extension by ``padlen`` samples at both ends, a forward pass started at the
    steady state of the first sample, a backward pass likewise, the extension dropped.
    """
    if x.shape[-1] <= padlen:
        raise ConfigError(f"has {x.shape[-1]} samples; the two-pass filter needs more than "
                          f"{padlen}", field="window")
    left = 2 * x[..., :1] - x[..., padlen:0:-1]
    right = 2 * x[..., -1:] - x[..., -2 : -padlen - 2 : -1]
    ext = np.concatenate((left, x, right), axis=-1)
    forward = _with_constant_past(b, ext)
    both = _with_constant_past(b, forward[..., ::-1])[..., ::-1]
    return both[..., padlen:-padlen]


@njit(cache=True, nogil=True)
def _ar_predict(ext, a, n0):
    order = a.shape[0]
    for i in range(n0, ext.shape[0]):
        acc = 0.0
        for k in range(order):
            acc += a[k] * ext[i - 1 - k]
        ext[i] = acc


@njit(cache=True, nogil=True)
def _yule_walker_rows(y, order, a_out):
    """Per row of ``y``: AR coefficients (y[n] = sum_k a[k] y[n-1-k]) from the biased
    autocorrelation, by the Levinson–Durbin recursion (aryule's estimator)."""
    n = y.shape[1]
    r = np.empty(order + 1)
    prev = np.empty(order)
    for row in range(y.shape[0]):
        for lag in range(order + 1):
            acc = 0.0
            for t in range(n - lag):
                acc += y[row, t] * y[row, t + lag]
            r[lag] = acc / n
        a = a_out[row]
        a[:] = 0.0
        err = r[0]
        if err <= 0.0:
            continue
        for m in range(order):
            acc = r[m + 1]
            for j in range(m):
                acc -= a[j] * r[m - j]
            k = acc / err
            for j in range(m):
                prev[j] = a[j]
            for j in range(m):
                a[j] = prev[j] - k * prev[m - 1 - j]
            a[m] = k
            err *= 1.0 - k * k
            if err <= 0.0:
                break


def _ar_peak_hz(a: np.ndarray, fs: float, band_hz: tuple[float, float]) -> float:
    """Frequency of the AR spectrum's maximum within ``band_hz`` (0.05 Hz grid)."""
    f = np.arange(band_hz[0], band_hz[1] + 1e-9, 0.05)
    k = np.arange(1, a.shape[0] + 1)
    denom = np.abs(1 - np.exp(-2j * np.pi * np.outer(f, k) / fs) @ a) ** 2
    return float(f[np.argmin(denom)])


def _phases_now(y: np.ndarray, params: PhastimateParams) -> tuple[np.ndarray, np.ndarray]:
    """Phase "now" of each filtered, edge-trimmed row of ``y``, and the AR coefficients."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    a = np.empty((y.shape[0], params.ar_order))
    _yule_walker_rows(y, params.ar_order, a)
    hw = params.hilbert_samples
    ext = np.zeros((y.shape[0], y.shape[1] + params.edge_samples + hw // 2))
    ext[:, : y.shape[1]] = y
    for row in range(y.shape[0]):
        _ar_predict(ext[row], a[row], y.shape[1])
    return np.angle(hilbert(ext[:, -hw:], axis=1)[:, hw // 2 - 1]), a


# ---------------------------------------------------------------- estimation
def phastimate_phase(window: np.ndarray, fs: float,
                     params: PhastimateParams = ZRENNER_2018) -> tuple[float, float]:
    """phastimate phase (and frequency) at the last sample of ``window``.

    Parameters
    ----------
    window : ndarray, shape (n_times,)
        Spatially filtered EEG ending "now": at least ``params.window_samples`` samples
        at the working rate (``fs`` in blocks of :func:`decimation_factor` samples).
    fs : float
        Sampling rate, Hz.
    params : PhastimateParams
        :data:`ZRENNER_2018` or the result of :func:`fit_phastimate` (fitted at the same
        working rate: its numbers are samples).

    Returns
    -------
    phase_rad : float
        Phase at the last sample, cosine convention (0 = peak, ±pi = trough).
    freq_hz : float
        Peak of the fitted AR spectrum in the pass band.
    """
    q = decimation_factor(fs)
    fs_w = fs / q
    x = block_mean_tail(np.asarray(window, dtype=np.float64), q)
    if x.shape[0] < params.window_samples:
        raise ConfigError(
            f"has {x.shape[0]} samples at {fs_w:g} Hz; these phastimate parameters use the "
            f"last {params.window_samples} (≈ {params.window_samples * 1000 / fs_w:.0f} ms)",
            field="window",
        )
    x = x[x.shape[0] - params.window_samples :]
    b = fir_bandpass(params.fir_order, params.band_hz, fs_w)
    edge = params.edge_samples
    y = fir_filtfilt(b, x - x.mean(), 3 * params.fir_order)[edge:-edge]
    phases, a = _phases_now(y[None, :], params)
    freq = _ar_peak_hz(a[0], fs_w, params.band_hz)
    phase = float(phases[0])
    # the block mean delays "now" by (q - 1) / 2 input samples: advance the phase
    return wrap_rad(phase + 2 * np.pi * freq * (q - 1) / (2 * fs)), freq


# ---------------------------------------------------------------- ground truth
def _truth_filters(mu_hz: float, fs_w: float) -> list[tuple[str, np.ndarray]]:
    """The ensemble of zero-phase filters whose mean phase is the "true" phase.

    After the reference implementation: windowed-sinc FIRs of 2–5 cycles at the peak
    (pass band ±1 Hz), least-squares FIRs of 3–5 cycles (±1 Hz pass, ±4 Hz stop; the
    order rounded to even, which ``scipy.signal.firls`` needs),
    Butterworth band-passes of order 4, 8, 12 (±1 Hz) and Chebyshev-I of order 4, 6, 8
    (±1.5 Hz, 0.5 dB ripple). Its elliptic filters are left out.
    """
    out: list[tuple[str, np.ndarray]] = []
    band = (mu_hz - 1.0, mu_hz + 1.0)
    for cycles in (2, 3, 4, 5):
        order = int(round(cycles * fs_w / mu_hz))
        out.append(("fir", firwin(order + 1, band, pass_zero=False, fs=fs_w)))
    for cycles in (3, 4, 5):
        order = 2 * int(round(cycles * fs_w / mu_hz / 2))  # firls: even order
        edges = [0.0, mu_hz - 4.0, mu_hz - 1.0, mu_hz + 1.0, mu_hz + 4.0, fs_w / 2]
        out.append(("fir", firls(order + 1, edges, [0, 0, 1, 1, 0, 0], fs=fs_w)))
    for order in (4, 8, 12):
        out.append(("sos", butter(order // 2, band, "bandpass", fs=fs_w, output="sos")))
    for order in (4, 6, 8):
        out.append(("sos", cheby1(order // 2, 0.5, (mu_hz - 1.5, mu_hz + 1.5), "bandpass",
                                  fs=fs_w, output="sos")))
    return out


def true_phase_at_centre(epochs: np.ndarray, fs_w: float,
                         mu_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-causal phase and amplitude at each epoch's centre (sample ``ceil(n / 2) - 1``).

    Parameters
    ----------
    epochs : ndarray, shape (n_epochs, n_times)
        Epochs at the working rate.
    fs_w : float
        Their sampling rate, Hz.
    mu_hz : float
        Individual mu peak, Hz.

    Returns
    -------
    phase_rad, amplitude : ndarray, shape (n_epochs,)
        Circular mean of the ensemble's phases; mean of its amplitudes.
    """
    x = epochs - epochs.mean(axis=1, keepdims=True)
    centre = int(math.ceil(x.shape[1] / 2)) - 1
    phasors = []
    for kind, coef in _truth_filters(mu_hz, fs_w):
        y = filtfilt(coef, [1.0], x, axis=1) if kind == "fir" else sosfiltfilt(coef, x, axis=1)
        phasors.append(hilbert(y, axis=1)[:, centre])
    z = np.array(phasors)
    return np.angle(np.mean(z / np.abs(z), axis=0)), np.mean(np.abs(z), axis=0)


# ---------------------------------------------------------------- per-subject fit
class _Objective:
    """1 − mean cos of phastimate's error on the included epochs (filtering cached)."""

    def __init__(self, heads: np.ndarray, truth: np.ndarray, mu_hz: float, fs_w: float,
                 hilbert_samples: int) -> None:
        self.heads, self.truth, self.mu_hz, self.fs_w = heads, truth, mu_hz, fs_w
        self.hilbert_samples = hilbert_samples
        self._filtered: dict[tuple[int, int], np.ndarray] = {}

    def params(self, v: np.ndarray) -> PhastimateParams:
        window, order, edge, ar = (int(round(float(t))) for t in v)
        return PhastimateParams(window_samples=window, fir_order=order, edge_samples=edge,
                                ar_order=ar, band_hz=(self.mu_hz - 1.0, self.mu_hz + 1.0),
                                hilbert_samples=self.hilbert_samples)

    def filtered(self, window: int, order: int) -> np.ndarray:
        key = (window, order)
        if key not in self._filtered:
            if len(self._filtered) > 512:
                self._filtered.clear()
            x = self.heads[:, -window:]
            b = fir_bandpass(order, (self.mu_hz - 1.0, self.mu_hz + 1.0), self.fs_w)
            self._filtered[key] = fir_filtfilt(b, x - x.mean(axis=1, keepdims=True), 3 * order)
        return self._filtered[key]

    def __call__(self, v: np.ndarray) -> float:
        try:
            p = self.params(v)
        except ConfigError:
            return np.inf  # outside the feasible set (the linear constraint handles the rest)
        y = self.filtered(p.window_samples, p.fir_order)[:, p.edge_samples : -p.edge_samples]
        est = _phases_now(y, p)[0]
        return float(1.0 - np.mean(np.cos(self.truth - est)))


def _check_count(value: int, name: str, low: int, high: int) -> int:
    if not (isinstance(value, int | np.integer) and low <= value <= high):
        raise ConfigError(f"must be an integer in {low}–{high}, got {value!r}", field=name)
    return int(value)


def fit_phastimate(rest: np.ndarray, fs: float, mu_hz: float, *, max_window_s: float = 0.75,
                   seed: int = 0, max_epochs: int = 120, maxiter: int = 30,
                   popsize: int = 10) -> PhastimateParams:
    """Per-subject phastimate parameters from a resting recording (Zrenner et al. 2020).

    Parameters
    ----------
    rest : ndarray, shape (n_times,)
        Spatially filtered resting EEG: at least 11.5 s (20 epochs); 2 minutes or more
        recommended (the reference used about 4): on 30 s the fit can overfit.
    fs : float
        Sampling rate, Hz (≥ 500).
    mu_hz : float
        Individual mu peak, Hz (8–14; :func:`labkit.phase.estimate_mu_peak`); the FIR
        pass band is ``mu_hz ± 1``.
    max_window_s : float
        Longest window the model may use: the real-time window it will be given, s
        (0.4–0.75; the published search space ends at 0.75).
    seed : int
        Seed of the evolutionary search (the fit is deterministic per seed).
    max_epochs : int
        At most this many included epochs are scored (evenly spread), to bound the cost
        (10–10000).
    maxiter, popsize : int
        Generations (1–1000) and population size factor (2–100) of
        :func:`scipy.optimize.differential_evolution`.

    Returns
    -------
    PhastimateParams
        With ``calibration_score`` and ``n_epochs`` set.

    Notes
    -----
    The search space is the reference's at 1 kHz, scaled to the working rate (block
    means to the rate nearest 1 kHz, 500–1250 Hz); the Hilbert window is 128 samples
    at 1 kHz, scaled likewise. Only complete 2 s epochs are used (the reference's
    ``buffer`` also keeps zero-padded ones at the end).
    """
    x = np.asarray(rest, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ConfigError("needs a finite 1-D resting recording", field="rest")
    fs = check_range(fs, "fs", 500.0, math.inf, "Hz")
    # the published search space is for alpha/mu
    mu_hz = check_range(mu_hz, "mu_hz", 8.0, 14.0, "Hz")
    max_window_s = check_range(max_window_s, "max_window_s", 0.4, 0.75, "s")
    max_epochs = _check_count(max_epochs, "max_epochs", 10, 10000)
    maxiter = _check_count(maxiter, "maxiter", 1, 1000)
    popsize = _check_count(popsize, "popsize", 2, 100)
    q = decimation_factor(fs)
    fs_w = fs / q
    xw = block_mean_tail(x, q)
    n_epoch, hop = int(round(EPOCH_S * fs_w)), int(round(EPOCH_HOP_S * fs_w))
    starts = np.arange(0, xw.shape[0] - n_epoch + 1, hop)
    if starts.size < 20:
        raise ConfigError(f"gives {starts.size} epochs of 2 s (75 % overlap); need >= 20, "
                          f"i.e. a recording of at least 11.5 s (2 minutes or more recommended)",
                          field="rest")
    epochs = np.stack([xw[s : s + n_epoch] for s in starts])
    truth, amplitude = true_phase_at_centre(epochs, fs_w, float(mu_hz))
    keep = np.flatnonzero(amplitude >= np.median(amplitude))
    if keep.size > max_epochs:
        keep = keep[np.linspace(0, keep.size - 1, max_epochs).round().astype(int)]
    centre = int(math.ceil(n_epoch / 2))
    scale = fs_w / WORK_HZ
    # the real-time window of max_window_s gives floor(max_window_s * fs / q) block means
    window_hi = min(int(math.floor(float(max_window_s) * float(fs) + 1e-9)) // q,
                    int(round(WINDOW_BOUNDS[1] * scale)), centre)
    lo = [min(math.ceil(WINDOW_BOUNDS[0] * scale), window_hi)] + [
        math.ceil(b[0] * scale) for b in (FIR_ORDER_BOUNDS, EDGE_BOUNDS, AR_ORDER_BOUNDS)]
    hi = [window_hi] + [math.floor(b[1] * scale) for b in
                        (FIR_ORDER_BOUNDS, EDGE_BOUNDS, AR_ORDER_BOUNDS)]
    hilbert_samples = 2 * int(round(HILBERT_SAMPLES * scale / 2))
    objective = _Objective(epochs[keep, :centre], truth[keep], float(mu_hz), fs_w,
                           hilbert_samples)
    # window >= 3 * fir_order + 1 (the reference's linear inequality)
    longer = LinearConstraint([[1.0, -3.0, 0.0, 0.0]], 1.0, np.inf)
    result = differential_evolution(objective, list(zip(lo, hi, strict=True)),
                                    integrality=[True] * 4, constraints=(longer,), seed=seed,
                                    maxiter=maxiter, popsize=popsize, polish=False, tol=1e-4,
                                    init="sobol", updating="deferred", workers=1)
    best = objective.params(result.x)
    return dataclasses.replace(best, calibration_score=float(result.fun),
                               n_epochs=int(keep.size))


def warm_up() -> None:
    """Compile the numba kernels on a tiny input."""
    _ar_predict(np.zeros(8), np.zeros(2), 2)
    _yule_walker_rows(np.ones((1, 8)), 2, np.zeros((1, 2)))
