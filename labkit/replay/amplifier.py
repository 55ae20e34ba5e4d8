"""Serve a recording over LSL so that each replayed pulse finds its recorded samples.

:class:`SampleMap` decides which recorded sample every replayed sample shows (pure, no
clock). The stream runs on its own uniform sample clock; when replayed pulse *k* lands on
replayed sample ``j_k``, the samples from ``j_k - pre`` on show the recording from
``i_k - pre`` on, where ``i_k`` is the recorded sample nearest to the session's pulse *k*.
An MEP cut around the replayed pulse is therefore the recorded one, sample for sample.
Between pulses the recording simply continues; should it reach the next pulse's epoch
before the notebook fires that pulse, it loops over the quiet stretch after the previous
epoch (so no recorded MEP appears without its pulse).

:class:`ReplayAmplifier` streams a :class:`~labkit.replay.source.RecordedStream` through a
:class:`SampleMap`. It holds samples back ``lag_s`` (longer than ``pre``): a pulse's
marker arrives before its pre-pulse samples are sent, so they can still be chosen. And
just before a pulse is fired (:meth:`ReplayAmplifier.expect`) it sends nothing from
``pre`` before that moment until the pulse's marker has come (at most ``hold_s``), so a
marker delayed by a loaded machine still finds its pre-pulse samples unsent.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import pylsl

from labkit.clock import local_clock
from labkit.replay.source import RecordedStream

__all__ = ["ReplayAmplifier", "SampleMap"]


class SampleMap:
    """Which recorded sample each replayed sample shows.

    Parameters
    ----------
    n_recorded : int
        Samples in the recording.
    pulse_samples : sequence of int
        Recorded sample of each of the session's pulses, in order.
    pre, post : int
        Samples of every pulse's epoch before and after its sample.
    """

    def __init__(self, n_recorded: int, pulse_samples: Sequence[int], pre: int,
                 post: int) -> None:
        if n_recorded < 1:
            raise ValueError("SampleMap: the recording is empty")
        self.n_recorded = int(n_recorded)
        self.pulse_samples = [int(i) for i in pulse_samples]
        self.pre, self.post = int(pre), int(post)
        self.next_j = 0  # first replayed sample not yet taken
        self._base_j, self._base_i = 0, 0
        self._loop_i, self._limit_i = self._stretch(-1)
        self._seeks: list[tuple[int, int, int]] = []  # (from replayed j, from recorded i, k)
        #: Pulses whose pre-pulse samples had already been taken when they were placed.
        self.late = 0

    def _stretch(self, k: int) -> tuple[int, int]:
        """Quiet stretch after pulse ``k``'s epoch, up to pulse ``k + 1``'s (recorded)."""
        start = 0 if k < 0 else self.pulse_samples[k] + self.post + 1
        nxt = k + 1
        limit = self.pulse_samples[nxt] - self.pre if nxt < len(self.pulse_samples) \
            else self.n_recorded
        limit = min(limit, self.n_recorded)
        if start >= limit:  # no quiet stretch (trains): go on to the end, then loop it all
            limit = self.n_recorded
            start = min(start, self.n_recorded - 1)
        return start, limit

    def place(self, k: int, j: int) -> bool:
        """Pulse ``k`` (0-based) of the session was replayed on sample ``j``.

        Returns
        -------
        bool
            False when its pre-pulse samples were already taken (counted in :attr:`late`).
        """
        i = self.pulse_samples[k]
        start_j = j - self.pre
        self._seeks.append((start_j, i - self.pre, k))
        self._seeks.sort()
        if start_j < self.next_j:
            self.late += 1
            return False
        return True

    def take(self, n: int) -> np.ndarray:
        """Recorded indices of the next ``n`` replayed samples."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            j = self.next_j
            while self._seeks and self._seeks[0][0] <= j:
                start_j, start_i, k = self._seeks.pop(0)
                self._base_j, self._base_i = start_j, start_i
                self._loop_i, self._limit_i = self._stretch(k)
            c = self._base_i + (j - self._base_j)
            if c >= self._limit_i or c < 0:
                if c >= self._limit_i and self._limit_i >= self.n_recorded:
                    self._loop_i, self._limit_i = 0, self.n_recorded  # past the end: all
                self._base_j, self._base_i = j, self._loop_i
                c = self._loop_i
            run = min(n - filled, self._limit_i - c)
            if self._seeks:
                run = min(run, self._seeks[0][0] - j)
            run = max(run, 1)
            out[filled:filled + run] = np.arange(c, c + run)
            filled += run
            self.next_j += run
        return out


