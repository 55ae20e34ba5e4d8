"""Decimation: causal anti-alias IIR filter, then keep every ``q``-th sample.

The kept samples are those whose absolute index is a multiple of ``q`` (counted from the
first sample given), so a chunked stream decimates exactly like the whole array whatever
the chunk sizes. Default anti-alias filter: 8th-order Butterworth low-pass at 0.8 of the
output Nyquist frequency (the same cut-off rule as ``scipy.signal.decimate``; Butterworth
instead of Chebyshev I to keep the pass band flat for phase work).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.signal import butter

from labkit.kernels._checks import check_data, check_int
from labkit.kernels.filters import _sosfilt, check_sos

__all__ = ["Decimator", "antialias_sos", "decimate"]


@njit(cache=True, nogil=True)
def _pick(x, q, phase, out):
    """Copy samples with ``(phase + i) % q == 0`` into ``out``; return the count."""
    n_ch, n_t = x.shape
    k = 0
    for i in range(n_t):
        if (phase + i) % q == 0:
            for c in range(n_ch):
                out[c, k] = x[c, i]
            k += 1
    return k


def antialias_sos(q: int, order: int = 8) -> np.ndarray:
    """Butterworth low-pass SOS at ``0.8 / q`` of the input Nyquist frequency."""
    q = check_int(q, "q", minimum=1)
    if q == 1:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    return butter(order, 0.8 / q, output="sos")


def decimate(data: np.ndarray, q: int, sos=None) -> np.ndarray:
    """Offline form: anti-alias filter (causal) and keep samples 0, q, 2q, …

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times), float64
        Input; not modified.
    q : int
        Decimation factor.
    sos : array_like, optional
        Anti-alias filter; :func:`antialias_sos` by default.

    Returns
    -------
    ndarray, shape (n_channels, ceil(n_times / q))
    """
    dec = Decimator(data.shape[0], q, sos)
    return dec.process(np.array(data, dtype=np.float64, order="C", copy=True)).copy()


class Decimator:
    """Real-time decimator with filter state and sample phase carried across chunks.

    Parameters
    ----------
    n_channels : int
        Channels per chunk.
    q : int
        Decimation factor.
    sos : array_like, optional
        Anti-alias filter; :func:`antialias_sos` by default.
    """

    def __init__(self, n_channels: int, q: int, sos=None):
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.q = check_int(q, "q", minimum=1)
        self.sos = check_sos(antialias_sos(self.q) if sos is None else sos)
        self.zi = np.zeros((self.n_channels, self.sos.shape[0], 2))
        self.n_seen = 0
        self._out = np.empty((self.n_channels, 0))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter ``chunk`` in place and return the kept samples (buffer reused next call)."""
        check_data(chunk, "chunk")
        n = chunk.shape[1]
        _sosfilt(self.sos, chunk, self.zi)
        need = n // self.q + 1
        if self._out.shape[1] < need:
            self._out = np.empty((self.n_channels, need))
        k = _pick(chunk, self.q, self.n_seen % self.q, self._out)
        self.n_seen += n
        return self._out[:, :k]
