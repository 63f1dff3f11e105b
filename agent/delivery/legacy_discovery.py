"""Removing the Home Assistant discovery configs an earlier version left on the broker.

Until issue 19 the device published Home Assistant discovery configs itself (retained, under
``[homeassistant] discovery_prefix``) while the owner let event content go out in the clear, and
recorded what it published in the setting ``ha_discovery_published``. Home Assistant now hears of
the doorbell only through the owner-side bridge (``doorward owner bridge``), so the device
publishes no config any more; what an earlier version left retained would keep showing stale
entities that read the device's topics. This removes it: an empty retained payload on each
recorded topic (scope ``device``: it leaves without consent), at the first connection after the
upgrade and at a factory reset, after which the record is cleared. A device that never published
a config has no record and queues nothing.

Wiring (agent.delivery.wiring, on the loop thread)::

    legacy = LegacyDiscovery(delivery, device_id)
    on every connection: legacy.cleanup()
    factory reset (agent.runtime.handover): topics = legacy.published_topics(); ...;
                                            legacy.remove(topics)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from agent.device.database import DeviceDB

log = logging.getLogger("doorward")

PUBLISHED_SETTING = "ha_discovery_published"
# A removal waits this long for the broker (an outage can be long; it must still arrive).
QUEUE_LIFETIME_S = 30 * 86400.0
# What the earlier version published with its default prefix: assumed when the record is damaged.
_OLD_OBJECTS = ("event/{id}/doorbell", "binary_sensor/{id}/motion", "sensor/{id}/last_event")


class RetainedPort(Protocol):
    """What the cleanup needs of the uplink (agent.delivery.queueing.Delivery)."""

    db: DeviceDB
    messages_enabled: bool
    wall: Callable[[], float]

    def publish_retained(self, topic: str, payload: bytes, scope: str, *,
                         expires_in_s: float) -> None: ...


def recorded_topics(text: str, device_id: str) -> tuple[str, ...]:
    """The topics a record names; a damaged record counts as the old default topics."""
    if not text:
        return ()
    try:
        return tuple(str(t) for t in json.loads(text)["topics"])
    except (ValueError, KeyError, TypeError):
        log.warning("setting %s is damaged (%r): removing the default discovery topics",
                    PUBLISHED_SETTING, text[:80])
        return tuple(f"homeassistant/{o.format(id=device_id)}/config" for o in _OLD_OBJECTS)


class LegacyDiscovery:
    """See the module docstring. Owned by the daemon loop's thread."""

    def __init__(self, port: RetainedPort, device_id: str) -> None:
        self.port, self.device_id = port, device_id

    def published_topics(self) -> tuple[str, ...]:
        """The topics that may hold a config an earlier version left (read before a factory
        reset wipes the settings)."""
        return recorded_topics(self.port.db.get_setting(PUBLISHED_SETTING, ""), self.device_id)

    def remove(self, topics: Sequence[str]) -> int:
        """Queue an empty retained payload on each of ``topics`` and clear the record; returns
        how many were queued (0 without a broker: the record then stays for the next start)."""
        p = self.port
        if not p.messages_enabled or not topics:
            return 0
        for topic in topics:
            p.publish_retained(topic, b"", "device", expires_in_s=QUEUE_LIFETIME_S)
        p.db.set_setting(PUBLISHED_SETTING, "")
        log.info("home assistant: %d discovery config(s) an earlier version published queued for "
                 "removal (the owner-side bridge replaces them)", len(topics),
                 extra={"fields": {"remove": list(topics)}})
        return len(topics)

    def cleanup(self) -> int:
        """At each connection: remove whatever the record names (nothing, once done)."""
        return self.remove(self.published_topics())
