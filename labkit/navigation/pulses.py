"""Navigated single pulses: wait until the coil is on target, fire, log the pose, report the MEP.

:class:`NavigatedPulser` wraps a rig (anything with ``pulse(intensity) -> trial``) and a
navigator client. Each :meth:`NavigatedPulser.pulse`:

1. with a gate, waits until the coil is on target (a fresh pose within the gate's
   distance, rotation and tilt); while the navigator is disconnected or the pose is stale
   the pulse is *held* and the hold is logged; after ``hold_timeout_s`` it gives up with a
   :class:`~labkit.errors.NavigationError` and nothing is fired;
2. fires through the rig (so every limit of the rig applies);
3. takes the pose received last before the pulse time, only if it is at most
   ``client.max_pose_age_s`` old (else the pulse is logged with ``pose_status`` "stale",
   "no-pose" or "disconnected" and no position);
4. sends the MEP back to the navigator (``coil_0_response``) so its map shows it.

``log`` holds one row per pulse (the pulse time, intensity, MEP and the pose columns of
:meth:`~labkit.navigation.gate.PulsePose.as_record`) and ``holds`` every wait. With a
``session``, each pulse is also logged there (``session.log_pulse``: the pose columns
travel with the pulse into the BIDS events), and so are the holds and the navigator's
link events (``navigation`` records: connected, disconnected, tracking lost...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.errors import NavigationError
from labkit.navigation.gate import GateVerdict, PulsePose, TargetGate

__all__ = ["NavigatedPulser", "NavigatedTrial"]


@dataclass(frozen=True)
class NavigatedTrial:
    """One navigated pulse: the rig's trial and the coil pose that goes with it."""

    trial: Any
    pose: PulsePose
    held_s: float

    @property
    def amplitude_uv(self) -> float:
        """Peak-to-peak MEP, µV."""
        return float(self.trial.amplitude_uv)


