"""agent/paths.py: the data directory's file names are the device's on-disk contract.

A device upgraded in place must find its keys, databases and clips where the older doorward left
them: these tests pin every name to the one the released code used (the constants it had:
DEVICE_DB_FILE, OUTBOX_FILE, STATUS_FILE, CONTROL_SOCKET_NAME, DEVICE_KEY_FILE, ...), build a data
directory with those literal names, and check that today's code finds everything in it.
"""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.outbox import Outbox
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.paths import TLS_KEY_TYPES, DataDir
from agent.recording.sealing import SealingPolicy
from agent.store import ClipStore, EventRecord
from agent.store.index import Index
from agent.tools.doctor import device_id_of
from agent.tools.status_report import count_events_since, read_device, read_queues, read_status
from uplink.agekeys import Identity, write_identity_file
from uplink.keys import device_id_for, public_raw, save_ed25519, write_private_file

ROOT = Path(__file__).resolve().parents[2]
# Every file name of the data directory as the released code spelled it (before agent/paths.py).
RELEASED = {
    "device_key": "device.key",           # agent/identity.py DEVICE_KEY_FILE
    "setup_secret": "setup.secret",       # agent/identity.py SETUP_SECRET_FILE
    "dev_owner_key": "dev-owner.key",     # agent/owners.py DEV_OWNER_FILE
    "device_db": "device.sqlite",         # agent/devicedb.py DEVICE_DB_FILE
    "outbox_db": "outbox.sqlite",         # agent/outbox.py and agent/delivery.py OUTBOX_FILE
    "index_db": "index.sqlite",           # agent/store/clipstore.py, agent/status.py INDEX_DB
    "clips": "clips",                     # agent/store/clipstore.py
    "store_lock": "lock",                 # agent/store/clipstore.py
    "status": "status.json",              # agent/status.py STATUS_FILE
    "control_socket": "control.sock",     # agent/control.py CONTROL_SOCKET_NAME
}
RELEASED_TLS = {"p256": "tls-p256.key", "ed25519": "tls-ed25519.key"}  # agent/csr.py


def test_every_name_is_the_released_one(tmp_path: Path) -> None:
    paths = DataDir(tmp_path)
    assert {attr: getattr(paths, attr) for attr in RELEASED} == {
        attr: tmp_path / name for attr, name in RELEASED.items()}
    assert {t: paths.tls_key(t) for t in TLS_KEY_TYPES} == {
        t: tmp_path / name for t, name in RELEASED_TLS.items()}
    assert paths.databases == (tmp_path / "index.sqlite", tmp_path / "device.sqlite",
                               tmp_path / "outbox.sqlite")


def test_status_is_written_in_the_runtime_directory_and_read_in_the_data_directory(
        tmp_path: Path) -> None:
    assert DataDir(tmp_path).status_target == tmp_path / "status.json"
    run = tmp_path / "run"
    paths = DataDir(tmp_path / "data", runtime=run)
    assert paths.status == tmp_path / "data" / "status.json"
    assert paths.status_target == run / "status.json"


def test_an_unknown_tls_key_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="p256, ed25519"):
        DataDir(tmp_path).tls_key("rsa")


def test_data_dir_is_a_frozen_value(tmp_path: Path) -> None:
    assert DataDir(tmp_path) == DataDir(tmp_path)
    with pytest.raises(AttributeError):
        DataDir(tmp_path).root = tmp_path / "other"  # type: ignore[misc]


def test_an_upgraded_device_finds_its_data(tmp_path: Path) -> None:
    """A data directory laid out by the released code, file by literal file name, read by
    today's code: same device id and setup secret, owners, the queued message, the events,
    status.json and the development owner."""
    now = time.time()
    key = Ed25519PrivateKey.generate()
    save_ed25519(tmp_path / "device.key", key)
    write_private_file(tmp_path / "setup.secret", b"S" * 16)
    dev = Identity.generate()
    write_identity_file(tmp_path / "dev-owner.key", dev, comment="dev owner")
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        ConsentStore(db).add_owner(public_raw(Ed25519PrivateKey.generate()),
                                   str(Identity.generate().recipient), "owner", now)
    finally:
        db.close()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.enqueue_message("doorward/d/status", b"{}", "device", now=now)
    outbox.close()
    (tmp_path / "clips").mkdir()
    index = Index(tmp_path / "index.sqlite")
    index.record_event(EventRecord("e1", "motion", "2027-01-15T08:00:00Z", None, 0.0, None, 1.0))
    index.close()
    (tmp_path / "status.json").write_text(json.dumps({"pid": os.getpid(), "state": "running"}))
    before = _files(tmp_path)

    identity = DeviceIdentity.load_or_create(tmp_path)
    assert identity.device_id == device_id_for(public_raw(key)) == device_id_of(tmp_path)
    assert identity.setup_secret == b"S" * 16
    view = read_device(tmp_path, now)
    assert view is not None and view.owners == 1
    assert read_queues(tmp_path) == {"messages": 1, "uploads": 0}
    assert count_events_since(tmp_path, 0.0) == 1
    with ClipStore(tmp_path, max_bytes=1 << 30, retention_days=30) as store:
        assert [e.id for e in store.list_events()] == ["e1"]
    assert (read_status(tmp_path) or {}).get("running") is True
    policy = SealingPolicy(tmp_path, dev_owner=True, owner_recipients=list)
    assert policy.recipients() == (dev.recipient,)
    assert _files(tmp_path) == before, "today's code looked for a file the released one lacks"


def _files(folder: Path) -> set[str]:
    """The names in ``folder``, SQLite's side files (which come and go) left out."""
    return {n for n in os.listdir(folder) if not n.endswith(("-wal", "-shm"))}


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_each_name_is_spelled_in_paths_only() -> None:
    """No module but agent/paths.py holds a data-directory file name as a string of its own (a
    docstring or message mentioning one is fine): the others ask DataDir."""
    names = {n for n in RELEASED.values() if n not in ("clips", "lock")}  # common words
    names |= set(RELEASED_TLS.values())
    offenders = {str(f.relative_to(ROOT)): sorted(_string_constants(f) & names)
                 for f in sorted((ROOT / "agent").rglob("*.py"))
                 if f != ROOT / "agent" / "paths.py" and "owner" not in f.parts}
    assert {k: v for k, v in offenders.items() if v} == {}
