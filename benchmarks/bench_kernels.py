"""Kernel throughput and per-chunk compute latency of the real-time chain.

1. Artifact interpolation (``labkit.kernels.artifact.interpolate``) on 64 channels ×
   5 kHz × 60 s with 60 pulses (window −1…+10 ms), against a plain numpy implementation
   and against ``mne.preprocessing.fix_stim_artifact`` (linear mode, same window), all in
   this run; best of 7 on a fresh copy each time (the windows start out of cache, as in
   an offline recording); the outputs are checked equal first. The cost is set against
   the memory-traffic floor measured in the same run: the kernel only touches the cache
   lines of the artifact windows (anchors and interiors), so the floor is those lines
   read once and written back once at the bandwidth of a large ``np.copyto``
   (``floor_ms``), and, closer to what the hardware allows for scattered windows, the
   time a numba loop needs just to read one value from each of those lines
   (``read_lines_ms``). ``per_pulse_us`` is the cost of one pulse's window over all
   channels.
2. Per-chunk compute latency of clean + filter + phase on 1 ms chunks (5 samples × 5
   channels at 5 kHz): sample-and-hold blanking → Hjorth spatial filter → causal IIR
   (2nd-order low-pass 100 Hz, persistent state) → oscillator-Kalman ``PhaseTracker``
   update and phase read-out. Baselines in the same run: the same chain ending in the
   window methods ``phase_now(last 500 ms, method="kalman")`` and
   ``phase_now(last 500 ms, method="zrenner-ar")`` (Zrenner 2018 AR pipeline) per chunk.

Prints one JSON object per line. Run: ``.venv/bin/python benchmarks/bench_kernels.py``
(``--quick`` for a shorter run).
"""

from __future__ import annotations

import argparse
import json
import time

import mne
import numpy as np
from numba import njit
from scipy import signal

from labkit.kernels import Blanker, SosFilter, SpatialFilter, interpolate, warm_up
from labkit.phase import PhaseTracker, phase_now
from labkit.sim.eeg import MuEEGSource

FS = 5000.0


def numpy_interpolate(data: np.ndarray, onsets, pre: int, post: int) -> None:
    """Plain numpy linear interpolation of each window, all channels at once."""
    for o in onsets:
        a, b = o - pre, o + post
        w = (np.arange(a + 1, b) - a) / (b - a)
        data[:, a + 1 : b] = data[:, a : a + 1] * (1 - w) + data[:, b : b + 1] * w


@njit(cache=True, nogil=True)
def _read_lines(data, starts, stops):
    """Read one value from every 64-byte line of every window (the traffic floor)."""
    acc = 0.0
    for j in range(starts.shape[0]):
        for c in range(data.shape[0]):
            for i in range(starts[j], stops[j] + 1, 8):
                acc += data[c, i]
            acc += data[c, stops[j]]
    return acc


