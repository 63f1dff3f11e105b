"""The owner's ledger pins: per device, the last ledger head the owner verified.

``<owner-dir>/ledger-pins.json`` (0600, replaced atomically, beside ``devices.json``) maps each
device id to ``{"count", "head", "chain", "pinned_at"}``: how many entries the verified ledger had,
the hash of its last entry, the hash of its first (it names the ledger: a factory reset starts
another) and when. A later ledger must *extend* the pin (entry ``count`` hashes to ``head``), or
the owner's tool calls it a rollback. Pins only move forward; pairing again starts afresh.

Usage::

    pins = PinStore(owner_dir)
    pin = pins.get(device_id)                       # None before the first verified fetch
    problem = pin.not_extended_by(hashes) if pin else None
    pins.put(device_id, Pin.of(hashes, time.time()))  # after a ledger verified and extends it
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError
from agent.owner.durable_json import write_json
from uplink import is_hex64, is_int, iso_utc_seconds

PINS = "ledger-pins.json"


@dataclass(frozen=True)
class Pin:
    count: int
    head: str
    chain: str
    pinned_at: float

    @classmethod
    def of(cls, hashes: Sequence[str], now: float) -> Pin:
        """The pin of a verified ledger whose entry hashes are ``hashes`` (at least one)."""
        return cls(len(hashes), hashes[-1], hashes[0], now)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Pin:
        ok = (isinstance(obj, dict) and set(obj) == {"count", "head", "chain", "pinned_at"}
              and is_int(obj["count"]) and obj["count"] >= 1
              and all(is_hex64(obj[k]) for k in ("head", "chain"))
              and isinstance(obj["pinned_at"], int | float))
        if not ok:
            raise DoorwardError(f"{where} is not a ledger pin; restore {PINS} from a backup "
                                "(deleting it gives up the rollback check for that device)")
        return cls(obj["count"], obj["head"], obj["chain"], float(obj["pinned_at"]))

    def describe(self) -> str:
        when = iso_utc_seconds(self.pinned_at)
        return f"{self.count} entries, head {self.head[:16]}..., verified {when}"

    def not_extended_by(self, hashes: Sequence[str]) -> str | None:
        """None when a ledger with entry ``hashes`` extends this pin; else what differs."""
        if len(hashes) < self.count:
            return (f"it has {len(hashes)} entries, fewer than the {self.describe()} you "
                    "pinned: entries were removed")
        if hashes[self.count - 1] != self.head:
            return (f"its entry {self.count} is different from the one you pinned "
                    f"({self.describe()}): the ledger was rewritten")
        return None


class PinStore:
    """Read and replace ``<owner_dir>/ledger-pins.json``."""

    def __init__(self, owner_dir: Path) -> None:
        self.path = owner_dir / PINS

    def _load(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise DoorwardError(f"{self.path} is unreadable ({exc}): restore it from a backup "
                                "(deleting it gives up the rollback check)") from exc
        if not isinstance(raw, dict):
            raise DoorwardError(f"{self.path} is not a JSON object: restore it from a backup")
        return raw

    def get(self, device_id: str) -> Pin | None:
        obj = self._load().get(device_id)
        return None if obj is None else Pin.from_json(obj, f"{self.path} [{device_id}]")

    def put(self, device_id: str, pin: Pin) -> None:
        raw = self._load()
        raw[device_id] = asdict(pin)
        self._save(raw)

    def forget(self, device_id: str) -> None:
        raw = self._load()
        if raw.pop(device_id, None) is not None:
            self._save(raw)

    def _save(self, raw: dict[str, Any]) -> None:
        write_json(self.path, raw, prefix=".ledger-pins.", indent=1)
