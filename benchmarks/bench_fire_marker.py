"""Fire → pulse-marker latency: from the fire command to the marker arriving in an inlet.

A Magstim 200² driver fires into the in-process emulator; every pulse is published on an
LSL marker outlet. An inlet on the same machine pulls the markers; the figure is the LSL
time the marker was pulled minus the time the fire command was written (the marker's own
timestamp). Baseline, same run: a marker pushed straight into an outlet and pulled, with
no driver in between. JSON lines on stdout.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pylsl

from labkit.clock import local_clock
from labkit.markers import PulseEvent, PulseMarkerOutlet
from labkit.sim import MagstimEmulator
from labkit.stimulators import Magstim

N_PULSES = 200


def _inlet(name: str, source_id: str) -> pylsl.StreamInlet:
    info = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
    if not info:
        raise SystemExit(f"marker stream {name!r} not found")
    inlet = pylsl.StreamInlet(info[0], max_buflen=10)
    inlet.open_stream(timeout=5.0)
    return inlet


def _pull_latency_ms(inlet: pylsl.StreamInlet) -> float:
    while True:
        sample, stamp = inlet.pull_sample(timeout=2.0)
        if sample is None:
            raise SystemExit("marker did not arrive within 2 s")
        return (local_clock() - stamp) * 1000.0


def _stats(values: list[float]) -> dict:
    arr = np.asarray(values)
    return {"n": int(arr.size), "p50_ms": round(float(np.percentile(arr, 50)), 4),
            "p99_ms": round(float(np.percentile(arr, 99)), 4),
            "max_ms": round(float(arr.max()), 4)}


def main() -> None:
    name = f"bench-fire-marker-{uuid.uuid4().hex[:6]}"
    source_id = f"{name}-src"
    outlet = PulseMarkerOutlet(name, source_id)
    inlet = _inlet(name, source_id)

    baseline = []
    for index in range(N_PULSES):
        outlet.push(PulseEvent(local_clock(), 50.0, "baseline", index))
        baseline.append(_pull_latency_ms(inlet))

    emulator = MagstimEmulator("200", pty=False, recharge_s=0.0)
    fired = []
    with Magstim(emulator.url, markers=outlet) as stimulator:
        stimulator.set_intensity(50)
        stimulator.arm()
        for _ in range(N_PULSES):
            stimulator.wait_ready()
            stimulator.fire()
            fired.append(_pull_latency_ms(inlet))
    emulator.stop()
    print(json.dumps({
        "bench": "fire_to_marker", "device": "magstim-200 emulator (URL)",
        "labkit": _stats(fired),
        "baseline_push_to_pull": _stats(baseline),
        "note": "marker time = LSL time the fire command was written",
    }))


if __name__ == "__main__":
    main()
