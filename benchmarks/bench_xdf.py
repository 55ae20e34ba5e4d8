"""XDF export and import time of a 30-minute, 5 kHz, 2-channel EMG session (JSON lines).

Lines printed:

- ``xdf_export``: :func:`labkit.xdf.export_xdf` of the session (EMG + markers + log),
  with copying the recording's own files (``data.f32`` + ``times.f64``) in the same run
  as the baseline (what the disk alone costs for those bytes).
- ``xdf_read``: :func:`labkit.xdf.read_xdf` of the file, and ``pyxdf.load_xdf`` (the
  tool labs use; clock sync on, dejitter off) when it is installed.

Usage: ``python benchmarks/bench_xdf.py [--minutes 30] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from labkit.recording import write_recording
from labkit.session import Session
from labkit.xdf import export_xdf, read_xdf

FS = 5000.0


def make_session(root: Path, minutes: float) -> Session:
    """A closed session whose EMG recording holds ``minutes`` of 2-channel 5 kHz data."""
    ses = Session(root, "B01", 1)
    n = int(minutes * 60 * FS)
    stamps = 1000.0 + np.arange(n) / FS
    samples = np.random.default_rng(0).normal(0, 20, (n, 2)).astype(np.float32)
    local = 1000.0 + np.arange(0.0, n / FS, 1.0)
    write_recording(ses.recordings_dir / "emg",
                    {"name": "bench-emg", "type": "EMG", "source_id": "b", "sfreq": FS,
                     "n_channels": 2, "ch_names": ["FDI", "APB"], "units": ["microvolts"] * 2,
                     "ch_types": ["emg", "emg"]},
                    stamps, samples=samples, clock_offsets=(local, np.full(local.size, -2e-5)))
    pulses = 1000.0 + np.arange(5.0, n / FS, 5.0)
    write_recording(ses.recordings_dir / "markers",
                    {"name": "bench-markers", "type": "Markers", "source_id": "m", "sfreq": 0.0,
                     "n_channels": 1, "ch_names": ["m"], "units": [""], "ch_types": ["misc"]},
                    pulses, values=[json.dumps({"event": "pulse", "index": i})
                                    for i in range(pulses.size)])
    for i, t in enumerate(pulses):
        ses.log_pulse(time_s=float(t), intensity_percent=50, index=i, nowait=True)
    ses.close()
    return ses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-xdf-", dir=args.dir))
    try:
        ses = make_session(work / "data", args.minutes)
        rec = ses.recordings_dir / "emg"
        t = time.perf_counter()
        for name in ("data.f32", "times.f64"):
            shutil.copyfile(rec / name, work / name)
        base_s = time.perf_counter() - t
        t = time.perf_counter()
        out = export_xdf(ses, work / "session.xdf")
        export_s = time.perf_counter() - t
        n = int(args.minutes * 60 * FS)
        print(json.dumps({
            "bench": "xdf_export", "minutes": args.minutes, "fs": FS, "n_channels": 2,
            "samples": n, "seconds": round(export_s, 3), "mb": round(out.stat().st_size / 2**20, 1),
            "baseline_copy_recording_files_s": round(base_s, 3),
            "ratio_vs_baseline": round(export_s / base_s, 2)}), flush=True)
        t = time.perf_counter()
        streams = read_xdf(out)
        read_s = time.perf_counter() - t
        line = {"bench": "xdf_read", "samples": int(streams[0].time_stamps.size),
                "labkit_read_xdf_s": round(read_s, 3)}
        try:
            import pyxdf
        except ImportError:
            pyxdf = None
        if pyxdf is not None:
            t = time.perf_counter()
            pyxdf.load_xdf(str(out), dejitter_timestamps=False)
            line["baseline_pyxdf_load_s"] = round(time.perf_counter() - t, 3)
        print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
