"""LSL acquisition: bind streams safely, collect pulse markers, epoch around pulses.

Binding (issue 7): a stream is bound by **name plus source_id**. :func:`resolve_stream`
looks for every stream with the name, waits a short settle time for late answers, and
refuses when there is none, when there is more than one (as from a spoofing outlet on the
lab network: the error lists each one's source_id and host), or when the one found does not
have the expected source_id or type. :func:`connect_stream` then opens an mne-lsl
``StreamLSL`` on exactly that name + source_id.

Time alignment: everything is in LSL ``local_clock()`` seconds. The amplifier stamps each
sample; markers carry the pulse time. :func:`epochs_around_pulses` puts each pulse on the
sample **nearest** to its time (error at most half a sample, 0.1 ms at 5 kHz), using the
samples' own timestamps when it reads a ``StreamLSL`` buffer, or
``first_time_s + index / sfreq`` for an ``mne.io.Raw`` whose first sample was at LSL time
``first_time_s`` (taken from the argument, else the ``raw.first_time_s`` attribute that
:func:`labkit.recording.to_raw` sets). The actual offset of each pulse from its sample is
kept in the epochs' metadata.

Latency: ``StreamLSL`` polls and is fine for MEPs and display. The closed loop uses
:class:`LowLatencyInlet`, which drains *every* buffered chunk of a pylsl inlet into a
preallocated array on each call (a loop that pulls one chunk per turn silently lags).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl

from labkit.clock import local_clock
from labkit.errors import StreamError
from labkit.markers import DEFAULT_MARKER_STREAM, MARKER_STREAM_TYPE, PulseEvent, PulseMarkerOutlet

__all__ = [
    "LowLatencyInlet",
    "PulseMarkerInlet",
    "PulseMarkerOutlet",
    "connect_stream",
    "describe_stream",
    "epochs_around_pulses",
    "local_clock",
    "needs_clocksync",
    "parse_pulse_markers",
    "raw_from_stream",
    "resolve_stream",
]

#: Extra time resolve_stream keeps listening after the first answer, to catch duplicates.
DEFAULT_SETTLE_S = 0.3


@contextmanager
def _quiet_mne():
    """Silence MNE / mne-lsl info logs inside the block (restored afterwards)."""
    loggers = [logging.getLogger(n) for n in ("mne", "mne_lsl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def describe_stream(info: pylsl.StreamInfo) -> str:
    """One line naming a stream: name, type, source_id, host, rate, channel count."""
    return (
        f"name={info.name()!r} type={info.type()!r} source_id={info.source_id()!r} "
        f"host={info.hostname()!r} sfreq={info.nominal_srate():g} "
        f"channels={info.channel_count()}"
    )


@dataclass(frozen=True)
class VisibleStream:
    """An LSL stream seen on the network (what a device profile binds by name and id).

    Attributes
    ----------
    name, type, source_id, host : str
        As the outlet declares them.
    sfreq : float
        Nominal rate, Hz (0 for irregular streams such as markers).
    n_channels : int
        Channel count.
    info : pylsl.StreamInfo
        The resolved description.
    """

    name: str
    type: str
    source_id: str
    host: str
    sfreq: float
    n_channels: int
    info: Any = field(repr=False, compare=False)

    def describe(self) -> str:
        """One line, in the profile's words: name, type, source_id, host, rate, channels."""
        return (f"name={self.name!r} type={self.type!r} source_id={self.source_id!r} "
                f"host={self.host!r} rate={self.sfreq:g} Hz channels={self.n_channels}")

    def channel_labels(self, timeout_s: float = 2.0) -> list[str] | None:
        """The channel labels from the stream's full description (``None``: none given)."""
        inlet = pylsl.StreamInlet(self.info)
        try:
            full = inlet.info(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - a stream that vanished has no labels to give
            return None
        finally:
            inlet.close_stream()
        labels, ch = [], full.desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        return labels if len(labels) == self.n_channels and all(labels) else None


def list_streams(wait_s: float = 1.0) -> list[VisibleStream]:
    """Every LSL stream visible from this computer, sorted by name.

    Parameters
    ----------
    wait_s : float
        How long to listen for answers, s.
    """
    seen: dict[str, VisibleStream] = {}
    for info in pylsl.resolve_streams(wait_time=wait_s):
        seen.setdefault(info.uid(), VisibleStream(
            info.name(), info.type(), info.source_id(), info.hostname(),
            float(info.nominal_srate()), int(info.channel_count()), info))
    return sorted(seen.values(), key=lambda s: (s.name, s.source_id))


def needs_clocksync(info: pylsl.StreamInfo) -> bool:
    """True when the stream comes from another host, whose clock must be synchronised.

    On the same host every outlet stamps with the same ``local_clock()``; applying LSL's
    clock correction there would only add its estimation noise (tens of µs), enough to
    move a pulse to the neighbouring sample at 5 kHz.
    """
    return info.hostname() != socket.gethostname()


def _proc_flags(info: pylsl.StreamInfo, clocksync: bool | None) -> int:
    if clocksync is None:
        clocksync = needs_clocksync(info)
    return pylsl.proc_clocksync if clocksync else pylsl.proc_none


def resolve_stream(
    name: str,
    *,
    source_id: str | None = None,
    stype: str | None = None,
    timeout_s: float = 5.0,
    settle_s: float = DEFAULT_SETTLE_S,
) -> pylsl.StreamInfo:
    """Find the one LSL stream called ``name``, refusing ambiguity.

    Parameters
    ----------
    name : str
        Stream name (exact).
    source_id : str | None
        Expected source id; the stream found must carry it. None: any (but still unique).
    stype : str | None
        Expected stream type (e.g. ``"EMG"``). None: any.
    timeout_s : float
        How long to wait for the first answer, s.
    settle_s : float
        How long to keep listening after the first answer for other streams with the same
        name, s.

    Returns
    -------
    pylsl.StreamInfo
        The stream's description.

    Raises
    ------
    StreamError
        No stream with that name; more than one (the message lists each source_id and
        host); or the one found has another source_id or type.
    """
    if not name:
        raise StreamError("resolve_stream: the stream name must not be empty")
    found: dict[str, pylsl.StreamInfo] = {}
    first = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout_s)
    if first and settle_s > 0:
        first = list(first) + list(
            pylsl.resolve_byprop("name", name, minimum=1_000_000, timeout=settle_s)
        )
    for info in first:
        found.setdefault(info.uid(), info)
    infos = list(found.values())
    wanted = f"name={name!r}" + (f" source_id={source_id!r}" if source_id else "") + (
        f" type={stype!r}" if stype else ""
    )
    if not infos:
        raise StreamError(f"no LSL stream found with {wanted} within {timeout_s:g} s")
    if len(infos) > 1:
        listing = "; ".join(describe_stream(i) for i in infos)
        raise StreamError(
            f"{len(infos)} LSL streams are named {name!r} (possible spoofing outlet); "
            f"refusing to bind. Found: {listing}"
        )
    info = infos[0]
    if source_id is not None and info.source_id() != source_id:
        raise StreamError(
            f"LSL stream {name!r} has source_id {info.source_id()!r} (host "
            f"{info.hostname()!r}), expected {source_id!r}; refusing to bind"
        )
    if stype is not None and info.type() != stype:
        raise StreamError(
            f"LSL stream {name!r} has type {info.type()!r}, expected {stype!r}"
        )
    return info


