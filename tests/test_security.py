"""Security: streams bound by name + source_id, spoofing outlets refused, no network path
to the stimulator, `make lab` on localhost with a token.

Pseudonymous subject ids are tested in tests/test_session.py
(::test_personal_data_in_subject_id_is_refused, ::test_session_refuses_personal_data);
a spoofed stream at recording time in tests/test_recording.py
(::test_second_stream_with_same_name_is_refused).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pylsl
import pytest

import labkit.sim  # noqa: F401 - registers the labkitsim:// URL scheme
from labkit.errors import StreamError
from labkit.profiles import DeviceProfile, devices_dir
from labkit.rig import open_rig
from labkit.sim.magstim_emulator import MagstimEmulator

REPO = Path(__file__).resolve().parents[1]
LABKIT = REPO / "labkit"


def _emg_outlet(name: str, source_id: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", 2, 1000.0, pylsl.cf_float32, source_id)
    channels = info.desc().append_child("channels")
    for label in ("FDI", "APB"):
        channels.append_child("channel").append_child_value("label", label)
    return pylsl.StreamOutlet(info)


def _hardware_profile(port: str, emg_name: str, emg_source: str) -> DeviceProfile:
    """devices/magstim-200.toml with the port and EMG stream pointed at this test's."""
    raw = tomllib.loads((devices_dir() / "magstim-200.toml").read_text("utf-8"))
    raw["stimulator"]["port"] = port
    raw["streams"]["emg"].update(name=emg_name, source_id=emg_source)
    raw["streams"]["markers"]["name"] = f"sec-markers-{uuid.uuid4().hex[:8]}"
    return DeviceProfile.model_validate(raw)


@pytest.fixture
def emulator():
    emu = MagstimEmulator("200", pty=False)
    yield emu
    emu.stop()


# -- streams bound by name + source_id -------------------------------------------------
def test_open_rig_binds_the_profile_stream_by_name_and_source_id(emulator):
    name, source = f"sec-emg-{uuid.uuid4().hex[:8]}", f"amp-{uuid.uuid4().hex}"
    outlet = _emg_outlet(name, source)
    with open_rig(_hardware_profile(emulator.url, name, source)) as rig:
        assert rig.emg.name == name and rig.emg.source_id == source
        assert not rig.simulated and rig.stimulator.connected
    del outlet


def test_spoofing_outlet_with_the_same_name_is_refused_and_nothing_is_armed(emulator):
    name, source = f"sec-emg-{uuid.uuid4().hex[:8]}", f"amp-{uuid.uuid4().hex}"
    genuine = _emg_outlet(name, source)
    spoof = _emg_outlet(name, f"attacker-{uuid.uuid4().hex}")
    with pytest.raises(StreamError) as info:
        open_rig(_hardware_profile(emulator.url, name, source))
    message = str(info.value)
    assert f"2 LSL streams are named {name!r} (possible spoofing outlet)" in message
    assert source in message and "attacker-" in message  # both listed by source_id
    assert not emulator.remote_control and not emulator.armed
    assert not any(m[:2] == b"EB" for m in emulator.received)
    del genuine, spoof


def test_a_lone_impostor_with_another_source_id_is_refused(emulator):
    name, source = f"sec-emg-{uuid.uuid4().hex[:8]}", f"amp-{uuid.uuid4().hex}"
    impostor = _emg_outlet(name, f"attacker-{uuid.uuid4().hex}")
    with pytest.raises(StreamError, match=rf"has source_id 'attacker-.*expected {source!r}; "
                                          r"refusing to bind"):
        open_rig(_hardware_profile(emulator.url, name, source))
    assert not emulator.armed
    del impostor


def test_shipped_hardware_profiles_name_a_source_id_for_every_data_stream():
    for path in sorted(devices_dir().glob("*.toml")):
        raw = tomllib.loads(path.read_text("utf-8"))
        if raw["rig"].get("simulated"):
            continue
        for kind in ("emg", "eeg"):
            section = raw["streams"].get(kind)
            if section is not None:
                assert section.get("source_id"), f"{path.name}: streams.{kind}.source_id"


def test_hardware_profile_without_a_source_id_is_refused(tmp_path):
    from labkit.errors import ConfigError
    from labkit.profiles import load_profile

    text = (devices_dir() / "magstim-200.toml").read_text("utf-8")
    path = tmp_path / "rig.toml"
    path.write_text(text.replace('source_id = "BrainAmpSeries-Dev_1"\n', ""))
    with pytest.raises(ConfigError, match=r"streams\.emg\.source_id is required on a hardware"):
        load_profile(path)


# -- no network path to the stimulator -------------------------------------------------
COMMANDS = ["fire", "FIRE", "EH", "EB", "arm", "pulse 100", "@100",
            json.dumps({"command": "fire", "intensity_percent": 100}),
            json.dumps({"time_s": 0.0, "intensity_percent": 100, "device": "Magstim",
                        "index": 0})]


def test_lsl_strings_that_look_like_commands_never_fire_an_open_rig():
    with open_rig("simulated") as rig:
        emulator = rig.hardware.emulator
        names = [rig.hardware.marker_stream.name, "labkit-commands", "labkit-sim-pulses",
                 rig.hardware.emg_stream.name]
        outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(
            n, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, uuid.uuid4().hex))
            for n in names]
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for outlet in outlets:
                for command in COMMANDS:
                    outlet.push_sample([command])
            time.sleep(0.05)
        time.sleep(0.3)
        assert emulator.pulses_delivered == 0
        assert not emulator.armed
        assert not any(m[:1] in (b"E", b"@") and m[:2] != b"EA" for m in emulator.received)
        del outlets


