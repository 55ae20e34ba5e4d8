"""Finding and loading protocol files (``protocols/<name>.toml``).

Protocols are given by path or by name. Names are looked up in the ``protocols/`` folder
of each lab folder on ``$LABKIT_PATH``, then of the user's labkit folder, then among the
protocols shipped in the package (``labkit/data/protocols``); see
:mod:`labkit.search_path`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from labkit import search_path
from labkit.config_files import read_toml
from labkit.errors import ConfigError
from labkit.protocols.model import Protocol, format_validation_error


def protocols_dir() -> Path:
    """Folder of the protocols shipped with labkit (a package resource)."""
    return search_path.shipped_dir("protocols")


def list_protocols() -> list[str]:
    """Names of every protocol on the search path (lab folders and shipped), sorted."""
    return search_path.available("protocols")


def load_protocol(path_or_name: str | os.PathLike) -> Protocol:
    """Load and validate a protocol.

    Parameters
    ----------
    path_or_name : str or path-like
        A path to a TOML file, or a protocol name (``"m1_10hz_pain_1000"``) looked up as
        ``protocols/<name>.toml`` in each folder of ``$LABKIT_PATH``
        (``os.pathsep``-separated), then in the user's labkit folder
        (``~/.config/labkit`` on Linux), then among the protocols shipped with labkit;
        the first match is used (:mod:`labkit.search_path`).

    Returns
    -------
    Protocol
        The validated protocol, with ``path`` set.

    Raises
    ------
    ConfigError
        Missing file (for a name: the folders searched and the names available), invalid
        TOML, or an invalid field; the message names the file, the field and the allowed
        range.
    """
    path = search_path.find(path_or_name, "protocols", "protocol")
    raw = read_toml(path)
    if "path" in raw:
        raise ConfigError("'path' is set by the loader, not by the file", file=str(path),
                          field="path")
    try:
        return Protocol.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise format_validation_error(exc, str(path)) from None
