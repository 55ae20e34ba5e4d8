"""One byte from the experiment's process to an emulator in another process: pty vs TCP.

The simulated lab's stimulator is reached over a pseudo-terminal, like a real unit over
its serial port; the closed-loop benchmark can reach its emulator over loopback TCP
instead (``bench_closed_loop.py --links``). This benchmark isolates the link: a writer
thread sends one byte every 5 ms and a reader in a child process stamps its arrival
(``time.monotonic`` is one clock for both processes), with the writer and the reader at
SCHED_FIFO where permitted, on an idle machine and with two busy processes. No labkit
code is involved: what the pty adds over TCP here is what the kernel's pty path adds
(Linux hands pty input to an ordinary-priority kernel worker), not labkit.

Prints one JSON line per link and load: p50/p99/max in ms, and
``p99_minus_tcp_p99_ms`` against the TCP link measured in the same run and load.

Run: ``.venv/bin/python benchmarks/bench_serial_link.py [--n 400]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pty
import socket
import sys
import time
import tty
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import busy_processes, machine  # noqa: E402

PERIOD_S = 0.005


def _realtime(priority: int) -> bool:
    """SCHED_FIFO for the calling thread where permitted."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


def _read_pty(fd: int, n: int, queue) -> None:
    _realtime(30)
    arrivals: list[float] = []
    while len(arrivals) < n:
        data = os.read(fd, 64)  # bytes that waited together arrive together
        arrivals.extend([time.monotonic()] * len(data))
    queue.put(arrivals)


def _read_tcp(listener: socket.socket, n: int, queue) -> None:
    _realtime(30)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    arrivals: list[float] = []
    while len(arrivals) < n:
        data = conn.recv(64)
        arrivals.extend([time.monotonic()] * len(data))
    queue.put(arrivals)


def measure(link: str, n: int) -> tuple[np.ndarray, bool]:
    """Send ``n`` single bytes over ``link``; return the delays (ms) and whether the
    writer got SCHED_FIFO."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    if link == "pty":
        master, slave = pty.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        reader = ctx.Process(target=_read_pty, args=(master, n, queue))
        reader.start()

        def write() -> None:
            os.write(slave, b"E")
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        reader = ctx.Process(target=_read_tcp, args=(listener, n, queue))
        reader.start()
        sock = socket.create_connection(listener.getsockname())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def write() -> None:
            sock.send(b"E")
    time.sleep(0.3)
    realtime = _realtime(20)
    sent = []
    try:
        for _ in range(n):
            time.sleep(PERIOD_S)
            sent.append(time.monotonic())
            write()
        arrivals = queue.get(timeout=30)
    finally:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        reader.join(5)
        if link == "pty":
            os.close(master)
            os.close(slave)
        else:
            sock.close()
            listener.close()
    return (np.asarray(arrivals) - np.asarray(sent)) * 1000.0, realtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="bytes per link and load")
    args = parser.parse_args(argv)
    for load in (0, 2):
        with busy_processes(load):
            time.sleep(0.5 if load else 0.0)
            results = {link: measure(link, args.n) for link in ("tcp", "pty")}
            info = machine()
        tcp_p99 = float(np.percentile(results["tcp"][0], 99))
        for link, (delays_ms, realtime) in results.items():
            p99 = float(np.percentile(delays_ms, 99))
            print(json.dumps({
                "bench": "serial_link_one_byte", "link": link, "busy_processes": load,
                "n": args.n, "p50_ms": round(float(np.median(delays_ms)), 3),
                "p99_ms": round(p99, 3), "max_ms": round(float(delays_ms.max()), 3),
                "baseline": "tcp loopback, same run and load", "baseline_p99_ms": round(tcp_p99, 3),
                "p99_minus_tcp_p99_ms": round(p99 - tcp_p99, 3), "sched_fifo": realtime, **info,
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
