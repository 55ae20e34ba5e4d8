"""Coil poses as a neuronavigation system reports them, and the geometry between them.

A pose is the coil centre (mm, in the navigator's head coordinates) and a unit quaternion
(``q0`` = scalar part, ``qx``, ``qy``, ``qz``) whose rotation matrix holds the coil axes
as columns, as the Localite TMS Navigator streams them (``coil_0_position``).

Coil axes (labkit's convention, following Localite's instrument frame in which the first
axis is the coil normal — the axis SimNIBS calls ``z`` and swaps with ``x`` when it
converts Localite instrument markers):

* ``x``: the coil normal, pointing from the coil into the head;
* ``y``: the direction of the current the coil induces under its centre (first phase
  of the pulse), in the coil plane;
* ``z = x × y``.

A real coil's current direction relative to its tracker is a calibration of the lab; the
simulated coil follows the convention exactly. Pure: no clocks, no sockets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CoilPose", "quaternion_from_matrix", "matrix_from_quaternion"]

_LOCALITE_KEYS = ("q0", "qx", "qy", "qz", "x", "y", "z")


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (numpy's general version is ~20× slower here)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])


def norm3(v) -> float:
    """Euclidean norm of a short vector."""
    v = np.asarray(v, dtype=float)
    return math.sqrt(float(v @ v))


def matrix_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(q0, qx, qy, qz)`` (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=float) / norm3(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quaternion_from_matrix(m: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion ``(q0, qx, qy, qz)`` with ``q0 >= 0`` of a rotation matrix."""
    m = np.asarray(m, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = ((m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s)
    arr = np.asarray(q)
    arr /= norm3(arr)
    if arr[0] < 0:
        arr = -arr
    return tuple(float(v) for v in arr)  # type: ignore[return-value]


def _unit(v: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    norm = float(norm3(arr))
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or norm < 1e-9:
        raise ValueError(f"{name} = {v!r} must be a finite, non-zero 3-vector")
    return arr / norm


@dataclass(frozen=True)
class CoilPose:
    """Where the coil is and how it is turned.

    Attributes
    ----------
    position_mm : tuple of float
        Coil centre ``(x, y, z)``, mm, in the navigator's head coordinates.
    quaternion : tuple of float
        Orientation ``(q0, qx, qy, qz)``, unit norm; columns of its rotation matrix are
        the coil axes (normal, current direction, their cross product).
    time_s : float | None
        LSL time at which the pose was valid (received), s.
    """

    position_mm: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    time_s: float | None = None

    def __post_init__(self) -> None:
        pos = tuple(float(v) for v in self.position_mm)
        quat = tuple(float(v) for v in self.quaternion)
        if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
            raise ValueError(f"CoilPose.position_mm = {self.position_mm!r} must be 3 finite mm")
        norm = math.sqrt(sum(v * v for v in quat)) if len(quat) == 4 else 0.0
        if not (math.isfinite(norm) and norm > 1e-9):
            raise ValueError(f"CoilPose.quaternion = {self.quaternion!r} must be 4 finite "
                             "numbers, not all zero")
        object.__setattr__(self, "position_mm", pos)
        object.__setattr__(self, "quaternion", tuple(v / norm for v in quat))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_axes(
        cls,
        position_mm: Sequence[float],
        normal: Sequence[float],
        current_direction: Sequence[float],
        time_s: float | None = None,
    ) -> CoilPose:
        """Pose from the coil normal (into the head) and its induced-current direction.

        ``current_direction`` is projected into the coil plane (it need not be exactly
        perpendicular to ``normal``).
        """
        x = _unit(normal, "normal")
        y_raw = np.asarray(current_direction, dtype=float)
        y = _unit(y_raw - np.dot(y_raw, x) * x, "current_direction (in the coil plane)")
        z = cross3(x, y)
        return cls(tuple(position_mm), quaternion_from_matrix(np.column_stack([x, y, z])),
                   time_s)

    @classmethod
    def from_localite(cls, value: Mapping[str, Any], time_s: float | None = None) -> CoilPose:
        """Pose from a Localite ``coil_0_position`` value (``q0 … z``).

        Raises
        ------
        ValueError
            When a key is missing or not a finite number (the message names the key).
        """
        if not isinstance(value, Mapping):
            raise ValueError(f"coil position {value!r} is not an object with keys "
                             f"{', '.join(_LOCALITE_KEYS)}")
        numbers = {}
        for key in _LOCALITE_KEYS:
            if key not in value:
                raise ValueError(f"coil position {dict(value)!r} has no key {key!r}")
            try:
                numbers[key] = float(value[key])
            except (TypeError, ValueError):
                raise ValueError(f"coil position key {key!r} = {value[key]!r} is not a "
                                 "number") from None
            if not math.isfinite(numbers[key]):
                raise ValueError(f"coil position key {key!r} = {value[key]!r} is not finite")
        return cls((numbers["x"], numbers["y"], numbers["z"]),
                   (numbers["q0"], numbers["qx"], numbers["qy"], numbers["qz"]), time_s)

    def to_localite(self) -> dict[str, float]:
        """The Localite ``coil_0_position`` value of this pose."""
        q0, qx, qy, qz = self.quaternion
        x, y, z = self.position_mm
        return {"q0": q0, "qx": qx, "qy": qy, "qz": qz, "x": x, "y": y, "z": z}

    # -- axes ----------------------------------------------------------------------------
    @property
    def rotation(self) -> np.ndarray:
        """3×3 matrix whose columns are the coil axes in head coordinates."""
        return matrix_from_quaternion(self.quaternion)

    @property
    def normal(self) -> np.ndarray:
        """Unit coil normal, pointing into the head."""
        return self.rotation[:, 0]

    @property
    def current_direction(self) -> np.ndarray:
        """Unit direction of the induced current under the coil centre."""
        return self.rotation[:, 1]

    @property
    def position(self) -> np.ndarray:
        """Coil centre as an array, mm."""
        return np.asarray(self.position_mm)

    # -- relations -------------------------------------------------------------------------
    def distance_mm(self, other: CoilPose) -> float:
        """Straight-line distance between the two coil centres, mm."""
        return float(norm3(self.position - other.position))

    def offset_in_plane_mm(self, reference: CoilPose) -> tuple[float, float, float]:
        """This coil centre relative to ``reference``, in the reference's axes, mm.

        Returns
        -------
        tuple of float
            ``(along, across, depth)``: along the reference current direction, along its
            ``z`` axis, and along its normal (positive = deeper, into the head).
        """
        d = self.position - reference.position
        r = reference.rotation
        return float(d @ r[:, 1]), float(d @ r[:, 2]), float(d @ r[:, 0])

    def tangential_distance_mm(self, reference: CoilPose) -> float:
        """Distance from ``reference`` within the reference's coil plane, mm."""
        along, across, _ = self.offset_in_plane_mm(reference)
        return math.hypot(along, across)

    def rotation_deg(self, reference: CoilPose) -> float:
        """Signed turn of the current direction from the reference's, in its plane, degrees.

        The current direction is projected into the reference's coil plane; positive
        angles turn from the reference's ``y`` towards its ``z`` axis (counter-clockwise
        about the normal pointing into the head; clockwise seen from above the head).
        Range (-180, 180].
        """
        r = reference.rotation
        d = self.current_direction
        angle = math.degrees(math.atan2(float(d @ r[:, 2]), float(d @ r[:, 1])))
        return 180.0 if angle == -180.0 else angle

    def tilt_deg(self, reference: CoilPose) -> float:
        """Angle between the two coil normals, degrees (0-180)."""
        c = float(np.clip(self.normal @ reference.normal, -1.0, 1.0))
        return math.degrees(math.acos(c))

    def turned(self, angle_deg: float) -> CoilPose:
        """The same pose turned by ``angle_deg`` about its own normal (see :meth:`rotation_deg`)."""
        r = self.rotation
        a = math.radians(angle_deg)
        y = math.cos(a) * r[:, 1] + math.sin(a) * r[:, 2]
        return CoilPose.from_axes(self.position_mm, r[:, 0], y, self.time_s)

    def moved(self, along_mm: float, across_mm: float) -> CoilPose:
        """The same orientation, centre moved within its own coil plane, mm."""
        r = self.rotation
        p = self.position + along_mm * r[:, 1] + across_mm * r[:, 2]
        return CoilPose(tuple(p), self.quaternion, self.time_s)
