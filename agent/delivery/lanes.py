"""Lane wiring: what each outbox lane builds for itself, on its own thread.

:func:`lane_ports` is :class:`agent.delivery.outbox_worker.OutboxWorker`'s ``ports_for``: the
messages lane gets the MQTT batch publisher (agent/delivery/publisher.py), the uploads lane the
clip uploader (agent/delivery/uploader.py) behind the members-only check
(agent/delivery/members.py); each opens its own connections to device.sqlite (consent is asked
again, through the consent gate, at the moment of sending) and outbox.sqlite, and records every
drop in the ledger.

Wiring (agent.app)::

    ctx = LaneContext(data_dir, identity, mqtt, store_factory, prefix, bucket, inbox, gate=gate)
    worker = OutboxWorker(DataDir(data_dir).outbox_db, functools.partial(lane_ports, ctx),
                          gate=gate)
    ctx.wake = worker.wake
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

from agent.delivery.members import members_only
from agent.delivery.outbox import Item, Outbox, drop_records
from agent.delivery.ports import WITHDRAWN, LaneContext, Ports
from agent.delivery.publisher import mqtt_batch_publisher
from agent.delivery.uploader import ClipUploader
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.paths import DataDir

__all__ = ["LaneContext", "lane_ports"]


def lane_ports(ctx: LaneContext, lane: str) -> Ports:
    """``OutboxWorker``'s ``ports_for``: runs on the lane's thread, opens its own connections."""
    db = DeviceDB(DataDir(ctx.data_dir).device_db)
    consent = ConsentStore(db)
    ledger = Ledger(db, ctx.identity.key)

    allows = functools.partial(ctx.gate.may_leave, consent.allows)  # device scope: exempt

    def on_drop(items: Sequence[Item]) -> None:
        now = time.time()
        # a withdrawn upload left the device: the uploader recorded disclosure and withdrawn
        left = [i for i in items if not (i.drop_reason or "").startswith(WITHDRAWN)]
        for record in drop_records(left):
            ledger.append("outbox-drop", record, now)

    if lane == "messages" or ctx.store_factory is None:
        publish = mqtt_batch_publisher(ctx.mqtt) if ctx.mqtt is not None else None
        return Ports(allows=allows, publish=publish, on_drop=on_drop, close=db.close)
    outbox = Outbox(DataDir(ctx.data_dir).outbox_db)
    uploader = ClipUploader(ctx, ctx.store_factory(), db, consent, ledger, outbox,
                            ctx.gate)

    def close() -> None:
        outbox.close()
        db.close()

    # Checked again at the moment of sending: never a clip sealed to a development key.
    upload = members_only(uploader.upload, consent.recipients)
    return Ports(allows=allows, upload=upload, on_sent=uploader.on_sent,
                 on_drop=on_drop, close=close)
