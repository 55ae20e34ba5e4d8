"""Notebooks that record sessions the way ``make demo`` does, for the replay tests."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

OPEN_SIMULATED = '''\
import tempfile
import time
from pathlib import Path

import labkit
from labkit.demo import run_dir
from labkit.session import Session

out_dir = run_dir() or Path(tempfile.mkdtemp())
rig = labkit.open_rig("simulated", seed=3)
session = Session.open(out_dir / "sessions", "R01", task="replay")
rig.use_session(session)
hw = rig.hardware
session.record(hw.emg_stream.name, "emg", source_id=hw.emg_stream.source_id)
session.record(hw.marker_stream.name, "markers", source_id=hw.marker_stream.source_id)
time.sleep(0.3)
print(rig)
'''

OPEN_HARDWARE = '''\
import tempfile
import time
from pathlib import Path

import labkit
from labkit.demo import run_dir
from labkit.session import Session

out_dir = run_dir() or Path(tempfile.mkdtemp())
rig = labkit.open_rig({profile!r})
session = Session.open(out_dir / "sessions", "H01", task="replay")
rig.use_session(session)
emg = rig.profile.streams.emg
session.record(emg.name, "emg", source_id=emg.source_id)
session.record(rig.profile.streams.markers.name, "markers",
               source_id=rig.profile.streams.markers.source_id)
time.sleep(0.3)
print(rig)
'''

SINGLE_PULSES = '''\
trials = [rig.pulse(x) for x in {intensities!r}]
for t in trials:
    print(f"{{t.intensity_percent:g}} % MSO: {{t.amplitude_uv:.3f}} uV, "
          f"latency {{t.latency_ms:.1f}} ms,"
          f" background {{t.background_rms_uv:.4f}} uV, rejected {{t.rejected}}")
'''

HUNT = '''\
from labkit.threshold import make_estimator

estimator = make_estimator("bayesian", start=60)
hunt = []
while not estimator.done and len(hunt) < {max_pulses}:
    x = estimator.next_intensity()
    trial = rig.pulse(x)
    estimator.update(x, trial.amplitude_uv)
    hunt.append(trial)
print("intensities:", [t.intensity_percent for t in hunt])
print("amplitudes:", [round(t.amplitude_uv, 3) for t in hunt])
print(f"RMT estimate {{estimator.threshold:.4f}} % MSO")
rig.rmt_percent = int(round(estimator.threshold))
'''

TRAIN = '''\
from labkit.protocols import load_protocol

demo = load_protocol("m1_10hz_pain_1000").shortened(1)
runner = rig.runner(demo, intensity=90, progress=False)
print("runner:", runner.run(), "| pulses:", runner.pulses_delivered)
'''

CLOSE = '''\
time.sleep(0.5)
session.close()
rig.close()
print("pulses in the log:", len(session.events("pulse")))
'''


def demo_notebook(intensities=(50, 55, 60, 45, 70), *, hunt_pulses: int = 0,
                  train: bool = False, profile: str | None = None) -> nbformat.NotebookNode:
    """A notebook that records a session: rig, single pulses, a short hunt, a train."""
    cells = [OPEN_SIMULATED if profile is None else OPEN_HARDWARE.format(profile=profile),
             SINGLE_PULSES.format(intensities=list(intensities))]
    if hunt_pulses:
        cells.append(HUNT.format(max_pulses=hunt_pulses))
    if train:
        cells.append(TRAIN)
    cells.append(CLOSE)
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb
