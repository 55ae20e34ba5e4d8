"""Reading the TOML files users write (device profiles, protocols).

One place for: parsing TOML, and turning a pydantic validation error into a
:class:`~labkit.errors.ConfigError` whose message names the file, each offending field,
what is allowed and what was given. Finding a file by name: :mod:`labkit.search_path`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from labkit.errors import ConfigError

_BOUND_WORDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def read_toml(path: Path) -> dict:
    """Parse a TOML file; errors name the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", file=str(path)) from None


def describe_error(err: dict) -> str:
    """One pydantic error as 'what is allowed (got what)'."""
    kind = err["type"]
    ctx = err.get("ctx", {}) or {}
    given = err.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}{shown}"
    if kind == "extra_forbidden":
        return f"unknown field (typo?){shown}"
    if kind == "missing":
        return "required field is missing"
    for key, word in _BOUND_WORDS.items():
        if key in ctx:
            return f"must be {word} {ctx[key]}{shown}"
    if kind in ("too_short", "too_long"):
        return f"{err['msg'].lower()}{shown}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return f"{message}{shown}"


def validation_error(
    exc: ValidationError, file: str | None, kind: str, top_level_fields: Iterable[str] = ()
) -> ConfigError:
    """Turn a pydantic error into a :class:`ConfigError` naming file, field and range.

    Parameters
    ----------
    exc : pydantic.ValidationError
        The error raised while validating.
    file : str | None
        The file the data came from.
    kind : str
        What the file is (``"device profile"``, ``"protocol"``).
    top_level_fields : iterable of str
        Field names that a model-level check may name as the first word of its message;
        such errors are attributed to that field.

    Returns
    -------
    ConfigError
        One line per problem: ``field 'timing.trains': must be >= 1 (got 0)``.
    """
    fields = set(top_level_fields)
    lines = []
    first_field = None
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        text = describe_error(err)
        if not loc:
            head = text.split(" ", 1)[0]
            loc = head if head in fields else "(top level)"
        first_field = first_field or loc
        lines.append(f"field '{loc}': {text}")
    return ConfigError(f"invalid {kind}:\n  " + "\n  ".join(lines), file=file, field=first_field)
