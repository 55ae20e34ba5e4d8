"""TMS-artifact repair: interpolation (linear, cubic) and blanking with sample-and-hold.

Window convention (the same as :func:`mne.preprocessing.fix_stim_artifact` in ``"linear"``
mode with ``tmin = -pre / fs`` and ``tmax = post / fs``): for an onset at sample ``k`` the
anchors are ``a = k - pre`` and ``b = k + post``; the samples strictly between them,
``a + 1 … b - 1``, are replaced, and the anchors themselves are kept. MNE replaces
``data[a:b]`` by ``interp1d`` between ``data[a]`` and ``data[b]``, which leaves
``data[a]`` unchanged, so the two agree sample for sample. (MNE converts times to
samples with ``ceil(fs * t)``, so a time that is not exact in floating point can land
one sample off: at 5 kHz ``tmin = -3 / fs`` gives ``-2`` samples. Here ``pre`` and
``post`` are integers and exact.)

``"cubic"`` is a cubic Hermite segment between the anchors whose end slopes are the
one-sided differences just outside the window (``data[a] - data[a-1]`` and
``data[b+1] - data[b]``), so the repaired trace is continuous in value and slope.
Where a window reaches past either end of the array the available anchor is held
(sample-and-hold); where a slope sample is missing the secant slope is used.

Overlapping windows are merged into one before repair.

Offline form: :func:`interpolate`, :func:`blank` (whole array, in place).
Real-time forms: :class:`Blanker` (zero latency) and :class:`StreamInterpolator`
(fixed delay of ``pre + post + 2`` samples, output identical to :func:`interpolate`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from labkit.kernels._checks import as_onsets, check_choice, check_data, check_int

__all__ = ["Blanker", "StreamInterpolator", "blank", "interpolate", "merge_windows"]

METHODS = ("linear", "cubic")


@njit(cache=True, nogil=True)
def _repair(data, starts, stops, cubic, ks):
    """Repair windows ``(starts[j], stops[j])`` (anchors) of ``data`` in place.

    Touches only the anchors, the two slope samples (``"cubic"``) and the window
    interiors. ``ks`` holds ``0.0, 1.0, 2.0, ...`` (at least the longest window): the
    offsets as floats, read from memory so that the inner loops vectorise (AVX2 has no
    int64 → float64 conversion); every inner loop runs over a 1-D view of one row.
    """
    n_ch, n_t = data.shape
    for j in range(starts.shape[0]):
        a = starts[j]
        b = stops[j]
        lo = max(a + 1, 0)
        hi = min(b, n_t)
        if lo >= hi:
            continue
        have_a = a >= 0
        have_b = b < n_t
        if not have_a and not have_b:
            continue
        for c in range(n_ch):
            seg = data[c, lo:hi]
            if not have_b:
                seg[:] = data[c, a]
                continue
            if not have_a:
                seg[:] = data[c, b]
                continue
            # here lo = a + 1 and hi = b: seg[k] is sample a + 1 + k
            y0 = data[c, a]
            y1 = data[c, b]
            h = float(b - a)
            secant = (y1 - y0) / h
            if not cubic:
                for k in range(seg.shape[0]):
                    seg[k] = y0 + ks[k + 1] * secant
                continue
            m0 = data[c, a] - data[c, a - 1] if a - 1 >= 0 else secant
            m1 = data[c, b + 1] - data[c, b] if b + 1 < n_t else secant
            for k in range(seg.shape[0]):
                t = ks[k + 1] / h
                t2 = t * t
                t3 = t2 * t
                seg[k] = (
                    (2 * t3 - 3 * t2 + 1) * y0
                    + (t3 - 2 * t2 + t) * h * m0
                    + (-2 * t3 + 3 * t2) * y1
                    + (t3 - t2) * h * m1
                )


def _repair_windows(data: np.ndarray, starts: np.ndarray, stops: np.ndarray, cubic: bool) -> None:
    """:func:`_repair` with its offset table (as long as the longest window)."""
    longest = int((stops - starts).max()) + 1 if starts.shape[0] else 1
    _repair(data, starts, stops, cubic, np.arange(longest, dtype=np.float64))


@njit(cache=True, nogil=True)
def _blank(data, starts, stops, offset, hold):
    """Sample-and-hold blanking of windows given in absolute indices; ``offset`` is the
    absolute index of ``data[:, 0]`` and ``hold`` the last output sample before it."""
    n_ch, n_t = data.shape
    j = 0
    n_w = starts.shape[0]
    for i in range(n_t):
        t = offset + i
        while j < n_w and stops[j] <= t:
            j += 1
        if j < n_w and starts[j] < t < stops[j]:
            if i == 0:
                for c in range(n_ch):
                    data[c, i] = hold[c]
            else:
                for c in range(n_ch):
                    data[c, i] = data[c, i - 1]
    if n_t > 0:
        for c in range(n_ch):
            hold[c] = data[c, n_t - 1]


def merge_windows(onsets, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchor pairs ``(starts, stops)`` of the artifact windows, overlaps merged.

    Parameters
    ----------
    onsets : array_like of int
        Pulse sample indices.
    pre, post : int
        Samples before/after each onset (see the module docstring for the convention).

    Returns
    -------
    starts, stops : ndarray of int64
        Anchor indices ``a`` and ``b`` of each merged window, sorted.
    """
    on = as_onsets(onsets)
    return _merge(on, int(pre), int(post))


