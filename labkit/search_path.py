"""Where named device profiles and protocols are found: the lab's folders, then labkit's.

A profile or protocol is given either as a path to a TOML file or as a name (the file's
stem, ``"magstim-200"``). A name is looked up, first match wins, in:

1. every folder listed in the environment variable ``LABKIT_PATH`` (separated by
   ``os.pathsep``: ``:`` on Linux/macOS, ``;`` on Windows), in order;
2. the user's labkit folder (:func:`user_config_dir`): ``$XDG_CONFIG_HOME/labkit``
   (default ``~/.config/labkit``) on Linux, ``~/Library/Application Support/labkit`` on
   macOS, ``%APPDATA%\\labkit`` on Windows;
3. the files shipped inside the installed package (``labkit/data/``), read with
   :mod:`importlib.resources`.

Each of these is a *lab folder* holding ``devices/`` (device profiles) and ``protocols/``
(protocol files), e.g. ``$LABKIT_PATH=/srv/our-lab`` with ``/srv/our-lab/devices/rig-a.toml``.
A lab's file with the same name as a shipped one is the one used. A name found nowhere is
refused with the folders searched and the names available.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Literal

from labkit.errors import ConfigError

#: Environment variable listing the lab folders searched before the shipped files.
SEARCH_PATH_ENV = "LABKIT_PATH"

#: Sub-folder of a lab folder for each kind of file.
Kind = Literal["devices", "protocols"]


def user_config_dir() -> Path:
    """The user's labkit folder (it need not exist).

    Returns
    -------
    Path
        ``%APPDATA%\\labkit`` on Windows, ``~/Library/Application Support/labkit`` on
        macOS, otherwise ``$XDG_CONFIG_HOME/labkit`` (default ``~/.config/labkit``).
    """
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "labkit"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "labkit"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "labkit"


def shipped_dir(kind: Kind) -> Path:
    """The folder of the files of ``kind`` shipped inside the installed package.

    Parameters
    ----------
    kind : {"devices", "protocols"}
        Which files.

    Returns
    -------
    Path
        ``<site-packages>/labkit/data/<kind>`` (or the source tree's, in a development
        install), found with :func:`importlib.resources.files`.
    """
    return Path(str(files("labkit").joinpath("data", kind)))


def search_dirs(kind: Kind) -> list[tuple[Path, str]]:
    """The folders searched for a named file of ``kind``, first match wins.

    Returns
    -------
    list of (Path, str)
        Each folder with where it comes from (``"LABKIT_PATH"``, ``"user folder"``,
        ``"shipped with labkit"``); folders that do not exist are listed too.
    """
    dirs: list[tuple[Path, str]] = []
    for entry in os.environ.get(SEARCH_PATH_ENV, "").split(os.pathsep):
        if entry.strip():
            dirs.append((Path(entry.strip()).expanduser() / kind, SEARCH_PATH_ENV))
    dirs.append((user_config_dir() / kind, "user folder"))
    dirs.append((shipped_dir(kind), "shipped with labkit"))
    return dirs


def available(kind: Kind) -> list[str]:
    """Sorted names (file stems) of every ``*.toml`` of ``kind`` on the search path."""
    names: set[str] = set()
    for folder, _ in search_dirs(kind):
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` is meant as a path rather than a name.

    A path-like object, or a string ending in ``.toml`` or containing a path separator,
    is a path; anything else (``"simulated"``) is a name.
    """
    if not isinstance(name_or_path, str):
        return True
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return name_or_path.endswith(".toml") or any(sep in name_or_path for sep in seps)


def find(name_or_path: str | os.PathLike, kind: Kind, what: str) -> Path:
    """The file a path or name stands for.

    Parameters
    ----------
    name_or_path : str or path-like
        A path to a TOML file, or a name looked up as ``<folder>/<name>.toml`` in
        :func:`search_dirs`.
    kind : {"devices", "protocols"}
        Which sub-folder of each lab folder holds such files.
    what : str
        What the file is, for messages (``"device profile"``, ``"protocol"``).

    Returns
    -------
    Path
        An existing file.

    Raises
    ------
    ConfigError
        A path that is not a file (the message names it), or a name found in none of the
        folders (the message lists the folders searched and the names available).
    """
    if is_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{what} file not found: {path}", file=str(path))
        return path
    searched = search_dirs(kind)
    for folder, _ in searched:
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    places = "\n  ".join(f"{folder} ({origin})" for folder, origin in searched)
    names = ", ".join(available(kind)) or "none"
    raise ConfigError(
        f"no {what} named {name_or_path!r}; searched (set {SEARCH_PATH_ENV} to add lab "
        f"folders holding {kind}/):\n  {places}\navailable: {names}")
