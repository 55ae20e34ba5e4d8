"""Pseudonymous subject and session ids: refuse anything that looks like personal data."""

from __future__ import annotations

import re

from labkit.errors import ConfigError

SUBJECT_ID_PATTERN = r"^[A-Za-z]{0,4}[0-9]{1,4}[A-Za-z]?$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9]{1,12}$"


class PersonalDataError(ConfigError):
    """An id looks like personal data (a name, an e-mail, a date, a phone number)."""


# -- ids ------------------------------------------------------------------------------
def _refuse(field_name: str, value: str, why: str, pattern: str, example: str) -> None:
    raise PersonalDataError(
        f"{value!r} {why}; ids must be pseudonymous codes matching {pattern} "
        f"(e.g. {example}), never names, e-mails, dates or phone numbers",
        field=field_name,
    )


def check_subject_id(subject_id: str) -> str:
    """Validate a pseudonymous subject id and return its BIDS label.

    A leading ``sub-`` is dropped. Allowed: up to 4 letters, 1–4 digits, an optional
    letter (``01``, ``P007``, ``sub01``, ``S12b``). Refused with :class:`PersonalDataError`:
    spaces, ``@``, dates, long digit runs (phone numbers, birth dates), plain words.

    Parameters
    ----------
    subject_id : str
        The id as typed by the experimenter.

    Returns
    -------
    label : str
        The id without ``sub-``, usable as a BIDS label.
    """
    field_name = "subject_id"
    if not isinstance(subject_id, str):
        raise PersonalDataError(
            f"must be a string, got {type(subject_id).__name__}", field=field_name
        )
    value = subject_id.strip()
    label = value[4:] if value.lower().startswith("sub-") else value
    example = "'P007' or '01'"
    if "@" in label:
        _refuse(field_name, subject_id, "looks like an e-mail address", SUBJECT_ID_PATTERN,
                example)
    if re.search(r"\s", label):
        _refuse(field_name, subject_id, "contains spaces (a name?)", SUBJECT_ID_PATTERN, example)
    if re.search(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", label):
        _refuse(field_name, subject_id, "looks like a date", SUBJECT_ID_PATTERN, example)
    if re.search(r"\d{5,}", re.sub(r"[\s+()./-]", "", label)):
        _refuse(field_name, subject_id, "has a long digit run (a phone number or date of "
                "birth?)", SUBJECT_ID_PATTERN, example)
    if not re.fullmatch(SUBJECT_ID_PATTERN, label):
        _refuse(field_name, subject_id, "is not a short code", SUBJECT_ID_PATTERN, example)
    return label


def check_session_id(session_id: str | int) -> str:
    """Validate a session id (``1`` → ``"01"``; ``"02"``, ``"fu1"``) and return its label."""
    field_name = "session_id"
    if isinstance(session_id, bool):
        raise PersonalDataError("must be a string or an int, got bool", field=field_name)
    if isinstance(session_id, int):
        if session_id < 0:
            raise PersonalDataError(f"must be ≥ 0, got {session_id}", field=field_name)
        session_id = f"{session_id:02d}"
    if not isinstance(session_id, str):
        raise PersonalDataError(
            f"must be a string or an int, got {type(session_id).__name__}", field=field_name
        )
    label = session_id.strip()
    label = label[4:] if label.lower().startswith("ses-") else label
    if re.search(r"\d{5,}", label) or not re.fullmatch(SESSION_ID_PATTERN, label):
        _refuse(field_name, str(session_id), "is not a short session code",
                SESSION_ID_PATTERN, "'01' or 'fu1'")
    return label
