"""ipywidgets panels for running sessions from a notebook.

Panels: :class:`StimulatorPanel`, :class:`MEPView` (live MEP overlay and amplitude per
trial), :class:`ThresholdHunter`, :class:`ProtocolRunnerPanel`, :class:`HotspotMapPanel`
(grid hunt with the live MEP map), :class:`PairedPulsePanel` (SICI/ICF/LICI with live
ratios) and :class:`ClosedLoopMonitor`. Every panel that can fire starts with the same
:class:`StatusBar` (SIMULATED/REAL, session, unit state, intensity, coil temperature,
pulses against the session cap, coil-to-target distance, and the emergency STOP).
Every slow operation runs off the kernel's main thread and
reports by setting widget values (never by printing), so button callbacks, STOP included,
stay responsive and thread output reaches the right widget under ipykernel >= 7.
"""

from labkit.widgets._emg import MEPTrial, StreamEpochs, as_emg_source, measure
from labkit.widgets.closedloop_monitor import ClosedLoopMonitor, circular_stats_deg
from labkit.widgets.estop import EmergencyStop, StopLatchedError
from labkit.widgets.hotspot_panel import HotspotMapPanel
from labkit.widgets.mep_view import MEPCollector, MEPView
from labkit.widgets.pairedpulse_panel import PairedPulsePanel
from labkit.widgets.protocol_panel import ProtocolRunnerPanel
from labkit.widgets.status_bar import StatusBar
from labkit.widgets.stimulator_panel import StimulatorPanel
from labkit.widgets.threshold_hunter import ThresholdHunter

__all__ = [
    "ClosedLoopMonitor",
    "EmergencyStop",
    "HotspotMapPanel",
    "MEPCollector",
    "MEPTrial",
    "MEPView",
    "PairedPulsePanel",
    "ProtocolRunnerPanel",
    "StatusBar",
    "StimulatorPanel",
    "StopLatchedError",
    "StreamEpochs",
    "ThresholdHunter",
    "as_emg_source",
    "circular_stats_deg",
    "measure",
]
