"""Home Assistant MQTT discovery: the doorbell appears in Home Assistant while, and only while,
the owner lets event content go out in the clear.

Published (retained, QoS 1, under ``[homeassistant] discovery_prefix``) when BOTH the ``events``
consent is in force AND the owner's ``events.content`` setting is ``clear``; removed (an empty
retained payload on each config topic) when either stops being true or discovery is switched
off. One device entry with three entities:

* ``event`` "Doorbell" (device class ``doorbell``, event type ``ring``),
* ``binary_sensor`` "Motion" (device class ``motion``: ON at motion-started, OFF at motion-ended),
* ``sensor`` "Last event" (the last event's kind; its fields as attributes).

The configs are plain JSON (Home Assistant requires it) and hold only entity metadata. Everything
Home Assistant reads after that is the device's own SIGNED messages: the entities' state topic is
the device's ``events`` topic and availability is its ``status`` topic. Their ``value_template``
decodes the compact JWS's middle segment (base64url -> base64, padded, ``base64_decode``,
``from_json``) and picks ``body.kind``, so no unsigned state stream exists. Home Assistant does not
check the signature; the owner tool does (``doorward owner events``).

Durability: configs and removals go through the outbox's messages lane like every message. A
config is scope ``events`` (dropped at send time if consent went meanwhile); a removal is scope
``device`` (it must leave even after consent is gone). What was published is recorded in the
device database (``PUBLISHED_SETTING``) after it is queued, so a removal is queued exactly when
something was published, and a crash in between only repeats an idempotent retained publish.

Wiring (agent.app, all on the daemon loop's thread)::

    ha = HomeAssistantDiscovery(delivery, enabled=cfg.homeassistant.discovery,
                                prefix=cfg.homeassistant.discovery_prefix, sw_version=__version__)
    hooks = UplinkHooks(on_changed=ha.reconcile, ...)   # after every accepted owner command
    on_connected: ha.reconcile()                        # queues nothing unless the state changed
    each loop tick: ha.tick()                           # every check_every_s: consent expiry

Broker ACL: the device must be allowed to write ``<prefix>/+/<device id>/#`` (with Mosquitto's
``pattern write homeassistant/+/%u/#``). A broker that refuses a retained message gets it dropped
(logged, and an ``outbox-drop`` in the ledger, naming the ACL fix) rather than retried, so a
missing ACL line never holds back the event messages queued behind it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.device.database import DeviceDB
from uplink import topic_for

log = logging.getLogger("doorward")

DEFAULT_PREFIX = "homeassistant"
PUBLISHED_SETTING = "ha_discovery_published"
# A queued config or removal waits this long for the broker (an outage can be long; a removal
# must still arrive afterwards).
QUEUE_LIFETIME_S = 30 * 86400.0
CHECK_EVERY_S = 30.0
MANUFACTURER = "Doorward"
MODEL = "Doorward doorbell agent"
PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,2}")  # <= 7 slashes in all topics

# --- value templates (Home Assistant's Jinja) ----------------------------------------------------
# ``m`` becomes the message's claims, or {} for anything that is not a compact JWS (whose JSON
# segments start '{"', base64url 'eyJ'). The middle segment is base64url without padding: map it
# to standard base64 and pad it to a multiple of 4.
_DECODE = (
    "{%- set p = value.split('.') -%}"
    "{%- set s = (p[1] if p|length == 3 and p[1][:3] == 'eyJ' else '')"
    "|replace('-', '+')|replace('_', '/') -%}"
    "{%- set m = ((s ~ ('=' * ((4 - s|length % 4) % 4)))|base64_decode|from_json)"
    " if s else {} -%}"
    "{%- set b = m.get('body', {}) if m.get('content') == 'clear' else {} -%}"
)
_IS_EVENT = "m.get('typ') == 'event' and b"
EVENT_TEMPLATE = (_DECODE + "{%- if " + _IS_EVENT + " and b.get('kind') == 'ring' -%}"
                  '{"event_type":"ring"}{%- endif -%}')
MOTION_TEMPLATE = (_DECODE + "{%- if " + _IS_EVENT + " and b.get('kind') == 'motion-started' -%}"
                   "ON{%- elif " + _IS_EVENT + " and b.get('kind') == 'motion-ended' -%}OFF"
                   "{%- endif -%}")
LAST_EVENT_TEMPLATE = _DECODE + "{%- if " + _IS_EVENT + " -%}{{ b.get('kind') }}{%- endif -%}"
ATTRIBUTES_TEMPLATE = _DECODE + "{%- if " + _IS_EVENT + " -%}{{ b|tojson }}{%- endif -%}"
# The will's literal ``offline`` -> offline; a status message whose body says online -> online.
AVAILABILITY_TEMPLATE = (
    "{%- if value == 'offline' -%}offline{%- else -%}" + _DECODE
    + "{%- if m.get('typ') == 'status' and b.get('state') == 'online' -%}online"
    "{%- else -%}offline{%- endif -%}{%- endif -%}"
)


@dataclass(frozen=True)
class DiscoveryConfig:
    """One entity's discovery config: its topic and JSON payload."""

    component: str
    topic: str
    payload: dict[str, Any]

    def encoded(self) -> bytes:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode()


