"""Latency from an LSL sample push to its availability to a reader.

Writer: a pylsl outlet at 5 kHz, 2 channels, one 1 ms chunk (5 samples) per millisecond,
each sample stamped with ``local_clock()`` at push time (last sample = push time).
Readers, one after the other on the same writer:

- ``pylsl_lowlatency``: :class:`labkit.streams.LowLatencyInlet` (drains a pylsl inlet
  into a preallocated array), polled every ~0.2 ms;
- ``mne_lsl_streamlsl``: mne-lsl ``StreamLSL(acquisition_delay=0.001)``, its
  ``get_data(winsize=0.01)`` polled every ~0.2 ms.

For each chunk whose last sample the reader sees for the first time, latency =
``local_clock()`` when the reader returned it minus the push time. Also reported: the
fraction of pushed chunks that a reader surfaced as its newest sample at some poll.
Prints JSON lines; the pylsl reader is the baseline of the StreamLSL figure.

Run: ``.venv/bin/python benchmarks/bench_streams.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid

import numpy as np
import pylsl

from labkit.streams import LowLatencyInlet, connect_stream, local_clock

FS = 5000.0
CHUNK = 5


class Writer:
    """Pushes 1 ms chunks in real time; remembers the push time of each chunk."""

    def __init__(self) -> None:
        self.name = f"bench-streams-{uuid.uuid4().hex[:8]}"
        self.source_id = uuid.uuid4().hex
        info = pylsl.StreamInfo(self.name, "EMG", 2, FS, pylsl.cf_float32, self.source_id)
        chans = info.desc().append_child("channels")
        for label in ("FDI", "APB"):
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
            ch.append_child_value("type", "EMG")
        self.outlet = pylsl.StreamOutlet(info)
        self.pushed: dict[int, float] = {}  # chunk number -> push time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.k = 0

    def _run(self) -> None:
        data = np.zeros((CHUNK, 2), np.float32)
        next_t = time.perf_counter()
        while not self._stop.is_set():
            next_t += CHUNK / FS
            while time.perf_counter() < next_t:
                time.sleep(0.0001)
            now = local_clock()
            chunk = self.k // CHUNK
            data[:, 0] = np.arange(self.k, self.k + CHUNK)  # sample number on the wire
            stamps = now - (CHUNK - 1 - np.arange(CHUNK)) / FS
            self.pushed[chunk] = now
            self.outlet.push_chunk(data, stamps.tolist())
            self.k += CHUNK

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _latencies(seen: dict[int, float], pushed: dict[int, float]) -> np.ndarray:
    return np.array([(t - pushed[c]) * 1000.0 for c, t in seen.items() if c in pushed])


def measure_lowlatency(writer: Writer, seconds: float) -> dict:
    inlet = LowLatencyInlet(writer.name, source_id=writer.source_id, clocksync=False)
    inlet.pull()
    start_chunk = writer.k // CHUNK + 10
    seen: dict[int, float] = {}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        data, _ = inlet.pull()
        now = local_clock()
        if len(data):
            for s in data[:, 0]:
                if int(s) % CHUNK == CHUNK - 1:
                    c = int(s) // CHUNK
                    if c >= start_chunk:
                        seen.setdefault(c, now)
        time.sleep(0.0002)
    inlet.close()
    last_chunk = writer.k // CHUNK
    return _summary("pylsl_lowlatency", seen, writer.pushed, start_chunk, last_chunk)


def measure_streamlsl(writer: Writer, seconds: float) -> dict:
    stream = connect_stream(writer.name, source_id=writer.source_id, bufsize_s=2.0,
                            acquisition_delay_s=0.001)
    time.sleep(0.2)
    start_chunk = writer.k // CHUNK + 10
    seen: dict[int, float] = {}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        data, _ = stream.get_data(winsize=0.01)
        now = local_clock()
        newest = int(data[0, -1])
        if newest % CHUNK == CHUNK - 1 and newest // CHUNK >= start_chunk:
            seen.setdefault(newest // CHUNK, now)
        time.sleep(0.0002)
    stream.disconnect()
    last_chunk = writer.k // CHUNK
    return _summary("mne_lsl_streamlsl", seen, writer.pushed, start_chunk, last_chunk)


def _summary(reader: str, seen, pushed, first: int, last: int) -> dict:
    lat = _latencies(seen, pushed)
    n_chunks = max(last - first, 1)
    return {
        "bench": "lsl_push_to_available",
        "reader": reader,
        "fs_hz": FS,
        "chunk_samples": CHUNK,
        "n": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 4) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 4) if lat.size else None,
        "max_ms": round(float(lat.max()), 4) if lat.size else None,
        "chunks_surfaced_fraction": round(lat.size / n_chunks, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    logging.getLogger("mne_lsl").setLevel(logging.WARNING)
    writer = Writer()
    writer.start()
    try:
        time.sleep(0.3)
        base = measure_lowlatency(writer, args.seconds)
        print(json.dumps(base), flush=True)
        other = measure_streamlsl(writer, args.seconds)
        other["baseline_reader"] = base["reader"]
        other["baseline_p50_ms"] = base["p50_ms"]
        other["baseline_p99_ms"] = base["p99_ms"]
        if base["p50_ms"] and other["p50_ms"]:
            other["p50_ratio_vs_baseline"] = round(other["p50_ms"] / base["p50_ms"], 2)
        print(json.dumps(other), flush=True)
    finally:
        writer.stop()


if __name__ == "__main__":
    main()
