"""labkit: a Jupyter-native research lab kit for closed-loop rTMS experiments.

Start with :func:`open_rig` (``labkit.open_rig("simulated")``); the names below are
imported on first use, so ``import labkit`` stays quick::

    open_rig, Rig, load_profile      the rig of a device profile (labkit.rig, .profiles)
    load_protocol, Protocol          protocol files (labkit.protocols)
    Session                          the session on disk (labkit.session)
    make_estimator                   motor-threshold estimators (labkit.threshold)
    check_profile                    check a profile's hardware before a session (labkit.check)
"""

from __future__ import annotations

import importlib
import os
from importlib.resources import files

__version__ = "0.1.0"

# liblsl reads its configuration once, when the first LSL library loads: point it at ours
# (quiet logging) unless the user chose a configuration of their own.
os.environ.setdefault("LSLAPICFG", str(files(__name__).joinpath("data", "lsl_api.cfg")))

#: Public names of the top-level package and the module each comes from.
_LAZY = {
    "open_rig": "labkit.rig",
    "Rig": "labkit.rig",
    "load_profile": "labkit.profiles",
    "load_protocol": "labkit.protocols",
    "Protocol": "labkit.protocols",
    "Session": "labkit.session",
    "make_estimator": "labkit.threshold",
    "check_profile": "labkit.check",
}
#: Subpackages and modules a user reaches as ``labkit.<name>`` after importing them.
_SUBMODULES = (
    "acquisition", "background", "bids", "check", "closedloop", "course", "hotspot",
    "kernels", "markers", "mep", "navigation", "outcomes", "pairedpulse", "phase",
    "plotting", "profiles", "protocols", "recording", "recruitment", "report", "rig",
    "runner", "safety", "session", "sim", "silent_period", "stimulators", "streams",
    "threshold", "widgets", "xdf",
)

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
