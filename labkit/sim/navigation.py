"""Neuronavigation for the simulated rig: a hand holding the coil and a navigator emulator.

:func:`attach_navigation` turns a running simulated rig into a navigated one: the virtual
subject gets a spatial hotspot (drawn from its seed unless it has one), an operator's
hand holds the coil (starting over C3 with the current at 45°, anteromedial), the
subject's MEPs follow that hand, and a Localite TMS Navigator emulator streams the
hand's pose on a loopback TCP port. Selecting a navigator target makes the operator move
the coil there. Every discharge of the stimulator emulator is also reported to the
navigator emulator (``coil_0_didt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.navigation.pose import CoilPose
from labkit.sim.coil_hand import CoilHolder, HandHeldCoil, HandParams
from labkit.sim.localite_emulator import LocaliteEmulator
from labkit.sim.spatial import C3_DIRECTION, SpatialExcitability

__all__ = ["SimulatedNavigation", "attach_navigation"]


@dataclass
class SimulatedNavigation:
    """The navigation pieces added to a simulated rig.

    Attributes
    ----------
    spatial : SpatialExcitability
        The subject's hotspot (ground truth).
    hand : HandHeldCoil
        The operator's hand (true coil pose).
    emulator : LocaliteEmulator
        The navigator; connect a client to ``emulator.address``.
    """

    spatial: SpatialExcitability
    hand: HandHeldCoil
    emulator: LocaliteEmulator
    _subject: Any = field(default=None, repr=False)
    _restore: list = field(default_factory=list, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the navigator emulator."""
        return self.emulator.address

    def hold_coil(self, pose: CoilPose | None = None) -> CoilHolder:
        """Put the coil in a rigid holder at ``pose`` (default: the subject's true optimal
        pose): the subject's responses and the navigator's poses come from the holder from
        now on (no tremor, no drift).

        Returns
        -------
        CoilHolder
            The holder (``release_coil`` gives the coil back to the hand).
        """
        holder = CoilHolder(self.spatial.optimal_pose() if pose is None else pose)
        self._subject.coil = holder
        self.emulator.holder = holder
        return holder

    def release_coil(self) -> None:
        """Give the coil back to the operator's hand."""
        self._subject.coil = self.hand
        self.emulator.holder = self.hand

    def close(self) -> None:
        """Stop the emulator and detach it from the stimulator (idempotent)."""
        self.emulator.stop()
        while self._restore:
            self._restore.pop()()


def attach_navigation(
    rig: Any,
    *,
    seed: int | None = None,
    hand: HandParams | None = None,
    rate_hz: float = 20.0,
    port: int = 0,
) -> SimulatedNavigation:
    """Add a hand-held coil and a navigator emulator to a simulated rig.

    Parameters
    ----------
    rig : object
        A simulated :class:`labkit.rig.Rig` (or its ``hardware``).
    seed : int | None
        Seed of the hand (and of the hotspot when the subject has none); default the
        subject's seed.
    hand : HandParams | None
        Steadiness of the operator's hand.
    rate_hz : float
        Pose messages per second from the navigator.
    port : int
        TCP port of the emulator; 0 picks a free one.

    Returns
    -------
    SimulatedNavigation
        Close it (or the rig's hardware) at the end.
    """
    hardware = getattr(rig, "hardware", None) or rig
    if hasattr(hardware, "apply"):  # the simulated lab runs in a child process: attach there
        return hardware.apply("labkit.sim.navigation:attach_navigation", seed=seed, hand=hand,
                              rate_hz=rate_hz, port=port)
    subject = getattr(hardware, "subject", None)
    if subject is None:
        raise ValueError("attach_navigation needs a simulated rig (it has no virtual subject)")
    seed = int(subject.seed if seed is None else seed)
    if subject.spatial is None:
        subject.spatial = SpatialExcitability.sample(np.random.default_rng([seed, 4]))
    spatial = subject.spatial
    head = spatial.head
    start = head.pose(head.center + head.radius_mm * C3_DIRECTION, 45.0)
    holder = HandHeldCoil(head, start, seed=seed, params=hand)
    subject.coil = holder
    emulator = LocaliteEmulator(holder, rate_hz=rate_hz, port=port,
                                on_target=lambda _i, pose, t: holder.move_to(pose, t))
    emulator.start()
    nav = SimulatedNavigation(spatial, holder, emulator, subject)
    stimulator = getattr(hardware, "emulator", None)
    if stimulator is not None and hasattr(stimulator, "coil"):
        previous = stimulator.coil

        def coil(discharge: Any) -> None:
            if previous is not None:
                previous(discharge)
            emulator(discharge)

        stimulator.coil = coil
        nav._restore.append(lambda: setattr(stimulator, "coil", previous))
    nav._restore.append(lambda: setattr(subject, "coil", None))
    closers = getattr(hardware, "_closers", None)
    if isinstance(closers, list):
        closers.append(nav.close)
    return nav