def window_lines(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> int:
    """Distinct 64-byte cache lines holding samples ``starts[j]..stops[j]`` of every row."""
    row0 = data.__array_interface__["data"][0] + np.arange(data.shape[0])[:, None] * data.strides[0]
    first = (row0 + starts[None, :] * 8) // 64
    last = (row0 + stops[None, :] * 8) // 64
    return int(np.sum(last - first + 1))


def copy_bandwidth_gb_s(n_bytes: int = 1 << 27) -> float:
    """Memory bandwidth of a large ``np.copyto`` (bytes read + written per second), GB/s."""
    src = np.ones(n_bytes // 8)
    dst = np.zeros_like(src)
    t = best_of(lambda _: np.copyto(dst, src), lambda: None, repeat=5)
    return 2 * n_bytes / t / 1e9


def best_of(fn, setup, repeat=7) -> float:
    times = []
    for _ in range(repeat):
        arg = setup()
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_artifact(seconds: float) -> dict:
    n_ch, n = 64, int(FS * seconds)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n_ch, n)) * 20
    onsets = np.linspace(FS, n - FS, 60).astype(np.int64)
    pre, post = 5, 50  # -1 ms … +10 ms
    info = mne.create_info(n_ch, FS, "eeg")
    events = np.c_[onsets, np.zeros(60, int), np.ones(60, int)]

    # correctness first
    a = base.copy()
    interpolate(a, onsets, pre, post, "linear")
    b = base.copy()
    numpy_interpolate(b, onsets, pre, post)
    raw = mne.io.RawArray(base.copy(), info, verbose=False)
    mne.preprocessing.fix_stim_artifact(raw, events, 1, tmin=-pre / FS, tmax=post / FS)
    assert np.allclose(a, b, atol=1e-9) and np.allclose(a, raw.get_data(), atol=1e-9)

    starts, stops = onsets - pre, onsets + post
    n_lines = window_lines(base, starts, stops)
    _read_lines(base, starts, stops)
    t_read = best_of(lambda d: _read_lines(d, starts, stops), base.copy)
    bandwidth = copy_bandwidth_gb_s()
    floor_s = 2 * 64 * n_lines / (bandwidth * 1e9)
    t_numba = best_of(lambda d: interpolate(d, onsets, pre, post, "linear"), base.copy)
    t_cubic = best_of(lambda d: interpolate(d, onsets, pre, post, "cubic"), base.copy)
    t_numpy = best_of(lambda d: numpy_interpolate(d, onsets, pre, post), base.copy)
    t_mne = best_of(
        lambda r: mne.preprocessing.fix_stim_artifact(r, events, 1, tmin=-pre / FS, tmax=post / FS),
        lambda: mne.io.RawArray(base.copy(), info, verbose=False),
    )
    return {
        "bench": "artifact_interpolate",
        "n_channels": n_ch,
        "fs_hz": FS,
        "seconds": seconds,
        "n_pulses": 60,
        "window_samples": [-pre, post],
        "numba_linear_ms": round(t_numba * 1e3, 4),
        "numba_cubic_ms": round(t_cubic * 1e3, 4),
        "numpy_linear_ms": round(t_numpy * 1e3, 4),
        "mne_fix_stim_artifact_ms": round(t_mne * 1e3, 4),
        "speedup_vs_numpy": round(t_numpy / t_numba, 1),
        "speedup_vs_mne": round(t_mne / t_numba, 1),
        "per_pulse_us": round(t_numba / 60 * 1e6, 2),
        "window_cache_lines": n_lines,
        "copy_bandwidth_gb_s": round(bandwidth, 2),
        "floor_ms": round(floor_s * 1e3, 4),
        "floor_per_pulse_us": round(floor_s / 60 * 1e6, 2),
        "read_lines_ms": round(t_read * 1e3, 4),
        "x_floor": round(t_numba / floor_s, 2),
        "x_read_lines": round(t_numba / t_read, 2),
        "recording_s_per_s_numba": round(seconds / t_numba),
    }


def _percentiles(lat_s: list[float]) -> dict:
    arr = np.asarray(lat_s) * 1e3
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
        "max_ms": round(float(arr.max()), 4),
        "n_chunks": int(arr.size),
    }


def bench_chunk_latency(n_chunks: int, n_baseline: int) -> list[dict]:
    src = MuEEGSource(1, snr_db=0.0)
    chunk = 5
    data = src.generate(chunk * (n_chunks + 2600))
    sos = signal.butter(2, 100, fs=FS, output="sos")
    onsets = np.arange(3000, data.shape[1], 5000)  # one pulse per second
    names = src.channel_names

    def make():
        blanker = Blanker(5, 5, 50)
        for o in onsets:
            blanker.add_onset(int(o))
        return blanker, SpatialFilter.hjorth(names), SosFilter(sos, 1)

    out = []
    # recursive tracker (the design for the loop)
    blanker, spatial, filt = make()
    tracker = PhaseTracker(FS, mu_hz=10.5, scale_uv=10.0)
    lat = []
    for k in range(n_chunks):
        c = np.ascontiguousarray(data[:, k * chunk : (k + 1) * chunk])
        t0 = time.perf_counter()
        y = filt.process(spatial.process(blanker.process(c)))
        tracker.update(y[0])
        _ = tracker.phase
        lat.append(time.perf_counter() - t0)
    out.append({"bench": "chunk_latency", "method": "kalman-tracker", **_percentiles(lat)})

    # window methods: same chain, then phase_now on the last 500 ms each chunk
    for method, n_run in (("kalman", n_baseline), ("zrenner-ar", n_baseline)):
        blanker, spatial, filt = make()
        hist = np.zeros(2500)
        lat = []
        for k in range(n_run + 500):
            c = np.ascontiguousarray(data[:, k * chunk : (k + 1) * chunk])
            t0 = time.perf_counter()
            y = filt.process(spatial.process(blanker.process(c)))
            hist[:-chunk] = hist[chunk:]
            hist[-chunk:] = y[0]
            if k >= 500:
                phase_now(hist, FS, method=method)
                lat.append(time.perf_counter() - t0)
        out.append(
            {"bench": "chunk_latency", "method": f"{method}-window-500ms", **_percentiles(lat)}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run")
    args = parser.parse_args()
    t_warm = warm_up()
    print(json.dumps({"bench": "warm_up", "seconds": round(t_warm, 3)}), flush=True)
    print(json.dumps(bench_artifact(10.0 if args.quick else 60.0)), flush=True)
    n_chunks, n_base = (5000, 200) if args.quick else (30000, 1000)
    for row in bench_chunk_latency(n_chunks, n_base):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