def connect_stream(
    name: str,
    *,
    source_id: str | None = None,
    stype: str | None = None,
    bufsize_s: float = 10.0,
    picks: Sequence[str] | str | None = None,
    timeout_s: float = 5.0,
    acquisition_delay_s: float = 0.001,
    processing_flags: Sequence[str] | None = None,
) -> Any:
    """Connect an mne-lsl ``StreamLSL`` to the one stream ``name`` (+ ``source_id``).

    Parameters
    ----------
    name : str
        Stream name.
    source_id : str | None
        Expected source id (from the device profile).
    stype : str | None
        Expected stream type.
    bufsize_s : float
        Length of the StreamLSL ring buffer, s.
    picks : sequence of str | str | None
        Channels to keep (names); None keeps all.
    timeout_s : float
        Resolve and connect timeout, s.
    acquisition_delay_s : float
        StreamLSL polling period, s.
    processing_flags : sequence of str | None
        liblsl post-processing (``"clocksync"``, ``"dejitter"``, ...). None: clock sync
        only for a stream from another host (see :func:`needs_clocksync`), nothing for a
        local one; never dejitter by default (it would re-time an exact sample clock).

    Returns
    -------
    mne_lsl.stream.StreamLSL
        A connected stream.

    Raises
    ------
    StreamError
        See :func:`resolve_stream`; also when a pick names a channel the stream lacks.
    """
    from mne_lsl.stream import StreamLSL

    if not bufsize_s > 0:
        raise StreamError(f"connect_stream: bufsize_s = {bufsize_s!r} must be > 0")
    info = resolve_stream(name, source_id=source_id, stype=stype, timeout_s=timeout_s)
    if processing_flags is None:
        flags = ["clocksync"] if needs_clocksync(info) else None
    else:
        flags = list(processing_flags) or None
    with _quiet_mne():
        stream = StreamLSL(bufsize_s, name=name, stype=info.type(), source_id=info.source_id())
        try:
            stream.connect(acquisition_delay=acquisition_delay_s,
                           processing_flags=flags, timeout=timeout_s)
        except Exception as exc:
            raise StreamError(f"could not connect to LSL stream {describe_stream(info)}: "
                              f"{exc}") from exc
        if picks is not None:
            picks = [picks] if isinstance(picks, str) else list(picks)
            available = list(stream.ch_names)
            missing = [p for p in picks if p not in available]
            if missing:
                stream.disconnect()
                raise StreamError(
                    f"LSL stream {name!r} has no channel(s) {missing}; channels: {available}"
                )
            stream.pick(picks)
    return stream


