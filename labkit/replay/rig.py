"""The replay rig: a recorded session served through the normal driver and LSL streams.

``labkit.open_rig(...)`` returns it when ``LABKIT_REPLAY`` names a session (set by
``python -m labkit.replay``), so a notebook's own code runs unchanged:

- the stimulator is the profile model's **emulator** behind the **normal driver**; its
  firing guard (:class:`ReplayGuard`) also checks every pulse against the session's log
  and stops the notebook at the first pulse that differs (:class:`ReplayDivergenceError`,
  naming the pulse and both values);
- EMG (and EEG) come from the session's recordings, republished over LSL by
  :class:`~labkit.replay.amplifier.ReplayAmplifier`, aligned on each replayed pulse's
  marker so that its MEP is the recorded one, sample for sample. No virtual subject
  produces data: a simulated session is replayed like a hardware one;
- on a simulated profile, ``rig.hardware`` has the simulated rig's attributes (stream
  sections, ``emg_amplifier``, ``subject``): the subject is the profile's seeded model,
  kept for the ground truth a notebook may print (its true threshold), fed the replayed
  discharges. A navigated simulated profile gets the simulated lab's hand-held coil and
  navigator emulator (poses are simulated live, not replayed); a hardware navigator is
  not replayed.

Divergences and a summary (pulses replayed of those logged) are appended as JSON lines to
the file ``LABKIT_REPLAY_REPORT`` names, for the replay command.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.markers import PulseEvent, PulseMarkerOutlet
from labkit.profiles import DeviceProfile, StreamSection
from labkit.replay.amplifier import ReplayAmplifier
from labkit.replay.source import (
    DEFAULT_POST_S,
    DEFAULT_PRE_S,
    RecordedSession,
    ReplayError,
    load_session,
)
from labkit.rig import REPLAY_ENV, Rig
from labkit.safety.guard import FiringGuard
from labkit.stimulators.registry import driver_class, model_spec

__all__ = ["REPLAY_ENV", "REPORT_ENV", "ReplayDivergenceError", "ReplayRig", "open_replay_rig"]

#: Environment variable naming the JSON-lines file that receives divergences and summaries.
REPORT_ENV = "LABKIT_REPLAY_REPORT"

_COUNTER = itertools.count(1)


class ReplayDivergenceError(LabkitError):
    """The notebook asked for a pulse the recorded session did not deliver.

    Attributes
    ----------
    pulse : int
        1-based number of the pulse that differs.
    """

    def __init__(self, message: str, *, pulse: int) -> None:
        self.pulse = pulse
        super().__init__(message)


class ReplayState:
    """The replay's position in the session's pulses, shared by guard, markers and streams.

    Parameters
    ----------
    session : RecordedSession
        The session served.
    report_path : str | os.PathLike | None
        JSON-lines file for divergences and the summary.
    """

    def __init__(self, session: RecordedSession, report_path: str | os.PathLike | None):
        self.session = session
        self.report_path = Path(report_path) if report_path else None
        self.delivered = 0
        self.divergence: ReplayDivergenceError | None = None
        self.amplifiers: list[ReplayAmplifier] = []
        self._lock = threading.Lock()

    def _report(self, record: dict) -> None:
        if self.report_path is None:
            return
        with open(self.report_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def _diverge(self, message: str, pulse: int) -> None:
        error = ReplayDivergenceError(message, pulse=pulse)
        if self.divergence is None:
            self.divergence = error
            self._report({"kind": "divergence", "pulse": pulse, "message": message})
        raise error

    def check(self, n: int, intensity_percent: float) -> None:
        """Refuse ``n`` pulses at ``intensity_percent`` unless the session delivered them next.

        Raises
        ------
        ReplayDivergenceError
            Naming the first pulse that differs, what the notebook asks and what the
            session delivered.
        """
        with self._lock:
            if self.divergence is not None:
                raise ReplayDivergenceError(f"the replay already diverged: {self.divergence}",
                                            pulse=self.divergence.pulse)
            first = self.delivered
            pulses = self.session.pulses
            what = f"{intensity_percent:g} % MSO" + ("" if n == 1 else f" (train of {n})")
            if first + n > len(pulses):
                self._diverge(f"pulse {len(pulses) + 1}: the notebook asks for a pulse at "
                              f"{what}, the session delivered only {len(pulses)} pulses",
                              len(pulses) + 1)
            for pulse in pulses[first:first + n]:
                if abs(pulse.intensity_percent - float(intensity_percent)) > 1e-6:
                    self._diverge(f"pulse {pulse.number}: the notebook asks for {what}, the "
                                  f"session delivered {pulse.intensity_percent:g} % MSO",
                                  pulse.number)

    def on_pulse(self, event: PulseEvent) -> None:
        """A replayed pulse was delivered: align the streams on it."""
        with self._lock:
            k = self.delivered
            self.delivered += 1
        for amp in self.amplifiers:
            amp.on_pulse(k, event.time_s)

    def summary(self) -> dict:
        """Pulses replayed, logged, and how many came too late for their pre-pulse samples."""
        return {"kind": "summary", "pulses_replayed": self.delivered,
                "pulses_logged": len(self.session.pulses),
                "late": sum(a.late_discharges for a in self.amplifiers)}

    def write_summary(self) -> None:
        """Append :meth:`summary` to the report file."""
        self._report(self.summary())


class ReplayGuard(FiringGuard):
    """A firing guard that also checks each pulse against the recorded session.

    ``state`` is the replay's :class:`ReplayState`; ``*args`` and ``**kwargs`` are those
    of :class:`~labkit.safety.guard.FiringGuard`.
    """

    def __init__(self, state: ReplayState, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replay = state

    def before_pulses(self, n: int, intensity_percent: float, now_s: float) -> None:
        """The safety checks first (a pulse refused then was refused when recorded too)."""
        super().before_pulses(n, intensity_percent, now_s)
        self.replay.check(n, intensity_percent)
        for amp in self.replay.amplifiers:
            amp.expect(now_s)


class ReplayMarkerOutlet(PulseMarkerOutlet):
    """The rig's pulse-marker outlet; each marker also aligns the replayed streams."""

    def __init__(self, name: str, source_id: str | None, state: ReplayState) -> None:
        super().__init__(name, source_id)
        self.replay = state

    def push(self, event: PulseEvent) -> None:
        """Publish the pulse, then place it in the replayed streams."""
        super().push(event)
        self.replay.on_pulse(event)


