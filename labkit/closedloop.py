"""EEG-state-triggered stimulation (mu phase).

For now this module holds the pure pieces the controller is built on:

* :func:`phase_now` — instantaneous mu phase at the last sample of a window
  (cosine convention: 0 = positive peak, ±pi = trough); causal.
* :func:`time_to_phase` — seconds until the phase next reaches a target.
* :class:`PhaseTracker` — the same estimator updated per incoming sample, for the loop.

The estimators themselves live in :mod:`labkit.phase` (documented there, with sources).
"""

from __future__ import annotations

from labkit.phase import (
    METHODS,
    KalmanParams,
    PhaseTracker,
    estimate_mu_peak,
    phase_now,
    time_to_phase,
)

__all__ = [
    "METHODS",
    "KalmanParams",
    "PhaseTracker",
    "estimate_mu_peak",
    "phase_now",
    "time_to_phase",
]
