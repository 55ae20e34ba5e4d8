"""The session log: append-only JSONL, fsync'd per event, strict but torn-tail tolerant.

Every line is ``{"seq": n, "time_s": t, "kind": "...", "payload": {...}}`` where
``time_s`` is LSL ``local_clock()`` (injectable for tests). Each line is written with a
single ``os.write`` and ``os.fsync``'d before :meth:`SessionLog.append` returns, so a
``kill -9`` loses nothing already logged and a power cut at most the line being written.
:func:`read_log` ignores a torn final line (no newline, not valid JSON) and refuses any
other bad line, naming the file and line number.

Reopening a log repairs its end before anything is appended (:class:`LogRepair`): a torn
last line (a crash inside a write) is cut off and reported in a ``fault`` record with the
dropped bytes; a complete last record that only lost its newline gets the newline back.
So a new record never lands on a broken one.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from labkit.clock import local_clock
from labkit.errors import LabkitError
from labkit.recording import AppendFile

LOG_FILE = "log.jsonl"

#: Event kinds used by labkit. Other lower-case identifiers are accepted too.
KNOWN_KINDS = (
    "session_start", "session_resume", "session_end", "versions", "device", "protocol",
    "pulse", "threshold", "pain_rating", "adverse_event", "screening", "override", "note",
    "fault", "recording_start", "recording_stop", "export",
)
_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


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


def to_jsonable(obj: Any) -> Any:
    """Convert a payload to plain JSON values; never raises.

    numpy scalars/arrays → numbers/lists, dataclasses → dicts, pydantic models →
    ``model_dump(mode="json")``, enums → their value, paths/other objects → ``str``,
    non-finite floats → ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (strict JSON has no
    NaN; a log must not fail inside a pulse loop because a value was NaN).
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Enum):
        return to_jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump"):
        try:
            return to_jsonable(obj.model_dump(mode="json"))
        except Exception:  # noqa: BLE001 - fall back to the text form
            return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return to_jsonable(obj.tolist())
    return str(obj)


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


@dataclass(frozen=True)
class LogRepair:
    """What reopening a log found at its end and did about it.

    Attributes
    ----------
    torn_bytes : int
        Length of a torn last line (no newline, not a valid record) that was cut off.
    dropped : bytes
        Those bytes.
    newline_restored : bool
        The last record was complete but had lost its newline; one was written.
    last_record : LogRecord | None
        The last valid record before reopening.
    """

    torn_bytes: int = 0
    dropped: bytes = b""
    newline_restored: bool = False
    last_record: LogRecord | None = None

    @property
    def repaired(self) -> bool:
        """True when the end of the log had to be changed."""
        return bool(self.torn_bytes) or self.newline_restored


def _split_log(path: Path) -> tuple[list[LogRecord], bytes, bool]:
    """Records, the torn tail (bytes after the last newline that are no record) and
    whether the last record lacks its newline."""
    data = path.read_bytes() if path.exists() else b""
    lines = data.split(b"\n")
    tail = lines.pop()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise LogFormatError("empty line", path=path, line=lineno)
        records.append(_parse_line(line, path, lineno))
    if tail:
        try:  # a complete record that only lacks its newline is kept
            records.append(_parse_line(tail, path, len(lines) + 1))
        except LogFormatError:
            return records, tail, False
        return records, b"", True
    return records, b"", False


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
    records = _split_log(path)[0]
    if kind is not None:
        kinds = {kind} if isinstance(kind, str) else set(kind)
        records = [r for r in records if r.kind in kinds]
    return records


class SessionLog:
    """An append-only, fsync'd JSONL event log.

    Parameters
    ----------
    path : str | os.PathLike
        The log file; created if missing. An existing log is continued after its end is
        repaired: a torn last line left by a crash is cut off (a ``fault`` record says so
        and holds the dropped text), a missing final newline is restored (see
        :attr:`repair`).
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
        records, torn, no_newline = _split_log(self.path)
        if torn:
            size = self.path.stat().st_size
            os.truncate(self.path, size - len(torn))
        self._seq = records[-1].seq + 1 if records else 0
        self._file: AppendFile | None = (opener or AppendFile)(self.path)
        self.failed = False
        self.error: SessionLogError | None = None
        #: What reopening found at the end of the log and repaired.
        self.repair = LogRepair(len(torn), torn, no_newline, records[-1] if records else None)
        if no_newline:
            self._pending.append(b"\n")
            with self._io_lock:
                self._drain("restored newline")
        if torn:
            self.append("fault", what="torn last line removed on reopen",
                        bytes_dropped=len(torn),
                        dropped=torn[:200].decode("utf-8", errors="replace"))

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
            if not math.isfinite(t):
                raise ValueError(f"time_s of '{kind}' must be finite, got {t}")
            payload = to_jsonable(payload)
            record = LogRecord(self._seq, t, kind, payload)
            line = json.dumps(
                {"seq": record.seq, "time_s": t, "kind": kind, "payload": payload},
                allow_nan=False, ensure_ascii=False,
            )
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
            Event data, converted by :func:`to_jsonable` (numpy, dataclasses, NaN...).

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

        ``**payload`` are the record's fields, as for :meth:`append`.

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
