"""Real-time cleaning chain: the artifact is blanked before any filter sees it.

Order per chunk: flags (optional auto-detection of pulses the controller did not
announce) → sample-and-hold blanking → spatial filter (optional) → causal IIR filter.
Blanking first keeps the multi-millivolt TMS artifact out of the filter state, where it
would otherwise ring for hundreds of milliseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labkit.kernels.artifact import Blanker, blanked
from labkit.kernels.filters import SosFilter
from labkit.kernels.flags import Flagger
from labkit.kernels.spatial import SpatialFilter

__all__ = ["CleaningChain"]


@njit(cache=True, nogil=True)
def _blank_rows_weighted(data, weights, starts, stops, n_seen, hold, y, valid):
    """Sample-and-hold blanking of inlet rows ``data`` (n_times, n_channels) followed by
    one spatial filter row ``weights``: ``y[i]`` and ``valid[i]`` per sample, nothing
    allocated. Same arithmetic as the :class:`Blanker` + :class:`SpatialFilter` path."""
    n, n_ch = data.shape
    j = 0
    for i in range(n):
        inside, j = blanked(n_seen + i, j, starts, stops)
        if inside:
            valid[i] = False  # hold: the previous output sample
        else:
            valid[i] = True
            for c in range(n_ch):
                hold[c] = data[i, c]
        acc = 0.0
        for c in range(n_ch):
            w = weights[c]
            if w != 0.0:
                acc += w * hold[c]
        y[i] = acc


class CleaningChain:
    """Blank → spatial filter → IIR filter, chunk by chunk.

    Parameters
    ----------
    n_channels : int
        Input channels.
    pre, post : int
        Blanking window around each onset, samples (see :mod:`labkit.kernels.artifact`).
    sos : array_like, optional
        Causal filter applied after blanking (and after the spatial filter); none if omitted.
    weights : array_like, shape (n_out, n_channels), optional
        Spatial filter; none if omitted.
    detect_uv : float, optional
        If given, a sample whose amplitude exceeds this (any channel) and that is not
        already inside a window starts a blanking window: the sample before it is held
        for ``pre + post - 1`` samples (a pulse nobody announced cannot be blanked
        before it is seen).
    """

    def __init__(
        self,
        n_channels: int,
        pre: int,
        post: int,
        sos=None,
        weights=None,
        detect_uv: float | None = None,
    ):
        self.blanker = Blanker(n_channels, pre, post)
        self.spatial = SpatialFilter(weights) if weights is not None else None
        n_out = self.spatial.weights.shape[0] if self.spatial is not None else n_channels
        self.filter = SosFilter(sos, n_out) if sos is not None else None
        self.flagger = Flagger(n_channels, amplitude_uv=detect_uv) if detect_uv else None
        self._last_detect = -(10**12)
        self._y = np.zeros(0)
        self._valid = np.ones(0, np.bool_)

    @property
    def valid(self):
        """Boolean mask of the last chunk's samples that were not blanked."""
        return self.blanker.valid

    def add_onset(self, sample_index: int) -> None:
        """Announce a pulse at absolute ``sample_index`` (see :class:`Blanker`)."""
        self.blanker.add_onset(sample_index)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Clean ``chunk`` (modified in place) and return the filtered output."""
        if self.flagger is not None:
            amp, _ = self.flagger.process(chunk)
            hits = np.flatnonzero(amp)
            for i in hits:
                t = self.blanker.n_seen + int(i)
                if t >= self._last_detect + self.blanker.pre + self.blanker.post:
                    self.blanker.add_onset(t - 1 + self.blanker.pre)
                    self._last_detect = t
        out = self.blanker.process(chunk)
        if self.spatial is not None:
            out = self.spatial.process(out)
        if self.filter is not None:
            out = self.filter.process(out)
        return out

    def process_rows(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clean inlet rows ``data`` (n_times, n_channels) to one output channel.

        For a real-time loop: with a single-row spatial filter, no IIR filter and no
        auto-detection, blanking and the spatial filter run in one ``nogil`` kernel over
        preallocated buffers (``data`` is not modified; float32 or float64); otherwise
        this is :meth:`process` on the transposed chunk. Same output either way.

        Returns
        -------
        y : ndarray of float64, shape (n_times,)
            The cleaned signal (a view into a buffer reused by the next call).
        valid : ndarray of bool, shape (n_times,)
            False for the blanked samples (same lifetime).
        """
        fast = (self.flagger is None and self.filter is None and self.spatial is not None
                and self.spatial.weights.shape[0] == 1)
        if not fast:
            out = self.process(np.ascontiguousarray(data.T, dtype=np.float64))
            return out[0], self.blanker.valid
        n = data.shape[0]
        if self._y.shape[0] < n:
            self._y = np.zeros(max(n, 2 * self._y.shape[0]))
            self._valid = np.ones(self._y.shape[0], np.bool_)
        blanker = self.blanker
        if blanker.n_seen == 0 and n:
            blanker._hold[:] = data[0]
        starts, stops = blanker.windows(n)
        y, valid = self._y[:n], self._valid[:n]
        _blank_rows_weighted(data, self.spatial.weights[0], starts, stops, blanker.n_seen,
                             blanker._hold, y, valid)
        blanker.n_seen += n
        blanker.valid = valid
        return y, valid
