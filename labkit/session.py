"""A session on disk: pseudonymous ids, an fsync'd JSONL log, and its recordings.

Layout under ``root``::

    root/sub-<subject>/ses-<session>/
        log.jsonl            append-only event log, one JSON object per line
        recordings/<name>/   one crash-safe recording per stream (labkit.recording)

A BIDS export (:func:`labkit.bids.export_bids`) goes to a separate root.

Every log line is ``{"seq": n, "time_s": t, "kind": "...", "payload": {...}}`` where
``time_s`` is LSL ``local_clock()`` (injectable for tests). Each line is written with a
single ``os.write`` and ``os.fsync``'d before :meth:`SessionLog.append` returns, so a
``kill -9`` loses nothing already logged and a power cut at most the line being written.
:func:`read_log` ignores a torn final line (no newline, not valid JSON) and refuses any
other bad line, naming the file and line number.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit.clock import local_clock
from labkit.errors import ConfigError, LabkitError
from labkit.markers import PulseEvent
from labkit.recording import AppendFile, RecordingError, StreamRecorder

__all__ = [
    "KNOWN_KINDS",
    "PAIN_WHEN",
    "LogFormatError",
    "LogRecord",
    "PersonalDataError",
    "Session",
    "SessionError",
    "SessionLog",
    "SessionLogError",
    "check_session_id",
    "check_subject_id",
    "package_versions",
    "read_log",
]

LOG_FILE = "log.jsonl"
RECORDINGS_DIR = "recordings"

#: Event kinds used by labkit. Other lower-case identifiers are accepted too.
KNOWN_KINDS = (
    "session_start", "session_resume", "session_end", "versions", "device", "protocol",
    "pulse", "threshold", "pain_rating", "adverse_event", "screening", "override", "note",
    "fault", "recording_start", "recording_stop", "export",
)
#: Allowed values of ``when`` for a pain rating.
PAIN_WHEN = ("before", "after", "follow-up")
#: Packages whose versions :meth:`Session.log_versions` records.
VERSIONED_PACKAGES = (
    "labkit", "numpy", "scipy", "numba", "mne", "mne-lsl", "pylsl", "pyserial", "pandas",
    "pydantic", "mne-bids", "ipywidgets",
)

SUBJECT_ID_PATTERN = r"^[A-Za-z]{0,4}[0-9]{1,4}[A-Za-z]?$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9]{1,12}$"
_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_RESERVED_KEYS = ("seq", "time_s", "kind", "payload")


# -- errors -------------------------------------------------------------------------
class SessionError(LabkitError):
    """A session could not be opened, resumed or written."""


class SessionLogError(SessionError, OSError):
    """Writing the session log failed (disk full, I/O error): stop stimulating."""


class LogFormatError(SessionError, ValueError):
    """A session log line is not a valid record.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str | os.PathLike
        The log file.
    line : int
        1-based line number.
    """

    def __init__(self, message: str, *, path: str | os.PathLike, line: int):
        self.path = Path(path)
        self.line = line
        super().__init__(f"{path}: line {line}: {message}")


class PersonalDataError(ConfigError):
    """An id looks like personal data (a name, an e-mail, a date, a phone number)."""


# -- ids ------------------------------------------------------------------------------
def _refuse(field_name: str, value: str, why: str, pattern: str, example: str) -> None:
    raise PersonalDataError(
        f"{value!r} {why}; ids must be pseudonymous codes matching {pattern} "
        f"(e.g. {example}), never names, e-mails, dates or phone numbers",
        field=field_name,
    )


def check_subject_id(subject_id: str) -> str:
    """Validate a pseudonymous subject id and return its BIDS label.

    A leading ``sub-`` is dropped. Allowed: up to 4 letters, 1–4 digits, an optional
    letter (``01``, ``P007``, ``sub01``, ``S12b``). Refused with :class:`PersonalDataError`:
    spaces, ``@``, dates, long digit runs (phone numbers, birth dates), plain words.

    Parameters
    ----------
    subject_id : str
        The id as typed by the experimenter.

    Returns
    -------
    label : str
        The id without ``sub-``, usable as a BIDS label.
    """
    field_name = "subject_id"
    if not isinstance(subject_id, str):
        raise PersonalDataError(
            f"must be a string, got {type(subject_id).__name__}", field=field_name
        )
    value = subject_id.strip()
    label = value[4:] if value.lower().startswith("sub-") else value
    example = "'P007' or '01'"
    if "@" in label:
        _refuse(field_name, subject_id, "looks like an e-mail address", SUBJECT_ID_PATTERN,
                example)
    if re.search(r"\s", label):
        _refuse(field_name, subject_id, "contains spaces (a name?)", SUBJECT_ID_PATTERN, example)
    if re.search(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", label):
        _refuse(field_name, subject_id, "looks like a date", SUBJECT_ID_PATTERN, example)
    if re.search(r"\d{5,}", re.sub(r"[\s+()./-]", "", label)):
        _refuse(field_name, subject_id, "has a long digit run (a phone number or date of "
                "birth?)", SUBJECT_ID_PATTERN, example)
    if not re.fullmatch(SUBJECT_ID_PATTERN, label):
        _refuse(field_name, subject_id, "is not a short code", SUBJECT_ID_PATTERN, example)
    return label


def check_session_id(session_id: str | int) -> str:
    """Validate a session id (``1`` → ``"01"``; ``"02"``, ``"fu1"``) and return its label."""
    field_name = "session_id"
    if isinstance(session_id, bool):
        raise PersonalDataError("must be a string or an int, got bool", field=field_name)
    if isinstance(session_id, int):
        if session_id < 0:
            raise PersonalDataError(f"must be ≥ 0, got {session_id}", field=field_name)
        session_id = f"{session_id:02d}"
    if not isinstance(session_id, str):
        raise PersonalDataError(
            f"must be a string or an int, got {type(session_id).__name__}", field=field_name
        )
    label = session_id.strip()
    label = label[4:] if label.lower().startswith("ses-") else label
    if re.search(r"\d{5,}", label) or not re.fullmatch(SESSION_ID_PATTERN, label):
        _refuse(field_name, str(session_id), "is not a short session code",
                SESSION_ID_PATTERN, "'01' or 'fu1'")
    return label


# -- the log --------------------------------------------------------------------------
@dataclass(frozen=True)
class LogRecord:
    """One line of a session log.

    Attributes
    ----------
    seq : int
        Running number of the line in the log (0-based).
    time_s : float
        LSL ``local_clock()`` time, seconds.
    kind : str
        Event kind (see :data:`KNOWN_KINDS`).
    payload : dict
        Event data.
    """

    seq: int
    time_s: float
    kind: str
    payload: dict = field(default_factory=dict)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _parse_line(raw: bytes, path: Path, lineno: int) -> LogRecord:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise LogFormatError(f"not valid JSON ({exc.args[0]})", path=path, line=lineno) from exc
    if not isinstance(obj, dict):
        raise LogFormatError("not a JSON object", path=path, line=lineno)
    missing = [k for k in ("seq", "time_s", "kind") if k not in obj]
    if missing:
        raise LogFormatError(f"missing key(s) {missing}", path=path, line=lineno)
    payload = obj.get("payload", {})
    if not isinstance(payload, dict) or not isinstance(obj["kind"], str):
        raise LogFormatError("'kind' must be a string and 'payload' an object", path=path,
                             line=lineno)
    try:
        return LogRecord(int(obj["seq"]), float(obj["time_s"]), obj["kind"], payload)
    except (TypeError, ValueError) as exc:
        raise LogFormatError(f"bad 'seq' or 'time_s' ({exc})", path=path, line=lineno) from exc


def _split_log(path: Path) -> tuple[list[LogRecord], int]:
    data = path.read_bytes() if path.exists() else b""
    lines = data.split(b"\n")
    tail = lines.pop()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise LogFormatError("empty line", path=path, line=lineno)
        records.append(_parse_line(line, path, lineno))
    torn = 0
    if tail:
        try:  # a complete record that only lacks its newline is kept
            records.append(_parse_line(tail, path, len(lines) + 1))
        except LogFormatError:
            torn = len(tail)
    return records, torn


def read_log(path: str | os.PathLike, *, kind: str | Iterable[str] | None = None
             ) -> list[LogRecord]:
    """Read a session log back.

    Parameters
    ----------
    path : str | os.PathLike
        ``log.jsonl`` or a session directory.
    kind : str | iterable of str | None
        Keep only records of these kinds.

    Returns
    -------
    records : list of LogRecord
        In file order. A torn last line (crash mid-write) is silently dropped.

    Raises
    ------
    LogFormatError
        Any other line is not a valid record; names the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.exists():
        raise SessionError(f"{path}: no session log")
    records, _ = _split_log(path)
    if kind is not None:
        kinds = {kind} if isinstance(kind, str) else set(kind)
        records = [r for r in records if r.kind in kinds]
    return records


