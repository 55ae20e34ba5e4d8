"""The one time base of labkit: LSL's ``local_clock()`` in seconds."""

from __future__ import annotations

from pylsl import local_clock

__all__ = ["local_clock"]
