"""Who clips are sealed to, decided at the start of each clip.

Recipients are the paired owners and viewers. Until an owner pairs:
- a simulated source (sim:, file:, v4l2:) seals to a *development owner* whose identity is created
  at ``<data-dir>/dev-owner.key`` (a standard ``AGE-SECRET-KEY-1`` file, so ``age -d -i`` opens
  the clips);
- the Pi camera records nothing at all: a real doorbell must never hold footage nobody may open, nor
  footage sealed to a key lying next to it on the same SD card.
Once an owner pairs, new clips are sealed to the owners only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from uplink.agekeys import Identity, Recipient, load_identities, write_identity_file

log = logging.getLogger(__name__)

DEV_OWNER_FILE = "dev-owner.key"


def dev_owner_path(data_dir: Path) -> Path:
    return data_dir / DEV_OWNER_FILE


def ensure_dev_owner(data_dir: Path) -> Identity:
    """Load the development owner identity, creating it (0600) on first use."""
    path = dev_owner_path(data_dir)
    if not path.exists():
        write_identity_file(path, Identity.generate(),
                            comment="Doorward development owner: simulated sources only")
        log.warning("created development owner identity %s", path)
    return load_identities(path)[0]


class SealingPolicy:
    """``recipients()`` for the recorder, ``mode``/``reason`` for status and logs.

    ``owner_recipients`` returns the paired owners' and viewers' age recipients (strings).
    """

    def __init__(self, data_dir: Path, *, simulated: bool,
                 owner_recipients: Callable[[], list[str]]) -> None:
        self._data_dir = data_dir
        self._simulated = simulated
        self._owner_recipients = owner_recipients
        self._dev: Recipient | None = None

    def recipients(self) -> tuple[Recipient, ...]:
        owners = self._owner_recipients()
        if owners:
            return tuple(Recipient.parse(r) for r in owners)
        if self._simulated:
            if self._dev is None:
                self._dev = ensure_dev_owner(self._data_dir).recipient
            return (self._dev,)
        return ()

    @property
    def mode(self) -> str:
        if self._owner_recipients():
            return "owners"
        return "dev-owner" if self._simulated else "not-recording"

    @property
    def reason(self) -> str:
        mode = self.mode
        if mode == "owners":
            return f"sealing to {len(self._owner_recipients())} paired owner/viewer key(s)"
        if mode == "dev-owner":
            return ("no paired owner: simulated source, sealing to the development owner "
                    f"{dev_owner_path(self._data_dir)}")
        return ("not recording: no paired owner. Hold the SETUP button for 3 s and run "
                "`doorward owner pair` (a real camera never records without an owner)")