class SessionLog:
    """An append-only, fsync'd JSONL event log.

    Parameters
    ----------
    path : str | os.PathLike
        The log file; created if missing. An existing log is continued; a torn last
        line left by a crash is cut off first (and a ``fault`` record says so).
    clock : callable
        Returns the current time in seconds; LSL ``local_clock`` by default.
    opener : callable | None
        ``opener(path) -> AppendFile``; tests use it to simulate a full disk.
    on_error : callable | None
        Called with the :class:`SessionLogError` when a background write
        (:meth:`append_nowait`) fails; a synchronous :meth:`append` raises instead.

    Notes
    -----
    :meth:`append` returns after ``fsync`` (0.2 ms median, a few ms at p99 on ext4; see
    ``benchmarks/bench_recording.py``). Code on a timing-critical path (a pulse loop)
    can use :meth:`append_nowait`: the line is queued in order and a writer thread
    writes and fsyncs queued lines together (group commit) within milliseconds, so a
    ``kill -9`` can lose only lines queued in that window.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        clock: Callable[[], float] = local_clock,
        opener: Callable[[Path], AppendFile] | None = None,
        on_error: Callable[[SessionLogError], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._on_error = on_error
        self._seq_lock = threading.Lock()  # seq numbers and queue order
        self._io_lock = threading.Lock()  # writing and syncing
        self._pending: deque[bytes] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._writer: threading.Thread | None = None
        records, torn = _split_log(self.path)
        if torn:
            size = self.path.stat().st_size
            os.truncate(self.path, size - torn)
        self._seq = records[-1].seq + 1 if records else 0
        self._file: AppendFile | None = (opener or AppendFile)(self.path)
        self.failed = False
        self.error: SessionLogError | None = None
        if torn:
            self.append("fault", what="torn last line removed on reopen", bytes_dropped=torn)

    def _enqueue(self, kind: str, time_s: float | None, payload: dict) -> LogRecord:
        if not isinstance(kind, str) or not _KIND_PATTERN.match(kind):
            raise ValueError(
                f"log kind must be a lower-case identifier (e.g. one of {KNOWN_KINDS}), "
                f"got {kind!r}"
            )
        with self._seq_lock:
            if self.failed or self._file is None:
                why = f" ({self.error})" if self.error is not None else ""
                raise SessionLogError(f"{self.path}: log is closed; cannot log '{kind}'{why}")
            t = float(self._clock() if time_s is None else time_s)
            record = LogRecord(self._seq, t, kind, payload)
            try:
                line = json.dumps(
                    {"seq": record.seq, "time_s": t, "kind": kind, "payload": payload},
                    default=_json_default, allow_nan=False, ensure_ascii=False,
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"payload of '{kind}' is not JSON serialisable: {exc}") from exc
            self._pending.append((line + "\n").encode("utf-8"))
            self._seq += 1
            return record

    def _drain(self, kind: str) -> None:
        """Write and fsync everything queued; caller holds ``_io_lock``."""
        if self.failed:
            raise self.error
        if not self._pending:
            return
        chunks = []
        while self._pending:
            chunks.append(self._pending.popleft())
        try:
            self._file.write(b"".join(chunks))
            self._file.sync()
        except (OSError, AttributeError) as exc:
            what = "disk full" if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) \
                else "I/O error"
            self.error = SessionLogError(
                f"{self.path}: {what} while logging '{kind}' ({exc}); stop stimulation"
            )
            self.error.__cause__ = exc
            self.failed = True
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
            self._file = None
            raise self.error from exc

    def append(self, kind: str, *, time_s: float | None = None, **payload: Any) -> LogRecord:
        """Write one event and fsync it (and anything queued before it) before returning.

        Parameters
        ----------
        kind : str
            Lower-case identifier (see :data:`KNOWN_KINDS`).
        time_s : float | None
            Event time (LSL clock); the clock's "now" when omitted.
        **payload
            JSON-serialisable event data (numpy scalars/arrays are converted).

        Returns
        -------
        LogRecord
            What was written.

        Raises
        ------
        SessionLogError
            The write or fsync failed (e.g. disk full). The log is then closed.
        """
        record = self._enqueue(kind, time_s, payload)
        with self._io_lock:
            self._drain(kind)
        return record

    def append_nowait(self, kind: str, *, time_s: float | None = None,
                      **payload: Any) -> LogRecord:
        """Queue one event for the writer thread and return at once (see class notes).

        Raises :class:`SessionLogError` if an earlier background write failed.
        """
        record = self._enqueue(kind, time_s, payload)
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="labkit-log-writer",
                                            daemon=True)
            self._writer.start()
        with self._wake:
            self._wake.notify()
        return record

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                if not self._pending and self._file is not None:
                    self._wake.wait(0.1)
            if self._file is None and not self._pending:
                return
            if not self._pending:
                continue
            try:
                with self._io_lock:
                    self._drain("queued event")
            except SessionLogError as err:
                if self._on_error is not None:
                    try:
                        self._on_error(err)
                    except Exception:  # noqa: BLE001, S110 - a callback must not kill the writer
                        pass
                return

    def flush(self) -> None:
        """Write and fsync every queued event now (raises :class:`SessionLogError`)."""
        with self._io_lock:
            if self._file is not None or self._pending:
                self._drain("queued event")

    def close(self) -> None:
        """Write what is queued, then close the file."""
        with self._io_lock:
            try:
                if self._file is not None and not self.failed:
                    self._drain("queued event")
            finally:
                if self._file is not None:
                    try:
                        self._file.close()
                    finally:
                        self._file = None
        with self._wake:
            self._wake.notify()

    @property
    def closed(self) -> bool:
        """True once closed or failed."""
        return self._file is None


# -- versions -------------------------------------------------------------------------
def package_versions(packages: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _validate_pain(nrs: Any, when: str) -> int:
    if isinstance(nrs, bool) or not isinstance(nrs, (int, float)) or (
        isinstance(nrs, float) and (math.isnan(nrs) or not nrs.is_integer())
    ):
        raise ConfigError(f"NRS must be an integer 0–10, got {nrs!r}", field="nrs")
    if not 0 <= nrs <= 10:
        raise ConfigError(f"NRS must be in 0–10, got {nrs}", field="nrs")
    if when not in PAIN_WHEN:
        raise ConfigError(f"must be one of {PAIN_WHEN}, got {when!r}", field="when")
    return int(nrs)


# -- the session ----------------------------------------------------------------------
class Session:
    """A pseudonymous session on disk: log, recordings, and a place for exports.

    Parameters
    ----------
    root : str | os.PathLike
        Data root (holds ``sub-*/ses-*``).
    subject_id : str
        Pseudonymous code (see :func:`check_subject_id`).
    session_id : str | int | None
        Session code; the next free number (``01``, ``02``...) when omitted.
    task : str
        BIDS task label (letters and digits).
    clock : callable
        Time source for the log (LSL ``local_clock`` by default).
    on_fault : callable | None
        Called with the error when storage fails in a background thread: a recorder's
        :class:`~labkit.recording.RecordingError` / ``LowDiskSpaceError`` or a queued log
        write's :class:`SessionLogError`. A protocol runner passes its stop here so that
        stimulation stops before data is lost. Runs in that thread; keep it short.
    log_opener : callable | None
        Passed to :class:`SessionLog` (tests: simulated full disk).

    Notes
    -----
    The constructor opens a new session or continues an existing one;
    :meth:`open` insists on a new one and :meth:`resume` on an existing one. Use it as a
    context manager: leaving the block stops the recorders and logs ``session_end``
    (with the exception, if one escaped).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subject_id: str,
        session_id: str | int | None = None,
        *,
        task: str = "rtms",
        clock: Callable[[], float] = local_clock,
        on_fault: Callable[[LabkitError], Any] | None = None,
        log_opener: Callable[[Path], AppendFile] | None = None,
        _mode: str = "any",
    ) -> None:
        self.root = Path(root)
        self.subject_id = check_subject_id(subject_id)
        if not re.fullmatch(r"[A-Za-z0-9]{1,32}", str(task)):
            raise ConfigError(f"must be letters/digits (BIDS label), got {task!r}", field="task")
        self.task = task
        subject_dir = self.root / f"sub-{self.subject_id}"
        if session_id is None:
            if _mode == "resume":
                raise SessionError("resume needs a session_id")
            session_id = self._next_session_number(subject_dir)
        self.session_id = check_session_id(session_id)
        self.path = subject_dir / f"ses-{self.session_id}"
        self.log_path = self.path / LOG_FILE
        self.recordings_dir = self.path / RECORDINGS_DIR
        existed = self.log_path.exists() and self.log_path.stat().st_size > 0
        if _mode == "new" and existed:
            raise SessionError(
                f"{self.path}: session already exists; use Session.resume() to continue it "
                "or choose another session_id"
            )
        if _mode == "resume" and not existed:
            raise SessionError(f"{self.path}: no session to resume (no {LOG_FILE})")
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.on_fault = on_fault
        self.log = SessionLog(self.log_path, clock=clock, opener=log_opener,
                              on_error=self._fault)
        self.recorders: dict[str, StreamRecorder] = {}
        self._clock = clock
        ids = {"subject_id": self.subject_id, "session_id": self.session_id, "task": task}
        if existed:
            self.log.append("session_resume", **ids)
        else:
            self.log.append("session_start", **ids)
            self.log_versions()

    def _fault(self, err: LabkitError) -> None:
        if self.on_fault is not None:
            self.on_fault(err)

    @staticmethod
    def _next_session_number(subject_dir: Path) -> str:
        used = []
        if subject_dir.is_dir():
            for p in subject_dir.glob("ses-*"):
                tail = p.name[4:]
                if tail.isdigit():
                    used.append(int(tail))
        return f"{(max(used) + 1) if used else 1:02d}"

    @classmethod
    def open(cls, root: str | os.PathLike, subject_id: str, session_id: str | int | None = None,
             **kwargs: Any) -> Session:
        """Start a new session; refuse if that session already has a log."""
        return cls(root, subject_id, session_id, _mode="new", **kwargs)

    @classmethod
    def resume(cls, root: str | os.PathLike, subject_id: str, session_id: str | int,
               **kwargs: Any) -> Session:
        """Continue an existing session (after a crash); its log is appended to."""
        return cls(root, subject_id, session_id, _mode="resume", **kwargs)

    # -- logging helpers --------------------------------------------------------------
    def log_event(self, kind: str, **payload: Any) -> LogRecord:
        """Log any event (see :meth:`SessionLog.append`)."""
        return self.log.append(kind, **payload)

    def note(self, text: str) -> LogRecord:
        """Log a free-text note."""
        return self.log.append("note", text=str(text))

    def log_versions(self) -> LogRecord:
        """Log package versions, Python and platform."""
        return self.log.append(
            "versions", packages=package_versions(), python=sys.version.split()[0],
            platform=platform.platform(), machine=platform.machine(),
        )

    def log_device(self, **info: Any) -> LogRecord:
        """Log stimulator/amplifier information (model, serial, firmware, port...)."""
        return self.log.append("device", **info)

    def log_protocol(self, protocol: Any, **extra: Any) -> LogRecord:
        """Log the protocol: a dict, a pydantic model (``model_dump``) or its name."""
        if hasattr(protocol, "model_dump"):
            body = protocol.model_dump(mode="json")
        elif isinstance(protocol, dict):
            body = protocol
        else:
            body = {"name": str(protocol)}
        return self.log.append("protocol", protocol=body, **extra)

    def log_pulse(self, pulse: PulseEvent | None = None, *, nowait: bool = False,
                  **params: Any) -> LogRecord:
        """Log one delivered pulse at its own time.

        Parameters
        ----------
        pulse : PulseEvent | None
            The driver's pulse event (time, intensity, device, index, extra).
        **params
            Further parameters, e.g. ``intensity_rmt_percent``, ``protocol``,
            ``train_index``, ``pulse_in_train``; or the whole pulse without ``pulse``
            (then ``time_s`` and ``intensity_percent`` are required).
        nowait : bool
            Queue the line for the log's writer thread instead of waiting for fsync
            (for tight pulse loops; see :meth:`SessionLog.append_nowait`).
        """
        append = self.log.append_nowait if nowait else self.log.append
        if pulse is not None:
            body = {
                "intensity_percent": pulse.intensity_percent, "device": pulse.device,
                "index": pulse.index,
            }
            if pulse.intensity_b_percent is not None:
                body["intensity_b_percent"] = pulse.intensity_b_percent
            if pulse.ipi_ms is not None:
                body["ipi_ms"] = pulse.ipi_ms
            body.update(pulse.extra)
            body.update(params)
            return append("pulse", time_s=pulse.time_s, **body)
        if "time_s" not in params or "intensity_percent" not in params:
            raise ValueError("log_pulse without a PulseEvent needs time_s and intensity_percent")
        time_s = params.pop("time_s")
        return append("pulse", time_s=time_s, **params)

    def log_threshold(self, threshold_percent: float, *, method: str, kind: str = "rmt",
                      n_pulses: int | None = None, **extra: Any) -> LogRecord:
        """Log a motor threshold (``kind`` ``"rmt"`` or ``"amt"``) in % MSO."""
        if not (isinstance(threshold_percent, (int, float)) and math.isfinite(threshold_percent)
                and 0 < threshold_percent <= 100):
            raise ConfigError(f"must be in (0, 100] % MSO, got {threshold_percent!r}",
                              field="threshold_percent")
        if kind not in ("rmt", "amt"):
            raise ConfigError(f"must be 'rmt' or 'amt', got {kind!r}", field="kind")
        return self.log.append("threshold", threshold_percent=float(threshold_percent),
                               method=method, threshold_kind=kind, n_pulses=n_pulses, **extra)

    def log_pain_rating(self, nrs: int, when: str = "before", **extra: Any) -> LogRecord:
        """Log a 0–10 numeric rating scale pain score ``before``/``after``/``follow-up``."""
        value = _validate_pain(nrs, when)
        return self.log.append("pain_rating", nrs=value, when=when, **extra)

    def log_adverse_event(self, event: str, *, severity: str = "mild",
                          description: str = "", **extra: Any) -> LogRecord:
        """Log an adverse event (seizure, syncope, headache...), severity mild/moderate/severe."""
        if not isinstance(event, str) or not event.strip():
            raise ConfigError("must name the event (e.g. 'headache')", field="event")
        if severity not in ("mild", "moderate", "severe"):
            raise ConfigError(f"must be mild, moderate or severe, got {severity!r}",
                              field="severity")
        return self.log.append("adverse_event", event=event.strip(), severity=severity,
                               description=description, **extra)

    def log_screening(self, answers: dict, *, eligible: bool, **extra: Any) -> LogRecord:
        """Log screening answers and the verdict."""
        return self.log.append("screening", answers=answers, eligible=bool(eligible), **extra)

    def log_override(self, reason: str, **what: Any) -> LogRecord:
        """Log a safety override; ``reason`` is required."""
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("an override needs a written reason", field="reason")
        return self.log.append("override", reason=reason.strip(), **what)

    def log_fault(self, what: str, **extra: Any) -> LogRecord:
        """Log a fault (stream lost, stimulator silent, disk full...)."""
        return self.log.append("fault", what=what, **extra)

    # -- recordings -------------------------------------------------------------------
    def record(self, source: Any, name: str, **kwargs: Any) -> StreamRecorder:
        """Start recording a stream into ``recordings/<name>`` (``name-2``... if taken).

        Parameters
        ----------
        source : str | pylsl.StreamInfo | pylsl.StreamInlet
            See :class:`labkit.recording.StreamRecorder`.
        name : str
            Short label, e.g. ``"emg"``, ``"eeg"``, ``"markers"``.
        **kwargs
            Passed to :class:`StreamRecorder` (``source_id``, ``on_error``...). A write
            failure is also logged as a ``fault`` when the log still works.
        """
        if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", name):
            raise ConfigError(f"must be letters, digits or _, got {name!r}", field="name")
        target, label, k = self.recordings_dir / name, name, 1
        while target.exists():
            k += 1
            label = f"{name}-{k}"
            target = self.recordings_dir / label
        user_cb = kwargs.pop("on_error", None)

        def on_error(err: RecordingError) -> None:
            try:
                self.log_fault("recording failed", recording=label, error=str(err))
            except (SessionLogError, ValueError):
                pass
            if user_cb is not None:
                user_cb(err)
            self._fault(err)

        rec = StreamRecorder(source, target, on_error=on_error, **kwargs)
        self.recorders[label] = rec
        self.log.append("recording_start", recording=label, stream=rec.info["name"],
                        source_id=rec.info["source_id"], sfreq=rec.info["sfreq"],
                        path=str(target.relative_to(self.path)))
        return rec

    def recordings(self) -> dict[str, Path]:
        """All recording directories of this session (including earlier runs), by label."""
        if not self.recordings_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self.recordings_dir.iterdir())
                if (p / "header.json").exists()}

    def events(self, kind: str | Iterable[str] | None = None) -> list[LogRecord]:
        """The log read back (optionally only some kinds)."""
        return read_log(self.log_path, kind=kind)

    def stop_recordings(self) -> None:
        """Stop every running recorder and log how many samples each wrote."""
        for label, rec in list(self.recorders.items()):
            rec.stop()
            if not self.log.closed:
                self.log.append("recording_stop", recording=label, n_samples=rec.n_samples,
                                failed=rec.failed)
            del self.recorders[label]

    def close(self, *, error: BaseException | None = None) -> None:
        """Stop recordings, log ``session_end`` and close the log."""
        try:
            self.stop_recordings()
        finally:
            if not self.log.closed:
                end: dict[str, Any] = {}
                if error is not None:
                    end["error"] = f"{type(error).__name__}: {error}"
                self.log.append("session_end", **end)
            self.log.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(error=exc)

    def __repr__(self) -> str:
        return (f"Session(subject='{self.subject_id}', session='{self.session_id}', "
                f"task='{self.task}', path='{self.path}')")