class ReplayAmplifier:
    """Streams a recording over LSL in real time, aligned on the replayed pulses.

    Parameters
    ----------
    stream : RecordedStream
        The recording to serve.
    pulse_times_s : sequence of float
        LSL times of the session's pulses (the recording's clock), in order.
    name, source_id : str
        LSL stream name and source id.
    pre_s, post_s : float
        Epoch around every pulse that must be the recorded one, s.
    lag_s : float
        How long samples are held back before they are sent, s (must exceed ``pre_s``
        plus the time a pulse's marker usually takes to arrive).
    hold_s : float
        Longest wait for the marker of a pulse announced with :meth:`expect`, s.
    chunk_s : float
        Push period, s.

    Attributes
    ----------
    late_discharges : int
        Replayed pulses whose pre-pulse samples were already sent when their marker came.
    """

    def __init__(self, stream: RecordedStream, pulse_times_s: Sequence[float], *, name: str,
                 source_id: str, pre_s: float = 0.15, post_s: float = 0.15,
                 lag_s: float = 0.35, hold_s: float = 2.0, chunk_s: float = 0.005) -> None:
        if not lag_s > pre_s:
            raise ValueError(f"ReplayAmplifier: lag_s = {lag_s} must exceed pre_s = {pre_s}")
        self.recording = stream
        self.name, self.source_id = name, source_id
        self.fs = stream.sfreq
        self.lag_s, self.chunk_s, self.hold_s = float(lag_s), float(chunk_s), float(hold_s)
        self.pre_s = float(pre_s)
        self._hold: tuple[int, float] | None = None  # (first sample not to send, until)
        pulses = [stream.nearest_sample(t) for t in pulse_times_s]
        self.map = SampleMap(len(stream.times_s), pulses, int(math.ceil(pre_s * self.fs)),
                             int(math.ceil(post_s * self.fs)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self.t0: float | None = None
        self.samples_pushed = 0

    @property
    def late_discharges(self) -> int:
        """Replayed pulses that came too late for their pre-pulse samples."""
        return self.map.late

    def stream_info(self) -> pylsl.StreamInfo:
        """The LSL description: the recorded stream's type, channels, units and rate."""
        info = self.recording.info
        n_ch = int(info["n_channels"])
        out = pylsl.StreamInfo(self.name, str(info.get("type") or ""), n_ch, self.fs,
                               pylsl.cf_float32, self.source_id)
        chans = out.desc().append_child("channels")
        for k in range(n_ch):
            ch = chans.append_child("channel")
            ch.append_child_value("label", str(info["ch_names"][k]))
            ch.append_child_value("unit", str(info["units"][k]))
            ch.append_child_value("type", str(info["ch_types"][k]).upper())
        acq = out.desc().append_child("acquisition")
        acq.append_child_value("manufacturer", "labkit")
        acq.append_child_value("model", f"replay of recording {self.recording.label!r}")
        return out

    def start(self) -> None:
        """Open the outlet and start streaming."""
        if self._thread is not None:
            return
        self._outlet = pylsl.StreamOutlet(self.stream_info(), chunk_size=0, max_buffered=60)
        self.t0 = local_clock()
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop streaming and drop the outlet."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=2.0)
        self._outlet = None

    def expect(self, now_s: float) -> None:
        """A pulse is about to be fired (at or after LSL time ``now_s``): hold its epoch."""
        if self.t0 is None:
            return
        first = int(math.floor((now_s - self.pre_s - self.t0) * self.fs))
        with self._lock:
            self._hold = (first, local_clock() + self.hold_s)

    def on_pulse(self, k: int, time_s: float) -> None:
        """Replayed pulse ``k`` (0-based) happened at LSL time ``time_s``."""
        if self.t0 is None:
            return
        with self._lock:
            self._hold = None
            if k < len(self.map.pulse_samples):
                self.map.place(k, int(round((time_s - self.t0) * self.fs)))

    def _due(self) -> int:
        """Samples that may be sent now: ``lag_s`` old, and before a held epoch."""
        now = local_clock()
        due = int(math.floor((now - self.lag_s - self.t0) * self.fs)) + 1
        hold = self._hold
        if hold is not None:
            if now < hold[1]:
                due = min(due, hold[0])
            else:
                self._hold = None  # the pulse never came (refused, or the unit failed)
        return due

    def _run(self) -> None:
        max_chunk = max(int(self.fs * 0.1), 1)
        samples = self.recording.samples
        while not self._stop.is_set():
            due = self._due()
            while due > self.map.next_j and not self._stop.is_set():
                with self._lock:
                    first = self.map.next_j
                    idx = self.map.take(min(due - first, max_chunk))
                stamps = self.t0 + np.arange(first, first + idx.size) / self.fs
                outlet = self._outlet
                if outlet is None:
                    return
                outlet.push_chunk(np.ascontiguousarray(samples[idx]), stamps.tolist())
                self.samples_pushed += idx.size
            self._stop.wait(self.chunk_s)