# -- pulse markers ----------------------------------------------------------------------
class PulseMarkerInlet:
    """Collects pulse markers (JSON, see :mod:`labkit.markers`) from an LSL stream.

    Parameters
    ----------
    name : str
        Marker stream name.
    source_id : str | None
        Expected source id.
    stype : str | None
        Expected stream type (labkit's marker outlets use ``"Markers"``).
    timeout_s : float
        Resolve/open timeout, s.
    max_buffer_s : int
        Inlet buffer, s.

    Attributes
    ----------
    other : list of (float, str)
        Markers that were not pulse events (kept, not parsed).
    """

    def __init__(
        self,
        name: str = DEFAULT_MARKER_STREAM,
        *,
        source_id: str | None = None,
        stype: str | None = MARKER_STREAM_TYPE,
        timeout_s: float = 5.0,
        max_buffer_s: int = 360,
    ) -> None:
        info = resolve_stream(name, source_id=source_id, stype=stype, timeout_s=timeout_s)
        if info.channel_format() != pylsl.cf_string:
            raise StreamError(f"LSL stream {name!r} is not a string marker stream "
                              f"({describe_stream(info)})")
        self.info = info
        self._inlet = pylsl.StreamInlet(info, max_buflen=max_buffer_s,
                                        processing_flags=_proc_flags(info, None))
        self._inlet.open_stream(timeout=timeout_s)
        self.other: list[tuple[float, str]] = []

    def pull(self, timeout_s: float = 0.0) -> list[tuple[float, PulseEvent]]:
        """Drain the markers received so far.

        Parameters
        ----------
        timeout_s : float
            Wait up to this long for the first marker, s (0: return what is there).

        Returns
        -------
        list of (float, PulseEvent)
            ``(time_s, event)`` per pulse, in arrival order; ``event.time_s == time_s``.
        """
        samples, stamps = self._inlet.pull_chunk(timeout=timeout_s, max_samples=100_000)
        return parse_pulse_markers(((s[0], t) for s, t in zip(samples, stamps, strict=True)),
                                   other=self.other)

    def close(self) -> None:
        """Close the inlet."""
        self._inlet.close_stream()

    def __enter__(self) -> PulseMarkerInlet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def parse_pulse_markers(
    markers: Iterable[tuple[str, float]], *, other: list | None = None
) -> list[tuple[float, PulseEvent]]:
    """Turn ``(marker_text, time_s)`` pairs into ``(time_s, PulseEvent)`` for pulses.

    Markers that are not JSON objects with ``"event": "pulse"`` are skipped (appended to
    ``other`` as ``(time_s, text)`` when given).
    """
    out = []
    for text, time_s in markers:
        try:
            payload = json.loads(text)
            ok = isinstance(payload, dict) and payload.get("event") == "pulse"
            event = PulseEvent.from_json(text, float(time_s)) if ok else None
        except (ValueError, TypeError):
            event = None
        if event is None:
            if other is not None:
                other.append((float(time_s), text))
            continue
        out.append((float(time_s), event))
    return out


