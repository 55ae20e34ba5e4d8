"""Continuous, crash-safe recording of LSL streams to disk.

A recording is a directory written append-only, so that a crash (``kill -9`` of the
kernel) loses at most what the recorder had not yet pulled from the inlet:

``header.json``
    Written (and fsync'd) first: stream name, type, source id, host, nominal rate,
    channel names, units and types, sample format.
``data.f32``
    Numeric streams: the samples as little-endian float32, one row of ``n_channels``
    values per sample (C order).
``times.f64``
    Numeric streams: one little-endian float64 LSL timestamp per sample.
``markers.jsonl``
    String streams (pulse markers): one JSON line ``{"time_s": t, "values": [...]}``
    per sample.
``clock_offsets.f64``
    Clock-offset measurements: rows of two little-endian float64, the local
    ``local_clock()`` time of the measurement and the offset (s) that the inlet's
    ``time_correction()`` gave for the stream's host then.

Time base (as in LabRecorder's XDF files): the timestamps on disk are the stream's own,
exactly as its outlet sent them (no liblsl post-processing), so on one host a 5 kHz
stream steps by exactly 200 µs. The clock offset is measured when the recording starts
and every ``clock_offset_interval_s`` after that. Readers (:func:`read_recording`,
:func:`read_markers`, :func:`to_raw`) synchronise on read: a robust linear fit of the
offsets over the whole recording maps the timestamps onto the local clock (see
:mod:`labkit.timesync`), where the session log's pulse times live; a stream made on the
recording computer itself keeps its timestamps (one clock; the measured offset is only
the estimate's bias); ``sync=False`` gives the stored timestamps. Recordings of
format 1 (made with liblsl's on-line clock sync, no offsets stored) are read as they are.

Every pulled chunk is handed to the kernel with ``os.write`` at once (so a killed
process loses nothing already pulled) and the files are ``fsync``'d every
``flush_interval_s`` (0.25 s by default) so that a power cut loses at most that long.
A torn tail (a row cut by the crash, or ``data.f32`` and ``times.f64`` of unequal length)
is detected when reading: only complete rows present in both files are returned.

Low disk space: at every fsync the free space is checked; below ``min_free_bytes`` the
``on_error`` callback receives a :class:`LowDiskSpaceError` (stop stimulating) while the
recording goes on. Disk full: any ``OSError`` while writing (``ENOSPC``, ``EDQUOT``,
``EIO``...) stops the recorder cleanly. What was written stays on disk (timestamps are
written before samples, so every complete row on disk can be read back);
:attr:`StreamRecorder.failed` becomes true, :attr:`StreamRecorder.error` holds a
:class:`RecordingError`, and ``on_error`` (for example a protocol runner's stop) is
called from the recorder thread. Tests simulate a full disk through the ``file_opener``
argument (a file object whose ``write`` raises ``ENOSPC``) and low space by replacing
``_free_bytes``, since mounting a tiny tmpfs needs root, which CI may not have.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from labkit.errors import LabkitError, StreamError
from labkit.timesync import ClockFit, dejitter, fit_clock_offsets, same_clock

__all__ = [
    "AppendFile",
    "LowDiskSpaceError",
    "RecordingError",
    "RecordingInfo",
    "StreamRecorder",
    "read_clock_offsets",
    "read_samples",
    "read_markers",
    "read_recording",
    "to_raw",
    "write_recording",
]

HEADER_FILE = "header.json"
DATA_FILE = "data.f32"
TIMES_FILE = "times.f64"
MARKERS_FILE = "markers.jsonl"
OFFSETS_FILE = "clock_offsets.f64"
#: 2: raw stream timestamps plus clock offsets; 1: timestamps clock-synced when recorded.
FORMAT_VERSION = 2

#: Unit spellings understood by :func:`to_raw`, with their factor to volts.
UNIT_TO_VOLTS = {
    "v": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "microvolts": 1e-6,
}

#: LSL stream type (lower case) → MNE channel type, when a channel does not say.
STREAM_TYPE_TO_CH_TYPE = {"emg": "emg", "eeg": "eeg", "ecg": "ecg", "eog": "eog", "misc": "misc"}


class RecordingError(LabkitError):
    """A recording could not be written or read.

    Parameters
    ----------
    message : str
        What went wrong.
    path : str | os.PathLike | None
        The recording directory or file concerned.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class LowDiskSpaceError(RecordingError):
    """Free disk space fell below the recorder's floor; the recording still runs."""


