"""The :class:`Session`: ids, directory layout, log helpers and recorders together."""

from __future__ import annotations

import math
import os
import platform
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit.clock import local_clock
from labkit.errors import ConfigError, LabkitError
from labkit.markers import PulseEvent
from labkit.recording import AppendFile, RecordingError, StreamRecorder
from labkit.session.ids import check_session_id, check_subject_id
from labkit.session.log import (
    LOG_FILE,
    LogRecord,
    SessionError,
    SessionLog,
    SessionLogError,
    read_log,
)
from labkit.session.storage import StorageFault, StorageFaultError, StorageLatch, fault_kind

RECORDINGS_DIR = "recordings"
#: Allowed values of ``when`` for a pain rating.
PAIN_WHEN = ("before", "after", "follow-up")
#: Packages whose versions :meth:`Session.log_versions` records.
#: Log kinds that begin stimulation; the sink refuses them while storage is faulted
#: (``"safety"`` is the verdict a protocol runner logs before it starts).
STIMULATION_START_KINDS = ("safety",)
VERSIONED_PACKAGES = (
    "labkit", "numpy", "scipy", "numba", "mne", "mne-lsl", "pylsl", "pyserial", "pandas",
    "pydantic", "mne-bids", "ipywidgets",
)


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


def wall_clock() -> dict[str, Any]:
    """The wall-clock time now: ISO 8601 with the local UTC offset, and Unix seconds.

    Logged at the start, resumption and end of a session next to the record's LSL
    ``time_s``, so that reports and exports can state when the session took place.
    """
    now = datetime.now().astimezone()
    return {"wall_clock": now.isoformat(timespec="seconds"), "unix_time_s": now.timestamp()}


def _optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ConfigError(f"must be a non-empty string of at most 200 characters, got {value!r}",
                          field=name)
    return value.strip()


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


