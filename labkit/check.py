"""Check a rig before the subject arrives: ``python -m labkit.check PROFILE``.

For one device profile it loads the file, lists the LSL streams visible on the network
against the ones the profile binds (name, ``source_id``, type, channels), probes the
stimulator's serial port (it exists, you may open it, the unit answers as the model the
profile names, its software version) and the navigation link when one is configured.
Every problem comes with what to edit: the profile file and the field. A simulated
profile starts its simulated hardware and is checked the same way.

``python -m labkit.check --streams`` only lists the visible LSL streams: how to find an
amplifier's name and ``source_id`` for a profile. The exit status is 1 when a check
failed, 0 otherwise.

Nothing here arms or fires: the stimulator is connected (remote control taken), asked
for its status and released again.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import serial

from labkit.errors import ConfigError, LabkitError, StimulatorError, StreamError
from labkit.profiles import DeviceProfile, StreamSection, load_profile
from labkit.protocols import Protocol
from labkit.stimulators.registry import MODELS, driver_class, model_spec
from labkit.streams import VisibleStream, list_streams

__all__ = ["CheckReport", "Finding", "check_profile", "explain_open_failure", "main",
           "protocol_stimulators", "serial_ports"]

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One checked item.

    Attributes
    ----------
    level : {"ok", "warn", "fail"}
        ``fail`` stops a session; ``warn`` is worth fixing.
    item : str
        What was checked (``"EMG stream"``, ``"stimulator port"``...).
    message : str
        What was found.
    fix : str | None
        What to edit, naming the profile file and field.
    """

    level: Level
    item: str
    message: str
    fix: str | None = None

    def describe(self) -> str:
        """Two lines at most: the verdict and what to fix."""
        text = f"{self.level.upper():<5} {self.item}: {self.message}"
        if self.fix:
            text += f"\n      fix: {self.fix}"
        return text


@dataclass
class CheckReport:
    """What :func:`check_profile` found.

    Attributes
    ----------
    profile : str
        The profile file (or name, when it could not be read).
    findings : list of Finding
        One per checked item, in order.
    streams : list of VisibleStream
        The LSL streams visible during the check.
    """

    profile: str
    findings: list[Finding] = field(default_factory=list)
    streams: list[VisibleStream] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return not self.problems

    @property
    def problems(self) -> list[Finding]:
        """The failed items."""
        return [f for f in self.findings if f.level == "fail"]

    def summary(self) -> str:
        """The findings, the visible streams and the verdict, as text."""
        lines = [f"Checking {self.profile}"]
        lines += ["  " + f.describe().replace("\n", "\n  ") for f in self.findings]
        lines.append(describe_streams(self.streams))
        n = len(self.problems)
        lines.append("ready: every check passed" if not n else
                     f"{n} problem{'s' if n > 1 else ''}: fix {'them' if n > 1 else 'it'} "
                     "before the subject arrives")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def describe_streams(streams: list[VisibleStream]) -> str:
    """The visible streams, one per line (``"none"`` when there are none)."""
    if not streams:
        return ("Visible LSL streams: none (is the amplifier's LSL app running, on this "
                "network?)")
    return "\n".join([f"Visible LSL streams ({len(streams)}):",
                      *(f"  {s.describe()}" for s in streams)])


def serial_ports() -> list[str]:
    """Serial ports present, ``"/dev/ttyUSB0 (FTDI USB Serial)"``; stable by-id names too."""
    from serial.tools import list_ports

    found = [f"{p.device} ({p.description})" if p.description and p.description != "n/a"
             else p.device for p in list_ports.comports()]
    by_id = Path("/dev/serial/by-id")
    if by_id.is_dir():
        found += [f"{p} -> {os.path.realpath(p)}" for p in sorted(by_id.iterdir())]
    return found


def _where(profile: DeviceProfile | None, name: str | None = None) -> str:
    if profile is not None and profile.path is not None:
        return str(profile.path)
    return f"the device profile {name!r}" if name else "the device profile"


