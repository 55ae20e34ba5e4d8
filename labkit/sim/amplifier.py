"""Simulated LSL amplifiers: EMG (MEPs of the virtual subject) and EEG (mu rhythm).

Both amplifiers own a **sample clock**: sample ``k`` is the signal at LSL time
``t0 + k / fs`` where ``t0`` is the ``local_clock()`` time of :meth:`start`. A background
thread pushes every sample once its time is ``latency_ms`` in the past (the amplifier's
hardware latency), in chunks of about ``chunk_ms``, each sample with its own timestamp
``t0 + k / fs``. A discharge (the amplifier is a coil: call it with a
:class:`~labkit.sim.events.Discharge`) is placed **sample-locked**: its pulse sample is
``round((discharge.time_s - t0) * fs)``, the TMS artifact starts there and each MEP starts
``round(latency_ms * fs / 1000)`` samples later. Because samples are held back by
``latency_ms``, a discharge that is reported a few ms after it happened still lands on the
right sample; one reported later than that loses the samples already sent (counted in
``late_discharges``).

A reader that epochs the stream at the discharge time therefore finds the artifact at 0
and the MEP at exactly its latency, with the peak-to-peak amplitude the subject recorded
plus the background noise ``noise_uv``. That noise is keyed to the discharges
(:class:`~labkit.sim.noise.DischargeLockedNoise`): the ``n``-th discharge sits in the same
noise on every run, whatever sample the host's scheduling put it on, so everything
measured around a pulse reproduces exactly with the noise on. The pre-stimulus part of that
(``lead_ms`` before the pulse) reproduces when the amplifier holds samples back longer
than ``lead_ms`` (``latency_ms`` > ``lead_ms``), as the simulated rig's profile does.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pylsl

from labkit.clock import local_clock
from labkit.errors import StreamError
from labkit.sim.contraction import TonicEMG
from labkit.sim.events import Discharge
from labkit.sim.noise import DischargeLockedNoise
from labkit.sim.subject import MEPResponse, VirtualSubject, register_eeg_clock

__all__ = ["EEGAmplifier", "EMGAmplifier", "tms_artifact"]

#: EEG channels streamed by default: C3 and its four Hjorth neighbours.
EEG_CHANNELS = ("C3", "FC1", "FC5", "CP1", "CP5")


def tms_artifact(
    intensity_percent: float,
    fs: float,
    *,
    gain_uv_per_percent: float,
    tau_ms: float,
    duration_ms: float,
) -> np.ndarray:
    """TMS artifact samples, starting at the pulse sample.

    A large biphasic spike (one sample up, one down) followed by an exponential decay,
    truncated to exactly zero after ``duration_ms`` so that it never reaches the MEP
    window.

    Parameters
    ----------
    intensity_percent : float
        Stimulator output, %MSO; the peak scales with it.
    fs : float
        Sampling rate, Hz.
    gain_uv_per_percent : float
        Peak amplitude per %MSO, µV.
    tau_ms : float
        Decay time constant, ms.
    duration_ms : float
        Length of the artifact, ms.

    Returns
    -------
    numpy.ndarray
        Artifact samples, µV.
    """
    n = max(int(round(duration_ms * fs / 1000.0)), 3)
    peak = gain_uv_per_percent * float(intensity_percent)
    t_ms = np.arange(n) * 1000.0 / fs
    out = 0.15 * peak * np.exp(-t_ms / tau_ms)
    out[0] = peak
    out[1] = -0.6 * peak
    # fade the tail linearly to exactly zero at the last sample
    last = n - 1
    out *= np.clip((last - np.arange(n)) / (0.2 * last), 0.0, 1.0)
    return out


class _LSLAmplifier:
    """Common machinery: outlet, sample clock, pending additions and the push thread."""

    stream_type = "EEG"
    default_name = "labkit-sim"

    def __init__(
        self,
        *,
        name: str | None,
        source_id: str | None,
        fs: float,
        chunk_ms: float,
        channels: Sequence[str],
        latency_ms: float,
        seed: int,
    ) -> None:
        if not (fs > 0 and math.isfinite(fs)):
            raise ValueError(f"{type(self).__name__}: fs = {fs!r} Hz must be > 0")
        if not (0.1 <= chunk_ms <= 100.0):
            raise ValueError(f"{type(self).__name__}: chunk_ms = {chunk_ms!r} outside 0.1-100 ms")
        if not (0.0 <= latency_ms <= 1000.0):
            raise ValueError(
                f"{type(self).__name__}: latency_ms = {latency_ms!r} outside 0-1000 ms"
            )
        self.channels = tuple(channels)
        if not self.channels:
            raise ValueError(f"{type(self).__name__}: channels must not be empty")
        self.fs = float(fs)
        self.chunk_ms = float(chunk_ms)
        self.latency_ms = float(latency_ms)
        self.name = name or f"{self.default_name}-{uuid.uuid4().hex[:8]}"
        self.source_id = source_id or f"{self.name}-{uuid.uuid4().hex}"
        self.seed = int(seed)
        self._rng = np.random.default_rng([self.seed, 7])
        self._lock = threading.Lock()
        self._pending: list[tuple[int, np.ndarray]] = []  # (first sample, (n_ch, n) µV)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self.t0: float | None = None
        self.samples_pushed = 0
        self.samples_dropped = 0
        self._paused = threading.Event()
        self.late_discharges = 0
        self.dropped_discharges = 0
        #: (discharge, pulse sample index) of every discharge placed in the stream.
        self.placed: list[tuple[Discharge, int]] = []
        #: While this returns True the amplifier sends nothing: the stimulator emulator
        #: has host bytes it has not handled, whose discharges may fall on samples due
        #: now (see :meth:`labkit.sim.transport.SerialEmulator.holds_samples`).
        self.hold_while: Callable[[], bool] | None = None
        #: Longest hold, s; after it the amplifier streams on (counted in
        #: ``holds_timed_out``) until the emulator has caught up once.
        self.max_hold_s = 1.0
        self.holds_timed_out = 0
        self._hold_gave_up = False

    # -- stream metadata ----------------------------------------------------------------
    def stream_info(self) -> pylsl.StreamInfo:
        """The LSL stream description (labels, units, types in ``desc/channels``)."""
        info = pylsl.StreamInfo(
            self.name, self.stream_type, len(self.channels), self.fs, pylsl.cf_float32,
            self.source_id,
        )
        chans = info.desc().append_child("channels")
        for label in self.channels:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
            ch.append_child_value("type", self.stream_type)
        acq = info.desc().append_child("acquisition")
        acq.append_child_value("manufacturer", "labkit")
        acq.append_child_value("model", f"simulated {self.stream_type} amplifier")
        return info

    # -- sample clock -------------------------------------------------------------------
    def sample_index(self, time_s: float) -> int:
        """Index of the sample nearest to LSL time ``time_s`` (amplifier started)."""
        if self.t0 is None:
            raise StreamError(f"amplifier {self.name!r} is not started: no sample clock yet")
        return int(round((time_s - self.t0) * self.fs))

    def sample_time(self, index: int | np.ndarray) -> float | np.ndarray:
        """LSL time of sample ``index``, s."""
        if self.t0 is None:
            raise StreamError(f"amplifier {self.name!r} is not started: no sample clock yet")
        return self.t0 + np.asarray(index, dtype=float) / self.fs

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Open the outlet and start streaming (idempotent)."""
        if self._thread is not None:
            return
        self._outlet = pylsl.StreamOutlet(self.stream_info(), chunk_size=0, max_buffered=60)
        self._stop.clear()
        self._paused.clear()
        with self._lock:
            self._pending = []
        self.t0 = local_clock()
        self._next = 0
        self._thread = threading.Thread(target=self._run, name=f"amp-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop streaming and drop the outlet (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=2.0)
        self._outlet = None

    def pause(self) -> None:
        """Stop sending samples but keep the outlet (a stalled amplifier / cable fault).

        Samples due while paused are never sent: readers see a gap in the timestamps.
        """
        self._paused.set()

    def resume(self) -> None:
        """Send samples again after :meth:`pause` (from the current time on)."""
        self._paused.clear()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused.is_set()

    @property
    def running(self) -> bool:
        """True while the push thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the coil ------------------------------------------------------------------------
    def _additions(self, discharge: Discharge, pulse: int) -> list[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def _background(self, first: int, n: int) -> np.ndarray:
        raise NotImplementedError

    def _place(self, discharge: Discharge, pulse: int) -> None:
        """Hook run under the lock when a discharge is placed (before later samples)."""

    def __call__(self, discharge: Discharge) -> None:
        """Receive one coil discharge and place its signals in the stream."""
        if self.t0 is None or self._thread is None:
            self.dropped_discharges += 1
            self._additions(discharge, -1)  # keep the subject's sequence of trials
            return
        pulse = self.sample_index(discharge.time_s)
        adds = self._additions(discharge, pulse)
        with self._lock:
            if pulse < self._next:
                self.late_discharges += 1
                warnings.warn(
                    f"amplifier {self.name!r}: discharge at {discharge.time_s:.4f} s arrived "
                    f"{(self._next - pulse) / self.fs * 1000:.1f} ms after its sample was "
                    f"sent (latency_ms = {self.latency_ms}); its start is lost",
                    RuntimeWarning, stacklevel=2,
                )
            self._pending.extend(adds)
            self._place(discharge, pulse)
            self.placed.append((discharge, pulse))

    # -- push thread ----------------------------------------------------------------------
    def _render(self, first: int, n: int) -> np.ndarray:
        """Samples [first, first + n) as (n_channels, n) µV, with pending additions."""
        end = first + n
        keep = []
        with self._lock:  # discharges are placed either wholly before or after this block
            data = self._background(first, n)
            for start, arr in self._pending:
                stop = start + arr.shape[1]
                lo, hi = max(start, first), min(stop, end)
                if lo < hi:
                    data[:, lo - first:hi - first] += arr[:, lo - start:hi - start]
                if stop > end:
                    keep.append((start, arr))
            self._pending = keep
            self._next = end
        return data

    def _wait_for_stimulator(self) -> None:
        """Hold the samples while :attr:`hold_while` says a discharge may still come for
        them (at most :attr:`max_hold_s`, then not again until it was False once)."""
        hold = self.hold_while
        if hold is None:
            return
        deadline = time.monotonic() + self.max_hold_s
        while hold():
            if self._hold_gave_up or self._stop.is_set():
                return
            if time.monotonic() >= deadline:
                self.holds_timed_out += 1
                self._hold_gave_up = True
                return
            self._stop.wait(0.0005)
        self._hold_gave_up = False

    def _run(self) -> None:
        period = self.chunk_ms / 1000.0
        delay = self.latency_ms / 1000.0
        max_chunk = max(int(self.fs * 0.1), 1)
        while not self._stop.is_set():
            # the clock first: a command announced after the hold is dated after it
            due = int(math.floor((local_clock() - delay - self.t0) * self.fs)) + 1
            self._wait_for_stimulator()
            if self._paused.is_set():
                if due > self._next:
                    n_drop = due - self._next
                    self._render(self._next, n_drop)  # the signal goes on; nobody hears it
                    self.samples_dropped += n_drop
                self._stop.wait(period)
                continue
            while due > self._next and not self._stop.is_set():
                first = self._next
                n = min(due - first, max_chunk)
                data = self._render(first, n)
                stamps = self.t0 + np.arange(first, first + n) / self.fs
                outlet = self._outlet
                if outlet is None:
                    return
                outlet.push_chunk(
                    np.ascontiguousarray(data.T, dtype=np.float32), stamps.tolist()
                )
                self.samples_pushed += n
            self._stop.wait(period)


class EMGAmplifier(_LSLAmplifier):
    """Streams the virtual subject's EMG over LSL, in real time.

    Parameters
    ----------
    subject : VirtualSubject
        The subject whose MEPs are recorded.
    name : str | None
        LSL stream name (unique per rig); random when None.
    source_id : str | None
        LSL source id; random when None.
    fs : float
        Sampling rate, Hz (5 kHz).
    chunk_ms : float
        Push period, ms.
    channels : sequence of str
        EMG channel labels; each must be one of the subject's EMG channels.
    noise_uv : float
        RMS of the white background EMG noise, µV (keyed to the discharges: it
        reproduces run after run).
    latency_ms : float
        How long samples are held back before they are pushed, ms.
    seed : int | None
        Seed of the background noise; defaults to the subject's seed.
    artifact_gain_uv_per_percent : float
        TMS artifact peak per %MSO, µV (60 %MSO → 3 mV).
    lead_ms : float
        Pre-stimulus span keyed to each discharge, ms: it reproduces exactly when
        ``latency_ms`` exceeds it (the discharge is known before those samples are sent).

    Attributes
    ----------
    placed : list of (Discharge, int)
        Every discharge streamed, with its pulse sample index.
    responses : list of MEPResponse
        The subject's ground truth for the discharges this amplifier received.
    """

    stream_type = "EMG"
    default_name = "labkit-sim-emg"

    def __init__(
        self,
        subject: VirtualSubject,
        *,
        name: str | None = None,
        source_id: str | None = None,
        fs: float = 5000.0,
        chunk_ms: float = 1.0,
        channels: Sequence[str] = ("FDI", "APB"),
        noise_uv: float = 5.0,
        latency_ms: float = 5.0,
        seed: int | None = None,
        artifact_gain_uv_per_percent: float = 50.0,
        lead_ms: float = 120.0,
    ) -> None:
        super().__init__(
            name=name, source_id=source_id, fs=fs, chunk_ms=chunk_ms, channels=channels,
            latency_ms=latency_ms, seed=subject.seed if seed is None else seed,
        )
        missing = [c for c in self.channels if c not in subject.emg_channels]
        if missing:
            raise ValueError(
                f"EMGAmplifier channels {missing} are not EMG channels of the subject; "
                f"allowed: {list(subject.emg_channels)}"
            )
        if not (0.0 <= noise_uv <= 1000.0):
            raise ValueError(f"EMGAmplifier noise_uv = {noise_uv!r} outside 0-1000 µV")
        self.subject = subject
        self.noise_uv = float(noise_uv)
        self.artifact_gain_uv_per_percent = float(artifact_gain_uv_per_percent)
        self.responses: list[MEPResponse] = []
        #: The subject's voluntary EMG and silent periods (nothing at rest).
        lead = int(round(float(lead_ms) * self.fs / 1000.0))
        self.tonic = TonicEMG(subject, self.channels, self.fs, self.seed, lead_samples=lead)
        self._noise = DischargeLockedNoise(self.seed, 7, len(self.channels), lead_samples=lead)

    def _place(self, discharge: Discharge, pulse: int) -> None:
        self._noise.discharge(pulse, self._next)
        self.tonic.discharge(pulse, self._next)

    def _background(self, first: int, n: int) -> np.ndarray:
        if self.noise_uv == 0:
            return self.tonic.add_to(np.zeros((len(self.channels), n)), first)
        return self.tonic.add_to(self._noise.draw(first, n) * self.noise_uv, first)

    def _additions(self, discharge: Discharge, pulse: int) -> list[tuple[int, np.ndarray]]:
        response = self.subject.respond(discharge)
        self.responses.append(response)
        if pulse < 0:
            return []
        self.tonic.silence(pulse, response)
        n_ch = len(self.channels)
        art = tms_artifact(discharge.intensity_percent, self.fs,
                           gain_uv_per_percent=self.artifact_gain_uv_per_percent,
                           tau_ms=1.0, duration_ms=6.0)
        adds = [(pulse, np.tile(art, (n_ch, 1)))]
        if discharge.intensity_b_percent is not None and discharge.ipi_ms:
            art_b = tms_artifact(discharge.intensity_b_percent, self.fs,
                                 gain_uv_per_percent=self.artifact_gain_uv_per_percent,
                                 tau_ms=1.0, duration_ms=6.0)
            second = pulse + int(round(discharge.ipi_ms * self.fs / 1000.0))
            adds.append((second, np.tile(art_b, (n_ch, 1))))
        for i, ch in enumerate(self.channels):
            wave = response.waveform_uv(ch, self.fs)
            onset = pulse + int(round(response.latencies_ms[ch] * self.fs / 1000.0))
            block = np.zeros((n_ch, wave.size))
            block[i] = wave
            adds.append((onset, block))
        return adds


class _SilentSource:
    """Background-only EEG when no generator is given: white noise of ``noise_uv``."""

    def __init__(self, n_channels: int, noise_uv: float, rng: np.random.Generator) -> None:
        self.n_channels, self.noise_uv, self.rng = n_channels, noise_uv, rng

    def generate(self, n_samples: int) -> np.ndarray:
        return self.rng.standard_normal((n_samples, self.n_channels)).T * self.noise_uv


class EEGAmplifier(_LSLAmplifier):
    """Streams simulated EEG (C3 and its Hjorth neighbours) over LSL, in real time.

    Parameters
    ----------
    source : object | None
        EEG generator with ``generate(n_samples) -> (n_channels, n_samples)`` µV, called
        with consecutive blocks, and optionally ``true_phase(sample_index)`` (rad),
        ``add_pulse(sample_index, scale)`` (the source then draws the TMS artifact itself,
        scale = intensity / 100 %MSO) and ``channels`` / ``channel_names`` / ``fs``
        attributes (checked against this amplifier's), e.g.
        :class:`labkit.sim.eeg.MuEEGSource`. None: white noise of ``noise_uv`` only.
    name, source_id : str | None
        LSL stream name and source id; random when None.
    fs : float
        Sampling rate, Hz (5 kHz).
    chunk_ms : float
        Push period, ms.
    channels : sequence of str | None
        Channel labels; default the source's ``channels`` or C3, FC1, FC5, CP1, CP5.
    noise_uv : float
        RMS of extra white amplifier noise, µV, added to the source.
    latency_ms : float
        How long samples are held back before they are pushed, ms.
    seed : int
        Seed of the amplifier noise.
    artifact_gain_uv_per_percent : float
        TMS artifact peak per %MSO, µV (60 %MSO → 6 mV).
    subject : VirtualSubject | None
        A subject whose MEPs should follow this stream's true phase (optional: a subject
        holding the same ``source`` finds this amplifier by itself).
    """

    stream_type = "EEG"
    default_name = "labkit-sim-eeg"

    def __init__(
        self,
        source: Any = None,
        *,
        name: str | None = None,
        source_id: str | None = None,
        fs: float = 5000.0,
        chunk_ms: float = 1.0,
        channels: Sequence[str] | None = None,
        noise_uv: float = 0.5,
        latency_ms: float = 5.0,
        seed: int = 0,
        artifact_gain_uv_per_percent: float = 100.0,
        subject: VirtualSubject | None = None,
    ) -> None:
        src_fs = getattr(source, "fs", None)
        if src_fs is None:
            src_fs = getattr(source, "sfreq", None)
        if src_fs is not None and abs(float(src_fs) - fs) > 1e-9:
            raise ValueError(
                f"EEGAmplifier fs = {fs} Hz does not match the source's {src_fs} Hz"
            )
        if channels is None:
            channels = tuple(
                getattr(source, "channels", None) or getattr(source, "channel_names", None)
                or getattr(source, "ch_names", None) or EEG_CHANNELS
            )
        super().__init__(
            name=name, source_id=source_id, fs=fs, chunk_ms=chunk_ms, channels=channels,
            latency_ms=latency_ms, seed=seed,
        )
        if not (0.0 <= noise_uv <= 1000.0):
            raise ValueError(f"EEGAmplifier noise_uv = {noise_uv!r} outside 0-1000 µV")
        self.noise_uv = float(noise_uv)
        self.artifact_gain_uv_per_percent = float(artifact_gain_uv_per_percent)
        self.source = source if source is not None else _SilentSource(
            len(self.channels), 0.0, self._rng)
        self.subject = subject
        self._generated = 0

    def start(self) -> None:
        """Start streaming and make the true phase available to subjects."""
        super().start()
        if hasattr(self.source, "true_phase"):
            register_eeg_clock(self.source, self.phase_at)
            if self.subject is not None and self.subject.eeg is None:
                self.subject.eeg = self.source

    def stop(self) -> None:
        """Stop streaming and unregister the phase clock."""
        super().stop()
        register_eeg_clock(self.source, None)

    def _place(self, discharge: Discharge, pulse: int) -> None:
        add_pulse = getattr(self.source, "add_pulse", None)
        if add_pulse is not None:
            # the source models its own artifact (labkit.sim.eeg.MuEEGSource), scaled
            # with the intensity: 100 %MSO = the source's template
            add_pulse(pulse, float(discharge.intensity_percent) / 100.0)

    def phase_at(self, time_s: float) -> float | None:
        """True phase of the source (rad, cosine convention) at LSL time ``time_s``."""
        getter = getattr(self.source, "true_phase", None)
        if getter is None or self.t0 is None:
            return None
        return float(getter(self.sample_index(time_s)))

    def _background(self, first: int, n: int) -> np.ndarray:
        data = np.array(self.source.generate(n), dtype=float)
        if data.shape != (len(self.channels), n):
            raise StreamError(
                f"EEG source {type(self.source).__name__}.generate({n}) returned shape "
                f"{data.shape}; expected ({len(self.channels)}, {n})"
            )
        self._generated += n
        if self.noise_uv:
            # drawn sample by sample: the noise of sample k is the same however the
            # stream was cut into chunks
            data += self._rng.standard_normal((n, len(self.channels))).T * self.noise_uv
        return data

    def _additions(self, discharge: Discharge, pulse: int) -> list[tuple[int, np.ndarray]]:
        if pulse < 0:
            return []
        if hasattr(self.source, "add_pulse"):
            return []  # the source draws the artifact itself: see _place
        art = tms_artifact(discharge.intensity_percent, self.fs,
                           gain_uv_per_percent=self.artifact_gain_uv_per_percent,
                           tau_ms=2.0, duration_ms=10.0)
        # C3 under the coil gets the full artifact, neighbours a little less.
        weights = np.array([1.0] + [0.7] * (len(self.channels) - 1))[:, None]
        return [(pulse, weights * art[None, :])]
