"""When the doorbell changes hands: pairing retires the development owner, a factory reset
forgets the previous owner. Both run on the daemon loop's thread, called by the controller.

Pairing (:meth:`Handover.paired`, after the owner is stored): the clip being recorded is sealed
to the development owner, so it is discarded and the event goes on in a new clip sealed to the
owner; every stored clip no paired member can open is deleted, then ``dev-owner.key``.

Factory reset (:meth:`Handover.wipe`, the controller's ``on_factory_reset``, after consent is
wiped and before the ledger restarts): the clip in progress is discarded and the open event
forgotten; the Home Assistant configs an earlier version may have left retained on the broker
(agent.delivery.legacy_discovery) are noted, the outbox
(items, payloads, message chain) and every owner setting are wiped, the clip store (files, clip
rows, events) is emptied, ``dev-owner.key`` deleted, and empty retained payloads are queued for
the noted discovery topics. Every database touched is scrubbed (agent.sqlite.scrub) so a card image
shows nothing deleted; the controller scrubs device.sqlite once the ledger has restarted.
Only the device key, the setup secret and the (restarted) ledger remain.

Wiring (agent.app)::

    handover = Handover(data_dir, store, device.db, device.consent, pipeline,
                        outbox=delivery.outbox, discovery=discovery)
    DeviceController(..., on_factory_reset=handover.wipe, on_paired=handover.paired)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.delivery.legacy_discovery import PUBLISHED_SETTING, LegacyDiscovery
from agent.delivery.outbox import Outbox
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.paths import DataDir
from agent.recording.sealing import retire_dev_owner
from agent.runtime.frame_loop import Pipeline
from agent.store import ClipStore

log = logging.getLogger("doorward")

# What the new ledger's first entry says was wiped: names only. Counts would tell the next
# owner how much the previous one recorded.
WIPED = ("owners", "consent", "counters", "jti", "settings", "clips", "events", "outbox",
         "dev-owner")


@dataclass
class Handover:
    """See the module docstring. ``outbox``/``discovery``: None without an uplink/broker."""

    data_dir: Path
    store: ClipStore
    db: DeviceDB
    consent: ConsentStore
    pipeline: Pipeline
    outbox: Outbox | None = None
    discovery: LegacyDiscovery | None = None

    def paired(self) -> list[str]:
        """An owner was just stored: retire the development owner. Returns deleted clip ids."""
        discarded = self.pipeline.discard_clip(forget_event=False)
        if discarded is not None:
            log.warning("clip %s was sealed to the development owner: discarded at pairing; "
                        "the visit goes on in a clip sealed to the owner", discarded)
        return retire_dev_owner(self.data_dir, self.store, self.consent.recipients())

    def wipe(self) -> dict[str, Any]:
        """The factory reset's local part (see the module docstring); returns the ledger data."""
        discarded = self.pipeline.discard_clip(forget_event=True)
        topics = self.discovery.published_topics() if self.discovery is not None else ()
        published = self.db.get_setting(PUBLISHED_SETTING, "")
        items = self._wipe_outbox()
        self.db.wipe_settings()
        if self.discovery is None and published:
            # No broker in this run: keep only the record of what is retained out there, so the
            # next start with a broker removes it (it names topics, nothing of the owner's).
            self.db.set_setting(PUBLISHED_SETTING, published)
        gone = self.store.wipe()
        DataDir(self.data_dir).dev_owner_key.unlink(missing_ok=True)
        removals = self.discovery.remove(topics) if self.discovery is not None else 0
        log.warning("factory reset: discarded the clip in progress (%s); deleted %d clip(s), "
                    "%d event(s), %d outbox item(s); %d discovery config(s) queued for removal",
                    discarded or "none", gone["clips"], gone["events"], items, removals)
        return {"wiped": list(WIPED)}

    def _wipe_outbox(self) -> int:
        if self.outbox is not None:
            return self.outbox.wipe()
        path = DataDir(self.data_dir).outbox_db
        if not path.exists():
            return 0
        outbox = Outbox(path)  # an earlier run had an uplink: its payloads are still there
        try:
            return outbox.wipe()
        finally:
            outbox.close()
