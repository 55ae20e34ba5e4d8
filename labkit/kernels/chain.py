"""Real-time cleaning chain: the artifact is blanked before any filter sees it.

Order per chunk: flags (optional auto-detection of pulses the controller did not
announce) → sample-and-hold blanking → spatial filter (optional) → causal IIR filter.
Blanking first keeps the multi-millivolt TMS artifact out of the filter state, where it
would otherwise ring for hundreds of milliseconds.
"""

from __future__ import annotations

import numpy as np

from labkit.kernels.artifact import Blanker
from labkit.kernels.filters import SosFilter
from labkit.kernels.flags import Flagger
from labkit.kernels.spatial import SpatialFilter

__all__ = ["CleaningChain"]


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
