"""Finding and loading protocol files (``protocols/*.toml``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import ValidationError

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
    return sorted(p.stem for p in protocols_dir().glob("*.toml"))


def _resolve(path_or_name: str | os.PathLike) -> Path:
    candidate = Path(path_or_name)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"protocol file not found: {candidate}", file=str(candidate))
        return candidate
    path = protocols_dir() / f"{path_or_name}.toml"
    if not path.is_file():
        raise ConfigError(
            f"no protocol named {str(path_or_name)!r}; available: {', '.join(list_protocols())}"
        )
    return path


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
    path = _resolve(path_or_name)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", file=str(path)) from None
    if "path" in raw:
        raise ConfigError("'path' is set by the loader, not by the file", file=str(path),
                          field="path")
    try:
        return Protocol.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise format_validation_error(exc, str(path)) from None
