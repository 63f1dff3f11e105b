"""``doorward status``: the document from status.json plus the databases read read-only, its
human form, and the bucket reachability the upload lane reports to the loop."""

from __future__ import annotations

import json
import os
import queue
import re
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.links import LinkState
from agent.delivery.outbox import Outbox
from agent.device.consent import DAY_S, ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.runtime.status_file import StatusFile
from agent.store import ClipStore
from agent.tools.status_report import (
    count_events_since,
    local_midnight,
    read_device,
    read_status,
    status_document,
    status_lines,
)
from uplink.agekeys import Identity
from uplink.keys import public_raw

NOW = 1_800_000_000.0  # 2027-01-15
DOC_KEYS = {"schema", "version", "running", "state", "pid", "started_at", "updated_at",
            "data_dir", "device_id", "sealing", "sealing_reason", "frames", "pairing", "consent",
            "camera", "events", "queues", "storage", "broker", "bucket", "clock", "problems"}


def doc_for(data: Path, now: float = NOW, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"max_bytes": 50_000_000, "broker_configured": False,
                            "bucket_configured": False, **kw}
    return status_document(data, now=now, **args)


def pair(data: Path, *, grants: dict[str, float | None]) -> None:
    db = DeviceDB(data / "device.sqlite")
    try:
        consent = ConsentStore(db)
        consent.add_owner(public_raw(Ed25519PrivateKey.generate()),
                          str(Identity.generate().recipient), "owner", NOW - 100)
        for scope, until in grants.items():
            consent.grant([scope], until, by="k", now=NOW - 50)
    finally:
        db.close()


def write_status(data: Path, **fields: Any) -> None:
    sf = StatusFile(data)
    sf.update(**fields)
    sf.flush(force=True)


def test_never_run_data_dir_gives_a_complete_document(tmp_path: Path) -> None:
    doc = doc_for(tmp_path / "nothing")
    assert set(doc) == DOC_KEYS
    assert doc["schema"] == 1 and doc["running"] is False and doc["state"] == "never-run"
    assert doc["pairing"] == {"paired": False, "owners": 0, "viewers": 0, "window_open": False}
    assert doc["consent"]["clips"] == {"in_force": False, "until": None}
    assert doc["queues"] is None and doc["events"]["today"] is None
    assert doc["storage"]["used_bytes"] == 0 and doc["storage"]["free_bytes"] > 0
    assert doc["broker"]["state"] == "unknown" and not doc["broker"]["configured"]
    assert doc["problems"] == [] and doc["clock"]["warning"] is None
    json.dumps(doc)  # a JSON document, nothing else


def test_an_implausible_clock_is_named(tmp_path: Path) -> None:
    doc = doc_for(tmp_path / "nothing", now=86400.0 * 365)  # 1971: a Pi booted without NTP
    assert "before the release of doorward" in doc["clock"]["warning"]
    assert re.search(r"\n  clock +the clock says 1971-01-01 00:00 UTC, before the release",
                     "\n".join(status_lines(doc, 86400.0 * 365)))
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        Ledger(db, Ed25519PrivateKey.generate()).append("setting", {"x": 1}, NOW)
    finally:
        db.close()
    back = doc_for(tmp_path, now=NOW - 3600)  # an hour before what the ledger already holds
    assert "before the newest ledger entry" in back["clock"]["warning"]
    assert back["clock"]["not_before"] == NOW
    assert doc_for(tmp_path, now=NOW - 60)["clock"]["warning"] is None  # an NTP step back
    assert "\n  clock " not in "\n".join(status_lines(doc_for(tmp_path), NOW))


def test_pairing_and_consent_come_from_the_database_not_the_status_file(tmp_path: Path) -> None:
    until = NOW + 10 * DAY_S
    pair(tmp_path, grants={"events": until, "clips": None})
    write_status(tmp_path, state="stopped", pairing_open=True)  # a stale claim of a dead daemon
    view = read_device(tmp_path, NOW)
    assert view is not None and view.owners == 1 and view.grants == {"events": until,
                                                                     "clips": None}
    doc = doc_for(tmp_path)
    assert doc["pairing"]["paired"] and doc["pairing"]["owners"] == 1
    assert not doc["pairing"]["window_open"]  # no daemon, no window
    assert doc["consent"] == {"events": {"in_force": True, "until": until},
                              "snapshots": {"in_force": False, "until": None},
                              "clips": {"in_force": True, "until": None}}
    # after expiry the grant is no longer in force
    assert not doc_for(tmp_path, now=until + 1)["consent"]["events"]["in_force"]


