"""Kernel throughput and per-chunk compute latency of the real-time chain.

1. Artifact interpolation (``labkit.kernels.artifact.interpolate``, linear) on 64 channels
   × 5 kHz × 60 s with 60 pulses (window −1…+10 ms), against a plain numpy implementation
   and ``mne.preprocessing.fix_stim_artifact`` (linear mode, same window), all in this run
   and all with the same contract: in place, only the window interiors change, output
   bit-identical (checked first). numpy is written as one would for speed: per window one
   expression over all channels, the offsets built once, the interpolation expression
   scipy's ``interp1d`` (hence MNE) evaluates, ``(y1 - y0) / h * k + y0``.

   Timing: one untimed warm-up call of each, then ``--rounds`` rounds; each round runs
   every method once, one after another, each on its own fresh copy of the recording
   (so the windows start out of cache, as in a recording just loaded, and a load spike
   hits all methods alike). Reported: the minimum over rounds (``*_ms``, the figure the
   ratios use) and the median (``*_median_ms``).

   Memory-traffic floor, measured in the same run: every cache line of the windows has
   to be written once and the lines holding the anchors read once; ``floor_ms`` is those
   bytes at the copy bandwidth (bytes read + written per second of a 128 MiB copy, the
   better of ``np.copyto`` and a compiled loop, timed in the same rounds).
   ``call_cold_ms`` is a call with no onsets right after a fresh copy: the interpreter
   and dispatch cost with cold caches, the part of the figure that is not the kernel.
2. Real-time artifact interpolation per 1 ms chunk (64 channels × 5 samples, one pulse
   per second, each registered in the chunk it is fired in): ``StreamInterpolator.process``,
   against its memory-traffic floor (the chunk read and written once at copy bandwidth).
3. Per-chunk compute latency of clean + filter + phase on 1 ms chunks (5 samples × 5
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

from labkit.kernels import (
    Blanker,
    SosFilter,
    SpatialFilter,
    StreamInterpolator,
    interpolate,
    warm_up,
)
from labkit.phase import PhaseTracker, phase_now
from labkit.sim.eeg import MuEEGSource

FS = 5000.0
LINE_BYTES = 64


def numpy_interpolate(data: np.ndarray, onsets, pre: int, post: int) -> None:
    """numpy linear interpolation of each window, all channels at once, in place."""
    h = pre + post
    k = np.arange(1, h, dtype=np.float64)
    for o in onsets:
        a, b = o - pre, o + post
        y0 = data[:, a : a + 1]
        data[:, a + 1 : b] = (data[:, b : b + 1] - y0) / h * k + y0


def mne_interpolate(raw: mne.io.BaseRaw, events: np.ndarray, pre: int, post: int) -> None:
    """``mne.preprocessing.fix_stim_artifact`` in linear mode, the same window."""
    mne.preprocessing.fix_stim_artifact(raw, events, 1, tmin=-pre / FS, tmax=post / FS)


def cache_lines(data: np.ndarray, first: np.ndarray, last: np.ndarray) -> int:
    """Distinct 64-byte lines holding samples ``first[j]..last[j]`` of every row."""
    row0 = data.__array_interface__["data"][0] + np.arange(data.shape[0])[:, None] * data.strides[0]
    lo = (row0 + first[None, :] * 8) // LINE_BYTES
    hi = (row0 + last[None, :] * 8) // LINE_BYTES
    return int(np.sum(hi - lo + 1))


@njit(cache=True, nogil=True)
def _copy_loop(dst, src):
    for i in range(src.shape[0]):
        dst[i] = src[i]


COPY_BYTES = 1 << 27


def copy_methods() -> dict:
    """Round-robin entries copying ``COPY_BYTES``: ``np.copyto`` and a compiled loop
    (which may use streaming stores); the better one gives the copy bandwidth."""
    src = np.ones(COPY_BYTES // 8)
    dst = np.zeros_like(src)
    _copy_loop(dst[:8], src[:8])
    return {
        "copy_np": (lambda: None, lambda _: np.copyto(dst, src)),
        "copy_loop": (lambda: None, lambda _: _copy_loop(dst, src)),
    }


def copy_bandwidth_gb_s(times: dict[str, list[float]]) -> float:
    """Bytes read + written per second by the faster copy of :func:`copy_methods`, GB/s."""
    return 2 * COPY_BYTES / min(min(times["copy_np"]), min(times["copy_loop"])) / 1e9


def timed_rounds(methods: dict, rounds: int) -> dict[str, list[float]]:
    """Run ``methods`` (name → (setup, fn)) round-robin; seconds per call of each."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(rounds + 1):  # round 0 is the warm-up
        for name, (setup, fn) in methods.items():
            arg = setup()
            t0 = time.perf_counter()
            fn(arg)
            dt = time.perf_counter() - t0
            if r:
                times[name].append(dt)
    return times


