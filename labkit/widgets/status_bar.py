"""The status bar at the top of every panel that can fire.

One line says what the operator must always know before a pulse: whether the rig is
SIMULATED or REAL, whose session it is, whether the unit is under remote control, armed
and ready, the intensity set, the coil temperature (on units that report one), the
pulses delivered against the session cap, and, with navigation, how far the coil is from
its target. Under it is the emergency STOP (:class:`~labkit.widgets.stop_bar.StopBar`).
The bar sticks to the top of its panel while the panel scrolls, so STOP stays on screen.

:class:`PanelStatus` and :func:`status_html` are pure; :class:`StatusBar` gathers the
facts (the rig, the session, the driver, the navigator) and refreshes the line. It never
queries the unit while a run holds the firing guard's permit: a protocol's timing thread
owns the serial port then, and the line keeps the last status read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from html import escape
from typing import Any

import ipywidgets as widgets

from labkit.errors import LabkitError
from labkit.widgets._threads import Ticker
from labkit.widgets.estop import EmergencyStop
from labkit.widgets.stop_bar import StopBar

__all__ = ["PanelStatus", "StatusBar", "status_html"]

#: Keeps the bar (and its STOP) at the top of the panel while the panel scrolls.
_STICKY_CSS = ("<style>.labkit-status-bar{position:sticky;top:0;z-index:20;"
               "background:var(--jp-layout-color0,white);padding-bottom:2px}</style>")


@dataclass(frozen=True)
class PanelStatus:
    """What the status bar shows (``None``: not known).

    Attributes
    ----------
    simulated : bool | None
        True on a simulated rig, False on hardware, None for a driver used without a rig.
    subject_id, session_id : str | None
        The session being recorded.
    connected : bool
        The driver's port is open.
    remote, armed, ready : bool | None
        From the unit's last status.
    intensity_percent : float | None
        Output intensity last set, % MSO.
    temperature_declared : bool
        The model reports a coil temperature.
    coil_temperature_c : float | None
        Last coil temperature read, °C.
    pulses_delivered : int
        Pulses delivered this session (the firing guard's count).
    pulse_cap : int | None
        The session's pulse cap.
    navigation : bool
        A navigator is attached.
    target_distance_mm : float | None
        Coil to target in the target's plane, mm (None: no fresh pose or no target).
    pose_status : str | None
        ``"ok"``, ``"stale"``, ``"no-pose"`` or ``"disconnected"``.
    running : bool
        A run holds the firing guard (the status is the last one read before it).
    """

    simulated: bool | None = None
    subject_id: str | None = None
    session_id: str | None = None
    connected: bool = False
    remote: bool | None = None
    armed: bool | None = None
    ready: bool | None = None
    intensity_percent: float | None = None
    temperature_declared: bool = False
    coil_temperature_c: float | None = None
    pulses_delivered: int = 0
    pulse_cap: int | None = None
    navigation: bool = False
    target_distance_mm: float | None = None
    pose_status: str | None = None
    running: bool = False


def _item(name: str, text: str, *, value: str, colour: str = "#333",
          bold: bool = False) -> str:
    weight = "font-weight:bold;" if bold else ""
    return (f'<span class="labkit-status-{name}" data-value="{escape(value)}" '
            f'style="margin-right:14px;color:{colour};{weight}">{escape(text)}</span>')


def _flag(value: bool | None) -> str:
    return "?" if value is None else ("1" if value else "0")


def status_html(status: PanelStatus) -> str:
    """The status line as HTML; each item has a ``labkit-status-<name>`` class and a
    ``data-value`` attribute (for tests and screen readers)."""
    if status.simulated is None:
        badge = ('<span class="labkit-status-mode" data-value="unknown" style="background:'
                 '#777;color:white;padding:2px 6px;margin-right:14px;font-weight:bold">'
                 'NO RIG</span>')
    else:
        word, colour = ("SIMULATED", "#1f77b4") if status.simulated else ("REAL", "#c62828")
        badge = (f'<span class="labkit-status-mode" data-value="{word.lower()}" '
                 f'style="background:{colour};color:white;padding:2px 6px;margin-right:14px;'
                 f'font-weight:bold">{word}</span>')
    parts = [badge]
    if status.subject_id:
        who = f"sub-{status.subject_id}" + (f" ses-{status.session_id}"
                                             if status.session_id else "")
        parts.append(_item("session", who, value=who))
    else:
        parts.append(_item("session", "no session: pulses are not logged", value="",
                           colour="#b26a00"))
    if not status.connected:
        parts.append(_item("unit", "unit: not connected", value="disconnected",
                           colour="#777"))
    else:
        for name, flag in (("remote", status.remote), ("armed", status.armed),
                           ("ready", status.ready)):
            colour = "#bbb" if flag is None else ("#2ca02c" if flag else "#555")
            if name == "armed" and flag:
                colour = "#d1451f"
            parts.append(
                f'<span class="labkit-light labkit-status-{name}" data-name="{name}" '
                f'data-on="{_flag(flag)}" style="margin-right:14px"><span style="display:'
                f'inline-block;width:10px;height:10px;border-radius:5px;background:{colour}">'
                f'</span> {name}</span>')
    if status.intensity_percent is not None:
        parts.append(_item("intensity", f"{status.intensity_percent:.0f} %MSO",
                           value=f"{status.intensity_percent:.0f}", bold=True))
    if status.temperature_declared:
        temp = status.coil_temperature_c
        text = "coil -- °C" if temp is None else f"coil {temp:.0f} °C"
        parts.append(_item("temperature", text, value="" if temp is None else f"{temp:.1f}"))
    cap = status.pulse_cap
    near = cap is not None and status.pulses_delivered >= 0.9 * cap
    parts.append(_item("pulses", f"pulses {status.pulses_delivered} / "
                       f"{cap if cap is not None else '?'} (session cap)",
                       value=str(status.pulses_delivered),
                       colour="#c62828" if near else "#333", bold=near))
    if status.navigation:
        dist = status.target_distance_mm
        if dist is not None and math.isfinite(dist):
            parts.append(_item("target", f"coil to target {dist:.1f} mm", value=f"{dist:.1f}"))
        else:
            why = status.pose_status or "no target"
            parts.append(_item("target", f"coil to target: -- ({why})", value="",
                               colour="#b26a00"))
    if status.running:
        parts.append(_item("run", "run in progress", value="running", colour="#d1451f"))
    return f'<div class="labkit-status-line">{"".join(parts)}</div>'


class StatusBar(widgets.VBox):
    """Status line and emergency STOP of one panel.

    Parameters
    ----------
    stimulator : Stimulator
        The driver the panel fires (its firing guard counts the session's pulses).
    estop : EmergencyStop
        The shared STOP latch.
    rig : Rig | None
        Gives the SIMULATED/REAL badge, the session and the navigator.
    session : Session | None
        The session (default: the rig's).
    navigation : LocaliteClient | None
        A navigator client (default: the rig's); shows the coil-to-target distance.
    poll_s : float | None
        Refresh period; ``None`` refreshes only when :meth:`refresh` is called (a panel
        that polls the unit itself passes each status to :meth:`refresh`).
    """

    #: Seconds between coil temperature reads (a serial transaction each).
    temperature_period_s = 5.0

    def __init__(self, stimulator: Any, estop: EmergencyStop, *, rig: Any = None,
                 session: Any = None, navigation: Any = None,
                 poll_s: float | None = 1.0) -> None:
        self.stimulator = stimulator
        self.rig = rig
        self._session = session
        self._navigation = navigation
        self._last: Any = None
        self._temperature_c: float | None = None
        self._temperature_read_s = -math.inf
        self._error = ""
        self.line = widgets.HTML("")
        self.line.add_class("labkit-status")
        self.stop = StopBar(estop)
        super().__init__(children=[widgets.HTML(_STICKY_CSS), self.line, self.stop])
        self.add_class("labkit-status-bar")
        estop.add_listener(lambda _state: self.refresh(query=False))
        self.refresh(query=False)
        self._ticker = (Ticker(self.refresh, poll_s, self._report, "labkit-status").start()
                        if poll_s else None)

    @property
    def session(self) -> Any:
        """The session shown (the rig's unless one was given)."""
        return self._session if self._session is not None else getattr(self.rig, "session",
                                                                       None)

    @property
    def navigation(self) -> Any:
        """The navigator client shown (the rig's unless one was given)."""
        if self._navigation is not None:
            return self._navigation
        nav = getattr(self.rig, "navigation", None)
        return getattr(nav, "client", None)

    def snapshot(self, status: Any = None, *, query: bool = True) -> PanelStatus:
        """Gather the facts; query the unit only when ``query`` and no run holds it."""
        stim = self.stimulator
        guard = stim.guard
        running = guard.permit_active is not None
        connected = bool(stim.connected)
        if status is not None:
            self._last = status
        elif query and connected and not running:
            try:
                self._last = stim.status()
                self._error = ""
            except LabkitError as exc:
                self._report(exc)
        if not connected:
            self._last = None
        declared = _declares_temperature(stim)
        now = time.monotonic()
        if (declared and query and connected and not running
                and now - self._temperature_read_s >= self.temperature_period_s):
            self._temperature_read_s = now
            try:
                self._temperature_c = float(stim.coil_temperature_c())
            except LabkitError:
                self._temperature_c = None
        last = self._last
        session = self.session
        nav = self.navigation
        pose = nav.pulse_pose() if nav is not None else None
        return PanelStatus(
            simulated=None if self.rig is None else bool(self.rig.simulated),
            subject_id=getattr(session, "subject_id", None),
            session_id=getattr(session, "session_id", None),
            connected=connected,
            remote=None if last is None else bool(last.remote_control),
            armed=None if last is None else bool(last.armed),
            ready=None if last is None else bool(last.ready),
            intensity_percent=_intensity(stim) if connected else None,
            temperature_declared=declared,
            coil_temperature_c=self._temperature_c if declared else None,
            pulses_delivered=int(guard.count),
            pulse_cap=int(guard.limits.max_pulses_per_session),
            navigation=nav is not None,
            target_distance_mm=None if pose is None else pose.target_distance_mm,
            pose_status=None if pose is None else pose.status,
            running=running,
        )

    def refresh(self, status: Any = None, *, query: bool = True) -> PanelStatus:
        """Redraw the line (with ``status`` when the caller just read it); return it."""
        snap = self.snapshot(status, query=query)
        error = (f'<div class="labkit-status-error" style="color:#c62828">{escape(self._error)}'
                 "</div>") if self._error else ""
        self.line.value = status_html(snap) + error
        return snap

    def close(self) -> None:
        """Stop refreshing."""
        if self._ticker is not None:
            self._ticker.stop()
        super().close()

    def _report(self, exc: BaseException) -> None:
        self._error = f"{type(exc).__name__}: {exc}"


def _declares_temperature(stimulator: Any) -> bool:
    abilities = getattr(stimulator, "abilities", None)
    return bool(getattr(abilities, "coil_temperature", False))


def _intensity(stimulator: Any) -> float | None:
    value = getattr(stimulator, "intensity_percent", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
