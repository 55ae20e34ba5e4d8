"""Replay a recorded session: re-execute the notebook that produced it against its recording.

``python -m labkit.replay RUN_OR_SESSION [NOTEBOOK]`` (:mod:`labkit.replay.command`) runs
the notebook under ``pytest --nbval`` with ``labkit.open_rig`` served from the session
(:mod:`labkit.replay.rig`): the stimulator is the model's emulator behind the normal
driver, checked pulse by pulse against the session's log; EMG and EEG are the session's
recordings, republished over LSL so that every replayed pulse finds its recorded samples
(:mod:`labkit.replay.amplifier`). MEPs, threshold decisions and printed numbers come out
identical; the first pulse that differs stops the notebook with both values.

Limits: pulses are matched by order and intensity (output A); pulses fired before the rig
recorded into the session are not in its log and count as divergences; a closed loop that
times pulses from the EEG phase is not reproduced (its pulses are replayed when asked).
"""

from typing import Any

from labkit.replay.rig import ReplayDivergenceError, ReplayRig, open_replay_rig
from labkit.replay.source import RecordedSession, ReplayError, load_session

__all__ = [
    "RecordedSession",
    "ReplayDivergenceError",
    "ReplayError",
    "ReplayResult",
    "ReplayRig",
    "load_session",
    "open_replay_rig",
    "replay",
]


def __getattr__(name: str) -> Any:
    """``replay`` and ``ReplayResult`` load the command (nbformat) only when asked for:
    a kernel whose ``open_rig`` is served from a session does not need them."""
    if name in ("replay", "ReplayResult"):
        from labkit.replay import command

        return getattr(command, name)
    raise AttributeError(f"module 'labkit.replay' has no attribute {name!r}")
