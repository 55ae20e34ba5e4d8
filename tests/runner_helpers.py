"""Shared by the runner and fault tests: a short rTMS protocol and a session-log stand-in."""

from __future__ import annotations

import threading

from labkit.protocols import Protocol


def rtms(frequency_hz: float = 10, per_train: int = 10, trains: int = 2, iti_s: float = 0.3,
         rel: float = 90, name: str = "test-rtms") -> Protocol:
    """A short protocol: ``trains`` trains of ``per_train`` pulses at ``frequency_hz``."""
    return Protocol.model_validate({
        "name": name, "description": "short test protocol", "references": ["test"],
        "target": "M1", "coil": "figure-of-eight", "total_pulses": per_train * trains,
        "intensity": {"unit": "% RMT", "value": rel},
        "timing": {"bursts_per_train": per_train, "inter_burst_interval_ms": 1000 / frequency_hz,
                   "trains": trains, "inter_train_interval_s": iti_s},
    })


class Log:
    """A thread-safe session-log stand-in."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: dict) -> None:
        with self._lock:
            self.events.append((kind, dict(payload)))

    def of(self, kind: str) -> list[dict]:
        """Payloads of the events of ``kind``."""
        with self._lock:
            return [p for k, p in self.events if k == kind]

    def kinds(self) -> list[str]:
        """Kinds of every event but pulses, in order."""
        with self._lock:
            return [k for k, _ in self.events if k != "pulse"]