# -- epochs -----------------------------------------------------------------------------
def _to_volts(info: Any, data: np.ndarray) -> np.ndarray:
    """Scale channels whose ``unit_mul`` is not 0 (µV from LSL) to volts; reset unit_mul."""
    data = np.array(data, dtype=np.float64, copy=True)
    for k, ch in enumerate(info["chs"]):
        mul = int(ch.get("unit_mul", 0))
        if mul:
            data[k] *= 10.0**mul
            ch["unit_mul"] = 0
    return data


def raw_from_stream(stream: Any, winsize_s: float | None = None) -> tuple[Any, np.ndarray]:
    """Copy a connected StreamLSL buffer into an ``mne.io.RawArray`` (data in volts).

    Parameters
    ----------
    stream : mne_lsl.stream.StreamLSL
        A connected stream.
    winsize_s : float | None
        Most recent window to copy, s; None: the whole buffer.

    Returns
    -------
    raw : mne.io.RawArray
        The data, in volts; ``raw.first_time_s`` is the LSL time of the first sample.
    timestamps : numpy.ndarray
        LSL time of every sample, s.
    """
    import mne

    data, stamps = stream.get_data(winsize=winsize_s)
    valid = stamps > 0  # an mne-lsl buffer not yet full is zero-padded at the front
    data, stamps = data[:, valid], stamps[valid]
    if stamps.size == 0:
        raise StreamError(f"stream {stream.name!r} has no samples in its buffer yet")
    info = stream.info.copy()
    with _quiet_mne():
        info = mne.pick_info(info, [info.ch_names.index(c) for c in stream.ch_names])
        volts = _to_volts(info, data)
        raw = mne.io.RawArray(volts, info, verbose=False)
    raw.first_time_s = float(stamps[0])
    return raw, stamps


