"""Causal estimators of the instantaneous mu phase at the last sample of a window.

Phase convention: radians in ``(-pi, pi]``, cosine convention (0 = positive peak,
±pi = trough). Every estimator is pure: it sees only the samples it is given.

Methods (``phase_now(window, fs, method=...)``):

``"zrenner-ar"`` — the baseline, Zrenner et al. 2018 (Brain Stimul 11:374) as published
in the phastimate reference implementation (bnplab/phastimate; Zrenner et al. 2020,
NeuroImage 214:116761): demean; resample to 1 kHz; two-pass (zero-phase) FIR
band-pass 8–13 Hz, order 128 (129-tap Hamming ``firwin``); drop ``edge`` = 64 samples
at both ends; fit AR(30) by Yule–Walker (biased autocorrelation, Levinson recursion) on
the rest; forward-predict ``edge + hilbert/2`` = 128 samples; Hilbert transform of the
last 128 samples; the phase at the sample that corresponds to "now". At 1 kHz it equals
the phastimate steps with the "Zrenner2018" parameter set (``tests/test_phase.py``).
It is not accurate on noise-free sinusoids, and that is the published recipe's doing:
on clean cosines at 8 / 9 / 10.5 / 12 / 13 Hz (500 ms, 8 phases) its largest error is
19.2 / 12.8 / 13.9 / 10.8 / 7.6° (``benchmarks/bench_phase.py``, the other methods
0.2–4.2°). Yule–Walker on the biased autocorrelation of the 372 kept samples (3–5
cycles) puts the dominant AR pole at a frequency that depends on the cosine's phase
within the segment (8.0–8.65 Hz for 8 Hz; radius ≈ 0.996, so the prediction also
decays), and that frequency error accumulates over the 64 samples predicted up to
"now"; the error repeats every pi of input phase. Fed an ideal sinusoidal segment, Burg
would be exact (≤ 1.8°, the 128-sample Hilbert window's own error), but the 64-sample
trim leaves up to 9 % of the two-pass filter's edge transient (it spans 128 samples) in
the last kept samples, and Burg (6–32°) or least squares (35–52°) on AR(30) do worse
than Yule–Walker there. The baseline is kept as published, for replication; its
steps live in :mod:`labkit.phastimate` (:data:`~labkit.phastimate.ZRENNER_2018`).

``"phastimate"`` — the same pipeline with its parameters optimised per subject on a
resting recording, as Zrenner et al. 2020 did (:func:`fit_phastimate`, see
:mod:`labkit.phastimate`): window 400–750 ms (at most the window it will be given),
FIR order 100–250 with the pass band at the individual mu peak ± 1 Hz, edge 30–120
samples, AR order 5–60, chosen by an evolutionary search against the non-causal phase of
2 s calibration epochs. One deviation from the published recipe: the search minimises
1 − mean cos(error), which counts a constant bias, where the published fitness (circular
variance) ignores it; a closed loop aims at an absolute phase. Fitted on 2 minutes of
the same rhythm (noise-free, frequency wandering by 0.1 Hz), it was within 1.4° on clean
8, 10 and 12 Hz cosines for each of 4 calibration seeds (``tests/test_phastimate.py``
checks 5 frequencies against 5°). Calibrate on minutes, not seconds: on 30 s (29 scored
epochs) the fit overfits, and one of the same 12 trials was 30° off.

``"kalman"`` (default) — a state-space oscillator tracker (after Matsuda & Komaki 2017,
Neural Comput 29:332, and Wodeyar, Schatza, Widge, Eden & Kramer 2021, "A state space
modeling approach to real-time phase estimation", eLife 10:e68803): the signal is modelled
as a damped rotating 2-D oscillator at the mu frequency plus a slow first-order
component (the 1/f drift) plus white noise, and a Kalman filter estimates the
oscillator's state sample by sample; its angle is the phase *now*, with no band-pass
filter delay and no prediction horizon. The mu frequency is the individual peak when
given (``mu_hz``), else it is estimated from the window by a first Kalman pass (the mean
phase advance, weighted by amplitude), and then kept adapting slowly. Input is reduced to
~1 kHz by block means aligned on the last sample; the half-block delay is compensated.
Two passes: backward (to start the forward pass from a settled state, and to estimate
the frequency) then forward. Cost: O(n) with a 3-state filter; :class:`PhaseTracker`
does the same per incoming sample for the real-time loop (microseconds per chunk).

``"etp"`` — Educated Temporal Prediction (Shirinpour et al. 2020, J Neural Eng 17:046002):
from a resting training recording, the median interval between mu peaks (peaks of the
8–13 Hz zero-phase band-passed signal) is learned and then bias-corrected: the period
used for prediction is the one (searched over 0.8–1.25 × the median) whose predictions
on windows of the training recording agree best with the recording's own non-causal
Hilbert phase. In real time the window is band-passed the same way (two-pass FIR, the
filter of ``"zrenner-ar"``), the last peak at least one filter half-length before the end
is found, and the phase now is ``2 pi (t_now - t_peak) / period``. Fit with
:func:`fit_etp` on a calibration recording; without a fitted model ``1 / mu_hz`` (or
the window's own median peak interval) is the period, uncorrected.

``"kalman"`` with fitted parameters — the SSPE recipe of Wodeyar et al. 2021: the
oscillator model's parameters are estimated per subject from an initial (resting)
interval and then held fixed. :func:`fit_kalman` maximises the Kalman-filter
likelihood of a resting recording over the oscillator bandwidth, the slow component's
corner and variance, and the observation noise, with the oscillator at the subject's
spectral mu peak (Nelder–Mead on log parameters, starting from the defaults below;
Wodeyar et al. use EM and more oscillators); pass the result as ``model`` to
:func:`phase_now` or as ``params`` to :class:`PhaseTracker`.

Choice of the default (``benchmarks/bench_phase.py``, one run, 3 subjects × 100
instants per family and SNR, 500 ms windows): on three signal families that no method
was tuned on — arch-shaped mu, bursty mu, and mu whose SNR drifts by ±10 dB — at −5, 0
and +5 dB, the mean circular SD of the error at instants of above-median mu amplitude
was: ``kalman`` with the calibrated mu peak 59.0°, the streaming ``PhaseTracker``
62.8°, ``kalman`` with per-subject fitted parameters 63.8°, ``kalman`` (peak from the
window) 67.7°, ``etp`` (trained) 72.2°, ``phastimate`` (fitted on the 30 s resting
recording) 76.9°, ``zrenner-ar`` 78.3° (over all instants: 76.9, 80.5, 82.7, 87.9, 87.3,
93.6, 92.9°). So ``"kalman"`` stays the default, the mu peak from a resting calibration
should be passed (the closed loop does), and fitted parameters are an option, not the
default: on held-out signals they did not beat the defaults (the streaming tracker with
fitted parameters did worse, 89.4°). phastimate's per-subject fit made no measurable
difference to the 2018 set in this run (paired over the 9 held-out cells, gated SD
−1.4 ± 1.9° s.e., all instants +0.7 ± 1.6°); 30 s (29 scored epochs) leave it little to
learn from, where Zrenner et al. calibrated on about 4 minutes.

Model parameters of ``"kalman"`` (tuned on :mod:`labkit.sim.eeg` at 0 dB in-band SNR;
see ``benchmarks/bench_phase.py``): oscillator bandwidth ``bw_hz`` (pole radius
``exp(-pi*bw_hz/fs)``), slow-component corner ``slow_hz``, stationary variances of the
slow component and of the observation noise relative to the oscillator
(``slow_var``, ``obs_var``), frequency adaptation time constant ``freq_tau_s``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.signal import filtfilt, hilbert

from labkit.errors import ConfigError
from labkit.phastimate import (
    WORK_HZ,
    ZRENNER_2018,
    PhastimateParams,
    block_mean_tail,
    decimation_factor,
    fir_bandpass,
    fit_phastimate,
    phastimate_phase,
    wrap_rad,
)
from labkit.phastimate import warm_up as _warm_up_phastimate

__all__ = [
    "METHODS",
    "EtpModel",
    "KalmanParams",
    "PhaseTracker",
    "PhastimateParams",
    "estimate_mu_peak",
    "etp_phase",
    "fit_etp",
    "fit_kalman",
    "fit_phastimate",
    "kalman_phase",
    "phase_and_freq",
    "phase_now",
    "time_to_phase",
    "warm_up",
    "zrenner_ar_phase",
]

METHODS = ("kalman", "zrenner-ar", "phastimate", "etp")

def zrenner_ar_phase(window: np.ndarray, fs: float) -> tuple[float, float]:
    """Zrenner 2018 AR forward-prediction phase (and frequency) at the last sample.

    phastimate with the published 2018 parameter set (:data:`labkit.phastimate.ZRENNER_2018`).

    Parameters
    ----------
    window : ndarray, shape (n_times,)
        Spatially filtered EEG ending "now"; the newest 500 samples at the working rate
        (500 ms at 1 kHz, as published) are used, so at least that many.
    fs : float
        Sampling rate, Hz.

    Returns
    -------
    phase_rad : float
        Phase at the last sample, cosine convention.
    freq_hz : float
        Peak of the fitted AR spectrum in the pass band (for prediction).
    """
    return phastimate_phase(window, fs, ZRENNER_2018)


# ---------------------------------------------------------------- Kalman oscillator
class KalmanParams:
    """Parameters of the oscillator Kalman tracker (see module docstring).

    Parameters
    ----------
    bw_hz : float
        Oscillator bandwidth, Hz.
    slow_hz : float
        Corner of the slow (1/f drift) component, Hz.
    slow_var : float
        Stationary variance of the slow component relative to the oscillator.
    obs_var : float
        Observation-noise variance (per 1 kHz sample) relative to the oscillator.
    freq_tau_s : float
        Time constant of the frequency adaptation, s (``inf`` = fixed frequency).
    work_hz : float
        Working rate after block-mean reduction, Hz.
    mu_hz : float | None
        The subject's mu frequency when the parameters were fitted (:func:`fit_kalman`);
        used when no ``mu_hz`` is given to the estimator.
    """

    def __init__(
        self,
        bw_hz: float = 1.0,
        slow_hz: float = 1.0,
        slow_var: float = 10.0,
        obs_var: float = 30.0,
        freq_tau_s: float = 1.0,
        work_hz: float = 1000.0,
        mu_hz: float | None = None,
    ):
        self.mu_hz = None if mu_hz is None else float(mu_hz)
        self.bw_hz = float(bw_hz)
        self.slow_hz = float(slow_hz)
        self.slow_var = float(slow_var)
        self.obs_var = float(obs_var)
        self.freq_tau_s = float(freq_tau_s)
        self.work_hz = float(work_hz)

    def __repr__(self) -> str:
        return (f"KalmanParams(bw_hz={self.bw_hz:.3g}, slow_hz={self.slow_hz:.3g}, "
                f"slow_var={self.slow_var:.3g}, obs_var={self.obs_var:.3g}, "
                f"freq_tau_s={self.freq_tau_s:.3g}, work_hz={self.work_hz:.3g}, "
                f"mu_hz={self.mu_hz})")

    def as_array(self, fs_w: float) -> np.ndarray:
        """``[r, rho, q_x, q_s, r_v, alpha]`` for the kernel at working rate ``fs_w``."""
        r = math.exp(-math.pi * self.bw_hz / fs_w)
        rho = math.exp(-2 * math.pi * self.slow_hz / fs_w)
        alpha = 0.0 if not np.isfinite(self.freq_tau_s) else 1.0 / (self.freq_tau_s * fs_w)
        return np.array([r, rho, 1 - r * r, self.slow_var * (1 - rho * rho), self.obs_var, alpha])


DEFAULT_PARAMS = KalmanParams()


@njit(cache=True, nogil=True)
def _kalman_run(y, prm, state, cov, omega_io, cov_upd, skip=0):
    """Run the oscillator Kalman filter over ``y``; ``state`` (3,), ``cov`` (3, 3) and
    ``omega_io`` ([omega, amp2_mean, prev_x1, prev_x2]) are updated in place; ``cov_upd``
    receives the covariance after the last measurement update (NaN samples are
    predicted only), which :func:`_corrected_phase` needs.

    Returns the sum of amplitude-weighted phase advances and the sum of weights over
    samples ``n >= skip`` (for the frequency estimate of a first pass).
    """
    r, rho, q_x, q_s, r_v, alpha = prm[0], prm[1], prm[2], prm[3], prm[4], prm[5]
    omega = omega_io[0]
    amp2m = omega_io[1]
    px1 = omega_io[2]
    px2 = omega_io[3]
    s0, x1, x2 = state[0], state[1], state[2]
    P = cov
    F = np.zeros((3, 3))
    T = np.zeros((3, 3))
    sw = 0.0
    swd = 0.0
    for n in range(y.shape[0]):
        c = r * math.cos(omega)
        s = r * math.sin(omega)
        F[0, 0] = rho
        F[1, 1] = c
        F[1, 2] = -s
        F[2, 1] = s
        F[2, 2] = c
        # predict
        ps = rho * s0
        p1 = c * x1 - s * x2
        p2 = s * x1 + c * x2
        for i in range(3):
            for j in range(3):
                acc = 0.0
                for k in range(3):
                    acc += F[i, k] * P[k, j]
                T[i, j] = acc
        for i in range(3):
            for j in range(3):
                acc = 0.0
                for k in range(3):
                    acc += T[i, k] * F[j, k]
                P[i, j] = acc
        P[0, 0] += q_s
        P[1, 1] += q_x
        P[2, 2] += q_x
        if math.isnan(y[n]):
            # no measurement (blanked artifact): predict only
            s0, x1, x2 = ps, p1, p2
            px1 = x1
            px2 = x2
            continue
        # update with y = s + x1 + v
        h0 = P[0, 0] + P[1, 0]
        h1 = P[0, 1] + P[1, 1]
        h2 = P[0, 2] + P[1, 2]
        S = h0 + h1 + r_v
        k0 = h0 / S
        k1 = h1 / S
        k2 = h2 / S
        e = y[n] - ps - p1
        s0 = ps + k0 * e
        x1 = p1 + k1 * e
        x2 = p2 + k2 * e
        for j in range(3):
            hj = P[0, j] + P[1, j]
            P[0, j] -= k0 * hj
            P[1, j] -= k1 * hj
            P[2, j] -= k2 * hj
        for i in range(3):
            for j in range(3):
                cov_upd[i, j] = P[i, j]
        # frequency: amplitude-weighted phase advance
        a2 = x1 * x1 + x2 * x2
        pa2 = px1 * px1 + px2 * px2
        if a2 > 0.0 and pa2 > 0.0:
            d = math.atan2(x2 * px1 - x1 * px2, x1 * px1 + x2 * px2)
            if n >= skip:
                # weight by amplitude (not its square: the square correlates with the
                # image-frequency ripple of the phase increments and biases the mean)
                wa = math.sqrt(a2)
                sw += wa
                swd += wa * d
            amp2m += 0.001 * (a2 - amp2m)
            if alpha > 0.0 and amp2m > 0.0:
                g = alpha * min(a2 / amp2m, 4.0)
                omega += g * (d - omega)
        px1 = x1
        px2 = x2
    state[0] = s0
    state[1] = x1
    state[2] = x2
    omega_io[0] = omega
    omega_io[1] = amp2m
    omega_io[2] = px1
    omega_io[3] = px2
    return swd, sw


@njit(cache=True, nogil=True)
def _corrected_phase(prm, state, cov, omega):
    """Phase of the oscillator state with the image-frequency leak removed.

    A real rhythm ``cos(theta)`` is ``(e^{i theta} + e^{-i theta}) / 2``; the steady-state
    filter passes a little of the negative-frequency half, so ``z = x1 + i x2`` equals
    ``a u + b conj(u)`` with ``u = A e^{i theta}`` and ``a``, ``b`` from the filter's
    transfer function at ``omega``. Solving for ``u`` removes the ``sin(2 theta)``-shaped
    bias (several degrees at 8 Hz otherwise).
    """
    r, rho, q_x, q_s, r_v = prm[0], prm[1], prm[2], prm[3], prm[4]
    c = r * math.cos(omega)
    s = r * math.sin(omega)
    F = np.array([[rho, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    Pp = F @ cov @ F.T
    Pp[0, 0] += q_s
    Pp[1, 1] += q_x
    Pp[2, 2] += q_x
    H = np.array([1.0, 1.0, 0.0])
    ph = Pp @ H
    K = ph / (ph[0] + ph[1] + r_v)
    A = F - np.outer(K, H @ F)
    M = np.eye(3).astype(np.complex128) - A.astype(np.complex128) * np.exp(-1j * omega)
    T = np.linalg.solve(M, K.astype(np.complex128))
    a = 0.5 * (T[1] + 1j * T[2])
    b = 0.5 * (np.conj(T[1]) + 1j * np.conj(T[2]))
    z = state[1] + 1j * state[2]
    u = (np.conj(a) * z - b * np.conj(z)) / (abs(a) ** 2 - abs(b) ** 2)
    return math.atan2(u.imag, u.real), abs(u)


def _initial_cov() -> np.ndarray:
    return np.diag([10.0, 1.0, 1.0])


@njit(cache=True, nogil=True)
def _track_step(x, valid, pending, n_pending, scale, fs_w, blocks, prm, state, cov, omega_io,
                cov_upd, readout):
    """:meth:`PhaseTracker.update` + its read-outs in one call over preallocated buffers.

    ``x`` and ``valid`` are the new samples; ``pending`` (length ``q``) holds the first
    ``n_pending`` samples of the incomplete block; ``blocks`` receives the new ~1 kHz
    block means (at least ``(n_pending + len(x)) // q`` long). ``readout`` receives the
    phase at the last sample (radians), the amplitude (input units) and the frequency
    (Hz; ``fs_w`` is the block rate). Returns the new ``n_pending``.
    """
    q = pending.shape[0]
    k = n_pending
    m = 0
    for i in range(x.shape[0]):
        pending[k] = x[i] if valid[i] else math.nan
        k += 1
        if k == q:
            # numpy's block mean: the first sample plus the sum of the others, over q
            acc = 0.0
            for j in range(1, q):
                acc += pending[j]
            blocks[m] = (pending[0] + acc) / q / scale
            m += 1
            k = 0
    if m:
        _kalman_run(blocks[:m], prm, state, cov, omega_io, cov_upd)
    omega = omega_io[0]
    ph, amp = _corrected_phase(prm, state, cov_upd, omega)
    ph += omega * ((q - 1) / 2 + k) / q
    readout[0] = math.atan2(math.sin(ph), math.cos(ph))
    readout[1] = amp * scale
    readout[2] = omega * fs_w / (2.0 * math.pi)
    return k


def kalman_phase(
    window: np.ndarray,
    fs: float,
    mu_hz: float | None = None,
    params: KalmanParams = DEFAULT_PARAMS,
) -> tuple[float, float]:
    """Oscillator-Kalman phase and frequency at the last sample of ``window``.

    Parameters
    ----------
    window : ndarray, shape (n_times,)
        Spatially filtered EEG ending "now".
    fs : float
        Sampling rate, Hz.
    mu_hz : float, optional
        Individual mu peak frequency; estimated from the window when omitted.
    params : KalmanParams
        Model parameters.

    Returns
    -------
    phase_rad, freq_hz : float
    """
    if mu_hz is None:
        mu_hz = params.mu_hz
    q = decimation_factor(fs, params.work_hz)
    fs_w = fs / q
    y = block_mean_tail(np.asarray(window, dtype=np.float64), q)
    scale = float(np.std(y))
    if not scale > 0:
        raise ConfigError("window is constant or empty: no phase to estimate", field="window")
    y = (y - y.mean()) / scale
    prm = params.as_array(fs_w)
    # pass 1, backward in time at a fixed frequency: a converged state for the start of
    # the window (no start-up transient in pass 2) and, when mu_hz is not given, the
    # amplitude-weighted mean frequency over the part where the filter has settled
    probe = prm.copy()
    probe[5] = 0.0
    f_start = 10.5 if mu_hz is None else float(mu_hz)
    omega_io = np.array([2 * np.pi * f_start / fs_w, 1.0, 0.0, 0.0])
    state = np.zeros(3)
    cov = _initial_cov()
    swd, sw = _kalman_run(y[::-1].copy(), probe, state, cov, omega_io, cov.copy(), y.shape[0] // 3)
    if mu_hz is None:
        # two backward passes: the second one runs at the first one's estimate, which
        # removes most of the pull towards the starting frequency
        for _ in range(2):
            f0 = swd / sw * fs_w / (2 * np.pi) if sw > 0 else 10.5
            mu_hz = float(np.clip(f0, 7.0, 14.0))
            omega_io = np.array([2 * np.pi * mu_hz / fs_w, 1.0, 0.0, 0.0])
            state = np.zeros(3)
            cov = _initial_cov()
            swd, sw = _kalman_run(
                y[::-1].copy(), probe, state, cov, omega_io, cov.copy(), y.shape[0] // 3
            )
    # time reversal mirrors the oscillator: (x1, x2) -> (x1, -x2)
    state[2] = -state[2]
    cov[2, :2] = -cov[2, :2]
    cov[:2, 2] = -cov[:2, 2]
    # pass 2, forward from that state
    omega_io = np.array([2 * np.pi * mu_hz / fs_w, 1.0, state[1], state[2]])
    _kalman_run(y, prm, state, cov, omega_io, cov)
    freq = omega_io[0] * fs_w / (2 * np.pi)
    ph, _ = _corrected_phase(prm, state, cov, omega_io[0])
    phase = ph + 2 * np.pi * freq * (q - 1) / (2 * fs)
    return wrap_rad(phase), float(freq)


class PhaseTracker:
    """Real-time oscillator-Kalman phase tracker, updated with every incoming sample.

    Feed the spatially filtered signal chunk by chunk with :meth:`update` (marking
    blanked artifact samples as invalid, so that they are bridged by prediction); read
    :attr:`phase` (radians at the last sample fed, cosine convention), :attr:`freq_hz`
    and :attr:`amplitude` (same units as the input). Input is reduced to ~1 kHz by block
    means; the samples of an incomplete block wait for the next chunk and the phase is
    advanced to the last sample fed.

    Parameters
    ----------
    fs : float
        Input sampling rate, Hz.
    mu_hz : float
        Individual mu peak frequency, Hz (starting point of the frequency adaptation).
    scale_uv : float
        Typical amplitude of the input (e.g. its SD in µV); the model's noise levels
        are relative to it. Only the ratio matters, so a rough value is enough.
    params : KalmanParams
        Model parameters.
    """

    def __init__(
        self,
        fs: float,
        mu_hz: float = 10.5,
        scale_uv: float = 10.0,
        params: KalmanParams = DEFAULT_PARAMS,
    ):
        if not fs > 0:
            raise ConfigError(f"must be positive, got {fs!r}", field="fs")
        if not 4.0 <= mu_hz <= 30.0:
            raise ConfigError(f"must be in 4–30 Hz, got {mu_hz!r}", field="mu_hz")
        self.fs = float(fs)
        self.q = decimation_factor(fs, params.work_hz)
        self.fs_w = self.fs / self.q
        self._prm = params.as_array(self.fs_w)
        self._scale = float(scale_uv)
        self._state = np.zeros(3)
        self._cov = _initial_cov()
        self._cov_upd = _initial_cov()
        self._omega = np.array([2 * np.pi * mu_hz / self.fs_w, 1.0, 0.0, 0.0])
        self._pending = np.zeros(self.q)
        self._n_pending = 0
        self._blocks = np.zeros(64)
        #: After :meth:`step`: phase (rad), amplitude (input units), frequency (Hz).
        self.readout = np.full(3, np.nan)

    def update(self, samples: np.ndarray, valid: np.ndarray | None = None) -> float:
        """Feed new samples (1-D); return the phase at the last one.

        Parameters
        ----------
        samples : ndarray, shape (n,)
            New samples, input units.
        valid : ndarray of bool, shape (n,), optional
            False where a sample carries no information (blanked TMS artifact); the
            tracker then only predicts (the oscillator keeps turning at its frequency),
            for every ~1 kHz block that contains such a sample. NaN samples count as
            invalid too.
        """
        x = np.array(samples, dtype=np.float64).ravel()
        if valid is not None:
            x[~np.asarray(valid, dtype=bool).ravel()] = np.nan
        if self.q == 1:
            y = x / self._scale
        else:
            buf = np.concatenate((self._pending[: self._n_pending], x))
            n_full = (buf.shape[0] // self.q) * self.q
            y = buf[:n_full].reshape(-1, self.q).mean(axis=1) / self._scale
            rest = buf.shape[0] - n_full
            self._pending[:rest] = buf[n_full:]
            self._n_pending = rest
        if y.shape[0]:
            _kalman_run(y, self._prm, self._state, self._cov, self._omega, self._cov_upd)
        return self.phase

    def step(self, samples: np.ndarray, valid: np.ndarray) -> None:
        """Allocation-free :meth:`update` for a real-time loop (one ``nogil`` kernel call).

        Same estimate as :meth:`update`; afterwards :attr:`readout` holds the phase at
        the last sample (radians), the amplitude (input units) and the frequency (Hz),
        so a loop reads them without recomputing.

        Parameters
        ----------
        samples : ndarray of float64, shape (n,)
            New samples, input units (C-contiguous).
        valid : ndarray of bool, shape (n,)
            False where a sample carries no information (bridged by prediction).
        """
        n_new = (self._n_pending + samples.shape[0]) // self.q
        if self._blocks.shape[0] < n_new:
            self._blocks = np.zeros(max(n_new, 2 * self._blocks.shape[0]))
        self._n_pending = _track_step(samples, valid, self._pending, self._n_pending,
                                      self._scale, self.fs_w, self._blocks, self._prm,
                                      self._state, self._cov, self._omega, self._cov_upd,
                                      self.readout)

    def time_to_phase(self, target_rad: float) -> float:
        """Seconds from the last sample fed until the phase next reaches ``target_rad``.

        Extrapolated at the current frequency estimate; in ``[0, 1 / freq_hz)``.
        """
        return float(((target_rad - self.phase) % (2 * np.pi)) / (2 * np.pi * self.freq_hz))

    @property
    def freq_hz(self) -> float:
        """Current mu frequency estimate, Hz."""
        return float(self._omega[0] * self.fs_w / (2 * np.pi))

    @property
    def amplitude(self) -> float:
        """Current oscillator amplitude, input units."""
        _, amp = _corrected_phase(self._prm, self._state, self._cov_upd, self._omega[0])
        return float(amp * self._scale)

    @property
    def phase(self) -> float:
        """Phase at the last sample fed (radians, cosine convention)."""
        # the last completed block's mean sits (q - 1)/2 samples before its end, and
        # pending samples lie beyond it
        lag = (self.q - 1) / 2 + self._n_pending
        ph, _ = _corrected_phase(self._prm, self._state, self._cov_upd, self._omega[0])
        ph += self._omega[0] * lag / self.q
        return wrap_rad(ph)


# ---------------------------------------------------------------- fitted Kalman (SSPE)
@njit(cache=True, nogil=True)
def _kalman_nll(y, prm, omega):
    """Negative log-likelihood (per sample) of ``y`` under the oscillator model at a fixed
    frequency ``omega`` (rad/sample), from the Kalman filter's innovations (scalar form
    of the symmetric 3 × 3 covariance: no allocation in the loop)."""
    r, rho, q_x, q_s, r_v = prm[0], prm[1], prm[2], prm[3], prm[4]
    c = r * math.cos(omega)
    s = r * math.sin(omega)
    cc, ss, cs = c * c, s * s, c * s
    p00 = q_s / max(1.0 - rho * rho, 1e-9)
    p01 = p02 = p12 = 0.0
    p11 = p22 = 1.0
    m0 = m1 = m2 = 0.0
    nll = 0.0
    for n in range(y.shape[0]):
        # predict
        m0 = rho * m0
        m1, m2 = c * m1 - s * m2, s * m1 + c * m2
        n00 = rho * rho * p00 + q_s
        n01 = rho * (c * p01 - s * p02)
        n02 = rho * (s * p01 + c * p02)
        n11 = cc * p11 - 2.0 * cs * p12 + ss * p22 + q_x
        n22 = ss * p11 + 2.0 * cs * p12 + cc * p22 + q_x
        n12 = cs * p11 + (cc - ss) * p12 - cs * p22
        # update with y = s + x1 + v
        h0 = n00 + n01
        h1 = n01 + n11
        h2 = n02 + n12
        S = h0 + h1 + r_v
        e = y[n] - m0 - m1
        m0 += h0 / S * e
        m1 += h1 / S * e
        m2 += h2 / S * e
        p00 = n00 - h0 * h0 / S
        p01 = n01 - h0 * h1 / S
        p02 = n02 - h0 * h2 / S
        p11 = n11 - h1 * h1 / S
        p12 = n12 - h1 * h2 / S
        p22 = n22 - h2 * h2 / S
        nll += 0.5 * (math.log(S) + e * e / S)
    return nll / y.shape[0]


def fit_kalman(rest: np.ndarray, fs: float, mu_hz: float | None = None,
               max_s: float = 10.0) -> KalmanParams:
    """Fit the oscillator model to a resting recording (per subject, before the session).

    Parameters
    ----------
    rest : ndarray, shape (n_times,)
        Spatially filtered resting EEG (e.g. Hjorth C3), ≥ 4 s.
    fs : float
        Sampling rate, Hz.
    mu_hz : float, optional
        The subject's mu peak (default :func:`estimate_mu_peak` of ``rest``); the
        oscillator is held at it — left free, the likelihood moves the oscillator to
        wherever the 1/f background has most power, below the mu band.
    max_s : float
        Use at most the last this many seconds (cost is linear in it).

    Returns
    -------
    KalmanParams
        Maximum-likelihood ``bw_hz`` (0.2–4 Hz), ``slow_hz``, ``slow_var`` and
        ``obs_var`` at the mu peak ``mu_hz``; ``freq_tau_s`` and ``work_hz`` as the
        defaults.
    """
    from scipy.optimize import minimize

    x = np.asarray(rest, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 4 * fs or not np.all(np.isfinite(x)):
        raise ConfigError("needs a finite 1-D resting recording of at least 4 s",
                          field="rest")
    f0 = estimate_mu_peak(x, fs) if mu_hz is None else float(mu_hz)
    d = DEFAULT_PARAMS
    q = decimation_factor(fs, d.work_hz)
    fs_w = fs / q
    y = block_mean_tail(x[-int(max_s * fs):], q)
    y = (y - y.mean()) / y.std()

    def unpack(v):
        bw, slow, svar, ovar = np.exp(v).tolist()
        return KalmanParams(bw, slow, svar, ovar, d.freq_tau_s, d.work_hz, f0)

    omega = 2 * math.pi * f0 / fs_w

    def cost(v):
        if not (0.2 <= math.exp(v[0]) <= 4.0 and 0.05 <= math.exp(v[1]) <= 5.0
                and 1e-3 <= math.exp(v[2]) <= 1e4 and 1e-3 <= math.exp(v[3]) <= 1e4):
            return 1e6
        return _kalman_nll(y, unpack(v).as_array(fs_w), omega)

    v0 = np.log([d.bw_hz, d.slow_hz, d.slow_var, d.obs_var])
    simplex = np.vstack([v0, v0 + 0.5 * np.eye(4)])  # steps of x1.65 in every parameter
    res = minimize(cost, v0, method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-6, "maxfev": 600,
                            "initial_simplex": simplex})
    return unpack(res.x)


# ---------------------------------------------------------------- ETP (Shirinpour 2020)
class EtpModel:
    """Educated Temporal Prediction, as fitted by :func:`fit_etp`.

    Parameters
    ----------
    period_s : float
        Bias-corrected mu period used for prediction, s.
    median_period_s : float
        Median interval between mu peaks of the training recording, s.
    """

    def __init__(self, period_s: float, median_period_s: float):
        self.period_s = float(period_s)
        self.median_period_s = float(median_period_s)

    def __repr__(self) -> str:
        return (f"EtpModel(period_s={self.period_s:.5f}, "
                f"median_period_s={self.median_period_s:.5f})")


def _etp_filtered(x: np.ndarray, fs_w: float) -> np.ndarray:
    b = fir_bandpass(ZRENNER_2018.fir_order, ZRENNER_2018.band_hz, fs_w)
    return filtfilt(b, [1.0], x - x.mean())


def _peaks(y: np.ndarray) -> np.ndarray:
    """Indices of strict local maxima above zero."""
    k = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & (y[1:-1] > 0)) + 1
    return k


def _etp_last_peak(x_w: np.ndarray, fs_w: float) -> tuple[int, np.ndarray] | None:
    """Samples from the last usable peak to the end of the window (working rate)."""
    y = _etp_filtered(x_w, fs_w)
    guard = ZRENNER_2018.fir_order // 2
    k = _peaks(y[: y.shape[0] - guard])
    if k.size == 0:
        return None
    return y.shape[0] - 1 - int(k[-1]), y


def etp_phase(window: np.ndarray, fs: float, model: EtpModel | None = None,
              mu_hz: float | None = None) -> tuple[float, float]:
    """ETP phase (and the frequency it predicts with) at the last sample of ``window``.

    Parameters
    ----------
    window : ndarray, shape (n_times,)
        Spatially filtered EEG ending "now" (500 ms recommended).
    fs : float
        Sampling rate, Hz.
    model : EtpModel, optional
        Fitted on a training recording (:func:`fit_etp`); else the period is
        ``1 / mu_hz`` or, without that, the window's own median peak interval.
    mu_hz : float, optional
        Mu frequency when there is no model.

    Returns
    -------
    phase_rad, freq_hz : float
    """
    q = decimation_factor(fs, WORK_HZ)
    fs_w = fs / q
    x = block_mean_tail(np.asarray(window, dtype=np.float64), q)
    if x.shape[0] <= 3 * (ZRENNER_2018.fir_order + 1):
        raise ConfigError(f"window too short for etp: {x.shape[0]} samples at {fs_w:g} Hz, "
                          f"need > {3 * (ZRENNER_2018.fir_order + 1)} (≈ 400 ms)",
                          field="window")
    found = _etp_last_peak(x, fs_w)
    if model is not None:
        period = model.period_s
    elif mu_hz is not None:
        period = 1.0 / float(mu_hz)
    else:
        k = _peaks(found[1]) if found is not None else np.zeros(0)
        period = float(np.median(np.diff(k))) / fs_w if k.size >= 2 else 1 / 10.5
    if found is None:
        return 0.0, 1.0 / period
    since = found[0]
    # the block mean delays "now" by (q - 1) / 2 input samples
    t = since / fs_w + (q - 1) / (2 * fs)
    return wrap_rad(2 * np.pi * t / period), 1.0 / period


def fit_etp(rest: np.ndarray, fs: float, window_s: float = 0.5, n_windows: int = 200,
            seed: int = 0) -> EtpModel:
    """Train ETP on a resting recording: median peak interval, then its bias correction.

    Parameters
    ----------
    rest : ndarray, shape (n_times,)
        Spatially filtered resting EEG, ≥ 10 s (Shirinpour et al. trained on ~90 s).
    fs : float
        Sampling rate, Hz.
    window_s : float
        Real-time window length the model will be used with, s.
    n_windows : int
        Training windows for the bias correction (random end points, seeded).
    seed : int
        Seed of the window end points.

    Returns
    -------
    EtpModel
    """
    x = np.asarray(rest, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 10 * fs or not np.all(np.isfinite(x)):
        raise ConfigError("needs a finite 1-D resting recording of at least 10 s",
                          field="rest")
    q = decimation_factor(fs, WORK_HZ)
    fs_w = fs / q
    xw = block_mean_tail(x, q)
    y = _etp_filtered(xw, fs_w)
    truth = np.angle(hilbert(y))
    k = _peaks(y)
    iv = np.diff(k) / fs_w
    iv = iv[(iv > 1 / 14.0) & (iv < 1 / 7.0)]  # one mu cycle, not a skipped/split peak
    if iv.size < 5:
        raise ConfigError("too few mu peaks in the training recording", field="rest")
    median = float(np.median(iv))
    n_win = int(round(window_s * fs_w))
    rng = np.random.default_rng(seed)
    ends = rng.integers(n_win + 200, xw.shape[0] - 200, n_windows)
    since = []
    for e in ends:
        found = _etp_last_peak(xw[e - n_win + 1 : e + 1], fs_w)
        since.append(np.nan if found is None else found[0])
    since = np.asarray(since) / fs_w
    ok = np.isfinite(since)
    periods = median * np.linspace(0.8, 1.25, 91)
    score = [np.mean(np.cos(2 * np.pi * since[ok] / T - truth[ends[ok]])) for T in periods]
    return EtpModel(float(periods[int(np.argmax(score))]), median)


# ---------------------------------------------------------------- public API
def _check_window(window, fs) -> np.ndarray:
    x = np.asarray(window, dtype=np.float64)
    if x.ndim != 1:
        raise ConfigError(f"must be 1-D (n_times,), got shape {x.shape}", field="window")
    if not np.all(np.isfinite(x)):
        raise ConfigError("contains NaN or inf", field="window")
    if not (isinstance(fs, int | float | np.number) and fs > 0):
        raise ConfigError(f"must be a positive sampling rate in Hz, got {fs!r}", field="fs")
    if x.shape[0] < 0.2 * fs:
        raise ConfigError(
            f"has {x.shape[0]} samples ({1000 * x.shape[0] / fs:.0f} ms); need >= 200 ms "
            "(500 ms recommended)",
            field="window",
        )
    return x


def phase_and_freq(
    window: np.ndarray,
    fs: float,
    method: str = "kalman",
    mu_hz: float | None = None,
    model: KalmanParams | EtpModel | PhastimateParams | None = None,
) -> tuple[float, float]:
    """Phase (radians) at the last sample and the mu frequency (Hz) by ``method``.

    ``model`` is a per-subject fit: :class:`KalmanParams` from :func:`fit_kalman` for
    ``"kalman"``, :class:`EtpModel` from :func:`fit_etp` for ``"etp"``,
    :class:`~labkit.phastimate.PhastimateParams` from :func:`fit_phastimate` for
    ``"phastimate"`` (required there).
    """
    x = _check_window(window, fs)
    if method == "kalman":
        if model is not None and not isinstance(model, KalmanParams):
            raise ConfigError("must be KalmanParams (fit_kalman) for 'kalman'", field="model")
        return kalman_phase(x, float(fs), mu_hz, model or DEFAULT_PARAMS)
    if method == "zrenner-ar":
        if model is not None:
            raise ConfigError("must be None for 'zrenner-ar' (the fixed 2018 set); fitted "
                              "phastimate parameters go with method='phastimate'",
                              field="model")
        return zrenner_ar_phase(x, float(fs))
    if method == "phastimate":
        if not isinstance(model, PhastimateParams):
            raise ConfigError("must be PhastimateParams for 'phastimate': fit them on a resting "
                              "recording with fit_phastimate (the published 2018 set is "
                              "method='zrenner-ar')", field="model")
        return phastimate_phase(x, float(fs), model)
    if method == "etp":
        if model is not None and not isinstance(model, EtpModel):
            raise ConfigError("must be an EtpModel (fit_etp) for 'etp'", field="model")
        return etp_phase(x, float(fs), model, mu_hz)
    raise ConfigError(f"must be one of {list(METHODS)}, got {method!r}", field="method")


def phase_now(
    window: np.ndarray,
    fs: float,
    method: str = "kalman",
    mu_hz: float | None = None,
    model: KalmanParams | EtpModel | PhastimateParams | None = None,
) -> float:
    """Instantaneous mu phase at the last sample of ``window``.

    Parameters
    ----------
    window : ndarray, shape (n_times,)
        Spatially filtered EEG (e.g. Hjorth C3), ending "now"; 500 ms recommended,
        at least 200 ms (``"zrenner-ar"`` uses the newest 500 samples at the ~1 kHz
        working rate, ``"phastimate"`` the fitted ``window``).
    fs : float
        Sampling rate, Hz.
    method : {"kalman", "zrenner-ar", "phastimate", "etp"}
        Estimator (see the module docstring); ``"zrenner-ar"`` is the published baseline.
    mu_hz : float, optional
        Individual mu peak frequency (``"kalman"``, ``"etp"`` without a model);
        estimated when omitted.
    model : KalmanParams | EtpModel | PhastimateParams, optional
        Per-subject fit from a resting calibration (:func:`fit_kalman`, :func:`fit_etp`,
        :func:`fit_phastimate`; the last is required for ``"phastimate"``).

    Returns
    -------
    float
        Phase in radians, ``(-pi, pi]``, cosine convention (0 = peak, ±pi = trough).
    """
    return phase_and_freq(window, fs, method, mu_hz, model)[0]


def time_to_phase(
    window: np.ndarray,
    fs: float,
    target_rad: float,
    method: str = "kalman",
    mu_hz: float | None = None,
    model: KalmanParams | EtpModel | PhastimateParams | None = None,
) -> float:
    """Seconds from the last sample of ``window`` until the phase next reaches ``target_rad``.

    The phase is extrapolated at the estimated mu frequency, so the result lies in
    ``[0, 1 / freq)``.

    Parameters
    ----------
    window, fs, method, mu_hz, model
        As for :func:`phase_now`.
    target_rad : float
        Target phase, radians, cosine convention (``pi`` = trough, 0 = peak).

    Returns
    -------
    float
        Time to the target phase, s.
    """
    phase, freq = phase_and_freq(window, fs, method, mu_hz, model)
    return float(((target_rad - phase) % (2 * np.pi)) / (2 * np.pi * freq))


def warm_up() -> None:
    """Compile the phase kernels on a tiny input."""
    prm = DEFAULT_PARAMS.as_array(1000.0)
    _kalman_run(
        np.zeros(4),
        prm,
        np.zeros(3),
        _initial_cov(),
        np.array([0.06, 1.0, 0.0, 0.0]),
        _initial_cov(),
    )
    _corrected_phase(prm, np.ones(3), _initial_cov(), 0.06)
    _track_step(np.zeros(4), np.ones(4, np.bool_), np.zeros(2), 0, 1.0, 1000.0, np.zeros(2),
                prm, np.zeros(3), _initial_cov(), np.array([0.06, 1.0, 0.0, 0.0]),
                _initial_cov(), np.zeros(3))
    _warm_up_phastimate()
    _kalman_nll(np.zeros(4), prm, 0.06)


def estimate_mu_peak(
    data: np.ndarray, fs: float, band_hz: tuple[float, float] = (8.0, 13.0)
) -> float:
    """Individual mu peak frequency from a resting recording (≥ 20 s recommended).

    Welch spectrum (2 s Hann segments, 50 % overlap); the 1/f background is removed by a
    straight-line fit of log power against log frequency over 2–40 Hz excluding 7–14 Hz;
    the peak of the residual inside ``band_hz`` is refined by a parabola through the
    three highest bins.

    Parameters
    ----------
    data : ndarray, shape (n_times,)
        Spatially filtered EEG (e.g. Hjorth C3).
    fs : float
        Sampling rate, Hz.
    band_hz : tuple of float
        Search band, Hz.

    Returns
    -------
    float
        Peak frequency, Hz.
    """
    from scipy.signal import welch

    x = np.asarray(data, dtype=np.float64)
    nper = int(2 * fs)
    if x.ndim != 1 or x.shape[0] < 2 * nper:
        raise ConfigError(
            f"needs a 1-D recording of at least 4 s ({2 * nper} samples), got shape {x.shape}",
            field="data",
        )
    f, p = welch(x, fs, nperseg=nper)
    fit = (f >= 2) & (f <= 40) & ((f < 7) | (f > 14))
    coef = np.polyfit(np.log(f[fit]), np.log(p[fit]), 1)
    resid = np.log(p[1:]) - np.polyval(coef, np.log(f[1:]))
    f = f[1:]
    inb = np.flatnonzero((f >= band_hz[0]) & (f <= band_hz[1]))
    k = inb[np.argmax(resid[inb])]
    if 0 < k < f.shape[0] - 1:
        y0, y1, y2 = resid[k - 1], resid[k], resid[k + 1]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den != 0 else 0.0
        return float(f[k] + np.clip(shift, -0.5, 0.5) * (f[1] - f[0]))
    return float(f[k])