def discovery_configs(device_id: str, *, prefix: str = DEFAULT_PREFIX,
                      sw_version: str) -> list[DiscoveryConfig]:
    """The three entity configs of ``device_id``; topics
    ``<prefix>/<component>/<device_id>/<object_id>/config``."""
    events, status = topic_for(device_id, "event"), topic_for(device_id, "status")
    slug = device_id.replace("-", "_")
    common: dict[str, Any] = {
        "availability": [{"topic": status, "value_template": AVAILABILITY_TEMPLATE,
                          "payload_available": "online", "payload_not_available": "offline"}],
        "device": {"identifiers": [device_id], "name": f"Doorward {device_id}",
                   "manufacturer": MANUFACTURER, "model": MODEL, "sw_version": sw_version},
        "origin": {"name": "doorward", "sw_version": sw_version},
        "qos": 1,
        "state_topic": events,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("event", "doorbell", {"name": "Doorbell", "device_class": "doorbell",
                               "event_types": ["ring"], "value_template": EVENT_TEMPLATE}),
        ("binary_sensor", "motion", {"name": "Motion", "device_class": "motion",
                                     "payload_on": "ON", "payload_off": "OFF",
                                     "value_template": MOTION_TEMPLATE}),
        ("sensor", "last_event", {"name": "Last event", "icon": "mdi:doorbell-video",
                                  "value_template": LAST_EVENT_TEMPLATE,
                                  "json_attributes_topic": events,
                                  "json_attributes_template": ATTRIBUTES_TEMPLATE}),
    ]
    return [DiscoveryConfig(component, f"{prefix}/{component}/{device_id}/{object_id}/config", {
        **common, **extra, "unique_id": f"{device_id}_{object_id}",
        # default_entity_id replaced object_id in Home Assistant 2025.10 (object_id is
        # deprecated there); older versions ignore the key.
        "default_entity_id": f"{component}.{slug}_{object_id}"})
        for component, object_id, extra in entities]


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to queue: removals (empty retained payloads) first, then configs; ``record`` is the
    new value of PUBLISHED_SETTING ("" when nothing stays published)."""

    publish: tuple[tuple[str, bytes], ...] = ()
    remove: tuple[str, ...] = ()
    record: str = ""


def _digest(configs: Sequence[DiscoveryConfig]) -> str:
    h = hashlib.sha256()
    for c in configs:
        h.update(c.topic.encode() + b"\0" + c.encoded() + b"\0")
    return h.hexdigest()


def _recorded(text: str, configs: Sequence[DiscoveryConfig]) -> tuple[tuple[str, ...], str]:
    """(topics, digest) of what was published; a damaged record counts as "the current configs
    may be out there, content unknown", so it is removed or republished, never left behind."""
    if not text:
        return (), ""
    try:
        doc = json.loads(text)
        topics = tuple(str(t) for t in doc["topics"])
        return topics, str(doc["digest"])
    except (ValueError, KeyError, TypeError):
        log.warning("setting %s is damaged (%r): treating discovery as published",
                    PUBLISHED_SETTING, text[:80])
        return tuple(c.topic for c in configs), ""


