"""Device profiles: one TOML file per rig (``devices/<name>.toml``).

A profile names the stimulator model and its port, the LSL streams to bind (by name and
``source_id``), the channels to analyse, the MEP window and the session limits. Loading
validates everything and reports problems with the file, the field and what is allowed.

Profiles are given by path or by name. Names are looked up in the ``devices/`` folder of
each lab folder on ``$LABKIT_PATH``, then of the user's labkit folder, then among the
profiles shipped in the package (``labkit/data/devices``); see :mod:`labkit.search_path`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labkit import search_path
from labkit.config_files import read_toml, validation_error
from labkit.errors import ConfigError
from labkit.stimulators.registry import MODELS

#: Stimulator models a profile may name (the vendor registry), mapped to the driver class.
STIMULATOR_MODELS: dict[str, str] = {key: spec.driver for key, spec in MODELS.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RigSection(_Strict):
    """``[rig]``: what this rig is."""

    name: str = Field(min_length=1)
    description: str = ""
    simulated: bool = False


class TriggerSection(_Strict):
    """``[stimulator.trigger]``: a TTL line cabled to the unit's trigger input.

    With it, every pulse is fired by the line's edge (lower and steadier latency than a
    serial command); intensity, arming and status still go over the serial port.
    """

    line: Literal["rts", "dtr", "parallel"] = Field(
        description="'rts'/'dtr': a modem line of a serial port; 'parallel': a data bit "
                    "of a parallel port")
    port: str | None = Field(
        default=None, min_length=1,
        description="device of the line; for rts/dtr default the stimulator's own port "
                    "(MagPy's quickFire cabling); required for 'parallel'")
    bit: int = Field(default=0, ge=0, le=7, description="parallel-port data bit")
    width_ms: float = Field(default=1.0, gt=0, le=100, description="pulse width, ms")

    @model_validator(mode="after")
    def _port_for_parallel(self) -> TriggerSection:
        if self.line == "parallel" and self.port is None:
            raise ValueError("a 'parallel' trigger line needs its port "
                             "(e.g. port = \"/dev/parport0\")")
        return self


class StimulatorSection(_Strict):
    """``[stimulator]``: the model and how to reach it."""

    model: Literal[tuple(STIMULATOR_MODELS)]  # type: ignore[valid-type]
    port: str = Field(min_length=1, description="device path, pyserial URL, or 'sim'")
    timeout_s: float = Field(default=0.5, gt=0, le=10)
    unlock_code: str | None = None
    serial: str | None = Field(default=None, min_length=1,
                               description="the unit's serial number (for the session record)")
    coil: str | None = Field(default=None, min_length=1,
                             description="the coil in use, e.g. 'D70 Alpha' (for the record)")
    trigger: TriggerSection | None = None


class StreamSection(_Strict):
    """``[streams.<kind>]``: an LSL stream bound by name and source id."""

    name: str = Field(min_length=1)
    source_id: str | None = None
    type: str | None = None
    picks: list[str] | None = None


class StreamsSection(_Strict):
    """``[streams]``: EMG is required; EEG optional; markers is the pulse outlet."""

    emg: StreamSection
    eeg: StreamSection | None = None
    markers: StreamSection = StreamSection(name="labkit-pulses")


class MEPSection(_Strict):
    """``[mep]``: how MEPs are measured on this rig."""

    channel: str = Field(min_length=1)
    window_ms: tuple[float, float] = (15.0, 50.0)
    background_limit_uv: float = Field(default=10.0, gt=0, le=1000,
                                       description="highest pre-stimulus RMS at rest")
    criterion_uv: float = Field(default=50.0, gt=0, le=10000)

    @field_validator("window_ms")
    @classmethod
    def _window_ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        start, stop = value
        if not 0 <= start < stop <= 500:
            raise ValueError("must be [start, stop] with 0 <= start < stop <= 500 ms")
        return value


class LimitsSection(_Strict):
    """``[limits]``: what every pulse of this rig obeys (the rig's firing guard).

    A lab may set any of them stricter than published; looser values are refused by the
    safety check unless a ``SafetyOverride`` is recorded.
    """

    max_pulses_per_session: int = Field(default=3000, ge=1, le=10000)
    max_intensity_percent: int = Field(default=100, ge=1, le=100)
    max_intensity_rmt_percent: float = Field(default=130.0, ge=1, le=200)
    min_single_pulse_interval_s: float = Field(
        default=4.0, ge=0.1, le=600, description="shortest time between single pulses")
    min_inter_train_interval_s: float = Field(default=5.0, ge=0, le=3600)
    table: str | None = Field(default=None, description="a stricter train-duration table "
                              "(TOML, path relative to the profile)")


class SimulationSection(_Strict):
    """``[simulation]``: the virtual subject of a simulated rig."""

    seed: int = Field(default=0, ge=0)
    emulator: Literal[tuple(STIMULATOR_MODELS)] | None = None  # type: ignore[valid-type]
    emg_noise_uv: float = Field(default=0.5, ge=0, le=100)
    emg_latency_ms: float = Field(default=20.0, ge=1, le=200)
    discharge_delay_ms: float = Field(
        default=0.0, ge=0, le=100,
        description="the simulated unit's command -> discharge time (a real one adds its "
                    "processing and the command's time on the wire)")
    eeg: bool = False
    process: Literal["inline", "child"] = Field(
        default="child",
        description="run the simulated lab in this process or in a child process reached "
                    "over a pty and LSL like real hardware ($LABKIT_SIM_PROCESS overrides)")


class NavigationSection(_Strict):
    """``[navigation]``: the neuronavigation system (Localite TMS Navigator, TCP/JSON)."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=6666, ge=1, le=65535)
    coil: Literal[0, 1] = 0
    max_pose_age_s: float = Field(default=0.5, gt=0, le=60,
                                  description="older poses are not logged as a pulse's pose")
    gate: bool = Field(default=False, description="hold firing until the coil is on target")
    max_distance_mm: float = Field(default=3.0, gt=0, le=100)
    max_rotation_deg: float = Field(default=10.0, gt=0, le=180)
    max_tilt_deg: float = Field(default=10.0, gt=0, le=90)
    hold_timeout_s: float = Field(default=30.0, gt=0, le=3600)


class DeviceProfile(_Strict):
    """A validated device profile."""

    rig: RigSection
    stimulator: StimulatorSection
    streams: StreamsSection
    mep: MEPSection
    limits: LimitsSection = LimitsSection()
    simulation: SimulationSection | None = None
    navigation: NavigationSection | None = None
    path: Path | None = None

    @model_validator(mode="after")
    def _simulation_consistent(self) -> DeviceProfile:
        if self.rig.simulated and self.simulation is None:
            raise ValueError("a simulated rig needs a [simulation] section")
        if self.stimulator.port == "sim" and not self.rig.simulated:
            raise ValueError("port 'sim' is only allowed when rig.simulated = true")
        if not self.rig.simulated:
            # bound by name + source_id: a same-named outlet elsewhere on the lab network
            # can then never be taken for the amplifier
            for kind in ("emg", "eeg"):
                section = getattr(self.streams, kind)
                if section is not None and not section.source_id:
                    raise ValueError(f"streams.{kind}.source_id is required on a hardware rig "
                                     "(the amplifier's LSL source id, e.g. "
                                     "'BrainAmpSeries-Dev_1')")
        return self

    @property
    def driver_name(self) -> str:
        """Class name of the driver for :attr:`StimulatorSection.model`."""
        return STIMULATOR_MODELS[self.stimulator.model]


def devices_dir() -> Path:
    """Folder of the profiles shipped with labkit (a package resource)."""
    return search_path.shipped_dir("devices")


def list_profiles() -> list[str]:
    """Names of every profile on the search path (lab folders and shipped), sorted."""
    return search_path.available("devices")


def resolve_profile_path(profile: str | os.PathLike) -> Path:
    """Turn a profile name (``"simulated"``) or path into an existing file path.

    Raises
    ------
    ConfigError
        No such file; for a name, the message lists the folders searched and the profiles
        available.
    """
    return search_path.find(profile, "devices", "device profile")


def load_profile(profile: str | os.PathLike = "simulated") -> DeviceProfile:
    """Load and validate a device profile.

    Parameters
    ----------
    profile : str or path-like
        A path to a TOML file, or a profile name (``"simulated"``, ``"magstim-200"``...)
        looked up as ``devices/<name>.toml`` in each folder of ``$LABKIT_PATH``
        (``os.pathsep``-separated), then in the user's labkit folder
        (``~/.config/labkit`` on Linux), then among the profiles shipped with labkit;
        the first match is used (:mod:`labkit.search_path`).

    Returns
    -------
    DeviceProfile
        The validated profile.

    Raises
    ------
    ConfigError
        The file is missing (for a name: the folders searched and the names available),
        is not TOML, or a field is invalid; the message names the file, the field and
        what is allowed.
    """
    path = resolve_profile_path(profile)
    raw = read_toml(path)
    if "path" in raw:
        raise ConfigError("'path' is set by the loader, not by the file", file=str(path),
                          field="path")
    try:
        return DeviceProfile.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise validation_error(exc, str(path), "device profile") from None
