"""The coil pose that belongs to a pulse, and the decision to fire or hold. Pure.

:func:`pulse_pose` takes the last pose received before a pulse and keeps it only when
it is fresh (``max_pose_age_s``); a stale pose is never logged as the pulse's pose.
:class:`TargetGate` holds firing until the coil is on target: a fresh pose, within
``max_distance_mm`` of the target in the target's coil plane, turned less than
``max_rotation_deg`` and tilted less than ``max_tilt_deg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.navigation.pose import CoilPose

__all__ = ["GateVerdict", "PulsePose", "TargetGate", "pulse_pose"]


@dataclass(frozen=True)
class PulsePose:
    """The coil pose logged with one pulse.

    Attributes
    ----------
    time_s : float
        Time of the pulse, LSL s.
    pose : CoilPose | None
        The pose, or None when none was fresh enough (see ``status``).
    age_s : float | None
        How old the pose was at the pulse, s.
    target_index : int | None
        The navigator target selected at the pulse.
    target_distance_mm : float | None
        Distance from the target in the target's coil plane, mm (None without a pose or a
        known target pose).
    target_depth_mm : float | None
        Offset along the target's normal, mm (positive = deeper than the target).
    target_rotation_deg : float | None
        Turn of the coil's current direction from the target's, degrees.
    target_tilt_deg : float | None
        Angle between the coil normal and the target's, degrees.
    status : str
        ``"ok"``, ``"no-pose"`` (none received), ``"stale"`` (older than the limit) or
        ``"disconnected"``.
    """

    time_s: float
    pose: CoilPose | None
    age_s: float | None
    target_index: int | None = None
    target_distance_mm: float | None = None
    target_depth_mm: float | None = None
    target_rotation_deg: float | None = None
    target_tilt_deg: float | None = None
    status: str = "ok"

    def as_record(self) -> dict[str, float | int | str | None]:
        """Flat columns for a pulse log or events table (mm, degrees, ms)."""
        rec: dict[str, float | int | str | None] = {"pose_status": self.status}
        names = ("coil_x_mm", "coil_y_mm", "coil_z_mm", "coil_q0", "coil_qx", "coil_qy",
                 "coil_qz")
        values = (*self.pose.position_mm, *self.pose.quaternion) if self.pose else (None,) * 7
        rec.update(zip(names, values, strict=True))
        rec["pose_age_ms"] = None if self.age_s is None else self.age_s * 1000.0
        rec["target_index"] = self.target_index
        rec["target_distance_mm"] = self.target_distance_mm
        rec["target_rotation_deg"] = self.target_rotation_deg
        rec["target_tilt_deg"] = self.target_tilt_deg
        return rec


def pulse_pose(
    last_pose: CoilPose | None,
    time_s: float,
    max_pose_age_s: float,
    target: CoilPose | None = None,
    target_index: int | None = None,
    *,
    connected: bool = True,
) -> PulsePose:
    """The pose to log for a pulse at ``time_s``.

    Parameters
    ----------
    last_pose : CoilPose | None
        The last pose received at or before the pulse (its ``time_s`` = receive time).
    time_s : float
        Pulse time, s.
    max_pose_age_s : float
        Oldest pose accepted, s.
    target : CoilPose | None
        The selected target's pose (for the distance), when known.
    target_index : int | None
        The selected target's index.
    connected : bool
        Whether the navigator link was up at the pulse; a pose from before a disconnect
        is not the pulse's pose.
    """
    if last_pose is None:
        return PulsePose(time_s, None, None, target_index, status="no-pose")
    age = float(time_s) - float(last_pose.time_s if last_pose.time_s is not None else time_s)
    if not connected:
        return PulsePose(time_s, None, age, target_index, status="disconnected")
    if age > max_pose_age_s or age < -1e-6:
        return PulsePose(time_s, None, age, target_index, status="stale")
    if target is None:
        return PulsePose(time_s, last_pose, age, target_index)
    _, _, depth = last_pose.offset_in_plane_mm(target)
    return PulsePose(
        time_s, last_pose, age, target_index,
        target_distance_mm=last_pose.tangential_distance_mm(target),
        target_depth_mm=depth,
        target_rotation_deg=last_pose.rotation_deg(target),
        target_tilt_deg=last_pose.tilt_deg(target),
    )


@dataclass(frozen=True)
class GateVerdict:
    """Whether a pulse may be fired now, and why not."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class TargetGate:
    """Hold firing until the coil is on target.

    Parameters
    ----------
    max_distance_mm : float
        Largest distance from the target in its coil plane, mm.
    max_rotation_deg : float
        Largest turn of the current direction from the target's, degrees.
    max_tilt_deg : float
        Largest angle between the coil normal and the target's, degrees.
    """

    max_distance_mm: float = 3.0
    max_rotation_deg: float = 10.0
    max_tilt_deg: float = 10.0

    def __post_init__(self) -> None:
        for name, high in (("max_distance_mm", 100.0), ("max_rotation_deg", 180.0),
                           ("max_tilt_deg", 90.0)):
            value = getattr(self, name)
            if not (0.0 < value <= high):
                raise ValueError(f"TargetGate.{name} = {value!r} is outside (0, {high}]")

    def verdict(self, pose: PulsePose) -> GateVerdict:
        """Decide on one :class:`PulsePose` (taken now, for a pulse about to be fired)."""
        if pose.status != "ok" or pose.pose is None:
            return GateVerdict(False, f"no fresh coil pose ({pose.status})")
        if pose.target_distance_mm is None:
            return GateVerdict(False, "no target pose selected")
        if pose.target_distance_mm > self.max_distance_mm:
            return GateVerdict(False, f"coil {pose.target_distance_mm:.1f} mm from target "
                                      f"(limit {self.max_distance_mm:g} mm)")
        if abs(pose.target_rotation_deg) > self.max_rotation_deg:
            return GateVerdict(False, f"coil turned {pose.target_rotation_deg:.1f}° from "
                                      f"target (limit {self.max_rotation_deg:g}°)")
        if pose.target_tilt_deg > self.max_tilt_deg:
            return GateVerdict(False, f"coil tilted {pose.target_tilt_deg:.1f}° from target "
                                      f"(limit {self.max_tilt_deg:g}°)")
        return GateVerdict(True, "on target")
