"""numba real-time kernels: artifact repair, flags, IIR filters, spatial filters, decimation.

Every kernel has a whole-array (offline) function and a small state object for real-time
use chunk by chunk. Call :func:`warm_up` once before a session so that no compilation
happens in the loop (kernels are also cached on disk, ``cache=True``).
"""

from labkit.kernels.artifact import Blanker, StreamInterpolator, blank, interpolate
from labkit.kernels.chain import CleaningChain
from labkit.kernels.decimate import Decimator, antialias_sos, decimate
from labkit.kernels.filters import SosFilter, sosfilt
from labkit.kernels.flags import Flagger, amplitude_flags, gradient_flags
from labkit.kernels.spatial import SpatialFilter, apply_weights, hjorth_weights
from labkit.kernels.warmup import warm_up

__all__ = [
    "Blanker",
    "CleaningChain",
    "Decimator",
    "Flagger",
    "SosFilter",
    "SpatialFilter",
    "StreamInterpolator",
    "amplitude_flags",
    "antialias_sos",
    "apply_weights",
    "blank",
    "decimate",
    "gradient_flags",
    "hjorth_weights",
    "interpolate",
    "sosfilt",
    "warm_up",
]
