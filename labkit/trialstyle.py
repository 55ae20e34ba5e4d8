"""One colour code for trials, pulses and criteria in every plot. Pure (no plotting library).

The notebook figures (:mod:`labkit.plotting`) and the panels' live plots
(:mod:`labkit.widgets._svg`) draw a trial the same way everywhere:

========================  ==========================================================
filled circle             accepted, MEP at or above the criterion (a "hit")
hollow circle             accepted, MEP below the criterion (a "miss")
grey ×                    rejected (background EMG: the muscle was not at rest, or the
                          contraction was out of its band); never used by an estimator
small grey dot            fired, accept/reject not decided yet
========================  ==========================================================

The circle's colour is :data:`ACCEPTED_COLOUR` unless a figure colours points by
intensity; the fill always means "at or above criterion". The pulse is marked at 0 ms by
a vertical line in :data:`PULSE_COLOUR`, the criterion by a dashed line in
:data:`CRITERION_COLOUR`, the MEP window by a light band. Phases are shown in degrees
(cosine convention: 0° = positive peak, ±180° = trough); they are computed in radians.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ABOVE", "ACCEPTED_COLOUR", "BELOW", "CRITERION_COLOUR", "ESTIMATE_COLOUR", "PENDING",
    "PULSE_COLOUR", "REJECTED", "REJECTED_COLOUR", "STYLES", "TRUTH_COLOUR", "TrialStyle",
    "WINDOW_COLOUR", "matplotlib_kwargs", "trial_style",
]

#: Accepted trials (filled at or above criterion, hollow below).
ACCEPTED_COLOUR = "#1f6fd1"
#: Rejected trials (×) and undecided ones (small dot).
REJECTED_COLOUR = "#8c8c8c"
#: The pulse at 0 ms.
PULSE_COLOUR = "#d1451f"
#: The MEP criterion line (dashed).
CRITERION_COLOUR = "#444444"
#: The MEP window band.
WINDOW_COLOUR = "#eef2f8"
#: A known true value (virtual subject), dashed.
TRUTH_COLOUR = "#2ca02c"
#: A running estimate.
ESTIMATE_COLOUR = "#000000"


@dataclass(frozen=True)
class TrialStyle:
    """How one kind of trial is drawn.

    Attributes
    ----------
    name : str
        ``"above"``, ``"below"``, ``"rejected"`` or ``"pending"``.
    label : str
        Legend text.
    marker : str
        ``"o"`` (circle) or ``"x"``.
    colour : str
        Edge (and, when filled, face) colour.
    filled : bool
        Face filled with ``colour``; hollow otherwise.
    size : float
        Relative size (1 = normal).
    """

    name: str
    label: str
    marker: str
    colour: str
    filled: bool
    size: float = 1.0


ABOVE = TrialStyle("above", "at or above criterion", "o", ACCEPTED_COLOUR, True)
BELOW = TrialStyle("below", "below criterion", "o", ACCEPTED_COLOUR, False)
REJECTED = TrialStyle("rejected", "rejected (background EMG)", "x", REJECTED_COLOUR, False)
PENDING = TrialStyle("pending", "not decided yet", "o", REJECTED_COLOUR, True, 0.6)
#: Every style, in legend order.
STYLES = (ABOVE, BELOW, REJECTED, PENDING)


def trial_style(accepted: bool | None, above_criterion: bool) -> TrialStyle:
    """The style of a trial: rejected and undecided trials first, then the criterion."""
    if accepted is None:
        return PENDING
    if not accepted:
        return REJECTED
    return ABOVE if above_criterion else BELOW


def matplotlib_kwargs(style: TrialStyle, colour: str | tuple | None = None) -> dict:
    """``Axes.plot`` keyword arguments drawing points in ``style`` (no connecting line).

    ``colour`` replaces the style's colour for accepted trials (points coloured by
    intensity); rejected and undecided trials keep theirs.
    """
    c = colour if colour is not None and style.name in ("above", "below") else style.colour
    kwargs = {"linestyle": "none", "marker": style.marker, "color": c,
              "markersize": 6.0 * style.size}
    if style.marker == "o":
        kwargs.update(markerfacecolor=c if style.filled else "white", markeredgecolor=c)
    else:
        kwargs["markeredgewidth"] = 1.5
    return kwargs
