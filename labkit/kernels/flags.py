"""Artifact flags: amplitude and gradient thresholds, per sample, any channel.

``amplitude``: ``|x[c, t]| > amplitude_uv`` for any channel ``c``.
``gradient``: ``|x[c, t] - x[c, t-1]| > gradient_uv`` (µV per sample) for any channel;
the first sample of a stream compares with nothing and is never gradient-flagged,
later chunks compare with the last sample of the previous chunk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labkit.errors import ConfigError
from labkit.kernels._checks import check_data

__all__ = ["Flagger", "amplitude_flags", "gradient_flags"]


@njit(cache=True, nogil=True)
def _flags(x, amp, grad, prev, have_prev, out_amp, out_grad):
    n_ch, n_t = x.shape
    for i in range(n_t):
        fa = False
        fg = False
        for c in range(n_ch):
            v = x[c, i]
            if abs(v) > amp:
                fa = True
            if i > 0:
                if abs(v - x[c, i - 1]) > grad:
                    fg = True
            elif have_prev and abs(v - prev[c]) > grad:
                fg = True
        out_amp[i] = fa
        out_grad[i] = fg
    if n_t > 0:
        for c in range(n_ch):
            prev[c] = x[c, n_t - 1]


def _check_threshold(value: float, name: str) -> float:
    if not (value > 0):
        raise ConfigError(f"must be a positive number of µV, got {value!r}", field=name)
    return float(value)


def amplitude_flags(data: np.ndarray, amplitude_uv: float) -> np.ndarray:
    """Boolean (n_times,) flags of samples where any channel exceeds ``amplitude_uv``."""
    f = Flagger(data.shape[0], amplitude_uv=amplitude_uv)
    return f.process(data)[0].copy()


def gradient_flags(data: np.ndarray, gradient_uv: float) -> np.ndarray:
    """Boolean (n_times,) flags where any channel jumps by more than ``gradient_uv``."""
    f = Flagger(data.shape[0], gradient_uv=gradient_uv)
    return f.process(data)[1].copy()


class Flagger:
    """Real-time amplitude/gradient flags; the previous sample is carried across chunks.

    Parameters
    ----------
    n_channels : int
        Channels per chunk.
    amplitude_uv : float, optional
        Absolute amplitude threshold (µV); ``inf`` (off) by default.
    gradient_uv : float, optional
        Sample-to-sample jump threshold (µV per sample); ``inf`` (off) by default.
    """

    def __init__(self, n_channels: int, amplitude_uv: float = np.inf, gradient_uv: float = np.inf):
        self.n_channels = int(n_channels)
        self.amplitude_uv = _check_threshold(amplitude_uv, "amplitude_uv")
        self.gradient_uv = _check_threshold(gradient_uv, "gradient_uv")
        self._prev = np.zeros(self.n_channels)
        self._have_prev = False
        self._a = np.zeros(0, np.bool_)
        self._g = np.zeros(0, np.bool_)

    def process(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(amplitude_flags, gradient_flags)`` for ``chunk``; buffers are reused."""
        check_data(chunk, "chunk")
        n = chunk.shape[1]
        if self._a.shape[0] != n:
            self._a = np.zeros(n, np.bool_)
            self._g = np.zeros(n, np.bool_)
        _flags(
            chunk,
            self.amplitude_uv,
            self.gradient_uv,
            self._prev,
            self._have_prev,
            self._a,
            self._g,
        )
        self._have_prev = self._have_prev or n > 0
        return self._a, self._g
