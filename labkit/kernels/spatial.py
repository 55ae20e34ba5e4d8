"""Spatial filters: an arbitrary weight matrix, and the Hjorth (surface Laplacian) montage.

Hjorth (1975) / Zrenner (2018) mu montage: ``C3 - 0.25 * (FC1 + FC5 + CP1 + CP5)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from labkit.errors import ConfigError
from labkit.kernels._checks import check_data

__all__ = ["HJORTH_C3", "SpatialFilter", "apply_weights", "hjorth_weights"]

#: Centre and neighbours of the C3 Hjorth montage (Zrenner et al. 2018).
HJORTH_C3 = ("C3", ("FC1", "FC5", "CP1", "CP5"))


@njit(cache=True, nogil=True)
def _apply_weights(weights, x, out):
    """``out[:] = weights @ x`` without temporaries."""
    n_out, n_in = weights.shape
    n_t = x.shape[1]
    for o in range(n_out):
        for i in range(n_t):
            out[o, i] = 0.0
        for k in range(n_in):
            w = weights[o, k]
            if w == 0.0:
                continue
            for i in range(n_t):
                out[o, i] += w * x[k, i]


def hjorth_weights(
    channel_names: Sequence[str],
    center: str = HJORTH_C3[0],
    neighbours: Sequence[str] = HJORTH_C3[1],
) -> np.ndarray:
    """Weights (1, n_channels) of ``center - mean(neighbours)`` over ``channel_names``.

    Parameters
    ----------
    channel_names : sequence of str
        Names of the input channels, in order.
    center : str
        Centre electrode (default C3).
    neighbours : sequence of str
        Surrounding electrodes (default FC1, FC5, CP1, CP5), each weighted -1/n.

    Returns
    -------
    ndarray, shape (1, n_channels)
    """
    names = list(channel_names)
    missing = [ch for ch in (center, *neighbours) if ch not in names]
    if missing:
        raise ConfigError(
            f"channels {missing} are needed for the Hjorth montage; available: {names}",
            field="channel_names",
        )
    w = np.zeros((1, len(names)))
    w[0, names.index(center)] = 1.0
    for ch in neighbours:
        w[0, names.index(ch)] -= 1.0 / len(neighbours)
    return w


def apply_weights(weights: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Offline form: ``weights @ data`` (n_out, n_times) as a new array."""
    w = _check_weights(weights, data.shape[0])
    check_data(data)
    out = np.empty((w.shape[0], data.shape[1]))
    _apply_weights(w, data, out)
    return out


def _check_weights(weights, n_in: int) -> np.ndarray:
    w = np.ascontiguousarray(np.asarray(weights, dtype=np.float64))
    if w.ndim != 2 or w.shape[1] != n_in:
        raise ConfigError(
            f"must have shape (n_outputs, {n_in}) to match the data, got {w.shape}",
            field="weights",
        )
    return w


class SpatialFilter:
    """Real-time spatial filter with a preallocated output buffer.

    Parameters
    ----------
    weights : array_like, shape (n_outputs, n_channels)
        Rows are output channels.
    """

    def __init__(self, weights):
        w = np.asarray(weights, dtype=np.float64)
        self.weights = _check_weights(w, w.shape[-1] if w.ndim == 2 else -1)
        self._out = np.empty((self.weights.shape[0], 0))

    @classmethod
    def hjorth(cls, channel_names: Sequence[str], **kwargs) -> SpatialFilter:
        """A Hjorth filter over ``channel_names``; ``**kwargs`` go to :func:`hjorth_weights`."""
        return cls(hjorth_weights(channel_names, **kwargs))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Return ``weights @ chunk``; the returned buffer is reused by the next call."""
        check_data(chunk, "chunk")
        if chunk.shape[0] != self.weights.shape[1]:
            raise ConfigError(
                f"has {chunk.shape[0]} channels, weights expect {self.weights.shape[1]}",
                field="chunk",
            )
        if self._out.shape[1] != chunk.shape[1]:
            self._out = np.empty((self.weights.shape[0], chunk.shape[1]))
        _apply_weights(self.weights, chunk, self._out)
        return self._out