def epochs_around_pulses(
    stream_or_raw: Any,
    pulse_times_s: Sequence[float] | np.ndarray,
    tmin_s: float = -0.1,
    tmax_s: float = 0.1,
    *,
    picks: Sequence[str] | str | None = None,
    baseline: tuple[float | None, float | None] | None = None,
    first_time_s: float | None = None,
    winsize_s: float | None = None,
    max_offset_s: float | None = None,
) -> Any:
    """MNE ``Epochs`` around pulse times (LSL seconds).

    Parameters
    ----------
    stream_or_raw : mne.io.BaseRaw | mne_lsl.stream.StreamLSL
        A Raw whose first sample was at LSL time ``first_time_s`` (argument, else the
        ``first_time_s`` attribute), or a connected StreamLSL (its buffer is copied with
        :func:`raw_from_stream`, sample timestamps kept).
    pulse_times_s : sequence of float
        LSL times of the pulses, s (e.g. from :class:`PulseMarkerInlet` or
        ``Discharge.time_s``).
    tmin_s, tmax_s : float
        Epoch window around each pulse, s.
    picks : sequence of str | str | None
        Channels to keep.
    baseline : tuple | None
        Passed to :class:`mne.Epochs` (None: no baseline correction).
    first_time_s : float | None
        LSL time of the Raw's first sample, s.
    winsize_s : float | None
        For a stream: how much of the buffer to use (None: all).
    max_offset_s : float | None
        Largest allowed distance between a pulse and its nearest sample (default: one
        sample period); pulses further away (in a gap, or outside the data) are skipped.

    Returns
    -------
    mne.Epochs
        Preloaded epochs (data in volts; ``get_data(units="uV")`` for µV). Time 0 is the
        sample nearest to each pulse. ``epochs.metadata`` has ``pulse_time_s``,
        ``sample_time_s`` and ``offset_ms`` (sample minus pulse) per kept pulse.

    Raises
    ------
    StreamError
        When no pulse falls inside the data, or a Raw has no known first time.
    """
    import mne
    import pandas as pd

    if not tmin_s < tmax_s:
        raise ValueError(f"epochs_around_pulses: tmin_s = {tmin_s} must be < tmax_s = {tmax_s}")
    pulses = np.atleast_1d(np.asarray(pulse_times_s, dtype=float))
    if isinstance(stream_or_raw, mne.io.BaseRaw):
        raw = stream_or_raw
        t_first = first_time_s if first_time_s is not None else getattr(
            raw, "first_time_s", None)
        if t_first is None:
            raise StreamError(
                "epochs_around_pulses: the Raw has no LSL time for its first sample; pass "
                "first_time_s= (or set raw.first_time_s)"
            )
        sfreq = raw.info["sfreq"]
        stamps = float(t_first) + np.arange(raw.n_times) / sfreq
    else:
        raw, stamps = raw_from_stream(stream_or_raw, winsize_s)
        sfreq = raw.info["sfreq"]
    limit = max_offset_s if max_offset_s is not None else 1.0 / sfreq
    idx = np.clip(np.searchsorted(stamps, pulses), 1, len(stamps) - 1)
    nearest = np.where(np.abs(stamps[idx - 1] - pulses) <= np.abs(stamps[idx] - pulses),
                       idx - 1, idx)
    offset = stamps[nearest] - pulses
    n_pre, n_post = int(np.ceil(-tmin_s * sfreq)), int(np.ceil(tmax_s * sfreq))
    keep = (np.abs(offset) <= limit) & (nearest - n_pre >= 0) & (
        nearest + n_post < len(stamps))
    if not keep.any():
        raise StreamError(
            f"epochs_around_pulses: none of the {pulses.size} pulse(s) has a full "
            f"{tmin_s:g}..{tmax_s:g} s window in the data (LSL time "
            f"{stamps[0]:.3f}-{stamps[-1]:.3f} s)"
        )
    events = np.column_stack([nearest[keep] + raw.first_samp,
                              np.zeros(keep.sum(), int), np.ones(keep.sum(), int)])
    metadata = pd.DataFrame({
        "pulse_time_s": pulses[keep],
        "sample_time_s": stamps[nearest[keep]],
        "offset_ms": offset[keep] * 1000.0,
    })
    with _quiet_mne():
        epochs = mne.Epochs(
            raw, events, event_id={"pulse": 1}, tmin=tmin_s, tmax=tmax_s, picks=picks,
            baseline=baseline, preload=True, reject_by_annotation=False, metadata=metadata,
            event_repeated="drop", verbose=False,
        )
    return epochs


