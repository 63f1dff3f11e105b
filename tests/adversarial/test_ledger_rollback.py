"""Adversarial: a ledger cut off with sqlite3 (no key needed) must not pass either verifier.

Issue 12, finding 3. The attacker has the device's disk (or a copy of the data directory) and
`sqlite3`; they delete the newest ledger rows, and sometimes the device's own signed head too, then
let the daemon answer the owner again. The owner's tool pins what it verified and checks the
device's signed checkpoints in the bucket, so the device can lie about the future but never
rewrite a past the owner has seen. Real Mosquitto, real SeaweedFS, the real `doorward` CLI.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.owner.keyring import OwnerKeyring, PairedDevice
from tests.helpers import DOORWARD, doorward, doorward_json, pair_for_test, wait_for
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3

pytestmark = pytest.mark.slow

PINS = "ledger-pins.json"


@dataclass
class Device:
    """A device data dir with a provisioned owner, a broker, a bucket, and the daemon when up."""

    tmp: Path
    data: Path
    owner_dir: Path
    label: dict[str, str]
    broker: Mosquitto
    s3: SeaweedS3
    bucket: str
    proc: subprocess.Popen[str] | None = field(default=None)

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    @property
    def bucket_flags(self) -> list[str]:
        return ["--bucket", self.bucket, "--endpoint-url", self.s3.url,
                "--addressing-style", "path"]

    def start(self) -> None:
        cfg = self.tmp / "device.toml"
        cfg.write_text(f'[camera]\nwidth = 640\nheight = 360\n[s3]\nbucket = "{self.bucket}"\n'
                       f'endpoint_url = "{self.s3.url}"\naddressing_style = "path"\n')
        self.proc = subprocess.Popen(
            [DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch", "--realtime",
             "--data-dir", str(self.data), "--broker", self.broker.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env})
        proc = self.proc
        wait_for(lambda: (self.status().get("pid") == proc.pid
                          and self.status().get("mqtt_connected")) or proc.poll() is not None,
                 timeout=30, what="the daemon to connect")
        assert proc.poll() is None, proc.communicate()[1]

    def stop(self) -> str:
        """Stop the daemon (it owns the database while it runs); returns its log."""
        if self.proc is None or self.proc.poll() is not None:
            return ""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        self.proc = None
        return err

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def owner(self, *args: str, owner_dir: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        return doorward("owner", "--owner-dir", str(owner_dir or self.owner_dir), *args,
                        check=check, env=self.env)

    def ledger_rows(self) -> int:
        with sqlite3.connect(self.data / "device.sqlite") as db:
            return int(db.execute("SELECT count(*) FROM ledger").fetchone()[0])

    def cut(self, rows: int, *, also_head: bool) -> None:
        """What a thief with sqlite3 does: delete the newest ``rows`` ledger rows (and, with
        ``also_head``, every other row that mentions the ledger in the settings table)."""
        with sqlite3.connect(self.data / "device.sqlite") as db:
            db.execute("DELETE FROM ledger WHERE seq > (SELECT max(seq) FROM ledger) - ?",
                       (rows,))
            if also_head:
                db.execute("DELETE FROM settings WHERE key LIKE '%ledger%'")

    def checkpoints(self) -> list[str]:
        client = self.s3.client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"doorward/{self.label['device_id']}/ledger/")
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def provision(tmp: Path, broker: Mosquitto, s3: SeaweedS3, bucket: str,
              owner_dir: Path | None = None) -> Device:
    p = pair_for_test(tmp, broker.url, owner_dir=owner_dir)
    return Device(tmp, p.data, p.owner_dir, p.label, broker, s3, bucket)


@pytest.fixture
def device(tmp_path: Path, mosquitto: Mosquitto, seaweed: SeaweedS3) -> Iterator[Device]:
    d = provision(tmp_path, mosquitto, seaweed, seaweed.create_bucket("ledger"))
    try:
        yield d
    finally:
        d.stop()


def history(d: Device, changes: int) -> None:
    """``changes`` consent changes, each a signed command and a ledger entry."""
    for n in range(changes):
        if n % 2 == 0:
            d.owner("consent", "grant", "--scopes", "events", "--days", "3")
        else:
            d.owner("consent", "revoke", "--scopes", "events")


def says_rollback(res: subprocess.CompletedProcess[str]) -> bool:
    return res.returncode != 0 and "rollback" in (res.stdout + res.stderr).lower()


# ---- the device's own verifier ------------------------------------------------------------------


def test_device_verify_is_not_intact_after_rows_are_deleted_with_sqlite3(device: Device) -> None:
    device.start()
    history(device, 4)
    device.stop()
    rows = device.ledger_rows()
    assert rows >= 4
    ok = doorward("ledger", "verify", "--data-dir", str(device.data))
    assert "intact" in ok.stdout
    device.cut(2, also_head=False)
    res = doorward("ledger", "verify", "--data-dir", str(device.data), check=False)
    assert res.returncode != 0, res.stdout
    assert "intact" not in res.stdout.lower().replace("not intact", "")
    assert str(rows) in res.stdout + res.stderr  # names how long it signed it to be


def test_device_verify_is_not_intact_when_its_signed_head_is_deleted_too(device: Device) -> None:
    device.start()
    history(device, 3)
    device.stop()
    device.cut(1, also_head=True)
    res = doorward("ledger", "verify", "--data-dir", str(device.data), check=False)
    assert res.returncode != 0, res.stdout
    assert "head" in (res.stdout + res.stderr).lower()


def test_fetch_does_not_get_a_fresh_header_over_a_cut_ledger(device: Device) -> None:
    """Even an owner who never fetched before (no pin) sees the cut: the device's export header
    vouches for the head it signed when appending, not for what the table now holds."""
    device.start()
    history(device, 4)
    device.stop()
    device.cut(2, also_head=False)
    device.start()
    out = device.tmp / "ledger.jsonl"
    res = device.owner("ledger", "fetch", "-o", str(out), check=False)
    assert res.returncode != 0, res.stdout
    assert "missing" in (res.stdout + res.stderr)


# ---- the owner's pin ---------------------------------------------------------------------------


def test_shorter_ledger_after_a_longer_one_was_pinned_is_a_rollback(device: Device) -> None:
    device.start()
    history(device, 4)
    first = device.tmp / "first.jsonl"
    fetched = device.owner("ledger", "fetch", "-o", str(first))
    assert "pinned" in fetched.stdout
    pins = device.owner_dir / PINS
    assert pins.stat().st_mode & 0o777 == 0o600
    pinned = json.loads(pins.read_text())[device.label["device_id"]]
    assert pinned["count"] == len(first.read_text().splitlines()) - 1
    device.stop()

    device.cut(2, also_head=True)  # and the device's own signed head, so it cannot tell
    device.start()
    second = device.tmp / "second.jsonl"
    res = device.owner("ledger", "fetch", "-o", str(second), check=False)
    assert says_rollback(res), res.stdout + res.stderr
    assert str(pinned["count"]) in res.stderr + res.stdout  # names what was pinned
    assert not second.exists()  # a rejected ledger never replaces the file asked for
    rejected = Path(str(second) + ".rejected")
    assert rejected.exists()
    assert says_rollback(device.owner("ledger", "verify", str(rejected), check=False))
    assert json.loads(pins.read_text())[device.label["device_id"]] == pinned  # unchanged

    # New entries on top of the cut put a different entry at a pinned position: still refused.
    history(device, 3)
    third = device.tmp / "third.jsonl"
    res = device.owner("ledger", "fetch", "-o", str(third), check=False)
    assert says_rollback(res), res.stdout + res.stderr
    assert "different" in (res.stdout + res.stderr)
    assert json.loads(pins.read_text())[device.label["device_id"]] == pinned


def test_a_ledger_that_extends_the_pin_advances_it(device: Device) -> None:
    device.start()
    history(device, 2)
    first = device.tmp / "first.jsonl"
    device.owner("ledger", "fetch", "-o", str(first))
    pins = device.owner_dir / PINS
    before = json.loads(pins.read_text())[device.label["device_id"]]
    history(device, 2)
    second = device.tmp / "second.jsonl"
    device.owner("ledger", "fetch", "-o", str(second))
    after = json.loads(pins.read_text())[device.label["device_id"]]
    assert after["count"] == before["count"] + 2
    assert "intact" in device.owner("ledger", "verify", str(second)).stdout
    # The older export is a prefix of what is pinned: verifying it is a rollback, and says so.
    res = device.owner("ledger", "verify", str(first), check=False)
    assert says_rollback(res)
    assert json.loads(pins.read_text())[device.label["device_id"]] == after


# ---- checkpoints in the bucket -------------------------------------------------------------------


def test_checkpoint_in_the_bucket_that_the_fetched_ledger_does_not_extend(
        device: Device) -> None:
    device.start()
    device.owner("consent", "grant", "--scopes", "clips,events", "--days", "3")
    history(device, 2)
    rows = device.ledger_rows()
    wait_for(lambda: any(f"/{rows:012d}-" in k for k in device.checkpoints()), timeout=30,
             what=f"a checkpoint of the {rows}-entry ledger in the bucket")
    # A fresh owner directory (no pin yet) with the bucket flags sees the checkpoints verify.
    ok = device.owner("ledger", "fetch", "-o", str(device.tmp / "ok.jsonl"),
                      *device.bucket_flags)
    assert "checkpoint" in ok.stdout
    (device.owner_dir / PINS).unlink()  # forget the pin: the bucket alone must catch the cut
    device.stop()

    device.cut(2, also_head=True)
    device.start()
    out = device.tmp / "cut.jsonl"
    res = device.owner("ledger", "fetch", "-o", str(out), *device.bucket_flags, check=False)
    assert says_rollback(res), res.stdout + res.stderr
    assert "checkpoint" in res.stdout + res.stderr
    rejected = Path(str(out) + ".rejected")
    res = device.owner("ledger", "verify", str(rejected), *device.bucket_flags, check=False)
    assert says_rollback(res) and "checkpoint" in res.stdout + res.stderr


def test_forget_all_keeps_the_checkpoints(device: Device) -> None:
    """Checkpoints hold no personal data (counts and hashes); erasing clips must not erase the
    record of what the device committed to."""
    device.start()
    device.owner("consent", "grant", "--scopes", "clips", "--days", "3")
    wait_for(device.checkpoints, timeout=30, what="a checkpoint in the bucket")
    before = device.checkpoints()
    device.owner("forget", "--all")
    wait_for(lambda: "erasure" in doorward("ledger", "show", "--json", "--data-dir",
                                           str(device.data)).stdout,
             timeout=30, what="the bucket side of the erasure")
    assert set(before) <= set(device.checkpoints())


# ---- what the owner's verifier accepts at all ----------------------------------------------------


def device_with_entries(data: Path, entries: int) -> dict[str, str]:
    """A device data dir whose ledger holds ``entries`` entries (written by the device's code)."""
    label: dict[str, str] = doorward_json("device", "label", "--json", "--data-dir", str(data))
    db = DeviceDB(data / "device.sqlite")
    try:
        ledger = Ledger(db, DeviceIdentity.load_or_create(data).key)
        for n in range(entries):
            ledger.append("setting", {"n": n}, time.time())
    finally:
        db.close()
    return label


@pytest.fixture
def owner_only(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An owner directory paired (on paper) with a device data dir; no servers."""
    label = device_with_entries(tmp_path / "device", 3)
    ring, _ = OwnerKeyring.init(tmp_path / "owner")
    ring.add_device(PairedDevice(label["device_id"], label["public_key"], label["fingerprint"],
                                 "mqtt://127.0.0.1:1", time.time()))
    return tmp_path / "owner", label


def owner_verify(owner_dir: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return doorward("owner", "--owner-dir", str(owner_dir), "ledger", "verify", str(path),
                    check=False)


def test_empty_file_is_refused(tmp_path: Path, owner_only: tuple[Path, dict[str, str]]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = owner_verify(owner_only[0], empty)
    assert res.returncode != 0 and "empty" in (res.stdout + res.stderr).lower()
    assert not (owner_only[0] / PINS).exists()


def test_headerless_file_is_refused(tmp_path: Path, owner_only: tuple[Path, dict[str, str]]
                                    ) -> None:
    owner_dir, label = owner_only
    export = doorward("ledger", "show", "--json", "--data-dir", str(tmp_path / "device")).stdout
    lines = export.splitlines()
    assert json.loads(lines[0])["device_id"] == label["device_id"]
    bare = tmp_path / "bare.jsonl"
    bare.write_text("\n".join(lines[1:]) + "\n")  # the header removed
    res = owner_verify(owner_dir, bare)
    assert res.returncode != 0 and "header" in (res.stdout + res.stderr).lower()
    whole = tmp_path / "whole.jsonl"
    whole.write_text(export)
    assert owner_verify(owner_dir, whole).returncode == 0  # the untouched export verifies


def test_another_devices_export_is_refused(tmp_path: Path,
                                           owner_only: tuple[Path, dict[str, str]]) -> None:
    device_with_entries(tmp_path / "other", 2)
    other = doorward("ledger", "show", "--json", "--data-dir", str(tmp_path / "other")).stdout
    path = tmp_path / "other.jsonl"
    path.write_text(other)
    res = owner_verify(owner_only[0], path)
    assert res.returncode != 0 and "header" in (res.stdout + res.stderr).lower()
