"""Busy processes that load the machine while a benchmark measures (shared by benchmarks)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

_SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[int]]:
    """Run ``n`` processes that each spin one CPU at full speed; yield their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(10)


def machine() -> dict:
    """CPU count and 1-minute load average, for the JSON lines."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "loadavg_1min": None if load is None else round(load, 2)}
