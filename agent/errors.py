"""The agent's error base: every error the daemon or CLI raises on purpose derives from it.

Messages name the culprit and the fix, so the CLI can print ``str(err)`` and exit non-zero.
"""

from __future__ import annotations


class DoorwardError(Exception):
    """Base of all errors raised by the ``agent`` package."""


class ConfigError(DoorwardError):
    """A config key has a value that is not allowed; the message quotes key, value and what is
    allowed. ``problems``: each one of them (a file's problems are reported all at once).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]

    @classmethod
    def of(cls, origin: str, problems: list[str]) -> ConfigError:
        """All of ``origin``'s problems (origin: the file, or a flag) in one error."""
        lines = [f"{origin}: {p}" for p in problems]
        if len(lines) == 1:
            return cls(lines[0], lines)
        return cls(f"{len(lines)} problems in {origin}:\n  " + "\n  ".join(lines), lines)


class CameraError(DoorwardError):
    """A camera source could not be opened or stopped delivering frames."""


class StoreError(DoorwardError):
    """The local clip store could not be read or written."""
