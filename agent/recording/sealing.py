"""Who clips are sealed to, decided at the start of each clip, and what may leave the device.

Recipients are the paired owners and viewers. Until an owner pairs:
- a development source (``sim:``, ``file:``: they film no real door) seals to a *development
  owner* whose identity is created at ``<data-dir>/dev-owner.key`` (a standard
  ``AGE-SECRET-KEY-1`` file, so ``age -d -i`` opens the clips);
- a real camera (``picamera2``, a USB camera on ``v4l2:``) records nothing at all: a real doorbell
  must never hold footage nobody may open, nor footage sealed to a key lying next to it on the
  same SD card.
Once an owner pairs, new clips are sealed to the owners only, and :func:`retire_dev_owner` deletes
the clips sealed to the development owner and then its key. A factory reset deletes the key too;
the policy reads the key file at every clip start (never a cached copy), so nothing is ever
sealed to a key that no longer exists.

Uploads: what may leave is decided on the delivery side (agent/delivery/members.py): a clip sealed
to any key that is not a paired member's (the development owner above all) never reaches the
bucket.

Wiring (agent.app)::

    policy = SealingPolicy(data_dir, dev_owner=spec.dev_owner,
                           owner_recipients=consent.recipients)
    recorder = Recorder(encoder, store, policy.recipients, ...)
    on pairing: retire_dev_owner(data_dir, store, consent.recipients())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.paths import DataDir
from agent.store import ClipStore
from uplink import Identity, Recipient, load_identities, write_identity_file

log = logging.getLogger(__name__)


def ensure_dev_owner(data_dir: Path) -> Identity:
    """Load the development owner identity, creating it (0600) on first use."""
    path = DataDir(data_dir).dev_owner_key
    if not path.exists():
        write_identity_file(path, Identity.generate(),
                            comment="Doorward development owner: simulated sources only")
        log.warning("created development owner identity %s", path)
    return load_identities(path)[0]


class SealingPolicy:
    """``recipients()`` for the recorder, ``mode``/``reason`` for status and logs.

    ``owner_recipients`` returns the paired owners' and viewers' age recipients (strings);
    ``dev_owner``: the source may seal to a development owner (``SourceSpec.dev_owner``).
    """

    def __init__(self, data_dir: Path, *, dev_owner: bool,
                 owner_recipients: Callable[[], list[str]]) -> None:
        self._data_dir = data_dir
        self._dev_owner = dev_owner
        self._owner_recipients = owner_recipients

    def recipients(self) -> tuple[Recipient, ...]:
        owners = self._owner_recipients()
        if owners:
            return tuple(Recipient.parse(r) for r in owners)
        if self._dev_owner:
            # Read at every call, never cached: a factory reset deletes the key file, and a
            # cached recipient would keep sealing to a key nobody holds any more.
            return (ensure_dev_owner(self._data_dir).recipient,)
        return ()

    @property
    def mode(self) -> str:
        if self._owner_recipients():
            return "owners"
        return "dev-owner" if self._dev_owner else "not-recording"

    @property
    def reason(self) -> str:
        mode = self.mode
        if mode == "owners":
            return f"sealing to {len(self._owner_recipients())} paired owner/viewer key(s)"
        if mode == "dev-owner":
            return ("no paired owner: development source (sim:, file:), sealing to the "
                    f"development owner {DataDir(self._data_dir).dev_owner_key}")
        return ("not recording: no paired owner, and a real camera never records without one. "
                "Hold the SETUP button for 3 s and run `doorward owner pair`")


def retire_dev_owner(data_dir: Path, store: ClipStore, members: Iterable[str]) -> list[str]:
    """After pairing (and at start, in case a crash interrupted it): delete every stored clip no
    paired member can open (those sealed to the development owner), then the development key.
    Returns the deleted clip ids. The caller has already closed a clip in progress."""
    allowed = set(members)
    doomed = [c.id for c in store.list_clips() if not set(c.recipients) & allowed]
    for clip_id in doomed:
        store.delete_clip(clip_id)
    path = DataDir(data_dir).dev_owner_key
    if path.exists():
        path.unlink()
        log.warning("development owner %s deleted: clips are sealed to the paired owners only",
                    path)
    if doomed:
        log.warning("deleted %d clip(s) sealed to the development owner: %s", len(doomed),
                    ", ".join(doomed))
    return doomed