@njit(cache=True, nogil=True)
def _merge(on, pre, post):
    """Anchor pairs of the windows around sorted ``on``, overlapping ones merged."""
    n = on.shape[0]
    starts = np.empty(n, np.int64)
    stops = np.empty(n, np.int64)
    k = -1
    for i in range(n):
        s = on[i] - pre
        e = on[i] + post
        if k >= 0 and s < stops[k]:
            if e > stops[k]:
                stops[k] = e
        else:
            k += 1
            starts[k] = s
            stops[k] = e
    return starts[: k + 1].copy(), stops[: k + 1].copy()


def interpolate(
    data: np.ndarray, onsets, pre: int, post: int, method: str = "linear"
) -> np.ndarray:
    """Replace the TMS artifact around each onset by interpolation, in place.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times), float64, C-contiguous
        The recording; modified in place.
    onsets : array_like of int
        Pulse onsets, sample indices into ``data``.
    pre, post : int
        Samples before and after each onset: anchors at ``onset - pre`` and
        ``onset + post`` are kept, the samples strictly between them are replaced.
    method : {"linear", "cubic"}
        Straight line between the anchors, or cubic Hermite with slope continuity.

    Returns
    -------
    ndarray
        ``data`` itself (for chaining).
    """
    check_data(data)
    pre = check_int(pre, "pre")
    post = check_int(post, "post", minimum=1)
    check_choice(method, "method", METHODS)
    starts, stops = merge_windows(onsets, pre, post)
    _repair_windows(data, starts, stops, method == "cubic")
    return data


def blank(data: np.ndarray, onsets, pre: int, post: int) -> np.ndarray:
    """Blank each artifact window with sample-and-hold of the left anchor, in place.

    Same window convention as :func:`interpolate`; the replaced samples take the value
    of ``data[:, onset - pre]`` (the last clean sample). A window starting before the
    array holds the array's first sample.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times), float64, C-contiguous
        Modified in place.
    onsets : array_like of int
        Pulse onsets (sample indices).
    pre, post : int
        Samples before/after each onset.

    Returns
    -------
    ndarray
        ``data`` itself.
    """
    check_data(data)
    pre = check_int(pre, "pre")
    post = check_int(post, "post", minimum=1)
    starts, stops = merge_windows(onsets, pre, post)
    if data.shape[1]:
        hold = data[:, 0].copy()
        _blank(data, starts, stops, 0, hold)
    return data


