"""ipywidgets panels for running sessions from a notebook.

Panels: :class:`StimulatorPanel` (with the emergency STOP), :class:`MEPView` (live MEP
overlay and amplitude per trial), :class:`ThresholdHunter`, :class:`ProtocolRunnerPanel`
and :class:`ClosedLoopMonitor`. Every slow operation runs off the kernel's main thread and
reports by setting widget values (never by printing), so button callbacks, STOP included,
stay responsive and thread output reaches the right widget under ipykernel >= 7.
"""

from labkit.widgets._emg import MEPTrial, StreamEpochs, as_emg_source, measure
from labkit.widgets.closedloop_monitor import ClosedLoopMonitor, circular_stats_deg
from labkit.widgets.estop import EmergencyStop, StopLatchedError
from labkit.widgets.mep_view import MEPCollector, MEPView
from labkit.widgets.protocol_panel import ProtocolRunnerPanel
from labkit.widgets.stimulator_panel import StimulatorPanel
from labkit.widgets.threshold_hunter import ThresholdHunter

__all__ = [
    "ClosedLoopMonitor",
    "EmergencyStop",
    "MEPCollector",
    "MEPTrial",
    "MEPView",
    "ProtocolRunnerPanel",
    "StimulatorPanel",
    "StopLatchedError",
    "StreamEpochs",
    "ThresholdHunter",
    "as_emg_source",
    "circular_stats_deg",
    "measure",
]