def bench_artifact(seconds: float, rounds: int) -> dict:
    n_ch, n = 64, int(FS * seconds)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n_ch, n)) * 20
    onsets = np.linspace(FS, n - FS, 60).astype(np.int64)
    pre, post = 5, 50  # -1 ms … +10 ms
    info = mne.create_info(n_ch, FS, "eeg")
    events = np.c_[onsets, np.zeros(60, int), np.ones(60, int)]

    # same output, bit for bit, and only inside the windows
    ours = interpolate(base.copy(), onsets, pre, post, "linear")
    ref_np = base.copy()
    numpy_interpolate(ref_np, onsets, pre, post)
    raw = mne.io.RawArray(base.copy(), info, verbose=False)
    mne_interpolate(raw, events, pre, post)
    assert np.array_equal(ours, ref_np) and np.array_equal(ours, raw.get_data())
    changed = np.flatnonzero(np.any(ours != base, axis=0))
    assert np.all(np.isin(changed, (onsets[:, None] + np.arange(1 - pre, post)).ravel()))
    del ours, ref_np, raw  # 3 x 150 MB not needed while timing

    no_onsets = np.zeros(0, np.int64)
    methods = {
        "numba_linear": (base.copy, lambda d: interpolate(d, onsets, pre, post, "linear")),
        "numba_cubic": (base.copy, lambda d: interpolate(d, onsets, pre, post, "cubic")),
        "numpy_linear": (base.copy, lambda d: numpy_interpolate(d, onsets, pre, post)),
        "mne_fix_stim_artifact": (
            lambda: mne.io.RawArray(base.copy(), info, verbose=False),
            lambda r: mne_interpolate(r, events, pre, post),
        ),
        "call_cold": (base.copy, lambda d: interpolate(d, no_onsets, pre, post, "linear")),
    }
    times = timed_rounds(methods | copy_methods(), rounds)
    best = {name: min(t) for name, t in times.items()}
    median = {name: float(np.median(t)) for name, t in times.items()}

    bandwidth = copy_bandwidth_gb_s(times)
    window_lines = cache_lines(base, onsets - pre, onsets + post)
    anchor_lines = cache_lines(base, onsets - pre, onsets - pre) + cache_lines(
        base, onsets + post, onsets + post
    )
    floor_s = (window_lines + anchor_lines) * LINE_BYTES / (bandwidth * 1e9)
    t_numba = best["numba_linear"]
    row = {
        "bench": "artifact_interpolate",
        "n_channels": n_ch,
        "fs_hz": FS,
        "seconds": seconds,
        "n_pulses": 60,
        "window_samples": [-pre, post],
        "rounds": rounds,
        "output_identical": True,
    }
    for name in methods:
        row[f"{name}_ms"] = round(best[name] * 1e3, 4)
        row[f"{name}_median_ms"] = round(median[name] * 1e3, 4)
    row |= {
        "speedup_vs_numpy": round(best["numpy_linear"] / t_numba, 1),
        "speedup_vs_mne": round(best["mne_fix_stim_artifact"] / t_numba, 1),
        "speedup_vs_numpy_median": round(median["numpy_linear"] / median["numba_linear"], 1),
        "speedup_vs_mne_median": round(median["mne_fix_stim_artifact"] / median["numba_linear"], 1),
        "per_pulse_us": round(t_numba / 60 * 1e6, 2),
        "window_cache_lines": window_lines,
        "anchor_cache_lines": anchor_lines,
        "copy_bandwidth_gb_s": round(bandwidth, 2),
        "floor_ms": round(floor_s * 1e3, 4),
        "floor_per_pulse_us": round(floor_s / 60 * 1e6, 2),
        "x_floor": round(t_numba / floor_s, 2),
        "recording_s_per_s_numba": round(seconds / t_numba),
    }
    return row


def bench_stream_interpolator(n_chunks: int, bandwidth_gb_s: float) -> dict:
    """Per-chunk cost of real-time interpolation against the chunk's memory traffic."""
    n_ch, chunk, pre, post = 64, 5, 5, 50
    data = np.random.default_rng(3).standard_normal((n_ch, chunk * (n_chunks + 100))) * 20
    si = StreamInterpolator(n_ch, pre, post, "linear")
    onsets = set(range(2500, data.shape[1], 5000))  # one pulse per second
    chunks = [np.ascontiguousarray(data[:, k * chunk : (k + 1) * chunk]) for k in range(n_chunks)]
    lat = []
    for k, c in enumerate(chunks):
        for onset in range(k * chunk, (k + 1) * chunk):
            if onset in onsets:  # registered when it is fired, as the controller does
                si.add_onset(onset)
        t0 = time.perf_counter()
        si.process(c)
        lat.append(time.perf_counter() - t0)
    lat = lat[100:]  # after warm-up
    floor_s = 2 * chunks[0].nbytes / (bandwidth_gb_s * 1e9)
    return {
        "bench": "stream_interpolator_chunk",
        "n_channels": n_ch,
        "chunk_samples": chunk,
        **_percentiles(lat),
        "floor_us": round(floor_s * 1e6, 4),
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
    parser.add_argument(
        "--only", choices=("artifact", "all"), default="all", help="run only the artifact part"
    )
    args = parser.parse_args()
    t_warm = warm_up()
    print(json.dumps({"bench": "warm_up", "seconds": round(t_warm, 3)}), flush=True)
    artifact = bench_artifact(60.0, 5 if args.quick else 15)
    print(json.dumps(artifact), flush=True)
    n_chunks, n_base = (5000, 200) if args.quick else (30000, 1000)
    stream = bench_stream_interpolator(n_chunks, artifact["copy_bandwidth_gb_s"])
    print(json.dumps(stream), flush=True)
    if args.only == "artifact":
        return
    for row in bench_chunk_latency(n_chunks, n_base):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
