"""The messages lane's publish port: a batch of messages to the broker at QoS 1.

Wiring (agent/delivery/lanes.py)::

    Ports(allows=consent.allows, publish=mqtt_batch_publisher(client, ack_timeout_s=5.0), ...)

Messages go in batches from the head of the lane; the port returns how many of them, from the
first, the broker acknowledged. Fewer than all means the broker is away: the worker waits, with no
spinning and no reordering.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.delivery.outbox import Item
from agent.delivery.ports import PermanentSendError, PublishBatch, Send, TransientSendError
from uplink import MqttAuthError, MqttLimitError, MqttPort, MqttPublishError


def one_by_one(publish: Callable[[str, bytes, int | None], bool]) -> PublishBatch:
    """A batch port from ``publish(topic, payload, message_expiry_s) -> acknowledged``."""

    def batch(sends: Sequence[Send]) -> int:
        for n, s in enumerate(sends):
            if not publish(s.topic, s.payload, s.message_expiry_s):
                return n
        return len(sends)

    return batch


def mqtt_batch_publisher(client: MqttPort, ack_timeout_s: float = 5.0) -> PublishBatch:
    """Publish a batch at QoS 1 through ``client`` (paho pipelines it) and count the
    acknowledged prefix. Nothing is handed to paho while disconnected: paho would keep it and
    send it on reconnection, behind the outbox's back (a duplicate, possibly out of order)."""

    def batch(sends: Sequence[Send]) -> int:
        if not client.is_connected:
            return 0
        handles = []
        for s in sends:
            try:
                handles.append(client.publish(s.topic, s.payload, qos=1, retain=s.retain,
                                              message_expiry_s=s.message_expiry_s))
            except MqttLimitError as e:
                raise PermanentSendError(str(e), acked=_acked(client, handles, sends,
                                                              ack_timeout_s),
                                         item_id=s.item_id) from e
            if not client.is_connected:
                break  # the rest waits for the next batch
        return _acked(client, handles, sends, ack_timeout_s)

    return batch


def _acked(client: MqttPort, handles: Sequence[Any], sends: Sequence[Send],
           timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    for n, handle in enumerate(handles):
        try:
            if not client.wait_published(handle, max(0.0, deadline - time.monotonic())):
                return n
        except (MqttPublishError, MqttAuthError) as e:
            if sends[n].retain:
                # A retained message states what is true now and is sent again when that changes
                # (status on every connect, Home Assistant discovery on reconcile): dropping a
                # refused one (logged and in the ledger) loses nothing, keeping it would hold
                # every event behind it until the operator fixes the ACL.
                raise PermanentSendError(
                    f"broker refused retained {sends[n].topic!r}: {e}; allow the device to "
                    "write that topic in the broker's ACL", acked=n,
                    item_id=sends[n].item_id) from e
            # refused (e.g. by an ACL): keep it, in order, until the operator fixes it
            raise TransientSendError(f"broker refused a publish: {e}", acked=n) from e
    return len(handles)


def remaining_expiry(item: Item, now: float) -> int | None:
    """MQTT 5 message expiry left for ``item`` (>= 1 s), None when it has none."""
    if item.message_expiry_s is None:
        return None
    return max(1, math.ceil(min(float(item.message_expiry_s), item.expires_at - now)))
