"""How the CLI shows a moment to a person: ``2026-05-01 19:30 UTC`` (minutes, UTC, said so).

The one human display format of the tools (status, clips, doctor, the clock warnings). Machine
formats (ISO 8601 in messages, JSON output and the ledger; the file-name stamp) are in
:mod:`uplink.wire` and exported by ``uplink``: ``iso_utc``, ``iso_utc_seconds``, ``iso_utc_z``,
``compact_utc``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_minute(epoch_s: float) -> str:
    """``2026-05-01 19:30 UTC``: for people; never parsed back."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
