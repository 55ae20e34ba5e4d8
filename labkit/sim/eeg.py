"""Synthetic motor-cortex EEG with a known mu phase: C3 and its four Hjorth neighbours.

Pure and seeded (numpy/scipy only, no clock, no I/O): the LSL amplifier in
``labkit.sim.amplifier`` pulls chunks with :meth:`MuEEGSource.generate` and asks
:meth:`MuEEGSource.true_phase` for the ground truth at each pulse.

Model (all channels in µV)::

    x_ch[n] = g_ch * mu[n] + pink_ch[n] + c * pink_common[n] + white_ch[n] + artifact_ch[n]
    mu[n]   = A * env(t) * cos(phi(t)),      t = n / fs

* ``phi(t) = 2*pi*mu_hz*t + phi0 + sum_k (a_k / nu_k) * sin(2*pi*nu_k*t + theta_k)``: the
  instantaneous frequency wanders around ``mu_hz`` as a sum of slow sinusoids
  (``nu_k`` log-spaced 0.1–2 Hz, SD ``mu_hz_sd``). ``phi`` is a closed-form function of
  the sample index, so the true phase is known exactly at any sample, past or future.
* ``env(t) = exp(s*g(t) - s**2)`` with ``g`` a unit-variance sum of slow random sinusoids
  (0.1–1.5 Hz) gives waxing-and-waning bursts (``burstiness = s``; ``E[env**2] = 1``).
* Mu spatial gains: C3 1.0, each neighbour ``neighbour_gain`` (0.3), so the Hjorth
  derivation keeps ``1 - neighbour_gain`` of the mu.
* Background: independent 1/f ("pink") noise per channel (one white input through a
  parallel bank of first-order low-passes with corners one octave apart, 0.25 Hz…fs/2;
  close to 1/f from ~1 Hz up),
  a common pink component (far field, cancelled by the Hjorth montage) and white sensor
  noise.
* ``snr_db`` is defined on the Hjorth derivation ``C3 - 0.25*(FC1+FC5+CP1+CP5)`` in the
  8–13 Hz band: ``10*log10(mean mu power / background power in 8–13 Hz)``; the mu
  amplitude ``A`` is set from it analytically.

Phase convention: cosine, radians in ``(-pi, pi]``; 0 = positive peak of the mu
component at C3, ±pi = trough.

TMS artifact (:func:`tms_artifact`, :meth:`MuEEGSource.add_pulse`): a biphasic
spike (``peak_uv`` for 0.2 ms, then ``-0.6*peak_uv`` for 0.4 ms) followed by an
exponential decay (``decay_uv * exp(-t/decay_ms)``), scaled per channel: 1 at C3 (under
the coil), 0.3–0.7 at each Hjorth neighbour and 0.1–0.4 elsewhere (drawn from the seed).
Literature: 2–10 ms of large artifact plus decay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter

from labkit.errors import ConfigError

__all__ = ["CHANNELS", "MuEEGSource", "add_artifact", "tms_artifact"]

CHANNELS = ("C3", "FC1", "FC5", "CP1", "CP5")
_BAND_HZ = (8.0, 13.0)


def tms_artifact(
    fs: float,
    peak_uv: float = 10000.0,
    decay_uv: float = 400.0,
    decay_ms: float = 4.0,
    duration_ms: float = 40.0,
) -> np.ndarray:
    """One-channel TMS artifact template, sample 0 = pulse onset.

    Parameters
    ----------
    fs : float
        Sampling rate, Hz.
    peak_uv : float
        Height of the first spike phase, µV.
    decay_uv : float
        Amplitude of the exponential tail at onset, µV.
    decay_ms : float
        Time constant of the tail, ms.
    duration_ms : float
        Length of the template, ms.

    Returns
    -------
    ndarray, shape (n,)
        Artifact in µV.
    """
    n = max(int(round(duration_ms * fs / 1000.0)), 1)
    t_ms = np.arange(n) * 1000.0 / fs
    out = decay_uv * np.exp(-t_ms / decay_ms)
    out[t_ms < 0.2] += peak_uv
    out[(t_ms >= 0.2) & (t_ms < 0.6)] += -0.6 * peak_uv
    return out


def add_artifact(
    data: np.ndarray, onset: int, template: np.ndarray, gains: np.ndarray, offset: int = 0
) -> None:
    """Add ``gains[:, None] * template`` at absolute ``onset`` into ``data`` in place.

    ``data[:, 0]`` has absolute index ``offset``; parts outside ``data`` are skipped.
    """
    n = data.shape[1]
    lo = onset - offset
    s0 = max(0, -lo)
    s1 = min(template.shape[0], n - lo)
    if s1 > s0:
        data[:, lo + s0 : lo + s1] += np.outer(gains, template[s0:s1])


def _check_pos(value: float, name: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"must be a positive finite number, got {value!r}", field=name)
    return float(value)


class MuEEGSource:
    """Seeded, streamable synthetic EEG with a known mu phase at every sample.

    Parameters
    ----------
    seed : int
        Seed; the same seed gives the same signal, whatever the chunk sizes.
    fs : float
        Sampling rate, Hz (5000).
    mu_hz : float
        Individual mu peak frequency, Hz (8–13).
    snr_db : float
        Mu-to-background power ratio in the Hjorth derivation, 8–13 Hz band, dB.
    mu_hz_sd : float
        SD of the instantaneous-frequency wander, Hz.
    burstiness : float
        Log-SD of the mu envelope (0 = constant amplitude).
    background_uv : float
        RMS of each channel's own pink noise in 8–13 Hz, µV.
    common_gain : float
        Gain of the common (far-field) pink component relative to the per-channel one.
    white_uv : float
        RMS of white sensor noise per channel, µV.
    neighbour_gain : float
        Mu gain at each Hjorth neighbour relative to C3.
    channel_names : sequence of str
        Output channels; must contain C3, FC1, FC5, CP1, CP5 (extra names get background
        only).
    """

    def __init__(
        self,
        seed: int,
        fs: float = 5000.0,
        mu_hz: float = 10.5,
        snr_db: float = 0.0,
        *,
        mu_hz_sd: float = 0.5,
        burstiness: float = 0.7,
        background_uv: float = 3.0,
        common_gain: float = 2.0,
        white_uv: float = 0.5,
        neighbour_gain: float = 0.3,
        channel_names: Sequence[str] = CHANNELS,
    ):
        self.fs = _check_pos(fs, "fs")
        if not 8.0 <= mu_hz <= 13.0:
            raise ConfigError(f"must be in 8–13 Hz, got {mu_hz!r}", field="mu_hz")
        self.mu_hz = float(mu_hz)
        self.snr_db = float(snr_db)
        self.channel_names = list(channel_names)
        missing = [c for c in CHANNELS if c not in self.channel_names]
        if missing:
            raise ConfigError(
                f"must include {list(CHANNELS)}; missing {missing}", field="channel_names"
            )
        self.seed = seed
        rng = np.random.default_rng(seed)
        n_ch = len(self.channel_names)
        self.n_samples = 0

        # phase wander and envelope: closed-form sums of slow sinusoids
        k = 8
        self._nu_f = np.geomspace(0.1, 2.0, k)
        a = rng.standard_normal(k)
        self._a_f = a * mu_hz_sd * np.sqrt(2.0 / np.sum(a**2))  # SD of the sum = mu_hz_sd
        self._th_f = rng.uniform(0, 2 * np.pi, k)
        self._phi0 = rng.uniform(-np.pi, np.pi)
        self._nu_e = np.geomspace(0.1, 1.5, k)
        self._th_e = rng.uniform(0, 2 * np.pi, k)
        self._a_e = np.sqrt(2.0 / k) * np.ones(k)  # unit variance
        self.burstiness = float(burstiness)

        # mu spatial gains
        self.mu_gains = np.zeros(n_ch)
        self.mu_gains[self.channel_names.index("C3")] = 1.0
        for ch in CHANNELS[1:]:
            self.mu_gains[self.channel_names.index(ch)] = neighbour_gain
        g_eff = 1.0 - neighbour_gain

        # pink bank: AR(1) poles one octave apart; DC power of each ∝ 1/corner → ~1/f
        corners = 0.25 * 2.0 ** np.arange(64)
        corners = corners[corners < self.fs / 2]
        self._poles = np.exp(-2 * np.pi * corners / self.fs)
        w = (1 - self._poles) / np.sqrt(corners)
        band = self._band_power_ar1(self._poles, w)
        self._pink_w = w * background_uv / np.sqrt(band)
        self._common_gain = float(common_gain)
        self._white_uv = float(white_uv)
        self._zi = np.zeros((len(corners), n_ch + 1, 1))
        self._rng = rng

        # mu amplitude from the SNR on the Hjorth derivation
        white_band = white_uv**2 * 2 * (_BAND_HZ[1] - _BAND_HZ[0]) / self.fs
        bg_band = 1.25 * (background_uv**2 + white_band)
        self.mu_amplitude_uv = np.sqrt(2.0 * 10 ** (snr_db / 10.0) * bg_band) / g_eff

        self.artifact_template = tms_artifact(self.fs)
        # the electrode under the coil (C3) gets the full artifact, its neighbours less,
        # so that the Hjorth derivation does not cancel it
        self.artifact_gains = rng.uniform(0.1, 0.4, n_ch)
        self.artifact_gains[self.channel_names.index("C3")] = 1.0
        for ch in CHANNELS[1:]:
            self.artifact_gains[self.channel_names.index(ch)] = rng.uniform(0.3, 0.7)
        self._pulses: list[tuple[int, float]] = []

    def _band_power_ar1(self, poles: np.ndarray, weights: np.ndarray) -> float:
        """Power in 8–13 Hz of ``sum_k weights_k * AR1(poles_k)`` driven by one unit white."""
        f = np.linspace(*_BAND_HZ, 501)
        z = np.exp(-2j * np.pi * f / self.fs)
        # the sections share one white input, so their responses add coherently
        psd = np.abs(np.sum(weights[:, None] / (1 - poles[:, None] * z[None]), 0)) ** 2
        # one-sided power density = 2 * S(w) / fs per Hz
        return float(np.trapezoid(2.0 * psd / self.fs, f))

    # ----------------------------------------------------------------- ground truth
    def _phase_unwrapped(self, n: np.ndarray) -> np.ndarray:
        t = np.asarray(n, dtype=np.float64) / self.fs
        wander = np.sum(
            (self._a_f / self._nu_f)[:, None]
            * np.sin(2 * np.pi * self._nu_f[:, None] * t[None] + self._th_f[:, None]),
            axis=0,
        )
        return 2 * np.pi * self.mu_hz * t + self._phi0 + wander

    def true_phases(self, indices) -> np.ndarray:
        """True mu phase (radians, cosine convention, in (-pi, pi]) at absolute indices."""
        ph = self._phase_unwrapped(np.atleast_1d(indices))
        return np.angle(np.exp(1j * ph))

    def true_phase(self, sample_index: int) -> float:
        """True mu phase (radians, cosine convention) at absolute ``sample_index``."""
        return float(self.true_phases(np.array([sample_index]))[0])

    def envelope(self, indices) -> np.ndarray:
        """Mu envelope (relative, mean square 1) at absolute indices."""
        t = np.atleast_1d(np.asarray(indices, dtype=np.float64)) / self.fs
        g = np.sum(
            self._a_e[:, None]
            * np.sin(2 * np.pi * self._nu_e[:, None] * t[None] + self._th_e[:, None]),
            axis=0,
        )
        s = self.burstiness
        return np.exp(s * g - s**2)

    def mu(self, indices) -> np.ndarray:
        """Mu component at C3 (µV) at absolute indices (noise-free)."""
        idx = np.atleast_1d(indices)
        return self.mu_amplitude_uv * self.envelope(idx) * np.cos(self._phase_unwrapped(idx))

    # ----------------------------------------------------------------- streaming
    def add_pulse(self, sample_index: int, scale: float = 1.0) -> None:
        """Add a TMS artifact starting at absolute ``sample_index`` to future output."""
        self._pulses.append((int(sample_index), float(scale)))

    def generate(self, n_samples: int) -> np.ndarray:
        """Next ``n_samples`` of every channel, (n_channels, n_samples) float64 µV.

        Successive calls continue the same signal.
        """
        if n_samples < 0:
            raise ConfigError(f"must be >= 0, got {n_samples}", field="n_samples")
        n_ch = len(self.channel_names)
        if n_samples == 0:
            return np.zeros((n_ch, 0))
        start = self.n_samples
        idx = np.arange(start, start + n_samples)
        # drawn sample-major so that the stream does not depend on the chunk sizes
        noise = self._rng.standard_normal((n_samples, 2 * n_ch + 1)).T
        white = noise[: n_ch + 1]
        pink = np.zeros((n_ch + 1, n_samples))
        for k, p in enumerate(self._poles):
            y, self._zi[k] = lfilter([self._pink_w[k]], [1.0, -p], white, axis=1, zi=self._zi[k])
            pink += y
        sensor = self._white_uv * noise[n_ch + 1 :]
        out = pink[:n_ch] + self._common_gain * pink[n_ch] + sensor
        out += np.outer(self.mu_gains, self.mu(idx))
        end = start + n_samples
        n_art = self.artifact_template.shape[0]
        self._pulses = [(o, s) for o, s in self._pulses if o + n_art > start]
        for onset, scale in self._pulses:
            if onset < end:
                add_artifact(
                    out, onset, self.artifact_template, scale * self.artifact_gains, offset=start
                )
        self.n_samples = end
        return out
