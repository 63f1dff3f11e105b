"""The newest message whose state Home Assistant shows, per device, kept across restarts.

The owner's chain check starts at the first message a subscriber hears, so a message the bridge
showed before it (re)started, replayed by the broker's operator as the first thing it hears,
passes the check; so does one held back and let through after a newer one. Home Assistant's
states must follow only a message newer than the one they show: this file remembers its seq.

Wiring (agent.owner.bridge.start)::

    shown = ShownSeqs.open(owner_dir / SHOWN_FILE)   # before anything connects: a bad file stops
    bridge = HaBridge(..., shown=shown)              # its worker calls get()/record()

``ShownSeqs()`` (no path) keeps them in memory only (a bridge built without a directory).
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.errors import DoorwardError
from agent.owner.durable_json import write_json

SHOWN_FILE = "bridge-shown.json"


class ShownSeqs:
    """Device id -> the seq of the newest message whose state Home Assistant shows.

    Written whole at each :meth:`record` (:func:`agent.owner.durable_json.write_json`): a crash
    or power loss leaves the old or the new map, never a torn one.
    Only the bridge's worker thread uses it.
    """

    def __init__(self, path: Path | None = None, seqs: dict[str, int] | None = None) -> None:
        self.path = path
        self._seqs = dict(seqs or {})

    @classmethod
    def open(cls, path: Path) -> ShownSeqs:
        """Read ``path`` (absent: nothing shown yet). Raises DoorwardError naming the fix."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise DoorwardError(f"cannot read {path}: {exc}; delete it (the bridge then shows "
                                "each device's state again from its next recent message)"
                                ) from exc
        if not isinstance(doc, dict) or not all(
                isinstance(k, str) and type(v) is int and v >= 0 for k, v in doc.items()):
            raise DoorwardError(f"{path} is not a map of device id to seq: delete it (the bridge "
                                "then shows each device's state again from its next recent "
                                "message)")
        return cls(path, doc)

    def get(self, device_id: str) -> int | None:
        return self._seqs.get(device_id)

    def record(self, device_id: str, seq: int) -> None:
        """Home Assistant now shows ``device_id``'s message ``seq`` (kept before returning)."""
        self._seqs[device_id] = seq
        if self.path is not None:
            self._save(self.path)

    def _save(self, path: Path) -> None:
        write_json(path, self._seqs, prefix=".bridge-shown.")
