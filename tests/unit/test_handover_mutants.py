"""Mutation tests for the factory reset and the pairing handover (agent/runtime/handover.py).

The reset's whole behaviour is covered end to end by tests/adversarial/test_factory_reset.py
(a real broker, a daemon in another process), which mutation testing cannot run against every
mutant. These run in process, with a recording pipeline and discovery, and check each step the
promise depends on: the clip in progress is discarded *with* its event, the retained discovery
topics are read before the settings go and handed to the removal, the outbox is wiped whether
or not this run has an uplink, the record of retained configs survives only when there is no
broker to remove them now, and ``dev-owner.key`` goes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import sqlite as agent_sqlite
from agent.delivery.legacy_discovery import PUBLISHED_SETTING, LegacyDiscovery
from agent.delivery.outbox import Outbox
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.errors import StoreError
from agent.paths import DataDir
from agent.recording.sealing import ensure_dev_owner
from agent.runtime.frame_loop import Pipeline
from agent.runtime.handover import WIPED, Handover
from agent.store import ClipStore
from tests.unit.test_store import NOW, add_clip, make_store
from uplink.agekeys import Identity
from uplink.keys import public_raw


@dataclass
class FakePipeline:
    """Records how the clip in progress was discarded; returns ``clip`` as the discarded id."""

    clip: str | None = "clipinprogress"
    calls: list[bool] = field(default_factory=list)

    def discard_clip(self, *, forget_event: bool) -> str | None:
        self.calls.append(forget_event)
        return self.clip


@dataclass
class FakeDiscovery:
    """Says which topics may hold a retained config (read at the moment of the call)."""

    db: DeviceDB
    topics: tuple[str, ...] = ("homeassistant/event/d/ring/config",
                               "homeassistant/binary_sensor/d/motion/config")
    removed: list[tuple[str, ...]] = field(default_factory=list)
    setting_when_read: list[str] = field(default_factory=list)

    def published_topics(self) -> tuple[str, ...]:
        self.setting_when_read.append(self.db.get_setting(PUBLISHED_SETTING, ""))
        return self.topics

    def remove(self, topics: Sequence[str]) -> int:
        self.removed.append(tuple(topics))
        self.db.set_setting(PUBLISHED_SETTING, "")
        return len(topics)


@dataclass
class Rig:
    data: Path
    store: ClipStore
    db: DeviceDB
    consent: ConsentStore
    pipeline: FakePipeline
    alice: Identity

    def handover(self, **kw: Any) -> Handover:
        return Handover(self.data, self.store, self.db, self.consent,
                        cast(Pipeline, self.pipeline), **kw)


RECORD = '{"digest":"x","topics":["homeassistant/event/d/ring/config"]}'


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    data = tmp_path / "data"
    store = make_store(data)
    db = DeviceDB(data / "device.sqlite")
    consent = ConsentStore(db)
    alice = Identity.generate()
    consent.add_owner(public_raw(Ed25519PrivateKey.generate()), str(alice.recipient), "owner",
                      NOW)
    db.set_setting("event_content", "clear")
    db.set_setting(PUBLISHED_SETTING, RECORD)
    yield Rig(data, store, db, consent, FakePipeline(), alice)
    db.close()
    store.close()


def settings(db: DeviceDB) -> dict[str, str]:
    return {r[0]: r[1] for r in db.query("SELECT key, value FROM settings")}


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the handover itself logged (agent.recording.sealing logs under its own name)."""
    return [r.getMessage() for r in caplog.records if r.name == "doorward"]


def fill_outbox(path: Path) -> None:
    outbox = Outbox(path)
    try:
        outbox.enqueue_message("doorward/d/events", b"ALICE", "events", now=NOW)
        outbox.enqueue_message("doorward/d/events", b"ALICE-2", "events", now=NOW)
    finally:
        outbox.close()


def outbox_items(path: Path) -> int:
    outbox = Outbox(path)
    try:
        return len(outbox.items())
    finally:
        outbox.close()


