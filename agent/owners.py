"""Who clips are sealed to.

Recipients are the paired owners (pairing arrives with the pairing issue). Until an owner pairs:
- a simulated source (sim:, file:, v4l2:) seals to a *development owner* whose identity is created at
  ``<data-dir>/dev-owner.key`` (a standard ``AGE-SECRET-KEY-1`` file, so ``age -d -i`` opens the clips);
- the Pi camera records nothing at all: a real doorbell must never hold footage nobody may open, nor
  footage sealed to a key lying next to it on the same SD card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from uplink.agekeys import Identity, Recipient, load_identities, write_identity_file

log = logging.getLogger(__name__)

DEV_OWNER_FILE = "dev-owner.key"


@dataclass(frozen=True)
class SealingPlan:
    """The recipients to seal to, or why nothing is recorded (``recipients`` empty)."""

    recipients: tuple[Recipient, ...]
    mode: str  # "owners" | "dev-owner" | "not-recording"
    reason: str


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


def sealing_plan(data_dir: Path, *, simulated: bool) -> SealingPlan:
    """Decide who this run seals clips to."""
    if simulated:
        ident = ensure_dev_owner(data_dir)
        return SealingPlan(
            (ident.recipient,), "dev-owner",
            f"no paired owner: simulated source, sealing to the development owner "
            f"{dev_owner_path(data_dir)}",
        )
    return SealingPlan(
        (), "not-recording",
        "not recording: no paired owner. Hold the SETUP button for 3 s and run "
        "`doorward owner pair` (a real camera never records without an owner)",
    )
