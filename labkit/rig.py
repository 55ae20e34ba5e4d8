"""A rig: the stimulator, the streams and the pulse-marker outlet of one device profile.

``open_rig("simulated")`` is the default: it starts the simulated hardware (a device
emulator, the virtual subject and its LSL amplifier) and connects to it exactly as it
would to real hardware, through a serial port and LSL.

The rig is the one way to fire. It installs the profile's limits on its stimulator's
firing guard (:class:`~labkit.safety.guard.FiringGuard`), declares the model's abilities
from the vendor registry, and keeps the session's pulse count: runners, threshold hunts,
panels, :meth:`Rig.pulse` and the closed loop built on ``rig.stimulator`` all obey them,
whether or not they are built through the rig's helpers (:meth:`Rig.runner`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from typing import Any

from labkit.acquisition import MEPMeter, MEPTrial
from labkit.background import BackgroundCriterion
from labkit.clock import local_clock
from labkit.errors import ConfigError, LabkitError, SafetyError
from labkit.markers import PulseMarkerOutlet
from labkit.profiles import DeviceProfile, load_profile
from labkit.safety.guard import FiringGuard
from labkit.safety.limits import SafetyLimits
from labkit.stimulators.base import Stimulator
from labkit.stimulators.registry import driver_class, manufacturer, model_spec

#: Module that builds simulated hardware for profiles with ``rig.simulated = true``.
#: Resolved at run time so that the core never imports the simulator.
SIMULATION_FACTORY = "labkit.sim.rig:start_simulated_hardware"
#: While this environment variable names a recorded session (``python -m labkit.replay``
#: sets it), :func:`open_rig` serves the rig from that session instead.
REPLAY_ENV = "LABKIT_REPLAY"
REPLAY_FACTORY = "labkit.replay.rig:open_replay_rig"


def _simulation_factory():
    module_name, _, attr = SIMULATION_FACTORY.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _replay_factory():
    module_name, _, attr = REPLAY_FACTORY.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class Rig:
    """The connected devices of one profile.

    Attributes
    ----------
    profile : DeviceProfile
        The validated profile the rig was opened from.
    stimulator : Stimulator
        The connected driver.
    emg : mne_lsl.stream.StreamLSL
        The connected EMG stream.
    eeg : mne_lsl.stream.StreamLSL | None
        The connected EEG stream, when the profile names one.
    markers : PulseMarkerOutlet
        The LSL outlet every delivered pulse is published on.
    hardware : object | None
        The simulated hardware (emulator, subject, amplifiers) for simulated rigs.
    navigation : RigNavigation | None
        The navigator client and target gate, when the profile has a ``[navigation]``
        section; every single pulse the rig logs then carries the coil pose.
    """

    def __init__(
        self,
        profile: DeviceProfile,
        stimulator: Stimulator,
        emg: Any,
        markers: PulseMarkerOutlet,
        *,
        eeg: Any = None,
        hardware: Any = None,
        navigation: Any = None,
    ) -> None:
        self.profile = profile
        self.navigation = navigation
        self._navigator: Any = None
        self.stimulator = stimulator
        self.emg = emg
        self.eeg = eeg
        self.markers = markers
        self.hardware = hardware
        self._closed = False
        self._meter: MEPMeter | None = None
        self._intensity_percent: int | None = None
        self.limits = SafetyLimits.from_profile(profile)
        #: Checks every pulse of :attr:`stimulator` against :attr:`limits` and counts them.
        self.guard = FiringGuard(
            self.limits,
            min_single_interval_s=profile.limits.min_single_pulse_interval_s,
            source=self.limits.source,
        )
        stimulator.guard = self.guard
        stimulator.abilities = model_spec(profile.stimulator.model).abilities
        self.session: Any = None

    # ------------------------------------------------------------------ state
    @property
    def abilities(self):
        """What the stimulator model can do (``Abilities``, from the vendor registry)."""
        return self.stimulator.abilities

    @property
    def rmt_percent(self) -> float | None:
        """Today's resting motor threshold, % MSO, once measured (enables % RMT limits)."""
        return self.guard.rmt_percent

    @rmt_percent.setter
    def rmt_percent(self, value: float | None) -> None:
        if value is not None and not (isinstance(value, int | float)
                                      and not isinstance(value, bool) and 1 <= value <= 100):
            raise ConfigError(f"must be in [1, 100] % MSO, got {value!r}", field="rmt_percent")
        self.guard.rmt_percent = None if value is None else float(value)

    @property
    def pulses_delivered(self) -> int:
        """Pulses delivered this session, whatever fired them (the cap counts these)."""
        return self.guard.count

    def use_session(self, session: Any) -> Any:
        """Record into ``session``: its pulse count is the cap's, single pulses go to its log.

        A ``device`` record of the facts :meth:`device_facts` knows is logged first.

        On a resumed session the count is rebuilt from its log, so a new runner cannot
        start the cap afresh.

        Returns
        -------
        Session
            ``session``.
        """
        self.session = session
        self.guard.count = max(self.guard.count, int(session.pulses_delivered))
        session.log_device(**{k: v for k, v in self.device_facts().items() if v is not None})

        def log_single(event: Any) -> None:
            session.log_pulse(event, nowait=True, source="single", **self.pose_columns(event))

        self.guard.on_unlogged_pulse = log_single
        self._navigator = None  # the next navigator logs to this session
        return session

    def pose_columns(self, event: Any) -> dict[str, Any]:
        """The coil pose columns of a pulse (empty without navigation).

        The last pose received at or before the pulse, only when younger than the
        profile's ``max_pose_age_s`` (else ``pose_status`` says why there is none); see
        :meth:`~labkit.navigation.localite.LocaliteClient.pulse_pose`.
        """
        if self.navigation is None:
            return {}
        return self.navigation.client.pulse_pose(float(event.time_s)).as_record()

    @property
    def navigator(self) -> Any:
        """A :class:`~labkit.navigation.pulses.NavigatedPulser` on this rig's navigator.

        With the profile's gate and hold timeout; its holds and the navigator's link
        events go to the rig's session, and its pulses are logged by the rig (with their
        pose, see :meth:`pose_columns`).

        Raises
        ------
        ConfigError
            When the profile has no ``[navigation]`` section.
        """
        if self.navigation is None:
            raise ConfigError("this rig has no navigator: add a [navigation] section to the "
                              "profile (host, port, gate...)", field="navigation")
        if self._navigator is None:
            from labkit.navigation.pulses import NavigatedPulser

            nav = self.navigation
            self._navigator = NavigatedPulser(self, nav.client, nav.gate,
                                              hold_timeout_s=nav.hold_timeout_s,
                                              session=self.session, log_pulses=False)
        return self._navigator

    def record(self, session: Any = None) -> dict[str, Any]:
        """Record the rig's streams into the session: EMG, EEG (if any) and pulse markers.

        The recordings are labelled ``emg``, ``eeg`` and ``markers``, the labels
        :func:`~labkit.bids.export_bids`, the session record and the MEP analyses read.
        Each stream is bound by the name and ``source_id`` the rig connected to.

        Parameters
        ----------
        session : Session | None
            Where to record; default the session given to :meth:`use_session`.

        Returns
        -------
        dict
            Label → :class:`~labkit.recording.StreamRecorder`.
        """
        session = self.session if session is None else session
        if session is None:
            raise ConfigError("no session to record into: rig.use_session(session) first, or "
                              "pass session=", field="session")
        recorders = {"emg": session.record(self.emg.name, "emg", source_id=self.emg.source_id)}
        if self.eeg is not None:
            recorders["eeg"] = session.record(self.eeg.name, "eeg",
                                              source_id=self.eeg.source_id)
        recorders["markers"] = session.record(self.markers.name, "markers",
                                              source_id=self.markers.source_id)
        return recorders

    def device_facts(self) -> dict[str, Any]:
        """Stimulator manufacturer (from the vendor registry), model, serial, coil and port
        from the profile, firmware from the driver, and the navigator when the rig has one.

        Facts the profile does not give are ``None`` (the session report says "not
        recorded"); ``firmware`` is the version the driver read on connect, if it reads one.
        """
        section = self.profile.stimulator
        version = getattr(self.stimulator, "software_version", None)
        firmware = ".".join(str(v) for v in version) if isinstance(version, tuple) else version
        facts = {"manufacturer": manufacturer(section.model), "model": section.model,
                 "driver": type(self.stimulator).__name__,
                 "serial": section.serial, "coil": section.coil, "port": section.port,
                 "firmware": None if firmware is None else str(firmware)}
        nav = self.profile.navigation
        if self.navigation is not None and nav is not None:
            where = "emulator, simulated" if self.simulated else f"{nav.host}:{nav.port}"
            facts["navigation"] = f"Localite TMS Navigator ({where})"
        return facts

    def runner(self, protocol: Any, *, rmt_percent: float | None = None, **options: Any):
        """A :class:`~labkit.runner.ProtocolRunner` under this rig's limits and session.

        Parameters
        ----------
        protocol : Protocol
            The protocol to deliver.
        rmt_percent : float | None
            Resting motor threshold, % MSO; default :attr:`rmt_percent`.
        **options
            Further :class:`~labkit.runner.ProtocolRunner` options (``intensity``,
            ``train_mode``, ``progress``, ...). ``log`` defaults to the session's sink.
        """
        from labkit.runner import ProtocolRunner

        rmt = self.rmt_percent if rmt_percent is None else rmt_percent
        if rmt is None:
            raise ConfigError("no resting motor threshold yet: hunt or enter the RMT first "
                              "(set rig.rmt_percent, % MSO, or pass rmt_percent=)",
                              field="rmt_percent")
        if self.session is not None:
            options.setdefault("log", self.session.sink)
        return ProtocolRunner(self.stimulator, protocol, rmt, **options)

    @property
    def subject(self) -> Any:
        """The virtual subject of a simulated rig (``None`` on real hardware)."""
        return getattr(self.hardware, "subject", None)

    @property
    def simulated(self) -> bool:
        """True when the rig runs on simulated hardware."""
        return self.hardware is not None

    @property
    def mep_meter(self) -> MEPMeter:
        """Measures MEPs on the profile's channel and window; a trial is ``rejected`` when
        the muscle was not at rest (background RMS above ``background_limit_uv`` or
        peak-to-peak above ``criterion_uv``). For an active threshold, set
        ``rig.mep_meter.background`` to a :meth:`BackgroundCriterion.active_from_mvc`."""
        if self._meter is None:
            mep = self.profile.mep
            self._meter = MEPMeter(self.emg, mep.channel, window_ms=mep.window_ms,
                                   rms_limit_uv=mep.background_limit_uv,
                                   background=BackgroundCriterion.rest(
                                       mep.background_limit_uv, mep.criterion_uv))
        return self._meter

    def pulse(self, intensity_percent: int) -> MEPTrial:
        """Set the intensity, arm if needed, fire one pulse and measure its MEP.

        Parameters
        ----------
        intensity_percent : int
            Intensity, % MSO (whole number, validated by the driver).

        Returns
        -------
        MEPTrial
            The pulse and the MEP measured from the EMG stream.
        """
        self.prepare_pulse(intensity_percent)
        pulse = self.stimulator.fire()
        return self.mep_meter.measure(pulse)

    def prepare_pulse(self, intensity_percent: int) -> None:
        """Make the unit ready to fire a single pulse at ``intensity_percent``, firing nothing.

        Waits out the single-pulse interval the guard requires, sets the intensity (when
        it changed), selects single pulses, arms if needed and waits until the unit
        reports *ready* (about a second after arming). :meth:`pulse`
        does this first; a caller that must check something just before the pulse (the
        navigator's target gate) calls it before that check, so that the arming delay does
        not come between the check and the pulse.

        Raises
        ------
        SafetyError
            For an intensity below 1 % MSO.
        """
        stimulator = self.stimulator
        if isinstance(intensity_percent, int | float) and not isinstance(intensity_percent,
                                                                         bool) \
                and 0 <= intensity_percent < 1:
            raise SafetyError(f"a pulse at {intensity_percent!r} % MSO is refused "
                              "(at least 1 % MSO)")
        wait_s = self.guard.single_pulse_wait_s(local_clock())
        if wait_s > 0:  # the guard refuses earlier pulses: wait them out
            time.sleep(wait_s)
        unchanged = (type(intensity_percent) is int
                     and intensity_percent == self._intensity_percent)
        if not unchanged:  # the driver validates what it is given
            if stimulator.abilities.separate_outputs:
                # a BiStim fires output B too whenever it is set: a single pulse is A alone
                stimulator.set_intensity(intensity_percent, 0)
            else:
                stimulator.set_intensity(intensity_percent)
            self._intensity_percent = intensity_percent
        stimulator.prepare_single_pulses()
        if not stimulator.status().armed:
            stimulator.arm()
        stimulator.wait_ready()

    def paired_pulse(self, conditioning_percent: int, test_percent: int,
                     ipi_ms: float) -> MEPTrial:
        """Fire one paired pulse on a BiStim (A = conditioning, B = test); measure the test MEP.

        A conditioning intensity of 0 fires the test pulse alone (output B) after the same
        delay. The returned trial's ``pulse`` is the *test* pulse (the marker's time plus
        ``ipi_ms``), so the MEP window counts from it. Same spacing as :meth:`pulse`.

        Raises
        ------
        ConfigError
            When the stimulator cannot deliver paired pulses (needs ``set_ipi``).
        """
        stimulator = self.stimulator
        abilities = stimulator.abilities
        if not (abilities.paired_pulse and abilities.separate_outputs):
            raise ConfigError(f"{abilities.model} cannot deliver paired pulses with their own "
                              "conditioning and test intensities (needs a BiStim²)",
                              field="stimulator.model")
        wait_s = self.guard.single_pulse_wait_s(local_clock())
        if wait_s > 0:  # the guard refuses earlier pulses: wait them out
            time.sleep(wait_s)
        fractional = not float(ipi_ms).is_integer()
        switch = fractional != bool(stimulator.high_resolution) and (fractional or ipi_ms > 99.9)
        if switch and stimulator.status().armed:
            stimulator.disarm()  # the unit refuses a change of IPI resolution while armed
        stimulator.set_intensity(conditioning_percent, test_percent)
        self._intensity_percent = None  # output A changed: the next pulse() sets it again
        stimulator.set_ipi(ipi_ms if fractional else int(ipi_ms))
        if not stimulator.status().armed:
            stimulator.arm()
        stimulator.wait_ready()
        pulse = stimulator.fire()
        test = dataclasses.replace(pulse, time_s=pulse.time_s + float(ipi_ms) / 1000.0)
        return self.mep_meter.measure(test)

    def close(self) -> None:
        """Disarm and disconnect everything, then stop the simulated hardware."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        nav_close = [] if self.navigation is None else [self.navigation.close]
        for step in (self.stimulator.close, *nav_close, *self._stream_closers(),
                     self.markers.close):
            try:
                step()
            except Exception as exc:  # close everything, report the first failure
                errors.append(exc)
        if self.hardware is not None:
            self.hardware.close()
        if errors:
            raise LabkitError(f"closing the rig failed: {errors[0]}") from errors[0]

    def _stream_closers(self) -> list:
        return [s.disconnect for s in (self.emg, self.eeg) if s is not None and s.connected]

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "simulated" if self.simulated else "hardware"
        return f"<Rig {self.profile.rig.name!r} ({kind}): {type(self.stimulator).__name__}>"


def open_rig(
    profile: str | os.PathLike | DeviceProfile = "simulated",
    *,
    seed: int | None = None,
    connect: bool = True,
    session: Any = None,
    sim_process: str | None = None,
) -> Rig:
    """Open the rig described by a device profile.

    Parameters
    ----------
    profile : str, path-like or DeviceProfile
        Profile name (looked up in the lab folders on ``$LABKIT_PATH``, the user's
        labkit folder, then the profiles shipped with labkit; see
        :func:`labkit.profiles.load_profile`), path to a TOML file, or a loaded profile.
    seed : int | None
        Seed of the virtual subject (simulated rigs); defaults to the profile's.
    connect : bool
        Connect the stimulator (take remote control) right away.
    session : Session | None
        Record into this session (see :meth:`Rig.use_session`).
    sim_process : {"inline", "child"} | None
        Simulated rigs: run the simulated lab in this process, or in a child process
        reached over a pseudo-terminal and LSL like real hardware (stopped by
        :meth:`Rig.close`, killed with this process). Default: ``$LABKIT_SIM_PROCESS``,
        else the profile's ``[simulation] process``.

    Returns
    -------
    Rig
        The opened rig; close it with :meth:`Rig.close` or use it as a context manager.
        While ``LABKIT_REPLAY`` names a recorded session, a rig served from it
        (:mod:`labkit.replay`).
    """
    from labkit.streams import connect_stream

    if not isinstance(profile, DeviceProfile):
        profile = load_profile(profile)
    if os.environ.get(REPLAY_ENV):
        return _replay_factory()(profile, seed=seed, connect=connect, session=session,
                                 source=os.environ[REPLAY_ENV])
    hardware = None
    port = profile.stimulator.port
    emg_section, eeg_section = profile.streams.emg, profile.streams.eeg
    marker_name = profile.streams.markers.name
    marker_source = profile.streams.markers.source_id
    if profile.rig.simulated:
        options = {} if sim_process is None else {"process": sim_process}
        hardware = _simulation_factory()(profile, seed=seed, **options)
        port = hardware.port
        emg_section, eeg_section = hardware.emg_stream, hardware.eeg_stream
        marker_name, marker_source = hardware.marker_stream.name, hardware.marker_stream.source_id
    markers = stimulator = emg = eeg = navigation = None
    step = "markers"
    try:
        markers = PulseMarkerOutlet(marker_name, marker_source)
        spec = model_spec(profile.stimulator.model)
        driver = driver_class(profile.stimulator.model)
        options: dict[str, Any] = {"timeout_s": profile.stimulator.timeout_s, "markers": markers,
                                   **spec.driver_options}
        if profile.stimulator.unlock_code is not None:
            options["unlock_code"] = profile.stimulator.unlock_code
        stimulator = driver(port, **options)
        step = "emg"
        # a simulator in another process explains a silent link (exited, stopped, behind)
        stimulator.link_diagnosis = getattr(hardware, "diagnose", None)
        # ... and may answer late on a loaded machine while it runs
        stimulator.link_alive = getattr(hardware, "runs", None)
        stimulator.link_grace_s = getattr(hardware, "grace_s", 0.0)
        emg = connect_stream(emg_section.name, source_id=emg_section.source_id,
                             picks=emg_section.picks)
        if eeg_section is not None:
            step = "eeg"
            eeg = connect_stream(eeg_section.name, source_id=eeg_section.source_id,
                                 picks=eeg_section.picks)
        if connect:
            step = "stimulator"
            stimulator.connect()
        if profile.stimulator.trigger is not None:
            step = "trigger"
            _wire_trigger(profile, stimulator, connected=connect)
        if profile.navigation is not None:
            step = "navigation"
            navigation = _open_navigation(profile, hardware)
    except BaseException as exc:
        if navigation is not None:
            navigation.close()
        for stream in (emg, eeg):
            if stream is not None and stream.connected:
                stream.disconnect()
        if stimulator is not None:
            stimulator.close()
        if hardware is not None:
            hardware.close()
        better = None
        if isinstance(exc, Exception) and not profile.rig.simulated:
            from labkit.check import explain_open_failure

            better = explain_open_failure(profile, step, exc)
        if better is not None:
            raise better from exc
        raise
    rig = Rig(profile, stimulator, emg, markers, eeg=eeg, hardware=hardware,
              navigation=navigation)
    if session is not None:
        rig.use_session(session)
    return rig


def _wire_trigger(profile: DeviceProfile, stimulator: Stimulator, *, connected: bool) -> None:
    """Fire ``stimulator`` through the TTL line of the profile's ``[stimulator.trigger]``."""
    from labkit.stimulators.trigger import open_trigger_line

    section = profile.stimulator.trigger
    if section.port is None and section.line != "parallel" and not connected:
        raise ConfigError(
            f"the {section.line.upper()} line of the stimulator's own port is wired when "
            "the rig connects: open the rig with connect=True (or give the line its own "
            "port)", field="stimulator.trigger.port",
            file=str(profile.path) if profile.path else None)
    stimulator.use_trigger(open_trigger_line(section, stimulator), close_with_unit=True)


def _open_navigation(profile: DeviceProfile, hardware: Any) -> Any:
    """Connect the navigator the profile's ``[navigation]`` names (a simulated rig's
    emulator listens on a free port of its own) and wait for its first pose."""
    from labkit.navigation.setup import RigNavigation, navigation_from_profile

    address = None if hardware is None else hardware.navigation_address
    client, gate, hold_timeout_s = navigation_from_profile(profile, address)
    client.connect()
    try:
        client.wait_for_pose()
    except BaseException:
        client.close()
        raise
    return RigNavigation(client, gate, hold_timeout_s)
