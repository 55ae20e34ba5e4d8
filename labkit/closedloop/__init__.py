"""EEG-state-triggered stimulation (mu phase).

* :class:`ClosedLoopController` — reads EEG from LSL with the lowest practical latency,
  cleans it, tracks the mu phase and fires the stimulator when its policy says so;
  records every trigger (:class:`Trigger`). Settings: :class:`ClosedLoopConfig`.
* :class:`TriggerPolicy` — the pure decision (phase, random or mu-power condition,
  :class:`TriggerConfig`), testable without a stream.
* :func:`estimate_discharge_delay` — the real command → discharge delay from the TMS
  artifact of calibration pulses (give it as ``loop_delay_s``), or
  ``calibration_pulses=n`` to have the controller measure it on its own first pulses
  (:class:`DelayCalibration`).
* :func:`calibrate` / :func:`calibrate_signal` — individual mu peak, signal scale and
  amplitude levels from a resting segment (:class:`Calibration`).
* :func:`phase_now` — instantaneous mu phase at the last sample of a window
  (cosine convention: 0 = positive peak, ±pi = trough); causal.
* :func:`time_to_phase` — seconds until the phase next reaches a target.
* :class:`PhaseTracker` — the same estimator updated per incoming sample, for the loop.
* :func:`phase_error_stats` / :func:`circular_stats` — circular mean and SD.

The estimators themselves live in :mod:`labkit.phase` (documented there, with sources).
"""

from __future__ import annotations

from labkit.closedloop.calibration import Calibration, calibrate, calibrate_signal
from labkit.closedloop.config import (
    CleaningConfig,
    ClosedLoopConfig,
    RunConfig,
    TrackingConfig,
)
from labkit.closedloop.controller import ClosedLoopController, ClosedLoopError
from labkit.closedloop.delay import (
    DelayCalibration,
    DelayEstimate,
    artifact_onset,
    estimate_discharge_delay,
)
from labkit.closedloop.policy import (
    CONDITIONS,
    Decision,
    Estimate,
    TriggerConfig,
    TriggerPolicy,
)
from labkit.closedloop.records import (
    PhaseErrorStats,
    Trigger,
    circular_stats,
    phase_error_stats,
    triggers_frame,
)
from labkit.phase import (
    METHODS,
    KalmanParams,
    PhaseTracker,
    estimate_mu_peak,
    phase_now,
    time_to_phase,
)

__all__ = [
    "CONDITIONS",
    "METHODS",
    "Calibration",
    "CleaningConfig",
    "ClosedLoopConfig",
    "ClosedLoopController",
    "ClosedLoopError",
    "Decision",
    "DelayCalibration",
    "DelayEstimate",
    "Estimate",
    "KalmanParams",
    "PhaseErrorStats",
    "PhaseTracker",
    "RunConfig",
    "TrackingConfig",
    "Trigger",
    "TriggerConfig",
    "TriggerPolicy",
    "calibrate",
    "artifact_onset",
    "calibrate_signal",
    "circular_stats",
    "estimate_discharge_delay",
    "estimate_mu_peak",
    "phase_error_stats",
    "phase_now",
    "time_to_phase",
    "triggers_frame",
]
