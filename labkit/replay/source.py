"""A recorded session as a replay serves it: its delivered pulses and its numeric recordings.

:func:`load_session` reads the session log's ``pulse`` records (in time order) and every
numeric recording (EMG, EEG) exactly as stored, and checks that each recording covers
every pulse's epoch (``pre_s`` before to ``post_s`` after the pulse, without a gap). A
missing recording, or one that ends (or starts, or has a hole) inside an epoch, is refused
with a :class:`ReplayError` naming the file and the last usable time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabkitError
from labkit.recording import DATA_FILE, HEADER_FILE, TIMES_FILE, RecordingError, read_recording
from labkit.session.log import LOG_FILE, read_log

__all__ = ["LoggedPulse", "RecordedSession", "RecordedStream", "ReplayError", "load_session"]

#: Epoch every replayed pulse needs from the recordings: the MEP meter's -100..100 ms plus
#: a margin, s.
DEFAULT_PRE_S = 0.15
DEFAULT_POST_S = 0.15


class ReplayError(LabkitError):
    """A session cannot be replayed (missing or truncated recording, no log, no notebook)."""


@dataclass(frozen=True)
class LoggedPulse:
    """One pulse the session delivered, as its log holds it.

    Attributes
    ----------
    number : int
        1-based position among the session's pulses (time order).
    time_s : float
        LSL time of the pulse, s.
    intensity_percent : float
        Output A, % MSO.
    source : str | None
        Who logged it (``"single"`` for rig pulses, a runner's label, ...).
    """

    number: int
    time_s: float
    intensity_percent: float
    source: str | None = None


@dataclass(frozen=True)
class RecordedStream:
    """One numeric recording of the session.

    Attributes
    ----------
    label : str
        Folder name under ``recordings/``.
    path : Path
        The recording folder.
    info : dict
        Its header (name, type, ch_names, units, sfreq, ...).
    samples : numpy.ndarray
        ``(n_times, n_channels)`` float32, exactly as stored.
    times_s : numpy.ndarray
        LSL time of every sample on the recording computer's clock, s.
    """

    label: str
    path: Path
    info: dict
    samples: np.ndarray
    times_s: np.ndarray

    @property
    def kind(self) -> str:
        """Lower-case stream type (``"emg"``, ``"eeg"``, ...)."""
        return str(self.info.get("type") or "").lower()

    @property
    def sfreq(self) -> float:
        """Nominal sampling rate, Hz."""
        return float(self.info["sfreq"])

    def nearest_sample(self, time_s: float) -> int:
        """Index of the sample nearest to ``time_s``."""
        idx = int(np.searchsorted(self.times_s, time_s))
        idx = min(max(idx, 1), len(self.times_s) - 1)
        before, after = self.times_s[idx - 1], self.times_s[idx]
        return idx - 1 if abs(before - time_s) <= abs(after - time_s) else idx

    def truncated_file(self) -> Path:
        """The file that ends first (``data.f32`` or ``times.f64``)."""
        n_ch = int(self.info["n_channels"])
        data, times = self.path / DATA_FILE, self.path / TIMES_FILE
        n_data = data.stat().st_size // (4 * n_ch) if data.exists() else 0
        n_times = times.stat().st_size // 8 if times.exists() else 0
        return data if n_data <= n_times else times


@dataclass(frozen=True)
class RecordedSession:
    """What a replay serves: the pulses and the numeric recordings of one session.

    Attributes
    ----------
    path : Path
        The session folder.
    start_s : float
        LSL time of the log's first record (times in messages count from it), s.
    pulses : tuple of LoggedPulse
        Every delivered pulse, in time order.
    streams : dict of str to RecordedStream
        Numeric recordings by label.
    """

    path: Path
    start_s: float
    pulses: tuple[LoggedPulse, ...]
    streams: dict[str, RecordedStream]

    def stream_for(self, name: str, kind: str, exclude: tuple[str, ...] = ()
                   ) -> RecordedStream | None:
        """The recording of the stream a profile calls ``name``, else the first of ``kind``.

        A recorded stream called ``name`` or ``name-<suffix>`` (a simulated rig's) is
        preferred; else the first recording (by label) whose stream type is ``kind``.
        """
        by_label = [self.streams[label] for label in sorted(self.streams)]
        for match in (lambda s: s.info.get("name") == name,
                      lambda s: str(s.info.get("name", "")).startswith(f"{name}-"),
                      lambda s: s.kind == kind.lower()):
            for stream in by_label:
                if match(stream):
                    return stream
        return None

    def session_time(self, time_s: float) -> float:
        """Seconds since the session's first log record."""
        return float(time_s) - self.start_s


def _pulses(records) -> tuple[LoggedPulse, ...]:
    rows = sorted((float(r.time_s), r.seq, r.payload) for r in records if r.kind == "pulse")
    return tuple(
        LoggedPulse(number=k + 1, time_s=t, intensity_percent=float(p["intensity_percent"]),
                    source=p.get("source"))
        for k, (t, _, p) in enumerate(rows))


def _load_stream(label: str, path: Path) -> RecordedStream:
    data, times, info = read_recording(path)
    samples = np.ascontiguousarray(data.T, dtype=np.float32)  # float32 on disk: exact
    return RecordedStream(label=label, path=path, info=dict(info), samples=samples,
                          times_s=np.asarray(times, dtype=np.float64))


def _check_covers(stream: RecordedStream, session: RecordedSession, pre_s: float,
                  post_s: float) -> None:
    """Refuse a recording that does not hold every pulse's epoch without a gap."""
    times = stream.times_s
    if times.size < 2:
        raise ReplayError(f"{stream.truncated_file()}: the recording holds no usable samples "
                          f"(last usable time: none); the session's {len(session.pulses)} "
                          "pulse(s) cannot be replayed")
    last = session.session_time(times[-1])
    step_limit = 1.5 / stream.sfreq
    for pulse in session.pulses:
        need_from, need_to = pulse.time_s - pre_s, pulse.time_s + post_s
        at = session.session_time(pulse.time_s)
        if need_to > times[-1]:
            raise ReplayError(
                f"{stream.truncated_file()}: the recording is truncated after "
                f"{times.size} complete samples: its last usable time is {last:.3f} s into "
                f"the session; pulse {pulse.number} of {len(session.pulses)} at {at:.3f} s "
                f"needs samples up to {session.session_time(need_to):.3f} s")
        if need_from < times[0]:
            raise ReplayError(
                f"{stream.path / DATA_FILE}: the recording starts at "
                f"{session.session_time(times[0]):.3f} s into the session, after the "
                f"epoch of pulse {pulse.number} at {at:.3f} s (needs samples from "
                f"{session.session_time(need_from):.3f} s)")
        lo, hi = np.searchsorted(times, [need_from, need_to])
        steps = np.diff(times[max(lo - 1, 0):hi + 1])
        if steps.size and steps.max() > step_limit:
            gap_at = times[max(lo - 1, 0) + int(np.argmax(steps))]
            raise ReplayError(
                f"{stream.path / DATA_FILE}: the recording has a {steps.max() * 1000:.1f} ms "
                f"hole at {session.session_time(gap_at):.3f} s into the session, inside the "
                f"epoch of pulse {pulse.number} at {at:.3f} s; the last usable time before "
                f"it is {session.session_time(gap_at):.3f} s")


def load_session(path: str | os.PathLike, *, pre_s: float = DEFAULT_PRE_S,
                 post_s: float = DEFAULT_POST_S) -> RecordedSession:
    """Read and check a session for replay.

    Parameters
    ----------
    path : str | os.PathLike
        The session folder (holds ``log.jsonl`` and ``recordings/``).
    pre_s, post_s : float
        Recorded samples every pulse needs before and after it, s.

    Returns
    -------
    RecordedSession
        The pulses and numeric recordings.

    Raises
    ------
    ReplayError
        No log; a recording the log started is missing; a recording does not cover a
        pulse's epoch (the message names the file and the last usable time); no EMG
        recording while the session delivered pulses.
    """
    path = Path(path)
    log_path = path / LOG_FILE
    if not log_path.is_file():
        raise ReplayError(f"{log_path}: no session log here; give a session folder "
                          "(sub-*/ses-*) or a run folder that holds one")
    records = read_log(log_path)
    start_s = float(records[0].time_s) if records else 0.0
    pulses = _pulses(records)
    streams: dict[str, RecordedStream] = {}
    started = {r.payload.get("recording"): r for r in records if r.kind == "recording_start"}
    for label, record in sorted(started.items()):
        folder = path / str(record.payload.get("path") or Path("recordings") / str(label))
        if not (folder / HEADER_FILE).is_file():
            raise ReplayError(
                f"{folder / HEADER_FILE}: recording {label!r} is missing (the log started it "
                f"{record.time_s - start_s:.3f} s into the session); no usable samples, "
                "last usable time: none")
    recordings = path / "recordings"
    folders = sorted(p for p in recordings.iterdir() if (p / HEADER_FILE).is_file()) \
        if recordings.is_dir() else []
    for folder in folders:
        try:
            header = json.loads((folder / HEADER_FILE).read_text(encoding="utf-8"))
            if header.get("channel_format") == "string":
                continue  # markers: the replayed driver publishes its own
            streams[folder.name] = _load_stream(folder.name, folder)
        except (RecordingError, ValueError, KeyError, OSError) as exc:
            raise ReplayError(f"{folder / HEADER_FILE}: unreadable recording: {exc}") from exc
    session = RecordedSession(path=path, start_s=start_s, pulses=pulses, streams=streams)
    if pulses and not streams:
        raise ReplayError(f"{recordings}: the session delivered {len(pulses)} pulse(s) but "
                          "holds no EMG recording to serve their MEPs from")
    for stream in streams.values():
        _check_covers(stream, session, pre_s, post_s)
    return session
