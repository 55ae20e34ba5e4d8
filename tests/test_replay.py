"""Replay of recorded sessions: the notebook re-executed on its recording gives its outputs.

The reference is the executed notebook itself, compared by nbval (not by labkit); a
session is recorded the way ``make demo`` records one (the notebook executed by
:func:`labkit.demo.execute_notebook` into a run folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pytest
from replay_helpers import demo_notebook

from labkit.demo import RUN_DIR_ENV, execute_notebook
from labkit.replay import ReplayError, load_session, replay
from labkit.replay.amplifier import SampleMap
from labkit.session.log import read_log

pytestmark = pytest.mark.slow


# -- which recorded sample each replayed sample shows (pure) ---------------------------
def test_a_replayed_pulse_gets_the_recorded_epoch_sample_for_sample():
    smap = SampleMap(1000, [300, 600], pre=20, post=30)
    first = smap.take(100)  # before any pulse: the recording from its start
    np.testing.assert_array_equal(first, np.arange(100))
    assert smap.place(0, 150)  # pulse 1 replayed on sample 150, recorded on 300
    rest = smap.take(200)  # replayed samples 100..299
    j = np.arange(100, 300)
    epoch = (j >= 130) & (j <= 180)
    np.testing.assert_array_equal(rest[epoch], 300 + (j[epoch] - 150))
    assert smap.late == 0


def test_a_late_pulse_keeps_its_pulse_and_after_and_is_counted():
    smap = SampleMap(1000, [300], pre=20, post=30)
    smap.take(160)
    assert not smap.place(0, 150)  # its pre-pulse samples 130..159 are gone
    after = smap.take(40)
    np.testing.assert_array_equal(after, 300 + (np.arange(160, 200) - 150))
    assert smap.late == 1


def test_the_stream_loops_the_quiet_stretch_instead_of_showing_a_pulse_early():
    smap = SampleMap(1000, [300, 600], pre=20, post=30)
    smap.place(0, 100)
    taken = smap.take(1000)
    # after pulse 1's epoch (recorded 331..) it never enters pulse 2's epoch (580..630)
    assert not np.any((taken >= 580) & (taken <= 630))
    assert taken.min() >= 0 and taken.max() < 1000


def test_the_epoch_of_an_announced_pulse_is_held_until_its_marker_comes():
    import time

    from labkit.clock import local_clock
    from labkit.replay.amplifier import ReplayAmplifier
    from labkit.replay.source import RecordedStream

    fs = 1000.0
    stream = RecordedStream(label="emg", path=Path("emg"),
                            info={"sfreq": fs, "n_channels": 1, "type": "EMG"},
                            samples=np.zeros((20000, 1), np.float32),
                            times_s=np.arange(20000) / fs)
    amp = ReplayAmplifier(stream, [10.0], name="held", source_id="held", pre_s=0.15,
                          lag_s=0.35)
    amp.t0 = local_clock() - 5.0  # as if streaming for 5 s (no outlet, no thread)
    now = local_clock()
    amp.expect(now)  # the guard passed a pulse: it fires at or after `now`
    epoch = int(np.floor((now - 0.15 - amp.t0) * fs))  # first sample of its epoch
    time.sleep(0.4)  # a marker delayed longer than the lag still finds its epoch unsent
    assert amp._due() == epoch
    amp.on_pulse(0, local_clock())
    assert amp._due() > epoch + 200


# -- recorded sessions -------------------------------------------------------------------
def _execute(nb: nbformat.NotebookNode, run: Path) -> Path:
    run.mkdir(parents=True)
    path = run.parent / f"{run.name}-source.ipynb"
    nbformat.write(nb, path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_DIR_ENV, str(run))
        execute_notebook(path, run, timeout_s=300)
    return run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """A run folder as ``make demo`` leaves it: executed notebook + its session."""
    run = tmp_path_factory.mktemp("runs") / "demo"
    return _execute(demo_notebook(hunt_pulses=8, train=True), run)


def test_demo_session_replays_with_every_output_equal(demo_run, tmp_path):
    session = next(demo_run.glob("sessions/sub-R01/ses-*"))
    logged = [r for r in read_log(session) if r.kind == "pulse"]
    assert len(logged) == 5 + 8 + 50
    proc = subprocess.run([sys.executable, "-m", "labkit.replay", str(demo_run),
                           "--workdir", str(tmp_path / "replayed")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: all 5 code cells match the recorded outputs; 63 of 63 pulses replayed" \
        in proc.stdout
    # the recorded run was only read; the replay wrote its own session
    assert len(list(demo_run.glob("sessions/sub-R01/ses-*"))) == 1
    replayed = next((tmp_path / "replayed" / "run").glob("sessions/sub-R01/ses-*"))
    assert len([r for r in read_log(replayed) if r.kind == "pulse"]) == 63


def test_a_different_notebook_stops_at_the_first_divergence_with_both_values(demo_run,
                                                                            tmp_path):
    nb = nbformat.read(next(demo_run.glob("*.ipynb")), as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("[50, 55, 60, 45, 70]",
                                                    "[50, 55, 61, 45, 70]")
    changed = tmp_path / "changed.ipynb"
    nbformat.write(nb, changed)
    result = replay(demo_run, changed, workdir=tmp_path / "replayed")
    assert not result.ok
    assert result.verdict == ("cell 1, pulse 3: the notebook asks for 61 % MSO, the session "
                              "delivered 60 % MSO")
    assert result.failed_cell == 1


def test_a_truncated_recording_names_the_file_and_the_last_usable_time(demo_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy)
    session = next(copy.glob("sessions/sub-R01/ses-*"))
    recorded = load_session(session)
    emg = recorded.stream_for("labkit-sim-emg", "emg")
    fifth = recorded.pulses[4]
    keep = emg.nearest_sample(fifth.time_s)  # cut just after the 5th pulse
    data = emg.path / "data.f32"
    n_ch = int(emg.info["n_channels"])
    with open(data, "r+b") as f:
        f.truncate(keep * 4 * n_ch + 2)  # plus a torn half sample
    last_s = recorded.session_time(emg.times_s[keep - 1])
    with pytest.raises(ReplayError) as err:
        replay(copy)
    message = str(err.value)
    assert str(data) in message
    assert f"last usable time is {last_s:.3f} s into the session" in message
    assert "pulse 5 of 63" in message and "truncated" in message


def test_a_missing_recording_names_the_file(demo_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy)
    session = next(copy.glob("sessions/sub-R01/ses-*"))
    shutil.rmtree(session / "recordings" / "emg")
    proc = subprocess.run([sys.executable, "-m", "labkit.replay", str(copy)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert str(session / "recordings" / "emg" / "header.json") in proc.stderr
    assert "recording 'emg' is missing" in proc.stderr


# -- a session recorded through the hardware code path, on the emulators ---------------
def test_session_recorded_through_the_hardware_path_replays(tmp_path):
    from labkit.sim import MagstimEmulator
    from labkit.sim.amplifier import EMGAmplifier
    from labkit.sim.subject import VirtualSubject

    if os.name != "posix":
        pytest.skip("the kernel reaches the emulator over its pty")
    tag = uuid.uuid4().hex[:8]
    subject = VirtualSubject(seed=7)
    amp = EMGAmplifier(subject, name=f"hw-emg-{tag}", source_id=f"hw-emg-{tag}-sid",
                       noise_uv=0.5, latency_ms=20.0)
    amp.start()
    emulator = MagstimEmulator(model="200", coil=amp, seed=7)
    profile = tmp_path / "bench.toml"
    profile.write_text(f'''
[rig]
name = "bench"
[stimulator]
model = "magstim-200"
port = "{emulator.pty_path}"
[streams.emg]
name = "hw-emg-{tag}"
source_id = "hw-emg-{tag}-sid"
type = "EMG"
picks = ["FDI", "APB"]
[streams.markers]
name = "hw-pulses-{tag}"
[mep]
channel = "FDI"
[limits]
min_single_pulse_interval_s = 0.3
''')
    try:
        run = _execute(demo_notebook((55, 62, 48, 70), profile=str(profile)),
                       tmp_path / "hwrun")
    finally:
        emulator.stop()
        amp.stop()
    nb = nbformat.read(next(run.glob("*.ipynb")), as_version=4)
    assert "<Rig 'bench' (hardware): Magstim>" in nb.cells[0].outputs[0]["text"]
    result = replay(run, workdir=tmp_path / "replayed")
    assert result.ok, (result.verdict, result.detail)
    assert (result.pulses_logged, result.pulses_replayed) == (4, 4)


# -- the shipped example session, in process (no kernel) ---------------------------------
EXAMPLE = Path(__file__).resolve().parents[1] / "notebooks" / "replay" / "example-run" / \
    "sessions" / "sub-S01" / "ses-01"


def test_replayed_meps_equal_those_cut_from_the_recording(monkeypatch):
    import labkit
    from labkit.mep import mep_table
    from labkit.recording import read_recording
    from labkit.replay import ReplayDivergenceError

    data, times, info = read_recording(EXAMPLE / "recordings" / "emg")
    logged = [r for r in read_log(EXAMPLE) if r.kind == "pulse"]
    expected = mep_table(data, [r.time_s for r in logged], info["sfreq"], channel="FDI",
                         ch_names=info["ch_names"], time_offset_s=float(times[0]))
    monkeypatch.setenv("LABKIT_REPLAY", str(EXAMPLE))
    monkeypatch.delenv("LABKIT_REPLAY_REPORT", raising=False)
    with labkit.open_rig("simulated", seed=0) as rig:
        trials = [rig.pulse(int(r.payload["intensity_percent"])) for r in logged]
        with pytest.raises(ReplayDivergenceError, match=(
                r"^pulse 8: the notebook asks for a pulse at 44 % MSO, the session "
                r"delivered only 7 pulses$")):
            rig.pulse(44)
        assert rig.replay.summary()["pulses_replayed"] == 7
        assert rig.hardware.emg_amplifier.late_discharges == 0
    assert [t.amplitude_uv for t in trials] == expected["amplitude_uv"].tolist()
    assert [t.latency_ms for t in trials] == pytest.approx(expected["latency_ms"].tolist())


def test_bad_run_paths_exit_2_naming_what_is_wrong(tmp_path, capsys):
    from labkit.replay.command import main

    assert main([str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: no such run or session folder" in capsys.readouterr().err
    for name in ("a", "b"):
        (tmp_path / "run" / name).mkdir(parents=True)
        (tmp_path / "run" / name / "log.jsonl").write_text("")
    assert main([str(tmp_path / "run")]) == 2
    assert "2 sessions here (a, b); give one of them" in capsys.readouterr().err
    blank = tmp_path / "blank.ipynb"
    nbformat.write(demo_notebook(), blank)  # never executed: nothing to compare with
    assert main([str(EXAMPLE), str(blank)]) == 2
    assert "the notebook has no stored outputs to compare" in capsys.readouterr().err