# -- low-latency inlet ------------------------------------------------------------------
class LowLatencyInlet:
    """A pylsl inlet that drains everything buffered into a preallocated array.

    Each :meth:`pull` empties the inlet (chunk after chunk, no allocation in steady
    state) so that the caller always sees the newest samples: a loop that pulls a single
    chunk per turn returns the *oldest* data first and silently lags.

    Parameters
    ----------
    name : str
        Stream name (resolved with :func:`resolve_stream`, same refusal rules).
    source_id, stype : str | None
        Expected source id / type.
    max_samples : int
        Capacity of one pull, samples (older samples beyond it are dropped, newest kept;
        counted in ``overflow_samples``).
    timeout_s : float
        Resolve/open timeout, s.
    clocksync : bool | None
        Apply LSL clock synchronisation to timestamps (needed across machines). None:
        only for a stream from another host (:func:`needs_clocksync`).

    Attributes
    ----------
    n_channels : int
    sfreq : float
    overflow_samples : int
    """

    def __init__(
        self,
        name: str,
        *,
        source_id: str | None = None,
        stype: str | None = None,
        max_samples: int = 8192,
        timeout_s: float = 5.0,
        clocksync: bool | None = None,
        max_buffer_s: int = 2,
    ) -> None:
        if max_samples < 1:
            raise ValueError(f"LowLatencyInlet: max_samples = {max_samples} must be >= 1")
        self.info = resolve_stream(name, source_id=source_id, stype=stype, timeout_s=timeout_s)
        if self.info.channel_format() == pylsl.cf_string:
            raise StreamError(f"LowLatencyInlet needs a numeric stream; {name!r} is a marker "
                              "stream")
        flags = _proc_flags(self.info, clocksync)
        self._inlet = pylsl.StreamInlet(self.info, max_buflen=max_buffer_s, max_chunklen=0,
                                        processing_flags=flags)
        self._inlet.open_stream(timeout=timeout_s)
        self.n_channels = self.info.channel_count()
        self.sfreq = self.info.nominal_srate()
        self.max_samples = int(max_samples)
        dtype = np.float32 if self.info.channel_format() == pylsl.cf_float32 else np.float64
        if self.info.channel_format() not in (pylsl.cf_float32, pylsl.cf_double64):
            raise StreamError(f"LowLatencyInlet supports float32/float64 streams; "
                              f"{describe_stream(self.info)}")
        self._data = np.zeros((self.max_samples, self.n_channels), dtype=dtype)
        self._stamps = np.zeros(self.max_samples)
        self._scratch = np.zeros_like(self._data)
        self.overflow_samples = 0

    def pull(self) -> tuple[np.ndarray, np.ndarray]:
        """Drain the inlet.

        Returns
        -------
        data : numpy.ndarray
            ``(n_samples, n_channels)`` view into the preallocated buffer (valid until
            the next call), stream units (µV for labkit amplifiers).
        timestamps : numpy.ndarray
            LSL time of each sample, s (view, same lifetime).
        """
        n = 0
        while True:
            room = self.max_samples - n
            if room == 0:
                # full: keep draining into scratch, keep the newest max_samples
                _, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=self.max_samples,
                                               dest_obj=self._scratch, as_numpy=True)
                k = len(ts)
                if k == 0:
                    break
                self.overflow_samples += k
                self._data[:-k] = self._data[k:]
                self._stamps[:-k] = self._stamps[k:]
                self._data[-k:] = self._scratch[:k]
                self._stamps[-k:] = ts
                continue
            _, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=room,
                                           dest_obj=self._data[n:], as_numpy=True)
            k = len(ts)
            if k == 0:
                break
            self._stamps[n:n + k] = ts
            n += k
        return self._data[:n], self._stamps[:n]

    def close(self) -> None:
        """Close the inlet."""
        self._inlet.close_stream()

    def __enter__(self) -> LowLatencyInlet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