def test_events_today_counts_the_local_day(tmp_path: Path) -> None:
    now = time.time()
    midnight = local_midnight(now)
    assert midnight <= now < midnight + 25 * 3600
    with ClipStore(tmp_path, max_bytes=50_000_000, retention_days=30) as store:
        store.record_event(event_id=1, reason="motion", onset_s=0, last_motion_s=1,
                           peak_area=0.1, started_at_s=midnight - 60, ended_at_s=midnight - 50)
        store.record_event(event_id=2, reason="ring", onset_s=0, last_motion_s=1,
                           peak_area=0.1, started_at_s=midnight + 1, ended_at_s=midnight + 5)
    assert count_events_since(tmp_path, midnight) == 1
    assert doc_for(tmp_path, now=now)["events"]["today"] == 1


def test_queues_count_open_items_per_lane(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        for n in range(3):
            outbox.enqueue_signed("doorward/dw-x/events", lambda seq, prev: b"m%d" % seq,
                                  "events", now=NOW + n)
        done = outbox.enqueue_upload({"clip_id": "a"}, "clips", now=NOW)
        outbox.enqueue_upload({"clip_id": "b"}, "clips", now=NOW)
        outbox.mark_sent([done.id], NOW + 5)
    finally:
        outbox.close()
    assert doc_for(tmp_path)["queues"] == {"messages": 3, "uploads": 1}


def test_links_and_frame_age_as_last_seen(tmp_path: Path) -> None:
    write_status(tmp_path, state="running", last_frame_at=NOW - 3.0, source="sim:porch",
                 broker=LinkState("broker", "connected", NOW - 20).to_json(),
                 bucket=LinkState("bucket", "failed", NOW - 5, "bucket endpoint x "
                                  "unreachable").to_json())
    doc = doc_for(tmp_path)
    assert doc["running"] is True and doc["pid"] == os.getpid()  # this process is alive
    assert doc["camera"]["last_frame_age_s"] == pytest.approx(3.0)
    assert doc["broker"] == {"configured": True, "state": "connected", "at": NOW - 20,
                             "error": None}
    assert doc["bucket"]["state"] == "failed" and "unreachable" in doc["bucket"]["error"]


def test_a_stopped_daemon_holds_no_broker_connection(tmp_path: Path) -> None:
    write_status(tmp_path, state="stopped",
                 broker=LinkState("broker", "connected", NOW - 20).to_json())
    doc = doc_for(tmp_path, broker_configured=True)
    assert doc["running"] is False
    assert doc["broker"]["state"] == "disconnected"


def test_unreadable_database_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "device.sqlite").write_bytes(b"not a database at all" * 100)
    doc = doc_for(tmp_path)
    assert any("device.sqlite" in p for p in doc["problems"])
    assert doc["pairing"]["paired"] is False


def test_human_output_is_aligned_with_units(tmp_path: Path) -> None:
    until = NOW + 10 * DAY_S
    pair(tmp_path, grants={"clips": until})
    write_status(tmp_path, state="running", last_frame_at=NOW - 3.0, source="sim:porch",
                 frames=45, broker=LinkState("broker", "failed", NOW - 7,
                                             "nothing accepts connections").to_json())
    lines = status_lines(doc_for(tmp_path, broker_configured=True), NOW)
    text = "\n".join(lines)
    assert lines[0].startswith("doorward ") and "running (pid" in lines[0]
    assert "clips until 2027-01-25 08:00 UTC" in text
    assert "last frame 3 s ago" in text
    assert re.search(r"\n  broker +failed 7 s ago: nothing accepts connections\n", text)
    assert " MB used of 50.0 MB" in text
    assert "not configured (no [s3] bucket)" in text
    values = {line.index(line.split()[1]) for line in lines[1:]}  # every value starts in one column
    assert len(values) == 1


def test_camera_stalls_are_shown(tmp_path: Path) -> None:
    write_status(tmp_path, state="running", last_frame_at=NOW - 1.0, source="picamera2",
                 frames=900, camera_stalls=2, camera_recoveries=2)
    doc = doc_for(tmp_path)
    assert (doc["camera"]["stalls"], doc["camera"]["recoveries"]) == (2, 2)
    assert "2 stall(s), 2 recovered" in "\n".join(status_lines(doc, NOW))


# ---- the upload lane reports the bucket's answers to the loop ------------------------------------


