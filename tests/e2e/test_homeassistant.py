"""End to end: the running daemon publishes and removes Home Assistant discovery as the owner's
signed commands change consent and event content (real Mosquitto, the real owner tool)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.owner.keyring import OwnerKeyring, PairedDevice
from tests.helpers import DOORWARD, SMALL_CONFIG, doorward, doorward_json, wait_for
from tests.integration.test_homeassistant import check_documented, retained
from tests.servers import Mosquitto

pytestmark = pytest.mark.slow


def test_owner_commands_publish_and_remove_discovery(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    data, owner_dir = tmp_path / "device", tmp_path / "owner"
    label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    ring, _ = OwnerKeyring.init(owner_dir)
    db = DeviceDB(data / "device.sqlite")
    try:  # provisioned directly: pairing itself is tested in test_pairing_cli.py
        ConsentStore(db).add_owner(ring.public_raw, ring.recipient, "owner", time.time())
    finally:
        db.close()
    ring.add_device(PairedDevice(label["device_id"], label["public_key"], label["fingerprint"],
                                 mosquitto.url, time.time()))
    config = tmp_path / "device.toml"
    config.write_text(SMALL_CONFIG)

    def owner(*args: str) -> None:
        doorward("owner", "--owner-dir", str(owner_dir), *args)

    def configs() -> dict[str, bytes]:
        return retained(mosquitto, "homeassistant/#")

    def status() -> dict[str, object]:
        try:
            return dict(json.loads((data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(config), "--source", "sim:porch", "--realtime",
         "--data-dir", str(data), "--broker", mosquitto.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        wait_for(lambda: (status().get("pid") == proc.pid and status().get("mqtt_connected"))
                 or proc.poll() is not None, timeout=30, what="the daemon to connect")
        assert proc.poll() is None
        owner("consent", "grant", "--scopes", "events", "--until-revoked")
        owner("events-content", "clear")
        found = wait_for(lambda: len(got := configs()) == 3 and got, timeout=15,
                         what="three retained discovery configs")
        assert sorted(check_documented(t, p) for t, p in found.items()) == [
            "binary_sensor", "event", "sensor"]
        assert all(f"/{label['device_id']}/" in t for t in found)
        owner("events-content", "sealed")
        wait_for(lambda: configs() == {}, timeout=15, what="the configs to be removed")
        owner("events-content", "clear")
        wait_for(lambda: len(configs()) == 3, timeout=15, what="the configs again")
        owner("consent", "revoke", "--scopes", "events")
        wait_for(lambda: configs() == {}, timeout=15, what="removal after the revocation")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "home assistant discovery" in err
