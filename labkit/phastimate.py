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
  are chosen to minimise the circular variance of the error on the epochs of above-median
  true amplitude, with the window longer than three filter orders; the Hilbert window
  stays 128. Zrenner et al. use MATLAB's genetic algorithm; here it is scipy's
  differential evolution (integer variables, seeded), another evolutionary search over the
  same space. ``labkit.phase`` offers the result as ``method="phastimate"``.

Everything runs at a working rate of about 1 kHz (block means of the input, the last
block ending on the last sample), where the published parameters are defined.
"""

from __future__ import annotations

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

from labkit.errors import ConfigError

__all__ = [
    "ZRENNER_2018",
    "PhastimateParams",
    "block_mean_tail",
    "decimation_factor",
    "fir_filtfilt",
    "fit_phastimate",
    "phastimate_phase",
    "true_phase_at_centre",
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
    """One phastimate parameter set, in samples at the ~1 kHz working rate.

    Attributes
    ----------
    window : int
        Samples of the window used (the newest ones), ≥ 3 × ``fir_order`` + 1.
    fir_order : int
        Order of the windowed (Hamming) FIR band-pass.
    band_hz : tuple of float
        FIR pass band, Hz.
    edge : int
        Samples dropped at both ends after filtering.
    ar_order : int
        Yule–Walker AR order.
    hilbert : int
        Samples of the Hilbert window; "now" is its middle.
    calibration_score : float | None
        Circular variance of the error on the calibration epochs (a fit's score).
    n_epochs : int
        Calibration epochs the fit was scored on (0: not fitted).
    """

    window: int
    fir_order: int
    band_hz: tuple[float, float]
    edge: int
    ar_order: int
    hilbert: int = HILBERT_SAMPLES
    calibration_score: float | None = None
    n_epochs: int = 0

    def __post_init__(self) -> None:
        lo, hi = (float(b) for b in self.band_hz)
        if not 0.5 <= lo < hi <= 100.0:
            raise ConfigError(f"must be 0.5 <= low < high <= 100 Hz, got {self.band_hz}",
                              field="band_hz")
        object.__setattr__(self, "band_hz", (lo, hi))
        for name in ("window", "fir_order", "edge", "ar_order", "hilbert"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", field=name)
            object.__setattr__(self, name, int(value))
        if self.window <= 3 * self.fir_order:
            raise ConfigError(f"must exceed 3 × fir_order = {3 * self.fir_order} samples, got "
                              f"{self.window}", field="window")
        if self.window - 2 * self.edge <= 2 * self.ar_order:
            raise ConfigError(f"leaves {self.window - 2 * self.edge} samples after the edges; "
                              f"AR({self.ar_order}) needs more than {2 * self.ar_order}",
                              field="edge")
        if self.hilbert % 2 or self.hilbert < 8:
            raise ConfigError(f"must be an even number of samples >= 8, got {self.hilbert}",
                              field="hilbert")


ZRENNER_2018 = PhastimateParams(window=500, fir_order=128, band_hz=(8.0, 13.0), edge=64,
                                ar_order=30)


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


def _fir(order: int, band_hz: tuple[float, float], fs_w: float) -> np.ndarray:
    key = (order, band_hz, fs_w)
    if key not in _FIR_CACHE:
        _FIR_CACHE[key] = firwin(order + 1, band_hz, pass_zero=False, fs=fs_w)
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
    hw = params.hilbert
    ext = np.zeros((y.shape[0], y.shape[1] + params.edge + hw // 2))
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
        Spatially filtered EEG ending "now", at least ``params.window`` ms long.
    fs : float
        Sampling rate, Hz.
    params : PhastimateParams
        :data:`ZRENNER_2018` or the result of :func:`fit_phastimate`.

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
    if x.shape[0] < params.window:
        raise ConfigError(
            f"has {x.shape[0]} samples at {fs_w:g} Hz; these phastimate parameters use the "
            f"last {params.window} (≈ {params.window * 1000 / fs_w:.0f} ms)",
            field="window",
        )
    x = x[x.shape[0] - params.window :]
    b = _fir(params.fir_order, params.band_hz, fs_w)
    y = fir_filtfilt(b, x - x.mean(), 3 * params.fir_order)[params.edge : -params.edge]
    phases, a = _phases_now(y[None, :], params)
    freq = _ar_peak_hz(a[0], fs_w, params.band_hz)
    phase = float(phases[0])
    # the block mean delays "now" by (q - 1) / 2 input samples: advance the phase
    return wrap_rad(phase + 2 * np.pi * freq * (q - 1) / (2 * fs)), freq


# ---------------------------------------------------------------- ground truth
def _truth_filters(mu_hz: float, fs_w: float) -> list[tuple[str, np.ndarray]]:
    """The ensemble of zero-phase filters whose mean phase is the "true" phase.

    After the reference implementation: windowed-sinc FIRs of 2–5 cycles at the peak
    (pass band ±1 Hz), least-squares FIRs of 3–5 cycles (±1 Hz pass, ±4 Hz stop),
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
    """Circular variance of phastimate's error on the included epochs (cached filtering)."""

    def __init__(self, heads: np.ndarray, truth: np.ndarray, mu_hz: float, fs_w: float):
        self.heads, self.truth, self.mu_hz, self.fs_w = heads, truth, mu_hz, fs_w
        self._filtered: dict[tuple[int, int], np.ndarray] = {}

    def params(self, v) -> PhastimateParams:
        window, order, edge, ar = (int(round(float(t))) for t in v)
        return PhastimateParams(window=window, fir_order=order, edge=edge, ar_order=ar,
                                band_hz=(self.mu_hz - 1.0, self.mu_hz + 1.0))

    def filtered(self, window: int, order: int) -> np.ndarray:
        key = (window, order)
        if key not in self._filtered:
            if len(self._filtered) > 512:
                self._filtered.clear()
            x = self.heads[:, -window:]
            b = _fir(order, (self.mu_hz - 1.0, self.mu_hz + 1.0), self.fs_w)
            self._filtered[key] = fir_filtfilt(b, x - x.mean(axis=1, keepdims=True), 3 * order)
        return self._filtered[key]

    def __call__(self, v) -> float:
        try:
            p = self.params(v)
        except ConfigError:
            return 2.0  # outside the feasible set (the linear constraint handles the rest)
        y = self.filtered(p.window, p.fir_order)[:, p.edge : -p.edge]
        est = _phases_now(y, p)[0]
        return float(1.0 - np.mean(np.cos(self.truth - est)))


def fit_phastimate(rest: np.ndarray, fs: float, mu_hz: float, *, max_window_s: float = 0.75,
                   seed: int = 0, max_epochs: int = 120, maxiter: int = 30,
                   popsize: int = 10) -> PhastimateParams:
    """Per-subject phastimate parameters from a resting recording (Zrenner et al. 2020).

    Parameters
    ----------
    rest : ndarray, shape (n_times,)
        Spatially filtered resting EEG, at least 20 s (the reference used about 4 min).
    fs : float
        Sampling rate, Hz.
    mu_hz : float
        Individual mu peak, Hz (8–14; :func:`labkit.phase.estimate_mu_peak`); the FIR
        pass band is ``mu_hz ± 1``.
    max_window_s : float
        Longest window the model may use: the real-time window it will be given, s
        (0.4–0.75; the published search space ends at 0.75).
    seed : int
        Seed of the evolutionary search (the fit is deterministic per seed).
    max_epochs : int
        At most this many included epochs are scored (evenly spread), to bound the cost.
    maxiter, popsize : int
        Generations and population size factor of :func:`scipy.optimize.differential_evolution`.

    Returns
    -------
    PhastimateParams
        With ``calibration_score`` and ``n_epochs`` set.
    """
    x = np.asarray(rest, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ConfigError("needs a finite 1-D resting recording", field="rest")
    if not (isinstance(fs, int | float | np.number) and fs >= 500):
        raise ConfigError(f"must be a sampling rate of at least 500 Hz, got {fs!r}", field="fs")
    if not 8.0 <= float(mu_hz) <= 14.0:
        raise ConfigError(f"must be 8–14 Hz (the published search space is for alpha/mu), "
                          f"got {mu_hz!r}", field="mu_hz")
    if not 0.4 <= float(max_window_s) <= 0.75:
        raise ConfigError(f"must be 0.4–0.75 s, got {max_window_s!r}", field="max_window_s")
    q = decimation_factor(fs)
    fs_w = fs / q
    xw = block_mean_tail(x, q)
    n_epoch, hop = int(round(EPOCH_S * fs_w)), int(round(EPOCH_HOP_S * fs_w))
    starts = np.arange(0, xw.shape[0] - n_epoch + 1, hop)
    if starts.size < 20:
        raise ConfigError(f"gives {starts.size} epochs of 2 s (75 % overlap); need >= 20, "
                          f"i.e. a recording of at least 11.5 s (20 s or more recommended)",
                          field="rest")
    epochs = np.stack([xw[s : s + n_epoch] for s in starts])
    truth, amplitude = true_phase_at_centre(epochs, fs_w, float(mu_hz))
    keep = np.flatnonzero(amplitude >= np.median(amplitude))
    if keep.size > max_epochs:
        keep = keep[np.linspace(0, keep.size - 1, max_epochs).round().astype(int)]
    centre = int(math.ceil(n_epoch / 2))
    scale = fs_w / WORK_HZ
    lo = [round(b * scale) for b in (WINDOW_BOUNDS[0], FIR_ORDER_BOUNDS[0], EDGE_BOUNDS[0],
                                     AR_ORDER_BOUNDS[0])]
    hi = [round(b * scale) for b in (min(WINDOW_BOUNDS[1], 1000 * max_window_s),
                                     FIR_ORDER_BOUNDS[1], EDGE_BOUNDS[1], AR_ORDER_BOUNDS[1])]
    hi[0] = min(hi[0], centre)
    objective = _Objective(epochs[keep, :centre], truth[keep], float(mu_hz), fs_w)
    # window >= 3 * fir_order + 1 (the reference's linear inequality)
    longer = LinearConstraint([[1.0, -3.0, 0.0, 0.0]], 1.0, np.inf)
    result = differential_evolution(objective, list(zip(lo, hi, strict=True)),
                                    integrality=[True] * 4, constraints=(longer,), seed=seed,
                                    maxiter=maxiter, popsize=popsize, polish=False, tol=1e-4,
                                    init="sobol", updating="deferred", workers=1)
    best = objective.params(result.x)
    return PhastimateParams(window=best.window, fir_order=best.fir_order,
                            band_hz=best.band_hz, edge=best.edge, ar_order=best.ar_order,
                            calibration_score=float(result.fun), n_epochs=int(keep.size))