@dataclass
class ReplayHardware:
    """What ``rig.hardware`` holds on a replayed simulated rig (same attribute names)."""

    port: str
    pty_path: str | None
    emulator: Any
    subject: Any
    emg_amplifier: ReplayAmplifier
    eeg_amplifier: ReplayAmplifier | None
    emg_stream: StreamSection
    eeg_stream: StreamSection | None
    marker_stream: StreamSection
    navigation: Any = None
    _closers: list = field(default_factory=list, repr=False)

    @property
    def navigation_address(self) -> tuple[str, int] | None:
        """(host, port) of the navigator emulator, or None without navigation."""
        return None if self.navigation is None else tuple(self.navigation.address)

    def close(self) -> None:
        """Stop the streams and the emulator."""
        while self._closers:
            self._closers.pop()()


class ReplayRig(Rig):
    """A :class:`~labkit.rig.Rig` served from a recorded session (see the module docstring).

    ``*args`` and ``**kwargs`` are those of :class:`~labkit.rig.Rig`; ``replay`` is the
    replay's state and ``closers`` stop what serves the session when the rig closes.

    Attributes
    ----------
    replay : ReplayState
        Pulses replayed so far and the first divergence.
    """

    def __init__(self, *args: Any, replay: ReplayState, closers: list, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.replay = replay
        self._replay_closers = closers
        self.guard = ReplayGuard(replay, self.limits,
                                 min_single_interval_s=self.guard.min_single_interval_s,
                                 source=self.guard.source)
        self.stimulator.guard = self.guard
        atexit.register(self._summary_once)
        self._summary_written = False

    def _summary_once(self) -> None:
        if not self._summary_written:
            self._summary_written = True
            self.replay.write_summary()

    def close(self) -> None:
        """Close as a rig does, stop the replayed streams, report the pulses replayed."""
        try:
            super().close()
        finally:
            while self._replay_closers:
                self._replay_closers.pop()()
            self._summary_once()


def _emulator(profile: DeviceProfile, coil: Any, seed: int) -> Any:
    """The profile model's emulator, in process (the replay needs no pty)."""
    spec = model_spec(profile.stimulator.model)
    vendor, model = spec.emulator
    if vendor == "magstim":
        from labkit.sim.magstim_emulator import MagstimEmulator

        table = {k: v for k, v in spec.driver_options.items() if k in ("voltage",)}
        if "variant" in spec.driver_options:
            table["rapid_variant"] = spec.driver_options["variant"]
        if profile.stimulator.unlock_code is not None:
            table["unlock_code"] = profile.stimulator.unlock_code
        return MagstimEmulator(model=model, coil=coil, seed=seed, pty=False, **table)
    if vendor == "duomag":
        from labkit.sim.duomag_emulator import DuoMAGEmulator

        return DuoMAGEmulator(model=model, coil=coil, pty=False)
    from labkit.sim.magpro_emulator import MagProEmulator

    return MagProEmulator(model=model, coil=coil, seed=seed, pty=False)


def _simulated_navigation(profile: DeviceProfile, hardware: ReplayHardware,
                          stimulator: Any, emg: Any, eeg: Any) -> Any:
    """The simulated lab's hand-held coil and navigator, as a navigated simulated rig has.

    Coil poses are the simulation's (live), not the session's: the navigated pulses' gate
    and logged poses follow the seeded hand; MEPs still come from the recording.
    """
    from labkit.rig import _open_navigation
    from labkit.sim.navigation import attach_navigation

    try:
        hardware.navigation = attach_navigation(hardware)
        return _open_navigation(profile, hardware)
    except BaseException:
        for stream in (emg, eeg):
            if stream is not None and stream.connected:
                stream.disconnect()
        stimulator.close()
        hardware.close()
        raise


def _section(section: StreamSection, simulated: bool, suffix: str) -> StreamSection:
    """The profile's names on a hardware rig; fresh unique ones on a simulated rig."""
    if not simulated:
        return section
    return section.model_copy(update={
        "name": f"{section.name}-replay-{suffix}",
        "source_id": f"{section.source_id or section.name}-replay-{suffix}-"
                     f"{uuid.uuid4().hex[:8]}"})


def open_replay_rig(
    profile: DeviceProfile,
    *,
    seed: int | None = None,
    connect: bool = True,
    session: Any = None,
    source: str | os.PathLike,
    pre_s: float = DEFAULT_PRE_S,
    post_s: float = DEFAULT_POST_S,
) -> ReplayRig:
    """Open ``profile``'s rig served from the recorded session ``source``.

    Parameters
    ----------
    profile : DeviceProfile
        The profile the notebook opens (limits, model, stream names, MEP settings).
    seed : int | None
        Seed of a simulated profile's subject model (ground truth only).
    connect : bool
        Connect the stimulator right away.
    session : Session | None
        Record into this session (see :meth:`Rig.use_session`).
    source : str | os.PathLike
        The recorded session folder.
    pre_s, post_s : float
        Recorded epoch served around every pulse, s.

    Returns
    -------
    ReplayRig
        The rig; ``rig.replay`` tells how far the replay got.
    """
    from labkit.streams import connect_stream

    recorded = load_session(source, pre_s=pre_s, post_s=post_s)
    state = ReplayState(recorded, os.environ.get(REPORT_ENV))
    simulated = profile.rig.simulated
    suffix = f"{os.getpid()}-{next(_COUNTER)}"
    if seed is None:
        seed = profile.simulation.seed if profile.simulation is not None else 0
    closers: list = []
    stimulator = emg = eeg = markers = None
    try:
        subject = None
        if simulated:
            from labkit.sim.subject import VirtualSubject

            subject = VirtualSubject(seed=seed)
        emulator = _emulator(profile, subject, seed)
        closers.append(emulator.stop)
        times = [p.time_s for p in recorded.pulses]
        sections = {"emg": profile.streams.emg, "eeg": profile.streams.eeg}
        if simulated and sections["eeg"] is None and getattr(profile.simulation, "eeg", False):
            sections["eeg"] = StreamSection(name="labkit-sim-eeg", type="EEG")
        served: dict[str, tuple[StreamSection, ReplayAmplifier]] = {}
        for kind, section in sections.items():  # EMG first: it takes its recording
            used = tuple(amp.recording.label for _, amp in served.values())
            stream = None if section is None else recorded.stream_for(section.name, kind,
                                                                      used)
            if section is None or stream is None:
                continue
            section = _section(section, simulated, suffix)
            amp = ReplayAmplifier(stream, times, name=section.name,
                                  source_id=section.source_id or f"labkit-replay-{suffix}",
                                  pre_s=pre_s, post_s=post_s)
            amp.start()
            closers.append(amp.stop)
            state.amplifiers.append(amp)
            served[kind] = (section, amp)
        marker_section = _section(profile.streams.markers, simulated, suffix)
        markers = ReplayMarkerOutlet(marker_section.name, marker_section.source_id, state)
        spec = model_spec(profile.stimulator.model)
        options: dict[str, Any] = {"timeout_s": profile.stimulator.timeout_s,
                                   "markers": markers, **spec.driver_options}
        if profile.stimulator.unlock_code is not None:
            options["unlock_code"] = profile.stimulator.unlock_code
        stimulator = driver_class(profile.stimulator.model)(emulator.url, **options)
        if "emg" not in served:
            raise ReplayError(f"{recorded.path}: the session holds no EMG recording to serve "
                              "as the rig's EMG stream")
        emg_section = served["emg"][0]
        emg = connect_stream(emg_section.name, source_id=emg_section.source_id,
                             picks=profile.streams.emg.picks)
        if "eeg" in served and profile.streams.eeg is not None:
            eeg_section = served["eeg"][0]
            eeg = connect_stream(eeg_section.name, source_id=eeg_section.source_id,
                                 picks=profile.streams.eeg.picks)
        if connect:
            stimulator.connect()
    except BaseException:
        for stream in (emg, eeg):
            if stream is not None and stream.connected:
                stream.disconnect()
        if stimulator is not None:
            stimulator.close()
        for close in reversed(closers):
            close()
        raise
    hardware = navigation = None
    if simulated:
        eeg_served = served.get("eeg")
        hardware = ReplayHardware(
            port=emulator.url, pty_path=None, emulator=emulator, subject=subject,
            emg_amplifier=served["emg"][1], eeg_amplifier=eeg_served and eeg_served[1],
            emg_stream=served["emg"][0], eeg_stream=eeg_served and eeg_served[0],
            marker_stream=marker_section, _closers=closers)
        closers = []
        if profile.navigation is not None:
            navigation = _simulated_navigation(profile, hardware, stimulator, emg, eeg)
    rig = ReplayRig(profile, stimulator, emg, markers, eeg=eeg, hardware=hardware,
                    navigation=navigation, replay=state, closers=closers)
    if session is not None:
        rig.use_session(session)
    return rig
