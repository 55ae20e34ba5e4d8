"""pytest plugin of the replay command: writes the first failing notebook cell to a file.

Loaded with ``-p labkit.replay.pytest_report``; the file is named by
``LABKIT_REPLAY_FAILURES``. It holds ``{"cell": n, "summary": ..., "detail": ...}`` with
nbval's cell number (code cells from 0).
"""

from __future__ import annotations

import json
import os
import re

_CELL = re.compile(r"::Cell (\d+)$")


def _summary(detail: str) -> str:
    if "Cell outputs differ" in detail:
        return "the outputs differ from the recorded ones"
    if "execution caused an exception" in detail or "Traceback" in detail:
        return "the cell raised an exception"
    return "the cell failed"


def pytest_runtest_logreport(report) -> None:
    """Record the first failed cell (setup, call or teardown)."""
    target = os.environ.get("LABKIT_REPLAY_FAILURES")
    if not target or not report.failed or os.path.exists(target):
        return
    match = _CELL.search(report.nodeid)
    detail = report.longreprtext or ""
    with open(target, "w", encoding="utf-8") as f:
        json.dump({"cell": int(match.group(1)) if match else None,
                   "summary": _summary(detail), "detail": detail}, f)