class NavigatedPulser:
    """Fire single pulses on target and log the coil pose of each.

    Parameters
    ----------
    rig : object
        A :class:`labkit.rig.Rig`: ``prepare_pulse(intensity_percent)`` makes the unit
        ready, ``pulse(intensity_percent) -> trial`` fires; the trial has
        ``pulse.time_s``, ``amplitude_uv``, ``latency_ms`` and ``waveform_uv``.
    client : object
        The navigator client (:class:`~labkit.navigation.localite.LocaliteClient`).
    gate : TargetGate | None
        Hold firing until on target; None fires at once (the pose is still logged).
    hold_timeout_s : float
        Longest hold before giving up, s.
    send_meps : bool
        Send each MEP back to the navigator.
    sleep : callable
        Wait function (tests pass a fake).
    session : object | None
        A :class:`labkit.session.Session` to log pulses, holds and link events in.
    log_pulses : bool
        Log each pulse to ``session`` here; False when the rig already logs its pulses
        with their pose (a rig's own :attr:`~labkit.rig.Rig.navigator`).
    """

    def __init__(self, rig: Any, client: Any, gate: TargetGate | None = None, *,
                 hold_timeout_s: float = 30.0, send_meps: bool = True,
                 sleep: Callable[[float], None] = time.sleep, session: Any = None,
                 log_pulses: bool = True) -> None:
        if not (0 < hold_timeout_s <= 3600):
            raise ValueError(f"hold_timeout_s = {hold_timeout_s!r} is outside (0, 3600] s")
        self.rig, self.client, self.gate = rig, client, gate
        self.hold_timeout_s = float(hold_timeout_s)
        self.send_meps = send_meps
        self.sleep = sleep
        self.log: list[dict[str, Any]] = []
        self.holds: list[dict[str, Any]] = []
        self.session = session
        self.log_pulses = bool(log_pulses)
        if session is not None and hasattr(client, "add_listener"):
            client.add_listener(self._log_link_event)

    def _log_link_event(self, event: Any) -> None:
        self.session.log_event("navigation", event=event.kind, detail=event.detail,
                               time_s=event.time_s)

    def _hold(self, record: dict[str, Any]) -> None:
        self.holds.append(record)
        if self.session is not None:
            self.session.log_event("navigation", event="hold", **record)

    def check(self) -> GateVerdict:
        """The gate's verdict now (always ok without a gate)."""
        if self.gate is None:
            return GateVerdict(True, "no gate")
        return self.gate.verdict(self.client.pulse_pose())

    def wait_on_target(self, timeout_s: float | None = None) -> float:
        """Block until the gate opens; return how long it took, s.

        Raises
        ------
        NavigationError
            When the gate stays closed for ``timeout_s`` (default ``hold_timeout_s``).
        """
        limit = self.hold_timeout_s if timeout_s is None else float(timeout_s)
        start = time.monotonic()
        verdict = self.check()
        first_reason = verdict.reason
        while not verdict.ok:
            waited = time.monotonic() - start
            if waited >= limit:
                self._hold({"held_s": waited, "reason": verdict.reason, "fired": False})
                raise NavigationError(f"firing held for {waited:.1f} s and given up: "
                                      f"{verdict.reason}")
            self.sleep(0.02)
            verdict = self.check()
        waited = time.monotonic() - start
        if waited > 0:
            self._hold({"held_s": waited, "reason": first_reason, "fired": True})
        return waited

    def pulse(self, intensity_percent: int) -> NavigatedTrial:
        """Wait for the target (with a gate), fire one pulse, log its pose and MEP."""
        # wait out the single-pulse interval and make the unit ready (intensity, arming:
        # about a second) first, so that the gate's check is the last thing before the
        # pulse (the hand drifts while it waits)
        self.rig.prepare_pulse(intensity_percent)
        held = self.wait_on_target() if self.gate is not None else 0.0
        trial = self.rig.pulse(intensity_percent)
        pose = self.client.pulse_pose(trial.pulse.time_s)
        row: dict[str, Any] = {
            "pulse_time_s": trial.pulse.time_s,
            "intensity_percent": intensity_percent,
            "mep_ptp_uv": float(trial.amplitude_uv),
            "mep_latency_ms": trial.latency_ms,
            "held_s": held,
        }
        row.update(pose.as_record())
        self.log.append(row)
        if self.session is not None and self.log_pulses:
            extra = {k: v for k, v in row.items() if k not in ("pulse_time_s",
                                                                "intensity_percent")}
            self.session.log_pulse(trial.pulse, source="navigated", **extra)
        if self.send_meps:
            self._send_mep(trial)
        return NavigatedTrial(trial, pose, held)

    def _send_mep(self, trial: Any) -> None:
        wave = np.asarray(getattr(trial, "waveform_uv", []), dtype=float).reshape(-1)
        times = np.asarray(getattr(trial, "times_ms", []), dtype=float).reshape(-1)
        profile = getattr(self.rig, "profile", None)
        start, stop = profile.mep.window_ms if profile is not None else (15.0, 50.0)
        if times.size == wave.size and wave.size:
            wave = wave[(times >= start) & (times <= stop)]
        lo, hi = (float(wave.min()), float(wave.max())) if wave.size else (0.0, 0.0)
        latency = trial.latency_ms
        if latency is None or not np.isfinite(latency):
            latency = 0.0
        try:
            self.client.send_mep(float(trial.amplitude_uv), float(latency), lo, hi)
        except (NavigationError, ValueError) as exc:
            self._hold({"held_s": 0.0, "reason": f"MEP not sent to the navigator: {exc}",
                        "fired": True})


def run_navigated_hunt(pulser: NavigatedPulser, hunt: Any, intensity_percent: int, *,
                       first_target_index: int = 1) -> None:
    """Deliver a :class:`labkit.hotspot.HotspotHunt` on a navigated rig.

    Before the first pulse of each site the navigator's target is switched to that site
    (target ``first_target_index + site.index``, planned in the navigator beforehand);
    the pulser's gate then holds firing until the operator has the coil there. Each
    pulse is recorded with its measured pose.
    """
    current = None
    while not hunt.done:
        site = hunt.next_site()
        if site.index != current:
            pulser.client.set_target(first_target_index + site.index, site.pose)
            current = site.index
        trial = pulser.pulse(intensity_percent)
        hunt.record(site.index, trial.amplitude_uv, trial.pose.pose)


def run_navigated_scan(pulser: NavigatedPulser, scan: Any, intensity_percent: int, *,
                       first_target_index: int = 100) -> None:
    """Deliver a :class:`labkit.hotspot.OrientationScan` on a navigated rig.

    Angle ``k`` of the scan is navigator target ``first_target_index + k``.
    """
    while not scan.done:
        k, _ = scan.next_angle()
        pulser.client.set_target(first_target_index + k, scan.next_pose())
        trial = pulser.pulse(intensity_percent)
        scan.record(trial.amplitude_uv)