# ------------------------------------------------------------------------------ streams
def _stream_finding(kind: str, section: StreamSection, streams: list[VisibleStream],
                    where: str, *, mep_channel: str | None = None) -> Finding:
    label = f"{kind.upper()} stream"
    table = f"[streams.{kind}]"
    same = [s for s in streams if s.name == section.name]
    if not same:
        typed = [s for s in streams if section.type and s.type == section.type]
        hint = (" Visible streams of type " + repr(section.type) + ": "
                + "; ".join(f"name={s.name!r} source_id={s.source_id!r}" for s in typed)
                if typed else "")
        return Finding("fail", label, f"no LSL stream named {section.name!r} is visible.{hint}",
                       f"{where}: {table} name and source_id = your amplifier's stream "
                       "(see the visible streams below; is its LSL app running?)")
    if len(same) > 1:
        ids = ", ".join(f"{s.source_id!r} on {s.host!r}" for s in same)
        return Finding("fail", label, f"{len(same)} streams are named {section.name!r} "
                       f"({ids}); labkit refuses to bind an ambiguous name (possible spoofing)",
                       f"stop the other outlet, or rename it; keep {where}: {table} "
                       "source_id set")
    found = same[0]
    if section.source_id is not None and found.source_id != section.source_id:
        return Finding("fail", label, f"stream {section.name!r} has source_id "
                       f"{found.source_id!r} (host {found.host!r}), the profile expects "
                       f"{section.source_id!r}",
                       f"{where}: {table} source_id = {found.source_id!r} if this is your "
                       "amplifier")
    if section.type is not None and found.type != section.type:
        return Finding("fail", label, f"stream {section.name!r} has type {found.type!r}, the "
                       f"profile expects {section.type!r}",
                       f"{where}: {table} type = {found.type!r} if this is your amplifier")
    channels = found.channel_labels()
    wanted = list(section.picks or [])
    if mep_channel is not None and mep_channel not in wanted:
        wanted.append(mep_channel)
    missing = [c for c in wanted if channels is not None and c not in channels]
    if missing:
        field_name = f"{table} picks" + (" / [mep] channel" if mep_channel in missing else "")
        return Finding("fail", label, f"stream {section.name!r} has no channel(s) {missing}; "
                       f"its channels: {channels}",
                       f"{where}: {field_name} = channel names the stream has")
    text = (f"{section.name!r} found: source_id {found.source_id!r}, host {found.host!r}, "
            f"{found.sfreq:g} Hz, {found.n_channels} channels")
    if section.source_id is None:
        return Finding("warn", label, text + "; bound by name only",
                       f"{where}: {table} source_id = {found.source_id!r} (so that another "
                       "outlet with the same name is refused)")
    return Finding("ok", label, text)


# ------------------------------------------------------------------------------ stimulator
def _port_finding(port: str, where: str) -> Finding | None:
    """Existence and permissions of a device path (``None``: nothing wrong found)."""
    if "://" in port or os.name != "posix":
        return None
    if not os.path.exists(port):
        ports = serial_ports()
        listing = "; ".join(ports) if ports else "none found (is the USB-serial adapter in?)"
        return Finding("fail", "stimulator port", f"serial port {port!r} does not exist. "
                       f"Serial ports present: {listing}",
                       f"{where}: [stimulator] port = the unit's port (a /dev/serial/by-id "
                       "name stays the same across reboots)")
    if not os.access(port, os.R_OK | os.W_OK):
        try:
            import grp

            group = grp.getgrgid(os.stat(port).st_gid).gr_name
        except (ImportError, KeyError, OSError):
            group = "dialout"
        return Finding("fail", "stimulator port", f"no permission to open {port!r} (it belongs "
                       f"to group {group!r})",
                       f"sudo usermod -aG {group} $USER, then log out and in again")
    return None


