"""XDF in and out: a session as LabRecorder's file format, and LabRecorder files as sessions.

XDF (https://github.com/sccn/xdf/wiki/Specifications) is a sequence of chunks after the
4-byte magic ``XDF:``. Every chunk is ``[NumLengthBytes][Length][Tag][Content]``: a
variable-length integer (one byte saying 1, 4 or 8, then that many little-endian bytes)
giving the byte count of tag plus content, a little-endian uint16 tag, and the content.
Tags: 1 FileHeader (XML), 2 StreamHeader (uint32 stream id + XML), 3 Samples (stream
id, variable-length sample count, then per sample a timestamp byte count 0 or 8, the
float64 timestamp if 8, and the values: little-endian numbers, or per channel a
variable-length byte count and the UTF-8 string), 4 ClockOffset (stream id, float64
collection time on the stream host's clock, float64 offset), 5 Boundary, 6
StreamFooter (stream id + XML).

The stored timestamps of a labkit recording are the stream's own and its clock offsets
are stored beside them, exactly the information XDF holds, so the conversion is
lossless both ways: :func:`export_xdf` writes every recording of a session (headers with
channel labels, units and types; samples with their exact timestamps; clock offsets
with collection time = local time − offset, as LabRecorder writes them) plus the
session log as a marker stream; :func:`import_xdf` turns an XDF file into a new session
(recordings + pulse records in the log) so that the MEP analyses, reports and BIDS
export run on it. :func:`read_xdf` is the reader; a corrupt or truncated file raises
:class:`XDFError` naming the file, the chunk number, its byte offset and its tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabkitError
from labkit.recording import (
    HEADER_FILE,
    RecordingError,
    read_clock_offsets,
    read_markers,
    read_samples,
    write_recording,
)
from labkit.session.log import read_log
from labkit.timesync import fit_clock_offsets

__all__ = ["XDFError", "XDFStream", "export_xdf", "import_xdf", "read_xdf"]

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES = 1, 2, 3
TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 4, 5, 6
TAG_NAMES = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset",
             5: "Boundary", 6: "StreamFooter"}
#: XDF channel formats labkit reads, with their little-endian numpy types.
NUMERIC_FORMATS = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2",
                   "int32": "<i4", "int64": "<i8"}
#: Samples per Samples chunk when exporting.
CHUNK_SAMPLES = 4096
#: Name of the marker stream that carries the session log in an export.
LOG_STREAM_NAME = "labkit-session-log"


class XDFError(LabkitError):
    """An XDF file is corrupt, truncated or not XDF; names the file and the chunk."""


# -- writing -----------------------------------------------------------------------------
def _varlen(n: int) -> bytes:
    if n < 2**8:
        return b"\x01" + struct.pack("<B", n)
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _stream_header_xml(info: dict, label: str) -> bytes:
    root = ET.Element("info")
    is_markers = info.get("channel_format") == "string"
    for tag, value in (
        ("name", info.get("name", label)), ("type", info.get("type", "")),
        ("channel_count", int(info.get("n_channels", 1))),
        ("nominal_srate", repr(float(info.get("sfreq", 0.0)))),
        ("channel_format", "string" if is_markers else "float32"),
        ("source_id", info.get("source_id", "")), ("version", "1.1"),
        ("created_at", repr(float(info.get("created_local_clock_s", 0.0)))),
        ("hostname", info.get("hostname", "")),
    ):
        _sub(root, tag, value)
    desc = _sub(root, "desc")
    if not is_markers:
        chans = _sub(desc, "channels")
        for name, unit, kind in zip(info.get("ch_names", []), info.get("units", []),
                                    info.get("ch_types", []), strict=False):
            ch = _sub(chans, "channel")
            _sub(ch, "label", name)
            _sub(ch, "unit", unit)
            _sub(ch, "type", str(kind).upper())
    lab = _sub(desc, "labkit")
    _sub(lab, "recording", label)
    _sub(lab, "format_version", info.get("format_version", 1))
    return _xml(root)


def _footer_xml(stamps: np.ndarray, count: int, offsets: tuple[np.ndarray, np.ndarray]) -> bytes:
    root = ET.Element("info")
    _sub(root, "first_timestamp", repr(float(stamps[0])) if count else "0")
    _sub(root, "last_timestamp", repr(float(stamps[-1])) if count else "0")
    _sub(root, "sample_count", count)
    clock = _sub(root, "clock_offsets")
    for local, offset in zip(*offsets, strict=True):
        off = _sub(clock, "offset")
        _sub(off, "time", repr(float(local - offset)))
        _sub(off, "value", repr(float(offset)))
    return _xml(root)


def _numeric_chunk(sid: int, stamps: np.ndarray, samples: np.ndarray) -> bytes:
    n, n_ch = samples.shape
    rows = np.empty(n, dtype=np.dtype([("nb", "u1"), ("t", "<f8"), ("v", "<f4", (n_ch,))]))
    rows["nb"] = 8
    rows["t"] = stamps
    rows["v"] = samples
    return _chunk(TAG_SAMPLES, struct.pack("<I", sid) + _varlen(n) + rows.tobytes())


def _string_chunk(sid: int, stamps: np.ndarray, values: list[str]) -> bytes:
    parts = [struct.pack("<I", sid), _varlen(len(values))]
    for t, v in zip(stamps.tolist(), values, strict=True):
        raw = v.encode("utf-8")
        parts += [b"\x08", struct.pack("<d", t), _varlen(len(raw)), raw]
    return _chunk(TAG_SAMPLES, b"".join(parts))


def _offset_chunks(sid: int, offsets: tuple[np.ndarray, np.ndarray]) -> bytes:
    return b"".join(
        _chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", sid, float(local - off), float(off)))
        for local, off in zip(*offsets, strict=True))


def _session_dir(session: Any) -> Path:
    path = Path(getattr(session, "path", session))
    if not (path / "log.jsonl").exists():
        raise XDFError(f"{path}: not a session directory (no log.jsonl)")
    return path


def export_xdf(session: Any, path: str | os.PathLike, *, overwrite: bool = False,
               include_log: bool = True) -> Path:
    """Write a whole session to one XDF file.

    Parameters
    ----------
    session : Session | str | os.PathLike
        A :class:`~labkit.session.Session` or its directory.
    path : str | os.PathLike
        The ``.xdf`` file to write; written to ``<path>.part`` and renamed when complete.
    overwrite : bool
        Replace an existing file (refused otherwise).
    include_log : bool
        Add the session log as a marker stream (``labkit-session-log``: every record as
        JSON at its ``time_s``, on the recording host's clock, so without offsets).

    Returns
    -------
    pathlib.Path
        The file written. The session itself is only read.
    """
    ses_dir = _session_dir(session)
    out = Path(path)
    if out.exists() and not overwrite:
        raise XDFError(f"{out}: exists; pass overwrite=True to replace it")
    rec_root = ses_dir / "recordings"
    recordings = sorted(p for p in rec_root.iterdir() if (p / HEADER_FILE).exists()) \
        if rec_root.is_dir() else []
    part = out.with_name(out.name + ".part")
    with open(part, "wb") as f:
        f.write(MAGIC)
        head = ET.Element("info")
        _sub(head, "version", "1.0")
        _sub(head, "datetime", datetime.now().astimezone().isoformat(timespec="seconds"))
        _sub(head, "labkit_session", ses_dir.name)
        f.write(_chunk(TAG_FILE_HEADER, _xml(head)))
        streams: list[tuple[int, Path]] = list(enumerate(recordings, start=1))
        for sid, rec in streams:
            _write_recording_stream(f, sid, rec)
        if include_log:
            _write_log_stream(f, len(streams) + 1, ses_dir)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, out)
    return out


def _write_recording_stream(f: Any, sid: int, rec: Path) -> None:
    info = json.loads((rec / HEADER_FILE).read_text(encoding="utf-8"))
    f.write(_chunk(TAG_STREAM_HEADER, struct.pack("<I", sid) + _stream_header_xml(info, rec.name)))
    offsets = read_clock_offsets(rec)
    if info.get("channel_format") == "string":
        values, stamps, _ = read_markers(rec, sync=False)
        for k in range(0, len(values), CHUNK_SAMPLES):
            f.write(_string_chunk(sid, stamps[k:k + CHUNK_SAMPLES], values[k:k + CHUNK_SAMPLES]))
    else:
        samples, stamps, _ = read_samples(rec)
        for k in range(0, stamps.size, CHUNK_SAMPLES):
            f.write(_numeric_chunk(sid, stamps[k:k + CHUNK_SAMPLES],
                                   samples[k:k + CHUNK_SAMPLES]))
    f.write(_offset_chunks(sid, offsets))
    f.write(_chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid)
                   + _footer_xml(np.asarray(stamps), len(stamps), offsets)))


def _write_log_stream(f: Any, sid: int, ses_dir: Path) -> None:
    records = read_log(ses_dir)
    info = {"name": LOG_STREAM_NAME, "type": "Markers", "n_channels": 1, "sfreq": 0.0,
            "channel_format": "string", "source_id": f"labkit-log-{ses_dir.parent.name}-"
            f"{ses_dir.name}"}
    f.write(_chunk(TAG_STREAM_HEADER, struct.pack("<I", sid)
                   + _stream_header_xml(info, "log")))
    stamps = np.array([r.time_s for r in records], dtype=np.float64)
    values = [json.dumps({"seq": r.seq, "kind": r.kind, "payload": r.payload},
                         ensure_ascii=False) for r in records]
    for k in range(0, len(values), CHUNK_SAMPLES):
        f.write(_string_chunk(sid, stamps[k:k + CHUNK_SAMPLES], values[k:k + CHUNK_SAMPLES]))
    empty = (np.zeros(0), np.zeros(0))
    f.write(_chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid)
                   + _footer_xml(stamps, len(stamps), empty)))


# -- reading -----------------------------------------------------------------------------
@dataclass
class XDFStream:
    """One stream of an XDF file, as stored (timestamps not synchronised).

    Attributes
    ----------
    stream_id : int
    header : dict
        The StreamHeader's top-level fields (``name``, ``type``, ``channel_count``,
        ``nominal_srate``, ``channel_format``, ``source_id``, ``hostname``...), strings.
    channels : list of dict
        ``desc/channels/channel`` entries (``label``, ``unit``, ``type``), if any.
    time_stamps : ndarray, shape (n,)
        The stream's own timestamps, s (omitted ones deduced from the previous + 1/srate).
    time_series : ndarray, shape (n, channel_count) | list of list of str
    clock_times, clock_values : ndarray
        ClockOffset chunks: collection time (stream host's clock) and offset, s.
    footer : dict
        The StreamFooter's top-level fields, if present.
    """

    stream_id: int
    header: dict
    channels: list[dict] = field(default_factory=list)
    time_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    time_series: Any = None
    clock_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clock_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    footer: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The stream name."""
        return self.header.get("name", "")

    @property
    def is_string(self) -> bool:
        """True for a string (marker) stream."""
        return self.header.get("channel_format") == "string"

    def synchronised_stamps(self) -> np.ndarray:
        """The timestamps on the recording host's clock (robust linear offset fit)."""
        local = self.clock_times + self.clock_values
        return fit_clock_offsets(local, self.clock_values).to_local(self.time_stamps)


class _Cursor:
    """Bounds-checked reads over one chunk's bytes; errors name the file and chunk."""

    def __init__(self, buf: memoryview, start: int, end: int, where: Callable[[], str]):
        self.buf, self.pos, self.end, self.where = buf, start, end, where

    def fail(self, what: str) -> XDFError:
        return XDFError(f"{self.where()}: {what}")

    def take(self, n: int) -> memoryview:
        if self.pos + n > self.end:
            raise self.fail(f"content ends {self.pos + n - self.end} byte(s) early (truncated "
                            "or corrupt)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def varlen(self) -> int:
        width = self.take(1)[0]
        if width not in (1, 4, 8):
            raise self.fail(f"variable-length integer of {width} bytes (allowed 1, 4, 8)")
        return int.from_bytes(self.take(width), "little")


def _parse_xml(raw: bytes, cur: _Cursor) -> ET.Element:
    try:
        return ET.fromstring(raw.decode("utf-8"))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise cur.fail(f"XML is not well-formed ({exc})") from None


def _top_fields(root: ET.Element) -> dict:
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


@dataclass
class _Building:
    stream: XDFStream
    fmt: str
    n_ch: int
    srate: float
    stamps: list = field(default_factory=list)
    series: list = field(default_factory=list)
    clock: list = field(default_factory=list)
    last_t: float = 0.0


def _samples(cur: _Cursor, b: _Building) -> None:
    n = cur.varlen()
    if b.fmt == "string":
        for _ in range(n):
            b.last_t = _stamp(cur, b)
            b.stamps.append(b.last_t)
            b.series.append([bytes(cur.take(cur.varlen())).decode("utf-8", errors="replace")
                             for _ in range(b.n_ch)])
        return
    dtype = np.dtype(NUMERIC_FORMATS[b.fmt])
    width = dtype.itemsize * b.n_ch
    packed = np.dtype([("nb", "u1"), ("t", "<f8"), ("v", dtype, (b.n_ch,))])
    if n and cur.end - cur.pos >= n * packed.itemsize:  # fast path: every sample has a time
        rows = np.frombuffer(cur.buf[cur.pos:cur.pos + n * packed.itemsize], dtype=packed)
        if np.all(rows["nb"] == 8):
            cur.pos += n * packed.itemsize
            b.stamps.append(rows["t"].copy())
            b.series.append(rows["v"].copy())
            b.last_t = float(rows["t"][-1])
            return
    stamps = np.empty(n)
    values = np.empty((n, b.n_ch), dtype=dtype)
    for k in range(n):
        b.last_t = stamps[k] = _stamp(cur, b)
        values[k] = np.frombuffer(cur.take(width), dtype=dtype)
    b.stamps.append(stamps)
    b.series.append(values)


def _stamp(cur: _Cursor, b: _Building) -> float:
    nbytes = cur.take(1)[0]
    if nbytes == 8:
        return struct.unpack("<d", cur.take(8))[0]
    if nbytes == 0:
        return b.last_t + (1.0 / b.srate if b.srate > 0 else 0.0)
    raise cur.fail(f"timestamp of {nbytes} bytes (allowed 0 or 8)")


def read_xdf(path: str | os.PathLike) -> list[XDFStream]:
    """Read every stream of an XDF file (timestamps as stored, offsets alongside).

    Raises
    ------
    XDFError
        Not XDF, a chunk cut short or corrupt (the message names the file, the chunk
        number, its byte offset and tag), samples for an undeclared stream, or an
        unsupported channel format.
    """
    return _read(Path(path))[1]


def _read(path: Path) -> tuple[dict, list[XDFStream]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XDFError(f"{path}: cannot read ({exc})") from exc
    if data[:4] != MAGIC:
        raise XDFError(f"{path}: not an XDF file (first bytes {data[:4]!r}, expected b'XDF:')")
    buf = memoryview(data)
    pos, index = 4, 0
    building: dict[int, _Building] = {}
    file_header: dict = {}
    while pos < len(data):
        index += 1
        start = pos
        tag_name = ["?"]

        def where(index=index, start=start, tag_name=tag_name) -> str:
            return f"{path}: chunk {index} ({tag_name[0]}) at byte {start}"

        head = _Cursor(buf, pos, len(data), where)
        length = head.varlen()
        if length < 2:
            raise head.fail(f"length {length} is shorter than its tag")
        end = head.pos + length
        if end > len(data):
            tag_name[0] = TAG_NAMES.get(int.from_bytes(buf[head.pos:head.pos + 2], "little"),
                                        "?") if head.pos + 2 <= len(data) else "?"
            raise head.fail(f"truncated: declares {length} bytes, {len(data) - head.pos} left")
        cur = _Cursor(buf, head.pos, end, where)
        tag = int.from_bytes(cur.take(2), "little")
        tag_name[0] = TAG_NAMES.get(tag, f"unknown tag {tag}")
        if tag == TAG_FILE_HEADER:
            file_header = _top_fields(_parse_xml(bytes(cur.take(cur.end - cur.pos)), cur))
        else:
            _read_chunk(tag, cur, building)
        pos = end
    return file_header, [_finish(b) for _, b in sorted(building.items())]


def _read_chunk(tag: int, cur: _Cursor, building: dict[int, _Building]) -> None:
    if tag == TAG_BOUNDARY:
        return
    if tag not in TAG_NAMES:
        raise cur.fail("unknown chunk tag")
    sid = int.from_bytes(cur.take(4), "little")
    if tag == TAG_STREAM_HEADER:
        root = _parse_xml(bytes(cur.take(cur.end - cur.pos)), cur)
        header = _top_fields(root)
        fmt = header.get("channel_format", "")
        if fmt != "string" and fmt not in NUMERIC_FORMATS:
            raise cur.fail(f"channel_format {fmt!r} not supported (allowed: string, "
                           f"{', '.join(NUMERIC_FORMATS)})")
        try:
            n_ch = int(header["channel_count"])
            srate = float(header.get("nominal_srate", "0") or 0)
        except (KeyError, ValueError) as exc:
            raise cur.fail(f"bad channel_count/nominal_srate ({exc})") from None
        channels = [_top_fields(ch) for ch in root.findall("./desc/channels/channel")]
        building[sid] = _Building(XDFStream(sid, header, channels), fmt, n_ch, srate)
        return
    b = building.get(sid)
    if b is None:
        raise cur.fail(f"stream {sid} has no StreamHeader before it")
    if tag == TAG_SAMPLES:
        _samples(cur, b)
    elif tag == TAG_CLOCK_OFFSET:
        b.clock.append(struct.unpack("<dd", cur.take(16)))
    elif tag == TAG_STREAM_FOOTER:
        b.stream.footer = _top_fields(_parse_xml(bytes(cur.take(cur.end - cur.pos)), cur))


def _finish(b: _Building) -> XDFStream:
    s = b.stream
    if b.fmt == "string":
        s.time_stamps = np.asarray(b.stamps, dtype=np.float64)
        s.time_series = b.series
    else:
        s.time_stamps = np.concatenate(b.stamps) if b.stamps else np.zeros(0)
        s.time_series = (np.concatenate(b.series) if b.series
                         else np.zeros((0, b.n_ch), dtype=NUMERIC_FORMATS[b.fmt]))
    clock = np.asarray(b.clock, dtype=np.float64).reshape(-1, 2)
    s.clock_times, s.clock_values = clock[:, 0].copy(), clock[:, 1].copy()
    return s


# -- import --------------------------------------------------------------------------------
def _label(stream: XDFStream, used: set[str]) -> str:
    kind = stream.header.get("type", "").strip().lower()
    base = kind if kind in ("emg", "eeg", "markers") else (
        re.sub(r"[^A-Za-z0-9_]", "_", stream.name)[:24] or f"stream{stream.stream_id}")
    label, k = base, 1
    while label in used:  # emg, emg-2...: the labels Session.record and export_bids use
        k += 1
        label = f"{base}-{k}"
    used.add(label)
    return label


def _is_labkit_pulse(value: str) -> dict | None:
    try:
        payload = json.loads(value)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) and payload.get("event") == "pulse" else None


def import_xdf(
    path: str | os.PathLike, root: str | os.PathLike, subject_id: str,
    session_id: str | int | None = None, *, task: str = "rtms",
    pulse_marker: str | Callable[[str], bool] | None = None,
    intensity_percent: float | None = None,
) -> Path:
    """Import an XDF file (e.g. from LabRecorder) as a new labkit session.

    Every stream becomes a recording (``emg``, ``eeg``, ``markers`` by stream type, else
    its name; ``emg-2``... for more of a type) with its own timestamps and clock offsets
    (local time = collection time + offset), so readers synchronise it as labkit's own
    recordings. Numeric samples are stored as float32, labkit's recording format (exact
    for float32 and int8/int16 streams; double64 and int32/int64 values are rounded).
    Pulse markers become ``pulse`` records in the session log at their synchronised
    times, which is where the MEP analyses and the BIDS export look for pulses.

    Parameters
    ----------
    path : str | os.PathLike
        The XDF file (only read).
    root, subject_id, session_id, task
        Where the new session goes (see :class:`~labkit.session.Session`); an existing
        session is refused.
    pulse_marker : str | callable | None
        Which markers are pulses: an exact marker string, or ``f(value) -> bool``. By
        default labkit's JSON pulse markers (``{"event": "pulse", ...}``), whose fields
        (intensity, index...) are kept.
    intensity_percent : float | None
        Intensity (% MSO) for pulses whose marker does not carry one.

    Returns
    -------
    pathlib.Path
        The new session directory.
    """
    from labkit.session import Session

    src = Path(path)
    file_header, streams = _read(src)
    started_unix_s = _wall_time(file_header.get("datetime", ""), src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    with Session.open(root, subject_id, session_id, task=task) as ses:
        used: set[str] = set()
        labels = []
        for stream in streams:
            if stream.name == LOG_STREAM_NAME:
                labels.append(None)
                continue
            label = _label(stream, used)
            labels.append(label)
            _write_stream(ses.recordings_dir / label, stream, started_unix_s)
        ses.log_event("import", source=str(src), sha256=digest, format="xdf",
                      streams=[{"name": s.name, "type": s.header.get("type", ""),
                                "recording": lab, "samples": len(s.time_stamps)}
                               for s, lab in zip(streams, labels, strict=True)])
        n = 0
        for stream in streams:
            if stream.is_string and stream.name != LOG_STREAM_NAME:
                n = _log_pulses(ses, stream, pulse_marker, intensity_percent, n)
    return ses.path


def _wall_time(text: str, src: Path) -> float:
    """Unix time of the file header's ``datetime`` (the file's mtime when unreadable)."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return src.stat().st_mtime


def _write_stream(target: Path, stream: XDFStream, started_unix_s: float) -> None:
    h = stream.header
    n_ch = int(h.get("channel_count", 1))
    kind = h.get("type", "").strip().lower()
    chans = stream.channels + [{}] * (n_ch - len(stream.channels))
    default_type = kind if kind in ("emg", "eeg", "ecg", "eog") else "misc"
    header = {
        "name": stream.name, "type": h.get("type", ""), "source_id": h.get("source_id", ""),
        "hostname": h.get("hostname", ""), "sfreq": float(h.get("nominal_srate", 0) or 0),
        "n_channels": n_ch,
        "ch_names": [c.get("label") or f"ch{i + 1}" for i, c in enumerate(chans)],
        "units": [c.get("unit") or ("microvolts" if default_type in ("emg", "eeg") else "")
                  for c in chans],
        "ch_types": [(c.get("type") or default_type).lower() for c in chans],
        "imported_from": "xdf",
    }
    synced = stream.synchronised_stamps()
    header["created_local_clock_s"] = float(synced[0]) if synced.size else 0.0
    header["created_unix_s"] = started_unix_s
    offsets = (stream.clock_times + stream.clock_values, stream.clock_values)
    try:
        if stream.is_string:
            write_recording(target, header, stream.time_stamps,
                            values=[v[0] if v else "" for v in stream.time_series],
                            clock_offsets=offsets)
        else:
            write_recording(target, header, stream.time_stamps,
                            samples=np.asarray(stream.time_series, dtype=np.float32),
                            clock_offsets=offsets)
    except RecordingError as exc:
        raise XDFError(f"stream {stream.name!r}: {exc}") from exc


def _log_pulses(ses: Any, stream: XDFStream, pulse_marker: Any, intensity: float | None,
                n: int) -> int:
    synced = stream.synchronised_stamps()
    for values, t in zip(stream.time_series, synced.tolist(), strict=True):
        value = values[0] if values else ""
        payload = _is_labkit_pulse(value) if pulse_marker is None else (
            {} if (value == pulse_marker if isinstance(pulse_marker, str)
                   else pulse_marker(value)) else None)
        if payload is None:
            continue
        body = {k: v for k, v in payload.items() if k not in ("event", "time_s")}
        body.setdefault("index", n)
        if "intensity_percent" not in body and intensity is not None:
            body["intensity_percent"] = float(intensity)
        body["marker_stream"] = stream.name
        ses.log.append("pulse", time_s=t, **body)
        n += 1
    return n
