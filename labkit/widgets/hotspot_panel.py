"""HotspotMapPanel: deliver a hotspot hunt and watch the MEP map grow.

Each trial fires one pulse at the hunt's next site (:class:`labkit.hotspot.HotspotHunt`):
on a rig with a navigator (``rig.navigation``) the navigator's target is switched to the
site (target ``first_target_index + site.index``, planned in the navigator beforehand)
and the rig's :attr:`~labkit.rig.Rig.navigator` holds the pulse until the coil is on
target, then logs its pose; without one, the operator places the coil at the site the
panel names and the pulse is fired at once. The map shows each site's median MEP, the
centre of gravity and the hotspot by the rule of :mod:`labkit.hotspot`; when the hunt
is done the result is logged to the rig's session (``hotspot`` record, and the hotspot
pose as the device's ``hotspot``/``hotspot_mm`` facts when the navigator measured it).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from labkit.widgets._block import BlockPanel
from labkit.widgets._svg import _spacing_of, map_svg
from labkit.widgets.estop import EmergencyStop

__all__ = ["HotspotMapPanel"]


class HotspotMapPanel(BlockPanel):
    """Hotspot hunt with a live MEP map.

    Parameters
    ----------
    rig : Rig
        Fires the pulses (navigated when the rig has a navigator).
    hunt : HotspotHunt
        The grid and the randomised order.
    intensity_percent : int
        Intensity of every pulse, % MSO (typically 110-120 % RMT).
    estop : EmergencyStop | None
        Shared STOP latch.
    first_target_index : int
        Navigator target of site 0.
    make_hunt : callable | None
        Makes the next hunt for **New block**.
    on_result : callable | None
        Called with the :class:`~labkit.hotspot.HotspotResult` when the hunt is done.
    poll_s : float | None
        Status bar refresh period.
    """

    css_class = "labkit-hotspot-panel"

    def __init__(self, rig: Any, hunt: Any, intensity_percent: int, *,
                 estop: EmergencyStop | None = None, first_target_index: int = 1,
                 make_hunt: Callable[[], Any] | None = None,
                 on_result: Callable[[Any], None] | None = None,
                 poll_s: float | None = 1.0) -> None:
        self.hunt = hunt
        self.intensity_percent = int(intensity_percent)
        self.first_target_index = int(first_target_index)
        self.on_result = on_result
        #: The map and hotspot once the hunt is done.
        self.result: Any = None
        self._site: int | None = None
        self.map = widgets.HTML("")
        self.map.add_class("labkit-hotspot-map")
        self.site_label = widgets.HTML("")
        self.site_label.add_class("labkit-hotspot-site")
        self.result_label = widgets.HTML("")
        self.result_label.add_class("labkit-hotspot-result")
        navigated = getattr(rig, "navigation", None) is not None
        how = "navigated: each pulse waits for the coil on target" if navigated else (
            "no navigator: place the coil at the site named, then the pulse is fired")
        super().__init__(
            rig, f"<b>Hotspot hunt</b> {len(hunt.sites)} sites × {hunt.n_per_site} pulses at "
                 f"{self.intensity_percent} %MSO ({escape(how)})",
            [widgets.HBox([self.map, widgets.VBox([self.site_label, self.result_label])])],
            estop=estop, make_block=make_hunt, poll_s=poll_s)
        self._render()

    def __repr__(self) -> str:
        return f"<HotspotMapPanel: {len(self.hunt.trials)} of {len(self.hunt.order)} pulses>"

    @property
    def done(self) -> bool:
        """True when every pulse of the hunt is recorded."""
        return bool(self.hunt.done)

    def _trial(self) -> None:
        site = self.hunt.next_site()
        nav = getattr(self.rig, "navigation", None)
        if nav is not None and site.pose is not None:
            if site.index != self._site:
                nav.client.set_target(self.first_target_index + site.index, site.pose)
                self._site = site.index
            trial = self.rig.navigator.pulse(self.intensity_percent)
            self.hunt.record(site.index, trial.amplitude_uv, trial.pose.pose)
        else:
            trial = self.rig.pulse(self.intensity_percent)
            self.hunt.record(site.index, float(trial.amplitude_uv))

    def _render(self) -> None:
        hunt = self.hunt
        next_site = None if hunt.done else hunt.next_site()
        result = hunt.result() if hunt.trials else None
        planned = [[s.along_mm, s.across_mm] for s in hunt.sites]
        self.map.value = map_svg(
            result.positions_mm if result is not None else planned,
            result.medians_uv if result is not None else [float("nan")] * len(planned),
            criterion_uv=hunt.criterion_uv,
            cog_mm=None if result is None else result.cog_mm,
            hotspot_mm=None if result is None or not hunt.done else result.hotspot_mm,
            next_site=None if next_site is None else next_site.index,
            spacing_mm=_spacing_of(planned))
        n, total = len(hunt.trials), len(hunt.order)
        self.site_label.value = (f"pulse {n} of {total}" + (
            f"; next: site <b>{escape(next_site.label)}</b>" if next_site is not None else
            "; map complete"))
        if result is not None and hunt.done:
            cog = ("none reaches the criterion" if result.cog_mm is None else
                   f"({result.cog_mm[0]:.1f}, {result.cog_mm[1]:.1f}) mm")
            self.result_label.value = (
                f"hotspot <b>({result.hotspot_mm[0]:.1f}, {result.hotspot_mm[1]:.1f}) mm</b> "
                f"along, across (rule: {escape(result.rule)})<br>centre of gravity {cog}<br>"
                f"area above {hunt.criterion_uv:g} µV: {result.area_sites_mm2 / 100:.0f} cm²")

    def _finished(self) -> None:
        self.result = self.hunt.result()
        session = getattr(self.rig, "session", None)
        if session is not None:
            r = self.result
            session.log_event("hotspot", hotspot_along_mm=r.hotspot_mm[0],
                              hotspot_across_mm=r.hotspot_mm[1], rule=r.rule,
                              cog_mm=None if r.cog_mm is None else list(r.cog_mm),
                              area_sites_mm2=r.area_sites_mm2, n_sites=len(r.sites),
                              n_pulses=int(r.n_trials.sum()),
                              intensity_percent=self.intensity_percent)
            if r.hotspot_pose is not None:
                session.log_device(
                    hotspot=f"hotspot hunt: {len(r.sites)} sites, rule {r.rule}",
                    hotspot_mm=[round(float(v), 2) for v in r.hotspot_pose.position_mm])
        if self.on_result is not None:
            self.on_result(self.result)

    def _use_block(self, block: Any) -> None:
        self.hunt, self.result, self._site = block, None, None
        self.result_label.value = ""
