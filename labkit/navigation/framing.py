"""Splitting a TCP byte stream into JSON objects sent back to back (no delimiter).

The Localite TMS Navigator writes one JSON object after another on its socket, with no
newline or length prefix. :class:`JSONStreamDecoder` is fed whatever bytes arrived and
returns every complete object; a partial object stays buffered until the rest arrives.
Pure: no sockets.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONStreamDecoder"]

#: A buffer that grows past this without yielding an object is garbage, bytes.
MAX_BUFFER_BYTES = 1 << 20


class JSONStreamDecoder:
    """Incremental decoder of back-to-back JSON objects.

    Whitespace between objects is skipped. Bytes that cannot start a JSON value (e.g. a
    stray delimiter) are dropped up to the next ``{`` and counted in ``skipped_bytes``.

    Examples
    --------
    >>> d = JSONStreamDecoder()
    >>> d.feed(b'{"a": 1}{"b"')
    [{'a': 1}]
    >>> d.feed(b': 2}')
    [{'b': 2}]
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._pending = b""
        self._decoder = json.JSONDecoder()
        self.skipped_bytes = 0

    def feed(self, data: bytes) -> list[Any]:
        """Add received bytes; return the complete JSON values, in order."""
        raw = self._pending + data
        try:
            text = raw.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as exc:  # a multi-byte character split across reads
            cut = exc.start
            if len(raw) - cut > 3:
                text = raw.decode("utf-8", errors="replace")
                self._pending = b""
            else:
                text, self._pending = raw[:cut].decode("utf-8"), raw[cut:]
        self._buffer += text
        out: list[Any] = []
        while True:
            stripped = self._buffer.lstrip()
            if not stripped:
                self._buffer = ""
                break
            if stripped[0] not in "{[":
                start = stripped.find("{")
                dropped = len(stripped) if start < 0 else start
                self.skipped_bytes += dropped
                self._buffer = "" if start < 0 else stripped[start:]
                continue
            try:
                value, end = self._decoder.raw_decode(stripped)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(stripped) - 1 or _incomplete(stripped):
                    self._buffer = stripped
                    if len(self._buffer) > MAX_BUFFER_BYTES:
                        self.skipped_bytes += len(self._buffer)
                        self._buffer = ""
                    break
                # malformed object: drop up to the next candidate start and go on
                start = stripped.find("{", 1)
                self.skipped_bytes += len(stripped) if start < 0 else start
                self._buffer = "" if start < 0 else stripped[start:]
                continue
            out.append(value)
            self._buffer = stripped[end:]
        return out


def _incomplete(text: str) -> bool:
    """True when ``text`` may be the beginning of a valid JSON object (brackets still open)."""
    depth, in_string, escape = 0, False, False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return False
    return depth > 0
