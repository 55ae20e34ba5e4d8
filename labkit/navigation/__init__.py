"""Neuronavigation: coil poses, the Localite TMS Navigator client, the target gate."""

from __future__ import annotations

from labkit.navigation.framing import JSONStreamDecoder
from labkit.navigation.gate import GateVerdict, PulsePose, TargetGate, pulse_pose
from labkit.navigation.localite import LocaliteClient, NavigationEvent, mep_response_message
from labkit.navigation.pose import CoilPose

__all__ = [
    "CoilPose", "GateVerdict", "JSONStreamDecoder", "LocaliteClient", "NavigationEvent",
    "PulsePose", "TargetGate", "mep_response_message", "pulse_pose",
]
