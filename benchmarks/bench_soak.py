"""Long soak: a 10 Hz protocol on the simulated rig with the session recording running.

Runs ``open_rig("simulated")`` (Magstim Rapid² emulator, virtual subject, 5 kHz EMG over
LSL; by default in its own process, ``sim_process="child"``, as a real unit answers on its
own CPU: an inline simulator shares this process's threads and, on a loaded machine, can
miss the driver's 0.5 s reply timeout), a :class:`labkit.session.Session` recording the
EMG and pulse-marker streams, and a :class:`labkit.runner.ProtocolRunner` delivering 10 Hz
trains (4 s on, 5 s off, 90 % RMT, software timing) for ``--minutes`` of wall time, in
real time (no compression). The trains are what the safety check accepts: 4 s at 10 Hz and
90 % RMT is within the Rossi 2009 table, and 5 s pauses end a train (closer trains would
count as one continuous train). The per-session pulse cap is lifted with a logged
:class:`SafetyOverride` (a soak, not a clinical session); the table and the inter-train
rule are not.

Lines printed (one JSON object each):

- ``soak_rss``: resident memory (psutil) sampled every ``--sample-s``; ``growth_mib`` is
  the mean of the last minute minus the mean of the first minute (the baseline measured in
  the same run), plus the slope over the whole run after the first minute.
- ``soak_samples``: EMG samples recorded vs the count expected from the first and last
  timestamps at 5 kHz, gaps in the time axis, and the amplifier's own count of samples it
  pushed; ``dropped`` is expected − recorded.
- ``soak_pulses``: pulses delivered, logged, and seen in the marker recording.
- ``soak_timing``: software-timing error |actual − scheduled| p50/p99/max in the first
  and in the last minute (the first minute is the baseline).

Usage: ``python benchmarks/bench_soak.py [--minutes 3] [--dir DIR] [--sample-s 5]
[--sim-process child|inline]`` (``--minutes 30`` for the full soak). With the simulator in
a child process its per-pulse ground-truth lists live there, outside the RSS measured here;
inline, they are trimmed (``--keep-sim-history`` keeps them; they grow by ~0.85 KiB per
pulse: see :class:`SimHistoryTrimmer`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from labkit.clock import local_clock
from labkit.protocols import Protocol
from labkit.recording import read_markers, read_recording
from labkit.rig import open_rig
from labkit.runner import ProtocolRunner
from labkit.safety import SafetyLimits, SafetyOverride
from labkit.session import Session, read_log

TRAIN_S = 4.0
ITI_S = 5.0  # shortest pause shown safe (Chen 1997): trains stay separate
FREQUENCY_HZ = 10.0


def soak_protocol(minutes: float) -> Protocol:
    """10 Hz, 4 s trains, 5 s apart, 90 % RMT, lasting about ``minutes``."""
    per_train = int(TRAIN_S * FREQUENCY_HZ)
    trains = max(1, math.ceil(minutes * 60.0 / (TRAIN_S + ITI_S)))
    return Protocol.model_validate({
        "name": "soak-10hz", "description": "soak benchmark", "references": ["bench_soak"],
        "target": "M1", "coil": "figure-of-eight", "total_pulses": per_train * trains,
        "intensity": {"unit": "% RMT", "value": 90},
        "timing": {"bursts_per_train": per_train,
                   "inter_burst_interval_ms": 1000.0 / FREQUENCY_HZ,
                   "trains": trains, "inter_train_interval_s": ITI_S},
    })


class RSSSampler:
    """Samples this process's RSS every ``period_s`` in a background thread.

    ``before_sample()``, when given, runs before each sample (the history trimmer).
    """

    def __init__(self, period_s: float, before_sample=None) -> None:
        self.period_s = period_s
        self._before = before_sample
        self.samples: list[tuple[float, float]] = []  # (elapsed s, MiB)
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RSSSampler:
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        self.samples.append((time.monotonic() - self._t0,
                             self._proc.memory_info().rss / 2**20))

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            if self._before is not None:
                self._before()
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _window_mean(samples: list[tuple[float, float]], lo: float, hi: float) -> float:
    vals = [m for t, m in samples if lo <= t <= hi]
    return float(np.mean(vals)) if vals else float("nan")


def _jitter(errors_ms: np.ndarray) -> dict:
    e = np.abs(errors_ms)
    if e.size == 0:
        return {"n": 0}
    return {"n": int(e.size), "p50_ms": round(float(np.percentile(e, 50)), 4),
            "p99_ms": round(float(np.percentile(e, 99)), 4), "max_ms": round(float(e.max()), 4)}


class SimHistoryTrimmer:
    """Drops the simulated hardware's ground-truth history (kept for tests, unbounded).

    The virtual subject (``responses``), the EMG amplifier (``responses``, ``placed``)
    and the emulator (``received``) remember every pulse and command, ~0.85 KiB per pulse;
    real hardware has no such lists. Trimming them isolates labkit's own memory.
    """

    def __init__(self, hardware) -> None:
        self.hw = hardware
        self.trimmed = 0

    def __call__(self) -> None:
        hw = self.hw
        amp, emulator = hw.emg_amplifier, hw.emulator
        with amp._lock:
            self.trimmed += len(amp.placed)
            amp.placed.clear()
        amp.responses.clear()
        hw.subject.responses.clear()
        with emulator._lock:
            emulator.received.clear()


def run(minutes: float, root: Path, sample_s: float, keep_sim_history: bool = False,
        sim_process: str = "child") -> list[dict]:
    """Run the soak; return the JSON records."""
    protocol = soak_protocol(minutes)
    limits = SafetyLimits(max_pulses_per_session=100000)
    override = SafetyOverride(reason="soak benchmark on the simulated rig",
                              approved_by="bench_soak")
    inline = sim_process == "inline"
    with open_rig("simulated", sim_process=sim_process) as rig, \
            Session(root, "SOAK01", 1) as session:
        trimmer = SimHistoryTrimmer(rig.hardware) if inline and not keep_sim_history else None
        rss = RSSSampler(sample_s, trimmer)
        # the emulated unit refuses a single-pulse EH for 50 ms after a pulse; a
        # software-timed pulse that is late by > 50 ms makes the next one come too soon and
        # fails the run, which is not what this soak measures (tests/test_faults.py covers
        # refusals)
        rig.hardware.emulator.recharge_s = 0.0
        emg_name = rig.hardware.emg_stream
        session.record(emg_name.name, "emg", source_id=emg_name.source_id,
                       duplicate_wait_s=0.0)
        session.record(rig.hardware.marker_stream.name, "markers",
                       source_id=rig.hardware.marker_stream.source_id, duplicate_wait_s=0.0)
        time.sleep(1.0)  # recorders connected, first minute of memory includes them
        rss.start()
        runner = ProtocolRunner(rig.stimulator, protocol, rmt_percent=50.0, limits=limits,
                                override=override, log=session.sink, progress=False,
                                train_mode="software")
        t_start = local_clock()
        state = runner.run()
        wall_s = local_clock() - t_start
        time.sleep(1.0)  # the last samples reach the recorders
        rss.stop()
        amp = rig.hardware.emg_amplifier
        pushed, amp_dropped, late = amp.samples_pushed, amp.samples_dropped, amp.late_discharges
        fs = amp.fs
        session.stop_recordings()
        errors_ms = np.asarray(runner.timing_errors_ms)
        delivered = runner.pulses_delivered
    ses = session.path
    _, stamps, _ = read_recording(ses / "recordings" / "emg")
    values, _, _ = read_markers(ses / "recordings" / "markers")
    logged = len(read_log(ses, kind="pulse"))
    steps = np.diff(stamps)
    expected = int(round((stamps[-1] - stamps[0]) * fs)) + 1
    first_min = _window_mean(rss.samples, 0.0, 60.0)
    last_t = rss.samples[-1][0]
    last_min = _window_mean(rss.samples, last_t - 60.0, last_t)
    after = np.array([(t, m) for t, m in rss.samples if t >= 60.0])
    slope = (float(np.polyfit(after[:, 0] / 60.0, after[:, 1], 1)[0])
             if len(after) >= 3 else float("nan"))
    per_train = int(TRAIN_S * FREQUENCY_HZ)
    first_n = int(60.0 / (TRAIN_S + ITI_S)) * per_train
    common = {"minutes": minutes, "wall_s": round(wall_s, 1), "state": state,
              "simulator": sim_process,
              "sim_history": ("in the child process" if not inline
                              else "kept" if keep_sim_history else "trimmed"),
              "python": platform.python_version(), "cpus": os.cpu_count()}
    return [
        {"bench": "soak_rss", **common,
         "growth_mib": round(last_min - first_min, 2),
         "baseline_first_minute_mib": round(first_min, 2),
         "last_minute_mib": round(last_min, 2),
         "max_mib": round(max(m for _, m in rss.samples), 2),
         "slope_mib_per_min_after_first": round(slope, 3), "n_samples": len(rss.samples)},
        {"bench": "soak_samples", **common, "fs_hz": fs, "recorded": int(stamps.size),
         "expected": expected, "dropped": expected - int(stamps.size),
         "gaps": int(np.sum(steps > 1.5 / fs)), "max_step_ms": round(float(steps.max()) * 1e3, 3),
         "amplifier_pushed": int(pushed), "amplifier_dropped": int(amp_dropped),
         "late_discharges": int(late)},
        {"bench": "soak_pulses", **common, "scheduled": len(runner.schedule),
         "delivered": delivered, "logged": logged, "markers_recorded": len(values)},
        {"bench": "soak_timing", **common,
         "baseline_first_minute": _jitter(errors_ms[:first_n]),
         "last_minute": _jitter(errors_ms[-first_n:]), "all": _jitter(errors_ms)},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="wall-clock length of the soak (30 for the full one)")
    parser.add_argument("--dir", type=Path, default=None, help="data root (default: temp)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--keep-sim-history", action="store_true",
                        help="inline simulator: keep its per-pulse ground-truth lists "
                        "(they grow)")
    parser.add_argument("--sim-process", choices=("child", "inline"), default="child",
                        help="where the simulated lab runs (default: its own process)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="labkit-soak-"))
    try:
        for record in run(args.minutes, root, args.sample_s, args.keep_sim_history,
                          args.sim_process):
            print(json.dumps(record), flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