#: Log kinds of which each record is one delivered pulse.
PULSE_KINDS = ("pulse", "closed_loop_pulse")


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
        write's :class:`SessionLogError`. Runs in that thread; keep it short. Every such
        fault also latches :attr:`storage` (see :meth:`guard`, :meth:`check_storage`).
    log_opener : callable | None
        Passed to :class:`SessionLog` (tests: simulated full disk).
    operator : str | None
        Who runs the session (name or staff code), for the session record.
    site : str | None
        Where (lab, hospital), for the session record.

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
        operator: str | None = None,
        site: str | None = None,
        _mode: str = "any",
    ) -> None:
        self.root = Path(root)
        self.operator = _optional_text(operator, "operator")
        self.site = _optional_text(site, "site")
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
        #: Storage-fault latch: set by low disk space or a write error until cleared.
        self.storage = StorageLatch(clock)
        self.log = SessionLog(self.log_path, clock=clock, opener=log_opener,
                              on_error=self._fault)
        self.recorders: dict[str, StreamRecorder] = {}
        self._clock = clock
        ids = {"subject_id": self.subject_id, "session_id": self.session_id, "task": task,
               **wall_clock()}
        ids.update({k: v for k, v in (("operator", self.operator), ("site", self.site)) if v})
        #: Pulses delivered in this session, whatever fired them (rebuilt from the log).
        self.pulses_delivered = len(self.events(PULSE_KINDS)) if existed else 0
        if existed:
            self._report_unclean_end()
            self.log.append("session_resume", **ids)
        else:
            self.log.append("session_start", **ids)
            self.log_versions()

    def _report_unclean_end(self) -> None:
        """Log a ``fault`` when the previous run did not end with ``session_end``."""
        repair = self.log.repair
        last = repair.last_record
        if last is not None and last.kind == "session_end" and not repair.repaired:
            return
        self.log.append(
            "fault", what="previous run ended uncleanly",
            last_seq=None if last is None else last.seq,
            last_kind=None if last is None else last.kind,
            last_time_s=None if last is None else last.time_s,
            torn_bytes=repair.torn_bytes, newline_restored=repair.newline_restored,
        )

    def _fault(self, err: LabkitError, source: str = "log") -> None:
        self.storage.trip(err, source)
        if self.on_fault is not None:
            self.on_fault(err)

    # -- storage faults ----------------------------------------------------------------
    def check_storage(self, action: str = "stimulation") -> None:
        """Refuse ``action`` while a storage fault is latched.

        Logs a ``fault`` record (``what`` = ``"low disk space"``, ``"disk full"`` or
        ``"write failed"``) and raises :class:`~labkit.session.storage.StorageFaultError`.
        Hunts and panels call this before they fire; the :meth:`sink` calls it when a
        protocol runner is about to start.
        """
        fault = self.storage.fault
        if fault is None:
            return
        try:
            self.log_fault(fault.what, refused=action, source=fault.source,
                           since_s=fault.time_s)
        except (SessionLogError, ValueError):
            pass
        self.storage.check(action)

    def guard(self, runner: Any) -> Any:
        """Tie a protocol runner to the storage latch; returns it.

        Refuses (raises) while a fault is latched; afterwards, a fault stops the runner
        at once (``runner.stop(reason=...)``) however long its run.
        """
        self.check_storage("protocol run")
        self.storage.subscribe(lambda why: runner.stop(reason=f"storage: {why}", wait=False))
        return runner

    def clear_storage_fault(self, reason: str) -> StorageFault | None:
        """Unlatch the storage fault (after freeing space) and log who cleared it and why.

        Refused while a recorder of this session has failed: stop it
        (:meth:`stop_recordings`) and record anew first. Recorders check free space again
        and trip the latch anew if it is still short.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("say why the storage fault is cleared", field="reason")
        failed = [label for label, rec in self.recorders.items() if rec.failed]
        if failed:
            raise StorageFaultError(
                f"recording(s) {failed} failed and stopped; stop_recordings() and record "
                "anew before clearing the storage fault")
        fault = self.storage.clear()
        if fault is not None:
            for rec in self.recorders.values():
                rec.recheck_free_space()
            self.log.append("storage_fault_cleared", what=fault.what, source=fault.source,
                            since_s=fault.time_s, reason=reason.strip())
        return fault

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
    def open(
        cls,
        root: str | os.PathLike,
        subject_id: str,
        session_id: str | int | None = None,
        *,
        task: str = "rtms",
        operator: str | None = None,
        site: str | None = None,
        clock: Callable[[], float] = local_clock,
        on_fault: Callable[[LabkitError], Any] | None = None,
        log_opener: Callable[[Path], AppendFile] | None = None,
    ) -> Session:
        """Start a new session; refuse if that session already has a log.

        The parameters are those of :class:`Session`: ``session_id`` defaults to the
        subject's next free number; ``task``, ``operator`` and ``site`` go into the log
        and the session record; ``clock``, ``on_fault`` and ``log_opener`` as there.

        Raises
        ------
        SessionError
            The session already exists (use :meth:`resume`).
        """
        return cls(root, subject_id, session_id, task=task, operator=operator, site=site,
                   clock=clock, on_fault=on_fault, log_opener=log_opener, _mode="new")

    @classmethod
    def resume(
        cls,
        root: str | os.PathLike,
        subject_id: str,
        session_id: str | int,
        *,
        task: str = "rtms",
        operator: str | None = None,
        site: str | None = None,
        clock: Callable[[], float] = local_clock,
        on_fault: Callable[[LabkitError], Any] | None = None,
        log_opener: Callable[[Path], AppendFile] | None = None,
    ) -> Session:
        """Continue an existing session (after a crash); its log is appended to.

        The parameters are those of :class:`Session` (and of :meth:`open`); the pulse
        count is rebuilt from the log, and a run that ended uncleanly is reported.

        Raises
        ------
        SessionError
            There is no such session.
        """
        return cls(root, subject_id, session_id, task=task, operator=operator, site=site,
                   clock=clock, on_fault=on_fault, log_opener=log_opener, _mode="resume")

    # -- logging helpers --------------------------------------------------------------
    def log_event(self, kind: str, **payload: Any) -> LogRecord:
        """Log any event (see :meth:`SessionLog.append`).

        Parameters
        ----------
        kind : str
            The record's kind (``"note"``, ``"emg_setup"``...).
        **payload
            The record's fields (JSON values); a ``time_s`` becomes the record's time.
        """
        return self.log.append(kind, **payload)

    def sink(self, kind: str, payload: dict) -> LogRecord:
        """``log(kind, payload)`` callback for producers such as the protocol runner.

        A ``time_s`` in the payload becomes the record's time. ``pulse`` events are
        queued for the log's writer thread (:meth:`SessionLog.append_nowait`) so that
        fsync never delays the next pulse; every other kind is written and fsync'd
        (after the queued pulses, in order) before returning. While a storage fault is
        latched, a runner's pre-start ``safety`` record is refused and a software-timed
        ``pulse`` is logged, then refused (:class:`~labkit.session.storage.StorageFaultError`),
        which stops a runner that :meth:`guard` did not tie to the latch.
        """
        body = dict(payload)
        time_s = body.pop("time_s", None)
        if kind in STIMULATION_START_KINDS:
            self.check_storage("protocol run")
        if kind in PULSE_KINDS:
            self.pulses_delivered += 1
        if kind == "pulse":
            record = self.log.append_nowait(kind, time_s=time_s, **body)
            if body.get("timing") != "device":  # a device's train logs its pulses after
                self.storage.check("further pulses")  # an unguarded runner stops here
            return record
        return self.log.append(kind, time_s=time_s, **body)

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
        """Log stimulator/amplifier information.

        Parameters
        ----------
        **info
            Facts as JSON values: ``model``, ``manufacturer``, ``serial``, ``coil``,
            ``firmware``, ``port``, ``pulse_waveform``, ``target``, ``hemisphere``,
            ``hotspot``...; the session record and the BIDS export read these names.
        """
        return self.log.append("device", **info)

    def log_protocol(self, protocol: Any, **extra: Any) -> LogRecord:
        """Log the protocol: a dict, a pydantic model (``model_dump``) or its name.

        Parameters
        ----------
        protocol : Protocol, dict or str
            What is planned.
        **extra
            Further facts (JSON values), e.g. ``intensity_rmt_percent`` chosen in the
            protocol's range.
        """
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
        self.pulses_delivered += 1
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

    def log_threshold(self, threshold_percent: float, *, method: Any, kind: str = "rmt",
                      n_pulses: int | None = None, **extra: Any) -> LogRecord:
        """Log a motor threshold (``kind`` ``"rmt"`` or ``"amt"``) in % MSO.

        Parameters
        ----------
        threshold_percent : float
            The threshold, % MSO, in (0, 100].
        method : str, estimator class or estimator
            How it was found. A class or instance of a :mod:`labkit.threshold` estimator
            is logged by its method's name (``MLPest`` and ``MLPest(...)`` log
            ``"mlpest"``); text (e.g. ``"by hand, 5/10"``) is logged as given.
        kind : {"rmt", "amt"}
            Resting or active motor threshold.
        n_pulses : int | None
            Pulses the hunt used.
        **extra
            Further facts logged with it (JSON values), e.g. ``estimate_percent``,
            ``credible_interval_percent``, ``criterion_uv``; the session record shows
            the credible interval.
        """
        from labkit.threshold import ThresholdEstimator, method_name

        if isinstance(method, ThresholdEstimator) or (
                isinstance(method, type) and issubclass(method, ThresholdEstimator)):
            method = method_name(method)
        elif not isinstance(method, str) or not method.strip():
            raise ConfigError(f"must be an estimator or a description of the method, got "
                              f"{method!r}", field="method")
        if not (isinstance(threshold_percent, (int, float)) and math.isfinite(threshold_percent)
                and 0 < threshold_percent <= 100):
            raise ConfigError(f"must be in (0, 100] % MSO, got {threshold_percent!r}",
                              field="threshold_percent")
        if kind not in ("rmt", "amt"):
            raise ConfigError(f"must be 'rmt' or 'amt', got {kind!r}", field="kind")
        return self.log.append("threshold", threshold_percent=float(threshold_percent),
                               method=method, threshold_kind=kind, n_pulses=n_pulses, **extra)

    def log_pain_rating(self, nrs: int, when: str = "before", **extra: Any) -> LogRecord:
        """Log a 0–10 numeric rating scale pain score ``before``/``after``/``follow-up``.

        ``**extra`` are further facts logged with it (JSON values), e.g. ``scale`` or
        ``note``.
        """
        value = _validate_pain(nrs, when)
        return self.log.append("pain_rating", nrs=value, when=when, **extra)

    def log_adverse_event(self, event: str, *, severity: str = "mild",
                          description: str = "", **extra: Any) -> LogRecord:
        """Log an adverse event (seizure, syncope, headache...), severity mild/moderate/severe.

        ``**extra`` are further facts logged with it (JSON values), e.g. ``onset_s``,
        ``action_taken``, ``resolved``.
        """
        if not isinstance(event, str) or not event.strip():
            raise ConfigError("must name the event (e.g. 'headache')", field="event")
        if severity not in ("mild", "moderate", "severe"):
            raise ConfigError(f"must be mild, moderate or severe, got {severity!r}",
                              field="severity")
        return self.log.append("adverse_event", event=event.strip(), severity=severity,
                               description=description, **extra)

    def log_adverse_event_check(self, *, asked_by: str, none_reported: bool,
                                **extra: Any) -> LogRecord:
        """Log that the subject was asked about adverse events (after stimulation).

        ``none_reported=True`` records an explicit "nothing to report"; events that
        were reported are logged with :meth:`log_adverse_event`. Without this record a
        report says the question was not asked instead of "0 adverse events".
        ``**extra`` are further facts logged with it (JSON values).
        """
        who = _optional_text(asked_by, "asked_by")
        return self.log.append("adverse_event_check", asked_by=who,
                               none_reported=bool(none_reported), **extra)

    def log_screening(self, answers: dict, *, eligible: bool, **extra: Any) -> LogRecord:
        """Log screening answers and the verdict.

        ``**extra`` are further facts logged with it (JSON values), e.g. ``result`` (the
        screening's ``to_log()``) or the physician's decisions.
        """
        return self.log.append("screening", answers=answers, eligible=bool(eligible), **extra)

    def log_override(self, reason: str, **what: Any) -> LogRecord:
        """Log a safety override; ``reason`` is required.

        ``**what`` says what was overridden (JSON values), e.g. ``approved_by``,
        ``limit``, ``value``.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("an override needs a written reason", field="reason")
        return self.log.append("override", reason=reason.strip(), **what)

    def log_fault(self, what: str, **extra: Any) -> LogRecord:
        """Log a fault (stream lost, stimulator silent, disk full...).

        ``**extra`` are further facts logged with it (JSON values), e.g. ``source``,
        ``refused``.
        """
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
            self.storage.trip(err, label)  # first: guarded runners stop now
            try:
                self.log_fault(fault_kind(err), recording=label, error=str(err))
            except (SessionLogError, ValueError):
                pass
            if user_cb is not None:
                user_cb(err)
            self._fault(err, label)

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
                end: dict[str, Any] = wall_clock()
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
