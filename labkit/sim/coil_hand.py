"""The operator's hand holding the coil: placement, slow drift and physiological tremor.

:class:`HandHeldCoil` answers "where is the coil at time t?" as a pure function of time
(for any order of questions: the navigator emulator samples it at its own rate, the
virtual subject at each discharge), given the sequence of placements asked of it:

* **placement**: :meth:`HandHeldCoil.move_to` starts a movement towards a target; the
  coil approaches it exponentially (time constant ``settle_tau_s``) and lands with a
  placement error drawn per placement (``placement_sd_mm`` per tangent axis,
  ``placement_angle_sd_deg``): about 1 mm when guided by navigation, several mm when
  placed by eye on a cap or pen marks (pass a larger ``placement_sd_mm`` then);
* **drift**: slow wandering of the hand, a sum of sinusoids between 0.05 and 0.6 Hz with
  random phases whose SD is ``drift_sd_mm`` per axis and ``drift_angle_sd_deg`` in
  rotation (hand-held coils move by 1-3 mm and a few degrees over a minute);
* **tremor**: physiological tremor at 8-12 Hz, ``tremor_mm`` RMS;
* **tilt**: a small wobble of the coil normal, ``tilt_sd_deg``.

The coil rests on the scalp (lift ``lift_mm``), whatever the height of the target.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.navigation.pose import CoilPose, norm3
from labkit.sim.spatial import SphericalHead

__all__ = ["HandHeldCoil", "HandParams"]

_N_DRIFT = 6


@dataclass(frozen=True)
class HandParams:
    """How steady the operator's hand is (see the module docstring)."""

    drift_sd_mm: float = 0.8
    drift_angle_sd_deg: float = 1.5
    tilt_sd_deg: float = 1.0
    tremor_mm: float = 0.15
    placement_sd_mm: float = 0.8
    placement_angle_sd_deg: float = 1.5
    settle_tau_s: float = 0.3
    lift_mm: float = 0.0


@dataclass(frozen=True)
class _Move:
    time_s: float
    from_point: np.ndarray
    from_angle: float
    to_point: np.ndarray
    to_angle: float


