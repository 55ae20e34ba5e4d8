"""Pulse markers: one LSL string marker per delivered pulse.

Each marker is a JSON object so that any LSL recorder (LabRecorder, mne-lsl, labkit's own
recorder) keeps the stimulation parameters next to the timestamp. Keys:

``event``
    Always ``"pulse"`` for a delivered pulse.
``device``
    Stimulator class name (``"Magstim"``, ``"MagPro"``...).
``intensity_percent``
    Intensity of output A in % of maximum stimulator output (MSO).
``intensity_b_percent``, ``ipi_ms``
    BiStim / paired-pulse parameters, when they apply.
``index``
    Running pulse count of this driver, starting at 0.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field

import pylsl

MARKER_STREAM_TYPE = "Markers"
DEFAULT_MARKER_STREAM = "labkit-pulses"


@dataclass(frozen=True)
class PulseEvent:
    """A delivered pulse.

    Attributes
    ----------
    time_s : float
        LSL ``local_clock()`` time at which the fire command was written, in seconds.
    intensity_percent : float
        Output A intensity, % MSO.
    device : str
        Stimulator class name.
    index : int
        Running pulse count of the driver.
    intensity_b_percent : float | None
        Output B intensity (BiStim), % MSO.
    ipi_ms : float | None
        Inter-pulse interval of a paired pulse, ms.
    extra : dict
        Further parameters (train position, protocol name...).
    """

    time_s: float
    intensity_percent: float
    device: str
    index: int
    intensity_b_percent: float | None = None
    ipi_ms: float | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise without the timestamp (LSL carries it)."""
        payload = {"event": "pulse"}
        payload.update({k: v for k, v in asdict(self).items() if k != "time_s" and v is not None})
        if not payload.get("extra"):
            payload.pop("extra", None)
        return json.dumps(payload, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, time_s: float) -> PulseEvent:
        """Parse a marker string produced by :meth:`to_json`."""
        payload = json.loads(text)
        payload.pop("event", None)
        return cls(time_s=time_s, **payload)


class PulseMarkerOutlet:
    """An LSL outlet that publishes every delivered pulse.

    Parameters
    ----------
    name : str
        Stream name.
    source_id : str | None
        LSL source id; defaults to ``"labkit-" + name``.
    """

    def __init__(self, name: str = DEFAULT_MARKER_STREAM, source_id: str | None = None):
        info = pylsl.StreamInfo(
            name, MARKER_STREAM_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
            source_id or f"labkit-{name}",
        )
        self.name = name
        self.source_id = info.source_id()
        self._outlet = pylsl.StreamOutlet(info)
        self._lock = threading.Lock()

    def push(self, event: PulseEvent) -> None:
        """Publish one pulse with its own timestamp."""
        with self._lock:
            self._outlet.push_sample([event.to_json()], event.time_s)

    def __call__(self, event: PulseEvent) -> None:
        self.push(event)

    def close(self) -> None:
        """Stop publishing (drops the outlet)."""
        self._outlet = None
