"""Argument checks shared by every module: one place, one error type.

Each check raises :class:`~labkit.errors.ConfigError` naming the argument, what is allowed
and what was given, so that a bad value is refused before anything touches a device.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from labkit.errors import ConfigError

__all__ = ["check_range"]


def check_range(value: Any, field: str, low: float, high: float, unit: str, *,
                optional: bool = False) -> float | None:
    """``value`` as a float when it is a finite number in ``[low, high]``.

    Parameters
    ----------
    value : Any
        The argument given.
    field : str
        Its name, for the error message.
    low, high : float
        Allowed range, inclusive.
    unit : str
        Unit for the message (``"s"``, ``"% MSO"``).
    optional : bool
        Accept ``None`` (returned as ``None``).

    Raises
    ------
    ConfigError
        Not a number (bools are refused), not finite, or out of range.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"must be a number in [{low:g}, {high:g}] {unit}, got {value!r}",
                          field=field)
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"must be a finite number in [{low:g}, {high:g}] {unit}, got "
                          f"{value!r}", field=field)
    return number
