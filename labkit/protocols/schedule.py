"""Expansion of a protocol into a pulse schedule (pure: no clock, no device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the model imports this module; no import back at run time
    from labkit.protocols.model import Protocol


@dataclass(frozen=True)
class PulseSchedule:
    """Every pulse of a protocol, relative to its start.

    Attributes
    ----------
    protocol_name : str
        The protocol the schedule was expanded from.
    times_s : numpy.ndarray
        Pulse times in s from the first pulse (float64, non-decreasing, starts at 0).
    intensity_percent : numpy.ndarray
        Intensity of each pulse, % MSO on the 1 % grid (int16).
    train : numpy.ndarray
        Train index of each pulse, from 0.
    burst : numpy.ndarray
        Burst index within its train, from 0.
    pulse_in_burst : numpy.ndarray
        Pulse index within its burst, from 0.
    rmt_percent : float
        The resting motor threshold the intensities were computed from, % MSO.
    """

    protocol_name: str
    times_s: np.ndarray
    intensity_percent: np.ndarray
    train: np.ndarray
    burst: np.ndarray
    pulse_in_burst: np.ndarray
    rmt_percent: float

    def __len__(self) -> int:
        return int(self.times_s.size)

    @property
    def n_trains(self) -> int:
        """Number of trains."""
        return int(self.train[-1]) + 1 if len(self) else 0

    @property
    def duration_s(self) -> float:
        """Time of the last pulse, s (the span of the schedule)."""
        return float(self.times_s[-1]) if len(self) else 0.0

    def train_slice(self, train: int) -> slice:
        """Index range of the pulses of ``train``."""
        idx = np.flatnonzero(self.train == train)
        if idx.size == 0:
            raise IndexError(f"train {train} not in schedule (0..{self.n_trains - 1})")
        return slice(int(idx[0]), int(idx[-1]) + 1)

    def remaining_s(self, next_index: int) -> float:
        """Seconds from pulse ``next_index`` to the last pulse (0 when done)."""
        if next_index >= len(self):
            return 0.0
        return float(self.times_s[-1] - self.times_s[next_index])

    def to_records(self) -> list[dict]:
        """One dict per pulse (for tables and logs)."""
        return [
            {
                "index": i,
                "time_s": float(self.times_s[i]),
                "intensity_percent": int(self.intensity_percent[i]),
                "train": int(self.train[i]),
                "burst": int(self.burst[i]),
                "pulse_in_burst": int(self.pulse_in_burst[i]),
            }
            for i in range(len(self))
        ]


def expand(
    protocol: Protocol,
    rmt_percent: float,
    *,
    amt_percent: float | None = None,
    relative: float | None = None,
) -> PulseSchedule:
    """Expand ``protocol`` into a :class:`PulseSchedule` for one subject.

    Parameters
    ----------
    protocol : Protocol
        The protocol.
    rmt_percent : float
        Resting motor threshold, % MSO.
    amt_percent : float | None
        Active motor threshold, % MSO (protocols given in % AMT).
    relative : float | None
        Intensity chosen within the protocol's range, in its unit.

    Returns
    -------
    PulseSchedule
        Times, intensities and indices of every pulse.
    """
    t = protocol.timing
    ipi_s = (t.inter_pulse_interval_ms or 0.0) / 1000.0
    ibi_s = (t.inter_burst_interval_ms or 0.0) / 1000.0
    train_period_s = t.train_duration_s + t.inter_train_interval_s
    train_idx, burst_idx, pulse_idx = np.meshgrid(
        np.arange(t.trains), np.arange(t.bursts_per_train), np.arange(t.pulses_per_burst),
        indexing="ij",
    )
    train_idx = train_idx.ravel()
    burst_idx = burst_idx.ravel()
    pulse_idx = pulse_idx.ravel()
    times = train_idx * train_period_s + burst_idx * ibi_s + pulse_idx * ipi_s
    mso = protocol.intensity_percent(rmt_percent, amt_percent=amt_percent, relative=relative)
    return PulseSchedule(
        protocol_name=protocol.name,
        times_s=times.astype(np.float64),
        intensity_percent=np.full(times.size, mso, dtype=np.int16),
        train=train_idx.astype(np.int32),
        burst=burst_idx.astype(np.int32),
        pulse_in_burst=pulse_idx.astype(np.int32),
        rmt_percent=float(rmt_percent),
    )
