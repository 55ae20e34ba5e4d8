"""Compile every kernel on tiny inputs before a session (no JIT pause in the loop)."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["warm_up"]


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every numba kernel in labkit.

    Returns
    -------
    float
        Seconds it took.
    """
    from importlib import import_module

    from labkit import phase

    # modules by full name: labkit.kernels re-exports functions of the same names
    artifact = import_module("labkit.kernels.artifact")
    decimate = import_module("labkit.kernels.decimate")
    filters = import_module("labkit.kernels.filters")
    flags = import_module("labkit.kernels.flags")
    spatial = import_module("labkit.kernels.spatial")
    chain = import_module("labkit.kernels.chain")

    t0 = time.perf_counter()
    x = np.zeros((2, 16))
    on = np.array([8], np.int64)
    artifact._merge(on, 2, 2)
    artifact._typed_interpolate()(x, on, 2, 2, False)  # one signature: every method, size
    artifact._repair_windows(x, on - 2, on + 2, False)
    artifact._blank(x, on - 2, on + 2, 0, np.zeros(2))
    sos = np.array([[1.0, 0.0, 0.0, 1.0, -0.5, 0.0]])
    filters._sosfilt(sos, x, np.zeros((2, 1, 2)))
    out = np.zeros((2, 16))
    decimate._pick(x, 2, 0, out)
    flags._flags(x, 1.0, 1.0, np.zeros(2), False, np.zeros(16, np.bool_), np.zeros(16, np.bool_))
    spatial._apply_weights(np.eye(2), x, out)
    for dtype in (np.float32, np.float64):  # inlet rows of either stream format
        chain._blank_rows_weighted(np.zeros((16, 2), dtype), np.ones(2), on - 2, on + 2, 0,
                                   np.zeros(2), np.zeros(16), np.zeros(16, np.bool_))
    phase.warm_up()
    return time.perf_counter() - t0
