"""Simulated hardware for profiles with ``rig.simulated = true``.

Builds, wires and starts: the virtual subject, its EMG amplifier (and EEG amplifier when
the profile asks for it) streaming over LSL, and the stimulator emulator whose coil
delivers each discharge to the amplifiers. Stream names get a per-rig suffix so that two
simulated rigs on one machine are never mistaken for a spoofed stream.

By default (``[simulation] process = "child"``) the hardware runs in a child process,
reached over a pty and LSL like real devices (:mod:`labkit.sim.process`,
:mod:`labkit.sim.server`, which builds it here with ``process="inline"``);
``process="inline"`` (the profile, the argument, or ``$LABKIT_SIM_PROCESS``) runs it in
this process.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.profiles import DeviceProfile, StreamSection
from labkit.sim.events import Discharge
from labkit.stimulators.registry import model_spec

if TYPE_CHECKING:
    from labkit.sim.process import SimulatorProcess

_RIG_COUNTER = itertools.count(1)
#: Environment variable that overrides the profile's ``[simulation] process``.
PROCESS_ENV = "LABKIT_SIM_PROCESS"

@dataclass
class SimulatedHardware:
    """The running pieces of a simulated rig.

    Attributes
    ----------
    port : str
        pyserial URL of the emulator (what the driver opens).
    pty_path : str | None
        The emulator's pseudo-terminal, for external programs.
    emulator, subject, emg_amplifier, eeg_amplifier
        The running simulation objects.
    emg_stream, eeg_stream, marker_stream : StreamSection
        The stream names and source ids actually in use.
    navigation : SimulatedNavigation | None
        The hand-held coil and the navigator emulator, when the profile has a
        ``[navigation]`` section (the rig's client connects to ``navigation.address``).
    """

    port: str
    pty_path: str | None
    emulator: Any
    subject: Any
    emg_amplifier: Any
    eeg_amplifier: Any
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
        """Stop the emulator and the amplifiers."""
        while self._closers:
            self._closers.pop()()


def _unique(section: StreamSection, suffix: str) -> StreamSection:
    return section.model_copy(update={
        "name": f"{section.name}-{suffix}",
        "source_id": f"{section.source_id or section.name}-{suffix}-{uuid.uuid4().hex[:8]}",
    })


def simulation_process(profile: DeviceProfile, process: str | None = None) -> str:
    """Where the simulated lab runs: ``process`` if given, else ``$LABKIT_SIM_PROCESS``,
    else the profile's ``[simulation] process``.

    Raises
    ------
    ConfigError
        For anything but ``"inline"`` or ``"child"``.
    """
    where = process or os.environ.get(PROCESS_ENV) or profile.simulation.process
    if where not in ("inline", "child"):
        source = "process=" if process else f"${PROCESS_ENV}"
        raise ConfigError(f"must be 'inline' or 'child', got {where!r}", field=source)
    return where


def start_simulated_hardware(
    profile: DeviceProfile, *, seed: int | None = None, process: str | None = None
) -> SimulatedHardware | SimulatorProcess:
    """Start the simulated hardware a profile describes.

    Parameters
    ----------
    profile : DeviceProfile
        A profile with ``rig.simulated = true``.
    seed : int | None
        Seed of the virtual subject; defaults to ``profile.simulation.seed``.
    process : {"inline", "child"} | None
        Run it in this process or in a child process (see :func:`simulation_process`).

    Returns
    -------
    SimulatedHardware | SimulatorProcess
        Running hardware (inline) or the child running it; ``close()`` stops either.
    """
    if simulation_process(profile, process) == "child":
        from labkit.sim.process import start_simulator_process

        return start_simulator_process(profile, seed=seed)
    from labkit.sim.amplifier import EEGAmplifier, EMGAmplifier
    from labkit.sim.subject import VirtualSubject

    sim = profile.simulation
    seed = sim.seed if seed is None else seed
    suffix = f"{os.getpid()}-{next(_RIG_COUNTER)}"
    emg_stream = _unique(profile.streams.emg, suffix)
    eeg_stream = None
    marker_stream = _unique(profile.streams.markers, suffix)
    closers: list = []
    try:
        eeg_source = None
        if sim.eeg:
            from labkit.sim.eeg import MuEEGSource

            eeg_source = MuEEGSource(seed=seed)
            eeg_stream = _unique(profile.streams.eeg or StreamSection(
                name="labkit-sim-eeg", type="EEG"), suffix)
        subject = VirtualSubject(seed=seed, eeg=eeg_source)
        emg_amp = EMGAmplifier(subject, name=emg_stream.name, source_id=emg_stream.source_id,
                               noise_uv=sim.emg_noise_uv, latency_ms=sim.emg_latency_ms)
        emg_amp.start()
        closers.append(emg_amp.stop)
        eeg_amp = None
        if eeg_source is not None:
            eeg_amp = EEGAmplifier(eeg_source, name=eeg_stream.name,
                                   source_id=eeg_stream.source_id)
            eeg_amp.start()
            closers.append(eeg_amp.stop)

        def coil(discharge: Discharge) -> None:
            if eeg_amp is not None:
                eeg_amp(discharge)
            emg_amp(discharge)

        spec = model_spec(sim.emulator or profile.stimulator.model)
        vendor, model = spec.emulator
        if vendor == "magstim":
            from labkit.sim.magstim_emulator import MagstimEmulator

            table = {k: v for k, v in spec.driver_options.items() if k in ("voltage",)}
            if "variant" in spec.driver_options:
                table["rapid_variant"] = spec.driver_options["variant"]
            emulator = MagstimEmulator(model=model, coil=coil, seed=seed, **table)
        elif vendor == "duomag":
            from labkit.sim.duomag_emulator import DuoMAGEmulator

            emulator = DuoMAGEmulator(model=model, coil=coil)
        else:
            from labkit.sim.magpro_emulator import MagProEmulator

            emulator = MagProEmulator(model=model, coil=coil, seed=seed)
        closers.append(emulator.stop)
        emulator.set_discharge_delay_ms(sim.discharge_delay_ms)
        for amplifier in (emg_amp, eeg_amp):
            if amplifier is not None:  # no sample goes out before its discharge is placed
                amplifier.hold_while = emulator.holds_samples
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    hardware = SimulatedHardware(
        port=emulator.url, pty_path=emulator.pty_path, emulator=emulator, subject=subject,
        emg_amplifier=emg_amp, eeg_amplifier=eeg_amp, emg_stream=emg_stream,
        eeg_stream=eeg_stream, marker_stream=marker_stream, _closers=closers,
    )
    if profile.navigation is not None:
        from labkit.sim.navigation import attach_navigation

        try:
            hardware.navigation = attach_navigation(hardware)
        except BaseException:
            hardware.close()
            raise
    return hardware
