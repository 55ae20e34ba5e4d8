"""Argument checks shared by the kernel wrappers (errors name the argument and the range)."""

from __future__ import annotations

import numpy as np

from labkit.errors import ConfigError


def check_data(data: np.ndarray, name: str = "data", *, ndim: int = 2) -> np.ndarray:
    """Check that ``data`` is a C-contiguous float64 array of ``ndim`` dimensions."""
    if not isinstance(data, np.ndarray):
        raise ConfigError(f"must be a numpy array, got {type(data).__name__}", field=name)
    if data.ndim != ndim:
        raise ConfigError(
            f"must have {ndim} dimension(s) (n_channels, n_times), got shape {data.shape}",
            field=name,
        )
    if data.dtype != np.float64:
        raise ConfigError(f"must be float64, got {data.dtype}", field=name)
    if not data.flags.c_contiguous:
        raise ConfigError("must be C-contiguous (use np.ascontiguousarray)", field=name)
    return data


def check_in_place(data: np.ndarray, name: str = "data") -> np.ndarray:
    """Check that ``data`` can be modified in place by a kernel (writeable, aligned)."""
    if not data.flags.writeable:
        raise ConfigError("must be writeable (it is modified in place; pass a copy)", field=name)
    if not data.flags.aligned:
        raise ConfigError("must be aligned to its item size (pass a copy)", field=name)
    return data


def check_int(value: int, name: str, *, minimum: int = 0) -> int:
    """Check that ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", field=name)
    if value < minimum:
        raise ConfigError(f"must be >= {minimum}, got {value}", field=name)
    return int(value)


def check_choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"must be one of {list(choices)}, got {value!r}", field=name)
    return value


def as_onsets(onsets, name: str = "onsets") -> np.ndarray:
    """Return ``onsets`` as a sorted int64 1-D array."""
    arr = np.asarray(onsets)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError("must be a 1-D sequence of integer sample indices", field=name)
    return np.sort(arr.astype(np.int64))
