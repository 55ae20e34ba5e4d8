"""Trigger-to-discharge latency: TTL trigger line vs serial fire command, on the emulators.

For each vendor, fires ``--n`` pulses through ``fire()`` twice: once with the serial fire
command (the baseline, measured in the same run) and once through a TTL line (the URL
port's RTS for the Magstim, as MagPy's quickFire wires it; a wired trigger box for the
MagPro). Prints one JSON object per line with, in ms, p50/p99/max of

* ``to_discharge``: the emulated discharge time minus the marker time (what the marker
  is off by), and
* ``fire_call``: how long ``fire()`` blocks the caller (the closed loop's budget; a
  DuoMAG's includes waiting for the status frame that confirms the pulse, up to two
  20 ms frame periods).

These are emulator figures: they measure labkit's own path (driver, line, transport),
not a unit's input stage or a USB adapter, and the in-process serial link has no baud
delay (a real 9600-baud ``EH`` spends ~3 ms on the wire before the unit can act, a
38400-baud MagPro ``03 01`` ~1.6 ms). The TTL pulse width (1 ms) adds to ``fire_call``.

Run: ``.venv/bin/python benchmarks/bench_ttl_trigger.py [--n 200]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.sim import WiredTrigger
from labkit.sim.duomag_emulator import DuoMAGEmulator
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.stimulators.duomag import DuoMAG
from labkit.stimulators.magpro import MagPro
from labkit.stimulators.magstim import Magstim
from labkit.stimulators.trigger import SerialLineTrigger


def _stats(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3),
            "p99_ms": round(p99 * 1e3, 3), "max_ms": round(ordered[-1] * 1e3, 3)}


def _run(stim, discharges: list, n: int) -> tuple[list[float], list[float]]:
    offsets, calls = [], []
    for _ in range(n):
        before = len(discharges)
        start = time.perf_counter()
        event = stim.fire()
        calls.append(time.perf_counter() - start)
        deadline = time.monotonic() + 1.0
        while len(discharges) == before and time.monotonic() < deadline:
            time.sleep(0.0002)
        offsets.append(discharges[-1].time_s - event.time_s)
        time.sleep(0.002)
    return offsets, calls


def bench_magstim(n: int) -> list[dict]:
    discharges: list = []
    emulator = MagstimEmulator("200", pty=False, arm_delay_s=0.0, recharge_s=0.0,
                               keepalive_timeout_s=30.0, coil=discharges.append)
    stim = Magstim(emulator.url, keepalive=False).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        rows = []
        for path in ("serial", "ttl"):
            stim.use_trigger(SerialLineTrigger.sharing(stim) if path == "ttl" else None)
            _run(stim, discharges, 5)  # warm up
            offsets, calls = _run(stim, discharges, n)
            rows.append({"vendor": "magstim-200", "path": path,
                         "line": "own port RTS" if path == "ttl" else "EH command",
                         "to_discharge": _stats(offsets), "fire_call": _stats(calls)})
        return rows
    finally:
        stim.close()
        emulator.stop()


def bench_magpro(n: int) -> list[dict]:
    discharges: list = []
    emulator = MagProEmulator(pty=False, coil=discharges.append)
    stim = MagPro(emulator.url, keepalive=False).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        rows = []
        for path in ("serial", "ttl"):
            stim.use_trigger(WiredTrigger(emulator) if path == "ttl" else None)
            _run(stim, discharges, 5)
            offsets, calls = _run(stim, discharges, n)
            rows.append({"vendor": "magpro-x100", "path": path,
                         "line": "wired TTL box" if path == "ttl" else "03 01 command",
                         "to_discharge": _stats(offsets), "fire_call": _stats(calls)})
        return rows
    finally:
        stim.close()
        emulator.stop()


def bench_duomag(n: int) -> list[dict]:
    discharges: list = []
    emulator = DuoMAGEmulator(pty=False, charge_s=0.0, coil=discharges.append)
    stim = DuoMAG(emulator.url, keepalive=False).connect()
    try:
        stim.set_intensity(40)
        stim.arm()
        rows = []
        for path in ("serial", "ttl"):
            stim.use_trigger(WiredTrigger(emulator) if path == "ttl" else None)
            _run(stim, discharges, 5)
            offsets, calls = _run(stim, discharges, n)
            rows.append({"vendor": "duomag-mp", "path": path,
                         "line": "wired TTL box" if path == "ttl" else "121 121 command",
                         "to_discharge": _stats(offsets), "fire_call": _stats(calls)})
        return rows
    finally:
        stim.close()
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="pulses per path and vendor")
    args = parser.parse_args()
    for bench in (bench_magstim, bench_magpro, bench_duomag):
        rows = bench(args.n)
        for row in rows:
            role = "baseline (same run)" if row["path"] == "serial" else "measured"
            print(json.dumps({"bench": "ttl_trigger", "n": args.n, "role": role, **row}),
                  flush=True)


if __name__ == "__main__":
    main()
