"""The uplink's error base."""

from __future__ import annotations


class UplinkError(Exception):
    """Base of all errors raised by the ``uplink`` package."""
