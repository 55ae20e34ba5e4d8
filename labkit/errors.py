"""Exception hierarchy of labkit.

Every error a user can meet derives from :class:`LabkitError`, so a notebook can catch
them all in one place while tests assert the specific kind.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base class of all labkit errors."""


class ConfigError(LabkitError, ValueError):
    """A configuration file or argument is invalid.

    Parameters
    ----------
    message : str
        What is wrong and what is allowed.
    file : str | None
        The file the value came from, if any.
    field : str | None
        The dotted name of the offending field, if any.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        where = []
        if file:
            where.append(str(file))
        if field:
            where.append(f"field '{field}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class StimulatorError(LabkitError):
    """Base class of stimulator (driver) errors."""


class StimulatorProtocolError(StimulatorError):
    """A reply did not follow the wire protocol (garbage, bad CRC, wrong length).

    Parameters
    ----------
    message : str
        Description of the violation.
    command : bytes | None
        The command whose reply was bad.
    reply : bytes | None
        The bytes received.
    """

    def __init__(self, message: str, *, command: bytes | None = None, reply: bytes | None = None):
        self.command = command
        self.reply = reply
        parts = [message]
        if command is not None:
            parts.append(f"command {command!r}")
        if reply is not None:
            parts.append(f"reply {reply!r}")
        super().__init__("; ".join(parts))


class CRCError(StimulatorProtocolError):
    """The reply's checksum does not match its content."""


class InvalidCommandError(StimulatorProtocolError):
    """The device did not recognise the command (Magstim reply starting with ``?``)."""


class InvalidDataError(StimulatorProtocolError):
    """The device rejected the command's data (Magstim ``?`` in the second byte)."""


class SettingsConflictError(StimulatorProtocolError):
    """The command conflicts with the device's current settings (Magstim ``S``)."""


class StimulatorTimeoutError(StimulatorError):
    """The device did not answer in time (cable pulled, device off, wrong port)."""

    def __init__(self, message: str, *, command: bytes | None = None):
        self.command = command
        super().__init__(f"{message}; command {command!r}" if command is not None else message)


class NotConnectedError(StimulatorError):
    """An operation needs an open connection and there is none."""


class PortBusyError(StimulatorError):
    """The serial port is already open, by a driver in this process or by another process.

    The message names the holder (driver object and thread, or process id and command).
    """


class SafetyError(LabkitError):
    """A safety limit refused the requested stimulation."""


class StreamError(LabkitError):
    """An LSL stream could not be found, was ambiguous, or stopped."""


class NavigationError(LabkitError):
    """The neuronavigation system is unreachable, disconnected or sent something invalid."""