def _stimulator_finding(profile: DeviceProfile, port: str, where: str) -> Finding:
    section = profile.stimulator
    spec = model_spec(section.model)
    problem = _port_finding(port, where)
    if problem is not None:
        return problem
    options: dict[str, Any] = {"timeout_s": section.timeout_s, "keepalive": False,
                               **spec.driver_options}
    if section.unlock_code is not None:
        options["unlock_code"] = section.unlock_code
    try:
        stim = driver_class(section.model)(port, **options)
        with stim:
            status = stim.status()
            version = getattr(stim, "software_version", None)
            if version is None and callable(getattr(stim, "version", None)):
                try:
                    version = stim.version()
                except StimulatorError:  # an old unit may not know the command
                    version = None
    except StimulatorError as exc:
        return Finding("fail", "stimulator", str(exc),
                       f"{where}: [stimulator] port and model; the unit on, its cable in")
    except serial.SerialException as exc:
        return Finding("fail", "stimulator port", f"cannot open {port!r}: {exc}",
                       f"{where}: [stimulator] port")
    firmware = ".".join(str(v) for v in version) if isinstance(version, tuple) else version
    facts = [f"software {firmware}" if firmware is not None else "no software version read"]
    for name in ("coil_present", "error"):
        value = getattr(status, name, None)
        if name == "coil_present" and value is False:
            return Finding("fail", "stimulator", f"{spec.abilities.model} on {port!r} answered "
                           "but reports no coil connected", "connect the coil")
        if name == "error" and value:
            facts.append("the unit reports an error (see its display)")
    return Finding("ok", "stimulator", f"{spec.abilities.model} answered on {port!r} "
                   f"({', '.join(facts)}); released again, nothing armed")


def _navigation_finding(profile: DeviceProfile, where: str) -> Finding | None:
    nav = profile.navigation
    if nav is None:
        return None
    try:
        with socket.create_connection((nav.host, nav.port), timeout=2.0):
            pass
    except OSError as exc:
        return Finding("fail", "navigation", f"cannot reach the navigator at "
                       f"{nav.host}:{nav.port}: {exc}",
                       f"{where}: [navigation] host/port; is TMS Navigator running with its "
                       "remote (JSON) interface on?")
    return Finding("ok", "navigation", f"navigator answers at {nav.host}:{nav.port}")


# ------------------------------------------------------------------------------ entry points
def check_profile(profile: str | os.PathLike | DeviceProfile, *, wait_s: float = 1.0,
                  stimulator: bool = True) -> CheckReport:
    """Check a profile's connections: streams, stimulator port and unit, navigation.

    Parameters
    ----------
    profile : str, path-like or DeviceProfile
        Profile name (found on the search path: ``$LABKIT_PATH``, the user's labkit
        folder, the shipped profiles; see :func:`labkit.profiles.load_profile`), path to
        a TOML file, or a loaded profile.
    wait_s : float
        How long to listen for LSL streams, s.
    stimulator : bool
        Also open the port and ask the unit for its status (it is not armed).

    Returns
    -------
    CheckReport
        Its :attr:`~CheckReport.ok` is False when something must be fixed.
    """
    name = str(profile) if not isinstance(profile, DeviceProfile) else profile.rig.name
    try:
        loaded = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    except ConfigError as exc:
        report = CheckReport(name)
        report.findings.append(Finding("fail", "profile", str(exc),
                                       f"{exc.file or name}: {exc.field or 'the file'}"))
        return report
    where = _where(loaded, name)
    report = CheckReport(where)
    report.findings.append(Finding("ok", "profile", f"{loaded.rig.name!r} "
                                   f"({loaded.rig.description or loaded.stimulator.model})"))
    package = Path(__file__).resolve().parent
    if (not loaded.rig.simulated and loaded.path is not None
            and package in Path(loaded.path).resolve().parents):
        report.findings.append(Finding(
            "warn", "profile", "this profile ships with labkit: edit a copy of it, not the "
            "file itself (an update of labkit would replace it)",
            f"copy {loaded.path} to ~/.config/labkit/devices/<your-rig>.toml (or a "
            "LABKIT_PATH folder's devices/) and check that name"))
    hardware = None
    port = loaded.stimulator.port
    emg, eeg = loaded.streams.emg, loaded.streams.eeg
    try:
        if loaded.rig.simulated:
            from labkit.rig import _simulation_factory

            hardware = _simulation_factory()(loaded)
            port, emg, eeg = hardware.port, hardware.emg_stream, hardware.eeg_stream
            report.findings.append(Finding("ok", "simulation", "simulated hardware started "
                                           "(emulator, virtual subject, LSL amplifier)"))
        report.streams = list_streams(wait_s)
        report.findings.append(_stream_finding("emg", emg, report.streams, where,
                                               mep_channel=loaded.mep.channel))
        if eeg is not None:
            report.findings.append(_stream_finding("eeg", eeg, report.streams, where))
        if not loaded.rig.simulated:
            clash = [s for s in report.streams if s.name == loaded.streams.markers.name]
            if clash:
                report.findings.append(Finding(
                    "warn", "pulse markers", f"another program already publishes a stream "
                    f"named {loaded.streams.markers.name!r} ({clash[0].describe()})",
                    f"{where}: [streams.markers] name = a name of this rig's own"))
        if stimulator:
            report.findings.append(_stimulator_finding(loaded, port, where))
        nav = _navigation_finding(loaded, where)
        if nav is not None:
            report.findings.append(nav)
    finally:
        if hardware is not None:
            hardware.close()
    return report