class HandHeldCoil:
    """A coil held by a simulated operator over a spherical head.

    Parameters
    ----------
    head : SphericalHead
        The head.
    start : CoilPose
        Where the coil rests before the first placement.
    seed : int
        Seed of the drift, tremor and placement errors.
    params : HandParams | None
        Steadiness of the hand.
    """

    def __init__(self, head: SphericalHead, start: CoilPose, seed: int = 0,
                 params: HandParams | None = None) -> None:
        self.head = head
        self.params = params or HandParams()
        rng = np.random.default_rng([int(seed), 23])
        self._rng = np.random.default_rng([int(seed), 29])
        # drift: 5 signals (anterior, right, angle, tilt-anterior, tilt-right)
        self._freq = np.exp(rng.uniform(math.log(0.05), math.log(0.6), (5, _N_DRIFT)))
        self._phase = rng.uniform(0.0, 2 * math.pi, (5, _N_DRIFT))
        self._tremor_hz = rng.uniform(8.0, 12.0, 2)
        self._tremor_phase = rng.uniform(0.0, 2 * math.pi, 2)
        point = head.foot(start.position)
        self._moves: list[_Move] = [_Move(-math.inf, point, head.angle_deg(start), point,
                                          head.angle_deg(start))]
        self._lock = threading.Lock()
        self.placements: list[tuple[float, CoilPose]] = []

    def move_to(self, target: CoilPose, time_s: float, *, placement_sd_mm: float | None = None
                ) -> None:
        """Start moving the coil to ``target`` at ``time_s`` (LSL s).

        Parameters
        ----------
        target : CoilPose
            Where the operator aims (its foot point on the scalp and its current
            direction are used).
        time_s : float
            When the movement starts.
        placement_sd_mm : float | None
            Placement error SD for this placement; default ``params.placement_sd_mm``.
        """
        sd = self.params.placement_sd_mm if placement_sd_mm is None else float(placement_sd_mm)
        err = self._rng.standard_normal(3)
        aim = self.head.foot(target.position)
        landing = self.head.point(aim, sd * err[0], sd * err[1])
        angle = self.head.angle_deg(target) + self.params.placement_angle_sd_deg * err[2]
        with self._lock:
            point, ang = self._base(time_s)
            self._moves.append(_Move(float(time_s), point, ang, landing, angle))
            self.placements.append((float(time_s), target))

    def _base(self, time_s: float) -> tuple[np.ndarray, float]:
        """Intended foot point and angle at ``time_s`` (no drift or tremor)."""
        move = self._moves[0]
        for m in self._moves:
            if m.time_s <= time_s:
                move = m
        if not math.isfinite(move.time_s):
            return move.to_point, move.to_angle
        k = math.exp(-(time_s - move.time_s) / self.params.settle_tau_s)
        offset = (move.from_point - move.to_point) * k
        point = self.head.foot(move.to_point + offset)
        turn = (move.from_angle - move.to_angle + 180.0) % 360.0 - 180.0
        return point, move.to_angle + turn * k

    def pose_at(self, time_s: float) -> CoilPose:
        """The coil pose at LSL time ``time_s``."""
        p = self.params
        t = float(time_s)
        with self._lock:
            point, angle = self._base(t)
        scale = math.sqrt(2.0 / _N_DRIFT)
        drift = scale * np.sin(2 * math.pi * self._freq * t + self._phase).sum(axis=1)
        tremor = p.tremor_mm * math.sqrt(2.0) * np.sin(
            2 * math.pi * self._tremor_hz * t + self._tremor_phase)
        ant_mm = p.drift_sd_mm * drift[0] + tremor[0]
        right_mm = p.drift_sd_mm * drift[1] + tremor[1]
        here = self.head.point(point, ant_mm, right_mm)
        pose = self.head.pose(here, angle + p.drift_angle_sd_deg * drift[2], p.lift_mm, t)
        tilt_a = math.radians(p.tilt_sd_deg * drift[3])
        tilt_r = math.radians(p.tilt_sd_deg * drift[4])
        ant, right = self.head.tangent_axes(here)
        normal = pose.normal + math.tan(tilt_a) * ant + math.tan(tilt_r) * right
        return CoilPose.from_axes(pose.position_mm, normal, pose.current_direction, t)

    def settled(self, time_s: float, tolerance_mm: float = 0.5) -> bool:
        """True when the last movement has come within ``tolerance_mm`` of its landing."""
        with self._lock:
            move = self._moves[-1]
        if not math.isfinite(move.time_s):
            return True
        gap = float(norm3(move.from_point - move.to_point))
        return gap * math.exp(-(time_s - move.time_s) / self.params.settle_tau_s) <= tolerance_mm


class CoilHolder:
    """A rigid coil holder (a mechanical arm): the coil stays exactly at ``pose``.

    No drift, no tremor: the pose at any time is ``pose`` (stamped with that time). The
    simulated subject's responses then depend on the pulse sequence only, not on when
    each pulse happened to be fired.
    """

    def __init__(self, pose: CoilPose) -> None:
        self.pose = pose

    def pose_at(self, time_s: float) -> CoilPose:
        """The held pose, valid at ``time_s``."""
        return CoilPose(self.pose.position_mm, self.pose.quaternion, float(time_s))

    def move_to(self, target: CoilPose, time_s: float, **options: Any) -> None:
        """Selecting a navigator target does not move a holder (it is set by hand).

        Parameters
        ----------
        target : CoilPose
            Ignored.
        time_s : float
            Ignored.
        **options
            What :meth:`HandHeldCoil.move_to` takes (``placement_sd_mm``); ignored.
        """
