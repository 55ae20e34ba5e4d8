"""Finding and loading protocol files (``protocols/*.toml``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from labkit.config_files import available, read_toml, resolve_file
from labkit.errors import ConfigError
from labkit.protocols.model import Protocol, format_validation_error

PROTOCOLS_ENV = "LABKIT_PROTOCOLS"


def protocols_dir() -> Path:
    """Folder of the shipped protocols (``$LABKIT_PROTOCOLS`` overrides)."""
    env = os.environ.get(PROTOCOLS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "protocols"


def list_protocols() -> list[str]:
    """Names (file stems) of the protocols in :func:`protocols_dir`."""
    return available(protocols_dir())


def load_protocol(path_or_name: str | os.PathLike) -> Protocol:
    """Load and validate a protocol.

    Parameters
    ----------
    path_or_name : str or path-like
        A shipped protocol's name (``"m1_10hz_pain_1000"``) or a path to a TOML file.

    Returns
    -------
    Protocol
        The validated protocol, with ``path`` set.

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, or an invalid field; the message names the file, the
        field and the allowed range.
    """
    path = resolve_file(path_or_name, protocols_dir(), "protocol")
    raw = read_toml(path)
    if "path" in raw:
        raise ConfigError("'path' is set by the loader, not by the file", file=str(path),
                          field="path")
    try:
        return Protocol.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise format_validation_error(exc, str(path)) from None
