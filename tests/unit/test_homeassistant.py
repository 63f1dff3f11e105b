"""agent.delivery.homeassistant: discovery payloads against Home Assistant's documented keys, the
value
templates rendered by Jinja against real signed messages, and when configs are published/removed.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import parse_config
from agent.delivery.homeassistant import (
    PUBLISHED_SETTING,
    DiscoveryConfig,
    HomeAssistantDiscovery,
    Plan,
    discovery_configs,
    plan,
)
from agent.delivery.outbox import _MIGRATIONS, Item, Outbox
from agent.delivery.queueing import CONTENT_SETTING, Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.errors import ConfigError
from agent.paths import DataDir
from uplink.agekeys import Identity
from uplink.manifest import SeqState
from uplink.messages import Body, EventBody, StatusBody, next_message, sign_status, topic_for

jinja2 = pytest.importorskip("jinja2")
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

DEVICE = "dw-abcdefghijklmnop"
VERSION = "1.2.3"

# --- Home Assistant's documented discovery keys (full names; we use no abbreviations) ---------
# From home-assistant.io/integrations/{event,binary_sensor,sensor}.mqtt ("Configuration
# Variables") and /integrations/mqtt (discovery: device, origin, availability).
ENTITY_COMMON = frozenset({
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "payload_available", "payload_not_available", "qos",
    "state_topic", "unique_id", "value_template",
})
DOCUMENTED = {
    "event": ENTITY_COMMON | {"device_class", "event_types"},
    "binary_sensor": ENTITY_COMMON | {"device_class", "expire_after", "force_update",
                                      "off_delay", "payload_off", "payload_on"},
    "sensor": ENTITY_COMMON | {"device_class", "expire_after", "force_update",
                               "last_reset_value_template", "options", "state_class",
                               "suggested_display_precision", "unit_of_measurement"},
}
REQUIRED = {"event": {"state_topic", "event_types"}, "binary_sensor": {"state_topic"},
            "sensor": {"state_topic"}}
DEVICE_KEYS = frozenset({"configuration_url", "connections", "hw_version", "identifiers",
                         "manufacturer", "model", "model_id", "name", "serial_number",
                         "suggested_area", "sw_version", "via_device"})
ORIGIN_KEYS = frozenset({"name", "sw_version", "support_url"})
AVAILABILITY_KEYS = frozenset({"payload_available", "payload_not_available", "topic",
                               "value_template"})
DEVICE_CLASSES = {"event": {"doorbell", "button", "motion"},
                  "binary_sensor": {"motion", "occupancy", "presence", "sound"}}
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config
TOPIC_RE = re.compile(r"(?P<prefix>[^/+#]+)/(?P<component>[a-z_]+)/(?:[a-zA-Z0-9_-]+/)?"
                      r"[a-zA-Z0-9_-]+/config")


def by_component(prefix: str = "homeassistant") -> dict[str, DiscoveryConfig]:
    return {c.component: c for c in discovery_configs(DEVICE, prefix=prefix,
                                                      sw_version=VERSION)}


def test_configs_use_only_documented_keys_and_have_the_required_ones() -> None:
    configs = by_component()
    assert set(configs) == {"event", "binary_sensor", "sensor"}
    for component, c in configs.items():
        doc = json.loads(c.encoded())  # plain JSON, as Home Assistant requires
        assert set(doc) <= DOCUMENTED[component], set(doc) - DOCUMENTED[component]
        assert REQUIRED[component] <= set(doc)
        assert "availability_topic" not in doc  # exclusive with the availability list
        assert set(doc["device"]) <= DEVICE_KEYS and doc["device"]["identifiers"] == [DEVICE]
        assert set(doc["origin"]) <= ORIGIN_KEYS and "name" in doc["origin"]
        for entry in doc["availability"]:
            assert set(entry) <= AVAILABILITY_KEYS and "topic" in entry
        match = TOPIC_RE.fullmatch(c.topic)
        assert match and match["prefix"] == "homeassistant" and match["component"] == component
        assert c.topic.count("/") <= 7  # the fleet brokers' limit
        if component in DEVICE_CLASSES:
            assert doc["device_class"] in DEVICE_CLASSES[component]
        assert doc["default_entity_id"].startswith(component + ".")
        assert re.fullmatch(r"[a-z0-9_]+", doc["default_entity_id"].split(".", 1)[1])
    assert configs["event"].payload["event_types"] == ["ring"]
    assert configs["event"].payload["device_class"] == "doorbell"
    assert configs["binary_sensor"].payload["device_class"] == "motion"
    assert len({c.payload["unique_id"] for c in configs.values()}) == 3


def test_entities_read_the_devices_signed_topics_and_nothing_else() -> None:
    for c in by_component().values():
        doc = c.payload
        assert doc["state_topic"] == topic_for(DEVICE, "event")
        assert doc.get("json_attributes_topic", doc["state_topic"]) == doc["state_topic"]
        assert [a["topic"] for a in doc["availability"]] == [topic_for(DEVICE, "status")]
        assert doc["device"]["manufacturer"] == "Doorward"
        assert doc["device"]["sw_version"] == VERSION


def test_prefix_is_configurable() -> None:
    assert all(c.topic.startswith("ha-test/") for c in by_component("ha-test").values())


def test_config_section_defaults_and_errors() -> None:
    cfg = parse_config("")
    assert cfg.homeassistant.discovery and cfg.homeassistant.discovery_prefix == "homeassistant"
    custom = parse_config('[homeassistant]\ndiscovery = false\ndiscovery_prefix = "lan/ha"\n')
    assert not custom.homeassistant.discovery
    assert custom.homeassistant.discovery_prefix == "lan/ha"
    for text, needle in [
        ('discovery_prefix = "ha/#"', "homeassistant.discovery_prefix = 'ha/#'"),
        ('discovery_prefix = "/ha"', "1-3 topic levels"),
        ('discovery_prefix = "a/b/c/d"', "1-3 topic levels"),
        ("discovery = 1", "homeassistant.discovery = 1: must be true or false"),
        ('prefix = "ha"', "homeassistant.prefix is unknown"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config(f"[homeassistant]\n{text}\n")
        assert needle in str(err.value)


# --- the templates, rendered the way Home Assistant renders them -------------------------------


def ha_env() -> Any:
    """Home Assistant's template environment is an ImmutableSandboxedEnvironment with extra
    filters; these two behave like its base64_decode (utf-8 text) and from_json."""
    env = ImmutableSandboxedEnvironment()
    env.filters["base64_decode"] = lambda v: base64.b64decode(v).decode("utf-8")
    env.filters["from_json"] = json.loads
    return env


def render(template: str, payload: str) -> str:
    return str(ha_env().from_string(template).render(value=payload))


KEY = Ed25519PrivateKey.generate()
OWNER = Identity.generate()


def message(body: Body, content: str = "clear", seq: int = 1) -> str:
    state = SeqState(last_seq=seq - 1, last_hash="0" * 64)
    signed, _ = next_message(state, body, KEY, now=1_700_000_000.0, content=content,
                             recipients=[OWNER.recipient])
    return signed.jws


def event(kind: str, **kw: Any) -> EventBody:
    return EventBody(kind=kind, event_id="7", at="2024-05-01T12:00:00Z", **kw)


def templates() -> dict[str, str]:
    c = {k: v.payload for k, v in by_component().items()}
    return {"event": c["event"]["value_template"], "motion": c["binary_sensor"]["value_template"],
            "last": c["sensor"]["value_template"],
            "attrs": c["sensor"]["json_attributes_template"],
            "availability": c["event"]["availability"][0]["value_template"]}


@pytest.mark.parametrize(("body", "expected"), [
    (event("ring"), {"event": '{"event_type":"ring"}', "motion": "", "last": "ring"}),
    (event("motion-started"), {"event": "", "motion": "ON", "last": "motion-started"}),
    (event("motion-ended", peak_area=0.25), {"event": "", "motion": "OFF",
                                              "last": "motion-ended"}),
    (event("clip-sealed", clip_id="c1"), {"event": "", "motion": "", "last": "clip-sealed"}),
])
def test_state_templates_decode_real_signed_event_messages(body: EventBody,
                                                           expected: dict[str, str]) -> None:
    t = templates()
    jws = message(body)
    assert jws.count(".") == 2 and "=" not in jws  # unpadded base64url, as the JWS spec says
    for name, want in expected.items():
        assert render(t[name], jws) == want, name
    if expected["event"]:  # what Home Assistant's event entity parses
        assert json.loads(render(t["event"], jws)) == {"event_type": "ring"}
    assert json.loads(render(t["attrs"], jws)) == body.to_json()


def test_padding_is_right_for_every_length_of_payload_segment() -> None:
    t = templates()
    lengths = set()
    for n in range(1, 9):  # event ids of growing length move the segment through all % 4
        jws = message(EventBody(kind="ring", event_id="x" * n, at="2024-05-01T12:00:00Z"))
        lengths.add(len(jws.split(".")[1]) % 4)
        assert render(t["event"], jws) == '{"event_type":"ring"}'
    assert lengths >= {0, 2, 3}  # base64url never leaves 1


@pytest.mark.parametrize("payload", ["sealed", "offline", "not.a.jws!", "", "a.b.c", "{}"])
def test_sealed_messages_and_other_payloads_render_nothing(payload: str) -> None:
    if payload == "sealed":
        payload = message(event("ring"), content="sealed")
    t = templates()
    for name in ("event", "motion", "last", "attrs"):
        assert render(t[name], payload) == "", name
    assert render(t["availability"], payload) == "offline"


def test_a_corrupt_jws_fails_the_render() -> None:
    """Home Assistant logs a failed render and ignores that message: no state change."""
    jws = message(event("ring"))
    head, body, sig = jws.split(".")
    with pytest.raises(Exception):  # noqa: B017 (binascii.Error or JSONDecodeError)
        render(templates()["event"], f"{head}.{body[:-5]}.{sig}")


def test_availability_template_maps_status_and_the_will() -> None:
    t = templates()["availability"]
    online = sign_status(StatusBody(state="online", version=VERSION, uptime_s=3), KEY,
                         now=1_700_000_000.0)
    assert render(t, online) == "online"
    assert render(t, "offline") == "offline"  # the broker's will, not a JWS
    assert render(t, message(event("ring"))) == "offline"  # not a status message


# --- the decision ------------------------------------------------------------------------------


def test_plan_publishes_once_removes_exactly_what_was_published() -> None:
    configs = discovery_configs(DEVICE, sw_version=VERSION)
    assert plan(False, configs, "") is None  # never published: nothing to remove
    first = plan(True, configs, "")
    assert first is not None and len(first.publish) == 3 and first.remove == ()
    assert [t for t, _ in first.publish] == [c.topic for c in configs]
    assert plan(True, configs, first.record) is None  # unchanged: nothing on reconnect
    gone = plan(False, configs, first.record)
    assert gone == Plan(remove=tuple(c.topic for c in configs), record="")


def test_plan_republishes_on_upgrade_and_cleans_up_a_changed_prefix() -> None:
    old = discovery_configs(DEVICE, sw_version="0.9", prefix="homeassistant")
    recorded = plan(True, old, "")
    assert recorded is not None
    upgraded = plan(True, discovery_configs(DEVICE, sw_version=VERSION), recorded.record)
    assert upgraded is not None and len(upgraded.publish) == 3 and upgraded.remove == ()
    moved = plan(True, discovery_configs(DEVICE, sw_version="0.9", prefix="ha2"),
                 recorded.record)
    assert moved is not None and moved.remove == tuple(c.topic for c in old)


def test_a_damaged_record_errs_towards_removal() -> None:
    configs = discovery_configs(DEVICE, sw_version=VERSION)
    p = plan(False, configs, "{not json")
    assert p is not None and p.remove == tuple(c.topic for c in configs)


# --- wired to a real Delivery and outbox ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[HomeAssistantDiscovery, Delivery, Clock]]:
    identity = DeviceIdentity.load_or_create(tmp_path)
    db = DeviceDB(DataDir(tmp_path).device_db)
    outbox = Outbox(DataDir(tmp_path).outbox_db)
    clock = Clock()
    delivery = Delivery(outbox, identity, db, ConsentStore(db), recipients=lambda: (),
                        uploads_enabled=False, messages_enabled=True, wake=lambda: None,
                        wall=clock)
    ha = HomeAssistantDiscovery(delivery, identity.device_id, enabled=True,
                                sw_version=VERSION, mono=clock)
    yield ha, delivery, clock
    outbox.close()
    db.close()


def queued(delivery: Delivery) -> list[Item]:
    return delivery.outbox.items(("queued",))


def test_publishes_only_with_events_consent_and_clear_content(
        rig: tuple[HomeAssistantDiscovery, Delivery, Clock]) -> None:
    ha, d, clock = rig
    assert ha.reconcile() is None  # no consent, sealed (the default)
    d.consent.grant(["events"], None, by="owner", now=clock())
    assert ha.reconcile() is None  # consent but sealed
    d.db.set_setting(CONTENT_SETTING, "clear")
    assert ha.reconcile() is not None
    items = queued(d)
    assert [(i.scope, i.retain) for i in items] == [("events", True)] * 3
    assert [i.topic for i in items] == [c.topic for c in ha.configs]
    assert all(json.loads(i.payload or b"")["unique_id"] for i in items)
    assert d.db.get_setting(PUBLISHED_SETTING, "")
    assert ha.reconcile() is None and len(queued(d)) == 3  # a reconnect queues nothing new


@pytest.mark.parametrize("how", ["sealed", "revoked", "expired", "disabled"])
def test_removal_is_queued_once_with_device_scope(
        rig: tuple[HomeAssistantDiscovery, Delivery, Clock], how: str) -> None:
    ha, d, clock = rig
    d.db.set_setting(CONTENT_SETTING, "clear")
    d.consent.grant(["events"], clock() + 3600, by="owner", now=clock())
    ha.reconcile()
    if how == "sealed":
        d.db.set_setting(CONTENT_SETTING, "sealed")
    elif how == "revoked":
        d.consent.revoke(["events"], by="owner", now=clock())
    elif how == "expired":
        clock.t += 3601
    else:
        ha.enabled = False
    ha.tick()
    removals = queued(d)[3:]
    assert [(i.topic, i.payload, i.scope, i.retain) for i in removals] == [
        (c.topic, b"", "device", True) for c in ha.configs]
    assert all(i.expires_at >= clock() + 7 * 86400 for i in removals)  # survives an outage
    assert d.db.get_setting(PUBLISHED_SETTING, "x") == ""
    clock.t += 60
    ha.tick()
    assert len(queued(d)) == 6  # removed once, not again


def test_tick_rechecks_only_every_interval(
        rig: tuple[HomeAssistantDiscovery, Delivery, Clock]) -> None:
    ha, d, clock = rig
    ha.tick()
    d.db.set_setting(CONTENT_SETTING, "clear")
    d.consent.grant(["events"], None, by="owner", now=clock())
    ha.tick()
    assert queued(d) == []  # within the interval
    clock.t += ha.check_every_s
    ha.tick()
    assert len(queued(d)) == 3


def test_no_broker_queues_nothing(rig: tuple[HomeAssistantDiscovery, Delivery, Clock]) -> None:
    ha, d, clock = rig
    d.messages_enabled = False
    d.db.set_setting(CONTENT_SETTING, "clear")
    d.consent.grant(["events"], None, by="owner", now=clock())
    assert ha.reconcile() is None and queued(d) == []


# --- the outbox's retain flag ----------------------------------------------------------------


def test_outbox_keeps_the_retain_flag_and_upgrades_an_old_database(tmp_path: Path) -> None:
    path = DataDir(tmp_path).outbox_db
    old = sqlite3.connect(path)
    for statement in _MIGRATIONS[0].split(";"):
        if statement.strip():
            old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO items (kind, scope, topic, payload, size, created_at, expires_at) "
                "VALUES ('message', 'device', 't/old', x'00', 1, 0, 9e9)")
    old.commit()
    old.close()
    outbox = Outbox(path)
    try:
        outbox.enqueue_message("t/new", b"", "device", now=1.0, retain=True)
        assert [(i.topic, i.retain) for i in outbox.items()] == [("t/old", False),
                                                                  ("t/new", True)]
    finally:
        outbox.close()
