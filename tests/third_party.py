"""Import a third-party client for a test: skipped locally if missing, required in CI."""

from __future__ import annotations

import importlib
import os

import pytest


def require(name: str):
    """Import ``name``; skip when it is not installed, except under CI (``CI=true``),
    where a missing client is an error (the test extra installs it)."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)
