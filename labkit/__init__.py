"""labkit: a Jupyter-native research lab kit for closed-loop rTMS experiments."""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

# liblsl reads its configuration once, when the first LSL library loads: point it at ours
# (quiet logging) unless the user chose a configuration of their own.
os.environ.setdefault("LSLAPICFG", str(Path(__file__).parent / "data" / "lsl_api.cfg"))

__all__ = ["__version__", "open_rig"]


def __getattr__(name: str):
    if name == "open_rig":
        from labkit.rig import open_rig

        return open_rig
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