def _free_bytes(path: Path) -> int:
    """Free bytes for unprivileged users on the file system holding ``path``."""
    return shutil.disk_usage(path).free


class AppendFile:
    """An append-only file written with ``os.write`` and synced with ``os.fsync``.

    No user-space buffer: once :meth:`write` returns, the bytes are in the kernel and
    survive the death of the process. :meth:`sync` makes them survive a power cut.

    Parameters
    ----------
    path : str | os.PathLike
        File to open (created if missing, appended to otherwise).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` (loops over short writes); raises ``OSError``."""
        view = memoryview(data).cast("B")
        while len(view):
            n = os.write(self._fd, view)
            view = view[n:]

    def sync(self) -> None:
        """Flush the file to stable storage (``os.fsync``)."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Sync and close; safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


FileOpener = Callable[[Path], AppendFile]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RecordingInfo(dict):
    """The header of a recording (a ``dict`` with attribute-style helpers).

    Keys: ``name``, ``type``, ``source_id``, ``sfreq`` (nominal Hz, 0 for irregular),
    ``ch_names``, ``units``, ``ch_types``, ``channel_format``, ``n_samples`` (complete
    samples read back), ``torn_bytes`` (bytes of an incomplete tail that were ignored),
    ``n_gaps`` and ``max_gap_s`` (holes in the time axis, numeric streams).
    """

    @property
    def is_markers(self) -> bool:
        """True for a string (marker) stream."""
        return self.get("channel_format") == "string"


def _channel_descriptions(info: pylsl.StreamInfo) -> tuple[list[str], list[str], list[str]]:
    n = info.channel_count()
    names, units, types = [], [], []
    stream_type = (info.type() or "").lower()
    default_type = STREAM_TYPE_TO_CH_TYPE.get(stream_type, "misc")
    ch = info.desc().child("channels").child("channel")
    for i in range(n):
        label = unit = kind = ""
        if not ch.empty():
            label = ch.child_value("label")
            unit = ch.child_value("unit")
            kind = ch.child_value("type")
            ch = ch.next_sibling()
        names.append(label or f"ch{i + 1}")
        units.append(unit or ("microvolts" if default_type in ("emg", "eeg") else ""))
        types.append((kind or default_type).lower())
    return names, units, types


def _resolve(
    name: str, source_id: str | None, timeout_s: float, duplicate_wait_s: float
) -> pylsl.StreamInfo:
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout_s)
    if found and duplicate_wait_s > 0:  # give a second outlet of that name time to answer
        found = pylsl.resolve_byprop("name", name, minimum=2, timeout=duplicate_wait_s) or found
    if source_id is not None:
        found = [s for s in found if s.source_id() == source_id]
    if not found:
        where = f" with source_id '{source_id}'" if source_id is not None else ""
        raise StreamError(f"no LSL stream named '{name}'{where} found within {timeout_s} s")
    ids = {s.source_id() for s in found}
    if len(ids) > 1:
        raise StreamError(
            f"{len(found)} LSL streams are named '{name}' (source ids {sorted(ids)}); "
            "pass source_id to choose one (a second stream may be a spoofing outlet)"
        )
    return found[0]


class StreamRecorder:
    """Record one LSL stream to a crash-safe directory in a background thread.

    Parameters
    ----------
    source : str | pylsl.StreamInfo | pylsl.StreamInlet
        A stream name to resolve, a resolved ``StreamInfo``, or an open inlet.
    path : str | os.PathLike
        Recording directory; created. Refused if it already holds a recording.
    source_id : str | None
        When ``source`` is a name, only accept the stream with this source id. Without
        it, two streams of the same name are refused as ambiguous.
    resolve_timeout_s : float
        How long to look for a named stream.
    duplicate_wait_s : float
        After a named stream is found, how long to keep listening for a second stream of
        the same name (which is refused unless ``source_id`` singles one out).
    flush_interval_s : float
        Maximum time between ``fsync`` calls, in seconds (0 < value ≤ 1).
    max_chunk : int
        Maximum samples pulled per read.
    on_error : callable | None
        Called with a :class:`LowDiskSpaceError` when free space falls below
        ``min_free_bytes`` (recording goes on), and with the :class:`RecordingError` when
        writing fails (disk full; recording stops). Runs in the recorder thread; keep it
        short (e.g. set the runner's stop flag).
    min_free_bytes : int
        Free-space floor checked at every fsync (64 MiB by default; 0 disables), so that
        stimulation can stop before the disk is actually full.
    file_opener : callable | None
        ``file_opener(path) -> AppendFile``; for tests that simulate a full disk.
    clock_offset_interval_s : float
        Time between clock-offset measurements, s (0.1–60; liblsl refreshes its
        estimate every few seconds).
    clock_offset : callable | None
        ``clock_offset() -> float``: the offset (s) to add to the stream's timestamps to
        put them on the local clock. The inlet's ``time_correction()`` by default; tests
        pass a function to simulate a stream from another machine.
    start : bool
        Start the thread at once (default). Otherwise call :meth:`start`.

    Attributes
    ----------
    path : pathlib.Path
        The recording directory.
    n_samples : int
        Samples written so far.
    failed : bool
        True once a write error stopped the recorder.
    low_space : bool
        True once free space fell below ``min_free_bytes``.
    error : RecordingError | None
        The error that stopped it (or the low-space warning while it still records).
    """

    def __init__(
        self,
        source: str | pylsl.StreamInfo | pylsl.StreamInlet,
        path: str | os.PathLike,
        *,
        source_id: str | None = None,
        resolve_timeout_s: float = 5.0,
        duplicate_wait_s: float = 0.3,
        flush_interval_s: float = 0.25,
        max_chunk: int = 4096,
        on_error: Callable[[RecordingError], Any] | None = None,
        min_free_bytes: int = 64 * 2**20,
        file_opener: FileOpener | None = None,
        clock_offset_interval_s: float = 1.0,
        clock_offset: Callable[[], float] | None = None,
        start: bool = True,
    ) -> None:
        if not 0 < flush_interval_s <= 1.0:
            raise ValueError(
                f"flush_interval_s must be in (0, 1] s to lose at most 1 s, got {flush_interval_s}"
            )
        if not 0.1 <= clock_offset_interval_s <= 60.0:
            raise ValueError(
                f"clock_offset_interval_s must be in [0.1, 60] s, got {clock_offset_interval_s}"
            )
        self.path = Path(path)
        if (self.path / HEADER_FILE).exists():
            raise RecordingError("already holds a recording; choose a new directory", path=path)
        if isinstance(source, pylsl.StreamInlet):
            self._inlet = source
        else:
            info = source if isinstance(source, pylsl.StreamInfo) else _resolve(
                source, source_id, resolve_timeout_s, duplicate_wait_s
            )
            # no post-processing: the stream's own timestamps are stored unmodified
            self._inlet = pylsl.StreamInlet(info, max_buflen=60)
        self._flush_interval_s = float(flush_interval_s)
        self._max_chunk = int(max_chunk)
        self._on_error = on_error
        self._opener: FileOpener = file_opener or AppendFile
        self._offset_interval_s = float(clock_offset_interval_s)
        self._clock_offset = clock_offset
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: list[AppendFile] = []
        self._offsets_file: AppendFile | None = None
        self.n_offsets = 0
        self.n_samples = 0
        self.min_free_bytes = int(min_free_bytes)
        self.low_space = False
        self.failed = False
        self.error: RecordingError | None = None
        self.info = self._write_header()
        if start:
            self.start()

    # -- set-up -------------------------------------------------------------------------
    def _write_header(self) -> RecordingInfo:
        full = self._inlet.info(timeout=5.0)
        names, units, types = _channel_descriptions(full)
        fmt = "string" if full.channel_format() == pylsl.cf_string else "float32"
        header = RecordingInfo(
            format_version=FORMAT_VERSION,
            name=full.name(),
            type=full.type(),
            source_id=full.source_id(),
            hostname=full.hostname(),
            recorder_hostname=socket.gethostname(),
            sfreq=float(full.nominal_srate()),
            n_channels=int(full.channel_count()),
            ch_names=names,
            units=units,
            ch_types=types,
            channel_format=fmt,
            sample_dtype="<f4" if fmt != "string" else None,
            time_dtype="<f8",
            timestamps="stream clock, unmodified; clock offsets in " + OFFSETS_FILE,
            created_local_clock_s=pylsl.local_clock(),
            created_unix_s=time.time(),
        )
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / (HEADER_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(header, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / HEADER_FILE)
        _fsync_dir(self.path)
        return header

    def start(self) -> None:
        """Open the data files and start the recorder thread."""
        if self._thread is not None:
            return
        try:
            if self.info.is_markers:
                self._files = [self._opener(self.path / MARKERS_FILE)]
            else:
                self._files = [
                    self._opener(self.path / DATA_FILE),
                    self._opener(self.path / TIMES_FILE),
                ]
            self._offsets_file = self._opener(self.path / OFFSETS_FILE)
            self._files.append(self._offsets_file)
        except OSError as exc:
            raise RecordingError(f"cannot open data files: {exc}", path=self.path) from exc
        self._inlet.open_stream(timeout=5.0)
        self._thread = threading.Thread(
            target=self._run, name=f"labkit-recorder-{self.info['name']}", daemon=True
        )
        self._thread.start()

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        last_sync = time.monotonic()
        try:
            self._measure_offset(timeout_s=2.0)
            last_offset = time.monotonic()
            while not self._stop.is_set():
                got = self._pull_and_write(timeout_s=0.05)
                now = time.monotonic()
                if now - last_offset >= self._offset_interval_s:
                    self._measure_offset(timeout_s=0.1)
                    last_offset = now
                if now - last_sync >= self._flush_interval_s:
                    for f in self._files:
                        f.sync()
                    last_sync = now
                    self._check_free_space()
                if not got:
                    self._stop.wait(0.005)
            # drain what is left, measure the offset once more, then make it durable
            while self._pull_and_write(timeout_s=0.0):
                pass
            self._measure_offset(timeout_s=0.1)
            for f in self._files:
                f.sync()
        except OSError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a recorder must report, never vanish
            self._fail(exc)

    def _measure_offset(self, timeout_s: float) -> None:
        """Append one (local time, clock offset) row; a failed measurement is skipped."""
        try:
            if self._clock_offset is not None:
                offset = float(self._clock_offset())
            else:
                offset = float(self._inlet.time_correction(timeout=timeout_s))
        except Exception:  # noqa: BLE001 - timeout or lost stream: the next one may work
            return
        now = pylsl.local_clock()
        self._offsets_file.write(np.array([now, offset], dtype="<f8").tobytes())
        self.n_offsets += 1

    def _pull_and_write(self, timeout_s: float) -> int:
        if self.info.is_markers:
            samples, stamps = self._inlet.pull_chunk(
                timeout=timeout_s, max_samples=self._max_chunk
            )
            if not stamps:
                return 0
            lines = "".join(
                json.dumps({"time_s": float(t), "values": list(s)}) + "\n"
                for s, t in zip(samples, stamps, strict=True)
            )
            self._files[0].write(lines.encode("utf-8"))
            self.n_samples += len(stamps)
            return len(stamps)
        samples, stamps = self._inlet.pull_chunk(
            timeout=timeout_s, max_samples=self._max_chunk, as_numpy=True
        )
        n = len(stamps)
        if n == 0:
            return 0
        block = np.ascontiguousarray(samples, dtype="<f4")
        # timestamps first: if the data write is then cut by a full disk, every complete
        # data row that reached the disk still has its timestamp
        self._files[1].write(np.ascontiguousarray(stamps, dtype="<f8").tobytes())
        self._files[0].write(block.tobytes())
        self.n_samples += n
        return n

    def _check_free_space(self) -> None:
        if self.min_free_bytes <= 0 or self.low_space:
            return
        try:
            free = _free_bytes(self.path)
        except OSError:
            return
        if free < self.min_free_bytes:
            self.low_space = True
            self.error = LowDiskSpaceError(
                f"disk almost full: {free / 2**20:.1f} MiB free < {self.min_free_bytes / 2**20:.1f}"
                " MiB (min_free_bytes); stop stimulation now, recording continues while it can",
                path=self.path,
            )
            self._notify(self.error)

    def recheck_free_space(self) -> None:
        """Forget an earlier low-space warning: the next fsync checks (and warns) again."""
        if isinstance(self.error, LowDiskSpaceError):
            self.error = None
        self.low_space = False

    def _notify(self, err: RecordingError) -> None:
        if self._on_error is not None:
            try:
                self._on_error(err)
            except Exception:  # noqa: BLE001, S110 - the callback must not kill the recorder
                pass

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "disk full"
        else:
            what = "write failed"
        self.error = RecordingError(
            f"{what} after {self.n_samples} samples ({exc}); recording stopped, "
            "data written so far is kept",
            path=self.path,
        )
        self.error.__cause__ = exc
        self.failed = True
        self._stop.set()
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._notify(self.error)

    # -- control ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the thread records."""
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> None:
        """Raise the stored :class:`RecordingError` if the recorder failed."""
        if self.error is not None:
            raise self.error

    def stop(self, timeout_s: float = 5.0) -> None:
        """Drain the inlet, sync and close the files, stop the thread.

        Does not raise the write error of a failed recorder: see :meth:`check`.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._files = []
        self._offsets_file = None
        try:
            self._inlet.close_stream()
        except Exception:  # noqa: BLE001, S110 - closing a dead stream is fine
            pass

    def __enter__(self) -> StreamRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- reading back ---------------------------------------------------------------------
def _read_header(path: Path) -> RecordingInfo:
    header_path = path / HEADER_FILE
    try:
        text = header_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RecordingError(f"no {HEADER_FILE}: not a labkit recording", path=path) from exc
    try:
        return RecordingInfo(json.loads(text))
    except json.JSONDecodeError as exc:
        raise RecordingError(f"corrupt header: {exc}", path=header_path) from exc


def read_clock_offsets(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The clock-offset measurements of a recording (a torn last row is ignored).

    Returns
    -------
    local_times_s, offsets_s : ndarray, shape (n,)
        Local ``local_clock()`` time of each measurement and the offset to add to the
        stream's timestamps, s. Empty for a recording without measurements.
    """
    file = Path(path) / OFFSETS_FILE
    raw = file.read_bytes() if file.exists() else b""
    rows = np.frombuffer(raw, dtype="<f8", count=(len(raw) // 16) * 2).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def clock_fit(path: str | os.PathLike, info: dict | None = None) -> ClockFit | None:
    """How a recording's timestamps map onto the local clock; ``None`` for format 1.

    The robust fit of its clock offsets, or the identity (``"same host"``) when the
    stream came from the recording computer itself (see :func:`labkit.timesync.same_clock`).
    """
    path = Path(path)
    info = _read_header(path) if info is None else info
    if int(info.get("format_version", 1)) < 2:
        return None
    recorder = info.get("recorder_hostname")
    return same_clock(fit_clock_offsets(*read_clock_offsets(path)),
                      same_host=bool(recorder) and info.get("hostname") == recorder)


def _synchronise(path: Path, info: RecordingInfo, stamps: np.ndarray, *, sync: bool,
                 dejitter_stamps: bool) -> np.ndarray:
    fit = clock_fit(path, info)
    if fit is None:
        info["clock_sync"] = {"method": "liblsl clock sync when recorded (format 1)"}
    else:
        info["clock_sync"] = {**fit.as_dict(), "applied": bool(sync)}
        if sync:
            stamps = fit.to_local(stamps)
    if dejitter_stamps:
        stamps = dejitter(stamps, float(info.get("sfreq", 0.0)))
    info["dejittered"] = bool(dejitter_stamps)
    return stamps


def read_markers(path: str | os.PathLike, *, sync: bool = True,
                 ) -> tuple[list[str], np.ndarray, RecordingInfo]:
    """Read a marker (string) recording.

    Parameters
    ----------
    path : str | os.PathLike
        Recording directory.
    sync : bool
        Map the timestamps onto the local clock with the recording's clock offsets
        (default); ``False`` returns them as the stream sent them.

    Returns
    -------
    values : list of str
        First channel of every marker sample.
    timestamps : ndarray, shape (n,)
        LSL times in seconds.
    info : RecordingInfo
        The header, with ``n_samples``, ``torn_bytes`` and ``clock_sync`` (the fit).
    """
    path = Path(path)
    info = _read_header(path)
    if not info.is_markers:
        raise RecordingError("not a marker recording; use read_recording", path=path)
    file = path / MARKERS_FILE
    raw = file.read_bytes() if file.exists() else b""
    lines = raw.split(b"\n")
    tail = lines.pop()  # bytes after the last newline: empty, or a torn write
    values, stamps = [], []
    for lineno, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            stamps.append(float(rec["time_s"]))
            values.append(str(rec["values"][0]))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RecordingError(f"line {lineno} is not a marker record: {exc}", path=file) from exc
    info["n_samples"] = len(stamps)
    info["torn_bytes"] = len(tail)
    times = _synchronise(path, info, np.asarray(stamps, dtype=np.float64), sync=sync,
                         dejitter_stamps=False)
    return values, times, info


def read_recording(path: str | os.PathLike, *, sync: bool = True, dejitter: bool = False,
                   ) -> tuple[Any, np.ndarray, RecordingInfo]:
    """Read a recording back, ignoring a torn tail.

    Parameters
    ----------
    path : str | os.PathLike
        Recording directory written by :class:`StreamRecorder`.
    sync : bool
        Map the timestamps onto the local clock with a robust linear fit of the stored
        clock offsets (default). ``False`` returns the timestamps exactly as the stream
        sent them.
    dejitter : bool
        Also replace the timestamps by a straight line per stretch without gaps
        (numeric streams; see :func:`labkit.timesync.dejitter`).

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        float64 samples in the stream's units (see ``info["units"]``). For a marker
        stream, a list of strings (see :func:`read_markers`).
    timestamps : ndarray, shape (n_times,)
        Time of every sample in seconds: LSL ``local_clock`` of this host when
        ``sync`` is true, else the stream's own clock.
    info : RecordingInfo
        The header plus ``n_samples``, ``torn_bytes``, ``clock_sync`` (the offset fit),
        and ``n_gaps`` / ``max_gap_s`` (time steps longer than 1.5 sample periods:
        samples the amplifier or the network dropped; :func:`to_raw` does not fill them).
    """
    path = Path(path)
    info = _read_header(path)
    if info.is_markers:
        return read_markers(path, sync=sync)
    data, stamps, info = read_samples(path)
    stamps = _synchronise(path, info, stamps, sync=sync, dejitter_stamps=dejitter)
    info.update(_gap_summary(stamps, float(info["sfreq"])))
    return data.T.astype(np.float64), stamps, info


def _map(file: Path, dtype: str, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(file, dtype=dtype, mode="r", shape=(count,))


def read_samples(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, RecordingInfo]:
    """The complete rows of a numeric recording exactly as stored (no copy, no sync).

    Returns
    -------
    samples : ndarray, shape (n, n_channels)
        little-endian float32, memory-mapped (read-only).
    timestamps : ndarray, shape (n,)
        The stored (stream clock) timestamps, memory-mapped.
    info : RecordingInfo
        The header plus ``n_samples`` and ``torn_bytes``.
    """
    path = Path(path)
    info = _read_header(path)
    if info.is_markers:
        raise RecordingError("a marker recording has no numeric samples; use read_markers",
                             path=path)
    n_ch = int(info["n_channels"])
    data_file, time_file = path / DATA_FILE, path / TIMES_FILE
    data_size = data_file.stat().st_size if data_file.exists() else 0
    time_size = time_file.stat().st_size if time_file.exists() else 0
    n = min(data_size // (4 * n_ch), time_size // 8)
    info["n_samples"] = n
    info["torn_bytes"] = (data_size - n * 4 * n_ch) + (time_size - n * 8)
    samples = _map(data_file, "<f4", n * n_ch).reshape(n, n_ch)
    return samples, _map(time_file, "<f8", n), info


def write_recording(
    path: str | os.PathLike, header: dict, timestamps: np.ndarray, *,
    samples: np.ndarray | None = None, values: list[str] | None = None,
    clock_offsets: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write a complete recording at once (an import), in the format the recorder writes.

    Parameters
    ----------
    path : str | os.PathLike
        New recording directory (refused if it holds a recording).
    header : dict
        Header fields (``name``, ``type``, ``source_id``, ``sfreq``, ``n_channels``,
        ``ch_names``, ``units``, ``ch_types``, ``channel_format``...); the format
        fields are filled in.
    timestamps : array, shape (n,)
        The stream's own timestamps, s.
    samples : array, shape (n, n_channels) | None
        Numeric samples (stored as float32).
    values : list of str | None
        Marker strings (one channel), for a string stream.
    clock_offsets : (local_times_s, offsets_s) | None
        Clock-offset measurements on the local clock of the recording.

    Returns
    -------
    pathlib.Path
        The directory.
    """
    path = Path(path)
    if (path / HEADER_FILE).exists():
        raise RecordingError("already holds a recording; choose a new directory", path=path)
    path.mkdir(parents=True, exist_ok=True)
    stamps = np.ascontiguousarray(timestamps, dtype="<f8")
    files: dict[str, bytes] = {}
    if values is not None:
        if len(values) != stamps.size:
            raise RecordingError(f"{len(values)} markers for {stamps.size} timestamps",
                                 path=path)
        files[MARKERS_FILE] = "".join(
            json.dumps({"time_s": float(t), "values": [v]}) + "\n"
            for v, t in zip(values, stamps.tolist(), strict=True)).encode("utf-8")
        fmt = "string"
    else:
        block = np.ascontiguousarray(samples, dtype="<f4")
        if block.ndim != 2 or block.shape[0] != stamps.size:
            raise RecordingError(f"samples of shape {block.shape} for {stamps.size} timestamps",
                                 path=path)
        files[TIMES_FILE] = stamps.tobytes()
        files[DATA_FILE] = block.tobytes()
        fmt = "float32"
    if clock_offsets is not None:
        rows = np.column_stack([np.asarray(c, dtype="<f8") for c in clock_offsets])
        files[OFFSETS_FILE] = np.ascontiguousarray(rows, dtype="<f8").tobytes()
    for name, content in files.items():
        f = AppendFile(path / name)
        try:
            f.write(content)
        finally:
            f.close()
    full = RecordingInfo({
        **header, "format_version": FORMAT_VERSION, "channel_format": fmt,
        "sample_dtype": "<f4" if fmt != "string" else None, "time_dtype": "<f8",
        "timestamps": "stream clock, unmodified; clock offsets in " + OFFSETS_FILE,
    })
    tmp = path / (HEADER_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(full, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / HEADER_FILE)
    _fsync_dir(path)
    return path


def _gap_summary(stamps: np.ndarray, sfreq: float) -> dict[str, Any]:
    """Count holes in the time axis: steps longer than 1.5 sample periods."""
    if sfreq <= 0 or len(stamps) < 2:
        return {"n_gaps": 0, "max_gap_s": 0.0}
    steps = np.diff(stamps)
    holes = steps > 1.5 / sfreq
    return {"n_gaps": int(holes.sum()),
            "max_gap_s": float(steps[holes].max()) if holes.any() else 0.0}


def to_raw(
    path_or_data: str | os.PathLike | np.ndarray,
    timestamps: np.ndarray | None = None,
    info: dict | None = None,
    *,
    markers: str | os.PathLike | None = None,
    sync: bool = True,
    dejitter: bool = False,
):
    """Build an :class:`mne.io.RawArray` from a recording (µV → V for MNE).

    Parameters
    ----------
    path_or_data : str | os.PathLike | ndarray
        A recording directory, or the ``data`` returned by :func:`read_recording`.
    timestamps, info : ndarray, dict
        Required with ``data``; the other two values returned by :func:`read_recording`.
    markers : str | os.PathLike | None
        A marker recording; each marker becomes an annotation (description = its
        ``event`` key when it is a JSON object, else the string) at its time relative
        to the first sample. Markers and samples are on the same clock when both are
        read with the same ``sync`` (the local clock by default).
    sync, dejitter : bool
        How timestamps are read (see :func:`read_recording`); ``sync`` also applies to
        ``markers``.

    Returns
    -------
    raw : mne.io.RawArray
        Data in volts for EEG/EMG/ECG/EOG channels given in V, mV or µV. The LSL time of
        the first sample is kept as the attribute ``raw.first_time_s`` (seconds), so an
        LSL time ``t`` is at ``t - raw.first_time_s`` in ``raw.times``.
    """
    import mne

    if isinstance(path_or_data, (str, os.PathLike)):
        data, timestamps, info = read_recording(path_or_data, sync=sync, dejitter=dejitter)
    else:
        data = path_or_data
        if timestamps is None or info is None:
            raise ValueError("to_raw(data, timestamps, info): timestamps and info are required")
    if info.get("channel_format") == "string":
        raise RecordingError("a marker recording has no samples to convert; pass it as markers")
    sfreq = float(info["sfreq"])
    if sfreq <= 0:
        raise RecordingError(f"stream '{info['name']}' has an irregular rate; cannot make a Raw")
    scaled = np.array(data, dtype=np.float64, copy=True)
    for i, unit in enumerate(info["units"]):
        factor = UNIT_TO_VOLTS.get(str(unit).strip().lower())
        if factor is not None and info["ch_types"][i] in ("emg", "eeg", "ecg", "eog"):
            scaled[i] *= factor
    ch_types = [t if t in mne.io.get_channel_type_constants() else "misc" for t in info["ch_types"]]
    mne_info = mne.create_info(list(info["ch_names"]), sfreq, ch_types)
    raw = mne.io.RawArray(scaled, mne_info, verbose="error")
    first = float(timestamps[0]) if len(timestamps) else 0.0
    raw.first_time_s = first
    if markers is not None:
        values, stamps, _ = read_markers(markers, sync=sync)
        descriptions = []
        for v in values:
            try:
                payload = json.loads(v)
            except ValueError:
                payload = None
            descriptions.append(str(payload.get("event", v)) if isinstance(payload, dict) else v)
        onsets = stamps - first
        keep = (onsets >= 0) & (onsets <= raw.times[-1] if len(raw.times) else False)
        raw.set_annotations(
            mne.Annotations(
                onsets[keep], np.zeros(int(keep.sum())),
                [d for d, k in zip(descriptions, keep, strict=True) if k],
            )
        )
    return raw
