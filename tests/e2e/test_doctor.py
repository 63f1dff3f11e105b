"""End to end: the real ``doorward doctor`` and ``doorward status`` commands, output and exit
status, with a real broker where the check needs one."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import doorward, doorward_json, spawn_daemon, wait_for
from tests.servers import Mosquitto, free_port
from tests.servers_s3 import SeaweedS3

pytestmark = pytest.mark.slow


def test_doctor_passes_a_simulated_setup(tmp_path: Path) -> None:
    res = doorward("doctor", "--source", "sim:porch", "--data-dir", str(tmp_path / "d"),
                   check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^PASS  camera +simulated scene sim:porch$", res.stdout, re.M)
    assert re.search(r"^PASS  gpio +pin factory simulated pins", res.stdout, re.M)
    assert "0 failure(s)" in res.stdout or "all checks passed" in res.stdout


def test_doctor_fails_on_a_bad_config_and_says_which(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[recording]\npre_roll_s = 99\n")
    res = doorward("doctor", "--config", str(bad), "--data-dir", str(tmp_path / "d"),
                   check=False)
    assert res.returncode == 1
    assert re.search(r"^FAIL  config +.*recording\.pre_roll_s = 99", res.stdout, re.M)
    assert "->" in res.stdout  # what to do


def test_doctor_json_with_an_unreachable_broker(tmp_path: Path) -> None:
    res = doorward("doctor", "--json", "--data-dir", str(tmp_path / "d"), "--broker",
                   f"mqtt://127.0.0.1:{free_port()}", "--timeout", "3", check=False)
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    broker = next(c for c in doc["checks"] if c["name"] == "broker")
    assert doc["ok"] is False and broker["status"] == "FAIL" and broker["fix"]
    assert "nothing accepts connections" in broker["summary"]


def test_doctor_with_a_config_file_and_a_live_broker(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    cfg = tmp_path / "doorward.toml"
    cfg.write_text(f"[mqtt]\nurl = \"{mosquitto.url}\"\n")
    res = doorward("doctor", "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                   check=False)
    assert res.returncode == 0, res.stdout
    assert re.search(rf"^PASS  config +{re.escape(str(cfg))} loads$", res.stdout, re.M)
    assert re.search(rf"^PASS  broker +{re.escape(mosquitto.url)} accepts", res.stdout, re.M)


def _status(data: Path) -> dict[str, Any]:
    return dict(doorward_json("status", "--data-dir", str(data), "--json"))


def test_status_of_a_running_then_stopped_daemon(tmp_path: Path, mosquitto: Mosquitto) -> None:
    proc, data = spawn_daemon(tmp_path, mosquitto.url)
    try:
        wait_for(lambda: (data / "status.json").exists() and (
            _status(data)["broker"]["state"] == "connected" or proc.poll() is not None),
            timeout=30, what="status to show the broker connected")
        assert proc.poll() is None, proc.communicate()[1]
        doc = _status(data)
        assert doc["running"] is True and doc["pid"] == proc.pid
        assert doc["camera"]["source"] == "sim:porch"
        assert doc["camera"]["last_frame_age_s"] is not None
        assert doc["camera"]["last_frame_age_s"] < 5
        assert set(doc["queues"]) == {"messages", "uploads"} and doc["queues"]["uploads"] == 0
        assert doc["pairing"]["paired"] is False
        text = doorward("status", "--data-dir", str(data)).stdout
        assert re.search(r"^  broker +connected \d+ s ago$", text, re.M), text
        assert re.search(r"^  camera +sim:porch, last frame \d+ s ago", text, re.M), text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    doc = _status(data)
    assert doc["running"] is False and doc["state"] == "stopped"
    assert doc["broker"]["state"] == "disconnected"
    assert not doc["camera"]["recording"] and not doc["pairing"]["window_open"]


def test_status_after_a_delivered_visit(tmp_path: Path, mosquitto: Mosquitto,
                                        seaweed: SeaweedS3) -> None:
    """Paired, consent granted, a clip uploaded: status (daemon stopped) reads pairing and
    consent from the database and shows the bucket as last seen by the upload lane."""
    from tests.e2e.test_uplink_cli import provision

    rig = provision(tmp_path, mosquitto, seaweed, seaweed.create_bucket("status"))
    rig.grant("--scopes", "events,clips", "--days", "30")
    rig.run("visit")  # drains the outbox before exiting
    doc = _status(rig.data)
    assert doc["running"] is False and doc["pairing"]["owners"] == 1
    assert doc["consent"]["clips"]["in_force"] and doc["consent"]["clips"]["until"] is not None
    assert not doc["consent"]["snapshots"]["in_force"]
    assert doc["bucket"]["state"] == "ok" and doc["bucket"]["error"] is None, doc["bucket"]
    assert doc["queues"] == {"messages": 0, "uploads": 0}
    assert doc["events"]["today"] >= 1 and doc["storage"]["clips"] >= 1
    text = doorward("status", "--data-dir", str(rig.data)).stdout
    assert re.search(r"^  consent +events until \S+ \S+ UTC; clips until ", text, re.M), text
    assert re.search(r"^  bucket +ok \d+ (s|min) ago$", text, re.M), text