def explain_open_failure(profile: DeviceProfile, kind: str, exc: BaseException,
                         *, wait_s: float = 1.0) -> LabkitError | None:
    """A clearer error for :func:`labkit.open_rig` when a stream or the port fails.

    Parameters
    ----------
    profile : DeviceProfile
        The profile being opened.
    kind : {"emg", "eeg", "stimulator"}
        What failed.
    exc : BaseException
        The original error.
    wait_s : float
        How long to listen for the visible streams, s.

    Returns
    -------
    LabkitError | None
        The error to raise instead (the original is its cause), or ``None`` to keep it.
    """
    where = _where(profile)
    if kind in ("emg", "eeg") and isinstance(exc, StreamError):
        listing = describe_streams(list_streams(wait_s))
        return StreamError(f"{where}: [streams.{kind}] {exc}. {listing}\nEdit name and "
                           f"source_id under [streams.{kind}] in {where} to your amplifier's "
                           f"stream (python -m labkit.check {profile.rig.name} checks the "
                           "whole rig)")
    if kind == "stimulator":
        if isinstance(exc, serial.SerialException):
            ports = "; ".join(serial_ports()) or "none found"
            return StimulatorError(f"{where}: [stimulator] port: cannot open "
                                   f"{profile.stimulator.port!r}: {exc}. Serial ports "
                                   f"present: {ports} (python -m labkit.check "
                                   f"{profile.rig.name} checks the whole rig)")
    return None


def protocol_stimulators(protocol: Protocol) -> dict[str, int | None]:
    """Which stimulator models can deliver ``protocol``, from the vendor registry.

    Returns
    -------
    dict
        Model key → the highest intensity, % MSO, at which the model's rate ceiling
        allows the protocol's fastest rate (``None``: it cannot deliver it at all).
    """
    t = protocol.timing
    fastest_hz = max(t.frequency_hz, t.intra_burst_frequency_hz or 0.0)
    out: dict[str, int | None] = {}
    for key, spec in MODELS.items():
        abilities = spec.abilities
        if not abilities.repetitive:
            out[key] = None
            continue
        able = [p for p in range(1, 101) if abilities.max_rate_hz(p) + 1e-9 >= fastest_hz]
        out[key] = max(able) if able else None
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.check [PROFILE] [--streams]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m labkit.check",
        description="Check a rig's connections before a session (nothing is armed).")
    parser.add_argument("profile", nargs="?", help="profile name in devices/ or a TOML path")
    parser.add_argument("--streams", action="store_true",
                        help="list the visible LSL streams (name, type, source_id, host)")
    parser.add_argument("--wait", type=float, default=1.0, metavar="S",
                        help="how long to listen for LSL streams (default 1 s)")
    parser.add_argument("--no-stimulator", action="store_true",
                        help="do not open the serial port")
    args = parser.parse_args(argv)
    if args.profile is None:
        if not args.streams:
            parser.error("name a profile, or --streams to list the visible LSL streams")
        print(describe_streams(list_streams(args.wait)))
        return 0
    report = check_profile(args.profile, wait_s=args.wait, stimulator=not args.no_stimulator)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in the tests
    sys.exit(main())
