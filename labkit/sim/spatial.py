"""Where the coil is matters: the virtual subject's motor hotspot and its spatial profile.

The simulated head is a sphere (radius 90 mm, centre at the origin of the navigator's
coordinates; x right, y anterior, z up, mm). The subject's hand hotspot lies on the scalp
near C3 (10-20 system: 20 % of the preauricular arc left of Cz, i.e. 36° from the vertex),
drawn per subject 0-15 mm anterior and 0-15 mm lateral of it.

A discharge at intensity ``I`` acts on the hand area as ``I · efficacy(pose)`` — the
induced field at the target scales with the stimulator output, as in the models that
explain MEPs by the local electric field (Weise et al. 2020, NeuroImage 223:117349;
Numssen et al. 2021, NeuroImage 245:118654). The efficacy of a coil pose is a product of
coarse, documented factors:

* **position**: ``exp(−d² / 2σ²)`` with ``d`` the distance on the scalp from the coil
  centre's foot point to the hotspot and ``σ`` drawn 22-30 mm per subject (the spread of
  a 70 mm figure-of-eight coil's field at the cortex, Thielscher & Kammer 2004, Clin
  Neurophysiol 115:1697, combined with the extent of the hand representation). At
  120 % RMT this gives MEP maps of a few cm² above 50 µV, as in published 1 cm grid maps;
* **direction**: ``1 − a⊥·sin²Δ − a_rev·(1 − cos Δ)/2`` with ``Δ`` the angle between the
  induced current and the subject's preferred direction (posterior-to-anterior at about
  45° to the midline: Brasil-Neto et al. 1992, J Clin Neurophysiol 9:132; Mills et al.
  1992, EEG Clin Neurophysiol 85:17), ``a⊥ = 0.04`` and ``a_rev = 0.16`` so that
  thresholds order PA < LM < AP (+14 % latero-medial, +19 % antero-posterior), as for
  monophasic pulses (Kammer et al. 2001, Clin Neurophysiol 112:250). The directional
  tuning reflects the column/cosine picture of cortical activation (Fox et al. 2004,
  Hum Brain Mapp 22:1) but keeps a floor because other populations respond too;
* **tilt**: ``cos(tilt)`` of the coil normal against the scalp normal;
* **lift**: ``2^(−h / 15 mm)`` for a coil held ``h`` mm off the scalp (the field of a
  figure-of-eight coil falls by half over roughly 15 mm).

The subject's resting motor threshold (and every other threshold) is defined with the
coil on the hotspot, current in the preferred direction, flat on the scalp: efficacy 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labkit.navigation.pose import CoilPose, cross3, norm3

__all__ = ["SphericalHead", "SpatialExcitability", "C3_DIRECTION"]

#: Unit direction of C3 from the head centre (36° left of the vertex on the coronal arc).
C3_DIRECTION = np.array([-math.sin(math.radians(36.0)), 0.0, math.cos(math.radians(36.0))])

#: Directional weights: perpendicular and reversed current.
A_PERPENDICULAR = 0.04
A_REVERSED = 0.16
#: Lift over which the efficacy halves, mm.
LIFT_HALF_MM = 15.0


@dataclass(frozen=True)
class SphericalHead:
    """A spherical scalp.

    Attributes
    ----------
    radius_mm : float
        Scalp radius, mm.
    center_mm : tuple of float
        Centre, mm, in navigator coordinates.
    """

    radius_mm: float = 90.0
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def center(self) -> np.ndarray:
        """Centre as an array, mm."""
        return np.asarray(self.center_mm, dtype=float)

    def up(self, point_mm: np.ndarray) -> np.ndarray:
        """Outward scalp normal under ``point_mm``."""
        v = np.asarray(point_mm, dtype=float) - self.center
        return v / norm3(v)

    def foot(self, point_mm: np.ndarray) -> np.ndarray:
        """Point of the scalp under ``point_mm`` (radial projection), mm."""
        return self.center + self.radius_mm * self.up(point_mm)

    def lift_mm(self, point_mm: np.ndarray) -> float:
        """Height of ``point_mm`` above the scalp, mm (negative inside)."""
        return float(norm3(np.asarray(point_mm, float) - self.center) - self.radius_mm)

    def scalp_distance_mm(self, a_mm: np.ndarray, b_mm: np.ndarray) -> float:
        """Great-circle distance on the scalp between the feet of two points, mm."""
        c = float(np.clip(self.up(a_mm) @ self.up(b_mm), -1.0, 1.0))
        return self.radius_mm * math.acos(c)

    def tangent_axes(self, point_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(anterior, right) unit vectors in the scalp's tangent plane at ``point_mm``."""
        up = self.up(point_mm)
        ant = np.array([0.0, 1.0, 0.0]) - up[1] * up
        ant /= norm3(ant)
        return ant, cross3(ant, up)

    def point(self, anchor_mm: np.ndarray, anterior_mm: float, right_mm: float) -> np.ndarray:
        """Scalp point reached from ``anchor_mm`` by walking along the scalp, mm.

        Walks ``anterior_mm`` and ``right_mm`` (tangent-plane components at the anchor)
        along the great circle in that direction.
        """
        ant, right = self.tangent_axes(anchor_mm)
        up = self.up(anchor_mm)
        step = anterior_mm * ant + right_mm * right
        dist = float(norm3(step))
        if dist == 0.0:
            return self.foot(anchor_mm)
        angle = dist / self.radius_mm
        direction = math.cos(angle) * up + math.sin(angle) * step / dist
        return self.center + self.radius_mm * direction

    def pose(self, point_mm: np.ndarray, angle_deg: float, lift_mm: float = 0.0,
             time_s: float | None = None) -> CoilPose:
        """Coil flat on the scalp at ``point_mm``, current at ``angle_deg``.

        ``angle_deg`` is measured in the tangent plane from anterior towards the right
        (clockwise seen from above): 0 = current flowing anteriorly, 90 = to the right.
        """
        up = self.up(point_mm)
        ant, right = self.tangent_axes(point_mm)
        a = math.radians(angle_deg)
        current = math.cos(a) * ant + math.sin(a) * right
        position = self.foot(point_mm) + lift_mm * up
        return CoilPose.from_axes(tuple(position), -up, current, time_s)

    def project(self, pose: CoilPose) -> CoilPose:
        """``pose`` laid flat on the scalp under its centre, same current direction."""
        return self.pose(pose.position, self.angle_deg(pose), 0.0, pose.time_s)

    def angle_deg(self, pose: CoilPose) -> float:
        """Current direction of ``pose`` in the scalp tangent plane under it, degrees."""
        ant, right = self.tangent_axes(pose.position)
        d = pose.current_direction
        return math.degrees(math.atan2(float(d @ right), float(d @ ant)))


