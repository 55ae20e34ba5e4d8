"""Navigation objects from a device profile's ``[navigation]`` section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.navigation.gate import TargetGate
from labkit.navigation.localite import LocaliteClient

__all__ = ["RigNavigation", "navigation_from_profile"]


@dataclass
class RigNavigation:
    """The navigator of a rig (built by :func:`labkit.rig.open_rig` from ``[navigation]``).

    Attributes
    ----------
    client : LocaliteClient
        The connected navigator client; every pulse the rig logs carries its pose.
    gate : TargetGate | None
        The target gate (``gate = true``), or None.
    hold_timeout_s : float
        Longest hold of a gated pulse before giving up, s.
    """

    client: LocaliteClient
    gate: TargetGate | None
    hold_timeout_s: float

    def close(self) -> None:
        """Disconnect from the navigator."""
        self.client.close()


def navigation_from_profile(profile: Any, address: tuple[str, int] | None = None
                            ) -> tuple[LocaliteClient, TargetGate | None, float]:
    """The navigator client, the target gate (None when off) and the hold timeout.

    Parameters
    ----------
    profile : DeviceProfile
        A profile with a ``[navigation]`` section.
    address : (str, int) | None
        Overrides the profile's host and port (a simulated rig's emulator listens on a
        free port of its own).

    Raises
    ------
    ValueError
        When the profile has no ``[navigation]`` section.
    """
    nav = getattr(profile, "navigation", None)
    if nav is None:
        path = getattr(profile, "path", None) or getattr(profile.rig, "name", "profile")
        raise ValueError(f"{path}: no [navigation] section (host, port, gate, ...)")
    host, port = address if address is not None else (nav.host, nav.port)
    client = LocaliteClient(host, port, coil=nav.coil, max_pose_age_s=nav.max_pose_age_s)
    gate = TargetGate(nav.max_distance_mm, nav.max_rotation_deg, nav.max_tilt_deg) if (
        nav.gate) else None
    return client, gate, nav.hold_timeout_s