def test_wipe_without_broker_or_uplink(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """The reset from the button in a run with neither broker nor bucket: an earlier run's
    outbox file is opened and wiped, every setting goes except the record of what is retained
    on the broker (so the next start with a broker removes it), clips and events go, the
    development key goes, and the clip in progress is discarded together with its event."""
    add_clip(rig.store, rig.alice, NOW)
    add_clip(rig.store, rig.alice, NOW + 60)
    fill_outbox(DataDir(rig.data).outbox_db)
    ensure_dev_owner(rig.data)
    caplog.set_level(logging.WARNING, logger="doorward")

    result = rig.handover().wipe()

    assert result == {"wiped": ["owners", "consent", "counters", "jti", "settings", "clips",
                                "events", "outbox", "dev-owner"]}
    assert list(WIPED) == result["wiped"]
    assert rig.pipeline.calls == [True]  # the open event is forgotten, not carried on
    assert settings(rig.db) == {PUBLISHED_SETTING: RECORD}
    assert rig.store.list_clips() == []
    assert outbox_items(DataDir(rig.data).outbox_db) == 0
    assert not DataDir(rig.data).dev_owner_key.exists()
    assert messages(caplog) == [
        "factory reset: discarded the clip in progress (clipinprogress); deleted 2 clip(s), "
        "0 event(s), 2 outbox item(s); 0 discovery config(s) queued for removal"]


def test_wipe_with_nothing_to_wipe(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """No outbox file, no clip in progress, no development key, no retained configs: nothing
    is created (no outbox file appears), the log says "none" and zeros."""
    rig.pipeline.clip = None
    rig.db.delete_setting(PUBLISHED_SETTING)
    caplog.set_level(logging.WARNING, logger="doorward")

    assert rig.handover().wipe() == {"wiped": list(WIPED)}

    assert settings(rig.db) == {}  # an empty record is not written back
    assert not DataDir(rig.data).outbox_db.exists()
    assert messages(caplog) == [
        "factory reset: discarded the clip in progress (none); deleted 0 clip(s), "
        "0 event(s), 0 outbox item(s); 0 discovery config(s) queued for removal"]


def test_wipe_with_broker_and_uplink(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """With a broker: the topics are read while the record still exists, every one is handed to
    the removal, and no record is kept afterwards (the removal itself clears it). With an
    uplink: the daemon's own outbox is wiped."""
    outbox = Outbox(DataDir(rig.data).outbox_db)
    outbox.enqueue_message("doorward/d/events", b"ALICE", "events", now=NOW)
    discovery = FakeDiscovery(rig.db)
    caplog.set_level(logging.WARNING, logger="doorward")
    try:
        rig.handover(outbox=outbox, discovery=cast(LegacyDiscovery, discovery)).wipe()
        assert outbox.items() == []
    finally:
        outbox.close()
    assert discovery.setting_when_read == [RECORD]
    assert discovery.removed == [discovery.topics]
    assert settings(rig.db) == {PUBLISHED_SETTING: ""}
    assert messages(caplog)[-1].endswith(
        "1 outbox item(s); 2 discovery config(s) queued for removal")


def test_pairing_keeps_the_event_and_deletes_what_only_the_dev_key_opens(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Pairing discards the clip in progress but not its event (the visit goes on in a clip
    sealed to the owner); clips no member can open are deleted, the owner's stay."""
    dev = ensure_dev_owner(rig.data)
    doomed = add_clip(rig.store, dev, NOW)
    kept = add_clip(rig.store, rig.alice, NOW + 60)
    caplog.set_level(logging.WARNING, logger="doorward")

    assert rig.handover().paired() == [doomed]

    assert rig.pipeline.calls == [False]
    assert [c.id for c in rig.store.list_clips()] == [kept]
    assert not DataDir(rig.data).dev_owner_key.exists()
    assert messages(caplog)[0] == (
        "clip clipinprogress was sealed to the development owner: discarded at pairing; "
        "the visit goes on in a clip sealed to the owner")


def test_pairing_with_no_clip_in_progress_logs_no_discard(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.pipeline.clip = None
    caplog.set_level(logging.WARNING, logger="doorward")
    assert rig.handover().paired() == []
    assert rig.pipeline.calls == [False]
    assert not any("discarded at pairing" in m for m in messages(caplog))


# ---- agent.device.database.scrub: what a card image shows after a reset
# ------------------------------


def card_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def test_scrub_leaves_no_deleted_row_in_the_file_or_its_wal(tmp_path: Path) -> None:
    """A deleted setting is in neither device.sqlite nor its -wal after DeviceDB.scrub, which
    leaves the -wal empty; the live rows stay readable."""
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        db.set_setting("event_content", "ALICE-WAS-HERE")
        db.set_setting("kept", "STILL-HERE")
        db.delete_setting("event_content")
        db.scrub()
        raw = card_bytes(db.path)
        assert b"ALICE-WAS-HERE" not in raw
        assert b"STILL-HERE" in raw
        assert Path(f"{db.path}-wal").stat().st_size == 0
        assert db.get_setting("kept", "") == "STILL-HERE"
    finally:
        db.close()


def test_wipe_settings_deletes_every_setting_unrecoverably_once_scrubbed(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        db.set_setting("a", "ALICE-A")
        db.set_setting("b", "ALICE-B")
        db.wipe_settings()
        assert db.query("SELECT COUNT(*) FROM settings")[0][0] == 0
        db.scrub()
        assert b"ALICE-" not in card_bytes(db.path)
    finally:
        db.close()


def _reader_holding(path: Path) -> sqlite3.Connection:
    """Another connection in the middle of a read: a TRUNCATE checkpoint cannot finish."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    return reader


def test_scrub_retries_a_busy_checkpoint_until_the_reader_is_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "device.sqlite"
    DeviceDB(path).close()
    db = agent_sqlite.connect(path, timeout_s=0.0)  # no busy handler: a busy checkpoint is at once
    db.execute("INSERT INTO settings VALUES ('x', 'ALICE-X')")
    reader = _reader_holding(path)
    waits: list[float] = []

    def sleep(s: float) -> None:  # the reader finishes while scrub waits for the second time
        waits.append(s)
        if len(waits) == 2:
            reader.execute("COMMIT")

    monkeypatch.setattr(agent_sqlite.time, "sleep", sleep)
    db.execute("DELETE FROM settings")
    try:
        agent_sqlite.scrub(db, path)
        assert waits == [0.02, 0.02]
        assert Path(f"{path}-wal").stat().st_size == 0
        assert b"ALICE-X" not in card_bytes(path)
    finally:
        reader.close()
        db.close()


def test_scrub_gives_up_after_its_attempts_naming_the_wal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "device.sqlite"
    DeviceDB(path).close()
    db = agent_sqlite.connect(path, timeout_s=0.0)
    reader = _reader_holding(path)
    waits: list[float] = []
    monkeypatch.setattr(agent_sqlite.time, "sleep", waits.append)
    try:
        with pytest.raises(StoreError) as e:
            agent_sqlite.scrub(db, path)
        assert len(waits) == agent_sqlite.SCRUB_ATTEMPTS == 50
        assert str(e.value) == (
            f"{path}: the write-ahead log stayed busy, so deleted data may remain in "
            f"{path}-wal; restart doorward (the next start checkpoints it)")
    finally:
        reader.close()
        db.close()


def test_scrub_translates_a_database_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite"
    DeviceDB(path).close()
    db = agent_sqlite.connect(path)
    db.execute("BEGIN")  # VACUUM cannot run inside a transaction
    try:
        with pytest.raises(StoreError) as e:
            agent_sqlite.scrub(db, path)
        assert str(e.value).startswith(f"{path}: cannot scrub deleted data (")
        assert str(e.value).endswith("); free space or check the card")
        assert isinstance(e.value.__cause__, sqlite3.Error)
    finally:
        db.close()


def test_a_failed_scrub_names_the_database_file(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        with pytest.raises(StoreError, match="cannot scrub deleted data") as e, \
                db.transaction():
            db.scrub()  # inside a transaction: VACUUM refuses
        assert str(e.value).startswith(f"{db.path}: cannot scrub deleted data (")
    finally:
        db.close()


def test_scrub_of_a_database_not_in_wal_mode_returns_at_once(tmp_path: Path) -> None:
    """Without a WAL (a rollback journal) the checkpoint has nothing to do: it reports not busy
    and no log (-1), and scrub is done after VACUUM."""
    path = tmp_path / "plain.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES ('ALICE-PLAIN')")
        db.execute("DELETE FROM t")
        agent_sqlite.scrub(db, path)
        assert b"ALICE-PLAIN" not in card_bytes(path)
    finally:
        db.close()