def plan(wanted: bool, configs: Sequence[DiscoveryConfig], recorded: str) -> Plan | None:
    """Publish or remove, given whether discovery is ``wanted`` now, the ``configs`` it would
    publish and the ``recorded`` PUBLISHED_SETTING; None when nothing needs queueing."""
    before, before_digest = _recorded(recorded, configs)
    if not wanted:
        return Plan(remove=before) if before else None
    digest = _digest(configs)
    if before and before_digest == digest:
        return None
    topics = [c.topic for c in configs]
    stale = tuple(t for t in before if t not in topics)  # e.g. the prefix changed
    return Plan(publish=tuple((c.topic, c.encoded()) for c in configs), remove=stale,
                record=json.dumps({"topics": topics, "digest": digest}, sort_keys=True))


# --- on the loop thread --------------------------------------------------------------------------


class DiscoveryPort(Protocol):
    """What discovery needs from the uplink (agent.delivery.queueing.Delivery is the real one)."""

    db: DeviceDB
    messages_enabled: bool
    wall: Callable[[], float]

    @property
    def content(self) -> str: ...

    def may_leave(self, scope: str, now: float) -> bool: ...

    def publish_retained(self, topic: str, payload: bytes, scope: str, *,
                         expires_in_s: float) -> None: ...


class HomeAssistantDiscovery:
    """Keeps the broker's retained discovery configs in line with consent and content (see the
    module docstring). Owned by the daemon loop's thread."""

    def __init__(self, port: DiscoveryPort, device_id: str, *, enabled: bool,
                 prefix: str = DEFAULT_PREFIX, sw_version: str,
                 check_every_s: float = CHECK_EVERY_S,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.port, self.enabled = port, enabled
        self.configs = discovery_configs(device_id, prefix=prefix, sw_version=sw_version)
        self.check_every_s, self.mono = check_every_s, mono
        self._next_check = 0.0

    def wanted(self, now: float) -> bool:
        p = self.port
        return (self.enabled and p.content == "clear" and p.may_leave("events", now))

    def reconcile(self) -> Plan | None:
        """Queue what brings the broker in line with consent and content now; returns the plan
        carried out (None: nothing to do, or no broker to do it through)."""
        p = self.port
        if not p.messages_enabled:
            return None  # nothing could send it; the next start with a broker does it
        todo = plan(self.wanted(p.wall()), self.configs,
                    p.db.get_setting(PUBLISHED_SETTING, ""))
        if todo is None:
            return None
        for topic in todo.remove:
            p.publish_retained(topic, b"", "device", expires_in_s=QUEUE_LIFETIME_S)
        for topic, payload in todo.publish:
            p.publish_retained(topic, payload, "events", expires_in_s=QUEUE_LIFETIME_S)
        p.db.set_setting(PUBLISHED_SETTING, todo.record)  # after queueing: at least once
        log.info("home assistant discovery: %d config(s) queued for publishing, %d for removal",
                 len(todo.publish), len(todo.remove),
                 extra={"fields": {"publish": [t for t, _ in todo.publish],
                                   "remove": list(todo.remove)}})
        return todo

    def published_topics(self) -> tuple[str, ...]:
        """Every config topic that may hold a retained config now: what the record says was
        published, plus (discovery enabled) the current configs' topics, in case the record was
        lost. For a factory reset: read before the settings are wiped."""
        recorded, _ = _recorded(self.port.db.get_setting(PUBLISHED_SETTING, ""), self.configs)
        current = tuple(c.topic for c in self.configs) if self.enabled else ()
        return tuple(dict.fromkeys((*recorded, *current)))

    def remove(self, topics: Sequence[str]) -> int:
        """Factory reset: queue an empty retained payload on each of ``topics`` (scope
        ``device``: it leaves with no consent in force) and record that nothing is published.
        Returns how many were queued (0 without a broker)."""
        p = self.port
        if not p.messages_enabled:
            return 0
        for topic in topics:
            p.publish_retained(topic, b"", "device", expires_in_s=QUEUE_LIFETIME_S)
        p.db.set_setting(PUBLISHED_SETTING, "")
        log.info("home assistant discovery: %d retained config(s) queued for removal",
                 len(topics), extra={"fields": {"remove": list(topics)}})
        return len(topics)

    def tick(self) -> None:
        """Call often (each loop tick); reconciles every ``check_every_s``, which is what
        notices a consent grant expiring."""
        now = self.mono()
        if now >= self._next_check:
            self._next_check = now + self.check_every_s
            self.reconcile()
