"""Command round-trip latency, driver → emulator → driver, through the URL and the pty.

Prints one JSON object per line: the vendor, the transport, p50/p99/max of a status
query in ms, and the baseline measured in the same run: a trivial echo device on the
same transport answering a same-sized message (what the transport alone costs).

Adding a vendor is one entry in :data:`VENDORS`: a function that starts an emulator, a
function that opens a connected driver on a port, and the status query to time.

Run: ``.venv/bin/python benchmarks/bench_stimulator_latency.py [--n 300]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

import labkit.sim  # noqa: F401  (registers the labkitsim:// URL scheme)
from labkit.sim.magstim_emulator import MagstimEmulator
from labkit.sim.transport import SerialEmulator
from labkit.stimulators.magstim import Magstim, Rapid


@dataclass(frozen=True)
class Vendor:
    """How to benchmark one stimulator family."""

    start_emulator: Callable[[], SerialEmulator]
    open_driver: Callable[[str], object]
    query: Callable[[object], object]
    #: Bytes of the timed command and of its reply (the reply size sizes the echo baseline).
    command_bytes: int
    reply_bytes: int
    baudrate: int


VENDORS: dict[str, Vendor] = {
    "magstim-200": Vendor(
        start_emulator=lambda: MagstimEmulator("200"),
        open_driver=lambda port: Magstim(port, keepalive=False).connect(),
        query=lambda stim: stim.status(),
        command_bytes=3, reply_bytes=3, baudrate=9600,
    ),
    "magstim-rapid2": Vendor(
        start_emulator=lambda: MagstimEmulator("rapid"),
        open_driver=lambda port: Rapid(port, keepalive=False).connect(),
        query=lambda stim: stim.status(),
        command_bytes=3, reply_bytes=6, baudrate=9600,  # x@
    ),
}


class EchoEmulator(SerialEmulator):
    """Baseline device: sends back every byte it receives."""

    def handle_bytes(self, data: bytes) -> None:
        self.reply(data)


def _summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3),
            "p99_ms": round(p99 * 1e3, 3), "max_ms": round(ordered[-1] * 1e3, 3)}


def _time(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(10):  # warm up
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def _echo_baseline(transport: str, message_bytes: int, baudrate: int, n: int) -> list[float]:
    echo = EchoEmulator()
    try:
        address = echo.url if transport == "url" else echo.pty_path
        port = serial.serial_for_url(address, baudrate=baudrate, timeout=1.0)
        message = b"x" * message_bytes

        def round_trip() -> None:
            port.write(message)
            if len(port.read(message_bytes)) != message_bytes:
                raise RuntimeError(f"echo on {transport} lost bytes")

        try:
            return _time(round_trip, n)
        finally:
            port.close()
    finally:
        echo.stop()


def run(n: int) -> list[dict]:
    """Measure every vendor on every transport; return the JSON records."""
    transports = ["url"] + (["pty"] if os.name == "posix" else [])
    records = []
    for name, vendor in VENDORS.items():
        for transport in transports:
            baseline = _echo_baseline(transport, vendor.reply_bytes, vendor.baudrate, n)
            emulator = vendor.start_emulator()
            try:
                address = emulator.url if transport == "url" else emulator.pty_path
                driver = vendor.open_driver(address)
                try:
                    samples = _time(lambda d=driver, q=vendor.query: q(d), n)
                finally:
                    driver.close()
            finally:
                emulator.stop()
            records.append({
                "benchmark": "stimulator_command_round_trip", "vendor": name,
                "transport": transport, "command": "status", "n": n,
                **_summary(samples),
                # Computed, not measured: emulators deliver bytes instantly, a real line
                # needs 10 bits per byte (8N1) for the command and for the reply.
                "wire_ms_at_baud_computed": round(
                    (vendor.command_bytes + vendor.reply_bytes) * 10 / vendor.baudrate * 1e3, 3),
                "baseline": {"what": f"echo of {vendor.reply_bytes} bytes, same transport",
                             **_summary(baseline)},
            })
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="round trips per measurement")
    args = parser.parse_args()
    for record in run(args.n):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
