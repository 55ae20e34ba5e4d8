"""MagPro status round-trip latency, driver → emulator → driver, through URL and pty.

Prints one JSON object per line: the driver's ``status()`` round trip (5-byte request,
13-byte reply, framing + CRC + parsing on both ends) with p50/p99 in ms, next to an
in-run baseline: a raw echo of the same frame sizes through the same transport
(pyserial write/read against a bare emulator that answers 5 bytes with 13 fixed bytes,
no parsing anywhere).

Run: ``.venv/bin/python benchmarks/bench_magpro_latency.py [n]``
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import serial

import labkit.sim  # noqa: F401  (registers labkitsim://)
from labkit.sim.magpro_emulator import MagProEmulator
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import magpro_protocol as proto
from labkit.stimulators.magpro import MagPro

STATUS_REPLY = proto.build_frame(bytes((0, 0x34, 1, 0xE2, 0x40, 23, 60, 60, 0)))


class _RawEcho(SerialEmulator):
    """Answers every 5 bytes received with a fixed 13-byte frame; no parsing."""

    def __init__(self) -> None:
        self._pending = 0
        super().__init__(tick_s=0.05)

    def handle_bytes(self, data: bytes) -> None:
        self._pending += len(data)
        while self._pending >= 5:
            self._pending -= 5
            self.reply(STATUS_REPLY)


def _percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def _driver_round_trips(port: str, n: int) -> list[float]:
    out = []
    with MagPro(port, keepalive=False) as stim:
        for _ in range(20):
            stim.status()
        for _ in range(n):
            t0 = time.perf_counter()
            stim.status()
            out.append(time.perf_counter() - t0)
    return out


def _raw_round_trips(port: str, n: int) -> list[float]:
    out = []
    request = proto.status_command()
    ser = serial.serial_for_url(port, baudrate=38400, timeout=1.0)
    try:
        for i in range(n + 20):
            t0 = time.perf_counter()
            ser.write(request)
            reply = ser.read(len(STATUS_REPLY))
            dt = time.perf_counter() - t0
            if len(reply) != len(STATUS_REPLY):
                raise RuntimeError(f"raw echo returned {len(reply)} bytes")
            if i >= 20:
                out.append(dt)
    finally:
        ser.close()
    return out


def main(n: int = 500) -> None:
    emulator = MagProEmulator(pty=os.name == "posix")
    echo = _RawEcho()
    try:
        transports = [("url", emulator.url, echo.url)]
        if emulator.pty_path and echo.pty_path:
            transports.append(("pty", emulator.pty_path, echo.pty_path))
        for name, driver_port, echo_port in transports:
            driver = _percentiles(_driver_round_trips(driver_port, n))
            raw = _percentiles(_raw_round_trips(echo_port, n))
            print(json.dumps({
                "bench": "magpro_status_round_trip", "transport": name, "n": n,
                "request_bytes": 5, "reply_bytes": 13, **driver,
                "baseline": "raw_echo_same_sizes_no_parsing",
                "baseline_p50_ms": raw["p50_ms"], "baseline_p99_ms": raw["p99_ms"],
                "overhead_p50_ms": round(driver["p50_ms"] - raw["p50_ms"], 4),
            }), flush=True)
    finally:
        emulator.stop()
        echo.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
