"""``make bench``: run every ``bench_*.py`` to the end, whatever happens to one of them.

Each benchmark runs in its own process (its JSON lines go straight to stdout, its stderr
to stderr). One that fails (non-zero exit, or still running after ``--timeout-s``, when
it is stopped with its whole process group) gets a JSON line
``{"bench": "bench_x", "status": "failed", "reason": "..."}`` with the last error line
it printed, and the next one starts. At the end a line ``{"bench": "all", ...}`` lists
the failures; the exit status is 1 if there were any.

Usage: ``python benchmarks/run_all.py [--dir benchmarks] [--timeout-s 1800]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

#: Default ceiling per benchmark file, s (the longest, the soak, runs ~4 min by default).
DEFAULT_TIMEOUT_S = 1800.0


def _emit(**record) -> None:
    print(json.dumps(record, sort_keys=True), flush=True)


def _echo(stream, tail: deque) -> None:
    """Copy a child's stderr to ours line by line, keeping the last lines."""
    for line in iter(stream.readline, ""):
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            tail.append(line.rstrip())
    stream.close()


def _reason(returncode: int, tail: deque) -> str:
    """The exception of the last traceback printed (with the indented lines of its
    message, e.g. a refused verdict's reasons), else the exit status."""
    lines = list(tail)
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if starts:
        after = lines[starts[-1] + 1:]
        for k, line in enumerate(after):
            if not line.startswith((" ", "\t")):
                message = [line]
                for more in after[k + 1:]:
                    if not more.startswith((" ", "\t")):
                        break
                    message.append(more.strip())
                return "; ".join(message)[:1000]
    if returncode < 0:
        return f"killed by signal {-returncode}"
    last = f"; last line: {lines[-1][:300]}" if lines else ""
    return f"exit status {returncode}{last}"


def _stop(proc: subprocess.Popen) -> None:
    """Stop the benchmark and everything it started (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(path: Path, timeout_s: float) -> str | None:
    """Run one benchmark file; ``None`` if it succeeded, else why it did not."""
    tail: deque[str] = deque(maxlen=200)
    proc = subprocess.Popen([sys.executable, str(path)], cwd=path.parent.parent,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    echo = threading.Thread(target=_echo, args=(proc.stderr, tail), daemon=True)
    echo.start()
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        echo.join(timeout=5)
        return f"timed out after {timeout_s:g} s (stopped)"
    echo.join(timeout=5)
    return None if returncode == 0 else _reason(returncode, tail)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 if any benchmark failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
    args = parser.parse_args(argv)
    failed = []
    benches = sorted(args.dir.glob("bench_*.py"))
    for path in benches:
        started = time.monotonic()
        reason = run_one(path, args.timeout_s)
        if reason is not None:
            failed.append(path.stem)
            _emit(bench=path.stem, status="failed", reason=reason,
                  seconds=round(time.monotonic() - started, 1))
    _emit(bench="all", status="failed" if failed else "ok", ran=len(benches), failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
