"""TMS-artifact repair: interpolation (linear, cubic) and blanking with sample-and-hold.

Window convention (the same as :func:`mne.preprocessing.fix_stim_artifact` in ``"linear"``
mode with ``tmin = -pre / fs`` and ``tmax = post / fs``): for an onset at sample ``k`` the
anchors are ``a = k - pre`` and ``b = k + post``; the samples strictly between them,
``a + 1 … b - 1``, are replaced, and the anchors themselves are kept. MNE replaces
``data[a:b]`` by ``interp1d`` between ``data[a]`` and ``data[b]``, which leaves
``data[a]`` unchanged, so the two agree sample for sample, bit for bit: the linear
kernel evaluates ``interp1d``'s own expression ``(y1 - y0) / (b - a) * k + y0``.
(MNE converts times to samples with ``ceil(fs * t)``, so a time that is not exact in
floating point can land one sample off: at 5 kHz ``tmin = -3 / fs`` gives ``-2``
samples. Here ``pre`` and ``post`` are integers and exact.)

``"cubic"`` is a cubic Hermite segment between the anchors whose end slopes are the
one-sided differences just outside the window (``data[a] - data[a-1]`` and
``data[b+1] - data[b]``), so the repaired trace is continuous in value and slope.
Where a window reaches past either end of the array the available anchor is held
(sample-and-hold); where a slope sample is missing the secant slope is used.

Overlapping windows are merged into one before repair.

Speed: the windows of a long recording are a few cache lines per channel, scattered
through memory, so the cost is memory traffic, not arithmetic. :func:`interpolate`
touches only the windows, prefetches the anchors of the rows ahead, writes the whole
cache lines of a window interior with streaming stores when the array is larger than
a last-level cache (:data:`STREAMING_MIN_BYTES`; smaller arrays, such as real-time
chunks, stay in cache with ordinary stores), and reaches compiled code through one
typed numba entry point whose signature doubles as the argument check.

Offline form: :func:`interpolate`, :func:`blank` (whole array, in place).
Real-time forms: :class:`Blanker` (zero latency) and :class:`StreamInterpolator`
(fixed delay of ``pre + post + 2`` samples, output identical to :func:`interpolate`).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from labkit.errors import ConfigError
from labkit.kernels._checks import as_onsets, check_choice, check_data, check_in_place, check_int
from labkit.kernels._memory import LINE_DOUBLES, prefetch_write, store_fence, stream_linear_line

__all__ = ["Blanker", "StreamInterpolator", "blank", "interpolate", "merge_windows"]

METHODS = ("linear", "cubic")


#: Arrays at least this large are repaired with streaming stores (see :func:`_repair`):
#: larger than a last-level cache, so their artifact windows are not cached anyway.
STREAMING_MIN_BYTES = 32 * 2**20

#: How many window rows ahead the anchors are prefetched.
PREFETCH_ROWS = 16

#: No windows (never written: starts and stops of a chunk with no pulse in it).
_NO_WINDOWS = np.zeros(0, np.int64)


@njit(cache=True, nogil=True)
def _prefetch_anchors(flat, starts, stops, q, n_w, n_t):
    """Prefetch both anchors of window row ``q`` (channel ``q // n_w``, window ``q % n_w``)."""
    c = q // n_w
    j = q - c * n_w
    row = c * n_t
    prefetch_write(flat, row + min(max(starts[j], 0), n_t - 1))
    prefetch_write(flat, row + min(max(stops[j], 0), n_t - 1))


@njit(cache=True, nogil=True)
def _repair(data, starts, stops, cubic, stream):
    """Repair windows ``(starts[j], stops[j])`` (anchors) of ``data`` in place.

    Touches only the anchors, the two slope samples (``"cubic"``) and the window
    interiors, row by row (one channel of one window at a time; every window of a
    channel, then the next channel), with the anchors of the row
    :data:`PREFETCH_ROWS` ahead prefetched so that their cache misses overlap.
    The offsets ``1.0, 2.0, …`` are read from a table so that the inner loops vectorise
    (AVX2 has no int64 → float64 conversion). Linear rows compute
    ``slope * k + y0`` with ``slope = (y1 - y0) / (b - a)``, the expression scipy's
    ``interp1d`` (hence MNE) evaluates, so the output is bit-identical to MNE's.

    With ``stream`` the whole cache lines inside a linear window are written with
    streaming stores: a line that is entirely replaced is never read from memory first.
    """
    n_ch, n_t = data.shape
    n_w = starts.shape[0]
    if n_ch == 0 or n_t == 0 or n_w == 0:
        return
    flat = data.reshape(-1)
    longest = 1
    for j in range(n_w):
        longest = max(longest, stops[j] - starts[j])
    ks = np.arange(longest + 1).astype(np.float64)
    # a streaming store needs a 64-byte-aligned line; float64 data is 8-byte aligned
    # unless it is a view at an odd byte offset
    address = data.ctypes.data
    stream = stream and address % 8 == 0
    n_rows = n_w * n_ch
    for q in range(min(PREFETCH_ROWS, n_rows)):
        _prefetch_anchors(flat, starts, stops, q, n_w, n_t)
    # channel by channel, then window by window: consecutive rows are one channel's
    # windows, a few pages apart, rather than 64 channels' rows a whole row apart
    # (streaming stores to nearby pages drain about twice as fast)
    for q in range(n_rows):
        if q + PREFETCH_ROWS < n_rows:
            _prefetch_anchors(flat, starts, stops, q + PREFETCH_ROWS, n_w, n_t)
        c = q // n_w
        j = q - c * n_w
        a = starts[j]
        b = stops[j]
        lo = max(a + 1, 0)
        hi = min(b, n_t)
        have_a = a >= 0
        have_b = b < n_t
        h = float(b - a)
        if lo >= hi or (not have_a and not have_b):
            continue
        # flat indices as unsigned integers: numba then emits no negative-index
        # wrap-around, and the inner loops vectorise
        row = np.uint64(c * n_t)
        if not have_b or not have_a:
            held = flat[row + np.uint64(a if have_a else b)]
            for i in range(row + np.uint64(lo), row + np.uint64(hi)):
                flat[i] = held
            continue
        # here lo = a + 1 and hi = b: flat[first + k] is sample a + 1 + k, offset ks[k + 1]
        n_seg = hi - lo
        first = row + np.uint64(lo)
        y0 = flat[row + np.uint64(a)]
        y1 = flat[row + np.uint64(b)]
        if cubic:
            secant = (y1 - y0) / h
            m0 = y0 - flat[row + np.uint64(a - 1)] if a - 1 >= 0 else secant
            m1 = flat[row + np.uint64(b + 1)] - y1 if b + 1 < n_t else secant
            for k in range(n_seg):
                t = ks[np.uint64(k + 1)] / h
                t2 = t * t
                t3 = t2 * t
                flat[first + np.uint64(k)] = (
                    (2 * t3 - 3 * t2 + 1) * y0
                    + (t3 - 2 * t2 + t) * h * m0
                    + (-2 * t3 + 3 * t2) * y1
                    + (t3 - t2) * h * m1
                )
            continue
        slope = (y1 - y0) / h
        done = 0
        if stream:
            # k in [line_lo, line_hi): the whole 64-byte lines of the interior
            into_line = ((address + (c * n_t + lo) * 8) % 64) // 8
            line_lo = 0 if into_line == 0 else LINE_DOUBLES - into_line
            n_lines = max(n_seg - line_lo, 0) // LINE_DOUBLES
            if n_lines > 0:
                for k in range(line_lo):
                    flat[first + np.uint64(k)] = slope * ks[np.uint64(k + 1)] + y0
                for m in range(n_lines):
                    k = line_lo + m * LINE_DOUBLES
                    stream_linear_line(flat, first + np.uint64(k), ks, k + 1, slope, y0)
                done = line_lo + n_lines * LINE_DOUBLES
        for k in range(n_seg - done):
            flat[first + np.uint64(done + k)] = slope * ks[np.uint64(done + k + 1)] + y0
    if stream:
        store_fence()


def _repair_windows(data: np.ndarray, starts: np.ndarray, stops: np.ndarray, cubic: bool) -> None:
    """:func:`_repair` with ordinary stores (for data that is in cache, e.g. a chunk)."""
    _repair(data, starts, stops, cubic, False)


@njit(cache=True, nogil=True)
def blanked(t, j, starts, stops):
    """Whether absolute sample ``t`` lies strictly inside a blanking window, walking the
    sorted windows from cursor ``j``; returns ``(inside, j)`` with the advanced cursor
    (samples must be visited in increasing order)."""
    n_w = starts.shape[0]
    while j < n_w and stops[j] <= t:
        j += 1
    return j < n_w and starts[j] < t < stops[j], j


@njit(cache=True, nogil=True)
def _blank(data, starts, stops, offset, hold):
    """Sample-and-hold blanking of windows given in absolute indices; ``offset`` is the
    absolute index of ``data[:, 0]`` and ``hold`` the last output sample before it."""
    n_ch, n_t = data.shape
    j = 0
    for i in range(n_t):
        inside, j = blanked(offset + i, j, starts, stops)
        if inside:
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


#: The one signature :func:`interpolate` calls: numba matches it in C, so a call with
#: the right types needs no Python-level checks (they run only when it does not match).
_INTERPOLATE_SIGNATURE = "int64(float64[:, ::1], int64[::1], int64, int64, boolean)"


@njit(cache=True, nogil=True)
def _interpolate(data, onsets, pre, post, cubic):
    """Check ``pre``/``post``, sort ``onsets`` if needed, merge the windows, repair them.

    Returns 0, or 1 if ``pre < 0`` or ``post < 1`` (nothing is changed then). Arrays of
    at least :data:`STREAMING_MIN_BYTES` are repaired with streaming stores.
    """
    if pre < 0 or post < 1:
        return 1
    on = onsets
    for i in range(1, onsets.shape[0]):
        if onsets[i] < onsets[i - 1]:
            on = np.sort(onsets)
            break
    starts, stops = _merge(on, pre, post)
    _repair(data, starts, stops, cubic, data.size * 8 >= STREAMING_MIN_BYTES)
    return 0


@functools.cache
def _typed_interpolate():
    """:func:`_interpolate` restricted to :data:`_INTERPOLATE_SIGNATURE` (any other
    argument types raise ``TypeError``), compiled or loaded from the on-disk cache on
    first use rather than at import."""
    _interpolate.compile(_INTERPOLATE_SIGNATURE)
    _interpolate.disable_compile()
    return _interpolate


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
    cubic = method == "cubic"
    if not cubic and method != "linear":
        check_choice(method, "method", METHODS)
    if type(pre) is not int or type(post) is not int:  # numba would truncate floats
        pre = check_int(pre, "pre")
        post = check_int(post, "post", minimum=1)
    # the compiled signature is the type check of the common case (a writeable float64
    # C-contiguous array, int64 onsets); anything else is checked and converted here,
    # or rejected with an error naming the argument
    entry = _typed_interpolate()
    try:
        status = entry(data, onsets, pre, post, cubic)
    except TypeError:
        check_in_place(check_data(data))
        status = entry(data, as_onsets(onsets), pre, post, cubic)
    if status:
        check_int(pre, "pre")
        check_int(post, "post", minimum=1)
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

    def windows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Merged windows ``(starts, stops)`` that touch the next ``n`` samples (absolute
        anchors); onsets whose window has passed are forgotten."""
        if not self._onsets:  # most chunks: no window (the hold sample still advances)
            return _NO_WINDOWS, _NO_WINDOWS
        end = self.n_seen + n
        self._onsets = [o for o in self._onsets if o + self.post > self.n_seen]
        live = [o for o in self._onsets if o - self.pre < end]
        if not live:
            return _NO_WINDOWS, _NO_WINDOWS
        return merge_windows(live, self.pre, self.post)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Blank ``chunk`` (n_channels, n_times) in place and return it."""
        check_data(chunk, "chunk")
        n = chunk.shape[1]
        if self.n_seen == 0 and n:
            self._hold[:] = chunk[:, 0]
        starts, stops = self.windows(n)
        _blank(chunk, starts, stops, self.n_seen, self._hold)
        if self.valid.shape[0] != n:
            self.valid = np.ones(n, np.bool_)
        else:
            self.valid[:] = True
        for a, b in zip(starts, stops, strict=True):
            lo, hi = max(a + 1 - self.n_seen, 0), min(b - self.n_seen, n)
            if lo < hi:
                self.valid[lo:hi] = False
        self.n_seen += n
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
        self._keep = self.delay + 2
        # the last ``_keep`` samples, then the newest chunk; reused while chunks keep
        # their length (a real-time stream's usual case)
        self._work = np.zeros((self.n_channels, self._keep))
        self.n_seen = 0
        self._onsets: list[int] = []

    def add_onset(self, sample_index: int) -> None:
        """Register a pulse at absolute ``sample_index``."""
        self._onsets.append(int(sample_index))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Return the repaired stream delayed by :attr:`delay` samples (new array)."""
        check_data(chunk, "chunk")
        if chunk.shape[0] != self.n_channels:
            raise ConfigError(
                f"has {chunk.shape[0]} channels, the interpolator was built for {self.n_channels}",
                field="chunk",
            )
        n = chunk.shape[1]
        keep = self._keep
        work = self._work
        if work.shape[1] != keep + n:
            work = np.empty((self.n_channels, keep + n))
            work[:, :keep] = self._work[:, :keep]
            self._work = work
        work[:, keep:] = chunk
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
        self.n_seen = end
        lo = keep - self.delay  # output sample i is input sample i - delay
        out = work[:, lo : lo + n].copy()
        work[:, :keep] = work[:, n:]  # the newest samples become the kept ones
        return out
