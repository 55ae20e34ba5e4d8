"""Offline runs of navigated procedures on the virtual subject (no LSL, no clock).

For tests and method comparisons across many simulated subjects: the subject's own
ground-truth MEP amplitudes stand in for the measured ones (on the live rig, the
amplifier and the MEP meter reproduce them to within the noise floor), and time is a
counter advanced by the pulse interval.
"""

from __future__ import annotations

from typing import Any

from labkit.sim.coil_hand import HandHeldCoil
from labkit.sim.events import Discharge
from labkit.sim.subject import VirtualSubject

__all__ = ["run_hotspot_hunt", "run_orientation_scan"]


def run_hotspot_hunt(subject: VirtualSubject, hand: HandHeldCoil, hunt: Any,
                     intensity_percent: float, *, start_s: float = 0.0,
                     interval_s: float = 4.0, move_s: float = 3.0,
                     navigated: bool = True, placement_sd_mm: float | None = None) -> float:
    """Deliver a :class:`labkit.hotspot.HotspotHunt` offline; return the end time, s.

    The operator moves the coil to each new site (``move_s`` before its first pulse);
    with ``navigated`` the measured pose of each pulse is recorded with it, else only the
    planned site (a cap grid: the hand's placement error stays unknown to the analysis).
    """
    t, current = float(start_s), None
    subject.coil = hand
    while not hunt.done:
        site = hunt.next_site()
        if site.index != current:
            if site.pose is None:
                raise ValueError("offline hunt needs sites with poses (a navigation grid)")
            hand.move_to(site.pose, t, placement_sd_mm=placement_sd_mm)
            t += move_s
            current = site.index
        response = subject.respond(Discharge(t, float(intensity_percent), "offline"))
        pose = hand.pose_at(t) if navigated else None
        hunt.record(site.index, response.amplitude_uv, pose)
        t += interval_s
    return t


def run_orientation_scan(subject: VirtualSubject, hand: HandHeldCoil, scan: Any,
                         intensity_percent: float, *, start_s: float = 0.0,
                         interval_s: float = 4.0, move_s: float = 2.0) -> float:
    """Deliver a :class:`labkit.hotspot.OrientationScan` offline; return the end time, s."""
    t = float(start_s)
    subject.coil = hand
    while not scan.done:
        pose = scan.next_pose()
        hand.move_to(pose, t)
        t += move_s
        response = subject.respond(Discharge(t, float(intensity_percent), "offline"))
        scan.record(response.amplitude_uv)
        t += interval_s
    return t
