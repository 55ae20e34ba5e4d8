"""``labkit.check``: a rig's connections checked before a subject arrives.

The "hardware" here is the simulator seen as a lab sees real devices: an emulated
Magstim 200² behind a pseudo-terminal (a serial port path) and a simulated amplifier's
LSL stream, bound by a hardware-style profile (``simulated = false``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import labkit
from labkit.check import check_profile, main, protocol_stimulators
from labkit.errors import StreamError
from labkit.profiles import load_profile
from labkit.protocols import list_protocols, load_protocol
from labkit.sim import MagstimEmulator
from labkit.sim.amplifier import EMGAmplifier
from labkit.sim.subject import VirtualSubject
from labkit.stimulators.registry import MODELS

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the bench uses a pseudo-terminal")

PROFILE = """\
[rig]
name = "bench"
description = "Magstim 200² and an EMG amplifier on the bench"

[stimulator]
model = "magstim-200"
port = "{port}"
timeout_s = 0.3

[streams.emg]
name = "{name}"
source_id = "{source_id}"
type = "EMG"
picks = ["FDI", "APB"]

[streams.markers]
name = "{markers}"

[mep]
channel = "FDI"
"""


@pytest.fixture(scope="module")
def bench():
    """A stimulator on a serial port path and an amplifier on LSL, as in a lab."""
    tag = uuid.uuid4().hex[:8]
    emulator = MagstimEmulator("200")
    amplifier = EMGAmplifier(VirtualSubject(seed=1), name=f"bench-emg-{tag}",
                             source_id=f"amp-serial-{tag}")
    amplifier.start()
    yield {"port": emulator.pty_path, "name": f"bench-emg-{tag}",
           "source_id": f"amp-serial-{tag}", "markers": f"bench-pulses-{tag}"}
    amplifier.stop()
    emulator.stop()


def profile_file(tmp_path: Path, bench: dict, **changes: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(PROFILE.format(**{**bench, **changes}), encoding="utf-8")
    return path


def finding(report, item: str):
    return next(f for f in report.findings if f.item == item)


def test_a_good_profile_passes_every_check(tmp_path, bench, capsys):
    path = profile_file(tmp_path, bench)
    report = check_profile(path)
    assert report.ok, report.summary()
    stim = finding(report, "stimulator")
    assert stim.level == "ok" and stim.message.startswith(
        f"Magstim 200² answered on {bench['port']!r} (software ")
    emg = finding(report, "EMG stream")
    assert emg.level == "ok" and f"source_id {bench['source_id']!r}" in emg.message
    assert "5000 Hz, 2 channels" in emg.message
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Checking {path}\n") and out.rstrip().endswith(
        "ready: every check passed")


def test_a_missing_stream_names_the_file_and_field_and_lists_what_is_visible(tmp_path, bench):
    path = profile_file(tmp_path, bench, name="BrainAmpSeries")
    report = check_profile(path, stimulator=False)
    emg = finding(report, "EMG stream")
    assert emg.level == "fail" and not report.ok
    assert emg.message.startswith("no LSL stream named 'BrainAmpSeries' is visible. Visible "
                                  "streams of type 'EMG': ")
    assert f"name={bench['name']!r} source_id={bench['source_id']!r}" in emg.message
    assert emg.fix.startswith(f"{path}: [streams.emg] name and source_id = your amplifier's")
    text = report.summary()
    assert f"name={bench['name']!r} type='EMG' source_id={bench['source_id']!r}" in text
    assert text.endswith("1 problem: fix it before the subject arrives")


def test_a_wrong_source_id_says_which_one_the_stream_has(tmp_path, bench):
    path = profile_file(tmp_path, bench, source_id="BrainAmpSeries-Dev_1")
    emg = finding(check_profile(path, stimulator=False), "EMG stream")
    assert emg.level == "fail"
    assert emg.message.startswith(f"stream {bench['name']!r} has source_id "
                                  f"{bench['source_id']!r} (host ")
    assert emg.message.endswith("the profile expects 'BrainAmpSeries-Dev_1'")
    assert emg.fix == (f"{path}: [streams.emg] source_id = {bench['source_id']!r} if this is "
                       "your amplifier")


def test_a_wrong_port_lists_the_ports_present_and_exits_non_zero(tmp_path, bench):
    path = profile_file(tmp_path, bench, port="/dev/ttyUSB-labkit-absent")
    report = check_profile(path)
    port = finding(report, "stimulator port")
    assert port.level == "fail"
    assert port.message.startswith("serial port '/dev/ttyUSB-labkit-absent' does not exist. "
                                   "Serial ports present: ")
    assert port.fix.startswith(f"{path}: [stimulator] port = the unit's port")
    assert finding(report, "EMG stream").level == "ok"  # the rest is still checked
    run = subprocess.run([sys.executable, "-m", "labkit.check", str(path)], text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "FAIL  stimulator port: serial port '/dev/ttyUSB-labkit-absent' does not exist" \
        in run.stdout


def test_a_port_with_nothing_behind_it_gives_the_operators_causes(tmp_path, bench):
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        path = profile_file(tmp_path, bench, port=os.ttyname(slave))
        stim = finding(check_profile(path), "stimulator")
    finally:
        os.close(slave)
        os.close(master)
    assert stim.level == "fail"
    assert "did not answer within 0.30 s. Likely causes, in order: (1) wrong port" in stim.message
    assert stim.fix == f"{path}: [stimulator] port and model; the unit on, its cable in"


def test_the_shipped_simulated_profile_passes(capsys):
    assert main(["simulated"]) == 0
    out = capsys.readouterr().out
    # the emulator's in-process URL, or its pty when the simulated lab runs in a child
    assert re.search(r"OK    stimulator: Magstim Rapid² answered on '(labkitsim://|/dev/pts/)",
                     out)
    assert "OK    EMG stream: 'labkit-sim-emg-" in out


def test_streams_option_lists_name_type_source_id_host_rate_channels(bench, capsys):
    assert main(["--streams"]) == 0
    out = capsys.readouterr().out
    assert (f"name={bench['name']!r} type='EMG' source_id={bench['source_id']!r} host=") in out
    assert "rate=5000 Hz channels=2" in out


def test_open_rig_on_a_profile_without_its_amplifier_lists_visible_streams(bench):
    path = load_profile("magstim-200").path
    with pytest.raises(StreamError) as info:
        labkit.open_rig("magstim-200")
    message = str(info.value)
    assert message.startswith(f"{path}: [streams.emg] no LSL stream found with "
                              "name='BrainAmpSeries'")
    assert f"name={bench['name']!r} type='EMG' source_id={bench['source_id']!r}" in message
    assert (f"Edit name and source_id under [streams.emg] in {path} to your amplifier's "
            "stream (python -m labkit.check magstim-200 checks the whole rig)") in message


# ------------------------------------------------------------------ protocols x stimulators
def test_single_pulse_units_run_no_protocol_and_rates_follow_the_registry():
    for name in list_protocols():
        protocol = load_protocol(name)
        t = protocol.timing
        fastest = max(t.frequency_hz, t.intra_burst_frequency_hz or 0.0)
        for key, top in protocol_stimulators(protocol).items():
            abilities = MODELS[key].abilities
            if not abilities.repetitive:
                assert top is None, (name, key)
            elif top is not None:
                assert abilities.max_rate_hz(top) >= fastest - 1e-9
                assert top == 100 or abilities.max_rate_hz(top + 1) < fastest
    one_hz = protocol_stimulators(load_protocol("m1_1hz_inhibitory"))
    assert one_hz["magstim-200"] is None and one_hz["magstim-rapid2"] == 100
    assert one_hz["magventure-x100"] == 100 and one_hz["deymed-duomag-mp"] is None


def test_a_port_you_may_not_open_names_the_group_to_join(tmp_path, bench, monkeypatch):
    import grp

    import labkit.check as check

    monkeypatch.setattr(check.os, "access", lambda path, mode: False)  # as a user outside it
    path = profile_file(tmp_path, bench)
    port = finding(check_profile(path), "stimulator port")
    group = grp.getgrgid(os.stat(bench["port"]).st_gid).gr_name
    assert port.level == "fail"
    assert port.message == f"no permission to open {bench['port']!r} (it belongs to group " \
                           f"{group!r})"
    assert port.fix == f"sudo usermod -aG {group} $USER, then log out and in again"


def test_the_navigation_link_is_checked_when_the_profile_has_one(tmp_path, bench):
    from labkit.sim.localite_emulator import LocaliteEmulator

    navigator = LocaliteEmulator().start()
    try:
        host, port = navigator.address
        text = PROFILE.format(**bench) + f'\n[navigation]\nhost = "{host}"\nport = {port}\n'
        path = tmp_path / "navigated.toml"
        path.write_text(text, encoding="utf-8")
        nav = finding(check_profile(path, stimulator=False), "navigation")
        assert (nav.level, nav.message) == ("ok", f"navigator answers at {host}:{port}")
    finally:
        navigator.stop()
    nav = finding(check_profile(path, stimulator=False), "navigation")  # now nobody listens
    assert nav.level == "fail" and nav.message.startswith(f"cannot reach the navigator at "
                                                          f"{host}:{port}")
    assert nav.fix.startswith(f"{path}: [navigation] host/port")
