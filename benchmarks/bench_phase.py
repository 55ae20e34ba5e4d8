"""Phase accuracy on synthetic EEG against the ground truth, several SNRs.

Virtual subjects (:class:`labkit.sim.eeg.MuEEGSource`, 5 kHz, C3 + four neighbours, mu
peaks 9.5 / 10.5 / 11.5 Hz, 1/f background); Hjorth C3 derivation. For each SNR (dB,
mu power over background power in 8–13 Hz of the Hjorth signal) and subject, 60 s of
EEG; the phase is estimated at random instants (after the first 2 s) and compared with
the true mu phase at that sample. Methods, all in the same run on the same instants:

- ``zrenner-ar`` — baseline, Zrenner 2018 AR(30) pipeline on the last 500 ms;
- ``kalman`` — default ``phase_now`` on the last 500 ms, mu frequency from the window;
- ``kalman-peak`` — the same with the individual mu peak, estimated beforehand
  (``estimate_mu_peak``) from a separate 30 s resting recording of the subject;
- ``tracker`` — the streaming ``PhaseTracker`` (same peak), fed 1 ms chunks.

Reported: circular mean and circular SD (degrees) of the error, over all instants and
over instants whose true mu envelope is above the subject's median ("gated": what an
amplitude gate would let through). Target: SD below the baseline at every SNR; ≤ 45° at a
typical SNR. Prints JSON lines. Run: ``.venv/bin/python benchmarks/bench_phase.py``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from labkit.kernels import hjorth_weights
from labkit.phase import PhaseTracker, estimate_mu_peak, phase_now
from labkit.sim.eeg import MuEEGSource

FS = 5000.0
SUBJECTS = ((101, 9.5), (102, 10.5), (103, 11.5))
WIN = 2500  # 500 ms


def circ_stats_deg(err: np.ndarray) -> tuple[float, float]:
    z = np.mean(np.exp(1j * err))
    return float(np.degrees(np.angle(z))), float(np.degrees(np.sqrt(-2 * np.log(abs(z)))))


def run_subject(seed: int, mu_hz: float, snr_db: float, n_eval: int, seconds: float):
    src = MuEEGSource(seed, snr_db=snr_db, mu_hz=mu_hz)
    w = hjorth_weights(src.channel_names)
    rest = (w @ src.generate(int(FS * 30)))[0]  # resting recording for the peak
    peak = estimate_mu_peak(rest, FS)
    offset = src.n_samples
    h = (w @ src.generate(int(FS * seconds)))[0]
    rng = np.random.default_rng(seed)
    # evaluation instants at 1 ms chunk ends, after 2 s
    idx = np.sort(rng.choice(np.arange(int(2 * FS) + 4, h.size, 5), n_eval, replace=False))
    truth = src.true_phases(idx + offset)
    env = src.envelope(idx + offset)
    gate = env > np.median(src.envelope(np.arange(offset, offset + h.size, 25)))
    est = {"zrenner-ar": [], "kalman": [], "kalman-peak": []}
    for i in idx:
        win = h[i - WIN + 1 : i + 1]
        est["zrenner-ar"].append(phase_now(win, FS, method="zrenner-ar"))
        est["kalman"].append(phase_now(win, FS))
        est["kalman-peak"].append(phase_now(win, FS, mu_hz=peak))
    tracker = PhaseTracker(FS, mu_hz=peak, scale_uv=float(np.std(rest)))
    want = set(idx.tolist())
    trk = {}
    for a in range(0, idx[-1] + 1, 5):
        ph = tracker.update(h[a : a + 5])
        if a + 4 in want:
            trk[a + 4] = ph
    est["tracker"] = [trk[i] for i in idx]
    return {k: np.asarray(v) - truth for k, v in est.items()}, gate, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", type=float, nargs="+", default=[-5.0, 0.0, 5.0, 10.0])
    parser.add_argument("--n-eval", type=int, default=150, help="instants per subject")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    for snr in args.snr:
        errs: dict[str, list] = {}
        gates = []
        peaks = []
        for seed, mu in SUBJECTS:
            e, g, pk = run_subject(seed, mu, snr, args.n_eval, args.seconds)
            for k, v in e.items():
                errs.setdefault(k, []).append(v)
            gates.append(g)
            peaks.append(round(pk, 2))
        gate = np.concatenate(gates)
        row = {"bench": "phase_accuracy", "snr_db": snr, "n": int(gate.size), "peaks_hz": peaks}
        base_sd = None
        for k, v in errs.items():
            err = np.concatenate(v)
            m, sd = circ_stats_deg(err)
            gm, gsd = circ_stats_deg(err[gate])
            row[k] = {
                "mean_deg": round(m, 1),
                "sd_deg": round(sd, 1),
                "gated_mean_deg": round(gm, 1),
                "gated_sd_deg": round(gsd, 1),
            }
            if k == "zrenner-ar":
                base_sd = (sd, gsd)
        row["sd_ratio_vs_baseline"] = {
            k: round(row[k]["sd_deg"] / base_sd[0], 3) for k in errs if k != "zrenner-ar"
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
