"""The agent's error base: every error the daemon or CLI raises on purpose derives from it.

Messages name the culprit and the fix, so the CLI can print ``str(err)`` and exit non-zero.
"""

from __future__ import annotations


class DoorwardError(Exception):
    """Base of all errors raised by the ``agent`` package."""


class ConfigError(DoorwardError):
    """A config key has a value that is not allowed; the message quotes key, value and what is
    allowed.
    """


class CameraError(DoorwardError):
    """A camera source could not be opened or stopped delivering frames."""


class StoreError(DoorwardError):
    """The local clip store could not be read or written."""
