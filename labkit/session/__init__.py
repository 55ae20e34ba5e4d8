"""A session on disk: pseudonymous ids, an fsync'd JSONL log, and its recordings.

Layout under ``root``::

    root/sub-<subject>/ses-<session>/
        log.jsonl            append-only event log, one JSON object per line
        recordings/<name>/   one crash-safe recording per stream (labkit.recording)

A BIDS export (:func:`labkit.bids.export_bids`) goes to a separate root.

Modules: :mod:`~labkit.session.ids` (pseudonymous ids), :mod:`~labkit.session.log`
(the fsync'd JSONL log), :mod:`~labkit.session.storage` (the storage-fault latch),
:mod:`~labkit.session.core` (the :class:`Session`).

Every log line is ``{"seq": n, "time_s": t, "kind": "...", "payload": {...}}`` where
``time_s`` is LSL ``local_clock()`` (injectable for tests). Each line is written with a
single ``os.write`` and ``os.fsync``'d before :meth:`SessionLog.append` returns, so a
``kill -9`` loses nothing already logged and a power cut at most the line being written.
:func:`read_log` ignores a torn final line (no newline, not valid JSON) and refuses any
other bad line, naming the file and line number.
"""

from labkit.session.core import (
    PAIN_WHEN,
    RECORDINGS_DIR,
    VERSIONED_PACKAGES,
    Session,
    package_versions,
)
from labkit.session.ids import (
    SESSION_ID_PATTERN,
    SUBJECT_ID_PATTERN,
    PersonalDataError,
    check_session_id,
    check_subject_id,
)
from labkit.session.log import (
    KNOWN_KINDS,
    LOG_FILE,
    LogFormatError,
    LogRecord,
    LogRepair,
    SessionError,
    SessionLog,
    SessionLogError,
    read_log,
    to_jsonable,
)
from labkit.session.storage import StorageFault, StorageFaultError, StorageLatch

__all__ = [
    "KNOWN_KINDS",
    "LOG_FILE",
    "PAIN_WHEN",
    "RECORDINGS_DIR",
    "SESSION_ID_PATTERN",
    "SUBJECT_ID_PATTERN",
    "VERSIONED_PACKAGES",
    "LogFormatError",
    "LogRecord",
    "LogRepair",
    "PersonalDataError",
    "Session",
    "SessionError",
    "SessionLog",
    "SessionLogError",
    "StorageFault",
    "StorageFaultError",
    "StorageLatch",
    "check_session_id",
    "check_subject_id",
    "package_versions",
    "read_log",
    "to_jsonable",
]