class ListingStore:
    """An ObjectStore double for the erasure path: ``list`` answers or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def list(self, prefix: str) -> Any:
        if self.error is not None:
            raise self.error
        return iter(())

    def delete(self, keys: Any) -> list[str]:
        return list(keys)


@pytest.mark.parametrize("error", [None, "unavailable"])
def test_upload_lane_posts_bucket_reachability(tmp_path: Path, error: str | None) -> None:
    from agent.delivery.lanes import LaneContext
    from agent.delivery.outbox import Item
    from agent.delivery.uploader import ClipUploader
    from agent.device.identity import DeviceIdentity
    from agent.device.ledger import Ledger
    from uplink.s3 import S3Unavailable

    identity = DeviceIdentity.load_or_create(tmp_path)
    inbox: queue.Queue[Any] = queue.Queue()
    db = DeviceDB(tmp_path / "device.sqlite")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    store = ListingStore(S3Unavailable("bucket endpoint http://x unreachable") if error else None)
    ctx = LaneContext(tmp_path, identity, None, None, "doorward", "b", inbox)
    uploader = ClipUploader(ctx, store, db, ConsentStore(db),  # type: ignore[arg-type]
                            Ledger(db, identity.key), outbox)
    item = outbox.enqueue_upload({"forget": [], "all": True, "before": None, "request": "req-0001"},
                                 "device", now=NOW)
    try:
        if error:
            with pytest.raises(S3Unavailable):
                uploader.upload(item, lambda state: None)
        else:
            uploader.upload(item, lambda state: None)
    finally:
        outbox.close()
        db.close()
    seen = inbox.get_nowait()
    assert isinstance(seen, LinkState) and seen.link == "bucket"
    assert seen.state == ("failed" if error else "ok")
    assert (seen.error is not None and "unreachable" in seen.error) if error else \
        seen.error is None
    assert isinstance(item, Item)


def test_under_systemd_status_is_rewritten_in_the_runtime_dir_not_on_the_sd_card(
        tmp_path: Path) -> None:
    data, run = tmp_path / "state", tmp_path / "run"
    data.mkdir()
    run.mkdir()
    (data / "status.json").write_text("{}")  # left by an older daemon: replaced by the link
    sf = StatusFile(data, runtime_dir=run)
    sf.update(state="running", frames=3)
    sf.flush(force=True)
    assert (data / "status.json").is_symlink() and (run / "status.json").is_file()
    assert read_status(data)["frames"] == 3  # type: ignore[index]
    (run / "status.json").unlink()  # a reboot clears /run
    st = read_status(data)
    assert st is not None and st["running"] is False and "cleared" in st["note"]


def test_a_full_disk_is_a_problem_naming_the_fix(tmp_path: Path) -> None:
    """Issue 13 (5): clips aborted with ENOSPC left ``problems`` empty."""
    data = tmp_path / "data"
    data.mkdir()
    error = ("disk full: clip 0123456789abcdef aborted ([Errno 28] No space left on device): "
             "free space on the file system of /d or lower [store] max_bytes; old clips are "
             "evicted and the next clip tries again")
    write_status(data, state="running", store_error=error)
    doc = doc_for(data)
    assert doc["problems"] == [f"recording: {error}"]
    assert any(line.strip().startswith("problem") and "disk full" in line
               for line in status_lines(doc, NOW))


def test_free_space_below_the_floor_is_a_problem_naming_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert doc_for(data, min_free_bytes=0)["problems"] == []
    (problem,) = doc_for(data, min_free_bytes=1 << 60)["problems"]
    assert f"[store] min_free_bytes = {1 << 60}" in problem
    assert "evicted as soon as it is sealed" in problem and "free space" in problem


def test_what_start_up_could_not_put_right_is_a_problem(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    note = "index.sqlite was damaged (x) and was rebuilt from the clip files: ...; lost: ..."
    write_status(data, state="running", store_recovery=[note])
    assert doc_for(data)["problems"] == [f"start-up: {note}"]


def test_a_damaged_index_is_a_problem_naming_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "index.sqlite").write_bytes(b"not a database at all" * 300)
    problems = doc_for(data)["problems"]
    assert problems and all("restart the daemon" in p for p in problems), problems


def test_a_full_card_never_stops_the_status_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """status.json is advisory: ENOSPC writing it is logged once and retried, never raised (it
    used to end the daemon with a traceback when the card filled up)."""
    import errno

    sf = StatusFile(tmp_path)
    sf.update(state="running", frames=1)
    sf.flush(force=True)
    real_write = Path.write_text

    def full(self: Path, *args: Any, **kw: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full)
    sf.update(frames=2)
    sf.flush(force=True)
    sf.flush(force=True)
    assert [r.levelname for r in caplog.records if "cannot write" in r.getMessage()] == ["WARNING"]
    assert read_status(tmp_path)["frames"] == 1  # the older state, whole
    monkeypatch.setattr(Path, "write_text", real_write)
    sf.flush(force=True)
    assert read_status(tmp_path)["frames"] == 2
