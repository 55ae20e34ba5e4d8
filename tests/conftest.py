"""Shared test configuration."""

from __future__ import annotations

import os

import matplotlib
import mne

matplotlib.use("Agg")
mne.set_log_level("WARNING")
os.environ.setdefault("PYTHONHASHSEED", "0")