#: Modules that may trigger the stimulator (call .fire/.fire_train/.start_train).
FIRE_ALLOWED = {
    "labkit/rig.py",                        # Rig.pulse: an explicit call in the notebook
    "labkit/runner.py",                     # ProtocolRunner: an explicitly started run
    "labkit/closedloop/controller.py",      # the explicitly started closed-loop controller
    "labkit/widgets/stimulator_panel.py",   # the Fire button
    "labkit/widgets/threshold_hunter.py",   # the threshold hunter's Fire button
}
#: Driver methods that make the unit discharge.
TRIGGERS = ("fire", "fire_train", "start_train", "deliver_train")
#: Names that read from an LSL inlet (network input).
INLET_NAMES = {"StreamInlet", "pull_sample", "pull_chunk", "PulseMarkerInlet",
               "LowLatencyInlet", "resolve_byprop", "resolve_streams", "resolve_stream",
               "connect_stream", "StreamLSL"}
#: Allowlisted modules that may read network input (to trigger on EEG state).
INLET_ALLOWED = {"labkit/closedloop/controller.py"}
#: Allowlisted modules that read the EMG data stream only to measure (never for commands).
DATA_STREAM_READERS = {"labkit/rig.py": {"connect_stream"}}


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(LABKIT.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        out.append((rel, ast.parse(path.read_text("utf-8"), filename=rel)))
    return out


def test_only_allowlisted_modules_trigger_the_stimulator():
    callers: dict[str, list[int]] = {}
    for rel, tree in _modules():
        if rel.startswith("labkit/stimulators/"):
            continue  # the drivers themselves (super().fire() and definitions)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in TRIGGERS):
                callers.setdefault(rel, []).append(node.lineno)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "getattr" and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in TRIGGERS):
                callers.setdefault(rel, []).append(node.lineno)
    assert set(callers) <= FIRE_ALLOWED, {k: v for k, v in callers.items()
                                          if k not in FIRE_ALLOWED}
    assert {"labkit/rig.py", "labkit/runner.py"} <= set(callers)  # the scan finds them


def test_modules_that_fire_do_not_read_network_input_except_closed_loop():
    modules = dict(_modules())
    for rel in sorted(FIRE_ALLOWED - INLET_ALLOWED):
        used = {node.id if isinstance(node, ast.Name) else node.attr
                for node in ast.walk(modules[rel])
                if isinstance(node, (ast.Name, ast.Attribute))}
        imported = {alias.name.rpartition(".")[2] for node in ast.walk(modules[rel])
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        reads = (used | imported) & INLET_NAMES - DATA_STREAM_READERS.get(rel, set())
        assert not reads, f"{rel} reads LSL input: {sorted(reads)}"
        assert "pylsl" not in imported, f"{rel} imports pylsl"


def test_closed_loop_controller_fires_only_after_an_explicit_start():
    source = (LABKIT / "closedloop" / "controller.py").read_text("utf-8")
    tree = ast.parse(source)
    fire_in = [fn.name for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
               for node in ast.walk(fn)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "fire"]
    assert fire_in and all(name.startswith("_") for name in fire_in)  # internal loop only
    constructors = [fn for fn in ast.walk(tree)
                    if isinstance(fn, ast.FunctionDef) and fn.name == "__init__"]
    for fn in constructors:  # building a controller starts nothing
        calls = {n.func.attr for n in ast.walk(fn)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not calls & {"start", "fire", "arm"}


# -- make lab: JupyterLab on localhost with a token ------------------------------------
def _makefile_lab_command() -> list[str]:
    text = (REPO / "Makefile").read_text("utf-8")
    match = re.search(r"^lab:.*\n\t(.+)$", text, re.MULTILINE)
    assert match, "Makefile has no lab target"
    line = (match.group(1).replace("$(VENV)", str(REPO / ".venv"))
            .replace("$(ALLOW_ROOT)", ""))  # added below when running as root
    return shlex.split(line)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> set[tuple[str, int]]:
    """Every (address, port) in LISTEN state on ``port``, any process, IPv4 and IPv6."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError:  # printed its URL a moment before listening
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "jupyter").exists(),
                    reason="needs the project's .venv with JupyterLab")
def test_make_lab_listens_on_localhost_only_and_refuses_requests_without_token(tmp_path):
    command = _makefile_lab_command()
    assert command[1:4] == ["lab", "--ServerApp.ip=127.0.0.1", "--ServerApp.open_browser=False"]
    port = _free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_TOKEN="",
               BROWSER="true")
    env.pop("JUPYTER_TOKEN")
    extra = [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers; changes no network
        extra.append("--allow-root")                  # or auth setting
    proc = subprocess.Popen(command + extra,
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None:
            assert time.monotonic() < deadline, "JupyterLab did not start within 60 s"
            assert proc.poll() is None, f"JupyterLab exited: {proc.stderr.read()[-2000:]}"
            line = proc.stderr.readline()
            found = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=([0-9a-f]+)", line)
            if found:
                token = found.group(1)
        assert len(token) >= 32
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/api/contents") == 403  # also waits until it serves
        listening = _listening(port)
        assert listening == {("127.0.0.1", port)}, listening
        assert all(ip == "127.0.0.1" for ip, _ in listening), listening
        assert _get(f"{base}/api/kernels") == 403
        assert _get(f"{base}/api/contents", token) == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect(("192.0.2.1", 9))  # no packet is sent; picks the LAN address
                lan_ip = s.getsockname()[0]
            except OSError:
                lan_ip = None
        if lan_ip and lan_ip != "127.0.0.1":
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((lan_ip, port))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
