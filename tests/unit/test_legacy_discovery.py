"""agent/delivery/legacy_discovery.py: the Home Assistant configs an earlier version published
are removed (empty retained payloads, scope ``device``) once, then the record is cleared; nothing
is queued for a device that never published one, nor without a broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.delivery.legacy_discovery import PUBLISHED_SETTING, LegacyDiscovery
from agent.device.database import DeviceDB

DEVICE = "dw-abcdefghijklmnop"
TOPICS = [f"homeassistant/event/{DEVICE}/doorbell/config",
          f"homeassistant/binary_sensor/{DEVICE}/motion/config"]


class Port:
    def __init__(self, db: DeviceDB, *, messages_enabled: bool = True) -> None:
        self.db, self.messages_enabled = db, messages_enabled
        self.wall = lambda: 1000.0
        self.queued: list[tuple[str, bytes, str]] = []

    def publish_retained(self, topic: str, payload: bytes, scope: str, *,
                         expires_in_s: float) -> None:
        assert expires_in_s >= 86400  # a removal must outlast a long outage
        self.queued.append((topic, payload, scope))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DeviceDB]:
    d = DeviceDB(tmp_path / "device.sqlite")
    yield d
    d.close()


def test_recorded_configs_are_removed_once(db: DeviceDB) -> None:
    db.set_setting(PUBLISHED_SETTING, json.dumps({"topics": TOPICS, "digest": "x"}))
    port = Port(db)
    legacy = LegacyDiscovery(port, DEVICE)
    assert legacy.cleanup() == 2
    assert port.queued == [(t, b"", "device") for t in TOPICS]
    assert db.get_setting(PUBLISHED_SETTING, "unset") == ""
    assert legacy.cleanup() == 0 and len(port.queued) == 2  # the next connection: nothing


def test_nothing_for_a_device_that_never_published(db: DeviceDB) -> None:
    port = Port(db)
    assert LegacyDiscovery(port, DEVICE).cleanup() == 0 and port.queued == []


def test_without_a_broker_the_record_stays_for_the_next_start(db: DeviceDB) -> None:
    db.set_setting(PUBLISHED_SETTING, json.dumps({"topics": TOPICS}))
    port = Port(db, messages_enabled=False)
    assert LegacyDiscovery(port, DEVICE).cleanup() == 0
    assert port.queued == [] and json.loads(db.get_setting(PUBLISHED_SETTING, ""))["topics"]


def test_a_damaged_record_removes_the_old_default_topics(db: DeviceDB) -> None:
    db.set_setting(PUBLISHED_SETTING, "{not json")
    port = Port(db)
    assert LegacyDiscovery(port, DEVICE).cleanup() == 3
    assert {t for t, _, _ in port.queued} == {
        *TOPICS, f"homeassistant/sensor/{DEVICE}/last_event/config"}


def test_an_old_config_file_with_the_removed_section_says_what_replaced_it() -> None:
    from agent.config import parse_config
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[homeassistant\] was removed") as err:
        parse_config("[homeassistant]\ndiscovery = true\n")
    assert "doorward owner bridge" in str(err.value)