class Blanker:
    """Real-time sample-and-hold blanking, chunk by chunk, zero latency.

    Register each pulse with :meth:`add_onset` (absolute sample index, counted from the
    first sample passed to :meth:`process`) as soon as it is known, ideally before it
    happens (the controller knows when it fires). Output equals :func:`blank` on the
    concatenated stream when every onset is registered before sample ``onset - pre``
    is processed; later registrations hold the most recent output sample instead.
    After each :meth:`process`, :attr:`valid` marks the samples that were not blanked
    (hand it to :meth:`labkit.phase.PhaseTracker.update` to bridge the gap by prediction).

    Parameters
    ----------
    n_channels : int
        Channels per chunk.
    pre, post : int
        Samples before/after each onset (window convention of :func:`interpolate`).
    """

    def __init__(self, n_channels: int, pre: int, post: int):
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.pre = check_int(pre, "pre")
        self.post = check_int(post, "post", minimum=1)
        self.n_seen = 0
        self._hold = np.zeros(self.n_channels)
        self._onsets: list[int] = []
        #: False for the samples of the last chunk that were blanked (reused buffer).
        self.valid = np.ones(0, np.bool_)

    def add_onset(self, sample_index: int) -> None:
        """Register a pulse at absolute ``sample_index``."""
        self._onsets.append(int(sample_index))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Blank ``chunk`` (n_channels, n_times) in place and return it."""
        check_data(chunk, "chunk")
        n = chunk.shape[1]
        if self.n_seen == 0 and n:
            self._hold[:] = chunk[:, 0]
        end = self.n_seen + n
        self._onsets = [o for o in self._onsets if o + self.post > self.n_seen]
        live = [o for o in self._onsets if o - self.pre < end]
        starts, stops = merge_windows(live, self.pre, self.post)
        _blank(chunk, starts, stops, self.n_seen, self._hold)
        if self.valid.shape[0] != n:
            self.valid = np.ones(n, np.bool_)
        else:
            self.valid[:] = True
        for a, b in zip(starts, stops, strict=True):
            lo, hi = max(a + 1 - self.n_seen, 0), min(b - self.n_seen, n)
            if lo < hi:
                self.valid[lo:hi] = False
        self.n_seen = end
        return chunk


class StreamInterpolator:
    """Real-time artifact interpolation with a fixed delay of ``pre + post + 2`` samples.

    Each :meth:`process` call returns as many samples as it was given, delayed by
    :attr:`delay` samples (the first :attr:`delay` output samples are zeros). The delayed
    output equals :func:`interpolate` on the whole stream for every onset registered
    before its right anchor ``onset + post + 1`` arrives. Overlapping windows (pulses
    closer than ``pre + post`` samples, e.g. paired pulses) are merged as offline; a
    merged window longer than ``pre + post`` needs ``extra_delay`` >= the extra length,
    otherwise its start has already been output when it is repaired.

    Parameters
    ----------
    n_channels : int
        Channels per chunk.
    pre, post : int
        Samples before/after each onset.
    method : {"linear", "cubic"}
        Interpolation method.
    extra_delay : int
        Additional delay, samples (for merged windows of close pulses).
    """

    def __init__(
        self, n_channels: int, pre: int, post: int, method: str = "linear", extra_delay: int = 0
    ):
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.pre = check_int(pre, "pre")
        self.post = check_int(post, "post", minimum=1)
        self.method = check_choice(method, "method", METHODS)
        self.delay = self.pre + self.post + 2 + check_int(extra_delay, "extra_delay")
        self._tail = np.zeros((self.n_channels, self.delay + 2))
        self.n_seen = 0
        self._onsets: list[int] = []

    def add_onset(self, sample_index: int) -> None:
        """Register a pulse at absolute ``sample_index``."""
        self._onsets.append(int(sample_index))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Return the repaired stream delayed by :attr:`delay` samples (new array)."""
        check_data(chunk, "chunk")
        n = chunk.shape[1]
        keep = self._tail.shape[1]
        work = np.concatenate((self._tail, chunk), axis=1)
        start = self.n_seen - keep
        end = self.n_seen + n
        if self._onsets:
            # repair a merged window only once its last right anchor has arrived
            starts, stops = merge_windows(self._onsets, self.pre, self.post)
            ready = stops + 1 < end
            if np.any(ready):
                _repair_windows(
                    work, starts[ready] - start, stops[ready] - start, self.method == "cubic"
                )
                last = stops[ready].max()
                self._onsets = [o for o in self._onsets if o + self.post > last]
        self._tail = np.ascontiguousarray(work[:, -keep:])
        self.n_seen = end
        lo = work.shape[1] - self.delay - n
        return np.ascontiguousarray(work[:, lo : lo + n])
