"""The emergency STOP bar every panel that can fire shows at its top.

One :class:`~labkit.widgets.estop.EmergencyStop` is shared by the panels of a session;
each panel shows its button and its state, and a red banner while the latch is set, so
that STOP is always on screen next to whatever is firing.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from labkit.widgets.estop import EmergencyStop

__all__ = ["StopBar", "stop_banner_html"]


def stop_banner_html(state: str) -> str:
    """The red banner shown while STOP is latched (empty when ``state`` is ``"ready"``)."""
    if state == "ready":
        return ""
    return ('<div style="background:#c62828;color:white;font-weight:bold;padding:6px 10px">'
            f"STOP latched ({escape(state)}): the unit is disarmed and every panel refuses "
            "to fire until Reset STOP</div>")


class StopBar(widgets.VBox):
    """STOP button, latch state, Reset STOP and (while latched) a banner for one panel.

    Reset STOP is enabled only while the latch is set.

    Parameters
    ----------
    estop : EmergencyStop
        The shared latch.
    """

    def __init__(self, estop: EmergencyStop) -> None:
        self.estop = estop
        self.button = widgets.Button(description="STOP", button_style="danger",
                                     tooltip="Emergency stop: disarm now",
                                     layout=widgets.Layout(width="100px", height="40px"))
        self.button.style.font_weight = "bold"
        self.button.add_class("labkit-stop")
        self.button.on_click(lambda _b: estop.trigger())
        self.reset_button = widgets.Button(description="Reset STOP", disabled=not estop.active,
                                           tooltip="Release the latch (the unit stays disarmed)")
        self.reset_button.add_class("labkit-reset")
        self.reset_button.on_click(lambda _b: estop.reset())
        self.state = widgets.Label(f"STOP: {estop.state}")
        self.state.add_class("labkit-stop-state")
        self.banner = widgets.HTML("")
        self.banner.add_class("labkit-stop-banner")
        estop.add_listener(self._on_state)
        super().__init__(children=[self.banner, widgets.HBox([self.button, self.reset_button,
                                                                   self.state])])
        self.add_class("labkit-stop-bar")

    def _on_state(self, state: str) -> None:
        self.state.value = f"STOP: {state}"
        self.banner.value = stop_banner_html(state)
        self.reset_button.disabled = not self.estop.active
