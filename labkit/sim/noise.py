"""Simulated noise that reproduces: each sample a function of the seed and the discharges.

A simulated amplifier streams in real time, so *when* a pulse lands on its sample clock
depends on the host's scheduling. Noise drawn from one running generator would therefore
put different noise under every MEP on every run, and a notebook's printed amplitudes,
latencies and threshold decisions would differ between runs although the seed is the
same. :class:`DischargeLockedNoise` keys the noise to the discharges instead: the stream is
cut into segments, segment ``k`` starting ``lead_samples`` before discharge ``k`` (or at the
first sample not yet sent, when the discharge was reported later than that), and every
sample of a segment is drawn from a generator seeded with ``(seed, stream, k, block)``
where ``block`` counts fixed-size blocks of the sample's offset from discharge ``k``. The
``n``-th discharge thus always sits in the same noise, whatever its sample index, and
everything measured around it (background window, MEP window, onset threshold) comes out
identical run after run. Segment 0 (before the first discharge) is keyed by the absolute
sample index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["DischargeLockedNoise", "NoiseSegment"]

#: Added to offsets from a discharge (which may be negative) before they are cut into blocks.
_OFFSET_BIAS = 1 << 30


@dataclass(frozen=True)
class NoiseSegment:
    """Samples ``[start, stop)`` keyed by discharge ``key`` at sample ``origin``."""

    start: int
    stop: int
    key: int
    origin: int


class DischargeLockedNoise:
    """Standard-normal noise keyed to discharges (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of the simulation.
    stream : int
        Distinguishes independent noise sources with the same seed.
    n_channels : int
        Channels per sample.
    lead_samples : int
        How many samples before a discharge its segment starts (when they are not sent
        yet): the pre-stimulus window that reproduces exactly.
    block : int
        Samples per generator block.
    """

    def __init__(
        self, seed: int, stream: int, n_channels: int, *, lead_samples: int, block: int = 1024
    ) -> None:
        if n_channels < 1 or lead_samples < 0 or block < 1:
            raise ValueError(
                f"DischargeLockedNoise: n_channels={n_channels}, lead_samples={lead_samples}, "
                f"block={block}; need n_channels >= 1, lead_samples >= 0, block >= 1"
            )
        self.seed, self.stream = int(seed), int(stream)
        self.n_channels, self.lead_samples, self.block = int(n_channels), int(lead_samples), block
        self._lock = threading.Lock()
        self._starts = [0]   # first sample of each segment, increasing
        self._keys = [0]
        self._origins = [0]
        self._discharges = 0
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def discharge(self, pulse: int, first_unsent: int) -> None:
        """Start the segment of the next discharge, at sample ``pulse``.

        Parameters
        ----------
        pulse : int
            The discharge's sample index.
        first_unsent : int
            First sample not yet streamed: samples already sent keep their noise.
        """
        with self._lock:
            self._discharges += 1
            start = max(int(pulse) - self.lead_samples, int(first_unsent), self._starts[-1] + 1)
            self._starts.append(start)
            self._keys.append(self._discharges)
            self._origins.append(int(pulse))

    def segments(self, first: int, n: int) -> Iterator[NoiseSegment]:
        """The segments covering samples ``[first, first + n)``, in order."""
        end = first + n
        with self._lock:
            # forget segments wholly before this block (keep the one it starts in)
            while len(self._starts) > 1 and self._starts[1] <= first:
                del self._starts[0], self._keys[0], self._origins[0]
            bounds = list(zip(self._starts, self._keys, self._origins, strict=True))
        for i, (start, key, origin) in enumerate(bounds):
            stop = bounds[i + 1][0] if i + 1 < len(bounds) else end
            lo, hi = max(start, first), min(stop, end)
            if lo < hi:
                yield NoiseSegment(lo, hi, key, origin)

    def draw_segment(self, key: int, origin: int, lo: int, hi: int) -> np.ndarray:
        """Noise of samples ``[lo, hi)`` in the keying of discharge ``key``, (n_channels, n)."""
        offsets_lo = lo - origin + _OFFSET_BIAS
        offsets_hi = hi - origin + _OFFSET_BIAS
        parts = []
        for b in range(offsets_lo // self.block, (offsets_hi - 1) // self.block + 1):
            base = b * self.block
            arr = self._block(key, b)
            parts.append(arr[:, max(offsets_lo - base, 0):min(offsets_hi - base, self.block)])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def draw(self, first: int, n: int) -> np.ndarray:
        """Standard-normal noise of samples ``[first, first + n)``, shape (n_channels, n)."""
        out = np.empty((self.n_channels, n))
        for seg in self.segments(first, n):
            out[:, seg.start - first:seg.stop - first] = self.draw_segment(
                seg.key, seg.origin, seg.start, seg.stop)
        return out

    def _block(self, key: int, b: int) -> np.ndarray:
        cached = self._cache.get((key, b))
        if cached is not None:
            return cached
        rng = np.random.default_rng([self.seed, self.stream, key, b])
        arr = rng.standard_normal((self.block, self.n_channels)).T
        self._cache[(key, b)] = arr
        while len(self._cache) > 8:
            self._cache.popitem(last=False)
        return arr
