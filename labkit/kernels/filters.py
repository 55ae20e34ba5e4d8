"""Causal IIR filtering (second-order sections) with state carried across chunks.

The recursion is scipy's transposed direct form II, so :class:`SosFilter` fed chunk by
chunk gives the same numbers as ``scipy.signal.sosfilt(sos, x, zi=zi)`` with ``zi``
carried from call to call, and :func:`sosfilt` the same as one ``sosfilt`` call.
State layout here is ``(n_channels, n_sections, 2)``; scipy's is ``(n_sections,
n_channels, 2)`` — :attr:`SosFilter.zi_scipy` converts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labkit.errors import ConfigError
from labkit.kernels._checks import check_data, check_int

__all__ = ["SosFilter", "check_sos", "sosfilt"]


@njit(cache=True, nogil=True)
def _sosfilt(sos, x, zi):
    """Filter ``x`` (n_channels, n_times) in place; ``zi`` (n_ch, n_sec, 2) updated."""
    n_ch, n_t = x.shape
    n_sec = sos.shape[0]
    for c in range(n_ch):
        for s in range(n_sec):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            z0 = zi[c, s, 0]
            z1 = zi[c, s, 1]
            for i in range(n_t):
                xi = x[c, i]
                yi = b0 * xi + z0
                z0 = b1 * xi - a1 * yi + z1
                z1 = b2 * xi - a2 * yi
                x[c, i] = yi
            zi[c, s, 0] = z0
            zi[c, s, 1] = z1


def check_sos(sos) -> np.ndarray:
    """Return ``sos`` as a C-contiguous (n_sections, 6) float64 array with a0 == 1."""
    arr = np.ascontiguousarray(np.asarray(sos, dtype=np.float64))
    if arr.ndim != 2 or arr.shape[1] != 6 or arr.shape[0] < 1:
        raise ConfigError(f"must have shape (n_sections, 6), got {arr.shape}", field="sos")
    if not np.allclose(arr[:, 3], 1.0):
        raise ConfigError("a0 of every section must be 1 (normalise the filter)", field="sos")
    return arr


def sosfilt(sos, data: np.ndarray, zi: np.ndarray | None = None) -> np.ndarray:
    """Causal SOS filter of a whole array (offline form); returns a new array.

    Parameters
    ----------
    sos : array_like, shape (n_sections, 6)
        Second-order sections (as from ``scipy.signal.butter(..., output="sos")``).
    data : ndarray, shape (n_channels, n_times), float64
        Input; not modified.
    zi : ndarray, shape (n_channels, n_sections, 2), optional
        Initial state (zeros by default); updated in place when given.

    Returns
    -------
    ndarray, shape (n_channels, n_times)
        Filtered data.
    """
    sos = check_sos(sos)
    check_data(np.ascontiguousarray(data), "data")
    out = np.array(data, dtype=np.float64, order="C", copy=True)
    if zi is None:
        zi = np.zeros((out.shape[0], sos.shape[0], 2))
    _sosfilt(sos, out, zi)
    return out


class SosFilter:
    """Real-time causal IIR filter: one state per channel carried across chunks.

    Parameters
    ----------
    sos : array_like, shape (n_sections, 6)
        Second-order sections.
    n_channels : int
        Channels per chunk.
    """

    def __init__(self, sos, n_channels: int):
        self.sos = check_sos(sos)
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.zi = np.zeros((self.n_channels, self.sos.shape[0], 2))

    def reset(self, level: np.ndarray | None = None) -> None:
        """Zero the state, or set it to the steady state for a constant input ``level``."""
        self.zi[:] = 0.0
        if level is not None:
            from scipy.signal import sosfilt_zi

            base = sosfilt_zi(self.sos)  # (n_sections, 2) for a unit step
            self.zi[:] = base[None, :, :] * np.asarray(level, float).reshape(-1, 1, 1)

    @property
    def zi_scipy(self) -> np.ndarray:
        """The state in scipy's layout ``(n_sections, n_channels, 2)``."""
        return np.ascontiguousarray(self.zi.transpose(1, 0, 2))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter ``chunk`` (n_channels, n_times, float64, C-contiguous) in place."""
        check_data(chunk, "chunk")
        if chunk.shape[0] != self.n_channels:
            raise ConfigError(
                f"has {chunk.shape[0]} channels, the filter was built for {self.n_channels}",
                field="chunk",
            )
        _sosfilt(self.sos, chunk, self.zi)
        return chunk
