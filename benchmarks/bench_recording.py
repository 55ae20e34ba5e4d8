"""Cost of crash safety: fsync'd log latency and recorder throughput (JSON lines).

Lines printed (one JSON object each):

- ``session_log_append``: p50/p99 latency of :meth:`SessionLog.append` (write + fsync)
  and of :meth:`SessionLog.append_nowait` (queued for the writer thread), with the same
  line written by ``os.write`` without fsync as the in-run baseline.
- ``recorder_throughput``: samples/s drained from a local LSL outlet and written by
  :class:`StreamRecorder` (fsync every 0.25 s), with a plain pylsl pull into memory
  (no disk) as the in-run baseline.
- ``read_recording``: time to read the recording back.
- ``kill9_loss``: a subprocess (``tests/helpers_crash.py``) streams, records and logs
  pulses and is killed with SIGKILL; how much before the kill the recording, the marker
  recording and the log end (the requirement is ≤ 1 s), over a few runs. Baseline,
  measured in the same run: how old the newest sample an inlet holds is when polled
  (LSL transport plus the producer's 10 ms chunks, no disk), i.e. what any recorder
  would lose to a kill; and the log's pulse spacing (0.1 s).

Usage: ``python benchmarks/bench_recording.py [--n-log 300] [--seconds 60] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl

from labkit.recording import StreamRecorder, read_recording
from labkit.session import SessionLog


def _fs_type(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _pct(values_s: list[float]) -> dict[str, float]:
    a = np.asarray(values_s) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 4)}


def bench_log(work: Path, n: int) -> dict:
    log = SessionLog(work / "log.jsonl")
    payload = {"intensity_percent": 47, "intensity_rmt_percent": 90, "index": 0,
               "protocol": "m1_10hz_1000", "train_index": 3}
    synced = []
    for i in range(n):
        payload["index"] = i
        t = time.perf_counter()
        log.append("pulse", **payload)
        synced.append(time.perf_counter() - t)
    log.close()
    log = SessionLog(work / "log_nowait.jsonl")
    queued = []
    for i in range(n):
        payload["index"] = i
        t = time.perf_counter()
        log.append_nowait("pulse", **payload)
        queued.append(time.perf_counter() - t)
        time.sleep(0.001)  # pulses are not back to back
    log.close()
    line = (json.dumps({"seq": 0, "time_s": 0.0, "kind": "pulse", "payload": payload}) + "\n"
            ).encode()
    fd = os.open(work / "plain.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    plain = []
    for _ in range(n):
        t = time.perf_counter()
        os.write(fd, line)
        plain.append(time.perf_counter() - t)
    os.close(fd)
    return {"bench": "session_log_append", "n": n, "fs": _fs_type(work),
            "fsync": _pct(synced), "append_nowait": _pct(queued),
            "baseline_unsynced_write": _pct(plain),
            "ratio_p50": round(float(np.median(synced) / max(np.median(plain), 1e-9)), 1)}


def _outlet(name: str, n_ch: int, fs: float) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EMG", n_ch, fs, pylsl.cf_float32, uuid.uuid4().hex)
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=600)


def _push_all(outlet: pylsl.StreamOutlet, n_ch: int, total: int, chunk: int) -> None:
    block = np.random.default_rng(0).normal(0, 20, (chunk, n_ch)).astype(np.float32)
    t0 = pylsl.local_clock()
    for k in range(0, total, chunk):
        outlet.push_chunk(block, t0 + k / 5000.0)


def _wait_consumer(outlet: pylsl.StreamOutlet) -> None:
    end = time.monotonic() + 5
    while not outlet.have_consumers() and time.monotonic() < end:
        time.sleep(0.01)


def bench_recorder(work: Path, seconds: float, n_ch: int = 8, fs: float = 5000.0) -> list[dict]:
    total = int(seconds * fs)
    chunk = 50  # 10 ms at 5 kHz, as an amplifier would send
    # baseline: pull into memory, no disk
    name = f"bench-base-{uuid.uuid4().hex[:6]}"
    outlet = _outlet(name, n_ch, fs)
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, timeout=5)[0], max_buflen=600)
    inlet.open_stream(5)
    _wait_consumer(outlet)
    t = time.perf_counter()
    _push_all(outlet, n_ch, total, chunk)
    got = 0
    while got < total:
        _, stamps = inlet.pull_chunk(timeout=0.05, max_samples=4096, as_numpy=True)
        got += len(stamps)
    base_s = time.perf_counter() - t
    inlet.close_stream()
    del outlet
    # recorder
    name = f"bench-rec-{uuid.uuid4().hex[:6]}"
    outlet = _outlet(name, n_ch, fs)
    rec = StreamRecorder(name, work / "rec", duplicate_wait_s=0.0)
    _wait_consumer(outlet)
    t = time.perf_counter()
    _push_all(outlet, n_ch, total, chunk)
    while rec.n_samples < total and not rec.failed:
        time.sleep(0.001)
    rec_s = time.perf_counter() - t
    rec.stop()
    t = time.perf_counter()
    data, _, _ = read_recording(work / "rec")
    read_s = time.perf_counter() - t
    return [
        {"bench": "recorder_throughput", "n_channels": n_ch, "samples": total,
         "samples_per_s": round(total / rec_s), "realtime_factor_at_5khz": round(
             total / rec_s / fs, 1),
         "baseline_pull_only_samples_per_s": round(total / base_s),
         "ratio_vs_baseline": round(rec_s / base_s, 2), "fs": _fs_type(work)},
        {"bench": "read_recording", "samples": int(data.shape[1]), "n_channels": n_ch,
         "seconds": round(read_s, 4), "mb": round(data.shape[1] * (n_ch * 4 + 8) / 2**20, 1)},
    ]


def _inflight_age_s(seconds: float = 3.0, fs: float = 2000.0, chunk: int = 20) -> float:
    """p99 age of the newest pulled sample for a 2 kHz stream pushed in 10 ms chunks."""
    import threading

    name = f"bench-age-{uuid.uuid4().hex[:6]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EMG", 2, fs, pylsl.cf_float32,
                                                 uuid.uuid4().hex))
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, timeout=5)[0])
    inlet.open_stream(5)
    _wait_consumer(outlet)
    stop = threading.Event()

    def produce() -> None:
        block = np.zeros((chunk, 2), dtype=np.float32)
        t0, k = pylsl.local_clock(), 0
        while not stop.is_set():
            due = t0 + (k + chunk) / fs
            while pylsl.local_clock() < due:
                time.sleep(0.001)
            outlet.push_chunk(block, t0 + (k + chunk - 1) / fs)
            k += chunk

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    ages, newest, end = [], None, time.monotonic() + seconds
    while time.monotonic() < end:
        _, stamps = inlet.pull_chunk(timeout=0.0, as_numpy=True)
        if len(stamps):
            newest = float(stamps[-1])
        if newest is not None:
            ages.append(pylsl.local_clock() - newest)
        time.sleep(0.0037)
    stop.set()
    thread.join(1.0)
    return float(np.percentile(ages, 99))


def bench_kill9(work: Path, runs: int = 3) -> dict:
    import signal
    import subprocess
    import sys

    from labkit.recording import read_markers
    from labkit.session import read_log

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    losses: dict[str, list[float]] = {"recording_s": [], "markers_s": [], "log_s": []}
    for k in range(runs):
        root = work / f"crash{k}"
        proc = subprocess.Popen(
            [sys.executable, str(repo / "tests" / "helpers_crash.py"), str(root),
             f"bench-crash-{uuid.uuid4().hex[:6]}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        proc.stdout.readline()
        time.sleep(1.5 + 0.137 * k)
        t_kill = pylsl.local_clock()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        ses = root / "sub-01" / "ses-01"
        stamps = read_recording(ses / "recordings" / "emg")[1]
        marks = read_markers(ses / "recordings" / "markers")[1]
        pulses = read_log(ses, kind="pulse")
        losses["recording_s"].append(t_kill - float(stamps[-1]))
        losses["markers_s"].append(t_kill - float(marks[-1]))
        losses["log_s"].append(t_kill - pulses[-1].time_s)
    # the log and markers get a pulse every 100 ms, so up to 0.1 s is the pulse spacing
    return {"bench": "kill9_loss", "runs": runs, "limit_s": 1.0,
            "max_loss_s": {k: round(max(v), 4) for k, v in losses.items()},
            "baseline_inflight_age_p99_s": round(_inflight_age_s(), 4),
            "baseline_pulse_spacing_s": 0.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-log", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of 8-channel 5 kHz data pushed through the recorder")
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-", dir=args.dir))
    try:
        print(json.dumps(bench_log(work, args.n_log)), flush=True)
        for line in bench_recorder(work, args.seconds):
            print(json.dumps(line), flush=True)
        print(json.dumps(bench_kill9(work)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
