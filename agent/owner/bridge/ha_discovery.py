"""Home Assistant's side of the bridge: MQTT discovery configs and the topics the bridge writes.

Pure functions; :mod:`agent.owner.bridge.bridge` publishes what they return. Everything here is
published by the bridge (an owner-side member that verified and opened the device's messages),
on Home Assistant's broker, under ``doorward-bridge/``: Home Assistant never sees a device message,
sealed or not, so it needs no template that decodes a JWS, and nothing it shows was unverified.

One Home Assistant device per Doorward device (``identifiers``: the device id), four entities:

* ``event`` "Doorbell": device class ``doorbell``, event type ``ring`` (what doorbell automations
  expect); payload ``{"event_type": "ring", "event_id": ..., "at": ..., "clip_id": ...}``;
* ``binary_sensor`` "Motion": device class ``motion``, ``ON`` at motion-started, ``OFF`` at
  motion-ended (retained);
* ``sensor`` "Last event": the last event's kind, its fields as attributes (retained);
* ``image`` "Last snapshot": ``image_topic`` carrying the raw JPEG of the last event's snapshot,
  decrypted on the bridge's host (retained).

Availability, ``availability_mode: all``: the bridge's own topic (``online`` at connect, the
retained will ``offline``) AND the device's (``online`` from its verified, signed status;
``offline`` from its broker will, which no one signs: an ``offline`` can be forged, an ``online``
cannot).

Topics (no personal data: ids only)::

    <prefix>/<component>/<device_id>/<object_id>/config     discovery, retained
    doorward-bridge/<bridge key id>/availability             the bridge's birth and will
    doorward-bridge/<device_id>/{availability,event,motion,last_event,attributes,image}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_PREFIX = "homeassistant"
ROOT = "doorward-bridge"
PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,2}")  # <= 7 slashes in all topics
MANUFACTURER = "Doorward"
MODEL = "Doorward doorbell agent (through the owner-side bridge)"
ONLINE, OFFLINE = "online", "offline"
MOTION_ON, MOTION_OFF = "ON", "OFF"
BIRTH_TOPIC = "homeassistant/status"  # Home Assistant's own birth message (default)


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is 1-3 topic levels of A-Z a-z 0-9 _ - (ValueError naming the rule)."""
    if not PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"--discovery-prefix {prefix!r}: must be 1-3 topic levels of "
                         "A-Z a-z 0-9 _ - separated by '/' (Home Assistant's default is "
                         f"'{DEFAULT_PREFIX}')")
    return prefix


def bridge_availability(bridge_id: str) -> str:
    """The bridge's availability topic (its will): one per bridge process (its key id)."""
    return f"{ROOT}/{bridge_id}/availability"


@dataclass(frozen=True)
class StateTopics:
    """Where the bridge writes one device's states on Home Assistant's broker."""

    device_id: str

    def _t(self, name: str) -> str:
        return f"{ROOT}/{self.device_id}/{name}"

    @property
    def availability(self) -> str:
        return self._t("availability")

    @property
    def event(self) -> str:
        return self._t("event")

    @property
    def motion(self) -> str:
        return self._t("motion")

    @property
    def last_event(self) -> str:
        return self._t("last_event")

    @property
    def attributes(self) -> str:
        return self._t("attributes")

    @property
    def image(self) -> str:
        return self._t("image")


@dataclass(frozen=True)
class DiscoveryConfig:
    """One entity's discovery config: its topic and JSON payload."""

    component: str
    topic: str
    payload: dict[str, Any]

    def encoded(self) -> bytes:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode()


def discovery_configs(device_id: str, *, bridge_id: str, prefix: str = DEFAULT_PREFIX,
                      sw_version: str) -> list[DiscoveryConfig]:
    """The four entity configs of ``device_id`` (see the module docstring)."""
    t = StateTopics(device_id)
    slug = device_id.replace("-", "_")
    common: dict[str, Any] = {
        "availability": [{"topic": bridge_availability(bridge_id)}, {"topic": t.availability}],
        "availability_mode": "all",  # each entry: online/offline, Home Assistant's defaults
        "device": {"identifiers": [device_id], "name": f"Doorward {device_id}",
                   "manufacturer": MANUFACTURER, "model": MODEL, "sw_version": sw_version},
        "origin": {"name": "doorward-bridge", "sw_version": sw_version},
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("event", "doorbell", {"name": "Doorbell", "device_class": "doorbell",
                               "event_types": ["ring"], "state_topic": t.event, "qos": 1}),
        ("binary_sensor", "motion", {"name": "Motion", "device_class": "motion",
                                     "state_topic": t.motion, "payload_on": MOTION_ON,
                                     "payload_off": MOTION_OFF, "qos": 1}),
        ("sensor", "last_event", {"name": "Last event", "icon": "mdi:doorbell-video",
                                  "state_topic": t.last_event, "qos": 1,
                                  "json_attributes_topic": t.attributes}),
        # raw bytes on image_topic (no image_encoding): Home Assistant takes the JPEG as is
        ("image", "snapshot", {"name": "Last snapshot", "image_topic": t.image,
                               "content_type": "image/jpeg"}),
    ]
    return [DiscoveryConfig(component, f"{prefix}/{component}/{device_id}/{object_id}/config", {
        **common, **extra, "unique_id": f"{device_id}_{object_id}",
        # default_entity_id replaced object_id in Home Assistant 2025.10; older versions
        # ignore the key.
        "default_entity_id": f"{component}.{slug}_{object_id}"})
        for component, object_id, extra in entities]


def event_payload(item: dict[str, Any]) -> bytes | None:
    """The doorbell event entity's payload for a feed item, or None (not a ring)."""
    if item.get("kind") != "ring":
        return None
    doc = {"event_type": "ring", **_fields(item)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def motion_payload(item: dict[str, Any]) -> bytes | None:
    kind = item.get("kind")
    if kind == "motion-started":
        return MOTION_ON.encode()
    if kind == "motion-ended":
        return MOTION_OFF.encode()
    return None


def attributes_payload(item: dict[str, Any]) -> bytes:
    """The last-event sensor's attributes: the event's own fields, as the device signed them."""
    return json.dumps(_fields(item), sort_keys=True, separators=(",", ":")).encode()


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("event_id", "at", "clip_id", "seq") if item.get(k) is not None}