@dataclass(frozen=True)
class SpatialExcitability:
    """One subject's hotspot and how the coil pose scales the effective intensity.

    Attributes
    ----------
    hotspot_mm : tuple of float
        The hotspot on the scalp, mm (navigator coordinates).
    preferred_deg : float
        Preferred current direction in the tangent plane at the hotspot (see
        :meth:`SphericalHead.pose`), degrees; about +45° (anteromedial) for the left M1.
    sigma_mm : float
        Spatial spread of the efficacy, mm.
    head : SphericalHead
        The head.
    """

    hotspot_mm: tuple[float, float, float]
    preferred_deg: float
    sigma_mm: float
    head: SphericalHead = SphericalHead()

    @classmethod
    def sample(cls, rng: np.random.Generator, head: SphericalHead | None = None
               ) -> SpatialExcitability:
        """Draw a left-hemisphere hand hotspot near C3 from ``rng``."""
        head = head or SphericalHead()
        c3 = head.center + head.radius_mm * C3_DIRECTION
        anterior = float(rng.uniform(0.0, 15.0))
        lateral = float(rng.uniform(0.0, 15.0))
        hotspot = head.point(c3, anterior, -lateral)  # left hemisphere: lateral = left
        return cls(
            hotspot_mm=tuple(float(v) for v in hotspot),
            preferred_deg=float(rng.normal(45.0, 8.0)),
            sigma_mm=float(rng.uniform(22.0, 30.0)),
            head=head,
        )

    @property
    def hotspot(self) -> np.ndarray:
        """The hotspot as an array, mm."""
        return np.asarray(self.hotspot_mm)

    def optimal_pose(self, time_s: float | None = None) -> CoilPose:
        """Coil flat on the hotspot with the current in the preferred direction."""
        return self.head.pose(self.hotspot, self.preferred_deg, 0.0, time_s)

    def efficacy(self, pose: CoilPose) -> float:
        """Fraction of the stimulator output that acts on the hand area (0-1].

        See the module docstring for the factors.
        """
        p = pose.position
        d = self.head.scalp_distance_mm(p, self.hotspot)
        spatial = math.exp(-0.5 * (d / self.sigma_mm) ** 2)
        delta = math.radians(self.head.angle_deg(pose) - self.preferred_deg)
        direction = 1.0 - A_PERPENDICULAR * math.sin(delta) ** 2 - A_REVERSED * (
            1.0 - math.cos(delta)) / 2.0
        tilt = max(float(-self.head.up(p) @ pose.normal), 0.0)
        lift = 2.0 ** (-max(self.head.lift_mm(p), 0.0) / LIFT_HALF_MM)
        return spatial * direction * tilt * lift
