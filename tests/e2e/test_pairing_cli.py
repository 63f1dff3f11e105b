"""End to end: pairing with the SETUP button, owner-signed consent and the ledger, through the CLI.

A real Mosquitto (started by the tests on a free port), the real daemon on a simulated porch in real
time with gpiozero mock pins, pressed through `doorward press`, and the owner tool as people run it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import DOORWARD, age_decrypt, doorward, doorward_json, spawn_daemon, wait_for
from tests.servers import Mosquitto
from uplink.agekeys import Identity
from uplink.mqtt import MqttSettings, request_reply
from uplink.pairing import OwnerPairing, decode, encode, secret_from_setup_code

pytestmark = pytest.mark.slow


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    data: Path
    label: dict[str, str]
    broker: str

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def press(self, button: str, hold_s: float) -> None:
        doorward("press", button, "--hold", str(hold_s), "--data-dir", str(self.data))

    def log(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def daemon(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Daemon]:
    proc, data = spawn_daemon(tmp_path, mosquitto.url)
    d = Daemon(proc, data, {}, mosquitto.url)
    try:
        wait_for(lambda: d.status().get("mqtt_connected") or proc.poll() is not None,
                 timeout=30, what="the daemon to connect to the broker")
        assert proc.poll() is None, proc.communicate()[1]
        d.label = doorward_json("device", "label", "--json", "--data-dir", str(data))
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def owner_init(path: Path) -> dict[str, Any]:
    doorward("owner", "--owner-dir", str(path), "init")
    return dict(doorward_json("owner", "--owner-dir", str(path), "show", "--json"))


def owner(path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return doorward("owner", "--owner-dir", str(path), *args, check=check)


def open_window(d: Daemon) -> None:
    d.press("setup", 3.5)
    wait_for(lambda: d.status().get("pairing_open"), timeout=15, what="the pairing window")


def pair(d: Daemon, owner_dir: Path, *, code: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    return owner(owner_dir, "pair", "--broker", d.broker, "--device", d.label["device_id"],
                 "--setup-code", code or d.label["setup_code"],
                 "--fingerprint", d.label["fingerprint"], "--timeout", "10", check=check)


def device_json(d: Daemon, *args: str) -> Any:
    return doorward_json(*args, "--data-dir", str(d.data), "--json")


def test_label_has_identity_and_no_default_password(tmp_path: Path) -> None:
    data = tmp_path / "d"
    label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    assert set(label) == {"device_id", "public_key", "fingerprint", "setup_code"}
    assert label["device_id"].startswith("dw-")
    again = doorward_json("device", "label", "--json", "--data-dir", str(data))
    assert again == label  # created once, stable afterwards
    other = doorward_json("device", "label", "--json", "--data-dir", str(tmp_path / "e"))
    assert other["setup_code"] != label["setup_code"]  # per device, never a default
    for name in ("device.key", "setup.secret"):
        assert (data / name).stat().st_mode & 0o777 == 0o600
    text = doorward("device", "label", "--data-dir", str(data)).stdout
    assert label["setup_code"] in text and "█" in text  # the QR code


def test_pair_consent_and_ledger_happy_path(daemon: Daemon, tmp_path: Path) -> None:
    me = owner_init(tmp_path / "owner")
    open_window(daemon)
    out = pair(daemon, tmp_path / "owner").stdout
    assert "paired with" in out
    wait_for(lambda: daemon.status().get("sealing") == "owners", timeout=10, what="owner mode")
    assert not daemon.status().get("pairing_open")  # success closes the window

    owner(tmp_path / "owner", "consent", "grant", "--scopes", "events,clips", "--days", "7")
    grants = device_json(daemon, "consent", "show")["grants"]
    assert sorted(g["scope"] for g in grants) == ["clips", "events"]
    for g in grants:
        assert g["granted_by"] == me["key_id"]
        assert g["expires_at"] == pytest.approx(time.time() + 7 * 86400, abs=120)
    owner(tmp_path / "owner", "consent", "revoke", "--scopes", "clips")
    assert [g["scope"] for g in device_json(daemon, "consent", "show")["grants"]] == ["events"]
    shown = json.loads(owner(tmp_path / "owner", "consent", "show", "--json").stdout)
    assert [g["scope"] for g in shown["grants"]] == ["events"]

    # A ring records a clip even without motion, now sealed to the owner only.
    before = {c["id"] for c in device_json(daemon, "clips", "list")["clips"]}
    daemon.press("ring", 0.3)

    def new_clip() -> list[dict[str, Any]]:
        return [c for c in device_json(daemon, "clips", "list")["clips"] if c["id"] not in before]

    clip = wait_for(new_clip, timeout=40, what="a clip after the ring")[0]
    assert clip["recipients"] == [me["recipient"]]
    plain = tmp_path / "ring.mp4"
    assert age_decrypt(Path(me["identity_file"]), Path(clip["path"]), plain).returncode == 0
    assert plain.read_bytes()[4:8] == b"ftyp"
    dev = daemon.data / "dev-owner.key"
    assert age_decrypt(dev, Path(clip["path"]), tmp_path / "x").returncode != 0

    # The ledger, fetched with a signed command, verifies offline; tampering is named.
    ledger = tmp_path / "ledger.jsonl"
    owner(tmp_path / "owner", "ledger", "fetch", "-o", str(ledger))
    kinds = [json.loads(line)["kind"] for line in ledger.read_text().splitlines()[1:]]
    assert kinds[:3] == ["pairing", "consent-grant", "consent-revoke"]
    assert "intact" in owner(tmp_path / "owner", "ledger", "verify", str(ledger)).stdout
    lines = ledger.read_text().splitlines()
    lines[2] = lines[2].replace('"events"', '"snapshots"', 1)
    ledger.write_text("\n".join(lines) + "\n")
    res = owner(tmp_path / "owner", "ledger", "verify", str(ledger), check=False)
    assert res.returncode == 1 and "2" in res.stdout


def test_wrong_setup_code_pairs_nobody(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "mallory")
    open_window(daemon)
    wrong = "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"
    res = pair(daemon, tmp_path / "mallory", code=wrong, check=False)
    assert res.returncode == 2 and "wrong setup code" in res.stderr
    assert daemon.status().get("sealing") == "dev-owner"
    assert device_json(daemon, "consent", "show") == {"grants": []}
    assert "pairing attempt failed" in daemon.log()


def test_no_window_no_pairing(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "owner")
    res = owner(tmp_path / "owner", "pair", "--broker", daemon.broker, "--device",
                daemon.label["device_id"], "--setup-code", daemon.label["setup_code"],
                "--timeout", "3", check=False)
    assert res.returncode == 2 and "hold the SETUP button" in res.stderr
    assert "waiting for" in res.stderr  # it said it was waiting (and kept saying hello)
    log = daemon.log()
    assert log.count("no pairing window is open") == 1  # logged once, not per message


def test_pair_started_first_waits_for_the_window(daemon: Daemon, tmp_path: Path) -> None:
    """The owner runs `owner pair`, then walks to the door and holds SETUP: it pairs."""
    owner_init(tmp_path / "owner")
    proc = subprocess.Popen(
        [DOORWARD, "owner", "--owner-dir", str(tmp_path / "owner"), "pair", "--broker",
         daemon.broker, "--device", daemon.label["device_id"], "--setup-code",
         daemon.label["setup_code"], "--fingerprint", daemon.label["fingerprint"], "--timeout",
         "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # after its first unanswered hello (or EOF on failure)
        assert "waiting for" in first and "SETUP" in first, first
        started = time.monotonic()
        daemon.press("setup", 3.5)  # returns when the finger lets go
        assert time.monotonic() - started >= 3.5
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "paired with" in out
    wait_for(lambda: daemon.status().get("sealing") == "owners", timeout=10, what="owner mode")


def test_ring_held_20_s_opens_nothing(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "owner")
    daemon.press("ring", 20)
    deadline = time.monotonic() + 22
    while time.monotonic() < deadline:  # for the whole hold, and a bit after: never a window
        assert not daemon.status().get("pairing_open")
        time.sleep(0.5)
    res = pair(daemon, tmp_path / "owner", check=False)
    assert res.returncode == 2
    assert (daemon.data / "dev-owner.key").exists()  # and no factory reset either
    log = daemon.log()
    assert "RING pressed" in log and "factory reset" not in log and "pairing window open" not in log


def test_two_owners_in_one_window_abort(daemon: Daemon, tmp_path: Path) -> None:
    """Bob's hello is in the window first; Alice's (a different key) then aborts it: nobody pairs,
    not even Bob, who knows the code."""
    owner_init(tmp_path / "alice")
    open_window(daemon)
    bob = OwnerPairing(daemon.label["device_id"], None,
                       secret_from_setup_code(daemon.label["setup_code"]),
                       Ed25519PrivateKey.generate(), str(Identity.generate().recipient))
    device_topic = f"doorward/{daemon.label['device_id']}/pair/device"
    challenge = request_reply(
        MqttSettings(url=daemon.broker, client_id="bob", allow_plain=True),
        f"doorward/{daemon.label['device_id']}/pair/owner", encode(bob.hello()), device_topic,
        lambda m: True, timeout=10)
    assert challenge is not None  # Bob's exchange has started
    res = pair(daemon, tmp_path / "alice", check=False)
    assert res.returncode == 2
    assert not daemon.status().get("pairing_open")
    # Bob finishing his (valid) exchange is too late: the window was aborted.
    confirm = bob.on_challenge(decode(challenge.payload))  # type: ignore[arg-type]
    late = request_reply(
        MqttSettings(url=daemon.broker, client_id="bob2", allow_plain=True),
        f"doorward/{daemon.label['device_id']}/pair/owner", encode(confirm), device_topic,
        lambda m: True, timeout=3)
    assert late is None
    assert daemon.status().get("sealing") == "dev-owner"
    assert "two different owner keys" in daemon.log()


def test_factory_reset_wipes_owner_consent_and_clips(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "owner")
    open_window(daemon)
    pair(daemon, tmp_path / "owner")
    owner(tmp_path / "owner", "consent", "grant", "--scopes", "events", "--until-revoked")
    daemon.press("ring", 0.3)
    wait_for(lambda: device_json(daemon, "clips", "list")["clips"], timeout=40, what="a clip")
    daemon.press("setup", 10.5)
    wait_for(lambda: daemon.status().get("sealing") == "dev-owner", timeout=20,
             what="the reset to finish")
    wait_for(lambda: not device_json(daemon, "clips", "list")["clips"], timeout=10,
             what="clips to be wiped")
    assert device_json(daemon, "consent", "show") == {"grants": []}
    entries = doorward("ledger", "show", "--json", "--data-dir", str(daemon.data)).stdout
    first = json.loads(entries.splitlines()[1])
    assert first["kind"] == "factory-reset" and first["data"]["previous_count"] >= 2
    # The old owner's commands are refused now.
    res = owner(tmp_path / "owner", "consent", "show", "--timeout", "5", check=False)
    assert res.returncode == 2 and "unknown-owner" in res.stderr
    # The same label pairs again.
    open_window(daemon)
    pair(daemon, tmp_path / "owner")


def test_device_ledger_verify_detects_tampering(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "owner")
    open_window(daemon)
    pair(daemon, tmp_path / "owner")
    owner(tmp_path / "owner", "consent", "grant", "--scopes", "events", "--days", "3")
    daemon.log()  # stop the daemon: the owner of the database
    ok = doorward("ledger", "verify", "--data-dir", str(daemon.data))
    assert ok.returncode == 0
    with sqlite3.connect(daemon.data / "device.sqlite") as db:
        db.execute("UPDATE ledger SET data = replace(data, 'events', 'clips') WHERE seq = 2")
    bad = doorward("ledger", "verify", "--data-dir", str(daemon.data), check=False)
    assert bad.returncode == 1 and "2" in bad.stdout


def test_second_member_only_through_a_signed_command(daemon: Daemon, tmp_path: Path) -> None:
    owner_init(tmp_path / "owner")
    viewer = owner_init(tmp_path / "viewer")
    open_window(daemon)
    pair(daemon, tmp_path / "owner")
    daemon.press("setup", 3.5)  # SETUP no longer opens a window once the doorbell has an owner
    res = pair(daemon, tmp_path / "viewer", check=False)  # waits past the 3.5 s hold: no answer
    assert res.returncode == 2 and not daemon.status().get("pairing_open")
    owner(tmp_path / "owner", "add-member", "--public-key", viewer["public_key"],
          "--recipient", viewer["recipient"], "--role", "viewer")
    # A clip already being recorded was sealed when it began, to the owner alone, and a ring
    # during it only extends it: wait for it to end, so the ring starts a clip of its own.
    wait_for(lambda: not daemon.status().get("recording"), timeout=60,
             what="the clip under way to end")
    before = {c["id"] for c in device_json(daemon, "clips", "list")["clips"]}
    daemon.press("ring", 0.3)

    def new_clip() -> list[dict[str, Any]]:
        return [c for c in device_json(daemon, "clips", "list")["clips"] if c["id"] not in before]

    clip = wait_for(new_clip, timeout=40, what="a clip after the ring")[0]
    me = doorward_json("owner", "--owner-dir", str(tmp_path / "owner"), "show", "--json")
    assert sorted(clip["recipients"]) == sorted([me["recipient"], viewer["recipient"]])
    assert age_decrypt(Path(viewer["identity_file"]), Path(clip["path"]),
                       tmp_path / "v.mp4").returncode == 0
    log = daemon.log()
    assert "already has an owner" in log
